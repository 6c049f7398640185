"""The run folder lock: one process at a time writes a run folder.

An exclusive `flock` on RUN_DIR/.lock, held for the whole training (the CLI holds it
through the final samples too). The kernel drops it when the holder exits or is killed,
so a crashed run never blocks the next one; the file stays, holding the last holder's
pid for the refusal message. Nested `run_lock` calls in one thread share the lock; a
forked child (a SPICE worker) closes its copy, so an orphaned child cannot keep it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from analogep.errors import CheckpointError

LOCK_NAME = ".lock"

_held: dict[tuple[str, int], list[int]] = {}  # (folder, thread id) -> [fd, depth]


def _close_in_child() -> None:
    for fd, _ in _held.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_close_in_child)


@contextmanager
def run_lock(folder: str | Path, *, create: bool = False) -> Iterator[None]:
    """Hold `folder`'s lock for the block (`create`: make the folder first); raise
    CheckpointError at once, naming the holder's pid, when another process holds it."""
    folder = Path(folder)
    if create:
        _os_call(folder, "create the run folder", lambda: folder.mkdir(parents=True, exist_ok=True))
    key = (str(folder.resolve()), threading.get_ident())
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    path = folder / LOCK_NAME
    fd = _os_call(folder, f"create {LOCK_NAME}", lambda: os.open(path, os.O_RDWR | os.O_CREAT, 0o644))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        who = f"another analogep process (pid {holder})" if holder else "another analogep process"
        raise CheckpointError(f"{folder}: {who} is writing this run folder; wait for it to end or use another --out") from None
    except BaseException:
        os.close(fd)
        raise
    try:
        _write_pid(fd)
        _held[key] = [fd, 1]
        yield
    finally:
        _held.pop(key, None)
        os.close(fd)  # releases the flock


def _write_pid(fd: int) -> None:
    """For the refusal message only: a full disk must not stop the run here."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _os_call(folder: Path, what: str, call):
    try:
        return call()
    except OSError as exc:
        raise CheckpointError(f"{folder}: cannot {what} ({exc.strerror or exc})") from None
