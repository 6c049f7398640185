"""Fault injection on inputs and outputs: files that are not what a command expects, names
that a writer would change, weights and settings that give NaN or unbounded work, and
samples on the wrong scale. Each is one line and exit code 2 with nothing written, or a
stated figure and a warning, never a traceback or a silent wrong answer."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import analogep
from analogep.cli import main
from analogep.config import ConfigError, load_spec
from analogep.config.load import dump_spec
from analogep.errors import CheckpointError
from analogep.evaluation.quality import RANGE_TOLERANCE, evaluate_samples, split_digits
from analogep.model.factory import build_energy
from analogep.objectives import sampling
from analogep.objectives.flow_sampling import generate
from analogep.objectives.sampling import velocity_field
from analogep.backends.numpy_backend import NumpyBackend
from analogep.training.checkpoint import Checkpoint, save_checkpoint
from analogep.training.optim import build_optimizer

from clirun import ROOT, TINY, assert_ok, assert_one_line_error, invoke


def write_checkpoint(path: Path, spec, params) -> Path:
    """A checkpoint of `params` at step 0 (no training needed to test what reads it)."""
    save_checkpoint(path, Checkpoint(params, build_optimizer(spec.train.optimizer, params).state_dict(),
                                    np.random.default_rng(0).bit_generator.state, 0, spec))
    return path


@pytest.fixture(scope="module")
def tiny():
    spec = load_spec(TINY)
    return spec, build_energy(spec.model).init_params(np.random.default_rng(spec.model.seed))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, tiny) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "checkpoint.npz", *tiny)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny) -> Path:
    """A run folder as compare reads it: config.yaml and metrics.jsonl."""
    out = tmp_path_factory.mktemp("run") / "run"
    out.mkdir()
    (out / "config.yaml").write_text(dump_spec(tiny[0]))
    (out / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in (1, 2, 3)))
    return out


# --- output names: what a writer picks from the extension ------------------------------------


def test_save_name_without_npy_is_refused_and_nothing_is_written(ckpt, tmp_path):
    """np.save appends .npy to any other name: NAME stayed empty and the data went to a
    hidden temporary file."""
    result = invoke("sample", ckpt, "--n", 3, "--save", tmp_path / "NAME", "--out", tmp_path / "x.png")
    assert_one_line_error(result, "NAME", ".npy")
    assert list(tmp_path.iterdir()) == []


def test_save_writes_exactly_the_named_file_as_np_save_would(ckpt, tiny, tmp_path):
    npy = tmp_path / "s.npy"
    assert_ok(invoke("sample", ckpt, "--n", 7, "--save", npy, "--out", tmp_path / "s.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npy", "s.png"]  # no temporary left behind
    x = analogep.sample(*tiny, n=7)
    buffer = io.BytesIO()
    np.save(buffer, x)
    assert npy.read_bytes() == buffer.getvalue()  # the incremental writer makes the same file


@pytest.mark.parametrize(
    "command",
    [
        ["sample", "{ckpt}", "--n", "2", "--out", "{tmp}/grid.txt"],
        ["sample", "{ckpt}", "--n", "2", "--out", "{tmp}/grid"],
        ["gradcheck", str(TINY), "--batch", "2", "--beta-sweep", "--plot", "{tmp}/sweep.txt"],
        ["compare", "{run}", "{run}", "--plot", "{tmp}/curves.txt"],
        ["check", str(TINY), "--n", "1", "--plot", "{tmp}/scatter.txt"],
    ],
    ids=["sample-txt", "sample-no-extension", "gradcheck", "compare", "check"],
)
def test_an_image_name_matplotlib_cannot_write_is_refused_before_any_work(command, ckpt, run_dir, tmp_path):
    """matplotlib picks the format from the extension: .txt was a ValueError traceback after
    sampling, no extension a traceback on the temporary name's random suffix."""
    args = [a.format(ckpt=ckpt, run=run_dir, tmp=tmp_path) for a in command]
    assert_one_line_error(invoke(*args), "an image needs one of", ".png")
    assert list(tmp_path.iterdir()) == []
    assert not (ckpt.parent / "samples.png").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["sample", "{ckpt}", "--n", "2", "--save", "{file}/s.npy", "--out", "{tmp}/s.png"],
        ["sample", "{ckpt}", "--n", "2", "--out", "{file}/s.png"],
        ["compare", "{run}", "{run}", "--plot", "{file}/c.png"],
        ["compile", str(TINY), "--out", "{file}/decks"],
    ],
    ids=["sample-save", "sample-out", "compare", "compile"],
)
def test_an_output_under_a_file_is_refused_before_any_work(command, ckpt, run_dir, tmp_path):
    """The folder creation failed with a FileExistsError traceback, the image after sampling."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = [a.format(ckpt=ckpt, run=run_dir, tmp=tmp_path, file=blocker) for a in command]
    assert_one_line_error(invoke(*args), "cannot write there", "a-file is not a writable folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


# --- non-finite weights and samples ----------------------------------------------------------


@pytest.fixture(scope="module")
def nan_run(tmp_path_factory, tiny) -> Path:
    spec, params = tiny
    bad = {k: v.copy() for k, v in params.items()}
    bad["W0"][0, 0] = np.nan
    bad["b1"][1] = np.inf
    out = tmp_path_factory.mktemp("nan") / "run"
    out.mkdir()
    (out / "config.yaml").write_text(dump_spec(spec))
    write_checkpoint(out / "checkpoint.npz", spec, bad)
    return out


@pytest.mark.parametrize(
    "command",
    [
        ["sample", "{run}", "--n", "3", "--save", "{tmp}/s.npy", "--out", "{tmp}/s.png"],
        ["evaluate", "{run}", "--n", "3"],
        ["gradcheck", "{run}", "--batch", "2"],
        ["compile", "--checkpoint", "{run}", "--out", "{tmp}/decks"],
        ["check", "{run}", "--n", "1", "--plot", "{tmp}/c.png"],
    ],
    ids=["sample", "evaluate", "gradcheck", "compile", "check"],
)
def test_a_checkpoint_with_non_finite_weights_is_refused_where_it_is_loaded(command, nan_run, tmp_path):
    """It sampled 100% NaN with rc 0 and compiled `.nodeset v(x0)=nan` decks; `check`
    called it an unbounded energy."""
    args = [a.format(run=nan_run, tmp=tmp_path) for a in command]
    line = assert_one_line_error(invoke(*args), str(nan_run / "checkpoint.npz"), "W0", "b1", "NaN or inf")
    assert "unbounded" not in line
    assert list(tmp_path.iterdir()) == []


def test_resume_refuses_a_checkpoint_with_non_finite_weights(nan_run):
    result = invoke("train", "--out", nan_run, "--resume", "--steps", 2, "--no-samples")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.splitlines()[-1].startswith(f"error: {nan_run / 'checkpoint.npz'}: non-finite values")


def test_the_api_refuses_non_finite_weights(tiny):
    spec, params = tiny
    bad = {k: v.copy() for k, v in params.items()}
    bad["b_x"][0] = np.inf
    for call in (
        lambda: analogep.sample(spec, bad, n=2),
        lambda: analogep.compile_circuit(spec, bad),
        lambda: analogep.gradcheck(spec, bad, batch=2),
    ):
        with pytest.raises(CheckpointError, match="b_x"):
            call()


def test_samples_that_come_out_non_finite_are_refused_and_nothing_is_written(tiny, tmp_path):
    """Finite but enormous weights overflow float32 within a few steps."""
    spec, params = tiny
    huge = {k: v * np.float32(1e20) + np.float32(1e20) for k, v in params.items()}
    ckpt = write_checkpoint(tmp_path / "huge.npz", spec, huge)
    result = invoke("sample", ckpt, "--n", 4, "--save", tmp_path / "s.npy", "--out", tmp_path / "s.png")
    assert result.exit_code == 2 and "Traceback" not in result.output
    *progress, error = result.stderr.splitlines()  # progress lines, then the error; no overflow warnings
    assert error == "error: sampling diverged: 4 of 4 samples are not finite (NaN or inf); nothing written"
    assert progress and all(line.startswith("sample: ") and "steps" in line for line in progress)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.npz"]


# --- integration settings --------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--dt", "100"], "dt = 100 is longer than t1 = 1"),
        (["--t1", "0.5", "--dt", "0.8"], "dt = 0.8 is longer than t1 = 0.5"),
        (["--dt", "1"], "2/alpha"),
        (["--t1", "1000"], "20,000 Euler steps is more than 10,000"),
        (["--dt", "5e-5"], "20,000 Euler steps is more than 10,000"),
    ],
    ids=["dt-100", "dt-over-t1", "dt-unstable", "t1-huge", "dt-tiny"],
)
def test_sample_refuses_dt_and_t1_that_cannot_integrate(flags, fragment, ckpt, tmp_path):
    """--dt 100 took one step of 100 (samples at +-670, rc 0); --dt 1e-9 or --t1 1e9 ran
    without bound."""
    result = invoke("sample", ckpt, "--n", 2, *flags, "--save", tmp_path / "s.npy", "--out", tmp_path / "s.png")
    assert_one_line_error(result, fragment)
    assert list(tmp_path.iterdir()) == []


def test_one_euler_step_over_the_whole_range_is_allowed(ckpt, tmp_path):
    result = invoke("sample", ckpt, "--n", 2, "--t1", 0.5, "--dt", 0.5, "--save", tmp_path / "s.npy",
                    "--out", tmp_path / "s.png")
    assert_ok(result)
    assert np.all(np.abs(np.load(tmp_path / "s.npy")) < 10)


def test_config_and_api_apply_the_same_generate_rule(tiny, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text() + "  t1: 0.01\n")  # tiny's generate.dt is 0.05
    with pytest.raises(ConfigError, match=r"bad.yaml: generate: dt = 0.05 is longer than t1 = 0.01"):
        load_spec(bad)
    with pytest.raises(ConfigError, match="longer than t1"):
        analogep.sample(*tiny, n=2, dt=100.0)


# --- sampling in chunks ----------------------------------------------------------------------


def _generate_in_one_batch(model, backend, gradep, *, n, t1, dt, mode, seed):
    """The sampler as it was before chunking: every sample in one batch."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, model.sizes[0])).astype(model.dtype)
    steps = max(1, int(round(t1 / dt)))
    hidden, previous = None, None
    for _ in range(steps):
        start = hidden if previous is None else [2 * h - p for h, p in zip(hidden, previous)]
        previous = hidden
        v, hidden = velocity_field(backend, x, start, gradep, mode)
        x = x + np.asarray(dt, dtype=x.dtype) * v
    return x


