"""The equilibrium-backend protocol: hardware that is programmed, then asked for equilibria.

A backend is stateful, like the circuit it stands for: `program(params)` writes the
parameters and returns what the hardware realises of them (the ideal circuit: the
parameters themselves, or the weights clipped to the conductance range), and every
equilibrium after that is of the programmed energy. A backend only returns equilibria;
the measurement layer (analogep.ep) turns them into velocities and updates, so the numpy
and SPICE backends share every line after the solve (method.md sections 3 and 7).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from analogep.model.energy import Params, State
from analogep.solvers.base import Equilibrium


@dataclass(frozen=True)
class Nudge:
    """The nudge spring beta (alpha lambda)^2 / 2 |x - anchor|^2 on the visible units (beta signed)."""

    beta: float
    anchor: np.ndarray


class EquilibriumBackend(Protocol):
    """Anything that can be programmed with parameters and settle the spring-clamped energy."""

    def program(self, params: Params) -> Params:
        """Write `params` to the hardware; returns the parameters it realises."""

    def equilibrium(self, x_t: np.ndarray, nudge: Nudge | None, start: State | None) -> Equilibrium:
        """Equilibrium with spring lambda anchored at x_t (plus `nudge`), relaxed from
        `start` (None: the free-phase start x = x_t, h = 0)."""

    # Optional: `phases(x_t, nudges) -> [free, one per nudge]`, the free equilibrium and
    # the nudged ones from it solved together (the SPICE backend: one sweep); without it
    # analogep.ep.run_phases asks `equilibrium` once per phase.

    def clamped(self, x: np.ndarray, hidden: list[np.ndarray] | None) -> tuple[Equilibrium, np.ndarray]:
        """Hidden equilibrium with the visible units held at x (the inference circuit),
        relaxed from `hidden` (None: zeros), and dE/dx there (method.md section 2)."""

    def close(self) -> None:
        """Release what the backend holds (worker processes)."""
