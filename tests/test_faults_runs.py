"""Fault injection on training runs and run folders: a garbled log, two writers, killed
writes, a shortened resume, a run that skips most steps, Ctrl-C, kill -9, a full disk and
an unwritable folder. Each must end in a clear line and a run that resumes to the same
numbers, never in lost records or a quiet success."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from analogep import api
from analogep.cli.app import main
from analogep.config import load_spec
from analogep.errors import AnalogepWarning, CheckpointError
from analogep.io import atomic_path
from analogep.model import build_energy
from analogep.training import loop
from analogep.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from analogep.training.interrupts import TrainingInterrupted
from analogep.training.lock import run_lock
from analogep.training.loop import train
from analogep.training.runlog import BAD_LINES_NAME, METRICS_NAME, RunLog, read_log, read_metrics

from clirun import invoke

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"
WAIT_S = 120  # a safety net against a hung child, never a timing assertion


@pytest.fixture(scope="module")
def tiny():
    """examples/tiny.yaml, small batch, a checkpoint every 4 steps: a step takes milliseconds."""
    return load_spec(TINY).replace(train={"batch": 16, "checkpoint_every": 4})


def config_file(folder: Path, spec, name: str = "run.yaml") -> Path:
    from analogep.config.load import dump_spec

    path = folder / name
    path.write_text(dump_spec(spec))
    return path


def error_line(result) -> str:
    """The run ended with exit 2 and one `error:` line (after train's banner), no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if not line.startswith(("analogep: training", "train: "))]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def without_time(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time", "step_time")} for r in records]


def assert_same_params(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def snapshot(folder: Path) -> dict:
    """Every file's bytes and mtime but the lock's (each holder writes its pid there)."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.name != ".lock"}


def logged_steps(out: Path) -> int:
    """The last step the log holds completely (0: none yet)."""
    try:
        data = (out / METRICS_NAME).read_bytes()
    except FileNotFoundError:
        return 0
    lines = data.split(b"\n")[:-1]
    return json.loads(lines[-1])["step"] if lines else 0


def wait_for_step(proc, out: Path, step: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while logged_steps(out) < step:
        assert proc.poll() is None if hasattr(proc, "poll") else proc.is_alive(), "the training process ended early"
        assert time.monotonic() < deadline, f"no step {step} in {out}"
        time.sleep(0.01)


def cli_process(*args) -> subprocess.Popen:
    """`analogep ARGS` in a fresh interpreter (stderr captured)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, "-c", "from analogep.cli import main; main()", *map(str, args)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


# --- 1. a bad line in metrics.jsonl ------------------------------------------------------------


def test_a_garbled_log_line_costs_only_itself_on_resume(tiny, tmp_path):
    spec = tiny.replace(train={"steps": 12})
    full = train(spec, tmp_path / "full")
    out = tmp_path / "run"
    train(spec, out)
    lines = (out / METRICS_NAME).read_bytes().split(b"\n")
    lines[4] = b'{"step": 5, "lo\xff\x00garbage'  # line 5: neither JSON nor UTF-8
    (out / METRICS_NAME).write_bytes(b"\n".join(lines))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = train(spec.replace(train={"steps": 16}), out, resume=True)
    assert [str(w.message) for w in caught] == [
        f"{out}: train.steps changed from 12 to 16 on resume (config.yaml rewritten)",
        f"{out / METRICS_NAME}: line 5 is not JSON; moved to metrics.jsonl.bad, the other records kept",
    ]
    assert resumed.step == 16
    steps = [r["step"] for r in read_metrics(out)]
    assert steps == [s for s in range(1, 17) if s != 5]  # every good record kept, and the run's new ones
    assert (out / BAD_LINES_NAME).read_bytes() == lines[4] + b"\n"  # kept aside, byte for byte
    assert without_time(read_metrics(out))[:11] == without_time([r for r in full.records if r["step"] != 5])
    # readers see the whole run, and say what they skipped (the file is not touched)
    lines = (out / METRICS_NAME).read_bytes().split(b"\n")
    lines[1] = b"garbage"
    (out / METRICS_NAME).write_bytes(b"\n".join(lines))
    before = snapshot(out)
    with pytest.warns(AnalogepWarning, match=r"metrics.jsonl: line 2 is not JSON; skipped"):
        assert api.compare([tmp_path / "full", out])["runs"][1]["steps"] == 16
    assert snapshot(out) == before


def test_the_line_a_crash_cut_short_is_left_out_quietly(tmp_path):
    (tmp_path / METRICS_NAME).write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    log = read_log(tmp_path)
    assert [r["step"] for r in log.records] == [1, 2] and log.bad_lines == []


@pytest.mark.parametrize(
    "line, why",
    [
        ("42", "a JSON object with a step"),
        ('{"loss": 1}', "no integer step"),
        ('{"step": "3", "loss": 1}', "no integer step"),
        ('{"step": 3, "loss": "low"}', "loss is not a number"),
        ('{"step": 1, "loss": 1.0}', "step 1 follows step 2"),
    ],
)
def test_json_that_is_not_a_record_is_one_line_for_resume_and_compare(tiny, tmp_path, line, why):
    out = tmp_path / "run"
    train(tiny.replace(train={"steps": 4}), out)
    lines = (out / METRICS_NAME).read_text().splitlines()
    lines.insert(2, line)
    (out / METRICS_NAME).write_text("\n".join(lines) + "\n")
    before = snapshot(out)
    error = error_line(invoke("train", "--out", out, "--resume", "--no-samples"))
    assert f"{out / METRICS_NAME}:3: " in error and why in error
    assert snapshot(out) == before  # refused before anything was written
    error = error_line(invoke("compare", out, out, "--plot", tmp_path / "c.png"))
    assert f"{out / METRICS_NAME}:3: " in error and why in error


def test_an_empty_log_is_one_line_for_compare_and_a_warning_for_resume(tiny, tmp_path):
    out = tmp_path / "run"
    train(tiny.replace(train={"steps": 4}), out)
    (out / METRICS_NAME).write_text("")
    error = error_line(invoke("compare", out, out, "--plot", tmp_path / "c.png"))
    assert f"{out / METRICS_NAME}: is empty" in error
    result = invoke("train", "--out", out, "--resume", "--steps", 6, "--no-samples")
    assert result.exit_code == 0, result.output
    assert f"warning: {out / METRICS_NAME}: holds no record but the checkpoint is at step 4" in result.stderr
    assert [r["step"] for r in read_metrics(out)] == [5, 6]


def test_compare_flags_a_quality_report_older_than_the_run(tiny, tmp_path):
    out = tmp_path / "run"
    train(tiny.replace(train={"steps": 4}), out)
    (out / "quality.json").write_text(json.dumps({"step": 4, "confidence": 0.5, "classes_covered": 9, "frechet": 2.0}))
    with pytest.warns(AnalogepWarning, match="train.steps changed"):
        train(tiny.replace(train={"steps": 6}), out, resume=True)
    with pytest.warns(AnalogepWarning, match=r"quality.json: judges step 4, but the run's log goes on to step 6"):
        api.compare([out, out])
    (out / "quality.json").write_text("{not json")
    error = error_line(invoke("compare", out, out, "--plot", tmp_path / "c.png"))
    assert error.startswith(f"error: {out / 'quality.json'}: not valid JSON (")
    (out / "quality.json").unlink()
    (out / "config.yaml").write_text("relax: [fast\n")
    error = error_line(invoke("compare", out, out, "--plot", tmp_path / "c.png"))
    assert error.startswith(f"error: {out / 'config.yaml'}: not valid YAML (")


# --- 2. one writer per run folder --------------------------------------------------------------


def test_a_run_folder_held_by_another_writer_is_refused_with_its_pid(tiny, tmp_path):
    out = tmp_path / "run"
    config = config_file(tmp_path, tiny.replace(train={"steps": 4}))
    held, release = threading.Event(), threading.Event()

    def holder():  # another thread is another lock holder; a pid is what the message can name
        with run_lock(out, create=True):
            held.set()
            release.wait()

    t = threading.Thread(target=holder)
    t.start()
    try:
        held.wait()
        error = error_line(invoke("train", config, "--out", out, "--no-samples"))
        assert f"{out}: another analogep process (pid {os.getpid()}) is writing this run folder" in error
        with pytest.raises(CheckpointError, match="is writing this run folder"):
            train(tiny.replace(train={"steps": 4}), out)
        assert not (out / METRICS_NAME).exists() and not (out / CHECKPOINT_NAME).exists()
    finally:
        release.set()
        t.join()
    assert train(tiny.replace(train={"steps": 4}), out).step == 4  # free again


# --- 4. temporary files of killed writes -------------------------------------------------------


def test_temporary_files_of_killed_writes_are_removed_at_the_next_start(tiny, tmp_path):
    out = tmp_path / "run"
    train(tiny.replace(train={"steps": 4}), out)
    ours = [".checkpoint.npz.k2_x9abc.npz", ".metrics.jsonl.abcdefgh.jsonl", ".config.yaml.0123abcd.yaml"]
    theirs = [".checkpoint.npz.keep", "checkpoint.npz.abcdefgh.npz", ".quality.json.abcdefgh.json", "notes.txt"]
    for name in ours:
        (out / name).write_bytes(b"")  # what a kill -9 mid-write leaves
    (out / ours[0]).write_bytes(b"PK\x03\x04 partial")
    for name in theirs:
        (out / name).write_text("keep me")
    train(tiny.replace(train={"steps": 4}), out, resume=True)
    names = {p.name for p in out.iterdir()}
    assert not names & set(ours)
    assert set(theirs) <= names


def test_atomic_path_names_the_temporary_files_the_cleanup_looks_for(tmp_path):
    from analogep.io import stale_temps

    with atomic_path(tmp_path / CHECKPOINT_NAME) as tmp:
        assert stale_temps(tmp_path, [CHECKPOINT_NAME]) == [tmp]


# --- 5. --resume --steps -----------------------------------------------------------------------


def test_resume_cannot_shorten_a_run_and_announces_a_change_of_steps(tiny, tmp_path):
    out = tmp_path / "run"
    train(tiny.replace(train={"steps": 8}), out)
    before = snapshot(out)
    error = error_line(invoke("train", "--out", out, "--resume", "--steps", 5))
    assert "checkpoint is at step 8, past train.steps 5 (--steps)" in error
    assert snapshot(out) == before
    result = invoke("train", "--out", out, "--resume", "--steps", 10, "--no-samples")
    assert result.exit_code == 0, result.output
    assert f"warning: {out}: train.steps changed from 8 to 10 on resume (config.yaml rewritten)" in result.stderr
    assert load_spec(out / "config.yaml").train.steps == 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing changed: nothing said
        train(load_spec(out / "config.yaml"), out, resume=True)


def test_resume_without_config_yaml_takes_the_checkpoints_config(tiny, tmp_path):
    out = tmp_path / "run"
    train(tiny.replace(train={"steps": 4}), out)
    (out / "config.yaml").unlink()
    result = invoke("train", "--out", out, "--resume", "--steps", 6, "--no-samples")
    assert result.exit_code == 0, result.output
    assert f"warning: {out / 'config.yaml'}: missing; resuming with the config stored in checkpoint.npz" in result.stderr
    assert load_spec(out / "config.yaml") == tiny.replace(train={"steps": 6})


# --- 8. a run that skips most of its steps -----------------------------------------------------


def test_a_run_that_skips_most_steps_fails_and_keeps_its_checkpoint(tiny, tmp_path):
    # init_gain 5: most steps are untrustworthy, but never max_bad_steps (20) of them in a row
    bad = tiny.replace(model={"init_gain": 5.0}, relax={"free_steps": 30, "nudge_steps": 30}, train={"steps": 100})
    out = tmp_path / "run"
    error = error_line(invoke("train", config_file(tmp_path, bad), "--out", out))
    assert error.startswith("error: training stopped at step 20: ")
    assert "of the last 20 steps were skipped, more than train.max_skipped_share 0.5" in error
    records = read_metrics(out)
    assert sum("skipped" in r for r in records) > 10 and records[-1]["step"] == 20
    assert load_checkpoint(out).step == 20
    assert not (out / "samples.png").exists()


def test_the_skipped_share_counts_the_last_steps_across_a_resume(tiny, tmp_path, monkeypatch):
    real = loop.gradep_step
    skip = {"when": lambda n: n % 2 == 0}
    calls = {"n": 0}

    def injected(*args, **kwargs):  # fault injection: the chosen steps are untrusted
        calls["n"] += 1
        result = real(*args, **kwargs)
        if skip["when"](calls["n"]):
            result.trouble.append("injected")
        return result

    monkeypatch.setattr(loop, "gradep_step", injected)
    spec = tiny.replace(train={"steps": 30, "checkpoint_every": 5})
    assert train(spec, tmp_path).stopped is None  # every other step: half, not more than 0.5
    assert load_checkpoint(tmp_path).skipped == tuple(range(2, 31, 2))
    skip["when"] = lambda n: True  # from step 31 on, every step; the 15 earlier ones still count
    with pytest.warns(AnalogepWarning, match="train.steps changed from 30 to 40"):
        result = train(spec.replace(train={"steps": 40}), tmp_path, resume=True)
    assert result.stopped.startswith("step 31: 16 of the last 31 steps were skipped")
    skip["when"] = lambda n: n % 3 != 0  # two of every three steps, never 20 in a row
    assert train(spec.replace(train={"steps": 30, "max_skipped_share": 1.0}), tmp_path / "never").stopped is None


# --- 12. Ctrl-C ---------------------------------------------------------------------------------


def test_ctrl_c_keeps_the_last_finished_step_and_resume_is_bit_identical(tiny, tmp_path):
    out = tmp_path / "run"
    config = config_file(tmp_path, tiny.replace(train={"steps": 100000, "checkpoint_every": 1000000}))
    proc = cli_process("train", config, "--out", out)
    try:
        wait_for_step(proc, out, 8)
        # a second writer is refused while the first runs (naming it), fresh or resuming
        error = error_line(invoke("train", config, "--out", out, "--steps", 2))
        assert f"another analogep process (pid {proc.pid}) is writing this run folder" in error
        error = error_line(invoke("train", "--out", out, "--resume", "--steps", 3))
        assert f"(pid {proc.pid})" in error
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=WAIT_S)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    ckpt = load_checkpoint(out)  # the only checkpoint: written on Ctrl-C
    assert ckpt.step == read_metrics(out)[-1]["step"] >= 8
    assert stderr.strip().splitlines()[-1] == (
        f"interrupted: checkpoint of step {ckpt.step} kept in {out}; continue with: analogep train --out {out} --resume"
    )
    total = tiny.replace(train={"steps": ckpt.step + 3, "checkpoint_every": 1000000})
    with pytest.warns(AnalogepWarning, match="train.steps changed from 100000"):
        resumed = api.train(total, out, resume=True)
    uninterrupted = api.train(total, tmp_path / "full")
    assert_same_params(resumed.params, uninterrupted.params)
    assert without_time(read_metrics(out)) == without_time(read_metrics(tmp_path / "full"))


def test_sigterm_stops_like_ctrl_c_with_exit_code_143(tiny, tmp_path):
    out = tmp_path / "run"
    config = config_file(tmp_path, tiny.replace(train={"steps": 100000, "checkpoint_every": 1000000}))
    proc = cli_process("train", config, "--out", out)
    try:
        wait_for_step(proc, out, 5)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=WAIT_S)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    ckpt = load_checkpoint(out)  # written on SIGTERM: the last finished step
    assert ckpt.step == read_metrics(out)[-1]["step"] >= 5
    assert f"checkpoint of step {ckpt.step} kept in {out}" in stderr.strip().splitlines()[-1]


