"""Relaxation: find the equilibrium of E plus springs on the visible units (method.md section 3).

Two solvers find the fixed point dE_total/ds = 0 from the same start:

- `euler`: the paper's explicit Euler on the gradient flow ds/dt = -dE/ds, all layers at
  once, step eps (0.1), a fixed number of steps unless `tol` stops it early. Kept for
  reproducing the paper. Measured on the digits model after 300 training steps: 300 steps
  leave 1471 of 1797 points above max |dE/ds| = 1e-3; converging takes about 3000.
- `fast`: block coordinate descent over the bipartite layer graph (Scellier 2024, "A fast
  algorithm to simulate nonlinear resistive networks"): layers alternate even {x, h2, ...}
  and odd {h1, h3, ...}; given its neighbours a layer's energy is separable per unit, so
  the visible layer (quadratic) is solved exactly and each hidden unit takes one
  safeguarded Newton step per sweep on 1/2 s^2 - c rho(s), over-relaxed by `omega`
  (successive over-relaxation) once the point is near its equilibrium. Each point stops
  once below `tol`.

Why the same equilibrium: both are descent methods started at the same point (x = x_t,
h = 0; nudged phases at the free equilibrium), and near a minimum the Hessian is positive
definite, where over-relaxed block Gauss-Seidel converges for 0 < omega < 2 (Ostrowski-
Reich). Where the energy has one minimum reachable from the start they must agree; where a
point sits near a bifurcation, two paths can end in different minima. That is why a point
takes plain steps (omega 1) until its largest slope is below 0.3: over-relaxing from the
start sends more points into another basin. Measured against euler run to convergence
(tol 1e-5): on the digits model at step 300 (400 points) every point agrees within
2.6e-4; at the final weights of the paper run (step 2000, 1797 points) 16 points (0.9%)
end in another minimum, where the fast solver over-relaxing from the start ends 47.
tests/test_relax.py checks agreement on small and paper-size models.
"""


from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .energy import EnergyModel, Params, State, max_abs


def sample_max_abs(state: State) -> np.ndarray:
    """Per batch element, the largest absolute entry over all layers."""
    return np.max(np.stack([np.max(np.abs(layer), axis=1) for layer in state]), axis=0)


@dataclass(frozen=True)
class VisibleSpring:
    """External quadratic k/2 |x - target|^2 on the visible units (springs and nudges summed).

    Up to a constant it is k/2 |x|^2 - pull . x with pull = k target, and springs add as
    (sum k_i, sum k_i a_i). Solvers use only (stiffness, pull), so a sum whose stiffnesses
    cancel (a -beta nudge with beta (alpha lambda)^2 = lambda: a constant force) still works;
    its `target` is then None.
    """

    stiffness: float
    target: np.ndarray | None
    pull: np.ndarray | None = None  # stiffness * target; derived when not given

    def __post_init__(self) -> None:
        if self.pull is None:
            object.__setattr__(self, "pull", self.stiffness * self.target)

    @staticmethod
    def combine(*springs: "VisibleSpring") -> "VisibleSpring":
        k = sum(s.stiffness for s in springs)
        dtype = springs[0].pull.dtype
        pull = sum(s.pull for s in springs).astype(dtype, copy=False)
        target = (pull / k).astype(dtype, copy=False) if k != 0 else None
        return VisibleSpring(k, target, pull)

    def rows(self, index: np.ndarray) -> "VisibleSpring":
        """The spring on a subset of the batch."""
        return VisibleSpring(self.stiffness, None if self.target is None else self.target[index], self.pull[index])


@dataclass
class Equilibrium:
    """A relaxed state with the evidence of convergence."""

    state: State
    sample_residual: np.ndarray  # (batch,) max |dE_total/ds| over each point's relaxed units
    iterations: int  # solver iterations (Euler steps or block sweeps)

    @property
    def residual(self) -> float:
        """max |dE_total/ds| over the whole batch."""
        return float(np.max(self.sample_residual)) if self.sample_residual.size else 0.0


