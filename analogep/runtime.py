"""Process-level settings and resources: cores, BLAS threads, free memory.

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


def available_memory() -> int | None:
    """Bytes of memory a new allocation can have now (Linux: MemAvailable), None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def size_text(n_bytes: float) -> str:
    """1.5e9 -> '1.5 GB'."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n_bytes) < 1000 or unit == "PB":
            return f"{n_bytes:.3g} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:.3g} PB"
