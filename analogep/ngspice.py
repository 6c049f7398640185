"""Running ngspice: in process through PySpice's shared-library interface, or `ngspice -b`.

Measured on Debian's ngspice 39 (issue 3): each `op` re-orders the sparse matrix, so a
phase's training points go into one `.dc` sweep over an index source; an ngspice built
with KLU (>= 42) solves the same sweep several times faster with `.options klu` (39
ignores the option silently, so it is only added when the installed library has KLU).

Workarounds for PySpice 1.5, which this module uses only to load libngspice and to
receive its output: PySpice flags any stdout line containing "error" and any stderr
"Note:" as a failure although the analysis succeeded, so results are judged by the
returned vectors; commands go straight to ngSpice_Command (PySpice caps them at 1023
characters); after each run the plots are destroyed and the circuit removed
(`destroy all`, `remcirc`), or memory grows run after run.

One ngspice per process, so parallelism is a pool of worker processes, each holding
its own ngspice; the pool also enforces the timeout (a stuck worker is killed and
replaced).
"""

from __future__ import annotations

import ctypes.util
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np

from .errors import AnalogepError

RUNNERS = ("auto", "shared", "subprocess")
_MESSAGE = re.compile(r"error|singular|converge|failed|abort|too many|timestep", re.IGNORECASE)


class NgspiceError(AnalogepError):
    """ngspice is missing or failed in a way no retry can fix."""


@dataclass
class RunResult:
    """Vectors of one ngspice run (name -> values per sweep point) and how it went."""

    vectors: dict[str, np.ndarray]
    rows: int
    message: str = ""
    seconds: float = 0.0
    timed_out: bool = False


@dataclass(frozen=True)
class NgspiceInfo:
    version: str
    klu: bool
    shared: bool
    executable: str | None


def library_path() -> str:
    """Absolute path of the subcircuit library, for decks solved outside their folder."""
    return str(resources.files("analogep.circuits").joinpath("analogep.lib"))


def _find_shared() -> str | None:
    env = os.environ.get("NGSPICE_LIBRARY_PATH")
    if env and Path(env).exists():
        return env
    name = ctypes.util.find_library("ngspice")
    if name is None:
        return None
    for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib", "/usr/local/lib", "/usr/lib64"):
        if (Path(d) / name).exists():
            return str(Path(d) / name)
    return name


@lru_cache(maxsize=1)
def ngspice_info() -> NgspiceInfo:
    """Installed ngspice: version, KLU support, shared library, executable."""
    exe = shutil.which("ngspice")
    lib = _find_shared()
    version = "unknown"
    if exe:
        try:
            out = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=30).stdout
            m = re.search(r"ngspice-(\S+)", out)
            version = m.group(1) if m else version
        except (OSError, subprocess.TimeoutExpired):
            pass
    klu = False
    for path in (lib, exe):
        if path and Path(path).is_file():
            # A KLU build carries KLU's messages; ngspice 39 has no "KLU" string at all.
            klu = klu or b"KLU" in Path(path).read_bytes()
    shared = False
    if lib:
        try:
            import PySpice  # noqa: F401

            shared = True
        except ImportError:
            shared = False
    return NgspiceInfo(version, klu, shared, exe)


def choose_runner(name: str) -> str:
    """auto -> shared when libngspice and PySpice are there, else subprocess."""
    info = ngspice_info()
    if name not in RUNNERS:
        raise NgspiceError(f"--spice-runner: {name!r} is not allowed; must be one of {', '.join(RUNNERS)}")
    if name in ("auto", "shared") and info.shared:
        return "shared"
    if name == "shared":
        raise NgspiceError("spice runner 'shared': libngspice or PySpice is not installed (Debian: apt-get install libngspice0-dev)")
    if info.executable is None:
        raise NgspiceError("ngspice is not installed (Debian: apt-get install ngspice libngspice0-dev)")
    return "subprocess"


def _vector_key(name: str) -> str:
    """Normalise vector names: 'v(x3)' / 'x3' -> 'x3'; 'i(vclamp3)' / 'vclamp3#branch' -> 'vclamp3#branch'."""
    n = name.strip().lower()
    if n.startswith("v(") and n.endswith(")"):
        return n[2:-1]
    if n.startswith("i(") and n.endswith(")"):
        return n[2:-1] + "#branch"
    return n


def _messages(text: str) -> str:
    """ngspice's own diagnosis, shortened to one line: its last error and 'trouble with' lines."""
    lines = [" ".join(ln.split()) for ln in text.splitlines() if _MESSAGE.search(ln) and "can't find init file" not in ln]
    lines = list(dict.fromkeys(lines))
    key = [ln for ln in lines if "trouble" in ln.lower() or ln.lower().startswith("error")]
    return "; ".join((key or lines)[-2:])[:300]


def _read_raw(path: Path) -> dict[str, np.ndarray]:
    """A binary ngspice rawfile (real data) -> vectors."""
    data = path.read_bytes()
    head, sep, body = data.partition(b"Binary:\n")
    if not sep:
        raise ValueError("not a binary rawfile")
    lines = head.decode("latin-1").splitlines()
    n_vars = n_points = 0
    names: list[str] = []
    for k, line in enumerate(lines):
        if line.startswith("No. Variables:"):
            n_vars = int(line.split(":")[1])
        elif line.startswith("No. Points:"):
            n_points = int(line.split(":")[1])
        elif line.startswith("Variables:"):
            names = [lines[k + 1 + j].split()[1] for j in range(n_vars)]
    values = np.frombuffer(body[: 8 * n_vars * n_points], dtype=np.float64)
    n_points = values.size // max(n_vars, 1)
    values = values[: n_points * n_vars].reshape(n_points, n_vars)
    return {_vector_key(n): values[:, j].copy() for j, n in enumerate(names)}


