"""The training loop: learning, logging, checkpoints, exact resume, trouble, optimizer, clipping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from analogep.cli.app import main
from analogep.config import OptimizerSpec, load_spec
from analogep.errors import AnalogepWarning, CheckpointError
from analogep.model.factory import build_energy
from analogep.training.checkpoint import (
    CHECKPOINT_NAME,
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from analogep.training.loop import train
from analogep.training.optim import SGD, Adam, clip_by_global_norm
from analogep.training.runlog import METRICS_NAME, read_metrics

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny():
    """examples/tiny.yaml with a smaller batch: a few steps take a fraction of a second."""
    return load_spec(ROOT / "examples" / "tiny.yaml").replace(train={"batch": 64, "checkpoint_every": 4})


def snapshot(folder: Path) -> dict:
    """Every file's bytes and mtime, to prove a folder was not touched."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def without_time(records: list[dict]) -> list[dict]:
    """Records without their clocks (time, step_time): what must repeat exactly."""
    return [{k: v for k, v in r.items() if k not in ("time", "step_time")} for r in records]


def test_a_tiny_run_lowers_the_flow_loss(tiny, tmp_path):
    result = train(tiny.replace(train={"steps": 20, "batch": 128}), tmp_path)
    losses = [r["loss"] for r in result.records]
    assert len(losses) == 20 and result.stopped is None
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.8 * first, losses


def test_metrics_jsonl_has_one_object_per_logged_step(tiny, tmp_path):
    result = train(tiny.replace(train={"steps": 7, "log_every": 3}), tmp_path)
    lines = (tmp_path / METRICS_NAME).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) for r in records)
    assert [r["step"] for r in records] == [3, 6, 7]  # every log_every steps, and the last step
    for r in records:
        assert isinstance(r["loss"], float) and np.isfinite(r["loss"])
        assert "skipped" not in r
        assert 0 < r["step_time"] <= r["time"]
    assert without_time(records) == without_time(result.records)
    assert read_metrics(tmp_path) == records
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / CHECKPOINT_NAME).is_file()
    assert load_checkpoint(tmp_path).step == 7


def assert_same_params(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype
        assert np.array_equal(a[k], b[k]), k


def test_resume_equals_the_uninterrupted_run_bit_for_bit(tiny, tmp_path):
    n, k = 10, 5
    full = train(tiny.replace(train={"steps": n}), tmp_path / "full")
    part = train(tiny.replace(train={"steps": k}), tmp_path / "split")
    assert part.step == k
    with pytest.warns(AnalogepWarning, match=f"train.steps changed from {k} to {n}"):
        resumed = train(tiny.replace(train={"steps": n}), tmp_path / "split", resume=True)
    assert resumed.step == n
    assert_same_params(full.params, resumed.params)
    full_ckpt, split_ckpt = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "split")
    assert_same_params(full_ckpt.params, split_ckpt.params)
    assert_same_params(full_ckpt.optimizer, split_ckpt.optimizer)
    assert full_ckpt.rng_state == split_ckpt.rng_state
    a, b = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "split")
    assert [r["step"] for r in b] == list(range(1, n + 1))
    assert without_time(a) == without_time(b)
    # the saved config is the extended one
    assert load_spec(tmp_path / "split" / "config.yaml").train.steps == n


def test_resume_after_a_crash_drops_the_records_after_the_checkpoint(tiny, tmp_path):
    n = 10
    full = train(tiny.replace(train={"steps": n}), tmp_path / "full")

    class Crash(Exception):
        pass

    def crash_at_6(step, record):
        if step == 6:
            raise Crash

    spec = tiny.replace(train={"steps": n})
    with pytest.raises(Crash):
        train(spec, tmp_path / "crash", on_step=crash_at_6)
    assert load_checkpoint(tmp_path / "crash").step == 4  # checkpoint_every = 4
    assert [r["step"] for r in read_metrics(tmp_path / "crash")] == list(range(1, 7))
    resumed = train(spec, tmp_path / "crash", resume=True)
    assert_same_params(full.params, resumed.params)
    assert without_time(read_metrics(tmp_path / "full")) == without_time(read_metrics(tmp_path / "crash"))


