"""Generation: Euler-integrate the learned velocity from noise (method.md section 5).

The field is time independent, so integrating past t = 1 ("extended generation") keeps
descending the energy. Hidden units are re-relaxed at every step, warm-started from the
previous steps' equilibria: x moves by dt v per step, so h*(x) moves little and smoothly,
and the linear extrapolation 2 h*_k - h*_{k-1} starts the solver closer than h*_k alone
(2.4x fewer sweeps on the digits model at the same tolerance and the same samples).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .energy import EnergyModel, Params
from .relax import VisibleSpring, relax
from .spec import GradEPSpec, RelaxSpec


def velocity_field(
    model: EnergyModel,
    params: Params,
    x: np.ndarray,
    hidden: list[np.ndarray] | None,
    gradep: GradEPSpec,
    relax_spec: RelaxSpec,
    mode: str = "energy",
) -> tuple[np.ndarray, list[np.ndarray]]:
    """v(x) and the relaxed hidden state.

    energy: v = -alpha dE/dx at the hidden equilibrium h*(x) with x clamped (method.md 2);
    spring: v = alpha lambda (x* - x) with the training spring anchored at x (method.md 5).
    """
    hidden = hidden if hidden is not None else model.zeros_state(x.shape[0])[1:]
    start = [x.astype(model.dtype, copy=True)] + [h for h in hidden]
    common = dict(solver=relax_spec.solver, max_steps=relax_spec.free_steps, tol=relax_spec.tol, step=relax_spec.step,
                  omega=relax_spec.omega)
    if mode == "energy":
        eq = relax(model, params, start, None, clamp_visible=True, **common)
        v = -gradep.alpha * model.state_grad(params, eq.state)[0]
    elif mode == "spring":
        eq = relax(model, params, start, VisibleSpring(gradep.lam, start[0]), **common)
        v = gradep.alpha * gradep.lam * (eq.state[0] - start[0])
    else:
        raise ValueError(f"unknown generation mode {mode!r}; allowed: energy, spring")
    return v, eq.state[1:]


def generate(
    model: EnergyModel,
    params: Params,
    gradep: GradEPSpec,
    relax_spec: RelaxSpec,
    *,
    n: int,
    t1: float,
    dt: float,
    mode: str = "energy",
    seed: int = 0,
    on_step: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """n samples, (n, D), by Euler steps dx = dt v(x) from x ~ N(0, I) over [0, t1]."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, model.sizes[0])).astype(model.dtype)
    steps = max(1, int(round(t1 / dt)))
    hidden, previous = None, None
    for k in range(steps):
        start = hidden if previous is None else [2 * h - p for h, p in zip(hidden, previous)]
        previous = hidden
        v, hidden = velocity_field(model, params, x, start, gradep, relax_spec, mode)
        x = x + np.asarray(dt, dtype=x.dtype) * v
        if on_step is not None:
            on_step(k + 1, steps)
    return x
