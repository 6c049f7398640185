"""A pool of worker processes, one ngspice each (ngspice's shared library is not
re-entrant), that runs decks in parallel.

What can happen to a worker, and what the pool does:
- a deck runs past its timeout: the worker is killed and replaced, and the deck comes back
  with "no answer within T s" and no vectors. The shared-library runner is killed at T; a
  runner that enforces the timeout itself (`enforces_timeout`, `ngspice -b`) is given
  KILL_GRACE_S more, so that its own report comes first;
- it dies during a deck (ngspice took the process down): replaced; the deck comes back
  with a message naming the worker and how it died, and the backend solves those points
  again;
- it died while idle (killed from outside): replaced, and the deck it was about to get
  goes to the fresh worker, so the answers are the same as without the death;
- the parent dies, even by kill -9: the workers die with it (spice/run/lifetime.py); they
  also leave when their pipe to the parent closes;
- Ctrl-C: workers ignore SIGINT and print nothing; the parent's KeyboardInterrupt closes
  the pool, which kills the workers still busy with a deck at once;
- a map left by an exception leaves workers owing an answer: they are replaced before the
  next map, so a late answer never stands in for another deck's.
Each worker keeps its temporary files in its own folder, removed when the worker is
retired. The folder's name carries the pool owner's pid (analogep-ngspice-PID-xxxxxxxx):
a parent killed by kill -9 cannot remove its workers' folders, so the first pool a later
process starts removes the folders of owners that are gone.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait

from analogep.spice.run.lifetime import die_with_parent
from analogep.spice.run.ngspice import NgspiceError, RunResult
from analogep.registry import resolve
from analogep.runtime import available_cores, free_cores

# Extra seconds a runner that enforces the deck's timeout itself (subprocess) gets before
# the pool kills its worker: the time to stop ngspice and report.
KILL_GRACE_S = 5.0
# Seconds a stopping worker gets to exit before it is killed.
STOP_WAIT_S = 2.0
# Seconds a worker whose pipe closed gets to finish dying, so its exit status is known.
DEATH_WAIT_S = 1.0
# The workers' temporary folders: SCRATCH_PREFIX + the owner's pid + "-" + mkdtemp's suffix.
SCRATCH_PREFIX = "analogep-ngspice-"
_swept = False  # whether this process has removed the folders of dead owners


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_scratch(folder: str | None = None) -> list[str]:
    """Remove the worker folders (in `folder`, default the temporary folder) whose owning
    process is gone: what a pool's parent killed by kill -9 left behind. A folder whose
    owner's pid is alive again (reused by another process) is left alone. Returns the
    folders removed."""
    folder = folder or tempfile.gettempdir()
    pattern = re.compile(re.escape(SCRATCH_PREFIX) + r"(\d+)-[A-Za-z0-9_]{8}")
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        path = os.path.join(folder, name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))) \
                and os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _worker_main(conn, runner: str, threads: int, parent_pid: int, parent_ends: list, scratch: str) -> None:
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it closes the pool
    for end in parent_ends:  # the parent's pipe ends, copied by fork: closed, recv sees EOF once the parent is gone
        end.close()
    tempfile.tempdir = scratch
    # ngspice's OpenMP device loading: share the cores among the workers.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        engine, broken = resolve("runner", runner)(), ""
    except Exception as exc:  # answer every deck with the reason instead of dying with a traceback
        engine, broken = None, f"ngspice could not start: {type(exc).__name__}: {exc}"
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if job is None:
            return
        deck, timeout = job
        try:
            result = engine.run(deck, timeout) if engine is not None else RunResult({}, 0, broken)
        except Exception as exc:  # report, do not die: the parent turns it into a message
            result = RunResult({}, 0, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(result)
        except OSError:
            return


def _exit_status(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass(eq=False)
class _Worker:
    process: mp.Process
    conn: object
    scratch: str  # its temporary folder
    started: float = 0.0
    job: int = -1  # the deck it owes an answer for, -1 when idle


@dataclass
class NgspicePool:
    """Worker processes running `runner` (a name in analogep.registry.RUNNERS that can run
    here: see spice/run/runners.py); `map` runs decks in parallel with a timeout. Use it from
    the thread that made it (spice/run/lifetime.py), and `close` it."""

    runner: str
    workers: int = 0
    _pool: list[_Worker] = field(default_factory=list, repr=False)
    _closed: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        global _swept
        if self.workers <= 0:
            self.workers = free_cores()
        if not _swept:
            remove_stale_scratch()
            _swept = True

    def kill_after(self, timeout: float) -> float:
        """Seconds a deck may run before its worker is killed: `timeout`, plus KILL_GRACE_S
        for a runner that enforces the timeout itself."""
        enforces = getattr(resolve("runner", self.runner), "enforces_timeout", False)
        return timeout + (KILL_GRACE_S if enforces else 0.0)

    def map(self, decks: list[str], timeout: float) -> list[RunResult]:
        """Solve each deck (its saved vectors come back); order kept. A deck running past
        `timeout` seconds has its worker killed and comes back with a message and no vectors."""
        if self._closed:
            raise RuntimeError("NgspicePool.map after close()")
        for w in [w for w in self._pool if w.job >= 0]:  # left owing an answer by an interrupted map
            self._replace(w, 0.0)
        while len(self._pool) < min(self.workers, max(len(decks), 1)):
            self._pool.append(self._spawn())
        limit = self.kill_after(timeout)
        results: list[RunResult | None] = [None] * len(decks)
        todo = list(range(len(decks)))[::-1]
        busy: list[_Worker] = []
        idle = list(self._pool)
        while todo or busy:
            while todo and idle:
                job = todo.pop()
                busy.append(self._hand(idle.pop(), job, decks[job], timeout))
            first_deadline = min(w.started for w in busy) + limit
            ready = wait([w.conn for w in busy], timeout=max(0.0, first_deadline - time.perf_counter()))
            now = time.perf_counter()
            for w in list(busy):
                if w.conn in ready:
                    busy.remove(w)
                    try:
                        results[w.job] = w.conn.recv()
                        w.job = -1
                        idle.append(w)
                    except (EOFError, OSError):  # the worker died (e.g. ngspice took the process down)
                        job, fresh = w.job, self._replace(w, DEATH_WAIT_S)
                        how = _exit_status(w.process.exitcode)
                        results[job] = RunResult({}, 0, f"ngspice worker {w.process.pid} died ({how})")
                        idle.append(fresh)
                elif now - w.started >= limit:
                    results[w.job] = RunResult({}, 0, f"no answer within {timeout:g} s", now - w.started)
                    busy.remove(w)
                    idle.append(self._replace(w, 0.0))
        return results  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the workers: idle ones are asked to exit; busy ones (a map interrupted, by
        Ctrl-C say) would finish their deck first, so they are killed."""
        self._closed = True
        for w in self._pool:
            if w.job < 0:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
        for w in self._pool:
            self._retire(w, STOP_WAIT_S if w.job < 0 else 0.0)
        self._pool.clear()

    # --- workers ----------------------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        ctx = mp.get_context("fork")  # the parent never loads ngspice, so a fork starts clean
        parent, child = ctx.Pipe()
        threads = max(1, available_cores() // self.workers)
        scratch = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
        parent_ends = [parent] + [w.conn for w in self._pool]
        proc = ctx.Process(target=_worker_main, args=(child, self.runner, threads, os.getpid(), parent_ends, scratch),
                           daemon=True)
        proc.start()
        child.close()
        return _Worker(proc, parent, scratch)

    def _hand(self, w: _Worker, job: int, deck: str, timeout: float) -> _Worker:
        """Give worker `w` a deck. One that died while idle is replaced and the deck goes to
        the fresh worker; if that one cannot take it either, NgspiceError says which."""
        try:
            w.conn.send((deck, timeout))
        except OSError:  # broken pipe: it died while idle
            fresh = self._replace(w, DEATH_WAIT_S)
            try:
                fresh.conn.send((deck, timeout))
            except OSError as exc:
                raise NgspiceError(
                    f"ngspice worker {w.process.pid} died while idle ({_exit_status(w.process.exitcode)}) and its "
                    f"replacement {fresh.process.pid} cannot take a deck either ({exc.strerror or exc})"
                ) from None
            w = fresh
        w.job, w.started = job, time.perf_counter()
        return w

    def _replace(self, w: _Worker, wait_s: float) -> _Worker:
        """Retire a worker and start a fresh one in its place."""
        self._retire(w, wait_s)
        fresh = self._spawn()
        self._pool[self._pool.index(w)] = fresh
        return fresh

    @staticmethod
    def _retire(w: _Worker, wait_s: float) -> None:
        """Let a worker exit within `wait_s` seconds, else kill it (ours, by its process
        object); close its pipe and remove its temporary folder."""
        w.process.join(timeout=wait_s)
        if w.process.is_alive():
            w.process.kill()
            w.process.join(timeout=5)
        w.conn.close()
        shutil.rmtree(w.scratch, ignore_errors=True)
