"""Time and energy of one training step and one generated sample: the circuit against digital.

The analog side (method.md section 7): one circuit, programmed with the weights, runs the
training points one after another. Per point and phase it relaxes from where the phase
starts (accounting/settling.py simulates the circuit's own gradient flow, which matches
ngspice's transients) until every node is within `physics.settle_tolerance` of its
equilibrium; the supply power along the way (accounting/power.py, the amplifier model below)
integrates to the phase's energy; then ADCs read the nodes the update needs, while the
circuit holds. Beside the circuit: DACs set the anchors, a digital unit accumulates the EP
update over the batch and runs Adam, and write pulses move the conductances.

Amplifier model (physics.yaml): every active element (row drivers, sense amplifiers,
injections, anchor sources, nudge sources) draws a quiescent current from the supply and
sources its output current from the supply too (a class-B output stage), so its power is
supply_voltage * (quiescent + |output current|).

The digital side counts FLOPs and memory traffic of the same step (the paper's Euler
relaxation, the fast solver's measured sweeps, and backpropagation through a feed-forward
network with the same number of parameters) and prices them with a GPU's energy per FLOP
and per byte (physics.yaml: H100 figures); and this machine's CPU time of a real step.

Settling and power come from `points` training points of a real batch and are scaled to
the batch; every constant is spec.physics's (config/physics.yaml gives the sources).
"""

from __future__ import annotations

from typing import Callable

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from analogep.backends.base import Nudge
from analogep.backends.numpy_backend import NumpyBackend, phase_spring
from analogep.devices.crossbar import Devices
from analogep.devices.mapping import effective_params
from analogep.accounting.power import circuit_power, row_loads
from analogep.config.physics import physics_table
from analogep.config.spec import Spec
from analogep.data import load_dataset
from analogep.ep.phases import nudge_anchor
from analogep.ep.step import gradep_step
from analogep.errors import AnalogepError
from analogep.accounting.settling import settle
from analogep.model.curvature import smallest_eigenvalues
from analogep.model.energy import Params, State
from analogep.model.factory import build_energy
from analogep.objectives.flow_sampling import generate
from analogep.objectives.factory import build_objective
from analogep.runtime import blas_threads
from analogep.solvers.base import free_start
from analogep.solvers.fast import FastSolver
from analogep.training.optim import build_optimizer, clip_by_global_norm

# FLOP counts per unit that are not matrix products (each elementary operation, the
# exponential and tanh included, counted as one FLOP: an assumption of the count). The soft
# clamp rho(s) = 10 tanh(silu(s)/10) with rho' : about 20; an Euler or block update of a
# unit: 4; the spring and nudge pull on a visible unit: 4.
ACTIVATION_FLOPS = 20
UPDATE_FLOPS = 4
SPRING_FLOPS = 4
# Adam and the norm clip per parameter: moments, bias correction, square root, division.
OPTIMIZER_FLOPS = 15
# Bytes a relaxation step moves per unit and point, when no array stays on chip: float32
# reads and writes of the state (2), the activity and its derivative (2), the activity read
# again by the forward and transposed products (2), the drive written and read (2).
BYTES_PER_UNIT_STEP = 4 * 8
# Backpropagation through a feed-forward network: 6 FLOP per parameter per example
# (forward 2, backward 4; Kaplan et al. 2020, "Scaling Laws for Neural Language Models").
BACKPROP_FLOPS_PER_PARAM = 6
# Generation steps whose hidden relaxation is simulated (the rest take their average).
SIMULATED_SAMPLING_STEPS = 20
SUPPLY_GROUPS = ("drivers", "sense", "injection", "anchors", "nudges", "biases")


class EnergyError(AnalogepError):
    """The accounting cannot run with these constants."""


@dataclass
class Estimate:
    """Time and energy of one thing done one way, and where the joules go (name -> J)."""

    label: str
    seconds: float
    joules: float
    breakdown: dict[str, float] = field(default_factory=dict)
    notes: dict[str, float | str] = field(default_factory=dict)