@pytest.fixture(scope="module")
def programmed(tiny):
    spec, params = tiny
    model = build_energy(spec.model)
    backend = NumpyBackend(model, spec.gradep, spec.relax)
    backend.program(params)
    return spec, model, backend


def test_up_to_a_chunk_the_samples_are_bit_identical_to_one_batch(programmed):
    spec, model, backend = programmed
    settings = dict(n=50, t1=0.3, dt=0.05, mode="energy", seed=3)
    expected = _generate_in_one_batch(model, backend, spec.gradep, **settings)
    got = generate(model, backend, spec.gradep, **settings)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_chunks_draw_the_same_noise_and_count_every_step(programmed, monkeypatch):
    spec, model, backend = programmed
    settings = dict(n=12, t1=0.15, dt=0.05, mode="energy", seed=3)
    whole = generate(model, backend, spec.gradep, **settings)
    monkeypatch.setattr(sampling, "SAMPLE_CHUNK", 5)
    steps = []
    out = np.full((12, 64), np.nan, dtype=model.dtype)
    chunked = generate(model, backend, spec.gradep, **settings, out=out, on_step=lambda k, total: steps.append((k, total)))
    assert chunked is out
    assert steps == [(k, 9) for k in range(1, 10)]  # 3 chunks x 3 steps
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-5)  # same noise; relaxed in other batches


