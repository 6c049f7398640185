"""The relaxation in time of a circuit whose neurons are op-amp stages (the hopfield84
family, circuits/physical.lib), simulated in numpy for many points at once.

There the state nodes are op-amp outputs, so no node capacitor sets the dynamics: each
op-amp follows its input with the closed-loop time constant of its stage, noise gain /
(2 pi GBW) (a single-pole op-amp: the OPA241's dominant pole, as the macromodel's C1). The
slowest stage of a neuron is its transimpedance amplifier, whose noise gain grows with the
crossbar conductance on its sense line; the stages after it (inverters, followers) add
their own lags. Lumping each neuron's stages into two lags, before its state (the
transimpedance amplifier, and on visible units the inverter) and after it (the buffers
copying it onto the rows; the time constants of each part summed, model/layers.py
`cell_lag`, `cell_row_lag`) gives Hopfield's own dynamics (Hopfield 1984, PNAS 81, 3088,
eq. 5) in the drive c the transimpedance amplifier holds, with the rows' delay:

    tau_i dc_i/dt = c_i*(a) - c_i,   s_i = g(c_i),   tau'_i da_i/dt = s_i - a_i

with c*(a) the drive the crossbar rows a and the bias deliver and g the unit's transfer
curve (hidden: the diodes; visible: the node x = (c + springs) / (1 + k), a resistive node).
One lag alone (tau'_i = 0) settled the nudged phases, whose small moves end within the rows'
delay, 2-2.5x sooner than ngspice; with the rows' lag 40% sooner (docs/results/physical.md).
Its fixed points are the energy's stationary points, and the energy decreases along it
for symmetric couplings (Hopfield 1984). tests/test_hopfield84_hardware.py compares its
settling with ngspice's transient of the op-amp macromodel.

Integration: exponential Euler in c (exact for each lag given the state) with a step of
STEP_FRACTION of the fastest lag; times are in units of the slowest lag, as
accounting/settling.py's are in C/g0, and settling is judged the same way (every node
within `tol` of the end state, the minimum the flow reaches, polished by block descent).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from analogep.accounting.settling import BASIN_RESIDUAL, END_RESIDUAL, POLISH_SWEEPS, SAMPLE_EVERY, Settling
from analogep.model.energy import EnergyModel, Params, State
from analogep.solvers.base import VisibleSpring, sample_max_abs, total_grad
from analogep.solvers.fast import FastSolver

STEP_FRACTION = 0.1
# Longest simulated time, in units of the slowest lag.
MAX_TIME = 20000.0


class LaggedFlow:
    """The lagged circuit from `start`: per layer the drive its sense amplifier holds, the
    state that drive sets, and the rows' copy of the state. `lags` per layer (n,) and
    `row_lags` per layer (the part of the lag after the state, its buffers), both relative
    to the slowest lag."""

    def __init__(self, model: EnergyModel, params: Params, start: State, spring: VisibleSpring | None,
                 clamp_visible: bool, lags: list[np.ndarray], drive: State, row_lags: list[float]):
        self.model, self.params, self.spring, self.clamp = model, params, spring, clamp_visible
        self.state = [np.array(s, dtype=np.float64, copy=True) for s in start]
        self.rows = [np.array(s, dtype=np.float64, copy=True) for s in start]  # the buffers hold the start
        self.layers = list(range(1 if clamp_visible else 0, len(self.state)))
        sense = {l: lags[l] - row_lags[l] for l in self.layers}
        fastest = min(min(float(np.min(sense[l])) for l in self.layers),
                      min((row_lags[l] for l in self.layers if row_lags[l] > 0), default=np.inf))
        self.step = STEP_FRACTION * fastest
        self.alpha = {l: -np.expm1(-self.step / sense[l]) for l in self.layers}
        self.beta = {l: -np.expm1(-self.step / row_lags[l]) if row_lags[l] > 0 else 1.0 for l in self.layers}
        # The sense amplifiers' outputs at t = 0 (spice/transient.py `start_drive`); the
        # states follow them at once (a nudge that comes on moves x).
        self.drive = {l: np.array(drive[l], dtype=np.float64, copy=True) for l in self.layers}
        for l in self.layers:
            s = self.state[l]
            model.block_update(l, s, self.drive[l], model.activity(l, s, 2), spring if l == 0 else None, 1.0)

    def advance(self) -> None:
        """One step: every sense lag moves towards the drive the rows deliver, every state
        follows its sense lag, and every row its state."""
        target = {l: self.model.layer_drive(self.params, self.rows, l) for l in self.layers}
        for l in self.layers:
            self.drive[l] += self.alpha[l] * (target[l] - self.drive[l])
            s = self.state[l]
            self.model.block_update(l, s, self.drive[l], self.model.activity(l, s, 2), self.spring if l == 0 else None, 1.0)
            self.rows[l] += self.beta[l] * (s - self.rows[l])

    def residual(self) -> float:
        return max(max(float(np.max(np.abs(self.model.layer_drive(self.params, self.rows, l) - self.drive[l]))),
                       float(np.max(np.abs(self.rows[l] - self.state[l])))) for l in self.layers)


def _run(flow: LaggedFlow, end: State | None, tol: float, power, until: float):
    """As accounting/settling.py's `_run`, on the lagged flow."""
    points = flow.state[0].shape[0]
    last_out = np.zeros(points)
    p_prev = power(flow.state) if power is not None and end is not None else None
    energy = np.zeros(np.shape(p_prev) if p_prev is not None else (points,))
    u, steps, sampled = 0.0, 0, 0.0

    def integrate(p_now: np.ndarray) -> None:
        span = np.clip(last_out - sampled, 0.0, u - sampled)
        energy[...] += 0.5 * (p_prev + p_now) * span.reshape((-1,) + (1,) * (energy.ndim - 1))

    while u < until:
        flow.advance()
        u += flow.step
        steps += 1
        if end is not None:
            dist = sample_max_abs([s - e for s, e in zip(flow.state, end)])
            last_out[dist > tol] = u
            if p_prev is not None and steps % SAMPLE_EVERY == 0:
                p_now = power(flow.state)
                integrate(p_now)
                p_prev, sampled = p_now, u
            if not (dist > 0.1 * tol).any():
                break
        elif steps % 20 == 0 and flow.residual() <= BASIN_RESIDUAL:
            break
    if p_prev is not None and u > sampled:
        integrate(power(flow.state))
    return last_out, energy, u