@dataclass
class EnergyReport:
    """What `analogep energy` prints: per training step and per generated sample, the
    circuit and the digital ways, the settling measured, and the constants used."""

    source: str
    sizes: tuple[int, ...]
    batch: int
    phases: int
    points: int
    capacitance: float
    training: dict[str, Estimate]
    sampling: dict[str, Estimate]
    samples: int
    settling: dict[str, dict[str, float]]
    dissipated: dict[str, float]
    warnings: list[str]
    constants: dict[str, dict]

    def ratio(self, key: str, table: str = "training") -> float:
        """Energy of a digital way over the circuit's."""
        t = getattr(self, table)
        return t[key].joules / t["analog"].joules

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["ratios"] = {
            table: {k: self.ratio(k, table) for k in getattr(self, table) if k != "analog"} for table in ("training", "sampling")
        }
        return out


def _capacitance(spec: Spec) -> float:
    c = spec.circuit.capacitance if spec.circuit.capacitance > 0 else spec.physics.capacitance
    if c <= 0:
        raise EnergyError("circuit.capacitance and physics.capacitance are both 0: the circuit would settle in no time; set one > 0")
    return c


def _adc_energy(spec: Spec) -> float:
    p = spec.physics
    return p.adc_fom * 2.0**p.adc_bits


def _dac_energy(spec: Spec) -> float:
    p = spec.physics
    return 2.0**p.dac_bits * p.dac_unit_capacitance * p.supply_voltage**2


def _readout_time(spec: Spec, nodes: int, n_neurons: int) -> float:
    adcs = spec.physics.adcs or n_neurons
    return float(np.ceil(nodes / adcs)) / spec.physics.adc_rate


class _PhasePower:
    """Supply power (per group) and passive dissipation of one phase's circuit at a state,
    in watts: the callable the settling simulation integrates."""

    columns = SUPPLY_GROUPS + ("quiescent", "crossbar", "leak", "spring", "nudge")

    def __init__(self, spec, model, params, phase, anchors, beta, loads):
        self.spec, self.model, self.params, self.phase, self.anchors, self.beta, self.loads = (
            spec, model, params, phase, anchors, beta, loads,
        )

    def __call__(self, state: State) -> np.ndarray:
        p = self.spec.physics
        cp = circuit_power(self.spec, self.model, self.params, self.phase, state, self.anchors, beta=self.beta,
                           volts_per_unit=p.volts_per_unit, loads=self.loads)
        points = state[0].shape[0]
        cols = [p.supply_voltage * cp.currents.get(g, np.zeros(points)) for g in SUPPLY_GROUPS]
        cols.append(np.full(points, cp.amplifiers * p.supply_voltage * p.amp_quiescent_current))
        cols += [cp.crossbar, cp.leak, cp.spring, np.abs(cp.nudge)]
        return np.stack(cols, axis=1)


def _phase_settling(spec, model, params, phase, start, anchors, beta, loads, unit, clamp_visible=False):
    """Settling (s) and energy per column (J) per point of one phase, and lambda_min."""
    nudge = None if beta is None else Nudge(beta, anchors["a"])
    spring = None if clamp_visible else phase_spring(spec.gradep, anchors["xt"], nudge)
    power = _PhasePower(spec, model, params, phase, anchors, beta, loads)
    s = settle(model, params, start, spring, tol=spec.physics.settle_tolerance, clamp_visible=clamp_visible, power=power)
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


ADAM_SIZED_UPDATES = 8  # updates whose pulses are counted (the first write of every device is not one)


def _on_devices(spec: Spec, model, params: Params, warnings: list[str]):
    """The circuit on spec.devices (method.md section 7, 'Devices'): the device window's g0,
    the weights the devices realise, and the pulses the write rule fires per training step.

    The pulses are counted on the device model itself: the parameters are programmed, then
    moved by Adam-sized updates (every parameter by lr per step, each in a fixed random
    direction: Adam's step is bounded by about lr per parameter, Kingma & Ba 2015, section
    2.1, and a steady direction crosses the most levels), so the count is an upper bound
    for a step of training; `analogep train --devices` logs the true count per
    step (metrics.jsonl: pulses)."""
    d = spec.devices
    g0, gmin, gmax = d.window(spec.circuit)
    spec = spec.replace(circuit={"g0": g0, "gmin": gmin, "gmax": gmax})
    devices = Devices(spec, model)
    realisation = devices.program(params)
    if not realisation.has_energy:
        warnings.append("the devices' circuit has no energy (mismatched copies or driver mismatch): its settling is "
                        "simulated on the forward copy's weights read both ways")
    realised = realisation.params(params, "forward")
    rng = np.random.default_rng(d.seed + 1)
    lr = spec.train.optimizer.lr
    direction = {k: lr * rng.choice((-1.0, 1.0), size=np.shape(v)) for k, v in params.items()}
    moved, pulses = dict(params), []
    for _ in range(ADAM_SIZED_UPDATES):
        moved = {k: v + direction[k] for k, v in moved.items()}
        devices.program(moved)
        pulses.append(devices.last_pulses)
    n_logical = 2 * sum(int(np.prod(params[name].shape)) for name in devices.couplings)  # G+ and G- per weight
    physical = n_logical * devices.n_copies  # mismatched: the forward and the transposed copy are both written
    per_device = float(np.mean(pulses)) / n_logical
    writes = {"preset": d.preset, "bits": d.bits, "write_rule": d.write_rule, "devices": physical,
              "pulses_per_device": per_device, "pulses_per_step": per_device * physical}
    return spec, realised, realisation.clipped, writes


