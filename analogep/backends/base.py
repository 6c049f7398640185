"""The equilibrium-backend contract: hardware that is programmed, then asked for equilibria.

A backend is stateful, like the circuit it stands for: `program(params)` writes the
parameters and returns what the hardware realises of them (the ideal circuit: the
parameters themselves, or the weights clipped to the conductance range), and every
equilibrium after that is of the programmed energy. A backend only returns equilibria;
the measurement layer (analogep.ep) turns them into velocities and updates, so the numpy
and SPICE backends share every line after the solve (method.md sections 3 and 7).

The core contract is `from_spec`, `program`, `equilibrium` and `clamped` (abstract), and
`close`. Everything else callers ask of a backend is declared here with a default that
fits hardware without devices, so a caller never asks whether a backend has it:
`phases` (one `equilibrium` per phase), `devices` (None), `runner` (None), `readout`
(exact), `clipped` and `device_metrics` (read from `devices`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from analogep.backends.spring import Nudge
from analogep.config.spec import Spec
from analogep.devices.crossbar import Devices
from analogep.devices.periphery import MeasurementChain
from analogep.model.energy import EnergyModel, Params, State
from analogep.solvers.base import Equilibrium


class EquilibriumBackend(ABC):
    """Anything that can be programmed with parameters and settle the spring-clamped energy."""

    devices: Devices | None = None
    """The non-ideal devices the parameters are written to (devices/crossbar.py); None: ideal."""

    # --- the core contract -----------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: Spec, model: EnergyModel, **options) -> "EquilibriumBackend":
        """The backend for spec's circuit and devices (analogep.registry.BACKENDS names it);
        `options` are the backend's own (the SPICE backend: runner, workers)."""

    @abstractmethod
    def program(self, params: Params) -> Params:
        """Write `params` to the hardware; returns the parameters it realises."""

    @abstractmethod
    def equilibrium(self, x_t: np.ndarray, nudge: Nudge | None, start: State | None) -> Equilibrium:
        """Equilibrium with spring lambda anchored at x_t (plus `nudge`), relaxed from
        `start` (None: the free-phase start x = x_t, h = 0)."""

    @abstractmethod
    def clamped(self, x: np.ndarray, hidden: list[np.ndarray] | None) -> tuple[Equilibrium, np.ndarray]:
        """Hidden equilibrium with the visible units held at x (the inference circuit),
        relaxed from `hidden` (None: zeros), and dE/dx there (method.md section 2)."""

    def condition(self, code: np.ndarray | None) -> None:
        """Set the noise-level code (K,) that the level-bias rows of the energy take (a DAC
        setting the code that drives their crossbars; method.md section 6.3): every
        equilibrium after this is of that level's energy. None clears it."""
        self.model.condition(code)

    def close(self) -> None:
        """Release what the backend holds (worker processes); a backend that holds nothing
        has nothing to do."""

    # --- defaults a backend may override ---------------------------------------------------------

    def phases(self, x_t: np.ndarray, nudges: list[Nudge]) -> list[Equilibrium]:
        """The free equilibrium and one per nudge, each nudged phase relaxed from the free
        equilibrium so that it stays in its basin (method.md section 3). A backend that
        solves them together overrides this (the SPICE backend: one sweep)."""
        free = self.equilibrium(x_t, None, None)
        return [free] + [self.equilibrium(x_t, nudge, free.state) for nudge in nudges]

    @property
    def runner(self) -> str | None:
        """The ngspice interface that solves (the run log records it); None: no ngspice."""
        return None

    @property
    def readout(self) -> MeasurementChain | None:
        """The measurement chain that reads the circuit's voltages and currents (None: exact)."""
        devices = self.devices
        return None if devices is None or devices.readout.exact else devices.readout

    @property
    def clipped(self) -> dict[str, int] | None:
        """Weights the last `program` clipped to the devices' conductance range, per
        parameter (None: hardware that does not clip)."""
        return None if self.devices is None else dict(self.devices.last_clipped)

    def device_metrics(self) -> dict:
        """Programming pulses of the last program and in all, and clipped conversions
        (empty without devices)."""
        if self.devices is None:
            return {}
        r = self.devices.readout
        out = {"pulses": self.devices.last_pulses, "pulses_total": self.devices.total_pulses,
               "adc_clipped": r.adc_clipped, "dac_clipped": r.dac_clipped}
        if self.devices.d.fault_aware:  # pairs the fault-aware mapping cannot write (both devices stuck)
            out["both_stuck"] = int(sum(self.devices.both_stuck.values()))
        return out