def test_a_large_n_samples_within_bounded_memory(ckpt, tmp_path):
    """n = 100,000 under an address-space limit 200 MB above what the CLI's imports take.
    The samples file is 26 MB; the one-batch sampler needed about 330 MB more here (its
    relaxation arrays grow with n: 10 million samples grew to 24 GB), and failed."""
    spec = load_spec(TINY).replace(relax={"free_steps": 2})  # the relaxation's length is not the point here
    params = build_energy(spec.model).init_params(np.random.default_rng(0))
    light = write_checkpoint(tmp_path / "light.npz", spec, params)
    n, npy = 100_000, tmp_path / "big.npy"
    child = (
        "import resource, sys\n"
        "import analogep.cli.app, analogep.evaluation.plots, analogep.objectives.flow, analogep.backends.numpy_backend\n"
        "size = next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmSize:'))\n"
        "resource.setrlimit(resource.RLIMIT_AS, (size + 200 * 2**20,) * 2)\n"
        "from analogep.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    args = ["sample", light, "--n", n, "--t1", 0.5, "--dt", 0.5, "--save", npy, "--out", tmp_path / "big.png"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", child, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    x = np.load(npy, mmap_mode="r")
    assert x.shape == (n, 64) and np.all(np.isfinite(x[-10:]))


# --- files that are not what a command reads ------------------------------------------------


@pytest.fixture(scope="module")
def not_configs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("notconfigs")
    files = {
        "npy": folder / "samples.npy",
        "bytes": folder / "random.bin",
        "latin1": folder / "latin1.yaml",
        "nul": folder / "nul.yaml",
        "list-key": folder / "listkey.yaml",
    }
    np.save(files["npy"], np.zeros((3, 64), np.float32))
    files["bytes"].write_bytes(bytes(range(256)) * 4)
    files["latin1"].write_bytes("name: caf\xe9\n".encode("latin-1"))
    files["nul"].write_bytes(b"name: tiny\x00\n")
    files["list-key"].write_text("? [a, b]\n: 1\n")
    return files


@pytest.mark.parametrize("command", ["train", "gradcheck", "check", "compile"])
@pytest.mark.parametrize("kind, fragment", [
    ("npy", "not a config (a numpy .npy array)"),
    ("bytes", "not UTF-8 text (byte 0x80 at byte 128"),
    ("latin1", "not UTF-8 text (byte 0xe9 at byte 9"),
    ("nul", "not YAML text (character U+0000 at character"),
    ("list-key", "line 1 not valid YAML (a list as a key)"),
])
def test_a_config_that_is_not_yaml_text_is_one_line(command, kind, fragment, not_configs, tmp_path):
    """UnicodeDecodeError and TypeError tracebacks before; a NUL byte gave a two-line error."""
    args = [command, not_configs[kind]] + (["--out", tmp_path / "out"] if command in ("train", "compile") else [])
    assert_one_line_error(invoke(*args), str(not_configs[kind]), fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["sample"], ["evaluate"], ["compile", str(TINY), "--checkpoint"]])
