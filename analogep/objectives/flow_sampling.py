"""Generation: Euler-integrate the learned velocity from noise (method.md section 5).

The field is time independent, so integrating past t = 1 ("extended generation") keeps
descending the energy (with train.time_conditioning: time-bias the energy takes a time code,
set before every step, objectives/flow_time.py; past t = 1 it stays at t = 1's). Hidden units are re-relaxed at every step, warm-started from the
previous steps' equilibria: x moves by dt v per step, so h*(x) moves little and smoothly,
and the linear extrapolation 2 h*_k - h*_{k-1} starts the solver closer than h*_k alone
(2.4x fewer sweeps on the digits model at the same tolerance and the same samples).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from analogep.backends.base import EquilibriumBackend
from analogep.config.sections import GradEPSpec
from analogep.model.energy import EnergyModel
from analogep.objectives.sampling import SAMPLE_CHUNK, sample_in_chunks, velocity_field


def generate(
    model: EnergyModel,
    backend: EquilibriumBackend,
    gradep: GradEPSpec,
    *,
    n: int,
    t1: float,
    dt: float,
    mode: str = "energy",
    seed: int = 0,
    on_step: Callable[[int, int], None] | None = None,
    out: np.ndarray | None = None,
    condition: Callable[[float], None] | None = None,
) -> np.ndarray:
    """n samples, (n, D), by Euler steps dx = dt v(x) from x ~ N(0, I) over [0, t1], from a
    programmed backend (numpy relaxation or the circuit). `condition(t)`, when given, sets a
    time-dependent energy's time code before the step from t = k dt (objectives/flow_time.py).

    Samples are integrated SAMPLE_CHUNK at a time (objectives/sampling.py), so memory does
    not grow with n beyond the result itself; `out` (an (n, D) array, e.g. a
    numpy.lib.format.open_memmap) takes the samples instead of a new array, so n can
    exceed memory. The noise is the same
    draw for any chunking (one generator, rows in order). Up to SAMPLE_CHUNK samples are
    one chunk, as one batch; beyond it each sample is relaxed in a batch of its chunk, not
    of all n, which moves it by float32 rounding (BLAS summation order depends on the
    batch size, and the euler solver stops when its whole batch has converged; measured on
    examples/tiny.yaml, 9000 samples: at most 1.3e-6, below relax.tol).
    `on_step(done, total)` counts steps over all chunks.
    """
    steps = max(1, int(round(t1 / dt)))
    return sample_in_chunks(
        model, n, seed, steps, out,
        lambda x, rng, tick: _integrate(backend, x, gradep, steps=steps, dt=dt, mode=mode, on_step=tick,
                                        condition=condition),
        on_step,
    )


def _integrate(
    backend: EquilibriumBackend,
    x: np.ndarray,
    gradep: GradEPSpec,
    *,
    steps: int,
    dt: float,
    mode: str,
    on_step: Callable[[int], None] | None,
    snapshot: Callable[[int, np.ndarray], None] | None = None,
    condition: Callable[[float], None] | None = None,
) -> np.ndarray:
    """`steps` Euler steps of one batch of samples from its noise `x`; `snapshot(k, x)`
    sees the samples after step k (each is what `steps=k` would return); `condition(t)`
    sets the time code of step k's field, t = k dt."""
    hidden, previous = None, None
    for k in range(steps):
        if condition is not None:
            condition(k * dt)
        start = hidden if previous is None else [2 * h - p for h, p in zip(hidden, previous)]
        previous = hidden
        v, hidden = velocity_field(backend, x, start, gradep, mode)
        x = x + np.asarray(dt, dtype=x.dtype) * v
        if snapshot is not None:
            snapshot(k + 1, x)
        if on_step is not None:
            on_step(k + 1)
    return x


def generate_snapshots(
    model: EnergyModel,
    backend: EquilibriumBackend,
    gradep: GradEPSpec,
    *,
    n: int,
    steps: list[int],
    dt: float,
    mode: str = "energy",
    seed: int = 0,
    condition: Callable[[float], None] | None = None,
) -> dict[int, np.ndarray]:
    """The samples after each of `steps` Euler steps of one trajectory, {k: (n, D)}: one
    integration to max(steps) instead of one per end time. Each is what `generate` gives
    for t1 = k dt (same noise, same warm starts), for n up to SAMPLE_CHUNK (one batch)."""
    if n > SAMPLE_CHUNK:
        raise ValueError(f"snapshots are of one batch: n must be at most {SAMPLE_CHUNK}, got {n}")
    wanted = set(steps)
    shots: dict[int, np.ndarray] = {}

    def keep(k: int, x: np.ndarray) -> None:
        if k in wanted:
            shots[k] = x.copy()

    x0 = np.random.default_rng(seed).standard_normal((n, model.sizes[0])).astype(model.dtype)
    _integrate(backend, x0, gradep, steps=max(wanted), dt=dt, mode=mode, on_step=None, snapshot=keep,
               condition=condition)
    return shots
