"""Every command end to end on examples/tiny.yaml, and bad input as one clean line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from analogep.cli.app import main
from analogep.config import load_spec
from analogep.training.checkpoint import load_checkpoint
from analogep.training.runlog import read_metrics

from clirun import TINY, assert_ok, assert_one_line_error, invoke

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CORE_COMMANDS = ["train", "sample", "evaluate", "gradcheck", "compare"]


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One short tiny.yaml run shared by the commands that read a run."""
    out = tmp_path_factory.mktemp("cli") / "run"
    result = invoke("train", TINY, "--out", out, "--steps", 4)
    assert_ok(result)
    return out


def test_train_writes_the_run_files(run_dir):
    for name in ("config.yaml", "metrics.jsonl", "checkpoint.npz", "samples.npy"):
        assert (run_dir / name).is_file(), name
    assert is_png(run_dir / "loss.png") and is_png(run_dir / "samples.png")
    spec = load_spec(run_dir / "config.yaml")
    assert spec == load_spec(TINY).replace(train={"steps": 4})  # resolved config, override applied
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2, 3, 4]
    assert load_checkpoint(run_dir).step == 4
    samples = np.load(run_dir / "samples.npy")
    assert samples.shape == (spec.generate.n, 64) and np.all(np.isfinite(samples))


def test_train_logs_progress_lines_when_stderr_is_not_a_terminal(tmp_path):
    """Under nohup or CI a bar would show only its label: progress comes as lines instead."""
    result = invoke("train", TINY, "--out", tmp_path / "run", "--steps", 40, "--no-samples")
    assert_ok(result)
    lines = [l for l in result.stderr.splitlines() if l.startswith("train: step ")]
    assert 20 <= len(lines) <= 21  # every 5% of the steps
    assert lines[-1].startswith("train: step 40/40  loss ") and "steps/s" in lines[-1] and "ETA" in lines[-1]