def test_a_npy_where_a_checkpoint_is_expected_is_one_line(command, not_configs, tmp_path):
    """np.load returned an array, and `with` on it was a TypeError traceback."""
    path = not_configs["npy"].with_name("weights.npz.bak")  # not named .npy, so evaluate reads it as a checkpoint
    path.write_bytes(not_configs["npy"].read_bytes())
    extra = ["--out", tmp_path / "decks"] if command[0] == "compile" else []
    assert_one_line_error(invoke(*command, path, *extra), "not an analogep checkpoint (a numpy .npy array")


def test_a_non_archive_checkpoint_is_not_asked_to_be_unpickled(not_configs):
    result = invoke("sample", not_configs["bytes"])
    line = assert_one_line_error(result, "not an analogep checkpoint (not a .npz archive")
    assert "pickle" not in line


@pytest.mark.parametrize(
    "name, text, fragment",
    [
        ("config.yaml", "relax: [fast\n", "config.yaml: not valid YAML (line 2: expected ',' or ']'"),
        ("config.yaml", "- a\n- b\n", "config.yaml: expected a mapping of keys, got list"),
        ("config.yaml", "relax: fast\n", None),  # no solver mapping: shown as "?"
        ("quality.json", '{"confidence": 0.9', "quality.json: not valid JSON"),
        ("quality.json", "[0.9]", "quality.json: expected a mapping of keys, got list"),
        ("quality.json", '{"confidence": "high"}', "quality.json: confidence is 'high'"),
        ("quality.json", b"\x89PNG\r\n\x1a\n", "quality.json: not valid JSON"),
        ("metrics.jsonl", "[1, 2]\n", "metrics.jsonl:1: not a metrics record"),
        ("metrics.jsonl", '{"step": 1, "loss": "low"}\n', "metrics.jsonl:1: not a metrics record (loss is not a number)"),
    ],
)
def test_compare_reads_a_broken_run_file_as_one_line(name, text, fragment, run_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in run_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    result = invoke("compare", run_dir, broken, "--plot", tmp_path / "c.png", "--json")
    if fragment is None:
        assert_ok(result)
        assert json.loads(result.stdout)["runs"][1]["solver"] == "?"
    else:
        assert_one_line_error(result, str(broken / name) if name != "metrics.jsonl" else "metrics.jsonl", fragment)


# --- samples on the wrong scale -------------------------------------------------------------


def test_evaluate_reports_and_warns_about_samples_outside_the_data_range(tmp_path):
    held = split_digits().x_held[:200]
    real, scaled = tmp_path / "real.npy", tmp_path / "scaled.npy"
    np.save(real, held.astype(np.float32))
    np.save(scaled, held.astype(np.float32) * 1e6)
    result = invoke("evaluate", scaled, "--json")
    assert_ok(result)
    assert json.loads(result.stdout)["outside_range"] == 1.0
    assert result.stderr.startswith("warning: 100% of the samples have pixels beyond [-1, 1]")
    result = invoke("evaluate", real, "--json")
    assert_ok(result)
    report = json.loads(result.stdout)
    assert report["outside_range"] == 0.0 and report["reference"]["outside_range"] == 0.0
    assert result.stderr == ""


def test_the_range_share_counts_samples_beyond_the_tolerance():
    x = np.zeros((4, 64))
    x[0, 0] = 1.0 + RANGE_TOLERANCE + 0.01  # out
    x[1, 5] = -(1.0 + RANGE_TOLERANCE + 0.01)  # out
    x[2, 3] = 1.0 + RANGE_TOLERANCE / 2  # over-shoot a trained model makes: in
    report = evaluate_samples(x)
    assert report.outside_range == 0.5
    assert "outside [-1, 1]" in report.format() and "50.0%" in report.format()


def test_evaluate_refuses_integer_samples(tmp_path):
    """Integer pixels (raw digits 0..16) were scored as if on the [-1, 1] scale."""
    path = tmp_path / "ints.npy"
    np.save(path, np.full((10, 64), 8, dtype=np.int64))
    assert_one_line_error(invoke("evaluate", path), "ints.npy", "dtype int64, not floating point", "x/16*2 - 1")
    with pytest.raises(ValueError, match="not floating point"):
        evaluate_samples(np.zeros((10, 64), dtype=np.uint8))


# --- one validation of a checkpoint, used by every command that loads one (issue 23) -----------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A real run folder of two tiny steps (Adam state, the batch stream's state)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    analogep.train(load_spec(TINY).replace(train={"steps": 2, "batch": 16}), out)
    return out


def _edited_run(run: Path, folder: Path, edit) -> Path:
    """A copy of `run` whose checkpoint's arrays and metadata went through `edit(arrays, meta)`."""
    folder.mkdir()
    (folder / "config.yaml").write_bytes((run / "config.yaml").read_bytes())
    with np.load(run / "checkpoint.npz") as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta = edit(arrays, meta)
    arrays["meta"] = np.array(json.dumps(meta))
    with open(folder / "checkpoint.npz", "wb") as f:
        np.savez(f, **arrays)
    return folder


def _set(**changes):
    def edit(arrays, meta):
        meta.update(changes)
        return meta
    return edit


def _drop(key):
    def edit(arrays, meta):
        meta.pop(key)
        return meta
    return edit


def _array(name, value=None):
    def edit(arrays, meta):
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value(arrays.get(name))
        return meta
    return edit


CHECKPOINT_EDITS = {  # the edit, and what the one line says
    "no config": (_drop("config"), "holds no config"),
    "no rng_state": (_drop("rng_state"), "its rng_state is not numpy PCG64's"),
    "step not an integer": (_set(step="7"), "its step is '7'; must be an integer >= 0"),
    "negative step": (_set(step=-3), "its step is -3; must be an integer >= 0"),
    "fractional step": (_set(step=2.5), "its step is 2.5"),
    "skipped not steps": (_set(skipped=["x"]), "its skipped is ['x']"),
    "bad_steps not an integer": (_set(bad_steps=None), "its bad_steps is None"),
    "meta a list": (lambda arrays, meta: [meta], "its metadata is a list, not a mapping"),
    "bad stored YAML": (_set(config="train: [1\n"), "its stored config is not valid YAML"),
    "another generator": (_set(rng_state={"bit_generator": "MT19937", "state": {}}), "(got 'MT19937')"),
    "optimizer state missing": (_array("optim/m/W0"), "its optimizer state lacks m/W0"),
    "optimizer state of another shape": (_array("optim/v/W1", lambda a: a[:, :3]), "its optimizer state has shapes"),
    "negative Adam t": (_array("optim/t", lambda a: np.array(-4)), "Adam step count t = -4"),
    "integer W0": (_array("param/W0", lambda a: a.astype(np.int64)), "parameters of dtype {'W0': 'int64'}"),
    "W0 of another shape": (_array("param/W0", lambda a: a[:8]), "do not fit the model"),
    "b1 missing": (_array("param/b1"), "(missing b1)"),
    "an extra parameter": (_array("param/W9", lambda a: np.zeros(3, np.float32)), "(extra W9)"),
}


@pytest.mark.parametrize("edit", list(CHECKPOINT_EDITS), ids=list(CHECKPOINT_EDITS))
def test_a_hand_edited_or_foreign_checkpoint_is_one_line_for_every_command(edit, trained, tmp_path):
    """Before: tracebacks (a missing config or rng_state, a non-integer step, meta that is a
    list, bad YAML, another generator's state, missing or wrong-shape optimizer state);
    silently accepted (step -3 then trained 313 steps, an int64 W0 lost its update, a
    negative Adam t); and `evaluate` did not check the parameters at all."""
    change, fragment = CHECKPOINT_EDITS[edit]
    run = _edited_run(trained, tmp_path / "run", change)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    for command in (
        ["train", "--out", run, "--resume", "--steps", 4, "--no-samples"],
        ["sample", run, "--n", 2, "--out", tmp_path / "s.png"],
        ["evaluate", run, "--n", 2],
        ["compile", "--checkpoint", run, "--out", tmp_path / "decks"],
        ["robustness", run, "--sweep", "variability=0", "--n", 2],
        ["gradcheck", run, "--batch", 2],
    ):
        result = invoke(*command)
        if command[0] == "train":  # its banner comes first: the resumed run's config.yaml was fine
            result.stderr_bytes = b"\n".join(l for l in result.stderr_bytes.splitlines() if not l.startswith(b"analogep: "))
        assert_one_line_error(result, str(run / "checkpoint.npz"), fragment)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.name != ".lock"} == before  # nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# --- outputs a user did not name do not replace recorded results (issue 23) ------------------------


