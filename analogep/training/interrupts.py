"""Ctrl-C during training: stop at the last finished step, with a checkpoint of it.

A step's update, its log record and its checkpoint are written inside `held()`: a
SIGINT that arrives there waits until the block ends, so the state a checkpoint saves
on interrupt is always that of a whole step. Elsewhere (a relaxation) SIGINT interrupts
at once. The handler is installed only in the main thread and only over Python's
default one; otherwise KeyboardInterrupt may land inside a block. `broken` records
any exception that left a block, so that no half-written step is saved.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C; `step` is the checkpoint's step in `out` (None: none)."""

    def __init__(self, out: Path, step: int | None):
        super().__init__(f"{out}: interrupted; checkpoint at step {step}")
        self.out, self.step = out, step


class InterruptGuard:
    """Installs the SIGINT handler for a `with` block; `held()` marks a step's writes."""

    def __init__(self) -> None:
        self._depth = 0
        self._pending = False
        self._previous = None
        self.broken = False  # an exception escaped a held block: the state may be torn

    def __enter__(self) -> "InterruptGuard":
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum, frame) -> None:
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
