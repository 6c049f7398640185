"""The paper's relaxation: explicit Euler on the gradient flow ds/dt = -dE/ds (method.md
section 3, 'Paper relaxation'; Gower 2026).

All layers move at once with step eps (0.1), a fixed number of steps unless `tol` stops
it early. Kept for reproducing the paper: on the digits model after 300 training steps,
300 steps leave 1471 of 1797 points above max |dE/ds| = 1e-3; converging takes about 3000.
"""

from __future__ import annotations

from analogep.model.energy import EnergyModel, Params, State
from analogep.model.tensors import max_abs
from analogep.solvers.base import Equilibrium, VisibleSpring, sample_max_abs, total_grad


def relax_euler(
    model: EnergyModel,
    params: Params,
    state: State,
    spring: VisibleSpring | None,
    *,
    max_steps: int,
    tol: float,
    step: float,
    omega: float,
    clamp_visible: bool,
) -> Equilibrium:
    """s <- s - eps dE_total/ds until max |dE_total/ds| < tol or max_steps (in place;
    `omega` is the block solver's and unused here)."""
    steps = 0
    grads = total_grad(model, params, state, spring, clamp_visible)
    while steps < max_steps and not (tol > 0 and max_abs(grads) < tol):
        for s, g in zip(state, grads):
            s -= step * g
        steps += 1
        grads = total_grad(model, params, state, spring, clamp_visible)
    return Equilibrium(state, sample_max_abs(grads), steps)