def settle_lagged(
    model: EnergyModel,
    params: Params,
    start: State,
    spring: VisibleSpring | None,
    lags: list[np.ndarray],
    drive: State,
    row_lags: list[float],
    *,
    tol: float,
    clamp_visible: bool = False,
    power: Callable[[State], np.ndarray] | None = None,
) -> Settling:
    """Settling times (units of the slowest lag) of a batch relaxing from `start`, its sense
    amplifiers at `drive`, through the lagged circuit; `power(state)` integrated over each
    point's settling."""
    slowest = max(float(np.max(x)) for x in lags)
    rel = [np.asarray(t, dtype=np.float64) / slowest for t in lags]
    rows = [r / slowest for r in row_lags]
    flow = LaggedFlow(model, params, start, spring, clamp_visible, rel, drive, rows)
    _, _, stop = _run(flow, None, tol, None, MAX_TIME)
    end = FastSolver(POLISH_SWEEPS, tol=END_RESIDUAL, omega=1.0).relax(model, params, flow.state, spring,
                                                                       clamp_visible=clamp_visible).state
    residual = sample_max_abs(total_grad(model, params, end, spring, clamp_visible))
    t, energy, _ = _run(LaggedFlow(model, params, start, spring, clamp_visible, rel, drive, rows), end, tol, power,
                        stop + flow.step / 2)
    return Settling(np.where(residual <= 1e3 * END_RESIDUAL, t, np.inf), end, energy)