def test_a_folder_holding_a_run_is_refused_without_resume(tiny, tmp_path):
    spec = tiny.replace(train={"steps": 2})
    train(spec, tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(spec, tmp_path)
    assert snapshot(tmp_path) == before
    # the same through the command line: exit 2, one clear line, nothing touched
    config = tmp_path.parent / f"{tmp_path.name}-tiny.yaml"
    config.write_text((ROOT / "examples" / "tiny.yaml").read_text())
    result = CliRunner().invoke(main, ["train", str(config), "--out", str(tmp_path), "--steps", "2"])
    assert result.exit_code == 2
    assert "already holds a run" in result.stderr and "--resume" in result.stderr
    assert "Traceback" not in result.output
    assert snapshot(tmp_path) == before


def test_trouble_stops_training_and_keeps_the_last_good_checkpoint(tiny, tmp_path):
    good = train(tiny.replace(train={"steps": 4}), tmp_path)
    good_optimizer = load_checkpoint(tmp_path).optimizer
    # an impossible convergence demand: every later step is untrustworthy
    bad = tiny.replace(train={"steps": 20, "max_residual": 1e-30, "max_bad_steps": 3})
    with pytest.warns(AnalogepWarning) as changes:  # each changed key is announced
        result = train(bad, tmp_path, resume=True)
    assert [str(w.message).split(": ", 1)[1] for w in changes] == [
        "train.steps changed from 4 to 20 on resume (config.yaml rewritten)",
        "train.max_residual changed from 0.001 to 1e-30 on resume: steps 5 on use 1e-30 "
        "(config.yaml rewritten; metrics.jsonl records the change at step 5)",
        "train.max_bad_steps changed from 20 to 3 on resume (config.yaml rewritten)",
    ]
    assert result.step == 7
    assert result.stopped is not None
    assert "3 consecutive steps" in result.stopped and "parameters kept from step 4" in result.stopped
    assert "unconverged" in result.stopped
    assert_same_params(result.params, good.params)
    ckpt = load_checkpoint(tmp_path)
    assert_same_params(ckpt.params, good.params)
    assert_same_params(ckpt.optimizer, good_optimizer)  # skipped steps did not touch Adam either
    skipped = [r for r in read_metrics(tmp_path) if "skipped" in r]
    assert [r["step"] for r in skipped] == [5, 6, 7]


def test_trouble_through_the_command_line_exits_2_with_the_reason(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(
        (ROOT / "examples" / "tiny.yaml").read_text().replace("  batch: 128", "  batch: 32\n  max_residual: 1.0e-30\n  max_bad_steps: 2")
    )
    assert "max_residual: 1.0e-30" in config.read_text()
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(config), "--out", str(out), "--steps", "10"])
    assert result.exit_code == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: training stopped at step 2")
    assert "untrustworthy" in last
    assert "Traceback" not in result.output
    assert load_checkpoint(out).step == 2
    assert not (out / "samples.png").exists()  # no samples from a stopped run


# --- checkpoint ----------------------------------------------------------------------------------


def test_checkpoint_round_trip(tiny, tmp_path):
    rng = np.random.default_rng(3)
    rng.random(5)
    params = build_energy(tiny.model).init_params(np.random.default_rng(1))
    optim = Adam(tiny.train.optimizer, params).state_dict() | {"t": np.array(7), "m/W0": np.full_like(params["W0"], 0.5)}
    save_checkpoint(tmp_path / "c.npz", Checkpoint(params, optim, rng.bit_generator.state, 7, tiny, bad_steps=2))
    back = load_checkpoint(tmp_path / "c.npz")
    assert_same_params(back.params, params)
    assert back.optimizer["t"] == 7 and np.array_equal(back.optimizer["m/W0"], optim["m/W0"])
    assert back.step == 7 and back.bad_steps == 2 and back.spec == tiny
    again = np.random.default_rng()
    again.bit_generator.state = back.rng_state
    assert np.array_equal(again.random(4), rng.random(4))
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary files left


