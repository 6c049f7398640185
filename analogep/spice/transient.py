"""The circuit relaxing in time: transient decks, and settling measured from the waveform.

With capacitance C on every neuron node the circuit is the gradient flow
C ds/dt = -g0 dE_total/ds (method.md section 7). A transient deck starts it where a
phase starts (free: x = x_t, h = 0; a nudged phase: the free equilibrium; inference: h = 0
with x clamped) by `.ic`, and integrates with ngspice's `.tran` until it has settled. Unlike
a DC operating point, which is a root finder and can land on a saddle of the energy, the
transient descends the energy, so where it ends is where the physical circuit settles.

Near the equilibrium every Hessian mode decays as exp(-g0 lambda_i t / C), so the tail of
the waveform is set by the slowest mode, tau = C / (g0 lambda_min) (model/curvature.py):
`tail_time_constant` measures it from the waveform, `settling_time` the time after which
every node stays within a tolerance of its final value.

A family of datasheet op-amps (`CircuitRules.amplifier`, hopfield84's physical.lib) has no
node capacitance to set its flow: its state nodes are op-amp outputs, and each op-amp
follows with the time constant of its stage (noise gain / 2 pi GBW, the macromodel's
dominant pole). Its transient deck starts every op-amp where it holds the phase's start
(`.ic` on the macromodels' gain nodes, from the cells' `cell_start`), and its time scale
is the lagged circuit's (accounting/amplified.py): each neuron's lag tau_i (`amplifier_lags`,
from its cell's stages and the crossbar conductance on its sense line), linearised at the
equilibrium as tau_i L''_i ds_i/dt = -(H ds)_i, whose slowest mode has the rate lambda_min of
(T D)^-1/2 H (T D)^-1/2 (T the lags, D the leaks' curvature, H the Hessian: `lagged_tau`).

ngspice options: Gear integration (stiff: the visible modes are 1 + lambda = 16 times
faster than a unit leak), the largest step tau / STEPS_PER_TAU, and the run SPAN_TAUS time
constants long so that the end state is the equilibrium to about exp(-30) = 1e-13.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analogep.spice.compiler import build_netlist, state_nodes
from analogep.spice.netlist import Netlist, fmt, render
from analogep.spice.run.ngspice import SubprocessNgspice, ngspice_info
from analogep.config.spec import Spec
from analogep.errors import CircuitError
from analogep.devices.mapping import row_loads
from analogep.model.curvature import hessian, smallest_eigen
from analogep.model.energy import EnergyModel, Params, State

SPAN_TAUS = 30.0
STEPS_PER_TAU = 2.0
# The tail fit uses the waveform from where its distance to the end has fallen by
# TAIL_FROM of its start to where it has fallen by TAIL_TO (three decades), well above
# ngspice's truncation-error floor (about 1e-10 of full scale at reltol 1e-8).
TAIL_FROM, TAIL_TO = 1e-3, 1e-6
# Seconds one transient may run: a digits-circuit transient (500-600 time points) takes
# minutes (docs/results/energy.md).
TIMEOUT_S = 900.0


def start_state(phase: str, anchors: dict[str, np.ndarray], free: State | None, sizes: tuple[int, ...]) -> State:
    """Where a phase starts relaxing (method.md section 3): free at x = x_t, h = 0; a nudged
    phase at the free equilibrium `free`; inference with x clamped and h = 0."""
    if phase == "free":
        return [np.asarray(anchors["xt"], dtype=np.float64)] + [np.zeros((1, k)) for k in sizes[1:]]
    if phase == "generate":
        return [np.asarray(anchors["xc"], dtype=np.float64)] + [np.zeros((1, k)) for k in sizes[1:]]
    if free is None:
        raise ValueError(f"the {phase} phase starts from the free equilibrium; pass it")
    return [np.asarray(s, dtype=np.float64) for s in free]


def visible_stiffness(spec: Spec, phase: str, beta: float | None = None) -> float:
    """Curvature the springs and nudges add to each visible unit in a phase."""
    g = spec.gradep
    if phase == "free":
        return g.lam
    if phase == "generate":
        return 0.0
    if beta is None:
        beta = g.beta if phase == "nudge_plus" else -g.beta
    return g.lam + beta * (g.alpha * g.lam) ** 2


def amplifier_lags(spec: Spec, model: EnergyModel, params: Params) -> list[np.ndarray] | None:
    """Per layer, each neuron's lag (s) from its drive to its rows: its cell's stages' noise
    gains (model/layers.py `cell_lag`, with the crossbar conductance on its sense line) over
    2 pi GBW of the family's op-amp; None for cells without one (analogep.lib)."""
    rules = model.circuit_rules()
    if rules.amplifier is None:
        return None
    omega = 2.0 * np.pi * rules.amplifier.gbw_hz
    plus, minus = row_loads(spec, model, params)
    return [layer.cell_lag(spec.circuit.g0, p + m) / omega for layer, p, m in zip(model.layers, plus, minus)]