def test_train_json_summary_and_resume(tmp_path):
    out = tmp_path / "run"
    first = invoke("train", TINY, "--out", out, "--steps", 2, "--no-samples", "--json")
    assert_ok(first)
    summary = json.loads(first.stdout)
    assert summary["step"] == 2 and summary["stopped"] is None and summary["n_params"] == 64 * 16 + 16 * 16 + 96
    assert not (out / "samples.png").exists()  # --no-samples
    resumed = invoke("train", "--resume", "--out", out, "--steps", 4, "--no-samples", "--json")
    assert_ok(resumed)
    assert json.loads(resumed.stdout)["step"] == 4
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3, 4]
    assert load_checkpoint(out).step == 4
    assert load_spec(out / "config.yaml").train.steps == 4
    # the split run equals an uninterrupted one
    whole = tmp_path / "whole"
    assert_ok(invoke("train", TINY, "--out", whole, "--steps", 4, "--no-samples"))
    a, b = load_checkpoint(out).params, load_checkpoint(whole).params
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_resume_needs_a_run(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(invoke("train", "--resume", "--out", empty), "nothing to resume")
    result = invoke("train", "--resume")
    assert result.exit_code == 2 and "--resume needs --out" in result.output


def test_sample_run_dir_saves_n_by_64(run_dir, tmp_path):
    npy, png = tmp_path / "s.npy", tmp_path / "s.png"
    result = invoke("sample", run_dir, "--n", 10, "--save", npy, "--out", png, "--json")
    assert_ok(result)
    info = json.loads(result.stdout)
    assert info["n"] == 10 and info["npy"] == str(npy) and info["png"] == str(png)
    x = np.load(npy)
    assert x.shape == (10, 64) and x.dtype == np.float32 and np.all(np.isfinite(x))
    assert is_png(png)
    # same seed, same samples
    again = tmp_path / "again.npy"
    assert_ok(invoke("sample", run_dir, "--n", 10, "--save", again, "--out", png))
    assert np.array_equal(np.load(again), x)


def test_sample_from_a_checkpoint_file(run_dir, tmp_path):
    ckpt = tmp_path / "copy.npz"
    shutil.copy(run_dir / "checkpoint.npz", ckpt)
    npy = tmp_path / "s.npy"
    result = invoke("sample", ckpt, "--n", 6, "--t1", 0.2, "--save", npy)
    assert_ok(result)
    assert is_png(tmp_path / "s.png")  # default with --save: its name as .png (the run's samples.png is left alone)
    assert np.load(npy).shape == (6, 64)
    assert "wrote 6 samples" in result.stdout


def test_evaluate_a_npy_of_samples(run_dir, tmp_path):
    npy = tmp_path / "s.npy"
    assert_ok(invoke("sample", run_dir, "--n", 10, "--save", npy, "--out", tmp_path / "s.png"))
    result = invoke("evaluate", npy, "--json")
    assert_ok(result)
    report = json.loads(result.stdout)
    assert 0.0 < report["confidence"] <= 1.0
    assert isinstance(report["classes_covered"], int) and 0 <= report["classes_covered"] <= 10
    assert report["frechet"] >= 0.0
    assert report["n_samples"] == 10
    # the human-readable table too
    table = invoke("evaluate", npy)
    assert_ok(table)
    assert "confidence" in table.stdout and "Frechet" in table.stdout


def test_evaluate_a_run_dir(run_dir):
    result = invoke("evaluate", run_dir, "--n", 50, "--json")
    assert_ok(result)
    report = json.loads(result.stdout)
    assert report["n_samples"] == 50
    for key in ("confidence", "classes_covered", "frechet"):
        assert key in report
    assert json.loads((run_dir / "quality-n50.json").read_text()) == report  # not the run's quality.json (1000)
    assert report["step"] == 4  # the checkpoint judged (compare flags a report older than the run)


def test_gradcheck_on_the_tiny_config(tmp_path):
    result = invoke("gradcheck", TINY, "--json", "--batch", 8)
    assert_ok(result)
    report = json.loads(result.stdout)
    assert report["cosine"] >= 0.999
    assert report["float64_tight"]["cosine"] >= 0.999
    assert report["batch"] == 8 and report["phases"] == 3 and report["beta"] == 1.25e-3
    assert set(report["per_tensor"]) == {"b_x", "W0", "b0", "W1", "b1"}
    assert "beta_sweep" not in report


def test_gradcheck_on_trained_weights(run_dir):
    result = invoke("gradcheck", run_dir, "--json", "--batch", 8)
    assert_ok(result)
    report = json.loads(result.stdout)
    assert "step 4" in report["source"]
    assert report["cosine"] >= 0.999


def test_gradcheck_beta_sweep_writes_the_plot(tmp_path):
    plot = tmp_path / "sweep.png"
    result = invoke("gradcheck", TINY, "--batch", 4, "--beta-sweep", "--plot", plot, "--json")
    assert_ok(result)
    assert is_png(plot)
    sweep = json.loads(result.stdout)["beta_sweep"]
    assert len(sweep["betas"]) == len(sweep["two-phase"]) == len(sweep["three-phase"]) == 9
    assert sweep["plot"] == str(plot)
    # the text report says where the plot went
    text = invoke("gradcheck", TINY, "--batch", 4, "--beta-sweep", "--plot", plot)
    assert_ok(text)
    assert f"beta sweep -> {plot}" in text.stdout


def test_help_on_every_command():
    top = invoke("--help")
    assert_ok(top)
    assert "Equilibrium Propagation" in top.stdout
    for name in CORE_COMMANDS:
        assert name in main.commands
        assert name in top.stdout
    for name, command in main.commands.items():
        result = invoke(name, "--help")
        assert_ok(result)
        assert result.stdout.startswith(f"Usage: main {name}") or result.stdout.startswith("Usage: ")
        first_line = (command.help or "").strip().splitlines()[0]
        assert first_line, f"{name} has no help text"
        assert " ".join(first_line.split()) in " ".join(result.stdout.split()), name  # click re-wraps
        assert "--help" in result.stdout
    # the core commands explain their inputs
    assert "CONFIG" in invoke("train", "--help").stdout and "--resume" in invoke("train", "--help").stdout
    assert "RUN_DIR or CHECKPOINT" in invoke("sample", "--help").stdout
    assert ".npy" in invoke("evaluate", "--help").stdout
    assert "--beta-sweep" in invoke("gradcheck", "--help").stdout


def test_python_dash_m_runs_the_same_command_line():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "analogep", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Equilibrium Propagation" in out.stdout and "train" in out.stdout


# --- bad input -----------------------------------------------------------------------------------


def test_missing_checkpoint_is_one_line(tmp_path):
    assert_one_line_error(invoke("sample", tmp_path / "no-run"), "no checkpoint found")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(invoke("sample", tmp_path / "empty"), "no checkpoint found")
    assert_one_line_error(invoke("evaluate", tmp_path / "empty"), "no checkpoint found")
    assert_one_line_error(invoke("sample", tmp_path / "missing.npz"), "no checkpoint found")


def test_corrupt_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    assert_one_line_error(invoke("sample", bad), "not an analogep checkpoint")
    assert_one_line_error(invoke("gradcheck", bad), "not an analogep checkpoint")


def test_npy_with_the_wrong_shape_is_one_line(tmp_path):
    npy = tmp_path / "wrong.npy"
    np.save(npy, np.zeros((10, 3)))
    assert_one_line_error(invoke("evaluate", npy), str(npy), "(N, 64)")
    np.save(npy, np.zeros(64))
    assert_one_line_error(invoke("evaluate", npy), "(N, 64)")


def test_unreadable_npy_is_one_line(tmp_path):
    junk = tmp_path / "junk.npy"
    junk.write_text("not numpy")
    assert_one_line_error(invoke("evaluate", junk), "cannot read samples")
    assert_one_line_error(invoke("evaluate", tmp_path / "absent.npy"), "cannot read samples")


def test_non_existent_config_is_one_line(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert_one_line_error(invoke("train", missing, "--out", tmp_path / "run"), "no such config file")
    assert not (tmp_path / "run").exists()
    assert_one_line_error(invoke("gradcheck", missing), "no such config file")


def test_compare_reports_where_two_runs_part(run_dir, tmp_path):
    """The same run twice agrees at every step; a run with another seed parts at once."""
    other = tmp_path / "other-seed"
    assert_ok(invoke("train", TINY, "--out", other, "--steps", 4, "--seed", 7, "--no-samples"))
    plot = tmp_path / "cmp.png"
    result = invoke("compare", run_dir, run_dir, other, "--plot", plot, "--json")
    assert_ok(result)
    report = json.loads(result.output)
    same, parted = report["against_first"]
    assert same["same_loss_through_step"] == 4 and same["max_abs_loss_difference"] == 0.0
    assert parted["same_loss_through_step"] is None and parted["max_abs_loss_difference"] > 1e-4
    losses = [r["loss"] for r in read_metrics(other)]
    assert report["runs"][2]["final_loss"] == losses[-1]
    assert report["runs"][0]["solver"] == load_spec(TINY).relax.solver
    assert all(r["seconds_per_step"] > 0 for r in report["runs"])
    assert is_png(plot)
    text = invoke("compare", run_dir, other, "--plot", plot)
    assert_ok(text)
    assert "the losses differ (by more than 0.0001) from the first common step, 1," in text.output


def test_compare_refuses_a_folder_without_metrics(run_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(invoke("compare", run_dir, empty, "--plot", tmp_path / "c.png"), str(empty), "metrics.jsonl")
    assert_one_line_error(invoke("compare", run_dir, "--plot", tmp_path / "c.png"), "at least two")
    assert not (tmp_path / "c.png").exists()