@pytest.fixture
def finished(trained, tmp_path) -> Path:
    """A copy of the trained run with its recorded results: samples.png and quality.json."""
    run = tmp_path / "finished"
    run.mkdir()
    for p in trained.iterdir():
        if p.is_file() and p.name != ".lock":
            (run / p.name).write_bytes(p.read_bytes())
    (run / "samples.png").write_bytes(b"the run's own samples")
    (run / "quality.json").write_text('{"n_samples": 1000, "step": 2, "confidence": 0.5, "classes_covered": 7, "frechet": 9.0}\n')
    return run


def test_evaluate_with_other_settings_writes_beside_the_runs_quality_json(finished):
    """Before: `evaluate RUN --n 200` replaced the run's n = 1000 quality.json, which
    `compare` then read as the run's quality."""
    recorded = (finished / "quality.json").read_bytes()
    result = invoke("evaluate", finished, "--n", 20, "--seed", 3)
    assert_ok(result)
    assert (finished / "quality.json").read_bytes() == recorded
    report = json.loads((finished / "quality-n20-seed3.json").read_text())
    assert report["n_samples"] == 20 and report["step"] == 2
    assert result.stdout.splitlines()[-1] == f"report -> {finished / 'quality-n20-seed3.json'}"


def test_sample_without_out_never_replaces_the_runs_samples_png(finished, tmp_path):
    """Before: `sample RUN --save x.npy` without --out replaced RUN/samples.png."""
    assert_ok(invoke("sample", finished, "--n", 3, "--save", tmp_path / "x.npy"))
    assert (finished / "samples.png").read_bytes() == b"the run's own samples"
    assert (tmp_path / "x.png").read_bytes().startswith(b"\x89PNG")  # the image of the samples saved, beside them
    result = invoke("sample", finished, "--n", 3, "--t1", 0.5)
    assert_ok(result)
    assert (finished / "samples.png").read_bytes() == b"the run's own samples"
    assert f"to {finished / 'samples-n3-t10.5.png'}" in result.stdout


