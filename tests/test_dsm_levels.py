"""A noise-level-dependent energy (dsm.conditioning: level-bias; method.md 6.3) and the
ancestral sampler (method.md 6.4): the level code, the LevelBias term against a plain bias,
the EP gradient of the level biases against the exact one, training level by level, the
sampler's steps, the SPICE decks' level sources against numpy (real ngspice), and bad
input refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analogep import api
from analogep.backends.numpy_backend import NumpyBackend
from analogep.config import load_spec
from analogep.data import load_dataset
from analogep.ep.levels import level_groups, phases_by_level
from analogep.ep.phases import run_phases
from analogep.evaluation import gradcheck as gc
from analogep.model.factory import build_energy
from analogep.model.tensors import params_dot, params_map
from analogep.objectives.dsm import level_code
from analogep.objectives.factory import build_objective
from analogep.training.checkpoint import load_checkpoint

from clirun import TINY, assert_ok, assert_one_line_error, invoke, tiny_dsm_yaml


@pytest.fixture(scope="module")
def spec():
    return load_spec(TINY).replace(train={"objective": "dsm"}, dsm={"conditioning": "level-bias"})


@pytest.fixture
def lb_yaml(tmp_path) -> Path:
    return tiny_dsm_yaml(tmp_path / "tiny-lb.yaml", "  conditioning: level-bias\n  steps_per_level: 2\n")


def random_level_params(spec, seed: int = 0):
    """Initial weights with non-zero level biases (they start at zero)."""
    params = build_energy(spec.model).init_params(np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    return {k: (0.3 * rng.standard_normal(v.shape)).astype(v.dtype) if k.startswith("lb") else v for k, v in params.items()}


def test_level_bias_adds_one_code_crossbar_per_layer_and_leaves_other_models_alone(spec):
    model = build_energy(spec.model)
    assert spec.model.level_features == spec.dsm.levels == 10
    assert model.param_shapes()["lb_x"] == (10, 64) and model.param_shapes()["lb0"] == (10, 16)
    assert model.param_names[-3:] == ("lb_x", "lb0", "lb1")  # after the old rows: their init draws unchanged
    fourier = spec.replace(dsm={"level_code": "fourier", "level_features": 3})
    assert build_energy(fourier.model).param_shapes()["lb1"] == (3, 16)
    plain = load_spec(TINY).replace(train={"objective": "dsm"}, dsm={"conditioning": "scale"})
    assert plain.model.level_features == 0 and "lb_x" not in build_energy(plain.model).param_names


def test_the_one_hot_code_is_exact_at_levels_and_interpolates_between(spec):
    d = spec.dsm
    for i, sigma in enumerate(d.sigmas):
        assert np.array_equal(level_code(d, sigma), np.eye(d.levels)[i])
    mid = float(np.sqrt(d.sigmas[2] * d.sigmas[3]))  # halfway in log sigma
    assert level_code(d, mid)[2:4] == pytest.approx([0.5, 0.5]) and level_code(d, mid).sum() == pytest.approx(1.0)
    assert np.array_equal(level_code(d, 0.0), np.eye(d.levels)[-1])  # below the schedule: the last level
    f = spec.replace(dsm={"level_code": "fourier", "level_features": 4}).dsm
    assert level_code(f, f.sigma_max) == pytest.approx(np.ones(4))
    assert level_code(f, f.sigma_min) == pytest.approx([1, -1, 1, -1])


def test_a_level_bias_at_a_level_is_that_levels_plain_bias(spec):
    model = build_energy(spec.model)
    params = random_level_params(spec)
    state = model.zeros_state(3)
    state = [np.random.default_rng(4).standard_normal(s.shape).astype(s.dtype) for s in state]
    model.condition(np.eye(10)[6])
    folded = {**params, "b_x": params["b_x"] + params["lb_x"][6], "b0": params["b0"] + params["lb0"][6],
              "b1": params["b1"] + params["lb1"][6], "lb_x": 0 * params["lb_x"], "lb0": 0 * params["lb0"],
              "lb1": 0 * params["lb1"]}
    assert model.energy(params, state) == pytest.approx(model.energy(folded, state), rel=1e-6)
    terms = model.param_terms(params, state)
    assert np.allclose(terms["lb0"][6], terms["b0"]) and not terms["lb0"][:6].any()  # the update gated by the level


def test_a_batch_solved_level_by_level_is_each_level_solved_alone(spec):
    model = build_energy(spec.model)
    params = random_level_params(spec)
    batch = build_objective(spec).batch(load_dataset("digits"), 24, np.random.default_rng(3))
    backend = NumpyBackend(model, spec.gradep, spec.relax)
    backend.program(params)
    merged = phases_by_level(backend, batch, spec.gradep)
    groups = level_groups(batch)
    assert len(groups) > 1 and sum(len(rows) for _, rows in groups) == 24
    code, rows = groups[1]
    backend.condition(code)
    alone = run_phases(backend, batch.x_t[rows], batch.target[rows], spec.gradep)
    for a, b in zip(alone.plus.state, merged.plus.state):
        assert np.array_equal(a, b[rows])


@pytest.mark.parametrize("code", ["onehot", "fourier"])
def test_the_ep_gradient_of_the_level_biases_matches_the_exact_one(spec, code):
    spec = spec.replace(dsm={"level_code": code})
    params = random_level_params(spec)
    report = api.gradcheck(spec, params, batch=16, seed=0)
    assert report["cosine"] >= 0.9999 and report["float64_tight"]["cosine"] >= 0.9999
    for name in ("lb_x", "lb0", "lb1"):
        assert report["per_tensor"][name]["cosine"] >= 0.999, name


def test_level_biases_of_levels_absent_from_the_batch_get_no_gradient(spec):
    params = random_level_params(spec)
    model64, p64 = gc.as_float64(spec, params)
    batch = build_objective(spec).batch(load_dataset("digits", dtype=np.float64), 6, np.random.default_rng(5))
    present = sorted(set(batch.level.tolist()))
    exact = gc.exact_gradient(model64, p64, batch, spec.gradep)
    absent = [i for i in range(10) if i not in present]
    assert absent and not exact["lb0"][absent].any() and all(exact["lb0"][i].any() for i in present)


def test_the_exact_gradient_of_one_level_is_its_finite_difference(spec):
    params = random_level_params(spec)
    model64, p64 = gc.as_float64(spec, params)
    batch = build_objective(spec).batch(load_dataset("digits", dtype=np.float64), 12, np.random.default_rng(1))
    code, rows = level_groups(batch)[0]
    part = batch.subset(rows)
    model64.condition(code)
    exact = gc.exact_gradient(model64, p64, part, spec.gradep)
    direction = params_map(lambda p: np.random.default_rng(2).standard_normal(p.shape), p64)
    model64.condition(code)  # exact_gradient leaves the last level applied; the same one here
    fd = gc.directional_fd(model64, p64, part, spec.gradep, direction)
    assert params_dot(exact, direction) == pytest.approx(fd, rel=1e-5)


def test_training_with_level_biases_learns_them_and_resumes_bit_identically(lb_yaml, tmp_path):
    straight, resumed = tmp_path / "a", tmp_path / "b"
    lb_yaml.write_text(lb_yaml.read_text().replace("  batch: 128", "  batch: 32"))
    assert_ok(invoke("train", lb_yaml, "--steps", 6, "--out", straight, "--no-samples"))
    assert_ok(invoke("train", lb_yaml, "--steps", 3, "--out", resumed, "--no-samples"))
    assert_ok(invoke("train", "--resume", "--out", resumed, "--steps", 6, "--no-samples"))
    a, b = load_checkpoint(straight).params, load_checkpoint(resumed).params
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert np.abs(a["lb0"]).max() > 0  # Adam moved the level biases


@pytest.mark.parametrize("substeps, final", [(1, 0.0), (2, 0.05)])
def test_the_ancestral_sampler_counts_its_steps_and_gives_finite_samples(spec, substeps, final):
    spec = spec.replace(dsm={"sampler": "ancestral", "substeps": substeps, "final_sigma": final, "steps_per_level": 2})
    params = random_level_params(spec)
    counts = []
    x = api.sample(spec, params, n=20, on_step=lambda done, total: counts.append((done, total)))
    levels, grid = 10, len(spec.dsm.ancestral_sigmas) - 1
    assert grid == 9 * substeps + 1 and spec.dsm.ancestral_sigmas[-1] == final
    assert counts[-1] == (levels * 2 + grid + (final > 0),) * 2
    assert x.shape == (20, 64) and np.isfinite(x).all()


def test_the_sample_command_takes_the_ancestral_sampler(lb_yaml, tmp_path):
    run = tmp_path / "run"
    assert_ok(invoke("train", lb_yaml, "--steps", 2, "--batch", 16, "--out", run, "--no-samples"))
    result = invoke("sample", run, "--sampler", "ancestral", "--substeps", 2, "--n", 8, "--save", tmp_path / "s.npy", "--json")
    assert_ok(result)
    assert np.isfinite(np.load(tmp_path / "s.npy")).all()


@pytest.mark.parametrize(
    "dsm, fragment",
    [
        ("conditioning: film", "dsm.conditioning: 'film' is not allowed"),
        ("conditioning: level-bias\n  level_code: fourier\n  level_features: 0", "dsm.level_features: 0 is not allowed; must be >= 1"),
        ("substeps: 0", "dsm.substeps: 0 is not allowed; must be >= 1"),
        ("sampler: ancestral\n  final_sigma: 0.2", "final_sigma = 0.2 must be below sigma_min = 0.1"),
    ],
)
def test_bad_level_settings_are_one_line_and_write_nothing(lb_yaml, tmp_path, dsm, fragment):
    bad = tmp_path / "bad.yaml"
    bad.write_text(lb_yaml.read_text().split("\ndsm:")[0] + f"\ndsm:\n  {dsm}\n")
    out = tmp_path / "run"
    result = invoke("train", bad, "--out", out)
    assert_one_line_error(result, fragment)
    assert not out.exists()


def test_a_sampler_with_zero_substeps_is_refused_in_one_line(lb_yaml, tmp_path):
    result = invoke("sample", lb_yaml, "--sampler", "ancestral", "--substeps", 0)
    assert result.exit_code == 2 and "--substeps" in result.output


@pytest.mark.spice
def test_the_circuit_with_level_bias_sources_agrees_with_numpy(spec, tmp_path):
    params = random_level_params(spec)
    report, ref, got = api.check_circuit(spec, params, n=6)
    assert report.max_rel_error <= 1e-6 and report.grad_cosine >= 1 - 1e-6, report
    files, _ = api.compile_circuit(spec, params)
    free = files["free.cir"]
    code = api.deck_level(spec)
    level = int(np.argmax(code))
    current = params["lb0"][level][0] * spec.circuit.g0
    assert any(line.startswith("Ilb0_0 ") and f"{current:.6g}"[:6] in line.replace("e-0", "e-0") for line in free.splitlines()), \
        [line for line in free.splitlines() if line.startswith("Ilb")][:3]
