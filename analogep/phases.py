"""The GradEP phases (method.md section 3) and the numpy equilibrium backend.

One phase function with a nudge argument: the free phase is the nudge-free case. A
backend only returns equilibria; the measurement layer turns them into updates, so the
numpy and SPICE backends share every line after the solve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .energy import EnergyModel, Params, State
from .relax import Equilibrium, VisibleSpring, relax
from .spec import GradEPSpec, RelaxSpec


@dataclass(frozen=True)
class Nudge:
    """The nudge spring beta (alpha lambda)^2 / 2 |x - anchor|^2 (beta signed)."""

    beta: float
    anchor: np.ndarray


class EquilibriumBackend(Protocol):
    """Anything that can find the equilibrium of the spring-clamped energy."""

    name: str

    def equilibrium(
        self, params: Params, x_t: np.ndarray, nudge: Nudge | None, start: State | None
    ) -> Equilibrium:
        """Equilibrium with spring lambda at x_t (plus `nudge`), relaxed from `start`
        (None: the free-phase start x = x_t, h = 0)."""


class NumpyBackend:
    """Equilibria by numpy relaxation (relax.py)."""

    name = "numpy"

    def __init__(self, model: EnergyModel, gradep: GradEPSpec, relax_spec: RelaxSpec):
        self.model, self.gradep, self.relax_spec = model, gradep, relax_spec

    def springs(self, x_t: np.ndarray, nudge: Nudge | None) -> VisibleSpring:
        spring = VisibleSpring(self.gradep.lam, x_t)
        if nudge is None:
            return spring
        g = self.gradep
        return VisibleSpring.combine(spring, VisibleSpring(nudge.beta * (g.alpha * g.lam) ** 2, nudge.anchor))

    def equilibrium(self, params, x_t, nudge, start):
        r = self.relax_spec
        if start is None:
            start = free_start(self.model, x_t)
        return relax(
            self.model,
            params,
            start,
            self.springs(x_t, nudge),
            solver=r.solver,
            max_steps=r.free_steps if nudge is None else r.nudge_steps,
            tol=r.tol,
            step=r.step,
            omega=r.omega,
        )


def free_start(model: EnergyModel, x_t: np.ndarray) -> State:
    """The paper's starting point: x = x_t, every hidden unit at 0."""
    state = model.zeros_state(x_t.shape[0])
    state[0][...] = x_t
    return state


def nudge_anchor(x_t: np.ndarray, u: np.ndarray, gradep: GradEPSpec) -> np.ndarray:
    """a = x_t + u / (alpha lambda): the displacement that would read out velocity u."""
    return x_t + u / (gradep.alpha * gradep.lam)


@dataclass
class PhaseResult:
    """Equilibria of one GradEP step: free, +beta and (three-phase) -beta."""

    free: Equilibrium
    plus: Equilibrium
    minus: Equilibrium | None
    beta: float

    @property
    def all(self) -> list[Equilibrium]:
        return [e for e in (self.free, self.plus, self.minus) if e is not None]


def run_phases(
    backend: EquilibriumBackend, params: Params, x_t: np.ndarray, u: np.ndarray, gradep: GradEPSpec
) -> PhaseResult:
    """Free phase from (x_t, 0); nudged phases warm-started from the free equilibrium so
    they stay in its basin."""
    free = backend.equilibrium(params, x_t, None, None)
    anchor = nudge_anchor(x_t, u, gradep)
    plus = backend.equilibrium(params, x_t, Nudge(gradep.beta, anchor), free.state)
    minus = None
    if gradep.phases == 3:
        minus = backend.equilibrium(params, x_t, Nudge(-gradep.beta, anchor), free.state)
    return PhaseResult(free, plus, minus, gradep.beta)
