"""Faults around the ngspice worker processes, injected for real: workers killed while idle
or busy, the parent killed by kill -9, Ctrl-C, decks past their timeout, an interrupted
map, a runner that cannot start; and the clipped-weight count of a SPICE training run."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from analogep.spice.run.ngspice import ngspice_info
from analogep.spice.run.pool import KILL_GRACE_S, NgspicePool

pytestmark = pytest.mark.spice
ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"
RUNNERS = ["shared", "subprocess"]
# Generous: how long a dead process may take to disappear (a loaded 2-core machine).
GONE_WITHIN_S = 30.0


def _sweep(points: int) -> str:
    """A diode ladder swept over `points` points: about 4 us a point with ngspice 39, so
    5e6 points run far longer than any timeout used here."""
    return textwrap.dedent(f"""\
        diode ladder
        V1 in 0 dc 1
        R1 in a 1k
        D1 a b dmod
        D2 b 0 dmod
        .model dmod d
        .dc V1 0 1 {1.0 / points:.12g}
        .save v(b)
        .end
        """)


SHORT = _sweep(50)
LONG = _sweep(5_000_000)


@pytest.fixture(params=RUNNERS)
def runner(request) -> str:
    if request.param == "shared" and not ngspice_info().shared:
        pytest.skip("libngspice is not installed")
    return request.param


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def _wait_until(condition, what: str, within: float = GONE_WITHIN_S) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within:g} s: {what}"
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _kill_leftovers(pids) -> None:
    """Processes this test started and that outlived it (so a failure leaks nothing); a pid
    already reused by another program is left alone."""
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"python" in command or b"ngspice" in command:
                os.kill(pid, signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            pass


def _python(*args: str, cwd: Path) -> subprocess.Popen:
    """A Python process of its own session (so a signal can go to its whole group), with
    its temporary files in `cwd`."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(cwd))
    return subprocess.Popen([sys.executable, *args], env=env, cwd=cwd, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


# --- a worker killed while idle, or while busy ------------------------------------------------------


def test_a_worker_killed_while_idle_is_replaced_and_its_deck_redone(runner):
    fresh = NgspicePool(runner, 2)
    try:
        expected = fresh.map([SHORT] * 3, 60)
    finally:
        fresh.close()
    pool = NgspicePool(runner, 2)
    try:
        pool.map([SHORT, SHORT], 60)
        victim = pool._pool[0].process.pid
        os.kill(victim, signal.SIGKILL)
        _wait_until(lambda: _dead(victim), "the killed worker died")
        results = pool.map([SHORT] * 3, 60)
        assert victim not in [w.process.pid for w in pool._pool]
    finally:
        pool.close()
    assert [r.message for r in results] == [""] * 3
    for got, want in zip(results, expected):
        assert got.rows == want.rows == 51
        np.testing.assert_array_equal(got.vectors["b"], want.vectors["b"])


def test_a_worker_that_cannot_be_replaced_stops_with_one_line_naming_it(monkeypatch):
    from analogep.spice.run.ngspice import NgspiceError

    pool = NgspicePool("subprocess", 1)
    try:
        pool.map([SHORT], 60)
        victim = pool._pool[0].process.pid
        spawn = NgspicePool._spawn

        def stillborn(self):
            w = spawn(self)
            w.process.kill()
            w.process.join()
            return w

        monkeypatch.setattr(NgspicePool, "_spawn", stillborn)
        os.kill(victim, signal.SIGKILL)
        _wait_until(lambda: _dead(victim), "the killed worker died")
        with pytest.raises(NgspiceError) as info:
            pool.map([SHORT], 60)
    finally:
        monkeypatch.undo()
        pool.close()
    assert re.fullmatch(rf"ngspice worker {victim} died while idle \(killed by SIGKILL\) and its replacement \d+ "
                        r"cannot take a deck either \(Broken pipe\)", str(info.value)), str(info.value)


def test_a_worker_killed_during_a_deck_is_named_with_its_signal(runner):
    pool = NgspicePool(runner, 1)
    try:
        pool.map([SHORT], 60)
        victim = pool._pool[0].process.pid
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        previous = signal.signal(signal.SIGALRM, lambda *_: os.kill(victim, signal.SIGKILL))
        try:
            result = pool.map([LONG], 600)[0]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        assert result.rows == 0
        assert result.message == f"ngspice worker {victim} died (killed by SIGKILL)"
        assert pool.map([SHORT], 60)[0].rows == 51  # its replacement works
    finally:
        pool.close()


# --- the parent killed, Ctrl-C ------------------------------------------------------------------------


def test_workers_and_their_ngspice_die_with_a_parent_killed_by_kill_9(tmp_path, runner):
    """One worker idle, one inside a long sweep (with `ngspice -b` as its child for the
    subprocess runner) when the parent gets SIGKILL: all of them go."""
    proc = _python("-c", textwrap.dedent(f"""\
        from analogep.spice.run.pool import NgspicePool
        pool = NgspicePool({runner!r}, 2)
        pool.map([{SHORT!r}] * 2, 60)
        print(*[w.process.pid for w in pool._pool], flush=True)
        pool.map([{LONG!r}], 600)
        """), cwd=tmp_path)
    workers: list[int] = []
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert len(workers) == 2, proc.stderr.read()
        if runner == "subprocess":
            _wait_until(lambda: any(_children(w) for w in workers), "the busy worker started ngspice -b")
        spawned = workers + [c for w in workers for c in _children(w)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=GONE_WITHIN_S)
        _wait_until(lambda: all(_dead(p) for p in spawned), f"processes {spawned} died with their parent")
    finally:  # leftovers first: they hold the pipes communicate reads to the end
        _kill_leftovers(workers + [c for w in workers for c in _children(w)])
        proc.kill()
        proc.communicate(timeout=GONE_WITHIN_S)


def test_ctrl_c_during_spice_training_prints_no_traceback_from_the_workers(tmp_path, runner):
    """Ctrl-C reaches the whole foreground process group; the workers ignore it and leave
    with the pool, and nothing they print reaches the terminal."""
    proc = _python("-c", "from analogep.cli.app import main; main()", "train", str(TINY), "--out", "run",
                   "--backend", "spice", "--spice-runner", runner, "--steps", "200", "--batch", "8", "--no-samples",
                   cwd=tmp_path)
    metrics = tmp_path / "run" / "metrics.jsonl"
    workers: list[int] = []
    try:
        _wait_until(lambda: metrics.exists() and metrics.stat().st_size > 0, "a first step logged", within=120)
        workers = _children(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        _wait_until(lambda: all(_dead(p) for p in workers), f"workers {workers} stopped")
    finally:  # leftovers first: they hold the pipes communicate reads to the end
        _kill_leftovers(workers)
        proc.kill()
        proc.communicate(timeout=GONE_WITHIN_S)


# --- timeouts ---------------------------------------------------------------------------------------


def test_the_shared_runner_is_stopped_at_the_timeout_itself():
    if not ngspice_info().shared:
        pytest.skip("libngspice is not installed")
    timeout = 1.0
    pool = NgspicePool("shared", 1)
    try:
        result = pool.map([LONG], timeout)[0]
        assert (result.rows, result.message) == (0, "no answer within 1 s")
        assert timeout <= result.seconds < timeout + KILL_GRACE_S
        assert pool.map([SHORT], 60)[0].rows == 51  # a fresh worker took its place
    finally:
        pool.close()
    # The shared library cannot be stopped from inside: its worker is killed at the timeout.
    # ngspice -b stops itself there and is given a grace to report it.
    assert pool.kill_after(timeout) == timeout
    assert NgspicePool("subprocess", 1).kill_after(timeout) == timeout + KILL_GRACE_S


# --- an interrupted map, a closed pool, a runner that cannot start ----------------------------------------


class _Interrupted(Exception):
    pass


def _interrupted_map(pool: NgspicePool, decks: list[str]) -> None:
    """pool.map interrupted by an exception, as Ctrl-C interrupts it."""

    def stop(*_):
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(_Interrupted):
            pool.map(decks, 600)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_after_an_interrupted_map_no_late_answer_stands_in_for_another_deck(runner):
    pool = NgspicePool(runner, 1)
    try:
        _interrupted_map(pool, [LONG])
        result = pool.map([SHORT], 60)[0]
        assert result.rows == 51 and result.message == ""
    finally:
        pool.close()


def test_closing_an_interrupted_pool_removes_the_workers_temporary_files(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pool = NgspicePool("subprocess", 1)
    pool.map([SHORT], 60)
    worker = pool._pool[0].process
    _interrupted_map(pool, [LONG])
    pool.close()
    assert not worker.is_alive()
    assert list(tmp_path.iterdir()) == []


def test_a_closed_pool_refuses_work():
    pool = NgspicePool("subprocess", 1)
    pool.close()
    with pytest.raises(RuntimeError, match="after close"):
        pool.map([SHORT], 60)


class BrokenRunner:
    """A runner whose engine fails to start in the worker (a broken libngspice, say)."""

    @staticmethod
    def unavailable() -> None:
        return None

    def __init__(self) -> None:
        raise OSError("cannot load library libngspice.so.0")


def test_a_runner_that_cannot_start_answers_with_the_reason_not_a_traceback(monkeypatch, capfd):
    from analogep import registry

    monkeypatch.setitem(registry.RUNNERS, "broken", f"{__name__}:BrokenRunner")
    pool = NgspicePool("broken", 1)
    try:
        result = pool.map([SHORT], 60)[0]
    finally:
        pool.close()
    assert result.rows == 0
    assert result.message == "ngspice could not start: OSError: cannot load library libngspice.so.0"
    assert "Traceback" not in capfd.readouterr().err


# --- clipped weights in the log and the progress line -------------------------------------------------


def test_spice_training_counts_clipped_weights_in_metrics_and_progress(tmp_path):
    from analogep.cli.app import main
    from analogep.training.runlog import read_metrics

    cfg = tmp_path / "narrow.yaml"
    cfg.write_text(TINY.read_text() + "\ncircuit:\n  gmax: 2.0e-5\n  clip: true\n")
    res = CliRunner().invoke(main, ["train", str(cfg), "--out", str(tmp_path / "spice"), "--backend", "spice",
                                    "--steps", "1", "--batch", "8", "--no-samples"])
    assert res.exit_code == 0, res.output
    records = read_metrics(tmp_path / "spice")
    assert [r["step"] for r in records] == [1]
    assert all(r["clipped"] > 0 for r in records)
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("train: step ")]
    assert [int(re.search(r"clipped (\d+)", ln).group(1)) for ln in lines] == [r["clipped"] for r in records]
    # numpy clips nothing, and its records keep their keys
    res = CliRunner().invoke(main, ["train", str(cfg), "--out", str(tmp_path / "numpy"), "--steps", "1", "--no-samples"])
    assert res.exit_code == 0, res.output
    (record,) = read_metrics(tmp_path / "numpy")
    assert "clipped" not in record and "clipped" not in res.stderr


# --- issue 23: start-up, scheduler addresses, temporary folders --------------------------------------

WAIT_S = 120  # a safety net against a hung child, never a timing assertion


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


@pytest.mark.parametrize("moment", ["importing numpy", "importing, later", "holding the run folder"])
def test_ctrl_c_in_the_first_second_is_one_line_and_exit_130(tmp_path, moment):
    """Before: a KeyboardInterrupt traceback while the command's modules were imported, or
    click's 'Aborted!' with exit 1, where the README promises exit 130."""
    proc = _python("-c", "from analogep.cli import main; main()", "train", str(TINY), "--out", "run", "--no-samples",
                   cwd=tmp_path)
    try:
        if moment == "holding the run folder":
            _wait_until(lambda: (tmp_path / "run" / ".lock").exists() or proc.poll() is not None, "the run folder", WAIT_S)
        else:
            _wait_until(lambda: "_multiarray_umath" in _maps(proc.pid) or proc.poll() is not None, "numpy loading", WAIT_S)
            if moment == "importing, later":
                time.sleep(0.2)
        assert proc.poll() is None, "the command ended before the interrupt"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Aborted!" not in err, err
    assert err.strip().splitlines()[-1].startswith("interrupted")


def _silent_server(sock: socket.socket, greeting: bytes | None) -> None:
    """Accept connections; send `greeting` (None: nothing), then stay silent."""
    held = []
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        if greeting:
            conn.sendall(greeting)
        held.append(conn)


@pytest.mark.parametrize("server, fragment", [
    ("silent", "sent no Dask greeting within 1 s"),
    ("http", "sent no Dask greeting within 1 s"),  # an HTTP server waits for a request
    ("talks first", "does not speak Dask's protocol (its first bytes: b'HTTP/1.1'"),
])
def test_a_scheduler_address_that_is_no_dask_scheduler_is_one_line(tmp_path, server, fragment):
    """Before: an HTTP server or a socket that accepts and never answers hung the command for
    minutes with no output (Dask waits for the greeting without a limit); a server that
    speaks first (what answered an unroutable address here) was a MemoryError of 3 EiB."""
    pytest.importorskip("distributed")
    import http.server
    import threading

    httpd = None
    if server == "http":
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        port = httpd.server_address[1]
    else:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        greeting = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" if server == "talks first" else None
        threading.Thread(target=_silent_server, args=(sock, greeting), daemon=True).start()
    config = tmp_path / "dask.yaml"
    config.write_text(TINY.read_text() + "circuit:\n  runner: dask\n  connect_timeout: 1.0\n")
    try:
        proc = _python("-c", "from analogep.cli import main; main()", "check", str(config), "--n", "1",
                       "--scheduler", f"tcp://127.0.0.1:{port}", "--plot", "c.png", cwd=tmp_path)
        try:
            _, err = proc.communicate(timeout=WAIT_S)
        finally:
            proc.kill()
    finally:
        if httpd is not None:
            httpd.shutdown()
        else:
            sock.close()
    assert proc.returncode == 2, err
    assert err.strip().splitlines() == [err.strip()] and err.startswith(
        f"error: circuit.scheduler: cannot reach the Dask scheduler at tcp://127.0.0.1:{port} ("), err
    assert fragment in err
    assert not (tmp_path / "c.png").exists()


def test_a_tls_scheduler_address_is_refused_as_a_setting(tmp_path):
    """Before: tls://127.0.0.1:1 was a TypeError traceback (no TLS context)."""
    from click.testing import CliRunner

    from analogep.cli.app import main

    res = CliRunner().invoke(main, ["check", str(TINY), "--n", "1", "--scheduler", "tls://127.0.0.1:1",
                                    "--plot", str(tmp_path / "c.png")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr.splitlines() == [res.stderr.strip()] and "circuit.scheduler" in res.stderr and "tls://" in res.stderr


def test_a_running_dask_scheduler_passes_the_greeting_check_and_solves():
    """The check before Dask connects accepts a real scheduler: a LocalCluster on tcp."""
    pytest.importorskip("distributed")
    import logging

    from distributed import LocalCluster

    from analogep.spice.run.dask_pool import DaskPool

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, protocol="tcp", dashboard_address=":0",
                      silence_logs=logging.CRITICAL) as cluster:
        pool = DaskPool(0, cluster.scheduler_address, connect_timeout=5.0)
        try:
            [result] = pool.map([SHORT], 60)
        finally:
            pool.close()
    assert result.message == "" and result.rows == 51 and "b" in result.vectors, result  # 0 to 1 V in 50 steps


def test_the_worker_folders_of_a_run_killed_by_kill_9_are_removed_at_the_next_start(tmp_path):
    """Before: `analogep-ngspice-*` folders, with decks inside, stayed in the temporary
    folder after kill -9 of a SPICE-backed train, one per worker, forever."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env_tmp = {"TMPDIR": str(temp)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from analogep.cli import main; main()", "train", str(TINY), "--out", "run",
         "--backend", "spice", "--spice-runner", "subprocess", "--steps", "200", "--batch", "8", "--no-samples"],
        env=dict(os.environ, PYTHONPATH=str(ROOT), **env_tmp), cwd=tmp_path, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    workers: list[int] = []
    try:
        _wait_until(lambda: metrics.exists() and metrics.stat().st_size > 0, "a first step logged", within=WAIT_S)
        workers = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=GONE_WITHIN_S)
        _wait_until(lambda: all(_dead(p) for p in workers), f"workers {workers} died with their parent")
    finally:
        _kill_leftovers(workers)
        proc.kill()
    left = sorted(p.name for p in temp.glob("analogep-ngspice-*"))
    assert left and all(name.startswith(f"analogep-ngspice-{proc.pid}-") for name in left)  # the killed run's
    live = temp / f"analogep-ngspice-{os.getpid()}-abcdefgh"  # a live process's folder (this test's)
    live.mkdir()
    starter = subprocess.run(
        [sys.executable, "-c", "from analogep.spice.run.pool import NgspicePool\n"
                               f"pool = NgspicePool('subprocess', 1); pool.map([{SHORT!r}], 60); pool.close()"],
        env=dict(os.environ, PYTHONPATH=str(ROOT), **env_tmp), capture_output=True, text=True, timeout=WAIT_S)
    assert starter.returncode == 0, starter.stderr
    assert sorted(p.name for p in temp.glob("analogep-ngspice-*")) == [live.name]