def test_ctrl_c_inside_a_steps_update_waits_for_the_step_to_finish(tiny, tmp_path, monkeypatch):
    real = loop._record

    def interrupted_mid_update(run, result, *args, **kwargs):
        if run.step == 6:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while step 6's update is being applied
        return real(run, result, *args, **kwargs)

    monkeypatch.setattr(loop, "_record", interrupted_mid_update)
    spec = tiny.replace(train={"steps": 10})
    with pytest.raises(TrainingInterrupted) as info:
        train(spec, tmp_path / "run")
    assert info.value.step == 6
    assert load_checkpoint(tmp_path / "run").step == 6
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == list(range(1, 7))
    monkeypatch.setattr(loop, "_record", real)
    resumed = train(spec, tmp_path / "run", resume=True)
    assert_same_params(resumed.params, train(spec, tmp_path / "full").params)


def test_ctrl_c_while_writing_the_samples_is_one_line(tiny, tmp_path, monkeypatch):
    from analogep.cli import training as cli_training

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_training, "write_run_samples", interrupted)
    out = tmp_path / "run"
    result = invoke("train", config_file(tmp_path, tiny.replace(train={"steps": 4})), "--out", out)
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert result.stderr.splitlines()[-1] == (
        f"interrupted: checkpoint of step 4 kept in {out}; continue with: analogep train --out {out} --resume"
    )