def amplifier_row_lags(model: EnergyModel) -> list[float] | None:
    """Per layer, the part of each neuron's lag (s) after its state: the buffers copying it
    onto the rows (model/layers.py `cell_row_lag`); None for cells without a datasheet op-amp."""
    amp = model.circuit_rules().amplifier
    if amp is None:
        return None
    return [layer.cell_row_lag / (2.0 * np.pi * amp.gbw_hz) for layer in model.layers]


def lagged_tau(model: EnergyModel, params: Params, state: State, lags: list[np.ndarray], stiffness: float,
               clamp_visible: bool = False) -> np.ndarray:
    """Per point, the slowest time constant (s) of the lagged circuit linearised at `state`:
    1 / lambda_min((T D)^-1/2 H (T D)^-1/2), D = diag(H) (the leaks' curvature: a layered
    network has no self-coupling); inf where that is not positive."""
    h = hessian(model, params, [np.asarray(s, dtype=np.float64) for s in state], stiffness, clamp_visible)
    lag = np.concatenate(lags[1:] if clamp_visible else lags)
    scale = 1.0 / np.sqrt(lag[None, :] * np.diagonal(h, axis1=1, axis2=2))
    rate = np.linalg.eigvalsh(h * scale[:, :, None] * scale[:, None, :])[:, 0]
    with np.errstate(divide="ignore"):
        return np.where(rate > 0, 1.0 / np.maximum(rate, 1e-300), np.inf)


