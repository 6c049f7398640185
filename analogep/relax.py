"""Relaxation: find the equilibrium of E plus springs on the visible units (method.md section 3).

Two solvers find the fixed point dE_total/ds = 0 from the same start:

- `euler`: the paper's explicit Euler on the gradient flow ds/dt = -dE/ds, all layers at
  once, step eps (0.1), a fixed number of steps unless `tol` stops it early. Kept for
  reproducing the paper. Measured on the digits model after 300 training steps: 300 steps
  leave 1471 of 1797 points above max |dE/ds| = 1e-3; converging takes about 3000.
- `fast`: block coordinate descent over the bipartite layer graph (Scellier 2024, "A fast
  algorithm to simulate nonlinear resistive networks"): layers alternate even {x, h2, ...}
  and odd {h1, h3, ...}; given its neighbours a layer's energy is separable per unit, so
  the visible layer (quadratic) is solved exactly and each hidden unit takes safeguarded
  Newton steps on 1/2 s^2 - c rho(s), over-relaxed by `omega` (successive over-relaxation:
  128 -> 53 sweeps at omega 1.4 on those weights). Each point stops once below `tol`.

Why the same equilibrium: both are descent methods started at the same point (x = x_t,
h = 0; nudged phases at the free equilibrium), and near a minimum the Hessian is positive
definite, where over-relaxed block Gauss-Seidel converges for 0 < omega < 2 (Ostrowski-
Reich). Where the energy has one minimum reachable from the start they must agree; where a
point sits near a bifurcation, two paths can end in different minima. Measured on the
digits model (400 points, step-300 weights): fast (omega 1.0 and 1.4) and euler run to
convergence agree within 2.6e-4 on every point, energies within 4e-5.
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


_NEWTON_STEPS = 2


def _hidden_update(s: np.ndarray, drive: np.ndarray, rho, omega: float = 1.0) -> np.ndarray:
    """Safeguarded Newton steps on 1/2 s^2 - c rho(s) per unit, the whole move over-relaxed
    by omega (in place). Returns the slope dE/ds before the update (the layer's gradient)."""
    start = s.copy()
    for i in range(_NEWTON_STEPS):
        _, d1, d2 = rho.all(s)
        step_slope = s - drive * d1
        if i == 0:
            slope = step_slope
        curvature = np.maximum(1.0 - drive * d2, _MIN_CURVATURE)
        s -= np.clip(step_slope / curvature, -_MAX_MOVE, _MAX_MOVE)
    if omega != 1.0:
        s += (omega - 1.0) * (s - start)
    return slope


def _row_max(a: np.ndarray) -> np.ndarray:
    return np.max(np.abs(a), axis=1)


def _block_coordinate(model, params, state, spring, max_steps, tol, omega, clamp_visible) -> Equilibrium:
    """Even/odd block sweeps; the visible layer is quadratic given h1 and is solved exactly.

    Training points are independent, so only the points not yet below `tol` keep
    sweeping (an active set): a few slow points near a bifurcation do not hold up the batch.
    Each layer's activity rho(s) is computed once per update and reused by its neighbours'
    drives, and the convergence test costs nothing extra: each layer's slope comes with its
    update (even layers before theirs, odd layers after, while their drive is current). A
    point that passes is confirmed with the exact residual and sweeps on if that fails.
    (Profiled: rho, not the matrix products, is most of a sweep's time.)
    """
    n = len(state)
    even, odd = list(range(0, n, 2)), list(range(1, n, 2))
    residual = sample_max_abs(total_grad(model, params, state, spring, clamp_visible))
    active = np.flatnonzero(~(residual < tol)) if tol > 0 else np.arange(state[0].shape[0])
    hidden_acts = [model.rho(s) for s in state[1:]]  # kept current across sweeps
    sweeps = 0
    while sweeps < max_steps and active.size:
        whole = active.size == state[0].shape[0]
        sub = state if whole else [s[active] for s in state]
        sub_spring = spring
        if spring is not None and not whole:
            sub_spring = spring.rows(active)
        acts = [sub[0]] + (list(hidden_acts) if whole else [a[active] for a in hidden_acts])
        estimate = np.zeros(active.size, dtype=state[0].dtype)
        for layer in even + odd:
            drive = model.layer_drive(params, sub, layer, acts)
            if layer == 0:
                if not clamp_visible:
                    k = 0.0 if sub_spring is None else sub_spring.stiffness
                    pull = drive if sub_spring is None else drive + sub_spring.pull
                    estimate = np.maximum(estimate, _row_max((1.0 + k) * sub[0] - pull))
                    sub[0][...] = pull / (1.0 + k)
                continue
            slope = _hidden_update(sub[layer], drive, model.rho, omega)
            acts[layer], deriv = model.rho.value_and_deriv(sub[layer])
            if layer in odd:
                slope = sub[layer] - deriv * drive
            estimate = np.maximum(estimate, _row_max(slope))
        sweeps += 1
        if whole:
            hidden_acts = acts[1:]
        else:
            for s, part in zip(state, sub):
                s[active] = part
            for a, part in zip(hidden_acts, acts[1:]):
                a[active] = part
        going = ~(estimate < tol) if tol > 0 else np.isfinite(estimate)  # NaN counts as unconverged
        passed, active = active[~going], active[going]
        if passed.size:
            residual[passed] = _exact_residual(model, params, state, spring, clamp_visible, passed)
            active = np.sort(np.concatenate([active, passed[~(residual[passed] < tol)]]))
    unfinished = np.flatnonzero(~(residual < tol)) if tol > 0 else np.arange(state[0].shape[0])
    if unfinished.size:
        residual[unfinished] = _exact_residual(model, params, state, spring, clamp_visible, unfinished)
    return Equilibrium(state, residual, sweeps)


def _exact_residual(model, params, state, spring, clamp_visible, rows: np.ndarray) -> np.ndarray:
    """max |dE_total/ds| of the given batch rows."""
    sub = [s[rows] for s in state]
    sub_spring = spring.rows(rows) if spring is not None else None
    return sample_max_abs(total_grad(model, params, sub, sub_spring, clamp_visible))