def test_ctrl_c_before_the_first_step_leaves_a_folder_a_fresh_run_can_take(tiny, tmp_path, monkeypatch):
    real = loop.gradep_step

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "gradep_step", interrupted)
    with pytest.raises(TrainingInterrupted) as info:
        train(tiny.replace(train={"steps": 4}), tmp_path)
    assert info.value.step is None and not (tmp_path / CHECKPOINT_NAME).exists()
    monkeypatch.setattr(loop, "gradep_step", real)
    assert train(tiny.replace(train={"steps": 4}), tmp_path).step == 4


def test_an_error_in_a_step_keeps_a_checkpoint_of_the_last_finished_one(tiny, tmp_path, monkeypatch):
    from analogep.errors import CircuitError

    real = loop.gradep_step
    calls = {"n": 0}

    def ngspice_fails_in_step_7(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise CircuitError("phase free, point 3: ngspice: timestep too small")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "gradep_step", ngspice_fails_in_step_7)
    spec = tiny.replace(train={"steps": 10})
    out = tmp_path / "run"
    error = error_line(invoke("train", config_file(tmp_path, spec), "--out", out))
    assert error == (
        "error: phase free, point 3: ngspice: timestep too small; training stopped in step 7, "
        "the checkpoint of step 6 is kept (continue with --resume)"
    )
    assert load_checkpoint(out).step == 6  # not the periodic one of step 4: no finished step is lost
    monkeypatch.setattr(loop, "gradep_step", real)
    assert_same_params(train(spec, out, resume=True).params, train(spec, tmp_path / "full").params)


