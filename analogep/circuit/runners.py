"""ngspice runners by name (analogep.registry.RUNNERS): `auto` picks the first one that
can run here, and `make_runner` gives a backend its pool of worker processes."""

from __future__ import annotations

from analogep.circuit.ngspice import NgspiceError
from analogep.circuit.pool import NgspicePool
from analogep.registry import names, resolve

AUTO = "auto"


def runner_choices() -> tuple[str, ...]:
    """What --spice-runner and circuit.runner accept."""
    return (AUTO,) + names("runner")


def choose_runner(name: str) -> str:
    """The runner to use for `name`: itself when it can run here; for auto, the first
    registered runner that can (the shared library, else a subprocess)."""
    if name not in runner_choices():
        raise NgspiceError(f"--spice-runner: {name!r} is not allowed; must be one of {', '.join(runner_choices())}")
    candidates = names("runner") if name == AUTO else (name,)
    reasons = []
    for candidate in candidates:
        why = resolve("runner", candidate).unavailable()
        if why is None:
            return candidate
        reasons.append(f"{candidate}: {why}")
    raise NgspiceError(f"spice runner {name!r}: " + "; ".join(reasons))


def make_runner(name: str = AUTO, workers: int = 0) -> NgspicePool:
    """A pool of `workers` processes (0: the cores not already busy), each with its own ngspice."""
    return NgspicePool(choose_runner(name), workers)