def test_compile_without_out_leaves_the_reviewed_netlists_alone(tmp_path, monkeypatch):
    """Before: compile without --out wrote into netlists/<name>, the repository's reviewed
    golden decks."""
    reviewed = tmp_path / "netlists" / "tiny"
    reviewed.mkdir(parents=True)
    (reviewed / "free.cir").write_text("the reviewed deck\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("compile", TINY, "--json")
    assert_ok(result)
    assert (reviewed / "free.cir").read_text() == "the reviewed deck\n"
    summary = json.loads(result.stdout)
    assert summary["out"] == str(Path("decks") / "tiny") and "free.cir" in summary["files"]
    assert (tmp_path / "decks" / "tiny" / "free.cir").read_text().startswith("analogep tiny")


# --- more one-line refusals (issue 23) -----------------------------------------------------------


def test_a_timeout_the_system_cannot_wait_is_refused_with_the_key(tmp_path):
    """Before: `check` with circuit.timeout 1e7 was an OverflowError traceback in the pool."""
    config = tmp_path / "slow.yaml"
    config.write_text(TINY.read_text() + "circuit:\n  timeout: 1.0e+7\n")
    assert_one_line_error(invoke("check", config, "--n", 1, "--plot", tmp_path / "c.png"), "circuit.timeout", "86400")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slow.yaml"]


def test_compare_of_runs_that_share_no_logged_step(run_dir, tmp_path):
    """Before: a zero-size array traceback in the plot."""
    later = tmp_path / "later"
    later.mkdir()
    (later / "config.yaml").write_bytes((run_dir / "config.yaml").read_bytes())
    (later / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in (5, 6)))
    result = invoke("compare", run_dir, later, "--plot", tmp_path / "c.png")
    assert_ok(result)
    assert f"{later}: no step in common with {run_dir}" in result.stdout
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")