# --- kill -9 at random moments ------------------------------------------------------------------


def _train_in_child(args: list[str]) -> None:
    main(args)  # exits with its code; a fork starts with analogep already imported


def test_kill_9_at_random_moments_then_resume_is_bit_identical(tiny, tmp_path):
    rng = random.Random(20240613)
    spec = tiny.replace(train={"steps": 50, "checkpoint_every": 3})
    config = config_file(tmp_path, spec)
    out = tmp_path / "run"
    fork = multiprocessing.get_context("fork")
    args = ["train", str(config), "--out", str(out), "--no-samples"]
    last = 0
    for kill in range(3):
        child = fork.Process(target=_train_in_child, args=(args,))
        child.start()
        last += rng.randint(4, 10)
        wait_for_step(child, out, last)
        time.sleep(rng.uniform(0, 0.05))  # anywhere in the next steps: relaxing, logging, checkpointing
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL
        last = logged_steps(out)
        args = ["train", "--out", str(out), "--resume", "--no-samples"]
    with run_lock(out):
        pass  # the killed holders left no lock behind
    resumed = api.train(spec, out, resume=True)
    uninterrupted = api.train(spec, tmp_path / "full")
    assert resumed.step == 50
    assert_same_params(resumed.params, uninterrupted.params)
    assert without_time(read_metrics(out)) == without_time(read_metrics(tmp_path / "full"))
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".lock"]  # no temp files