def _relax_flops(sizes: tuple[int, ...], n_weights: int) -> int:
    """FLOPs of one relaxation step (Euler step or block sweep) of one point: every coupling
    read forward and transposed (2 FLOP per multiply-add), rho and rho' of the hidden units,
    the update of every unit, the springs on the visible ones."""
    return 4 * n_weights + ACTIVATION_FLOPS * sum(sizes[1:]) + UPDATE_FLOPS * sum(sizes) + SPRING_FLOPS * sizes[0]


def _mean_sweeps(model, params, start: State, spring, relax_spec, clamp_visible=False) -> tuple[float, int]:
    """(mean, max) sweeps of the block solver per point, counted one sweep at a time."""
    state = [s.copy() for s in start]
    done_at = np.full(state[0].shape[0], relax_spec.free_steps, dtype=float)
    sweep = FastSolver(1, tol=relax_spec.tol, omega=relax_spec.omega)
    for k in range(1, relax_spec.free_steps + 1):
        eq = sweep.relax(model, params, state, spring, clamp_visible=clamp_visible)
        state = eq.state
        newly = (eq.sample_residual < relax_spec.tol) & (done_at == relax_spec.free_steps)
        done_at[newly] = k
        if (eq.sample_residual < relax_spec.tol).all():
            break
    return float(done_at.mean()), int(done_at.max())


def _gpu(spec: Spec, label: str, flops: float, bytes_: float, kernels: float, notes: dict) -> Estimate:
    """FLOPs and bytes priced at the GPU's energy per FLOP and per byte; time: the longest
    of compute, memory and the kernels launched one after another."""
    p = spec.physics
    seconds = max(flops / p.gpu_flops_per_s, bytes_ / p.gpu_bandwidth, kernels * p.gpu_kernel_launch)
    breakdown = {"arithmetic": flops * p.gpu_flop_energy, "memory traffic": bytes_ * p.gpu_byte_energy}
    return Estimate(label, seconds, sum(breakdown.values()),
                    breakdown, {"flops": flops, "bytes": bytes_, "kernels": kernels, **notes})


