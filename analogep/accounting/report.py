"""Time and energy of one training step and one generated sample: the circuit against
digital (method.md section 8), assembled into the report `analogep energy` prints.

The circuit's way is accounting/analog.py (settling and supply power of every phase, the
ADCs, DACs and writes beside it) on the circuit accounting/programming.py programs; the
digital ways are accounting/baselines.py (a GPU priced per FLOP and per byte of the counts
in accounting/flops.py, and this machine's CPU timed). Settling and power come from
`points` training points of a real batch and are scaled to the batch; every constant is
spec.physics's (config/physics.yaml gives the sources).
"""

from __future__ import annotations

from typing import Callable

import dataclasses
from dataclasses import dataclass

import numpy as np

from analogep.accounting import analog, baselines, substrate
from analogep.accounting.estimate import Estimate
from analogep.accounting.flops import fast_sweeps, kernels_per_relax_step, relax_step_flops, update_flops
from analogep.accounting.programming import EnergyError, capacitance, program_circuit
from analogep.config.physics import physics_table
from analogep.config.rules import substrate_problem
from analogep.config.schema import ConfigError
from analogep.config.spec import GradEPSpec, Spec
from analogep.data import load_dataset
from analogep.ep.phases import nudge_anchor
from analogep.model.energy import Params
from analogep.objectives.factory import build_objective, first_level_code

__all__ = ["EnergyError", "EnergyReport", "Estimate", "account", "format_report"]


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
    circuit: str = ""  # what sets the circuit's time and power (`_circuit_line`)

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


def _step_phases(gradep: GradEPSpec) -> list[tuple[str, float | None]]:
    """The phases of a training step and their nudges: free, +beta, and -beta when symmetric."""
    return [("free", None)] + [("nudge_plus", gradep.beta)] + ([("nudge_minus", -gradep.beta)] if gradep.phases == 3 else [])


