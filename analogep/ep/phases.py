"""The GradEP phases (method.md section 3): free, +beta and (symmetric) -beta equilibria.

One phase function with a nudge argument: the free phase is the nudge-free case. The
phases ask a programmed backend for equilibria; nothing here knows how they are found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analogep.backends.base import EquilibriumBackend
from analogep.backends.spring import Nudge
from analogep.config.sections import GradEPSpec
from analogep.solvers.base import Equilibrium


def nudge_anchor(x_t: np.ndarray, target: np.ndarray, gradep: GradEPSpec) -> np.ndarray:
    """a = x_t + target / (alpha lambda): the displacement that would read out the target."""
    return x_t + target / (gradep.alpha * gradep.lam)


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


def run_phases(backend: EquilibriumBackend, x_t: np.ndarray, target: np.ndarray, gradep: GradEPSpec) -> PhaseResult:
    """Free phase from (x_t, 0); nudged phases warm-started from the free equilibrium so
    they stay in its basin (EquilibriumBackend.phases; the SPICE backend solves them
    together, one sweep per chunk of points). The backend must be programmed."""
    anchor = nudge_anchor(x_t, target, gradep)
    nudges = [Nudge(gradep.beta, anchor)] + ([Nudge(-gradep.beta, anchor)] if gradep.phases == 3 else [])
    free, *nudged = backend.phases(x_t, nudges)
    return PhaseResult(free, nudged[0], nudged[1] if len(nudged) > 1 else None, gradep.beta)