def account(
    spec: Spec,
    params: Params,
    source: str,
    *,
    points: int = 32,
    samples: int = 1000,
    sample_points: int = 8,
    seed: int = 0,
    measure_cpu: bool = True,
    cpu_euler: bool = False,
    progress: Callable[[str], None] | None = None,
) -> EnergyReport:
    """The time and energy accounting of `spec`'s training step and generated samples;
    `progress(message)` hears what is being simulated (a slowly settling circuit takes
    minutes)."""
    unit = _capacitance(spec) / spec.circuit.g0  # seconds per unit of the flow's time
    say = progress or (lambda message: None)
    p = spec.physics
    warnings: list[str] = []
    model = build_energy(dataclasses.replace(spec.model, dtype="float64"))
    p64 = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    writes = None
    if spec.devices.ideal:
        realised, clipped = effective_params(model, p64, spec)
    else:
        spec, realised, clipped, writes = _on_devices(spec, model, p64, warnings)
        unit = _capacitance(spec) / spec.circuit.g0
    if sum(clipped.values()):
        warnings.append(f"{sum(clipped.values())} weights clipped to the conductance range (circuit.clip)")
    loads = row_loads(spec, model, p64)
    sizes, g = model.sizes, spec.gradep
    n_units, n_params = sum(sizes), model.n_params
    n_weights = sum(int(np.prod(realised[name].shape)) for name, _, _ in model.circuit_rules().couplings)
    batch_size = spec.train.batch

    # A real batch; the accounting's points are drawn from it.
    data = load_dataset(spec.train.dataset, dtype=np.float64)
    batch = build_objective(spec).batch(data, batch_size, np.random.default_rng(seed))
    pick = np.sort(np.random.default_rng(seed + 1).choice(batch_size, size=min(points, batch_size), replace=False))
    x_t, target = batch.x_t[pick], batch.target[pick]
    anchor = nudge_anchor(x_t, target, g)

    # --- the circuit: settling and energy of each phase ---------------------------------------
    phases = [("free", None)] + [("nudge_plus", g.beta)] + ([("nudge_minus", -g.beta)] if g.phases == 3 else [])
    per_phase_s, per_phase_j, settling, free_end = {}, {}, {}, None
    dissipated = dict.fromkeys(("crossbar", "leak", "spring", "nudge"), 0.0)
    energy_cols = np.zeros(len(_PhasePower.columns))
    for phase, beta in phases:
        anchors = {"xt": x_t} if beta is None else {"xt": x_t, "a": anchor}
        start = free_start(model, x_t) if beta is None else free_end
        say(f"settling the {phase} phase of {x_t.shape[0]} training points")
        seconds, joules, p_end, lam, end = _phase_settling(spec, model, realised, phase, start, anchors, beta, loads, unit)
        if beta is None:
            free_end = end
        nodes = sizes[0] if phase == "free" else n_units  # free: the velocity; nudged: every activity
        t_read = _readout_time(spec, nodes, n_units)
        ok = np.isfinite(seconds)
        # Unsettled points (near a bifurcation) are counted at the longest settled time.
        seconds = np.where(ok, seconds, np.max(seconds[ok]) if ok.any() else 0.0)
        hold = p_end * t_read  # the circuit holds its equilibrium while the ADCs convert
        per_phase_s[phase] = float(np.mean(seconds + t_read))
        cols = np.mean(joules + hold, axis=0)
        energy_cols += cols
        per_phase_j[phase] = float(np.sum(cols[: len(SUPPLY_GROUPS) + 1]))
        settling[phase] = _stats(seconds, lam, unit) | {"readout_s": t_read}
        for name, col in zip(("crossbar", "leak", "spring", "nudge"), cols[len(SUPPLY_GROUPS) + 1 :]):
            dissipated[name] += float(col) * batch_size
        if (~ok).any():
            warnings.append(f"{int((~ok).sum())} of {ok.size} points did not settle in the {phase} phase (counted at the longest settled time)")

    conversions = sizes[0] + (len(phases) - 1) * n_units
    dac_settings = 2 * sizes[0]  # x_t and the nudge anchor a (the -beta phase flips the nudge's sign)
    update_flops = 2 * 2 * n_params + 3 * sizes[0]  # two nudged param_terms, the velocity read-out
    step_flops = batch_size * update_flops + OPTIMIZER_FLOPS * n_params
    devices = 2 * n_weights  # one device of each differential pair, in the forward and the transposed array
    write_rows = 2 * sum(realised[name].shape[0] for name, _, _ in model.circuit_rules().couplings)
    supply = {
        "row drivers (crossbar currents)": energy_cols[0],
        "sense amplifiers": energy_cols[1],
        "injections into neuron nodes": energy_cols[2],
        "anchor sources (springs)": energy_cols[3],
        "nudge sources": energy_cols[4],
        "bias current sources": energy_cols[5],
        "amplifier quiescent current": energy_cols[6],
    }
    breakdown = {k: float(v) * batch_size for k, v in supply.items()}
    n_bias = sum(int(np.prod(realised[name].shape)) for name, _ in model.circuit_rules().biases)
    breakdown["ADC conversions"] = batch_size * conversions * _adc_energy(spec)
    breakdown["DAC settings (anchors, biases)"] = (batch_size * dac_settings + n_bias) * _dac_energy(spec)
    breakdown["digital update (accumulate, Adam)"] = step_flops * p.digital_flop_energy
    pulses_per_device = p.pulses_per_update if writes is None else writes["pulses_per_device"]
    if writes is not None:
        devices = writes["devices"]
    breakdown["programming (write pulses)"] = devices * pulses_per_device * p.write_energy
    seconds = (
        batch_size * sum(per_phase_s.values())
        + step_flops / p.digital_flops_per_s
        + write_rows * pulses_per_device * p.write_pulse
    )
    training = {
        "analog": Estimate("the circuit (one copy, points in sequence)", seconds, sum(breakdown.values()), breakdown,
                           {"per_phase_s": per_phase_s, "per_phase_j": per_phase_j, "conversions_per_point": conversions,
                            "pulses_per_device": pulses_per_device, **({"writes": writes} if writes else {})})
    }

    # --- digital: the same step's FLOPs and bytes ----------------------------------------------
    relax_flops = _relax_flops(sizes, n_weights)
    n_phase = len(phases)
    kernels_per_step = 2 * len(model.circuit_rules().couplings) + len(sizes)
    T = spec.relax.free_steps if spec.relax.solver == "euler" else 300
    euler_steps = batch_size * n_phase * T
    training["gpu_euler"] = _gpu(
        spec, f"GPU, the paper's Euler relaxation ({T} steps x {n_phase} phases)",
        euler_steps * relax_flops + step_flops, euler_steps * BYTES_PER_UNIT_STEP * n_units, n_phase * T * kernels_per_step,
        {"relaxation_steps_per_point": n_phase * T},
    )
    fast = dataclasses.replace(spec.relax, solver="fast", free_steps=max(spec.relax.free_steps, 2000))
    sweeps_mean, sweeps_max = 0.0, 0
    for phase, beta in phases:
        nudge = None if beta is None else Nudge(beta, anchor)
        start = free_start(model, x_t) if beta is None else free_end
        m, mx = _mean_sweeps(model, realised, start, phase_spring(g, x_t, nudge), fast)
        sweeps_mean += m
        sweeps_max += mx
    training["gpu_fast"] = _gpu(
        spec, "GPU, the fast solver (block sweeps, measured)",
        batch_size * sweeps_mean * relax_flops + step_flops, batch_size * sweeps_mean * BYTES_PER_UNIT_STEP * n_units,
        sweeps_max * kernels_per_step, {"sweeps_per_point": sweeps_mean},
    )
    training["gpu_backprop"] = _gpu(
        spec, "GPU, backpropagation through a feed-forward net of as many parameters",
        BACKPROP_FLOPS_PER_PARAM * n_params * batch_size + OPTIMIZER_FLOPS * n_params,
        4.0 * (6 * n_units * batch_size + 4 * n_params), 9 * len(model.circuit_rules().couplings),
        {"note": "another model (the velocity computed by a forward pass), the usual way to train flow matching"},
    )
    if measure_cpu:
        for solver in ("fast",) + (("euler",) if cpu_euler else ()):
            say(f"timing a training step on this CPU ({solver} solver)")
            training[f"cpu_{solver}"] = _cpu_step(spec, params, solver, seed)

    # --- generation ---------------------------------------------------------------------------
    sampling = _sampling(spec, model, realised, loads, unit, samples, sample_points, seed, relax_flops, kernels_per_step, say,
                         measure_cpu)
    constants = {k: {"value": getattr(p, k), "unit": v["unit"], "source": " ".join(str(v["source"]).split())}
                 for k, v in physics_table().items()}
    if p.volts_per_unit * max(float(np.max(np.abs(np.concatenate(free_end, axis=1)))), 1e-12) > p.supply_voltage / 2:
        warnings.append("the node voltages of the free phase swing past half the supply at physics.volts_per_unit")
    return EnergyReport(source, sizes, batch_size, n_phase, len(pick), _capacitance(spec), training, sampling, samples,
                        settling, dissipated, warnings, constants)