def total_grad(
    model: EnergyModel, params: Params, state: State, spring: VisibleSpring | None, clamp_visible: bool = False
) -> State:
    """dE/ds plus the spring's pull; zero on the visible layer when it is clamped."""
    grads = model.state_grad(params, state)
    if clamp_visible:
        grads[0] = np.zeros_like(grads[0])
    elif spring is not None:
        grads[0] = grads[0] + (spring.stiffness * state[0] - spring.pull)
    return grads


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
    """Relax from `start` (not modified) to the equilibrium of E + spring."""
    state = [s.copy() for s in start]
    if solver == "euler":
        return _euler(model, params, state, spring, max_steps, tol, step, clamp_visible)
    if solver == "fast":
        return _block_coordinate(model, params, state, spring, max_steps, tol, omega, clamp_visible)
    raise ValueError(f"unknown solver {solver!r}")


def _euler(model, params, state, spring, max_steps, tol, step, clamp_visible) -> Equilibrium:
    """Explicit Euler, s <- s - eps dE/ds (the paper's dynamics)."""
    steps = 0
    grads = total_grad(model, params, state, spring, clamp_visible)
    while steps < max_steps and not (tol > 0 and max_abs(grads) < tol):
        for s, g in zip(state, grads):
            s -= step * g
        steps += 1
        grads = total_grad(model, params, state, spring, clamp_visible)
    return Equilibrium(state, sample_max_abs(grads), steps)


# Safeguards of the per-unit Newton step: curvature floor and largest move.
_MIN_CURVATURE = 0.3
_MAX_MOVE = 2.0

# A point is over-relaxed only once its largest slope is below this: far from equilibrium,
# where the path decides the basin, it takes plain block-descent steps (omega 1). Measured
# on the trained digits model (step 2000, 1797 points, against euler run to convergence):
# over-relaxing from the start at omega 1.4 ends 47 points in another basin than euler's,
# this rule 16 at omega 1.4 and 1.6 (plain steps throughout: 18, in twice the sweeps;
# the rule at 1.0 instead of 0.3: 22).
_OVERRELAX_BELOW = 0.3


def _newton_move(s: np.ndarray, drive: np.ndarray, d1: np.ndarray, d2: np.ndarray, omega) -> np.ndarray:
    """One safeguarded Newton step on 1/2 s^2 - c rho(s) per unit, scaled by omega (a number
    or a (rows, 1) column), in place. d1, d2 are rho', rho'' at s. Returns dE/ds at s."""
    slope = drive * d1
    np.subtract(s, slope, out=slope)
    move = drive * d2
    np.subtract(1.0, move, out=move)
    np.maximum(move, _MIN_CURVATURE, out=move)
    np.divide(slope, move, out=move)
    np.clip(move, -_MAX_MOVE, _MAX_MOVE, out=move)
    move *= omega
    s -= move
    return slope


def _row_max(a: np.ndarray) -> np.ndarray:
    """max |a| per row; overwrites a (every caller's slope is a temporary)."""
    return np.abs(a, out=a).max(axis=1)


