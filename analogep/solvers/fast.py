"""Block coordinate descent over the bipartite layer graph: the default ("fast") solver
(method.md section 3; Scellier 2024, "A fast algorithm to simulate nonlinear resistive
networks").

Layers alternate even {x, h2, ...} and odd {h1, h3, ...}; given its neighbours a layer's
energy is separable per unit, so each layer takes the block update its field defines
(`LayeredField.block_update`: for the hopfield family the visible layer is solved
exactly and each hidden unit takes one safeguarded Newton step), over-relaxed by `omega`
(successive over-relaxation) once the point is near its equilibrium. Each point stops
once below `tol`. Layers are updated one after another from fresh drives (Gauss-Seidel),
so each update is a descent step given its current neighbours whether or not the layer
graph is two-coloured: a skip coupling's bottleneck (method.md section 1) closes the
cycle x - h1 .. hL - z - x, of odd length when L is odd.

Why the same equilibrium as euler: both are descent methods started at the same point
(x = x_t, h = 0; nudged phases at the free equilibrium), and near a minimum the Hessian is
positive definite, where over-relaxed block Gauss-Seidel converges for 0 < omega < 2
(Ostrowski-Reich). Where the energy has one minimum reachable from the start they must
agree; where a point sits near a bifurcation, two paths can end in different minima.
That is why a point takes plain steps (omega 1) until its largest slope is below
`OVERRELAX_BELOW`: over-relaxing from the start sends more points into another minimum.
tests/test_relax.py checks agreement on small and paper-size models; studies/basins.py
counts the points that still differ (docs/results/speed.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analogep.model.field import LayeredField, Params, State
from analogep.solvers.base import Equilibrium, VisibleSpring, sample_max_abs, total_grad

if TYPE_CHECKING:
    from analogep.config import RelaxSpec

# A point is over-relaxed only once its largest slope is below this: far from equilibrium,
# where the path decides the basin, it takes plain block-descent steps (omega 1). On the
# trained digits model this ends fewer points in another basin than euler's than
# over-relaxing from the start, a higher threshold, or plain steps throughout (which also
# take twice the sweeps) (studies/basins.py; docs/results/speed.md).
OVERRELAX_BELOW = 0.3


def _row_max(a: np.ndarray) -> np.ndarray:
    """max |a| per row; overwrites a (every caller's slope is a temporary)."""
    return np.abs(a, out=a).max(axis=1)


def _activities(state: State, derivs: list) -> list[np.ndarray]:
    """Each layer's activity: the cached rho for a nonlinear layer, the state itself for a
    linear one (an alias, so in-place updates of the state stay visible)."""
    return [s if d is None else d[0] for s, d in zip(state, derivs)]


def _rows(derivs: list, index: np.ndarray) -> list:
    return [None if d is None else [a[index] for a in d] for d in derivs]


@dataclass(frozen=True)
class FastSolver:
    """Block coordinate descent: at most `max_sweeps` sweeps, each point until its largest
    slope is below `tol` (0: every sweep), hidden updates over-relaxed by `omega` near
    equilibrium (1: plain block descent)."""

    max_sweeps: int
    tol: float = 0.0
    omega: float = 1.0

    @classmethod
    def from_spec(cls, relax: RelaxSpec, steps: int) -> "FastSolver":
        """Its options from the relax section (relax.tol, relax.omega); `steps` sweeps."""
        return cls(max_sweeps=steps, tol=relax.tol, omega=relax.omega)

    def relax(
        self, field: LayeredField, params: Params, start: State, spring: VisibleSpring | None, *, clamp_visible: bool = False
    ) -> Equilibrium:
        """Relax from `start` (not modified) to the equilibrium of the field plus `spring`;
        `clamp_visible` holds the visible layer fixed (the inference circuit)."""
        state = [s.copy() for s in start]
        return _sweep(field, params, state, spring, self.max_sweeps, self.tol, self.omega, clamp_visible)


def _sweep(
    field: LayeredField,
    params: Params,
    state: State,
    spring: VisibleSpring | None,
    max_sweeps: int,
    tol: float,
    omega: float,
    clamp_visible: bool,
) -> Equilibrium:
    """Even/odd block sweeps in place.

    Each layer takes one block update per sweep: the sweeps themselves iterate, so solving
    a layer exactly given neighbours that are about to move is wasted work (a second
    Newton step per sweep costs time and saves no sweeps). Activities and their first two
    derivatives are computed once per update, at the new state, and reused: for the
    neighbours' drives, the convergence test and the next update. (Profiled: rho, not the
    matrix products, is most of a sweep's time.)

    Training points are independent, so only the points not yet below `tol` keep sweeping
    (an active set): a few slow points near a bifurcation do not hold up the batch. The
    convergence test costs nothing extra: each layer's slope comes with its update (even
    layers before theirs, odd layers after, while their drive is current). A point that
    passes is confirmed with the exact residual and sweeps on if that fails.
    """
    n = len(state)
    even, odd = list(range(0, n, 2)), list(range(1, n, 2))
    derivs = [field.activity(layer, s, 2) for layer, s in enumerate(state)]
    residual = _cached_residual(field, params, state, derivs, spring, clamp_visible)
    # The rows still sweeping: their indices, and their state, cached activities, spring
    # and latest largest slope. While every row sweeps these are the full arrays
    # themselves; after that, compact copies, shrunk (and written back) only when rows
    # finish rather than gathered and scattered every sweep.
    idx = np.flatnonzero(~(residual < tol)) if tol > 0 else np.arange(state[0].shape[0])
    whole = idx.size == state[0].shape[0]
    sub = state if whole else [s[idx] for s in state]
    if not whole:
        derivs = _rows(derivs, idx)
    sub_spring = spring if spring is None or whole else spring.rows(idx)
    last = residual[idx]
    one, over = np.asarray(1.0, state[0].dtype), np.asarray(omega, state[0].dtype)
    layers = [layer for layer in even + odd if not (layer == 0 and clamp_visible)]
    sweeps = 0
    while sweeps < max_sweeps and idx.size:
        acts = _activities(sub, derivs)
        relaxation = over if omega == 1.0 else np.where(last < OVERRELAX_BELOW, over, one)[:, None]
        estimate = np.zeros(idx.size, dtype=state[0].dtype)
        for layer in layers:
            drive = field.layer_drive(params, sub, layer, acts)
            slope = field.block_update(layer, sub[layer], drive, derivs[layer], sub_spring, relaxation)
            if derivs[layer] is not None:
                derivs[layer] = field.activity(layer, sub[layer], 2)
                acts[layer] = derivs[layer][0]
                if layer in odd:
                    slope = field.block_slope(layer, sub[layer], drive, derivs[layer], sub_spring)
            estimate = np.maximum(estimate, _row_max(slope))
        sweeps += 1
        last = estimate
        going = ~(estimate < tol) if tol > 0 else np.isfinite(estimate)  # NaN counts as unconverged
        if going.all():
            continue
        passed = ~going
        if sub is not state:
            for s, part in zip(state, sub):
                s[idx[passed]] = part[passed]
        residual[idx[passed]] = _exact_residual(field, params, state, spring, clamp_visible, idx[passed])
        going |= passed & ~(residual[idx] < tol)  # confirmed by the exact residual, or sweeps on
        idx, sub, last = idx[going], [s[going] for s in sub], last[going]
        derivs = _rows(derivs, going)
        sub_spring = spring if spring is None else spring.rows(idx)
    if sub is not state:
        for s, part in zip(state, sub):
            s[idx] = part
    unfinished = np.flatnonzero(~(residual < tol)) if tol > 0 else np.arange(state[0].shape[0])
    if unfinished.size:
        residual[unfinished] = _exact_residual(field, params, state, spring, clamp_visible, unfinished)
    return Equilibrium(state, residual, sweeps)


def _cached_residual(field, params, state, derivs, spring, clamp_visible) -> np.ndarray:
    """max |dE_total/ds| per row, from the activities already computed at the state."""
    acts = _activities(state, derivs)
    residual = np.zeros(state[0].shape[0], dtype=state[0].dtype)
    for layer in range(len(state)):
        if layer == 0 and clamp_visible:
            continue
        drive = field.layer_drive(params, state, layer, acts)
        slope = field.block_slope(layer, state[layer], drive, derivs[layer], spring if layer == 0 else None)
        residual = np.maximum(residual, _row_max(slope))
    return residual


def _exact_residual(field, params, state, spring, clamp_visible, rows: np.ndarray) -> np.ndarray:
    """max |dE_total/ds| of the given batch rows."""
    sub = [s[rows] for s in state]
    sub_spring = spring.rows(rows) if spring is not None else None
    return sample_max_abs(total_grad(field, params, sub, sub_spring, clamp_visible))
