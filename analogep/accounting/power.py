"""Where the circuit's power goes at a state, from its node voltages and its netlist values.

Method.md section 7's circuit at a state s (per point): every element's current follows
from the node voltages and the conductances the compiler writes (spice/compiler.py), so
the power needs no simulator:

- dissipated in the passive elements: the crossbar conductances (row driver at +-a(s),
  column held at 0 V: G a^2 per device), the leaks g0 s^2, the springs lambda g0 (x - x_t)^2
  and the nudges beta (alpha lambda)^2 g0 (x - a)^2 (negative for -beta: the negative
  conductance delivers power);
- the currents the active elements source: the +a and -a row drivers, the sense
  amplifiers (the column current g0 c, c the neuron's drive), the injections into the
  neuron nodes (g0 rho'(s) c), the anchor sources, the nudges' controlled sources, the
  bias current sources (b g0). A supply model (accounting/report.py) turns them into
  power drawn from the rail.

Voltages are the state times `volts_per_unit` (the SPICE decks use 1 V per unit; the
dynamics in state units do not depend on it), so dissipation scales with its square and
currents with it. By Tellegen's theorem the power the sources deliver equals the passive
dissipation at an equilibrium; tests/test_energy_accounting.py checks both against
ngspice's own device powers and source currents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analogep.devices.mapping import row_loads
from analogep.config.spec import Spec
from analogep.model.energy import CircuitRules, EnergyModel, Params, State

# Active elements per neuron: the +a and -a row drivers, the sense amplifier, the injection.
AMPLIFIERS_PER_NEURON = 4


@dataclass(frozen=True)
class Supply:
    """How the amplifiers draw from the supply: an output current through `signal_v` (class-B:
    from the rail of its sign), `quiescent_a` per amplifier through `quiescent_v`; node
    voltages are the state times `volts_per_unit`."""

    signal_v: float
    quiescent_v: float
    quiescent_a: float
    volts_per_unit: float
    swing: float  # node voltages beyond it are warned of (V)
    label: str


def supply_model(spec: Spec, rules: CircuitRules) -> Supply:
    """analogep.lib's amplifiers: config/physics.yaml's supply, quiescent current and scale.
    A family's datasheet op-amp (`rules.amplifier`): its quiescent current from rail to rail,
    output currents from one rail, at the decks' 1 V per state unit."""
    p = spec.physics
    amp = rules.amplifier
    if amp is None:
        return Supply(p.supply_voltage, p.supply_voltage, p.amp_quiescent_current, p.volts_per_unit,
                      p.supply_voltage / 2, f"{p.supply_voltage:g} V supply, {p.amp_quiescent_current:g} A per amplifier")
    rails = [v for _, v in rules.supplies]
    span = max(rails) - min(rails)
    return Supply(max(abs(v) for v in rails), span, amp.quiescent_a, 1.0, rules.swing or max(rails),
                  f"{amp.part} op-amps ({amp.source}): {amp.quiescent_a:g} A each between rails {min(rails):+g}/{max(rails):+g} V, "
                  f"GBW {amp.gbw_hz:g} Hz, slew {amp.slew_v_per_s:g} V/s")


@dataclass
class CircuitPower:
    """Per point (arrays of shape (points,)): passive dissipation in watts and the current
    each group of active elements sources, in amperes, and how many amplifiers run."""

    crossbar: np.ndarray
    leak: np.ndarray
    spring: np.ndarray
    nudge: np.ndarray
    currents: dict[str, np.ndarray]
    amplifiers: int

    @property
    def dissipated(self) -> np.ndarray:
        return self.crossbar + self.leak + self.spring + self.nudge

    def passive(self) -> dict[str, np.ndarray]:
        return {"crossbar": self.crossbar, "leak": self.leak, "spring": self.spring, "nudge": self.nudge}


