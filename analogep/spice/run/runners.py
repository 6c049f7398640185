"""ngspice runners by name (analogep.registry.RUNNERS): `auto` picks the first one that
can run here, and `make_runner` gives a backend its pool of ngspice workers.

A registered runner is either an engine (`unavailable()`, `run(deck, timeout)`: one
ngspice, run in each process of a local `NgspicePool`) or builds its own pool
(`make_pool(workers, scheduler, connect_timeout=...)`, e.g. the workers of a Dask cluster). Without a
scheduler address `auto` takes the first engine that can run here; with one, the first
runner that builds its own pool.
"""

from __future__ import annotations

from typing import Protocol

from analogep.spice.run.ngspice import NgspiceError, RunResult
from analogep.spice.run.pool import NgspicePool
from analogep.config.hardware import LOCAL_SCHEDULER
from analogep.registry import names, resolve

AUTO = "auto"


class Pool(Protocol):
    """What a backend needs from its ngspice workers (spice/run/pool.py NgspicePool is one)."""

    runner: str

    @property
    def workers(self) -> int: ...

    def map(self, decks: list[str], timeout: float) -> list[RunResult]: ...

    def close(self) -> None: ...


def runner_choices() -> tuple[str, ...]:
    """What --spice-runner and circuit.runner accept."""
    return (AUTO,) + names("runner")


def _builds_pool(name: str) -> bool:
    return hasattr(resolve("runner", name), "make_pool")


def choose_runner(name: str, scheduler: str = LOCAL_SCHEDULER) -> str:
    """The runner to use for `name`: itself when it can run here; for auto, the first
    registered runner that can (the shared library, else a subprocess; with a scheduler
    address, a runner that builds its own pool: dask)."""
    if name not in runner_choices():
        raise NgspiceError(f"--spice-runner: {name!r} is not allowed; must be one of {', '.join(runner_choices())}")
    if name == AUTO:
        remote = scheduler != LOCAL_SCHEDULER
        candidates = tuple(n for n in names("runner") if _builds_pool(n) == remote)
    else:
        candidates = (name,)
    reasons = []
    for candidate in candidates:
        why = resolve("runner", candidate).unavailable()
        if why is None:
            return candidate
        reasons.append(f"{candidate}: {why}")
    raise NgspiceError(f"spice runner {name!r}: " + "; ".join(reasons))


def make_runner(name: str = AUTO, workers: int = 0, scheduler: str = LOCAL_SCHEDULER,
                connect_timeout: float | None = None) -> Pool:
    """A pool of `workers` ngspice processes (0: the cores not already busy; a running
    cluster: all its workers, reached within `connect_timeout` seconds, default the
    runner's), built by the runner itself or, for an engine, local."""
    chosen = choose_runner(name, scheduler)
    cls = resolve("runner", chosen)
    if hasattr(cls, "make_pool"):
        timeout = {} if connect_timeout is None else {"connect_timeout": connect_timeout}
        return cls.make_pool(workers, scheduler, **timeout)
    if scheduler != LOCAL_SCHEDULER:
        pooled = ", ".join(n for n in names("runner") if _builds_pool(n))
        raise NgspiceError(
            f"circuit.scheduler: {scheduler} is a cluster, but runner {chosen!r} runs on this machine; use a runner that "
            f"runs on a cluster ({pooled}) or scheduler: {LOCAL_SCHEDULER}"
        )
    return NgspicePool(chosen, workers)
