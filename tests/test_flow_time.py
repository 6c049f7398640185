"""Flow matching with a time input (train.time_conditioning: time-bias;
docs/time-conditioning.md): the time code, batches on the time grid solved level by level,
the Euler sampler setting the code at every step, the EP gradient against the exact one,
the SPICE decks carrying the time code's current sources (real ngspice), the default
config unchanged, and what cannot take a time-dependent energy refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from analogep import api
from analogep.backends.numpy_backend import NumpyBackend
from analogep.cli.app import main
from analogep.config import load_spec
from analogep.config.schema import to_dict
from analogep.data import load_dataset
from analogep.ep.levels import level_groups
from analogep.model.factory import build_energy
from analogep.objectives.factory import build_objective, first_level_code
from analogep.objectives.flow_sampling import generate
from analogep.objectives.flow_time import TimeCode, time_condition
from analogep.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
MOONS = ROOT / "examples" / "moons.yaml"
TINY = ROOT / "examples" / "tiny.yaml"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_ok(result) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"


@pytest.fixture(scope="module")
def spec():
    """A small 2-D flow model with a time input of 5 levels."""
    return load_spec(MOONS).replace(model={"sizes": [2, 16, 16]}, train={"batch": 32, "time_conditioning": "time-bias",
                                                                         "time_levels": 5})


@pytest.fixture
def tb_yaml(tmp_path) -> Path:
    data = yaml.safe_load(MOONS.read_text())
    data["model"]["sizes"] = [2, 16, 16]
    data["train"].update(batch=32, steps=4, checkpoint_every=2, time_conditioning="time-bias", time_levels=5)
    data["train"]["optimizer"]["schedule"] = "constant"  # a resume to more steps keeps a constant rate's steps
    data["generate"]["n"] = 40
    path = tmp_path / "moons-tb.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def random_time_params(spec, seed: int = 0):
    """Initial weights with non-zero time biases (they start at zero)."""
    params = build_energy(spec.model).init_params(np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    return {k: (0.3 * rng.standard_normal(v.shape)).astype(v.dtype) if k.startswith("lb") else v for k, v in params.items()}


def test_time_bias_sets_the_code_size_and_default_configs_dump_without_the_keys(spec):
    assert spec.model.level_features == 5 and build_energy(spec.model).level_features == 5
    fourier = spec.replace(train={"time_code": "fourier", "time_features": 3})
    assert fourier.model.level_features == 3
    for path in (TINY, MOONS):
        plain = load_spec(path)
        assert plain.model.level_features == 0
        assert not any(k.startswith("time_") for k in to_dict(plain)["train"])
    dumped = to_dict(spec)["train"]
    assert dumped["time_conditioning"] == "time-bias" and dumped["time_levels"] == 5


def test_the_one_hot_time_code_is_exact_on_the_grid_and_interpolates_between():
    time = TimeCode(5)
    assert np.array_equal(time(0.25), np.eye(5)[1]) and np.array_equal(time(1.0), np.eye(5)[4])
    assert np.allclose(time(0.3), [0, 0.8, 0.2, 0, 0])
    assert np.array_equal(time(1.4), time(1.0))  # extended generation: held at t = 1
    assert np.allclose(TimeCode(5, "fourier", 3)(0.5), [1.0, 0.0, -1.0], atol=1e-12)


def test_a_batch_draws_its_times_on_the_grid_and_groups_by_level(spec):
    data = load_dataset("moons", source=spec.data)
    batch = build_objective(spec).batch(data, 32, np.random.default_rng(3))
    grid = np.linspace(0, 1, 5)
    assert np.allclose(batch.t[:, 0], grid[batch.level])
    assert np.allclose(batch.x_t, (1 - batch.t) * batch.x0 + batch.t * batch.x1)
    groups = level_groups(batch)
    assert len(groups) > 1 and sorted(np.concatenate([rows for _, rows in groups]).tolist()) == list(range(32))
    for code, rows in groups:
        assert np.array_equal(code, np.eye(5)[batch.level[rows[0]]]) and (batch.level[rows] == batch.level[rows[0]]).all()
    part = batch.subset(groups[0][1])
    assert part.x_t.shape[0] == len(groups[0][1]) and part.groups()[0][1].tolist() == list(range(len(part.x_t)))


def test_a_batch_without_time_input_is_drawn_as_before(spec):
    """The default objective draws t ~ U[0, 1] exactly as it did (no level, no code)."""
    data = load_dataset("moons", source=spec.data)
    plain = load_spec(MOONS)
    a = build_objective(plain).batch(data, 16, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    x1 = data[rng.choice(data.shape[0], size=16, replace=False)]
    rng.standard_normal(x1.shape)
    assert a.level is None and a.groups() is None and np.array_equal(a.t, rng.random((16, 1)).astype(data.dtype))


def test_the_euler_sampler_sets_the_time_code_before_every_step(spec):
    model = build_energy(spec.model)
    backend = NumpyBackend(model, spec.gradep, spec.relax)
    backend.program(random_time_params(spec))
    time, seen = TimeCode(5), []
    set_code = time_condition(time, backend)

    def condition(t):
        seen.append(t)
        set_code(t)

    x = generate(model, backend, spec.gradep, n=8, t1=0.5, dt=0.1, seed=2, condition=condition)
    assert np.allclose(seen, [0.0, 0.1, 0.2, 0.3, 0.4]) and np.isfinite(x).all()
    # the time input matters: the same noise at a fixed code goes elsewhere
    backend.condition(time(0.0))
    fixed = generate(model, backend, spec.gradep, n=8, t1=0.5, dt=0.1, seed=2)
    assert np.abs(fixed - x).max() > 1e-3


@pytest.mark.parametrize("code", ["onehot", "fourier"])
def test_the_ep_gradient_with_the_time_input_matches_the_exact_one(spec, code):
    spec = spec.replace(train={"time_code": code})
    params = random_time_params(spec)
    report = api.gradcheck(spec, params, batch=16, seed=0)
    assert report["cosine"] >= 0.999 and report["float64_tight"]["cosine"] >= 0.999
    for name in ("lb_x", "lb0", "lb1"):
        assert report["per_tensor"][name]["cosine"] >= 0.999, name


def test_training_with_the_time_input_learns_it_samples_and_resumes_bit_identically(tb_yaml, tmp_path):
    straight, resumed = tmp_path / "a", tmp_path / "b"
    assert_ok(invoke("train", tb_yaml, "--out", straight, "--no-samples"))
    assert_ok(invoke("train", tb_yaml, "--steps", 2, "--out", resumed, "--no-samples"))
    assert_ok(invoke("train", "--resume", "--out", resumed, "--steps", 4, "--no-samples"))
    a, b = load_checkpoint(straight).params, load_checkpoint(resumed).params
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert np.abs(a["lb0"]).max() > 0  # Adam moved the time biases
    assert yaml.safe_load((straight / "config.yaml").read_text())["train"]["time_conditioning"] == "time-bias"
    out = tmp_path / "s.npy"
    assert_ok(invoke("sample", straight, "--save", out, "--n", 20))
    assert np.isfinite(np.load(out)).all()


def test_continuous_generation_of_a_time_dependent_energy_is_refused_in_one_line(tb_yaml, tmp_path):
    run = tmp_path / "run"
    assert_ok(invoke("train", tb_yaml, "--steps", 1, "--out", run, "--no-samples"))
    for args in (("sample", run, "--mode", "continuous", "--out", tmp_path / "c.png"),
                 ("study", "continuous", run, "--plot", tmp_path / "c2.png")):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and "time input" in lines[0], result.stderr
    assert not (tmp_path / "c.png").exists() and not (tmp_path / "c2.png").exists()


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"objective": "dsm"}, "train.time_conditioning: time-bias is flow matching's time input"),
        ({"time_levels": 1}, "train.time_levels: 1 is not allowed; must be >= 2"),
        ({"time_code": "wavelet"}, "train.time_code"),
    ],
)
def test_bad_time_settings_are_one_line_and_write_nothing(tb_yaml, tmp_path, change, fragment):
    data = yaml.safe_load(tb_yaml.read_text())
    data["train"].update(change)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    result = invoke("train", bad, "--out", out)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
    assert not out.exists()


def test_time_bias_on_non_ideal_devices_is_refused_in_one_line(tb_yaml, tmp_path):
    result = invoke("train", tb_yaml, "--devices", "rram", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "time-bias is built for ideal devices only" in result.stderr, result.output
    assert not (tmp_path / "run").exists()


def test_the_compiled_decks_carry_the_time_codes_current_sources(spec):
    params = random_time_params(spec)
    code = first_level_code(spec)
    assert code is not None and code.shape == (5,) and code.sum() == 1
    files, _ = api.compile_circuit(spec, params)
    level = int(np.argmax(code))
    for deck in ("free.cir", "generate.cir"):
        sources = {line.split()[0]: line for line in files[deck].splitlines() if line.startswith("Ilb")}
        assert {"Ilbx_0", "Ilbx_1", "Ilb0_0", "Ilb1_15"} <= set(sources), sorted(sources)[:5]
        current = float(params["lb0"][level][0]) * spec.circuit.g0
        assert f"{current:.6g}"[:6] in sources["Ilb0_0"], sources["Ilb0_0"]


@pytest.mark.spice
def test_the_circuit_at_one_time_level_agrees_with_numpy(spec):
    params = random_time_params(spec)
    report, _, _ = api.check_circuit(spec, params, n=4)
    assert report.max_rel_error <= 1e-6 and report.grad_cosine >= 1 - 1e-6, report
