"""ngspice farmed out over Dask distributed: the `dask` runner (analogep.registry.RUNNERS).

With no scheduler address it starts a `distributed.LocalCluster` of one single-threaded
worker process per free core; with `circuit.scheduler: tcp://HOST:PORT` it uses a running
cluster (dask-scheduler + dask-worker on any hosts, dask-jobqueue, Kubernetes...), so the
number of ngspice processes is the number of Dask workers. Each worker process loads one
ngspice (the shared library when it can, else `ngspice -b`: `auto` chosen on the worker)
on its first deck and keeps it between calls; ngspice is not re-entrant, so a lock makes a
worker with several threads run one deck at a time.

Decks are self-contained (the cell library is embedded), so a worker needs analogep and
ngspice, nothing from this machine's disk. A deck's long sections (the crossbars, the same
in every chunk of a training step) go to the cluster once per map as tasks of their own
that the chunks depend on, and only the rest (anchor tables, nodeset) once per chunk. All
of it lives in the scheduler's task graph, so when a worker dies mid-sweep (its process
killed, its host lost) the scheduler runs its chunk again on another worker, recomputing
any section it held, and the sweep completes; a deck that kills every worker it lands on
comes back, like the local pool's, as a result with a message.

A script that starts the local cluster must guard its entry point with
`if __name__ == "__main__":` (the workers are spawned processes that import it).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import socket
import threading

from analogep.spice.run.ngspice import NgspiceError, RunResult
from analogep.config.hardware import LOCAL_SCHEDULER
from analogep.runtime import available_cores, free_cores

# Seconds to reach a scheduler before giving up with one line (circuit.connect_timeout).
CONNECT_TIMEOUT_S = 10.0
# A Dask message starts with its length as 8 little-endian bytes; a scheduler's greeting
# (its handshake) is a few hundred bytes. A larger length is not Dask speaking: an HTTP
# server's "HTTP/1.1" read as a length asks for exabytes.
GREETING_MAX = 1 << 20
# Extra seconds past the decks' own timeouts before a map gives up on unfinished decks.
GRACE_S = 30.0
# Deck sections at least this long (characters) are sent once per map and shared by the
# chunks that carry them (each crossbar read of the paper circuit is 0.3-0.7 MB).
SHARED_SECTION = 1 << 15

_LOCK = threading.Lock()
_ENGINE: list = []  # this worker process's ngspice, created on its first deck


def _sections(deck: str) -> list[str]:
    """A deck cut before each section header (render's '* --- ' lines); joined, the deck."""
    return re.split(r"(?m)^(?=\* --- )", deck)


def section_text(text: str) -> str:
    """A shared deck section as a task of its own (its result is the text)."""
    return text


def solve_on_worker(sections: list[str], timeout: float) -> RunResult:
    """Runs on a Dask worker: one deck (its sections, joined) on the process's own
    ngspice, loaded once."""
    from analogep.spice.run.runners import AUTO, choose_runner
    from analogep.registry import resolve

    deck = "".join(sections)
    with _LOCK:
        if not _ENGINE:
            _ENGINE.append(resolve("runner", choose_runner(AUTO))())
        try:
            return _ENGINE[0].run(deck, timeout)
        except Exception as exc:  # report, do not die: the backend turns it into a message
            return RunResult({}, 0, f"{type(exc).__name__}: {exc}")


def _probe(address: str, timeout: float) -> None:
    """Check that a Dask scheduler answers at `address` within `timeout` seconds, before
    Dask connects: its client waits for the scheduler's greeting without a limit (a
    server that accepts and stays silent hangs it forever) and reads whatever comes as a
    message length (an HTTP server's reply asks for exabytes). A scheduler greets first,
    so its first 8 bytes are the length of a short message. OSError (naming what was
    found) otherwise; Dask's own connect would keep retrying a closed port until its timeout."""
    from distributed.comm import parse_address, parse_host_port

    scheme, location = parse_address(address)
    if scheme != "tcp":
        raise OSError(f"a {scheme}:// address; analogep connects to tcp:// schedulers only")
    with socket.create_connection(parse_host_port(location), timeout=timeout) as conn:
        head = b""
        try:
            while len(head) < 8:
                chunk = conn.recv(8 - len(head))
                if not chunk:
                    raise OSError(f"the server closed the connection without a Dask greeting (it sent {head!r})")
                head += chunk
        except socket.timeout:
            raise OSError(f"the server accepted the connection but sent no Dask greeting within {timeout:g} s "
                          f"(not a Dask scheduler, or stuck; circuit.connect_timeout)") from None
    length = int.from_bytes(head, "little")
    if not 0 < length <= GREETING_MAX:
        raise OSError(f"the server does not speak Dask's protocol (its first bytes: {head!r})")


class DaskNgspice:
    """The `dask` runner: builds a `DaskPool` (see the module docstring)."""

    @staticmethod
    def unavailable() -> str | None:
        """Why this runner cannot run here, or None."""
        try:
            import distributed  # noqa: F401
        except ImportError:
            return "dask.distributed is not installed (pip install 'dask[distributed]')"
        return None

    @staticmethod
    def make_pool(workers: int, scheduler: str, connect_timeout: float = CONNECT_TIMEOUT_S) -> "DaskPool":
        return DaskPool(workers, scheduler, connect_timeout)


class DaskPool:
    """Runs decks on the workers of a Dask cluster; the interface of spice/run/pool.py NgspicePool
    (`workers`, `runner`, `map`, `close`). `workers`: processes of the local cluster
    (0: the free cores), or for a running cluster the most of its workers a map uses
    (0: all of them), reached within `connect_timeout` seconds or refused in one line."""

    runner = "dask"

    def __init__(self, workers: int = 0, scheduler: str = LOCAL_SCHEDULER, connect_timeout: float = CONNECT_TIMEOUT_S):
        from distributed import Client, LocalCluster

        self.scheduler = scheduler
        self._cluster = None
        if scheduler == LOCAL_SCHEDULER:
            n = workers = workers or free_cores()
            # ngspice's OpenMP device loading: share the cores among the workers.
            threads = str(max(1, available_cores() // n))
            self._cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                silence_logs=logging.CRITICAL, env={"OMP_NUM_THREADS": threads},
            )
            self.client = Client(self._cluster)
        else:
            try:
                _probe(scheduler, connect_timeout)
                self.client = Client(scheduler, timeout=connect_timeout)
            except Exception as exc:  # whatever Dask meets there (a TypeError, a MemoryError...): one line
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise NgspiceError(f"circuit.scheduler: cannot reach the Dask scheduler at {scheduler} ({reason[:200]})") from None
        self._cap = workers

    @property
    def workers(self) -> int:
        """Worker processes a map spreads its decks over: the local cluster's size (fixed,
        so a worker being restarted does not change how a phase is split), or the running
        cluster's workers now, at most `workers` when that was given."""
        if self._cluster is not None:
            return self._cap
        n = len(self.client.scheduler_info().get("workers", {}))
        return max(1, min(n, self._cap) if self._cap else n)

    def map(self, decks: list[str], timeout: float) -> list[RunResult]:
        """Solve each deck on some worker; order kept. A deck still unanswered after its
        share of the time (timeout per deck per worker, plus GRACE_S) comes back with a
        message and no vectors, and the workers running such decks are restarted."""
        from distributed import wait
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        shared: dict[str, object] = {}

        def sections(deck: str) -> list:
            out = []
            for text in _sections(deck):
                if len(text) >= SHARED_SECTION:
                    key = "analogep-deck-section-" + hashlib.sha1(text.encode()).hexdigest()
                    if key not in shared:
                        shared[key] = self.client.submit(section_text, text, key=key)
                    text = shared[key]
                out.append(text)
            return out

        futures = [self.client.submit(solve_on_worker, sections(deck), timeout, pure=False) for deck in decks]
        rounds = math.ceil(len(decks) / self.workers) if decks else 0
        try:
            wait(futures, timeout=timeout * rounds + GRACE_S)
        except TimeoutError:
            pass
        except Exception:  # some futures were cancelled (the scheduler went away): each says so below
            if not any(f.cancelled() for f in futures):
                raise
        pending = {f for f in futures if f.status == "pending"}
        if pending:
            self._restart_running(pending)
        results = []
        for f in futures:
            if f in pending:
                results.append(RunResult({}, 0, f"no answer within {timeout:g} s"))
                continue
            try:
                results.append(f.result())
            except KilledWorker:  # the deck took every worker that ran it down with it
                results.append(RunResult({}, 0, "ngspice process died"))
            except FutureCancelledError as exc:
                raise NgspiceError(f"Dask scheduler {self.scheduler}: lost the connection ({exc})") from None
            except NgspiceError as exc:
                raise NgspiceError(f"Dask worker: {exc}") from None
        for f in futures + list(shared.values()):
            f.release()
        return results

    def _restart_running(self, pending) -> None:
        """Restart the workers that still run overdue decks (a stuck ngspice cannot be stopped otherwise)."""
        keys = {f.key for f in pending}
        try:
            stuck = [w for w, running in self.client.processing().items() if keys & set(running)]
            for f in pending:
                f.cancel()
            if stuck:
                self.client.restart_workers(stuck)
        except Exception:  # best effort: the results already say what happened
            pass

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