def _training_points(spec: Spec, points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`points` training points of a real batch (float64): their x_t and nudge anchors."""
    batch_size = spec.train.batch
    data = load_dataset(spec.train.dataset, dtype=np.float64, source=spec.data)
    batch = build_objective(spec).batch(data, batch_size, np.random.default_rng(seed))
    pick = np.sort(np.random.default_rng(seed + 1).choice(batch_size, size=min(points, batch_size), replace=False))
    x_t, target = batch.x_t[pick], batch.target[pick]
    return x_t, nudge_anchor(x_t, target, spec.gradep)


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
    say = progress or (lambda message: None)
    problem = substrate_problem(spec)
    if problem:
        raise ConfigError(problem)
    warnings: list[str] = []
    circuit = program_circuit(spec, params, warnings)
    given = spec  # as training reads it (the substrate's step is taken as training takes it)
    spec, model = circuit.spec, circuit.model  # on devices: the spec with their window's g0
    model.condition(first_level_code(spec))  # a level-dependent energy: at its first training point's level
    p = spec.physics
    x_t, anchor = _training_points(spec, points, seed)
    phases = _step_phases(spec.gradep)

    # The circuit's training step.
    settled = analog.settle_step(circuit, phases, x_t, anchor, say, warnings)
    step_flops = update_flops(spec.train.batch, model.n_params, model.sizes[0])
    training = {"analog": analog.training_step(circuit, settled, len(phases), step_flops)}

    # The digital ways: the same step's FLOPs and bytes, priced; this CPU, timed.
    relax_flops = relax_step_flops(model.sizes, circuit.n_weights)
    kernels = kernels_per_relax_step(model)
    sweeps = fast_sweeps(model, circuit.params, spec.relax, spec.gradep, phases, x_t, anchor, settled.free_end)
    training |= baselines.gpu_training(spec, model, len(phases), relax_flops, kernels, step_flops, sweeps)
    if spec.train.update == "substrate":  # the devices write the update (accounting/substrate.py)
        say("taking one training step on the substrate (the pulses the devices receive)")
        training["analog"] = substrate.substrate_step(training["analog"], given, circuit, params, seed)
        training["analog"].notes["crossover"] = substrate.crossovers(training)
    if measure_cpu:
        for solver in ("fast",) + (("euler",) if cpu_euler else ()):
            say(f"timing a training step on this CPU ({solver} solver)")
            training[f"cpu_{solver}"] = baselines.cpu_training_step(spec, params, solver, seed)

    # Generation, on the circuit and the digital ways.
    generated = analog.generation(circuit, sample_points, say)
    sampling = {"analog": generated.estimate}
    sampling |= baselines.gpu_sampling(spec, model, samples, generated.steps, generated.sweeps, relax_flops, kernels)
    if measure_cpu:
        say("timing generation on this CPU")
        sampling["cpu_fast"] = baselines.cpu_sampling(spec, circuit.params, samples, seed)

    constants = {k: {"value": getattr(p, k), "unit": v["unit"], "source": " ".join(str(v["source"]).split())}
                 for k, v in physics_table().items()}
    v = circuit.supply
    if v.volts_per_unit * max(float(np.max(np.abs(np.concatenate(settled.free_end, axis=1)))), 1e-12) > v.swing:
        warnings.append("the node voltages of the free phase swing past half the supply at physics.volts_per_unit"
                        if circuit.lags is None else f"the node voltages of the free phase swing past the op-amps' {v.swing:g} V")
    return EnergyReport(source, model.sizes, spec.train.batch, len(phases), x_t.shape[0], capacitance(spec), training,
                        sampling, samples, settled.stats, settled.dissipated, warnings, constants,
                        _circuit_line(circuit, c=capacitance(spec)))


def _circuit_line(circuit, c: float) -> str:
    """What sets the circuit's time and power: node capacitance and physics.yaml's amplifiers,
    or a family's datasheet op-amps (their lags: accounting/amplified.py)."""
    v, p = circuit.supply, circuit.spec.physics
    if circuit.lags is None:
        return (f"circuit: C = {c:g} F per node, {v.volts_per_unit:g} V per state unit, {v.label}; "
                f"settled = within {p.settle_tolerance:g} state units")
    lags = np.concatenate(circuit.lags)
    return (f"circuit: {v.label}; {v.volts_per_unit:g} V per state unit; neuron lags (stages' noise gain / 2 pi GBW) "
            f"{_si(float(np.min(lags)), 's')} to {_si(float(np.max(lags)), 's')}, no node capacitance; "
            f"settled = within {p.settle_tolerance:g} state units")


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
        report.circuit,
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
    lines += _substrate_lines(a)
    lines += ["", "constants: config/physics.yaml (override them in model.yaml's physics: section; --json lists each with its source)"]
    lines += [f"warning: {w}" for w in report.warnings]
    return "\n".join(lines)


def _substrate_lines(a) -> list[str]:
    """train.update: substrate: the pulses and the write energy per pulse at which the step
    is 10x and 100x cheaper than each GPU baseline."""
    sub, cross = a.notes.get("substrate"), a.notes.get("crossover")
    if not sub:
        return []
    lines = [
        (f"  update written on the substrate ({sub['difference']}, BL {sub['bl']}, group {sub['group_size']}): "
         f"{sub['coincidences_per_device_point']:.3g} coincidences per device per point (pulse noise +- "
         f"{sub['coincidences_sd_per_device_point']:.2g}; a training step from these weights, {sub['points_kept']} points), "
         f"{sub['device_pulses']:,.0f} device pulses per step; digital state {sub['digital_state_bits']} bits (bias registers); no ADC, no Adam"),
    ]
    for key, row in (cross or {}).items():
        def energy(e):
            return "never (the rest of the step is above it)" if e is None else _si(e, "J")
        lines.append(f"  vs {key} ({row['ratio']:,.3g}x the circuit now): write energy per pulse for 10x cheaper "
                     f"{energy(row['write_energy_10x'])}, for 100x {energy(row['write_energy_100x'])}")
        for factor in (10, 100):
            techs = row[f"technologies_{factor}x"]
            lines.append(f"    {factor}x: " + "; ".join(f"{name.split(' (')[0]} {side}" for name, side in techs.items()))
    return lines
