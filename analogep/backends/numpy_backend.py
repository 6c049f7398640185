"""The numpy backend: equilibria by numpy relaxation (analogep.solvers) of the programmed
circuit: the ideal energy, or the non-ideal devices' circuit (devices/crossbar.py), solved
as an energy while one device is read both ways and the drivers are exact, else as the
circuit's KCL fixed point (devices/realised.py). Wire resistance is not modelled here
(SPICE only)."""

from __future__ import annotations

import warnings

import numpy as np

from analogep.backends.base import EquilibriumBackend
from analogep.backends.spring import Nudge, phase_spring
from analogep.devices.crossbar import Devices, Realisation
from analogep.devices.realised import RealisedCircuit
from analogep.config.sections import GradEPSpec, RelaxSpec
from analogep.config.spec import Spec
from analogep.errors import AnalogepWarning
from analogep.model.energy import EnergyModel, Params, State
from analogep.model.field import LayeredField
from analogep.solvers.base import Equilibrium, VisibleSpring, free_start
from analogep.solvers.factory import build_solver


class NumpyBackend(EquilibriumBackend):
    """Equilibria of the programmed parameters by the configured relaxation solver.

    The ideal hardware realises the parameters exactly; `program` keeps a reference (no
    copy), so the caller programs again after each update, as for any backend. With
    `devices`, `program` writes them (first call: every device; then the change through
    the write rule) and the equilibria are the realised circuit's, read through the
    measurement chain (`readout`, backends/base.py)."""

    def __init__(self, model: EnergyModel, gradep: GradEPSpec, relax_spec: RelaxSpec, devices: Devices | None = None):
        self.model, self.gradep, self.relax_spec = model, gradep, relax_spec
        self.params: Params | None = None
        self.devices = devices
        self.circuit: LayeredField = model  # what the solver relaxes
        self.realisation: Realisation | None = None

    @classmethod
    def from_spec(cls, spec: Spec, model: EnergyModel, **_: object) -> "NumpyBackend":
        d = spec.devices
        if d.wire_resistance > 0:
            warnings.warn(AnalogepWarning(
                f"devices.wire_resistance = {d.wire_resistance:g} ohm: the numpy backend does not model wire resistance "
                f"(its IR drop); use --backend spice for it"
            ))
        return cls(model, spec.gradep, spec.relax, None if d.ideal else Devices(spec, model))

    def program(self, params: Params) -> Params:
        if self.devices is None:
            self.params = params
            return params
        self.realisation = self.devices.program(params)
        self.params = self.realisation.params(params, "forward")
        self.circuit = self.model if self.realisation.has_energy else RealisedCircuit(self.model, self.realisation, params)
        return self.params

    def _relax(self, start: State, spring: VisibleSpring | None, max_steps: int, clamp_visible: bool = False) -> Equilibrium:
        solver = build_solver(self.relax_spec, max_steps)
        return solver.relax(self.circuit, self.params, start, spring, clamp_visible=clamp_visible)

    def equilibrium(self, x_t: np.ndarray, nudge: Nudge | None, start: State | None) -> Equilibrium:
        readout = self.readout
        if readout is not None:  # the anchors come from DACs
            x_t = readout.dac(x_t)
            nudge = None if nudge is None else Nudge(nudge.beta, readout.dac(nudge.anchor))
        if start is None:
            start = free_start(self.model, x_t)
        r = self.relax_spec
        return self._relax(start, phase_spring(self.gradep, x_t, nudge), r.free_steps if nudge is None else r.nudge_steps)

    def clamped(self, x: np.ndarray, hidden: list[np.ndarray] | None) -> tuple[Equilibrium, np.ndarray]:
        readout = self.readout
        if readout is not None:
            x = readout.dac(x)
        hidden = hidden if hidden is not None else self.model.zeros_state(x.shape[0])[1:]
        start = [x.astype(self.model.dtype, copy=True)] + list(hidden)
        eq = self._relax(start, None, self.relax_spec.free_steps, clamp_visible=True)
        de_dx = self.circuit.state_grad(self.params, eq.state)[0]
        return eq, de_dx if readout is None else readout.read(de_dx)
