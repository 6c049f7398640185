"""The numpy backend: equilibria by numpy relaxation (analogep.solvers) of the ideal energy."""

from __future__ import annotations

import numpy as np

from analogep.backends.base import Nudge
from analogep.config.spec import GradEPSpec, RelaxSpec, Spec
from analogep.model.energy import EnergyModel, Params, State
from analogep.solvers.base import Equilibrium, VisibleSpring, free_start
from analogep.solvers.registry import relax


def phase_spring(gradep: GradEPSpec, x_t: np.ndarray, nudge: Nudge | None) -> VisibleSpring:
    """The training spring lambda at x_t plus the nudge spring beta (alpha lambda)^2 at its anchor."""
    spring = VisibleSpring(gradep.lam, x_t)
    if nudge is None:
        return spring
    return VisibleSpring.combine(spring, VisibleSpring(nudge.beta * (gradep.alpha * gradep.lam) ** 2, nudge.anchor))


class NumpyBackend:
    """Equilibria of the programmed parameters by the configured relaxation solver.

    The ideal hardware realises the parameters exactly; `program` keeps a reference (no
    copy), so the caller programs again after each update, as for any backend."""

    def __init__(self, model: EnergyModel, gradep: GradEPSpec, relax_spec: RelaxSpec):
        self.model, self.gradep, self.relax_spec = model, gradep, relax_spec
        self.params: Params | None = None

    @classmethod
    def from_spec(cls, spec: Spec, model: EnergyModel, **_: object) -> "NumpyBackend":
        return cls(model, spec.gradep, spec.relax)

    def program(self, params: Params) -> Params:
        self.params = params
        return params

    def _relax(self, start: State, spring: VisibleSpring | None, max_steps: int, clamp_visible: bool = False) -> Equilibrium:
        r = self.relax_spec
        return relax(self.model, self.params, start, spring, solver=r.solver, max_steps=max_steps, tol=r.tol,
                     step=r.step, omega=r.omega, clamp_visible=clamp_visible)

    def equilibrium(self, x_t: np.ndarray, nudge: Nudge | None, start: State | None) -> Equilibrium:
        if start is None:
            start = free_start(self.model, x_t)
        r = self.relax_spec
        return self._relax(start, phase_spring(self.gradep, x_t, nudge), r.free_steps if nudge is None else r.nudge_steps)

    def clamped(self, x: np.ndarray, hidden: list[np.ndarray] | None) -> tuple[Equilibrium, np.ndarray]:
        hidden = hidden if hidden is not None else self.model.zeros_state(x.shape[0])[1:]
        start = [x.astype(self.model.dtype, copy=True)] + list(hidden)
        eq = self._relax(start, None, self.relax_spec.free_steps, clamp_visible=True)
        return eq, self.model.state_grad(self.params, eq.state)[0]

    def close(self) -> None:
        pass
