"""Fault injection on outputs: a full disk and a read-only folder, for real (a small tmpfs,
a read-only bind mount; a folder without write permission when not root), under every
command that writes. Each ends in one line naming the file, exit code 2, nothing left
behind, and a result the command computed printed before the file that failed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import analogep
from analogep.cli import main
from analogep.config import load_spec

from clirun import invoke

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"
WAIT_S = 300  # a safety net against a hung child, never a timing assertion


def one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.stderr.splitlines()[-1] == errors[0], result.stderr
    for f in fragments:
        assert f in errors[0], errors[0]
    return errors[0]


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextmanager
def full_disk(folder: Path, size_kb: int = 512):
    """`folder` as a tmpfs of `size_kb` kB (root only), filled up to its last blocks by the
    caller's `fill()`; unmounted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)):
        pytest.skip("a small file system needs root's mount (tmpfs)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> None:
    """Take every free block of `folder`'s file system but `leave` bytes."""
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
        if leave:
            f.truncate(max(0, f.tell() - leave))


@contextmanager
def read_only(folder: Path):
    """`folder` made read-only: a read-only bind mount for root (who writes through
    permissions), no write permission otherwise."""
    if os.geteuid() == 0:
        if not (_mount("--bind", str(folder), str(folder)) and _mount("-o", "remount,ro,bind", str(folder))):
            subprocess.run(["umount", str(folder)], capture_output=True)
            pytest.skip("a read-only folder needs root's bind mount")
        try:
            yield folder
        finally:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
    else:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    analogep.train(load_spec(TINY).replace(train={"steps": 2, "batch": 16}), out)
    return out


def copy_run(run: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("checkpoint.npz", "config.yaml", "metrics.jsonl"):
        shutil.copy(run / name, folder / name)
    return folder


# --- a full disk while a .npy of samples is written (issue 23, item 6) -------------------------------


def test_the_samples_file_owns_its_disk_blocks_before_sampling_writes_into_it(trained, tmp_path, monkeypatch):
    """The .npy is written through a memory map: a page of a sparse file that finds the disk
    full kills the process with SIGBUS ('Bus error', exit 135), after the work. Its blocks
    are taken up front, so a full disk is an error before sampling starts."""
    from analogep.cli import common

    seen = []

    class Watch(common.WorkBar):  # looks at the temporary .npy when sampling has begun
        def __call__(self, done, total):
            if not seen:
                [tmp] = [p for p in tmp_path.iterdir() if p.name.startswith(".s.npy.")]
                seen.append((tmp.stat().st_blocks * 512, tmp.stat().st_size))
            super().__call__(done, total)

    monkeypatch.setattr(common, "WorkBar", Watch)
    result = invoke("sample", trained, "--n", 5000, "--save", tmp_path / "s.npy", "--out", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    [(allocated, size)] = seen
    assert size == 128 + 5000 * 64 * 4 and allocated >= size  # no hole left for a page fault to find


def test_a_full_disk_while_saving_samples_is_one_line_and_leaves_nothing(trained, tmp_path):
    """Before: exit 135 (Bus error), and a sparse 25.6 MB temporary file left behind."""
    with full_disk(tmp_path / "disk") as disk:
        proc = subprocess.run(
            [sys.executable, "-c", "from analogep.cli import main; main()", "sample", str(trained), "--n", "100000",
             "--save", str(disk / "s.npy"), "--out", str(tmp_path / "s.png")],
            env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=WAIT_S)
        assert proc.returncode == 2, (proc.returncode, proc.stderr)
        assert proc.stderr.strip().splitlines()[-1] == (
            f"error: {disk / 's.npy'}: cannot write (No space left on device); nothing written")
        assert list(disk.iterdir()) == []


def test_resuming_a_finished_run_on_a_full_disk_is_one_line(trained, tmp_path):
    """Before: `train --resume` of a finished run died with a Bus error writing samples.npy
    (run in a process of its own: a Bus error would take the test session down)."""
    with full_disk(tmp_path / "disk", size_kb=1024) as disk:
        run = copy_run(trained, disk / "run")
        run.joinpath("config.yaml").write_text(run.joinpath("config.yaml").read_text().replace("  n: 50\n", "  n: 20000\n"))
        fill(disk, leave=256 * 1024)  # room for config.yaml, the log and loss.png; not for 20,000 samples
        proc = subprocess.run([sys.executable, "-c", "from analogep.cli import main; main()", "train", "--out", str(run),
                               "--resume"], env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                              timeout=WAIT_S)
        # the run itself is fine: its end-of-run samples that cannot be written are a warning
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (proc.returncode, proc.stderr)
        assert f"warning: {run / 'samples.npy'}: cannot write (No space left on device); nothing written" in proc.stderr
        assert not (run / "samples.npy").exists()
        assert not [p for p in run.iterdir() if p.name.startswith(".samples")]


# --- read-only and full folders under every command that writes (item 8) --------------------------


def test_evaluate_prints_its_report_before_a_read_only_run_folder_refuses_it(trained, tmp_path):
    """Before: evaluate computed everything, then died writing quality.json: the result was lost."""
    run = copy_run(trained, tmp_path / "run")
    with read_only(run):
        result = invoke("evaluate", run, "--n", 20, "--json")
    error = one_line_error(result, str(run / "quality-n20.json"), "cannot write")
    assert "the report above was not saved" in error
    report = json.loads(result.stdout)
    assert report["n_samples"] == 20 and report["step"] == 2


@pytest.mark.parametrize("command, fragment", [
    (["check", "{run}", "--n", "1"], "{run}/spice_check.png: cannot write there"),
    (["energy", "{run}", "--no-cpu", "--points", "2", "--sample-points", "1", "--plot", "{run}/energy.png"],
     "{run}/energy.png: cannot write there"),
    (["compile", "--checkpoint", "{run}", "--out", "{run}/decks"], "{run}/decks/free.cir: cannot write there"),
    (["robustness", "{run}", "--sweep", "variability=0", "--n", "2", "--plot", "{run}/r.png"],
     "{run}/r.png: cannot write there"),
    (["sample", "{run}", "--n", "2"], "{run}/samples-n2.png: cannot write there"),
])
def test_a_read_only_run_folder_is_one_line_before_any_work(command, fragment, trained, tmp_path):
    """Before: `check` and `energy --plot` to a read-only path were tracebacks."""
    run = copy_run(trained, tmp_path / "run")
    with read_only(run):
        result = invoke(*[a.format(run=run) for a in command])
    one_line_error(result, fragment.format(run=run))


@pytest.mark.parametrize("command, written, shows", [
    (["evaluate", "{run}", "--n", "20"], "{run}/quality-n20.json", "Frechet"),
    (["check", "{run}", "--n", "1", "--plot", "{disk}/c.png"], "{disk}/c.png", "node voltages"),
    (["energy", "{run}", "--no-cpu", "--points", "2", "--sample-points", "1", "--plot", "{disk}/e.png"], "{disk}/e.png",
     "per training step"),
    (["compile", "--checkpoint", "{run}", "--out", "{disk}/decks"], "{disk}/decks/", None),
    (["robustness", "{run}", "--sweep", "variability=0", "--n", "2", "--plot", "{disk}/r.png"], "{disk}/r.png",
     "confidence"),
])
def test_a_full_disk_is_one_line_after_the_result(command, written, shows, trained, tmp_path):
    """Before: evaluate, compile, check and robustness were tracebacks on a full disk."""
    with full_disk(tmp_path / "disk", size_kb=1024) as disk:
        run = copy_run(trained, disk / "run")
        fill(disk)
        result = invoke(*[a.format(run=run, disk=disk) for a in command])
        error = one_line_error(result, written.format(run=run, disk=disk), "No space left on device")
        assert "cannot write" in error
        if shows is not None:
            assert shows in result.stdout  # the result, printed before the file that failed
        assert not [p for p in disk.rglob(".*") if p.is_file()]  # no temporary file left