def test_junk_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not an analogep checkpoint"):
        load_checkpoint(tmp_path / "junk.npz")
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        load_checkpoint(tmp_path / "missing")


# --- optimizer and clipping ----------------------------------------------------------------------


def test_adam_matches_a_hand_written_adam_on_a_quadratic():
    a = np.array([1.0, 4.0, 0.25, 10.0])
    spec = OptimizerSpec(lr=0.1, betas=(0.9, 0.95), eps=1e-8)
    params = {"p": np.array([1.0, -2.0, 3.0, 0.5])}
    opt = Adam(spec, params)
    p, m, v = params["p"].copy(), np.zeros(4), np.zeros(4)
    for t in range(1, 6):
        g = a * p  # gradient of 1/2 sum a p^2
        m = 0.9 * m + 0.1 * g
        v = 0.95 * v + 0.05 * g * g
        p = p - 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.95**t)) + 1e-8)
        opt.step(params, {"p": a * params["p"]})
        np.testing.assert_allclose(params["p"], p, rtol=1e-14, atol=1e-15)
    assert opt.t == 5
    # the first step moves every coordinate by lr (bias-corrected m/sqrt(v) = sign(g))
    fresh = {"p": np.array([1.0, -2.0, 3.0, 0.5])}
    Adam(spec, fresh).step(fresh, {"p": a * fresh["p"]})
    np.testing.assert_allclose(np.abs(fresh["p"] - np.array([1.0, -2.0, 3.0, 0.5])), 0.1, rtol=1e-6)


def test_adam_state_dict_continues_identically():
    spec = OptimizerSpec(lr=0.05)
    a = {"p": np.array([1.0, -1.0, 2.0])}
    b = {"p": a["p"].copy()}
    opt_a = Adam(spec, a)
    for _ in range(3):
        opt_a.step(a, {"p": 3 * a["p"]})
    opt_b = Adam(spec, b)
    for _ in range(3):
        opt_b.step(b, {"p": 3 * b["p"]})
    opt_c = Adam(spec, b)
    opt_c.load_state_dict(opt_b.state_dict())
    c = {"p": b["p"].copy()}
    for _ in range(3):
        opt_a.step(a, {"p": 3 * a["p"]})
        opt_c.step(c, {"p": 3 * c["p"]})
    np.testing.assert_array_equal(a["p"], c["p"])


def test_sgd_is_plain_gradient_descent():
    params = {"p": np.array([1.0, 2.0])}
    SGD(OptimizerSpec(name="sgd", lr=0.5), params).step(params, {"p": np.array([1.0, -4.0])})
    np.testing.assert_array_equal(params["p"], [0.5, 4.0])


def test_gradient_clipping_caps_the_global_norm():
    grad = {"a": np.array([3.0, 0.0], dtype=np.float32), "b": np.array([[4.0]], dtype=np.float32)}  # norm 5
    clipped, norm = clip_by_global_norm(grad, 1.0)
    assert norm == pytest.approx(5.0)  # the norm before clipping is reported
    total = np.sqrt(sum(np.sum(v.astype(np.float64) ** 2) for v in clipped.values()))
    assert total == pytest.approx(1.0, rel=1e-6)
    assert total <= 1.0 + 1e-6
    np.testing.assert_allclose(clipped["a"], [0.6, 0.0], rtol=1e-6)  # direction kept
    np.testing.assert_allclose(clipped["b"], [[0.8]], rtol=1e-6)
    assert all(v.dtype == np.float32 for v in clipped.values())
    # below the cap, and with clipping off (0), the gradient is untouched
    small, norm = clip_by_global_norm(grad, 10.0)
    assert norm == pytest.approx(5.0) and all(np.array_equal(small[k], grad[k]) for k in grad)
    off, _ = clip_by_global_norm(grad, 0.0)
    assert all(np.array_equal(off[k], grad[k]) for k in grad)
