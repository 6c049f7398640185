"""The price of a training step whose update the devices write themselves (train.update:
substrate, training/substrate.py), in place of the ADC read-out, the digital accumulation
and Adam, and the program-and-verify writes of the digital rule.

Per training point, after its phases: the -beta activities held (sample-and-hold, with
`difference: held`), the row and column drivers fire BL pulse slots per coincidence pass,
and the devices step where pulses coincide. The pulses are counted on a training step
itself (`training_step_counts`), because that is what the devices receive: one step from
the weights given, as training takes it (fresh devices programmed with them, the pulse
stream of train.substrate.seed, a whole batch, its groups in sequence, each group's phases
on the devices as the previous groups wrote them, only trusted points firing). The groups'
writes move the weights within the step: from tiny's initial weights (lr 0.03, 16 groups)
the hidden activities grow about threefold during its first step, which fires 1.5-1.8x
the coincidences of the same step in one group (the weights fixed within it); counted at
the initial weights alone, the accounting gave 0.6x what training logs
(docs/results/substrate.md, 'The price of a step'). Priced from the expected pulses of
that step (from the probabilities of every draw; training samples them, within the
standard deviation given):

- device pulses: the expected coincidences (sum over the points, passes and devices of
  BL p_i p_j), at the write energy per pulse, on each copy of mismatched devices;
- pulse generation: every driver pulse charges its line (the cells' capacitance at half the
  write voltage, the V/2 scheme of Gokmen & Vlasov 2016 in which only a coincidence puts the
  full voltage across a device) and drives the half-selected devices of its line;
- the hold and difference stages (held only): one hold capacitor charged per neuron of a
  crossbar edge per point, and one amplifier per such neuron biased during the write window;
- the digital state that remains: per point, the largest row and column activity (update
  management: one comparison per neuron), the bias registers (a multiply-add per bias) and
  the bias DACs set after each group.

No ADC converts anything for the update and no optimizer runs. The constants below are
assumptions, each said where it is defined; the device write energy is physics.write_energy,
and the report gives the write energy at which the step is 10x and 100x cheaper than the GPU
backpropagation baseline, against cited write energies of device technologies.
"""

from __future__ import annotations

import numpy as np

from analogep.accounting.estimate import Estimate
from analogep.accounting.programming import ProgrammedCircuit
from analogep.backends.numpy_backend import NumpyBackend
from analogep.config.spec import Spec
from analogep.data import load_dataset
from analogep.devices.crossbar import Devices
from analogep.model.energy import Params
from analogep.model.factory import build_energy
from analogep.objectives.factory import build_objective
from analogep.training.substrate import PASSES, SubstrateUpdate

# Assumption: a crossbar line's capacitance per cell it passes, ~0.1 fF (a Cu line of ~0.2 fF/um
# at a ~0.5 um cell pitch, ITRS interconnect tables); a pulse charges the whole line.
LINE_CAP_PER_CELL = 1.0e-16  # F
# Assumption: half the write voltage on a row or a column (1 V set pulses, V/2 = 0.5 V), so only a
# coincidence puts the full voltage across a device (Gokmen & Vlasov 2016, Front. Neurosci. 10, 333).
HALF_WRITE_VOLTAGE = 0.5  # V
# Assumption: the hold capacitor of the sample-and-hold, 1 pF (the sampling capacitor whose kT/C,
# 64 uV at 300 K, is devices.read_noise in the presets).
HOLD_CAPACITANCE = 1.0e-12  # F
# Cited write energies per pulse, for the crossover table (J).
TECHNOLOGIES = {
    "RRAM (0.1-3 pJ; Yang, Strukov & Stewart, Nat. Nanotechnol. 8, 13 (2013), Table 1)": (1e-13, 3e-12),
    "PCM (2-25 pJ; same table)": (2e-12, 25e-12),
    "ECRAM (~1 aJ-10 fJ; Li-ion/protonic, Tang et al. IEDM 2018; Onen et al., Science 377, 539 (2022))": (1e-18, 1e-14),
}


def training_step_counts(spec: Spec, params: Params, seed: int) -> dict:
    """What one substrate training step from `params` fires, as training takes it
    (SubstrateUpdate.step on the numpy backend): fresh devices programmed with `params`,
    the batch of train.batch points drawn with `seed`, its groups in sequence. The step's
    counts: expected coincidences and their variance over the pulse draws, expected cells
    charged by driver pulses, the points kept (training/substrate.py)."""
    model = build_energy(spec.model)
    objective = build_objective(spec)
    data = load_dataset(spec.train.dataset, dtype=model.dtype, source=spec.data)
    batch = objective.batch(data, spec.train.batch, np.random.default_rng(seed))
    devices = Devices(spec, model)
    # as NumpyBackend.from_spec builds it for training, less its warning about wire resistance
    # (which numpy does not model, in training either)
    backend = NumpyBackend(model, spec.gradep, spec.relax, devices)
    update = SubstrateUpdate(spec, model, devices)
    weights = {k: np.array(params[k], dtype=model.dtype) for k in model.param_shapes()}
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # non-finite states: judged by the step
        update.step(backend, weights, batch, objective, spec.gradep, spec.train)
    return update.last_counts


