"""The circuit the accounting simulates, programmed with the weights (method.md section 7):
ideal (the weights clipped to the conductance range), or on spec.devices (the device
window's g0, the weights the devices realise, and the write pulses of a training step).
Its supply (accounting/power.py `supply_model`) and its time scale: C / g0 for
analogep.lib's cells, whose nodes carry C; for a family of datasheet op-amps, each
neuron's lag from its stages' noise gains and the op-amp's gain-bandwidth
(accounting/amplified.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from analogep.accounting.power import Supply, row_loads, supply_model
from analogep.config.spec import Spec
from analogep.devices.crossbar import Devices
from analogep.devices.mapping import effective_params
from analogep.errors import AnalogepError
from analogep.model.energy import EnergyModel, Params
from analogep.model.factory import build_energy
from analogep.spice.transient import amplifier_lags, amplifier_row_lags

ADAM_SIZED_UPDATES = 8  # updates whose pulses are counted (the first write of every device is not one)


class EnergyError(AnalogepError):
    """The accounting cannot run with these constants."""


def capacitance(spec: Spec) -> float:
    """The capacitance on every neuron node: the circuit's, else the physics default."""
    c = spec.circuit.capacitance if spec.circuit.capacitance > 0 else spec.physics.capacitance
    if c <= 0:
        raise EnergyError("circuit.capacitance and physics.capacitance are both 0: the circuit would settle in no time; set one > 0")
    return c


@dataclass
class ProgrammedCircuit:
    """A float64 model of the circuit, the weights it realises, and what follows from them."""

    spec: Spec  # on devices: with the device window's g0, gmin and gmax
    model: EnergyModel
    params: Params  # the weights the circuit realises
    loads: tuple[list[np.ndarray], list[np.ndarray]]  # accounting/power.py's row_loads
    unit: float  # seconds per unit of the flow's time: C / g0, or the slowest op-amp lag
    writes: dict | None  # on devices: the write pulses of a step (see `_on_devices`)
    supply: Supply | None = None  # how the amplifiers draw from the supply (accounting/power.py)
    lags: list[np.ndarray] | None = None  # a family of datasheet op-amps: per layer, each neuron's lag (s)
    row_lags: list[float] | None = None  # and per layer the part of it after the state (its row buffers)

    @property
    def n_weights(self) -> int:
        return sum(int(np.prod(self.params[name].shape)) for name, _, _ in self.model.circuit_rules().couplings)


def program_circuit(spec: Spec, params: Params, warnings: list[str]) -> ProgrammedCircuit:
    """The circuit of `spec` programmed with `params`; what the accounting should say about
    it (weights clipped, a circuit without an energy) goes to `warnings`."""
    unit = capacitance(spec) / spec.circuit.g0
    model = build_energy(dataclasses.replace(spec.model, dtype="float64"))
    p64 = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    writes = None
    if spec.devices.ideal:
        realised, clipped = effective_params(model, p64, spec)
    else:
        spec, realised, clipped, writes = _on_devices(spec, model, p64, warnings)
        unit = capacitance(spec) / spec.circuit.g0
    if sum(clipped.values()):
        warnings.append(f"{sum(clipped.values())} weights clipped to the conductance range (circuit.clip)")
    rules = model.circuit_rules()
    loads = row_loads(spec, model, p64)
    lags = amplifier_lags(spec, model, p64)  # op-amp cells: their lags set the time scale, not a node capacitance
    if lags is not None:
        unit = max(float(np.max(t)) for t in lags)
    return ProgrammedCircuit(spec, model, realised, loads, unit, writes, supply=supply_model(spec, rules), lags=lags,
                             row_lags=amplifier_row_lags(model))


def _on_devices(spec: Spec, model: EnergyModel, params: Params, warnings: list[str]):
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
    realisation = devices.program(params)  # the first write: fixes each coupling's unit
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
