"""train.optimizer.schedule: the rate each step takes (training/schedule.py), in the loop,
through a resume, in the dumped config, and refused where it cannot apply."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from analogep.config import OptimizerSpec, load_spec
from analogep.config.load import dump_spec
from analogep.training.checkpoint import load_checkpoint
from analogep.training.loop import train
from analogep.training.optim import Adam
from analogep.training.runlog import read_metrics
from analogep.training.schedule import learning_rate
from tests.clirun import TINY, assert_one_line_error, invoke


@pytest.fixture(scope="module")
def tiny():
    return load_spec(TINY).replace(train={"batch": 64, "checkpoint_every": 4})


def test_constant_is_lr_at_every_step():
    spec = OptimizerSpec(lr=3e-3)
    assert [learning_rate(spec, k, 10) for k in (1, 5, 10, 11)] == [3e-3] * 4


def test_cosine_starts_at_lr_halves_at_the_middle_and_ends_near_final_lr():
    spec = OptimizerSpec(lr=1e-2, schedule="cosine", final_lr=1e-4)
    steps = 100
    rates = [learning_rate(spec, k, steps) for k in range(1, steps + 1)]
    assert rates[0] == pytest.approx(1e-2)
    assert learning_rate(spec, 51, steps) == pytest.approx(0.5 * (1e-2 + 1e-4))
    assert rates[-1] == pytest.approx(1e-4 + 0.5 * (1e-2 - 1e-4) * (1 + math.cos(math.pi * 99 / 100)))
    assert all(a > b for a, b in zip(rates, rates[1:]))  # strictly decreasing
    assert learning_rate(spec, steps + 50, steps) == pytest.approx(1e-4)  # past the end: the floor


def test_adam_at_a_given_rate_equals_adam_whose_spec_has_that_rate():
    rng = np.random.default_rng(0)
    p0 = {"w": rng.standard_normal(5)}
    grads = [{"w": rng.standard_normal(5)} for _ in range(3)]
    a, b = {"w": p0["w"].copy()}, {"w": p0["w"].copy()}
    opt_a, opt_b = Adam(OptimizerSpec(lr=1e-3), a), Adam(OptimizerSpec(lr=7e-3), b)
    for g in grads:
        opt_a.step(a, g, 7e-3)
        opt_b.step(b, g)
    assert np.array_equal(a["w"], b["w"])


def test_a_cosine_run_logs_each_steps_rate_and_trains(tiny, tmp_path):
    spec = tiny.replace(train={"steps": 12, "optimizer": {"lr": 1e-2, "schedule": "cosine", "final_lr": 1e-3}})
    result = train(spec, tmp_path)
    rates = [r["lr"] for r in result.records]
    assert rates == pytest.approx([learning_rate(spec.train.optimizer, k, 12) for k in range(1, 13)])
    assert rates[0] == pytest.approx(1e-2) and rates[-1] < 1.2e-3
    constant = train(tiny.replace(train={"steps": 12, "optimizer": {"lr": 1e-2}}), tmp_path / "constant")
    assert "lr" not in constant.records[0]  # the paper's constant rate: records as before
    # the same first step, then smaller steps: the parameters part after step 1
    diff = [np.abs(result.params[k] - constant.params[k]).max() for k in result.params]
    assert max(diff) > 0


def test_a_resumed_cosine_run_equals_the_uninterrupted_one(tiny, tmp_path):
    spec = tiny.replace(train={"steps": 10, "optimizer": {"lr": 1e-2, "schedule": "cosine"}})
    full = train(spec, tmp_path / "full")

    class Crash(Exception):
        pass

    def crash_at_6(step, record):
        if step == 6:
            raise Crash

    with pytest.raises(Crash):
        train(spec, tmp_path / "split", on_step=crash_at_6)
    assert load_checkpoint(tmp_path / "split").step == 4
    resumed = train(spec, tmp_path / "split", resume=True)
    for k in full.params:
        assert np.array_equal(full.params[k], resumed.params[k]), k
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("time", "step_time")} for r in rs]  # noqa: E731
    assert strip(read_metrics(tmp_path / "full")) == strip(read_metrics(tmp_path / "split"))


def test_the_schedule_keys_are_dumped_only_when_set(tiny):
    assert "schedule:" not in dump_spec(tiny) and "final_lr" not in dump_spec(tiny)
    cosine = tiny.replace(train={"optimizer": {"schedule": "cosine", "final_lr": 1e-5}})
    text = dump_spec(cosine)
    assert "schedule: cosine" in text and "final_lr: 1.0e-05" in text


def write_config(path: Path, optimizer: str, extra: str = "") -> Path:
    """examples/tiny.yaml with `optimizer` (indented lines) as its train.optimizer section."""
    text = TINY.read_text().replace("  optimizer:\n    lr: 3.0e-3\n", f"{extra}  optimizer:\n{optimizer}", 1)
    assert text != TINY.read_text()
    path.write_text(text)
    return path


def test_a_final_rate_not_below_lr_is_one_line(tmp_path):
    config = write_config(tmp_path / "bad.yaml", "    lr: 1.0e-3\n    schedule: cosine\n    final_lr: 2.0e-3\n")
    result = invoke("train", config, "--out", tmp_path / "run", "--steps", 2)
    assert_one_line_error(result, "train.optimizer.final_lr", "must be below train.optimizer.lr")
    assert not (tmp_path / "run").exists()


def test_an_unknown_schedule_is_one_line(tmp_path):
    config = write_config(tmp_path / "bad.yaml", "    schedule: linear\n")
    result = invoke("train", config, "--out", tmp_path / "run", "--steps", 2)
    assert_one_line_error(result, "train.optimizer.schedule", "cosine")
    assert not (tmp_path / "run").exists()


def test_a_schedule_on_the_substrate_update_is_one_line(tmp_path):
    config = write_config(tmp_path / "bad.yaml", "    schedule: cosine\n", extra="  update: substrate\n")
    result = invoke("check", config)
    assert_one_line_error(result, "train.optimizer.schedule", "substrate")
