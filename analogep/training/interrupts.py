"""Ctrl-C (or SIGTERM: a batch system's kill, `timeout`) during training: stop at the last
finished step, with a checkpoint of it.

A step's update, its log record and its checkpoint are written inside `held()`: a
SIGINT that arrives there waits until the block ends, so the state a checkpoint saves
on interrupt is always that of a whole step. Elsewhere (a relaxation) SIGINT interrupts
at once. SIGTERM takes the same path (the exit code then says which: 128 + the signal).
The handlers are installed only in the main thread and only over Python's default
ones; otherwise KeyboardInterrupt may land inside a block. `broken` records
any exception that left a block, so that no half-written step is saved.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C or SIGTERM (`signum`); `step` is the checkpoint's step in
    `out` (None: none)."""

    def __init__(self, out: Path, step: int | None, signum: int = signal.SIGINT):
        super().__init__(f"{out}: interrupted; checkpoint at step {step}")
        self.out, self.step, self.signum = out, step, int(signum)


class InterruptGuard:
    """Installs the SIGINT and SIGTERM handlers for a `with` block; `held()` marks a step's
    writes; `signum` is the signal that stopped training."""

    DEFAULTS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}

    def __init__(self) -> None:
        self._depth = 0
        self._pending = False
        self._previous: dict[int, object] = {}
        self.broken = False  # an exception escaped a held block: the state may be torn
        self.signum = int(signal.SIGINT)

    def __enter__(self) -> "InterruptGuard":
        if threading.current_thread() is threading.main_thread():
            for signum, default in self.DEFAULTS.items():
                if signal.getsignal(signum) is default:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        self.signum = int(signum)
        if self._depth:
            self._pending = True
        else:
            raise KeyboardInterrupt

    @contextmanager
    def held(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        except BaseException:
            self.broken = True
            raise
        finally:
            self._depth -= 1
        if not self._depth and self._pending:
            self._pending = False
            raise KeyboardInterrupt
