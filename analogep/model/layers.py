"""Layers of a network: groups of units, each with its own energy given its drive
(method.md section 1).

A layer's part of the energy, given the drive c it receives from the interactions, is
separable per unit: E_l = leak(s) - a(s) . c, with a the unit's activity. So a layer knows
its activity, its leak, and how to move its units towards the minimum of E_l (the block
solver's update: Scellier 2024, block coordinate descent), and nothing of the other
layers. The hopfield family's units have the quadratic leak 1/2 s^2; the visible units are
linear, the hidden ones go through an activation rho.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from analogep.model.activations import Activation


class Layer(ABC):
    """A group of `size` units whose energy given their drive is separable per unit."""

    size: int

    @abstractmethod
    def activity(self, s: np.ndarray, order: int) -> tuple[np.ndarray, ...] | None:
        """(a, a', a'') at s, up to `order`; None for a linear layer (a = s)."""

    @abstractmethod
    def energy(self, s: np.ndarray) -> np.ndarray:
        """The units' own energy (the leak), per batch element."""

    @abstractmethod
    def block_update(self, s: np.ndarray, drive: np.ndarray, derivs: tuple | None, spring, omega) -> np.ndarray:
        """Move s (in place) towards the minimum of E_l given `drive`, scaled by `omega`;
        `derivs` is `activity(s, 2)`, `spring` a VisibleSpring or None. Returns dE_l/ds
        (plus the spring's pull) before the move."""

    @abstractmethod
    def block_slope(self, s: np.ndarray, drive: np.ndarray, derivs: tuple | None, spring) -> np.ndarray:
        """dE_l/ds (plus the spring's pull) at s from `drive` and `derivs` (order >= 1), a
        fresh array; with spring None, the layer's part of dE/ds."""

    @abstractmethod
    def hessian_vector(
        self, s: np.ndarray, v: np.ndarray, drive: np.ndarray, derivs: tuple | None, dv_drive: np.ndarray
    ) -> np.ndarray:
        """The layer's rows of d2E/ds2 . direction at state `s` (a leak that is not
        quadratic needs it): `v` the direction on this layer,
        `dv_drive` the change of the drive along the direction, `derivs` order 2."""

    @property
    def cell(self) -> tuple[str, dict[str, float]] | None:
        """The library cell of one unit (circuits/analogep.lib) and its extra parameters;
        None: no cell realises these units (the family runs in numpy only)."""
        return None

    def cell_nodeset(self, s: np.ndarray, drive: np.ndarray) -> dict[str, np.ndarray]:
        """The cell's internal node voltages at state s with drive c (its name inside the
        cell -> values like s): ngspice's initial guess for them besides the neuron node
        (a cell with amplifiers starts its Newton iteration there); {} for none."""
        return {}

    # A cell of datasheet op-amps (a family with `amplifier` set, model/energy.py): what
    # `analogep energy` prices and times. analogep.lib's cells are priced by accounting/power.py.
    cell_amplifiers = 0  # op-amps per unit

    def cell_supply(self, s: np.ndarray, drive: np.ndarray, g0: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per point at 1 V per state unit: the current the cells' sense amplifiers source,
        the current their other op-amps source besides the crossbar rows, and the power the
        cells' own resistors and diodes dissipate (A, A, W)."""
        raise NotImplementedError(f"{type(self).__name__} declares no cell supply")

    def cell_start(self, s: np.ndarray, drive: np.ndarray, g0: float, rows: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
        """The cell's op-amps' internal nodes (their path inside the cell -> values like s)
        where they hold state s with drive c, their rows driving the G+ and G- conductance
        `rows` (S per unit): a transient deck's start."""
        raise NotImplementedError(f"{type(self).__name__} declares no op-amp start")

    # Of the lag, the part after the state: the stages copying it onto the rows (units of 1 / (2 pi GBW)).
    cell_row_lag = 0.0

    def cell_lag(self, g0: float, column: np.ndarray) -> np.ndarray:
        """Per unit, the lag from its drive to its rows in units of 1 / (2 pi GBW): the
        noise gains of the op-amp stages on the way summed, with `column` (S) the crossbar
        conductance on the unit's sense line."""
        raise NotImplementedError(f"{type(self).__name__} declares no cell lag")


class LinearUnits(Layer):
    """Units with E_l = 1/2 |s|^2 - s . c: the visible layer (x enters linearly)."""

    def __init__(self, size: int):
        self.size = size

    def activity(self, s, order):
        return None

    def energy(self, s):
        return 0.5 * np.sum(s * s, axis=1)

    def block_update(self, s, drive, derivs, spring, omega):
        """With the spring k/2 |s - target|^2, E_l is quadratic and is solved exactly (omega
        unused): s = (c + k target) / (1 + k)."""
        k = 0.0 if spring is None else spring.stiffness
        pull = drive if spring is None else drive + spring.pull
        slope = (1.0 + k) * s - pull
        s[...] = pull / (1.0 + k)
        return slope

    def block_slope(self, s, drive, derivs, spring):
        if spring is None:
            return s - drive
        return (1.0 + spring.stiffness) * s - (drive + spring.pull)

    def hessian_vector(self, s, v, drive, derivs, dv_drive):
        return v - dv_drive

    @property
    def cell(self):
        return ("visible", {})


class ActivationUnits(Layer):
    """Units with E_l = 1/2 |s|^2 - rho(s) . c: the hidden layers, through `rho`."""

    def __init__(self, size: int, rho: Activation):
        self.size, self.rho = size, rho

    def activity(self, s, order):
        return self.rho.evaluate(s, order)

    def energy(self, s):
        return 0.5 * np.sum(s * s, axis=1)

    def block_update(self, s, drive, derivs, spring, omega):
        """One safeguarded Newton step per unit on 1/2 s^2 - c rho(s), scaled by omega."""
        _, d1, d2 = derivs
        return _newton_move(s, drive, d1, d2, omega)

    def block_slope(self, s, drive, derivs, spring):
        slope = drive * derivs[1]
        np.subtract(s, slope, out=slope)
        return slope

    def hessian_vector(self, s, v, drive, derivs, dv_drive):
        _, d1, d2 = derivs
        return v - d2 * v * drive - d1 * dv_drive

    @property
    def cell(self):
        if self.rho.name == "soft_silu":
            return ("hidden_soft_silu", {"clamp": self.rho.clamp})
        return ("hidden_silu", {})


# Safeguards of the per-unit Newton step. The unit energy 1/2 s^2 - c rho(s) is not convex
# where c rho''(s) > 1, so the curvature 1 - c rho'' is floored to keep the step a descent
# direction; and since rho saturates (soft clamp), a step from a small curvature could land
# far outside the region the quadratic model describes, so each move is capped (state units).
MIN_CURVATURE = 0.3
MAX_MOVE = 2.0


def _newton_move(s: np.ndarray, drive: np.ndarray, d1: np.ndarray, d2: np.ndarray, omega) -> np.ndarray:
    """One safeguarded Newton step on 1/2 s^2 - c rho(s) per unit, scaled by omega (a number
    or a (rows, 1) column), in place. d1, d2 are rho', rho'' at s. Returns dE/ds at s."""
    slope = drive * d1
    np.subtract(s, slope, out=slope)
    move = drive * d2
    np.subtract(1.0, move, out=move)
    np.maximum(move, MIN_CURVATURE, out=move)
    np.divide(slope, move, out=move)
    np.clip(move, -MAX_MOVE, MAX_MOVE, out=move)
    move *= omega
    s -= move
    return slope