def substrate_update(spec: Spec, circuit: ProgrammedCircuit, params: Params, seed: int) -> dict:
    """Expected pulses and joules of writing one batch's update on the substrate: the pulses
    of one training step from `params` on `spec`'s devices (`training_step_counts`, batch `seed`),
    priced on the programmed circuit."""
    s, p, model = spec.train.substrate, spec.physics, circuit.model
    _, gmin, gmax = circuit.spec.devices.window(circuit.spec.circuit)
    counts = training_step_counts(spec, params, seed)
    batch, kept = spec.train.batch, counts["kept"]
    copies = 2 if spec.devices.copies == "mismatched" else 1
    mean_g = 0.5 * (gmin + gmax)  # a half-selected device's conductance, mid-window
    rules = model.circuit_rules()
    n_weights = sum(int(np.prod(circuit.params[name].shape)) for name, _, _ in rules.couplings)
    edge_neurons = sum(int(sum(circuit.params[name].shape)) for name, _, _ in rules.couplings)  # post + pre
    coincidences, cells = counts["expected_coincidences"], counts["expected_line_cells"]
    device_pulses = coincidences * copies
    n_bias = sum(int(np.prod(circuit.params[name].shape)) for name, _ in rules.biases)
    window = PASSES * s.bl * p.write_pulse  # every row and column fires in parallel, slot by slot
    groups = -(-batch // s.group_size)
    dac = 2**p.dac_bits * p.dac_unit_capacitance * p.supply_voltage**2
    joules = {
        "pulse generation (line charging)": cells * copies * LINE_CAP_PER_CELL * HALF_WRITE_VOLTAGE**2,
        "half-selected devices (V/2 conduction)": cells * copies * mean_g * HALF_WRITE_VOLTAGE**2 * p.write_pulse,
        "device pulses (coincidences)": device_pulses * p.write_energy,
        "digital: update management, bias registers": batch * (edge_neurons * PASSES + 2 * n_bias)
                                                      * p.digital_flop_energy,
        "bias DACs (after each group)": groups * n_bias * dac,
    }
    if s.difference == "held":
        joules["sample-and-hold, difference stages"] = batch * edge_neurons * (
            HOLD_CAPACITANCE * p.supply_voltage**2 + p.amp_quiescent_current * p.supply_voltage * window)
    per = 1.0 / max(kept, 1)
    return {
        "joules": joules,
        "seconds": batch * window,
        "device_pulses": device_pulses,
        # per device (logical weight) per trusted point, as training logs it (metrics.jsonl), and
        # the standard deviation of that count over the pulse draws
        "coincidences_per_device_point": coincidences * per / n_weights,
        "coincidences_sd_per_device_point": float(np.sqrt(counts["coincidence_variance"])) * per / n_weights,
        "drive_pulses_per_point": cells * per / max(edge_neurons, 1),
        "points_kept": kept,
        "digital_state_bits": 16 * n_bias + 32,  # bias registers (16 bits each) and a point counter
        "bl": s.bl, "group_size": s.group_size, "difference": s.difference, "lr": s.lr,
    }


def crossover(rest_joules: float, device_pulses: float, baseline_joules: float, factor: float) -> float | None:
    """The write energy per pulse at which the circuit's step is `factor` times cheaper than
    `baseline_joules`; None: the rest of the step alone is above that."""
    budget = baseline_joules / factor - rest_joules
    return budget / device_pulses if budget > 0 and device_pulses > 0 else None


# What the digital rule adds to the circuit's step that the substrate does not do.
DIGITAL_ONLY = ("ADC conversions", "digital update (accumulate, Adam)", "programming (write pulses)")


def substrate_step(estimate: Estimate, spec: Spec, circuit: ProgrammedCircuit, params: Params, seed: int) -> Estimate:
    """The circuit's training step with the update written on the substrate: the phases'
    settling and supply as `estimate` has them, the digital rule's read-out, accumulation,
    Adam and program-and-verify writes replaced by `substrate_update`'s pulses (one step
    from `params`, batch `seed`)."""
    update = substrate_update(spec, circuit, params, seed)
    breakdown = {k: v for k, v in estimate.breakdown.items() if k not in DIGITAL_ONLY}
    breakdown.update(update["joules"])
    settling = spec.train.batch * sum(estimate.notes["per_phase_s"].values())
    notes = {k: v for k, v in estimate.notes.items() if k not in ("writes", "pulses_per_device", "conversions_per_point")}
    notes["substrate"] = {k: v for k, v in update.items() if k != "joules"}
    return Estimate("the circuit, update written on the substrate (points in sequence)", settling + update["seconds"],
                    sum(breakdown.values()), breakdown, notes)


def crossovers(training: dict[str, Estimate]) -> dict:
    """Per baseline (GPU backprop, GPU Euler): the write energy per pulse at which the
    substrate step is 10x and 100x cheaper, and which cited technologies fall below it."""
    a = training["analog"]
    sub = a.notes["substrate"]
    rest = a.joules - a.breakdown["device pulses (coincidences)"]
    out = {}
    for key in ("gpu_backprop", "gpu_euler"):
        if key not in training:
            continue
        row = {"baseline_j": training[key].joules, "ratio": training[key].joules / a.joules}
        for factor in (10, 100):
            e = crossover(rest, sub["device_pulses"], training[key].joules, factor)
            row[f"write_energy_{factor}x"] = e
            row[f"technologies_{factor}x"] = {name: ("below" if e is not None and hi <= e else
                                                     "straddles" if e is not None and lo <= e else "above")
                                              for name, (lo, hi) in TECHNOLOGIES.items()}
        out[key] = row
    return out