def predicted_tau(spec: Spec, model: EnergyModel, params: Params, phase: str, equilibrium: State, beta: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per point, (lambda_min, tau = C / (g0 lambda_min)) of the linearised circuit at its
    equilibrium (C: circuit.capacitance; tau is inf at a zero or negative lambda_min); for a
    family of datasheet op-amps, tau is the lagged circuit's (`lagged_tau`)."""
    k, clamp = visible_stiffness(spec, phase, beta), phase == "generate"
    lam, _ = smallest_eigen(model, params, equilibrium, k, clamp_visible=clamp)
    lags = amplifier_lags(spec, model, params)
    if lags is not None:
        return lam, lagged_tau(model, params, equilibrium, lags, k, clamp)
    c = spec.circuit
    with np.errstate(divide="ignore"):
        tau = np.where(lam > 0, c.capacitance / (c.g0 * np.maximum(lam, 1e-300)), np.inf)
    return lam, tau


def tran_window(tau: float) -> tuple[float, float, float]:
    """(print step, stop time, largest step) of a transient that settles a slowest mode tau."""
    return tau / STEPS_PER_TAU, SPAN_TAUS * tau, tau / STEPS_PER_TAU


def transient_netlist(
    spec: Spec,
    model: EnergyModel,
    params: Params,
    phase: str,
    anchors: dict[str, np.ndarray],
    start: State,
    tau: float,
    *,
    beta: float | None = None,
    header: list[str] | None = None,
) -> Netlist:
    """One point's circuit of a phase with a `.tran` from `start` (.ic on every neuron node;
    ngspice holds them there for its initial operating point, then releases them)."""
    amplified = model.circuit_rules().amplifier is not None  # the op-amps set the dynamics, not C
    if spec.circuit.capacitance <= 0 and not amplified:
        raise CircuitError("a transient needs node capacitance: set circuit.capacitance > 0 (e.g. 1e-12 F)")
    if not np.isfinite(tau) or tau <= 0:
        raise CircuitError(f"{phase} phase: the equilibrium is not a minimum (no finite settling time constant)")
    net = build_netlist(spec, model, params, phase, anchors, sweep=False, beta=beta, header=header)
    names = state_nodes(model.sizes)
    layers = slice(1, None) if phase == "generate" else slice(None)
    net.ic = {n: float(v) for lnames, s in zip(names[layers], start[layers]) for n, v in zip(lnames, np.asarray(s)[0])}
    if amplified:  # the op-amps' gain nodes alone: the neuron nodes follow from them (x is resistive)
        net.ic = _op_amp_start(spec, model, params, phase, anchors, start)
    net.options["method"] = "gear"
    step, stop, tmax = tran_window(tau)
    net.analysis = f".tran {fmt(step)} {fmt(stop)} 0 {fmt(tmax)}"
    return net


def start_drive(spec: Spec, model: EnergyModel, params: Params, phase: str, anchors: dict[str, np.ndarray],
                start: State) -> State:
    """Per layer, the drive the sense amplifiers hold at a phase's start: what holds `start`
    (hidden: g^-1(s); visible: (1 + lambda) x - lambda x_t, the free phase's spring, so a
    nudged phase starts from the free equilibrium's amplifiers and its x jumps as the nudge
    comes on); with x clamped (generate), the visible drive of the start."""
    out = []
    for l, s in enumerate(start):
        s = np.asarray(s, dtype=np.float64)
        if l == 0:
            lam = spec.gradep.lam
            out.append(model.layer_drive(params, start, 0) if phase == "generate"
                       else (1.0 + lam) * s - lam * np.asarray(anchors["xt"], dtype=np.float64))
        else:
            out.append(model.block_slope(l, s, np.zeros_like(s), model.activity(l, s, 2), None))
    return out


def _op_amp_start(spec: Spec, model: EnergyModel, params: Params, phase: str, anchors: dict[str, np.ndarray],
                  start: State) -> dict[str, float]:
    """`.ic` of the cells' op-amps (their gain nodes) where they hold the phase's start."""
    ic = {}
    drives = start_drive(spec, model, params, phase, anchors, start)
    rows = zip(*row_loads(spec, model, params))
    for layer, lnames, s, c, load in zip(model.layers, state_nodes(model.sizes), start, drives, rows):
        for node, values in layer.cell_start(np.asarray(s, dtype=np.float64), c, spec.circuit.g0, load).items():
            ic.update({f"x{n}.{node}": float(v) for n, v in zip(lnames, np.asarray(values)[0])})
    return ic


def distance_to_end(states: State) -> np.ndarray:
    """max over nodes |s(t) - s(end)| per time point, from per-layer (T, n) waveforms."""
    v = np.concatenate(states, axis=1)
    return np.max(np.abs(v - v[-1]), axis=1)


def settling_time(t: np.ndarray, distance: np.ndarray, tol: float) -> float:
    """The time after which every node stays within `tol` of its final value (linear
    interpolation in log distance between the two samples around the crossing)."""
    above = np.flatnonzero(distance > tol)
    if above.size == 0:
        return 0.0
    k = int(above[-1])
    if k + 1 >= t.size:
        return float("inf")  # still outside the tolerance at the end of the run
    d0, d1 = np.log(distance[k]), np.log(max(distance[k + 1], 1e-300))
    frac = (d0 - np.log(tol)) / (d0 - d1) if d0 != d1 else 1.0
    return float(t[k] + frac * (t[k + 1] - t[k]))


def tail_time_constant(t: np.ndarray, distance: np.ndarray) -> float:
    """The decay time of the waveform's tail: a least-squares fit of log distance against
    time over three decades (TAIL_FROM to TAIL_TO of the starting distance)."""
    d0 = distance[0]
    window = (distance <= TAIL_FROM * d0) & (distance >= TAIL_TO * d0)
    if window.sum() < 3:
        return float("nan")
    slope = np.polyfit(t[window], np.log(distance[window]), 1)[0]
    return float(-1.0 / slope) if slope < 0 else float("inf")


@dataclass
class Transient:
    """One point's transient: the waveform per layer (T, n), where it ended, and how it settled."""

    t: np.ndarray
    states: State
    lambda_min: float
    predicted_tau: float
    tail_tau: float
    seconds: float

    @property
    def end(self) -> State:
        return [s[-1:] for s in self.states]

    def settling_time(self, tol: float) -> float:
        return settling_time(self.t, distance_to_end(self.states), tol)


def run_transient(
    spec: Spec,
    model: EnergyModel,
    params: Params,
    phase: str,
    anchors: dict[str, np.ndarray],
    start: State,
    equilibrium: State,
    *,
    beta: float | None = None,
    timeout: float | None = None,
) -> Transient:
    """Relax one point in time with ngspice (`ngspice -b`, which writes any analysis's
    vectors). `equilibrium` (e.g. numpy's) sets the predicted tau and the window only: the
    state the circuit ends in is the transient's own."""
    lam, tau = predicted_tau(spec, model, params, phase, equilibrium, beta)
    net = transient_netlist(spec, model, params, phase, anchors, start, float(tau[0]), beta=beta)
    if ngspice_info().klu:
        net.options["klu"] = None
    names = state_nodes(model.sizes)
    net.saves = [f"v({n})" for layer in names for n in layer]
    result = SubprocessNgspice().run(render(net, include=None), timeout or TIMEOUT_S)
    missing = [n for layer in names for n in layer if n not in result.vectors]
    if "time" not in result.vectors or missing:
        raise CircuitError(f"ngspice could not run the {phase} transient: {result.message or 'no waveform'}")
    t = result.vectors["time"]
    states = [np.stack([result.vectors[n] for n in layer], axis=1) for layer in names]
    return Transient(t, states, float(lam[0]), float(tau[0]), tail_time_constant(t, distance_to_end(states)), result.seconds)