# --- the two runners -----------------------------------------------------------------------------


def run_subprocess(deck: str, timeout: float) -> RunResult:
    """`ngspice -b` on the deck; the control block writes a binary rawfile of the saved vectors."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="analogep-spice-") as tmp:
        raw = Path(tmp) / "out.raw"
        body = deck.rstrip().removesuffix(".end")
        control = f".control\nset filetype=binary\nrun\nwrite {raw}\n.endc\n.end\n"
        path = Path(tmp) / "deck.cir"
        path.write_text(body + control)
        try:
            proc = subprocess.run(["ngspice", "-b", str(path)], capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            return RunResult({}, 0, f"no answer within {timeout:g} s", time.perf_counter() - t0, True)
        vectors = _read_raw(raw) if raw.exists() else {}
    rows = len(next(iter(vectors.values()))) if vectors else 0
    return RunResult(vectors, rows, _messages(proc.stdout + "\n" + proc.stderr), time.perf_counter() - t0)


class SharedNgspice:
    """libngspice in this process, through PySpice's loader and output callbacks."""

    def __init__(self) -> None:
        import logging

        from PySpice.Spice.NgSpice.Shared import NgSpiceShared, ffi

        logging.getLogger("PySpice").setLevel(logging.CRITICAL)
        if NgSpiceShared.LIBRARY_PATH is None:
            NgSpiceShared.setup_platform()
        lib = _find_shared()
        if lib:
            NgSpiceShared.LIBRARY_PATH = lib
        self._ffi = ffi
        self._ng = NgSpiceShared.new_instance()
        self._api = self._ng._ngspice_shared
        self.command("set nomoremode")

    def command(self, cmd: str) -> str:
        self._ng.clear_output()
        self._api.ngSpice_Command(cmd.encode("ascii"))
        return "\n".join(self._ng._stdout + self._ng._stderr)

    def run(self, deck: str) -> RunResult:
        t0 = time.perf_counter()
        lines = [ln for ln in deck.splitlines() if ln] + [""]
        keep = [self._ffi.new("char[]", ln.encode("utf8")) for ln in lines] + [self._ffi.NULL]
        self._ng.clear_output()
        self._api.ngSpice_Circ(self._ffi.new("char *[]", keep))
        output = "\n".join(self._ng._stdout + self._ng._stderr)
        output += "\n" + self.command("run")
        vectors: dict[str, np.ndarray] = {}
        plot = self._ffi.string(self._api.ngSpice_CurPlot()).decode()
        if plot.startswith("dc") or plot.startswith("op"):
            names = self._api.ngSpice_AllVecs(plot.encode())
            k = 0
            while names[k] != self._ffi.NULL:
                name = self._ffi.string(names[k]).decode()
                info = self._api.ngGet_Vec_Info(f"{plot}.{name}".encode())
                if info != self._ffi.NULL and info.v_realdata != self._ffi.NULL:
                    buf = self._ffi.buffer(info.v_realdata, info.v_length * 8)
                    vectors[_vector_key(name)] = np.frombuffer(buf, dtype=np.float64).copy()
                k += 1
        self.command("destroy all")
        self.command("remcirc")
        rows = min((len(v) for v in vectors.values()), default=0)
        return RunResult(vectors, rows, _messages(output), time.perf_counter() - t0)


# --- the pool ------------------------------------------------------------------------------------


def _worker_main(conn, runner: str, threads: int) -> None:
    # ngspice's OpenMP device loading: share the cores among the workers.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    shared = SharedNgspice() if runner == "shared" else None
    while True:
        job = conn.recv()
        if job is None:
            return
        deck, timeout = job
        try:
            result = shared.run(deck) if shared is not None else run_subprocess(deck, timeout)
        except Exception as exc:  # report, do not die: the parent turns it into a message
            result = RunResult({}, 0, f"{type(exc).__name__}: {exc}")
        conn.send(result)


def free_cores() -> int:
    """Cores not already busy (available cores minus the 1-minute load average), at least 1.

    The default worker count. Each ngspice process holds its own sparse matrix (170k non-zeros) and
    pays its own ordering; on a 2-core machine already running two training processes,
    two ngspice workers took 1.7x longer per point than one (64 points, paper circuit),
    so busy cores are left out rather than oversubscribed.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = int(round(os.getloadavg()[0]))
    except (AttributeError, OSError):
        busy = 0
    return max(1, min(cores, cores - busy))


@dataclass
class _Worker:
    process: mp.Process
    conn: object
    started: float = 0.0
    job: int = -1


@dataclass
class NgspicePool:
    """Worker processes, one ngspice each; `map` runs decks in parallel with a timeout."""

    runner: str = "auto"
    workers: int = 0
    _pool: list[_Worker] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.runner = choose_runner(self.runner)
        if self.workers <= 0:
            self.workers = free_cores()

    def _spawn(self) -> _Worker:
        ctx = mp.get_context("fork")  # the parent never loads ngspice, so a fork starts clean
        parent, child = ctx.Pipe()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, cores // self.workers)
        proc = ctx.Process(target=_worker_main, args=(child, self.runner, threads), daemon=True)
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def map(self, decks: list[str], timeout: float) -> list[RunResult]:
        """Solve each deck (its saved vectors come back); order kept. A deck running past
        `timeout` seconds has its worker killed and comes back with timed_out=True."""
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
            ready = wait([w.conn for w in busy], timeout=0.5)
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
                elif now - w.started > timeout + 5.0:
                    results[w.job] = RunResult({}, 0, f"no answer within {timeout:g} s", now - w.started, True)
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
            w.process.join(timeout=2)
            if w.process.is_alive():
                w.process.kill()
        self._pool.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