def circuit_power(
    spec: Spec,
    model: EnergyModel,
    params: Params,
    phase: str,
    state: State,
    anchors: dict[str, np.ndarray],
    *,
    beta: float | None = None,
    volts_per_unit: float = 1.0,
    loads: tuple[list[np.ndarray], list[np.ndarray]] | None = None,
) -> CircuitPower:
    """The power picture of one phase's circuit at `state` (float64 model and parameters;
    `anchors` as for spice/compiler.build_netlist, none for "continuous", the unclamped
    generation circuit; `beta` signed, default +-gradep.beta)."""
    g0, g, vs = spec.circuit.g0, spec.gradep, volts_per_unit
    plus, minus = loads if loads is not None else row_loads(spec, model, params)
    points = state[0].shape[0]
    acts, slopes = [], []
    for layer, s in enumerate(state):
        d = model.activity(layer, s, 1)
        acts.append(s if d is None else d[0])
        slopes.append(np.ones_like(s) if d is None else d[1])
    drives = [model.layer_drive(params, state, layer) for layer in range(len(state))]
    crossbar = sum(np.sum(a * a * (p + m), axis=1) for a, p, m in zip(acts, plus, minus)) * vs**2
    currents = {"drivers": sum(np.sum(np.abs(a) * (p + m), axis=1) for a, p, m in zip(acts, plus, minus)) * vs}
    if model.circuit_rules().amplifier is None:  # analogep.lib's cells
        leak = sum(np.sum(s * s, axis=1) for s in state) * g0 * vs**2
        currents["sense"] = sum(np.sum(np.abs(c), axis=1) for c in drives) * g0 * vs
        currents["injection"] = sum(np.sum(np.abs(d * c), axis=1) for d, c in zip(slopes, drives)) * g0 * vs
        amplifiers = AMPLIFIERS_PER_NEURON * sum(model.sizes)
    else:  # the family's own cells: their sense amplifiers, other op-amps, resistors and diodes
        cells = [layer.cell_supply(s, c, g0) for layer, s, c in zip(model.layers, state, drives)]
        currents["sense"] = sum(c[0] for c in cells) * vs
        currents["injection"] = sum(c[1] for c in cells) * vs
        leak = sum(c[2] for c in cells) * vs**2
        amplifiers = sum(layer.cell_amplifiers * layer.size for layer in model.layers)
    bias = sum(np.sum(np.abs(np.asarray(params[name], dtype=np.float64))) for name, _ in model.circuit_rules().biases)
    currents["biases"] = np.full(points, bias * g0 * vs)
    x = state[0]
    spring = np.zeros(points)
    nudge = np.zeros(points)
    if phase == "continuous":
        # Continuous generation (objectives/continuous.py): the visible nodes are free (no
        # clamp, no spring); their net current charges their capacitors.
        currents["anchors"] = np.zeros(points)
    elif phase == "generate":
        # The clamp sources hold x: each sources the node's net current, -g0 dE/dx.
        de_dx = model.state_grad(params, state)[0]
        currents["anchors"] = np.sum(np.abs(de_dx), axis=1) * g0 * vs
        amplifiers += model.sizes[0]
    else:
        dx = x - anchors["xt"]
        spring = g.lam * g0 * np.sum(dx * dx, axis=1) * vs**2
        currents["anchors"] = g.lam * g0 * np.sum(np.abs(dx), axis=1) * vs
        amplifiers += model.sizes[0]
        if phase != "free":
            if beta is None:
                beta = g.beta if phase == "nudge_plus" else -g.beta
            k = beta * (g.alpha * g.lam) ** 2 * g0
            da = x - anchors["a"]
            nudge = k * np.sum(da * da, axis=1) * vs**2
            # The controlled source and the nudge anchor's source carry the same current.
            currents["nudges"] = 2.0 * abs(k) * np.sum(np.abs(da), axis=1) * vs
            amplifiers += 2 * model.sizes[0]
    return CircuitPower(crossbar, leak, spring, nudge, currents, amplifiers)
