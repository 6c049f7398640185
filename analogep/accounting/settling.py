"""The circuit's relaxation in time, simulated in numpy for many points at once.

With capacitance C on every neuron node the circuit is the gradient flow
C ds/dt = -g0 dE_total/ds (method.md section 7); in the time unit C/g0 it is
ds/du = -dE_total/ds, the paper's Euler dynamics with a small step. ngspice's transient
(spice/transient.py) solves the same flow for one point at a time; this integrates a
batch, so the accounting can take every phase's settling time and the energy drawn along
the way from many training points. tests/test_energy_accounting.py checks its settling
times against ngspice's transients.

Integration: visible units exactly (given the hidden activities their flow is linear,
relaxing with rate 1 + k towards (pull + drive) / (1 + k)), hidden units by explicit
Euler with step STEP (the hidden modes' time constants are 1/3 unit or longer here; on
the tiny circuit the settling times agree with ngspice's transients to about 1%). Settling time of a point: the last time any node
is farther than `tol` from the flow's own end state: the minimum the circuit's descent
reaches (the flow run until its largest slope is below BASIN_RESIDUAL, then finished by
plain block descent to END_RESIDUAL).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from analogep.model.energy import EnergyModel, Params, State
from analogep.solvers.base import VisibleSpring, sample_max_abs, total_grad
from analogep.solvers.fast import FastSolver

STEP = 0.05
END_RESIDUAL = 1e-10
BASIN_RESIDUAL = 1e-6
POLISH_SWEEPS = 5000
# Longest simulated time, in units of C/g0 (10 ns at 1 pF and g0 = 1e-4 S): a point near a
# bifurcation (lambda_min -> 0) that has not settled by then is reported as unsettled.
MAX_TIME = 5000.0
# Supply power is sampled every SAMPLE_EVERY steps and integrated by the trapezoid rule.
SAMPLE_EVERY = 10


@dataclass
class Settling:
    """Per point: settling time (units of C/g0; inf when unsettled), the flow's end state,
    and the integral of `power` over the settling time (units of C/g0 times its unit; one
    column per column of `power`)."""

    time: np.ndarray
    end: State
    energy: np.ndarray

    @property
    def settled(self) -> np.ndarray:
        return np.isfinite(self.time)


def _step(model: EnergyModel, params: Params, state: State, spring: VisibleSpring | None, clamp_visible: bool, h: float) -> None:
    """One step of the flow, in place."""
    grads = total_grad(model, params, state, spring, clamp_visible)
    if not clamp_visible:
        k = 0.0 if spring is None else spring.stiffness
        # dE/dx = (1 + k) x - (pull + drive): relax exactly towards its zero.
        target = state[0] - grads[0] / (1.0 + k)
        state[0] += (target - state[0]) * (1.0 - np.exp(-(1.0 + k) * h))
    for layer in range(1, len(state)):
        state[layer] -= h * grads[layer]


def _run(model, params, start, spring, clamp_visible, end: State | None, tol: float, power, until: float = MAX_TIME):
    """Integrate from `start` for at most `until`; without `end`, until every point's
    largest slope is below END_RESIDUAL; with `end`, record settling times against it and
    integrate `power` until each point has settled. Returns (last times out, state,
    energy, end time)."""
    state = [np.array(s, dtype=np.float64, copy=True) for s in start]
    points = state[0].shape[0]
    last_out = np.zeros(points)  # last time each point was farther than tol from `end`
    p_prev = power(state) if power is not None and end is not None else None
    energy = np.zeros(np.shape(p_prev) if p_prev is not None else (points,))
    u, steps, sampled = 0.0, 0, 0.0  # sampled: the time of the last power sample

    def integrate(p_now: np.ndarray) -> None:
        # Trapezoid over (sampled, u], counting only the part before each point settled.
        span = np.clip(last_out - sampled, 0.0, u - sampled)
        energy[...] += 0.5 * (p_prev + p_now) * span.reshape((-1,) + (1,) * (energy.ndim - 1))

    while u < until:
        _step(model, params, state, spring, clamp_visible, STEP)
        u += STEP
        steps += 1
        if end is not None:
            dist = sample_max_abs([s - e for s, e in zip(state, end)])
            out = dist > tol
            last_out[out] = u
            if p_prev is not None and steps % SAMPLE_EVERY == 0:
                p_now = power(state)
                integrate(p_now)
                p_prev, sampled = p_now, u
            if not (dist > 0.1 * tol).any():
                break
        elif steps % 20 == 0:
            g = total_grad(model, params, state, spring, clamp_visible)
            if not (sample_max_abs(g) > BASIN_RESIDUAL).any():
                break
    if p_prev is not None and u > sampled:
        integrate(power(state))
    return last_out, state, energy, u


def settle(
    model: EnergyModel,
    params: Params,
    start: State,
    spring: VisibleSpring | None,
    *,
    tol: float,
    clamp_visible: bool = False,
    power: Callable[[State], np.ndarray] | None = None,
) -> Settling:
    """Settling times of a batch relaxing from `start` under E + spring (float64 model and
    params); `power(state)` -> (points,) or (points, k) is integrated over each point's
    settling."""
    _, end, _, stop = _run(model, params, start, spring, clamp_visible, None, tol, None)
    # The flow has chosen its basin by BASIN_RESIDUAL; plain block descent finishes the
    # way to the minimum much faster than the flow's slow tail.
    end = FastSolver(POLISH_SWEEPS, tol=END_RESIDUAL, omega=1.0).relax(model, params, end, spring,
                                                                       clamp_visible=clamp_visible).state
    residual = sample_max_abs(total_grad(model, params, end, spring, clamp_visible))
    t, _, energy, _ = _run(model, params, start, spring, clamp_visible, end, tol, power, until=stop + STEP / 2)
    time = np.where(residual <= 1e3 * END_RESIDUAL, t, np.inf)
    return Settling(time, end, energy)
