"""Process-level settings: cores, BLAS threads.

A BLAS thread on a core another process keeps busy holds up every matrix product it
shares: on a loaded machine a numpy training step runs many times slower with a thread per
core than with fewer (docs/results/speed.md). So the thread count is chosen on purpose,
and a user can set it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from threadpoolctl import threadpool_limits


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """All cores this process may use but one: training pairs the next batch (exact OT) in a
    worker thread beside the BLAS work, and a busy core costs more than a missing thread."""
    return max(1, available_cores() - 1)


@contextmanager
def blas_threads(n: int = 0) -> Iterator[int]:
    """Limit BLAS threads to n (0: default_threads()) inside the block."""
    n = n or default_threads()
    with threadpool_limits(limits=n, user_api="blas"):
        yield n


def free_cores() -> int:
    """Cores not already busy (available cores minus the 1-minute load average), at least 1.

    The default number of ngspice workers. Each ngspice process holds its own sparse matrix
    (170k non-zeros on the paper circuit) and pays its own ordering, so a worker on a busy
    core slows the others more than it adds (docs/results/spice.md): busy cores are left
    out rather than oversubscribed.
    """
    cores = available_cores()
    try:
        busy = int(round(os.getloadavg()[0]))
    except (AttributeError, OSError):
        busy = 0
    return max(1, min(cores, cores - busy))
