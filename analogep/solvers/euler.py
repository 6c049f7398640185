"""The paper's relaxation: explicit Euler on the gradient flow ds/dt = -dE/ds (method.md
section 3, 'Paper relaxation'; Gower 2026).

All layers move at once with step eps (0.1), a fixed number of steps unless `tol` stops
it early. Kept for reproducing the paper: on the digits model after 300 training steps,
300 steps leave 1471 of 1797 points above max |dE/ds| = 1e-3; converging takes about 3000.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from analogep.model.field import LayeredField, Params, State
from analogep.model.tensors import max_abs
from analogep.solvers.base import Equilibrium, VisibleSpring, sample_max_abs, total_grad

if TYPE_CHECKING:
    from analogep.config import RelaxSpec


@dataclass(frozen=True)
class EulerSolver:
    """s <- s - step * dE_total/ds, at most `max_steps` times, until max |dE_total/ds| <
    `tol` (0: every step, as the paper runs it)."""

    max_steps: int
    tol: float = 0.0
    step: float = 0.1

    @classmethod
    def from_spec(cls, relax: RelaxSpec, steps: int) -> "EulerSolver":
        """Its options from the relax section (relax.tol, relax.step); `steps` steps."""
        return cls(max_steps=steps, tol=relax.tol, step=relax.step)

    def relax(
        self, field: LayeredField, params: Params, start: State, spring: VisibleSpring | None, *, clamp_visible: bool = False
    ) -> Equilibrium:
        """Relax from `start` (not modified) to the equilibrium of the field plus `spring`;
        `clamp_visible` holds the visible layer fixed (the inference circuit)."""
        state = [s.copy() for s in start]
        steps = 0
        grads = total_grad(field, params, state, spring, clamp_visible)
        while steps < self.max_steps and not (self.tol > 0 and max_abs(grads) < self.tol):
            for s, g in zip(state, grads):
                s -= self.step * g
            steps += 1
            grads = total_grad(field, params, state, spring, clamp_visible)
        return Equilibrium(state, sample_max_abs(grads), steps)