def _cpu_step(spec: Spec, params: Params, solver: str, seed: int) -> Estimate:
    """One real training step of the config on this machine (numpy, one BLAS thread), timed."""
    s = spec if solver == spec.relax.solver else spec.replace(
        relax={"solver": solver, "tol": 0.0 if solver == "euler" else spec.relax.tol, "free_steps": 300, "nudge_steps": 300},
        train={"max_residual": 1e9, "max_asymmetry": 1.0, "max_dropped": 1.0})
    model = build_energy(s.model)
    data = load_dataset(s.train.dataset)
    objective = build_objective(s)
    batch = objective.batch(data, s.train.batch, np.random.default_rng(seed))
    backend = NumpyBackend(model, s.gradep, s.relax)
    work = {k: v.copy() for k, v in params.items()}
    optimizer = build_optimizer(s.train.optimizer, work)
    with blas_threads(1):
        t0 = time.perf_counter()
        result = gradep_step(model, backend, backend.program(work), batch, objective, s.gradep, s.train)
        grad, _ = clip_by_global_norm(result.grad, s.train.grad_clip)
        optimizer.step(work, grad)
        seconds = time.perf_counter() - t0
    joules = seconds * spec.physics.cpu_watts_per_core
    return Estimate(f"this CPU, measured ({solver} solver, numpy, 1 core)", seconds, joules, {"1 core": joules})


