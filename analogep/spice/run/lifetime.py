"""Child processes that die with their parent.

An ngspice worker (and the `ngspice -b` it may start) holds its own circuit matrix, over
100 MB for the paper circuit; if the process that started it is killed (kill -9, the
out-of-memory killer), nobody closes the pool and the worker would live on, adopted by
init. On Linux the kernel can kill a child when its parent dies (prctl PR_SET_PDEATHSIG);
elsewhere the pool's workers still leave when their pipe to the parent closes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies; call it first thing in a
    freshly forked child. `parent_pid` is the parent's pid taken before the fork: a parent
    that died before the request was made is caught by comparing it with getppid.

    Linux sends the signal when the *thread* that forked the child exits: a worker started
    from a thread that ends before the pool is used again dies then, and the pool replaces
    it like any worker that died while idle."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the pipe to the parent still tells
            pass
    if os.getppid() != parent_pid:
        os._exit(1)
