"""`relax`: the one entry point to the relaxation solvers, looked up by name in
analogep.registry.SOLVERS (euler: the paper's dynamics; fast: block coordinate descent)."""

from __future__ import annotations

from analogep.model.energy import EnergyModel, Params, State
from analogep.registry import resolve
from analogep.solvers.base import Equilibrium, VisibleSpring


def relax(
    model: EnergyModel,
    params: Params,
    start: State,
    spring: VisibleSpring | None,
    *,
    solver: str,
    max_steps: int,
    tol: float = 0.0,
    step: float = 0.1,
    omega: float = 1.0,
    clamp_visible: bool = False,
) -> Equilibrium:
    """Relax from `start` (not modified) to the equilibrium of E + spring.

    `clamp_visible` holds the visible layer fixed (the inference circuit)."""
    state = [s.copy() for s in start]
    return resolve("solver", solver)(
        model, params, state, spring, max_steps=max_steps, tol=tol, step=step, omega=omega, clamp_visible=clamp_visible
    )