def _sampling(spec, model, params, loads, unit, samples, sample_points, seed, relax_flops, kernels_per_step, say, measure_cpu):
    """Per generated sample: the circuit (a sequence of clamped equilibria, method.md 5) and
    the digital ways; a trajectory of `sample_points` samples is simulated."""
    p, gen = spec.physics, spec.generate
    steps = max(1, round(gen.t1 / gen.dt))
    n_vis, n_units = model.sizes[0], sum(model.sizes)
    x = np.random.default_rng(spec.generate.seed).standard_normal((sample_points, n_vis))
    numpy = NumpyBackend(model, spec.gradep, dataclasses.replace(spec.relax, solver="fast", omega=1.0, tol=1e-10,
                                                                 free_steps=2000))
    numpy.program(params)
    hidden = [np.zeros((sample_points, k)) for k in model.sizes[1:]]
    seconds = np.zeros(sample_points)
    joules = np.zeros((sample_points, len(_PhasePower.columns)))
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
            t, e, _, _, _ = _phase_settling(spec, model, params, "generate", [x] + hidden, {"xc": x}, None, loads, unit,
                                            clamp_visible=True)
            t = np.where(np.isfinite(t), t, np.max(t[np.isfinite(t)]) if np.isfinite(t).any() else 0.0)
            seconds += t
            joules += e
            simulated += 1
        hidden = [h.copy() for h in eq.state[1:]]
        x = x - gen.dt * spec.gradep.alpha * model.state_grad(params, eq.state)[0]
    seconds *= steps / simulated
    joules *= steps / simulated
    t_read = _readout_time(spec, n_vis, n_units)
    supply = float(np.mean(np.sum(joules[:, : len(SUPPLY_GROUPS) + 1], axis=1)))
    breakdown = {
        "circuit (hidden relaxation, supply)": supply,
        "ADC conversions (clamp currents)": steps * n_vis * p.adc_fom * 2.0**p.adc_bits,
        "DAC settings (clamped x)": steps * n_vis * 2.0**p.dac_bits * p.dac_unit_capacitance * p.supply_voltage**2,
        "digital Euler update": steps * 3 * n_vis * p.digital_flop_energy,
    }
    per_sample_s = float(np.mean(seconds)) + steps * (t_read + 3 * n_vis / p.digital_flops_per_s)
    out = {"analog": Estimate(f"the circuit ({steps} clamped equilibria per sample)", per_sample_s, sum(breakdown.values()),
                              breakdown, {"settling_per_step_s": float(np.mean(seconds)) / steps})}
    T = spec.relax.free_steps if spec.relax.solver == "euler" else 300
    bytes_step = BYTES_PER_UNIT_STEP * n_units
    for key, label, relax_steps in (("gpu_euler", f"GPU, Euler relaxation ({T} steps per velocity)", T),
                                    ("gpu_fast", "GPU, the fast solver (sweeps measured)", sweeps / steps)):
        est = _gpu(spec, label, samples * steps * relax_steps * relax_flops, samples * steps * relax_steps * bytes_step,
                   steps * relax_steps * kernels_per_step, {"relaxation_steps_per_velocity": relax_steps})
        out[key] = _per_sample(est, samples)
    n_params = model.n_params
    out["gpu_backprop"] = _per_sample(_gpu(spec, "GPU, a feed-forward net of as many parameters (forward passes)",
                                           samples * steps * 2 * n_params, 4.0 * samples * steps * 2 * n_units, steps * 6, {}),
                                      samples)
    if measure_cpu:
        say("timing generation on this CPU")
        n = min(samples, 100)
        m32 = build_energy(spec.model)
        backend = NumpyBackend(m32, spec.gradep, spec.relax)
        backend.program({k: v.astype(m32.dtype) for k, v in params.items()})
        with blas_threads(1):
            t0 = time.perf_counter()
            generate(m32, backend, spec.gradep, n=n, t1=gen.t1, dt=gen.dt, mode=gen.mode, seed=seed)
            sec = (time.perf_counter() - t0) / n
        out["cpu_fast"] = Estimate(f"this CPU, measured ({spec.relax.solver} solver, {n} samples in a batch, 1 core)", sec,
                                   sec * p.cpu_watts_per_core, {"1 core": sec * p.cpu_watts_per_core})
    return out