def test_samples_that_cannot_fit_in_memory_are_refused_with_the_estimate(ckpt, tmp_path):
    """Before: `sample --n 1000000000000` without --save was a MemoryError traceback."""
    line = assert_one_line_error(invoke("sample", ckpt, "--n", 10**12, "--out", tmp_path / "s.png"),
                                 "--n 1,000,000,000,000 samples held in memory need 256 TB of memory", "--save")
    assert "free" in line
    assert list(tmp_path.iterdir()) == []


def test_compile_refuses_a_model_whose_decks_cannot_fit_with_the_estimate(tmp_path):
    """Before: model.sizes [64, 100000] was a MemoryError after 51 s (20,000: minutes with no word)."""
    config = tmp_path / "huge.yaml"
    config.write_text("name: huge\nmodel:\n  sizes: [64, 10000000]\n")
    assert_one_line_error(invoke("compile", config, "--out", tmp_path / "decks"),
                          "the decks of 650,000,064 parameters need 1.95 TB of memory", "model.sizes")
    assert not (tmp_path / "decks").exists()


def test_robustness_refuses_a_sweep_the_numpy_backend_does_not_model(trained, tmp_path):
    """Before: --sweep wire_resistance=0,1 gave identical rows and no warning."""
    assert_one_line_error(invoke("robustness", trained, "--sweep", "wire_resistance=0,1", "--n", 2),
                          "--sweep wire_resistance: the numpy backend", "analogep check")
    with pytest.raises(ConfigError, match="--sweep wire_resistance"):
        analogep.robustness(load_spec(TINY), build_energy(load_spec(TINY).model).init_params(np.random.default_rng(0)),
                            sweeps={"wire_resistance": [0.0, 1.0]}, n=2)