# --- a full disk, an unwritable folder ----------------------------------------------------------


def test_a_full_disk_while_logging_is_one_line_and_the_run_resumes(tiny, tmp_path, monkeypatch):
    spec = tiny.replace(train={"steps": 10})
    config = config_file(tmp_path, spec)
    out = tmp_path / "run"
    real = RunLog.write

    def disk_full_at_step_7(self, record):
        if record["step"] == 7:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(self, record)

    monkeypatch.setattr(RunLog, "write", disk_full_at_step_7)
    error = error_line(invoke("train", config, "--out", out))
    assert error == (
        f"error: {out}: cannot write metrics.jsonl (No space left on device); training stopped at step 7, "
        "the checkpoint of step 4 is kept (continue with --resume)"
    )
    assert load_checkpoint(out).step == 4
    monkeypatch.setattr(RunLog, "write", real)
    assert_same_params(train(spec, out, resume=True).params, train(spec, tmp_path / "full").params)
    assert without_time(read_metrics(out)) == without_time(read_metrics(tmp_path / "full"))


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tiny, tmp_path, monkeypatch):
    out = tmp_path / "run"
    calls = {"n": 0}
    real_savez = np.savez

    def savez_fills_the_disk(file, **arrays):
        calls["n"] += 1
        if calls["n"] == 2:  # the checkpoint of step 8: half written, then the disk is full
            file.write(b"PK\x03\x04 half a zip")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_savez(file, **arrays)

    monkeypatch.setattr(np, "savez", savez_fills_the_disk)
    with pytest.raises(CheckpointError, match=r"cannot write checkpoint.npz \(No space left on device\); "
                                              r"training stopped at step 8, the checkpoint of step 4 is kept"):
        train(tiny.replace(train={"steps": 10}), out)
    assert load_checkpoint(out).step == 4
    assert sorted(p.name for p in out.iterdir()) == [".lock", CHECKPOINT_NAME, "config.yaml", METRICS_NAME]


