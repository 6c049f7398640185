"""A pool of worker processes, one ngspice each (ngspice's shared library is not
re-entrant), that runs decks in parallel and enforces a timeout by killing a stuck worker
and starting a fresh one in its place."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait

from analogep.circuit.ngspice import RunResult
from analogep.registry import resolve
from analogep.runtime import available_cores, free_cores

# How often the parent looks for finished or overdue workers (seconds).
POLL_S = 0.5
# Extra seconds a worker gets past the deck's timeout before it is killed: the subprocess
# runner enforces the timeout itself and needs a moment to report it.
KILL_GRACE_S = 5.0
# Seconds a stopping worker gets to exit before it is killed.
STOP_WAIT_S = 2.0


def _worker_main(conn, runner: str, threads: int) -> None:
    # ngspice's OpenMP device loading: share the cores among the workers.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    engine = resolve("runner", runner)()
    while True:
        job = conn.recv()
        if job is None:
            return
        deck, timeout = job
        try:
            result = engine.run(deck, timeout)
        except Exception as exc:  # report, do not die: the parent turns it into a message
            result = RunResult({}, 0, f"{type(exc).__name__}: {exc}")
        conn.send(result)


@dataclass
class _Worker:
    process: mp.Process
    conn: object
    started: float = 0.0
    job: int = -1


@dataclass
class NgspicePool:
    """Worker processes running `runner` (a name in analogep.registry.RUNNERS that can run
    here: see circuit/runners.py); `map` runs decks in parallel with a timeout."""

    runner: str
    workers: int = 0
    _pool: list[_Worker] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.workers <= 0:
            self.workers = free_cores()

    def _spawn(self) -> _Worker:
        ctx = mp.get_context("fork")  # the parent never loads ngspice, so a fork starts clean
        parent, child = ctx.Pipe()
        threads = max(1, available_cores() // self.workers)
        proc = ctx.Process(target=_worker_main, args=(child, self.runner, threads), daemon=True)
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def map(self, decks: list[str], timeout: float) -> list[RunResult]:
        """Solve each deck (its saved vectors come back); order kept. A deck running past
        `timeout` seconds has its worker killed and comes back with a message and no vectors."""
        while len(self._pool) < min(self.workers, max(len(decks), 1)):
            self._pool.append(self._spawn())
        results: list[RunResult | None] = [None] * len(decks)
        todo = list(range(len(decks)))[::-1]
        busy: list[_Worker] = []
        idle = list(self._pool)
        while todo or busy:
            while todo and idle:
                w = idle.pop()
                w.job, w.started = todo.pop(), time.perf_counter()
                w.conn.send((decks[w.job], timeout))
                busy.append(w)
            ready = wait([w.conn for w in busy], timeout=POLL_S)
            now = time.perf_counter()
            for w in list(busy):
                if w.conn in ready:
                    busy.remove(w)
                    try:
                        results[w.job] = w.conn.recv()
                        idle.append(w)
                    except (EOFError, OSError):  # the worker died (e.g. ngspice took the process down)
                        results[w.job] = RunResult({}, 0, "ngspice process died")
                        idle.append(self._replace(w))
                elif now - w.started > timeout + KILL_GRACE_S:
                    results[w.job] = RunResult({}, 0, f"no answer within {timeout:g} s", now - w.started)
                    busy.remove(w)
                    idle.append(self._replace(w))
        return results  # type: ignore[return-value]

    def _replace(self, w: _Worker) -> _Worker:
        """Kill a worker (ours, by its process object) and start a fresh one in its place."""
        if w.process.is_alive():
            w.process.kill()
        w.process.join(timeout=5)
        fresh = self._spawn()
        self._pool[self._pool.index(w)] = fresh
        return fresh

    def close(self) -> None:
        for w in self._pool:
            try:
                w.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for w in self._pool:
            w.process.join(timeout=STOP_WAIT_S)
            if w.process.is_alive():
                w.process.kill()
        self._pool.clear()