def _block_coordinate(model, params, state, spring, max_steps, tol, omega, clamp_visible) -> Equilibrium:
    """Even/odd block sweeps; the visible layer is quadratic given h1 and is solved exactly.

    Each hidden layer takes one Newton step per sweep: the sweeps themselves iterate, so
    solving a layer exactly given neighbours that are about to move is wasted work (two
    steps per sweep: 1.4x the time at the same sweep count). rho, rho' and rho'' are
    computed once per update, at the new state, and reused: rho for the neighbours' drives,
    rho' for the convergence test, rho' and rho'' for the next sweep's Newton step.
    (Profiled: rho, not the matrix products, is most of a sweep's time.)

    Training points are independent, so only the points not yet below `tol` keep sweeping
    (an active set): a few slow points near a bifurcation do not hold up the batch. The
    convergence test costs nothing extra: each layer's slope comes with its update (even
    layers before theirs, odd layers after, while their drive is current). A point that
    passes is confirmed with the exact residual and sweeps on if that fails.
    """
    n = len(state)
    even, odd = list(range(0, n, 2)), list(range(1, n, 2))
    rho = model.rho
    derivs = [None] + [list(rho.all(s)) for s in state[1:]]
    residual = _cached_residual(model, params, state, derivs, spring, clamp_visible)
    # The rows still sweeping: their indices, and their state, [rho, rho', rho''] per hidden
    # layer, spring and latest largest slope. While every row sweeps these are the full
    # arrays themselves; after that, compact copies, shrunk (and written back) only when
    # rows finish rather than gathered and scattered every sweep.
    idx = np.flatnonzero(~(residual < tol)) if tol > 0 else np.arange(state[0].shape[0])
    whole = idx.size == state[0].shape[0]
    sub = state if whole else [s[idx] for s in state]
    if not whole:
        derivs = [None] + [[a[idx] for a in c] for c in derivs[1:]]
    sub_spring = spring if spring is None or whole else spring.rows(idx)
    last = residual[idx]
    one, over = np.asarray(1.0, state[0].dtype), np.asarray(omega, state[0].dtype)
    sweeps = 0
    while sweeps < max_steps and idx.size:
        acts = [sub[0]] + [c[0] for c in derivs[1:]]
        step = over if omega == 1.0 else np.where(last < _OVERRELAX_BELOW, over, one)[:, None]
        estimate = np.zeros(idx.size, dtype=state[0].dtype)
        for layer in even + odd:
            drive = model.layer_drive(params, sub, layer, acts)
            if layer == 0:
                if not clamp_visible:
                    k = 0.0 if sub_spring is None else sub_spring.stiffness
                    pull = drive if sub_spring is None else drive + sub_spring.pull
                    estimate = np.maximum(estimate, _row_max((1.0 + k) * sub[0] - pull))
                    sub[0][...] = pull / (1.0 + k)
                continue
            _, d1, d2 = derivs[layer]
            slope = _newton_move(sub[layer], drive, d1, d2, step)
            derivs[layer] = list(rho.all(sub[layer]))
            acts[layer] = derivs[layer][0]
            if layer in odd:
                slope = drive * derivs[layer][1]
                np.subtract(sub[layer], slope, out=slope)
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
        residual[idx[passed]] = _exact_residual(model, params, state, spring, clamp_visible, idx[passed])
        going |= passed & ~(residual[idx] < tol)  # confirmed by the exact residual, or sweeps on
        idx, sub, last = idx[going], [s[going] for s in sub], last[going]
        derivs = [None] + [[a[going] for a in c] for c in derivs[1:]]
        sub_spring = spring if spring is None else spring.rows(idx)
    if sub is not state:
        for s, part in zip(state, sub):
            s[idx] = part
    unfinished = np.flatnonzero(~(residual < tol)) if tol > 0 else np.arange(state[0].shape[0])
    if unfinished.size:
        residual[unfinished] = _exact_residual(model, params, state, spring, clamp_visible, unfinished)
    return Equilibrium(state, residual, sweeps)


def _cached_residual(model, params, state, derivs, spring, clamp_visible) -> np.ndarray:
    """max |dE_total/ds| per row, from [rho, rho', rho''] already computed at the state."""
    acts = [state[0]] + [c[0] for c in derivs[1:]]
    residual = np.zeros(state[0].shape[0], dtype=state[0].dtype)
    for layer in range(len(state)):
        drive = model.layer_drive(params, state, layer, acts)
        if layer == 0:
            if clamp_visible:
                continue
            if spring is not None:
                drive = drive + spring.pull
            slope = (1.0 + (0.0 if spring is None else spring.stiffness)) * state[0] - drive
        else:
            slope = drive * derivs[layer][1]
            np.subtract(state[layer], slope, out=slope)
        residual = np.maximum(residual, _row_max(slope))
    return residual


def _exact_residual(model, params, state, spring, clamp_visible, rows: np.ndarray) -> np.ndarray:
    """max |dE_total/ds| of the given batch rows."""
    sub = [s[rows] for s in state]
    sub_spring = spring.rows(rows) if spring is not None else None
    return sample_max_abs(total_grad(model, params, sub, sub_spring, clamp_visible))