def test_an_unwritable_run_folder_is_one_line(tiny, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = loop.save_checkpoint
    saves = {"n": 0}
    probe = tmp_path / "probe"
    probe.mkdir(mode=0o500)
    try:
        (probe / "x").touch()
        ignores_permissions = True  # root (CAP_DAC_OVERRIDE) writes into a 0o500 folder: the refusal is injected
    except PermissionError:
        ignores_permissions = False

    def folder_turns_read_only(path, state):
        saves["n"] += 1
        if saves["n"] == 2:
            os.chmod(out, 0o500)
            if ignores_permissions:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        real(path, state)

    monkeypatch.setattr(loop, "save_checkpoint", folder_turns_read_only)
    try:
        error = error_line(invoke("train", config_file(tmp_path, tiny.replace(train={"steps": 10})), "--out", out))
    finally:
        os.chmod(out, 0o755)
    assert error == (
        f"error: {out}: cannot write checkpoint.npz (Permission denied); training stopped at step 8, "
        "the checkpoint of step 4 is kept (continue with --resume)"
    )
    assert load_checkpoint(out).step == 4


def test_an_update_that_overflows_is_undone_and_never_checkpointed(tiny, tmp_path):
    """lr 1e39 overflows Adam's first float32 update: before, the loop applied it and
    checkpointed infinite weights (then claimed they were the last good ones)."""
    from analogep.training.checkpoint import load_checkpoint

    out = tmp_path / "run"
    spec = tiny.replace(train={"steps": 3, "optimizer": {"lr": 1e39}})
    result = train(spec, out)
    assert all("non-finite" in r.get("skipped", "") for r in result.records)
    ckpt = load_checkpoint(out)  # refuses non-finite weights: this load is the check
    initial = build_energy(spec.model).init_params(np.random.default_rng(spec.model.seed))
    for k, v in initial.items():
        np.testing.assert_array_equal(ckpt.params[k], v)


# --- a run's record that stays true (issue 23) ---------------------------------------------------


def strict_records(out: Path) -> list[dict]:
    """metrics.jsonl read as strict JSON: a bare NaN or Infinity is refused, as strict readers do."""
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return [json.loads(line, parse_constant=refuse) for line in (out / METRICS_NAME).read_text().splitlines()]


@pytest.mark.spice
def test_a_resumed_spice_run_stays_on_spice_and_a_deliberate_switch_is_recorded(tiny, tmp_path):
    """Before: `train --out P --resume` of a SPICE run continued with numpy, said so only in
    the banner, and nothing in metrics.jsonl recorded the backend."""
    spec = tiny.replace(train={"steps": 2, "batch": 4, "backend": "spice"}, circuit={"runner": "subprocess"})
    whole = train(spec, tmp_path / "whole")
    out = tmp_path / "run"
    train(spec.replace(train={"steps": 1}), out)
    result = invoke("train", "--out", out, "--resume", "--steps", 2, "--no-samples")
    assert result.exit_code == 0, result.output
    assert "backend spice" in result.stderr.splitlines()[0]
    assert_same_params(load_checkpoint(out).params, whole.params)  # the run as if never interrupted
    assert [(r["backend"], r["runner"]) for r in strict_records(out)] == [("spice", "subprocess")] * 2
    # a deliberate change: reported like any changed key, written into config.yaml, logged where it applied
    result = invoke("train", "--out", out, "--resume", "--steps", 3, "--backend", "numpy", "--no-samples")
    assert result.exit_code == 0, result.output
    assert (f"warning: {out}: train.backend changed from spice to numpy on resume: steps 3 on use numpy "
            f"(config.yaml rewritten; metrics.jsonl records the change at step 3)") in result.stderr
    records = strict_records(out)
    assert [r["backend"] for r in records] == ["spice", "spice", "numpy"] and "runner" not in records[2]
    assert records[2]["changed"] == {"train.backend": ["spice", "numpy"]}
    assert "changed" not in records[1]
    assert load_spec(out / "config.yaml").train.backend == "numpy"


@pytest.mark.parametrize("how", ["--seed", "config.yaml", "api"])
def test_a_resume_cannot_change_a_seed_the_run_never_used(tiny, tmp_path, how):
    """Before: `--resume --seed 5` warned, wrote seed: 5 into config.yaml and continued the
    checkpoint's random stream, so config.yaml no longer reproduced the run."""
    out = tmp_path / "run"
    train(tiny.replace(train={"steps": 4}), out)
    before = snapshot(out)
    if how == "api":
        with pytest.raises(CheckpointError) as info:
            train(tiny.replace(train={"steps": 6, "seed": 5}), out, resume=True)
        error = f"error: {info.value}"
    else:
        if how == "config.yaml":  # edited by hand between two runs
            (out / "config.yaml").write_text((out / "config.yaml").read_text().replace("  seed: 0\n  checkpoint", "  seed: 5\n  checkpoint"))
            before = snapshot(out)
        flags = ["--seed", 5] if how == "--seed" else []
        error = error_line(invoke("train", "--out", out, "--resume", "--steps", 6, *flags, "--no-samples"))
    assert error == (f"error: {out}: train.seed cannot change on resume (the run has 0, 5 was asked): it seeded the "
                     f"run's noise, times and batches, whose stream the checkpoint continues; train into another "
                     f"folder to use 5")
    assert snapshot(out) == before  # refused before anything was written
    # the model's own keys are fixed too; the checkpoint's weights belong to its model
    edited = load_spec(out / "config.yaml").replace(model={"init_gain": 0.7})
    with pytest.raises(CheckpointError, match=r"model.init_gain cannot change on resume"):
        train(edited, out, resume=True)


def test_a_change_that_alters_the_steps_is_logged_where_it_applied(tiny, tmp_path):
    """config.yaml holds the latest value and the log the step from which it applied, so
    the folder says how every step was computed."""
    out = tmp_path / "run"
    train(tiny.replace(train={"steps": 4}), out)
    with pytest.warns(AnalogepWarning) as caught:
        train(tiny.replace(train={"steps": 6, "optimizer": {"lr": 1e-3}}), out, resume=True)
    assert [str(w.message).split(": ", 1)[1] for w in caught] == [
        "train.steps changed from 4 to 6 on resume (config.yaml rewritten)",
        "train.optimizer.lr changed from 0.003 to 0.001 on resume: steps 5 on use 0.001 "
        "(config.yaml rewritten; metrics.jsonl records the change at step 5)",
    ]
    records = strict_records(out)
    assert [r.get("changed") for r in records] == [None] * 4 + [{"train.optimizer.lr": [0.003, 0.001]}, None]
    assert load_spec(out / "config.yaml").train.optimizer.lr == 1e-3


def test_a_step_whose_loss_is_not_finite_is_skipped_and_the_log_stays_strict_json(tiny, tmp_path):
    """Before: lr 1e30 with --steps 2 reported 'done ... loss nan', exited 0 with weights of
    1e30, and metrics.jsonl held a bare NaN that strict JSON readers reject."""
    out = tmp_path / "run"
    config = config_file(tmp_path, tiny.replace(train={"steps": 2, "optimizer": {"lr": 1e30}}))
    error = error_line(invoke("train", config, "--out", out))
    assert error.startswith("error: training stopped at step 2, the last: ")
    assert "the loss is not finite" in error and "lower train.optimizer.lr" in error
    first, second = strict_records(out)
    assert np.isfinite(first["loss"]) and "skipped" not in first
    assert second["loss"] is None and "the loss is not finite" in second["skipped"]
    assert not (out / "samples.png").exists()  # no samples from a stopped run
    assert load_checkpoint(out).step == 2
    # the run log is read back (resume, compare) with the loss as null
    assert [r["loss"] is None for r in read_metrics(out)] == [False, True]
