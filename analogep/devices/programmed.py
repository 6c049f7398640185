"""The circuit the compiler draws for programmed parameters: the ideal circuit, or the one
realised on non-ideal devices (method.md section 7, 'Devices').

Both the SPICE backend and `analogep compile` draw from a `Programmed`: the unit
conductance and window of the devices, the biases, each coupling's forward and transposed
conductances (one device read both ways, or two copies), the activation drivers' gain and
offset per neuron, and the crossbar line resistance; and they judge ngspice's answers
against `solver`, numpy's model of the same circuit (its energy, or its KCL when there is
none: mismatched copies or drivers, devices/realised.py). With line resistance, `solver`
reads the wired arrays through their effective conductances (devices/wires.py), exact
for the circuit's ideal drivers and virtual grounds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from analogep.devices.crossbar import Devices, Realisation
from analogep.devices.mapping import Copies, effective_params, ideal_copies
from analogep.devices.realised import RealisedCircuit
from analogep.devices.wires import effective_copies
from analogep.config.spec import Spec
from analogep.model.energy import EnergyModel, Params
from analogep.model.field import LayeredField


@dataclass(frozen=True)
class Programmed:
    """What one programming of the crossbar draws.

    `spec`: the spec with circuit.g0/gmin/gmax of the device window; `params` (float64):
    the biases and the forward read's weights, what `solver` solves with (with line
    resistance: the effective weights the wired arrays realise); `copies`: the
    conductances the crossbar draws (forward, transposed); `drivers`: per
    layer (gain, offset) arrays or None (exact)."""

    spec: Spec
    params: Params
    copies: Copies
    drivers: tuple[tuple[np.ndarray | None, np.ndarray | None], ...] | None
    wire_resistance: float
    solver: LayeredField
    clipped: dict[str, int]

    @property
    def has_energy(self) -> bool:
        return self.solver is not None and not isinstance(self.solver, RealisedCircuit)


def ideal(spec: Spec, model: EnergyModel, params: Params) -> Programmed:
    """The ideal circuit: weights clipped to [gmin, gmax] (counted), one pair read both ways."""
    realised, clipped = effective_params(model, params, spec)
    return Programmed(spec, realised, ideal_copies(spec, model, params), None, 0.0, model, clipped)


def realised(spec: Spec, model: EnergyModel, params: Params, realisation: Realisation) -> Programmed:
    """The circuit of a devices `Realisation` (float64 `model` and `params`)."""
    c = dataclasses.replace(spec.circuit, g0=realisation.g0, gmin=realisation.gmin, gmax=realisation.gmax)
    drawn_spec = dataclasses.replace(spec, circuit=c)
    copies = {k: (realisation.forward[k], realisation.transposed[k]) for k in realisation.forward}
    drivers = None
    if any(g is not None for g in realisation.gain) or any(o is not None for o in realisation.offset):
        drivers = tuple(zip(realisation.gain, realisation.offset))
    r_wire = spec.devices.wire_resistance
    if r_wire > 0:  # what the neurons see of the wired arrays: effective copies (devices/wires.py)
        eff = effective_copies(copies, r_wire)
        realisation = dataclasses.replace(
            realisation, forward={k: v[0] for k, v in eff.items()}, transposed={k: v[1] for k, v in eff.items()}
        )
    p = realisation.params(params, "forward")
    solver = model if realisation.has_energy else RealisedCircuit(model, realisation, p)
    return Programmed(drawn_spec, p, copies, drivers, r_wire, solver, realisation.clipped)


def program(spec: Spec, model: EnergyModel, params: Params, devices: Devices | None) -> Programmed:
    """Program `params` (float64) onto `devices` (None: the ideal circuit)."""
    p64 = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    if devices is None:
        return ideal(spec, model, p64)
    return realised(spec, model, p64, devices.program(p64))
