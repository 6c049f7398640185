"""The circuit's way (method.md section 7): one circuit, programmed with the weights, runs
the training points one after another. Per point and phase it relaxes from where the phase
starts (accounting/settling.py simulates the circuit's own gradient flow, which matches
ngspice's transients) until every node is within `physics.settle_tolerance` of its
equilibrium; the supply power along the way (accounting/power.py, the amplifier model below)
integrates to the phase's energy; then ADCs read the nodes the update needs, while the
circuit holds. Beside the circuit: DACs set the anchors, a digital unit accumulates the EP
update over the batch and runs Adam, and write pulses move the conductances. A generated
sample is a sequence of clamped equilibria (method.md section 5), each settled the same way.

Amplifier model (physics.yaml): every active element (row drivers, sense amplifiers,
injections, anchor sources, nudge sources) draws a quiescent current from the supply and
sources its output current from the supply too (a class-B output stage), so its power is
supply_voltage * (quiescent + |output current|).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from analogep.accounting.amplified import settle_lagged
from analogep.accounting.estimate import Estimate
from analogep.accounting.power import circuit_power
from analogep.accounting.programming import ProgrammedCircuit
from analogep.accounting.settling import settle
from analogep.backends.spring import Nudge
from analogep.backends.spring import phase_spring
from analogep.config.spec import Spec
from analogep.model.curvature import smallest_eigenvalues
from analogep.model.energy import State
from analogep.solvers.base import free_start
from analogep.solvers.fast import FastSolver
from analogep.spice.transient import start_drive

# Generation steps whose hidden relaxation is simulated (the rest take their average).
SIMULATED_SAMPLING_STEPS = 20
SUPPLY_GROUPS = ("drivers", "sense", "injection", "anchors", "nudges", "biases")
PASSIVE = ("crossbar", "leak", "spring", "nudge")


def adc_energy(spec: Spec) -> float:
    """Joules of one ADC conversion (Walden figure of merit times 2^bits)."""
    p = spec.physics
    return p.adc_fom * 2.0**p.adc_bits


def dac_energy(spec: Spec) -> float:
    """Joules of one DAC setting (its capacitor array charged to the supply)."""
    p = spec.physics
    return 2.0**p.dac_bits * p.dac_unit_capacitance * p.supply_voltage**2


def readout_time(spec: Spec, nodes: int, n_neurons: int) -> float:
    """Seconds the ADCs take to read `nodes` nodes (physics.adcs of them, default one per neuron)."""
    adcs = spec.physics.adcs or n_neurons
    return float(np.ceil(nodes / adcs)) / spec.physics.adc_rate


class PhasePower:
    """Supply power (per group) and passive dissipation of one phase's circuit at a state,
    in watts: the callable the settling simulation integrates."""

    columns = SUPPLY_GROUPS + ("quiescent",) + PASSIVE

    def __init__(self, spec, model, params, phase, anchors, beta, loads, supply):
        self.spec, self.model, self.params, self.phase, self.anchors, self.beta, self.loads = (
            spec, model, params, phase, anchors, beta, loads,
        )
        self.supply = supply

    def __call__(self, state: State) -> np.ndarray:
        v = self.supply
        cp = circuit_power(self.spec, self.model, self.params, self.phase, state, self.anchors, beta=self.beta,
                           volts_per_unit=v.volts_per_unit, loads=self.loads)
        points = state[0].shape[0]
        cols = [v.signal_v * cp.currents.get(g, np.zeros(points)) for g in SUPPLY_GROUPS]
        cols.append(np.full(points, cp.amplifiers * v.quiescent_v * v.quiescent_a))
        cols += [cp.crossbar, cp.leak, cp.spring, np.abs(cp.nudge)]
        return np.stack(cols, axis=1)


def _phase_settling(circuit: ProgrammedCircuit, phase, start, anchors, beta, clamp_visible=False):
    """Settling (s) and energy per column (J) per point of one phase, and lambda_min."""
    spec, model, params, unit = circuit.spec, circuit.model, circuit.params, circuit.unit
    nudge = None if beta is None else Nudge(beta, anchors["a"])
    spring = None if clamp_visible else phase_spring(spec.gradep, anchors["xt"], nudge)
    power = PhasePower(spec, model, params, phase, anchors, beta, circuit.loads, circuit.supply)
    tol = spec.physics.settle_tolerance
    if circuit.lags is None:
        s = settle(model, params, start, spring, tol=tol, clamp_visible=clamp_visible, power=power)
    else:  # op-amp stages: each neuron's lag (accounting/amplified.py)
        drive = start_drive(spec, model, params, phase, anchors, start)
        s = settle_lagged(model, params, start, spring, circuit.lags, drive, circuit.row_lags, tol=tol,
                          clamp_visible=clamp_visible, power=power)
    k = 0.0 if spring is None else spring.stiffness
    lam = smallest_eigenvalues(model, params, s.end, k, clamp_visible=clamp_visible)
    return s.time * unit, s.energy * unit, power(s.end), lam, s.end


def _stats(seconds: np.ndarray, lam: np.ndarray, unit: float) -> dict[str, float]:
    ok = np.isfinite(seconds)
    tau = np.where(lam > 0, unit / np.maximum(lam, 1e-300), np.inf)
    return {
        "mean_s": float(np.mean(seconds[ok])) if ok.any() else float("inf"),
        "median_s": float(np.median(seconds[ok])) if ok.any() else float("inf"),
        "max_s": float(np.max(seconds[ok])) if ok.any() else float("inf"),
        "unsettled": int((~ok).sum()),
        "lambda_min_median": float(np.median(lam)),
        "tau_median_s": float(np.median(tau)),
        "tau_max_s": float(np.max(tau)),
    }


@dataclass
class StepSettling:
    """The phases of one training step settled on the circuit, per training point on average
    (scaled to the batch where it says so)."""

    per_phase_s: dict[str, float]  # settling and readout
    per_phase_j: dict[str, float]  # the supply's energy, settling and readout hold
    stats: dict[str, dict[str, float]]  # per phase: `_stats` and the readout time
    energy_cols: np.ndarray  # J per PhasePower column, summed over the phases
    dissipated: dict[str, float]  # J per passive element, over the batch
    free_end: State  # where the free phase settled


def settle_step(
    circuit: ProgrammedCircuit,
    phases: list[tuple[str, float | None]],
    x_t: np.ndarray,
    anchor: np.ndarray,
    say: Callable[[str], None],
    warnings: list[str],
) -> StepSettling:
    """Each phase of a training step settled from where it starts, for the points `x_t`
    (nudged towards `anchor`); points that do not settle go to `warnings`."""
    sizes, batch_size = circuit.model.sizes, circuit.spec.train.batch
    n_units = sum(sizes)
    per_phase_s, per_phase_j, settling, free_end = {}, {}, {}, None
    dissipated = dict.fromkeys(PASSIVE, 0.0)
    energy_cols = np.zeros(len(PhasePower.columns))
    for phase, beta in phases:
        anchors = {"xt": x_t} if beta is None else {"xt": x_t, "a": anchor}
        start = free_start(circuit.model, x_t) if beta is None else free_end
        say(f"settling the {phase} phase of {x_t.shape[0]} training points")
        seconds, joules, p_end, lam, end = _phase_settling(circuit, phase, start, anchors, beta)
        if beta is None:
            free_end = end
        nodes = sizes[0] if phase == "free" else n_units  # free: the velocity; nudged: every activity
        t_read = readout_time(circuit.spec, nodes, n_units)
        ok = np.isfinite(seconds)
        # Unsettled points (near a bifurcation) are counted at the longest settled time.
        seconds = np.where(ok, seconds, np.max(seconds[ok]) if ok.any() else 0.0)
        hold = p_end * t_read  # the circuit holds its equilibrium while the ADCs convert
        per_phase_s[phase] = float(np.mean(seconds + t_read))
        cols = np.mean(joules + hold, axis=0)
        energy_cols += cols
        per_phase_j[phase] = float(np.sum(cols[: len(SUPPLY_GROUPS) + 1]))
        settling[phase] = _stats(seconds, lam, circuit.unit) | {"readout_s": t_read}
        for name, col in zip(PASSIVE, cols[len(SUPPLY_GROUPS) + 1 :]):
            dissipated[name] += float(col) * batch_size
        if (~ok).any():
            warnings.append(f"{int((~ok).sum())} of {ok.size} points did not settle in the {phase} phase (counted at the longest settled time)")
    return StepSettling(per_phase_s, per_phase_j, settling, energy_cols, dissipated, free_end)


def training_step(circuit: ProgrammedCircuit, settled: StepSettling, n_phases: int, step_flops: int) -> Estimate:
    """One training step on the circuit: the batch's points settled in sequence, read by
    ADCs and anchored by DACs, the update accumulated and Adam run digitally (`step_flops`),
    the conductances moved by write pulses."""
    spec, model, realised, writes = circuit.spec, circuit.model, circuit.params, circuit.writes
    p, sizes, batch_size = spec.physics, model.sizes, spec.train.batch
    n_units = sum(sizes)
    energy_cols = settled.energy_cols
    conversions = sizes[0] + (n_phases - 1) * n_units
    dac_settings = 2 * sizes[0]  # x_t and the nudge anchor a (the -beta phase flips the nudge's sign)
    devices = 2 * circuit.n_weights  # one device of each differential pair, in the forward and the transposed array
    write_rows = 2 * sum(realised[name].shape[0] for name, _, _ in model.circuit_rules().couplings)
    cells = circuit.lags is not None  # a family's op-amp cells (accounting/power.py)
    supply = {
        "row drivers (crossbar currents)": energy_cols[0],
        "sense amplifiers": energy_cols[1],
        ("cell op-amps (inverters, leaks, diodes)" if cells else "injections into neuron nodes"): energy_cols[2],
        "anchor sources (springs)": energy_cols[3],
        "nudge sources": energy_cols[4],
        "bias current sources": energy_cols[5],
        "amplifier quiescent current": energy_cols[6],
    }
    breakdown = {k: float(v) * batch_size for k, v in supply.items()}
    n_bias = sum(int(np.prod(realised[name].shape)) for name, _ in model.circuit_rules().biases)
    breakdown["ADC conversions"] = batch_size * conversions * adc_energy(spec)
    breakdown["DAC settings (anchors, biases)"] = (batch_size * dac_settings + n_bias) * dac_energy(spec)
    breakdown["digital update (accumulate, Adam)"] = step_flops * p.digital_flop_energy
    pulses_per_device = p.pulses_per_update if writes is None else writes["pulses_per_device"]
    if writes is not None:
        devices = writes["devices"]
    breakdown["programming (write pulses)"] = devices * pulses_per_device * p.write_energy
    seconds = (
        batch_size * sum(settled.per_phase_s.values())
        + step_flops / p.digital_flops_per_s
        + write_rows * pulses_per_device * p.write_pulse
    )
    return Estimate("the circuit (one copy, points in sequence)", seconds, sum(breakdown.values()), breakdown,
                    {"per_phase_s": settled.per_phase_s, "per_phase_j": settled.per_phase_j,
                     "conversions_per_point": conversions, "pulses_per_device": pulses_per_device,
                     **({"writes": writes} if writes else {})})


@dataclass
class Generation:
    """Samples generated on the circuit: per sample its time and energy, and the steps and
    the fast solver's sweeps (summed over the steps) of the hidden relaxation."""

    estimate: Estimate
    steps: int
    sweeps: float


