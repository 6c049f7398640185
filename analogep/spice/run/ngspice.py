"""Running ngspice: in process through PySpice's shared-library interface, or `ngspice -b`.

Each `op` re-orders the sparse matrix, so a phase's training points go into one `.dc`
sweep over an index source. An ngspice built with KLU (>= 42) solves the same sweep
faster with `.options klu` (docs/results/spice.md); a build without KLU ignores the
option silently, so it is only added when the installed library has KLU.

Workarounds for PySpice 1.5, which this module uses only to load libngspice and to
receive its output: PySpice flags any stdout line containing "error" and any stderr
"Note:" as a failure although the analysis succeeded, so results are judged by the
returned vectors; commands go straight to ngSpice_Command (PySpice caps them at 1023
characters); after each run the plots are destroyed and the circuit removed
(`destroy all`, `remcirc`), or memory grows run after run.

One ngspice per process, so parallelism is a pool of worker processes, each holding
its own ngspice; the pool also enforces the timeout where the runner cannot stop a run
itself (a stuck worker is killed and replaced).
"""

from __future__ import annotations

import ctypes.util
import functools
import os
import re
import shutil
import subprocess
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from analogep.spice.run.lifetime import die_with_parent
from analogep.errors import AnalogepError

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


@dataclass(frozen=True)
class NgspiceInfo:
    version: str
    klu: bool
    shared: bool
    executable: str | None


def _find_shared() -> str | None:
    """libngspice's path: NGSPICE_LIBRARY_PATH, else the library the linker finds, looked up
    in this platform's multiarch folder (Debian: /usr/lib/<triplet>) and the usual ones."""
    env = os.environ.get("NGSPICE_LIBRARY_PATH")
    if env and Path(env).exists():
        return env
    name = ctypes.util.find_library("ngspice")
    if name is None:
        return None
    triplet = sysconfig.get_config_var("MULTIARCH") or ""
    folders = [f"/usr/lib/{triplet}", f"/lib/{triplet}"] if triplet else []
    for d in folders + ["/usr/lib", "/usr/local/lib", "/usr/lib64"]:
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
            # A KLU build carries KLU's messages; one without (Debian bookworm's ngspice 39) has no "KLU" string.
            klu = klu or b"KLU" in Path(path).read_bytes()
    shared = False
    if lib:
        try:
            import PySpice  # noqa: F401

            shared = True
        except ImportError:
            shared = False
    return NgspiceInfo(version, klu, shared, exe)


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


class SubprocessNgspice:
    """`ngspice -b` per deck: a fresh process each run, so it needs only the executable.
    It stops a run at the timeout itself, and ngspice dies with the process that started it."""

    enforces_timeout = True

    @staticmethod
    def unavailable() -> str | None:
        """Why this runner cannot run here, or None."""
        if ngspice_info().executable is None:
            return "ngspice is not installed (Debian: apt-get install ngspice libngspice0-dev)"
        return None

    def run(self, deck: str, timeout: float) -> RunResult:
        """The control block writes a binary rawfile of the saved vectors; a run past
        `timeout` seconds is abandoned."""
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="analogep-spice-") as tmp:
            raw = Path(tmp) / "out.raw"
            body = deck.rstrip().removesuffix(".end")
            control = f".control\nset filetype=binary\nrun\nwrite {raw}\n.endc\n.end\n"
            path = Path(tmp) / "deck.cir"
            path.write_text(body + control)
            try:
                proc = subprocess.run(["ngspice", "-b", str(path)], capture_output=True, text=True, timeout=timeout, cwd=tmp,
                                      preexec_fn=functools.partial(die_with_parent, os.getpid()))
            except subprocess.TimeoutExpired:
                return RunResult({}, 0, f"no answer within {timeout:g} s", time.perf_counter() - t0)
            vectors = _read_raw(raw) if raw.exists() else {}
        rows = len(next(iter(vectors.values()))) if vectors else 0
        return RunResult(vectors, rows, _messages(proc.stdout + "\n" + proc.stderr), time.perf_counter() - t0)


class SharedNgspice:
    """libngspice in this process, through PySpice's loader and output callbacks. Not
    re-entrant: one per process (the pool gives each worker its own). A run cannot be
    stopped from inside, so the pool kills the worker at the timeout."""

    enforces_timeout = False

    @staticmethod
    def unavailable() -> str | None:
        """Why this runner cannot run here, or None."""
        if not ngspice_info().shared:
            return "libngspice or PySpice is not installed (Debian: apt-get install libngspice0-dev)"
        return None

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

    def run(self, deck: str, timeout: float) -> RunResult:
        """One deck, in process (the pool enforces `timeout` by killing the worker)."""
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