# --- messages that said something else than what happened (issue 23) -----------------------------


def test_the_banner_names_the_batch_training_uses(tmp_path):
    """Before: `batch: 100000` was echoed as 'batch 100000', though 1797 was used."""
    result = invoke("train", TINY, "--batch", 100000, "--steps", 1, "--out", tmp_path / "run", "--no-samples")
    assert_ok(result)
    assert "batch 1797 (the whole digits set; train.batch 100000 is larger)" in result.stderr.splitlines()[0]


@pytest.mark.parametrize("command", [
    ["train", str(TINY), "--out", ""],
    ["sample", "{ckpt}", "--out", ""],
    ["sample", "{ckpt}", "--save", ""],
    ["compile", str(TINY), "--out", ""],
])
def test_an_empty_output_name_is_refused(command, ckpt, tmp_path, monkeypatch):
    """Before: `--out ""` silently went to runs/<name>."""
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(invoke(*[a.format(ckpt=ckpt) for a in command]), "an empty name")
    assert list(tmp_path.iterdir()) == []


def test_evaluate_of_a_file_it_cannot_read_names_what_it_reads(tmp_path):
    """Before: `evaluate x.csv` said 'not an analogep checkpoint'."""
    csv = tmp_path / "samples.csv"
    csv.write_text("0.1,0.2\n")
    assert_one_line_error(invoke("evaluate", csv), "evaluate reads a run folder, a checkpoint (.npz) or samples (.npy",
                          "this is a .csv file")


def test_euler_with_a_budget_too_short_names_the_key_to_raise(tmp_path):
    """Before: `train examples/tiny.yaml --solver euler` skipped every step and stopped
    without saying that tiny's relaxation budget is too short for euler."""
    result = invoke("train", TINY, "--solver", "euler", "--batch", 16, "--out", tmp_path / "run", "--no-samples")
    assert result.exit_code == 2 and "Traceback" not in result.output
    error = result.stderr.splitlines()[-1]
    assert error.startswith("error: training stopped at step 20: 20 consecutive steps")
    assert "the euler relaxation ran out of its budget (relax.free_steps 100" in error
    assert "raise relax.free_steps" in error


def test_progress_off_a_terminal_says_how_far_sampling_is(ckpt, tmp_path):
    """Before: off a terminal `sample` and `evaluate` printed a bare 'sample' line."""
    result = invoke("sample", ckpt, "--n", 3, "--dt", 0.05, "--out", tmp_path / "s.png")
    assert_ok(result)
    lines = result.stderr.splitlines()
    assert lines[-1] == "sample: 20/20 steps (100%)  ETA 0 s" and len(lines) <= 11
    result = invoke("evaluate", ckpt, "--n", 3)
    assert_ok(result)
    assert result.stderr.splitlines()[-1] == "evaluate: sampling: 20/20 steps (100%)  ETA 0 s"


def test_steps_per_second_count_the_steps_not_the_start_up(monkeypatch):
    """Before: the rate counted start-up (loading, building the backend) as training time,
    so the first ETAs were wrong: 100 s of start-up made a 0.5 s step read 0.01 steps/s."""
    from analogep.cli.common import TrainBar

    lines = []
    monkeypatch.setattr("click.echo", lambda message, err=False: lines.append(message))
    bar = TrainBar(total=10)
    bar.t0 -= 100.0  # a start-up of 100 s before the first step
    bar.lines.every = 1
    bar.update(1, {"loss": 1.0, "step_time": 0.5})
    rate = float(lines[-1].split("steps/s")[0].split()[-1])
    assert rate > 1.0  # one step of 0.5 s: 2 steps/s, not 1/100.5


def test_strict_json_everywhere_a_number_may_be_nan(run_dir, tmp_path):
    """compare --json of runs without step times printed a bare NaN (seconds per step)."""
    result = invoke("compare", run_dir, run_dir, "--plot", tmp_path / "c.png", "--json")
    assert_ok(result)

    def refuse(constant):
        raise ValueError(constant)

    report = json.loads(result.stdout, parse_constant=refuse)
    assert report["runs"][0]["seconds_per_step"] is None