def generation(circuit: ProgrammedCircuit, sample_points: int, say: Callable[[str], None]) -> Generation:
    """Per generated sample on the circuit: a sequence of clamped equilibria (method.md 5);
    a trajectory of `sample_points` samples is simulated, its hidden relaxation settled on
    every few steps (SIMULATED_SAMPLING_STEPS of them)."""
    spec, model, params, unit = circuit.spec, circuit.model, circuit.params, circuit.unit
    p, gen = spec.physics, spec.generate
    steps = max(1, round(gen.t1 / gen.dt))
    n_vis, n_units = model.sizes[0], sum(model.sizes)
    x = np.random.default_rng(spec.generate.seed).standard_normal((sample_points, n_vis))
    hidden = [np.zeros((sample_points, k)) for k in model.sizes[1:]]
    seconds = np.zeros(sample_points)
    joules = np.zeros((sample_points, len(PhasePower.columns)))
    sweeps = 0.0
    stride = max(1, steps // SIMULATED_SAMPLING_STEPS)  # the flow is simulated on every stride-th step
    simulated = 0
    inference = FastSolver(2000, tol=spec.relax.tol, omega=1.0)
    for k in range(steps):
        eq = inference.relax(model, params, [x] + hidden, None, clamp_visible=True)
        sweeps += eq.iterations
        if k % stride == 0:
            if k % (stride * max(1, steps // stride // 10)) == 0:  # about ten lines
                say(f"settling generation step {k + 1} of {steps} ({sample_points} samples)")
            t, e, _, _, _ = _phase_settling(circuit, "generate", [x] + hidden, {"xc": x}, None, clamp_visible=True)
            t = np.where(np.isfinite(t), t, np.max(t[np.isfinite(t)]) if np.isfinite(t).any() else 0.0)
            seconds += t
            joules += e
            simulated += 1
        hidden = [h.copy() for h in eq.state[1:]]
        x = x - gen.dt * spec.gradep.alpha * model.state_grad(params, eq.state)[0]
    seconds *= steps / simulated
    joules *= steps / simulated
    t_read = readout_time(spec, n_vis, n_units)
    supply = float(np.mean(np.sum(joules[:, : len(SUPPLY_GROUPS) + 1], axis=1)))
    breakdown = {
        "circuit (hidden relaxation, supply)": supply,
        "ADC conversions (clamp currents)": steps * n_vis * p.adc_fom * 2.0**p.adc_bits,
        "DAC settings (clamped x)": steps * n_vis * 2.0**p.dac_bits * p.dac_unit_capacitance * p.supply_voltage**2,
        "digital Euler update": steps * 3 * n_vis * p.digital_flop_energy,
    }
    per_sample_s = float(np.mean(seconds)) + steps * (t_read + 3 * n_vis / p.digital_flops_per_s)
    estimate = Estimate(f"the circuit ({steps} clamped equilibria per sample)", per_sample_s, sum(breakdown.values()),
                        breakdown, {"settling_per_step_s": float(np.mean(seconds)) / steps})
    return Generation(estimate, steps, sweeps)