def _per_sample(est: Estimate, samples: int) -> Estimate:
    """A batch of `samples` on the GPU, per sample (the time is the batch's, shared)."""
    scale = 1.0 / samples
    return Estimate(est.label, est.seconds * scale, est.joules * scale, {k: v * scale for k, v in est.breakdown.items()},
                    {**est.notes, "batch_seconds": est.seconds})


def _si(value: float, unit: str) -> str:
    """3 significant digits with an SI prefix: 1.23 ms, 456 nJ."""
    if value == 0 or not np.isfinite(value):
        return f"{value:g} {unit}"
    prefixes = [(1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "u"), (1e-3, "m"), (1.0, ""), (1e3, "k")]
    scale, prefix = prefixes[0]
    for s, pre in prefixes:
        if abs(value) >= s:
            scale, prefix = s, pre
    return f"{value / scale:.3g} {prefix}{unit}"


def format_report(report: EnergyReport) -> str:
    """The text `analogep energy` prints."""
    a = report.training["analog"]
    c = report.constants
    lines = [
        (f"analogep energy: {'-'.join(map(str, report.sizes))}, {report.source}; batch {report.batch}, "
         f"{report.phases} phases; settling simulated on {report.points} training points"),
        (f"circuit: C = {report.capacitance:g} F per node, {c['volts_per_unit']['value']:g} V per state unit, "
         f"{c['supply_voltage']['value']:g} V supply, {c['amp_quiescent_current']['value']:g} A per amplifier; "
         f"settled = within {c['settle_tolerance']['value']:g} state units"),
        "",
        (f"{'settling':12s} {'mean':>10s} {'median':>10s} {'max':>10s} {'unsettled':>9s} {'lambda_min':>10s} "
         f"{'tau median':>10s} {'tau max':>10s} {'J/point':>10s}"),
    ]
    per_point = a.notes.get("per_phase_j", {})
    for phase, s in report.settling.items():
        lines.append(
            f"{phase:12s} {_si(s['mean_s'], 's'):>10s} {_si(s['median_s'], 's'):>10s} {_si(s['max_s'], 's'):>10s} "
            f"{s['unsettled']:>9d} {s['lambda_min_median']:>10.4g} {_si(s['tau_median_s'], 's'):>10s} {_si(s['tau_max_s'], 's'):>10s} "
            f"{_si(per_point.get(phase, float('nan')), 'J'):>10s}"
        )
    lines.append("  (J/point: the circuit's supply energy for one point's phase, settling and readout hold)")
    for title, table, per in (("per training step", report.training, ""), (f"per generated sample ({report.samples} samples)", report.sampling, "sampling")):
        lines += ["", f"{title:58s} {'time':>10s} {'energy':>10s} {'x circuit':>10s}"]
        for key, est in table.items():
            ratio = "1" if key == "analog" else f"{est.joules / table['analog'].joules:,.3g}"
            lines.append(f"  {est.label[:56]:56s} {_si(est.seconds, 's'):>10s} {_si(est.joules, 'J'):>10s} {ratio:>10s}")
        if per:
            n = report.samples
            lines.append(f"  {n} samples on the circuit: {_si(n * table['analog'].seconds, 's')}, {_si(n * table['analog'].joules, 'J')}")
    lines += ["", "where the circuit's joules go, per training step:"]
    for name, j in sorted(a.breakdown.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:40s} {_si(j, 'J'):>10s} {100 * j / a.joules:5.1f}%")
    d = report.dissipated
    lines.append("  of the circuit's supply, dissipated in: " + ", ".join(f"{k} {_si(v, 'J')}" for k, v in d.items()))
    w = a.notes.get("writes")
    if w:
        lines.append(
            f"  write pulses on devices {w['preset']!r} ({w['bits']} bits, {w['write_rule']}): {w['pulses_per_device']:.3g} "
            f"per device per step, {w['pulses_per_step']:,.0f} per step over {w['devices']:,} devices (counted on Adam-sized "
            f"updates: an upper bound; train --devices logs the true count)"
        )
    lines += ["", "constants: config/physics.yaml (override them in model.yaml's physics: section; --json lists each with its source)"]
    lines += [f"warning: {w}" for w in report.warnings]
    return "\n".join(lines)
