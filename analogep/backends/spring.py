"""The training spring on the visible units and what is read from it (method.md sections 3
and 7): the spring lambda anchored at x_t, plus the nudge spring of a nudged phase, is what
every backend settles under; at the free equilibrium its displacement x* - x_t is the
velocity read-out (on the circuit: the spring current over lambda g0)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analogep.config.spec import GradEPSpec
from analogep.solvers.base import VisibleSpring


@dataclass(frozen=True)
class Nudge:
    """The nudge spring beta (alpha lambda)^2 / 2 |x - anchor|^2 on the visible units (beta signed)."""

    beta: float
    anchor: np.ndarray


def phase_spring(gradep: GradEPSpec, x_t: np.ndarray, nudge: Nudge | None) -> VisibleSpring:
    """The training spring lambda at x_t plus the nudge spring beta (alpha lambda)^2 at its anchor."""
    spring = VisibleSpring(gradep.lam, x_t)
    if nudge is None:
        return spring
    return VisibleSpring.combine(spring, VisibleSpring(nudge.beta * (gradep.alpha * gradep.lam) ** 2, nudge.anchor))


def velocity(x_star: np.ndarray, x_t: np.ndarray, gradep: GradEPSpec) -> np.ndarray:
    """v = alpha lambda (x* - x_t): the spring's pull at equilibrium equals -dE/dx."""
    return gradep.alpha * gradep.lam * (x_star - x_t)
