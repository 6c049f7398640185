"""The energy-family interface that GradEP, the exact gradient, the compiler and the
measurement use (method.md sections 1, 3 and 7).

An energy family is a layered field (model/field.py: what the solvers need) that has an
energy: E itself, its local parameter terms dE/dtheta (what EP measures), its second
derivatives (the exact gradient by implicit differentiation, the curvature at a state),
and the rules by which the compiler builds it as a circuit. Families are built as a
`Network` of layers and interactions (model/network.py), so a new family is one module in
model/families/ that lists its parts, and one line in analogep.registry.FAMILIES.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import numpy as np

from analogep.model.field import LayeredField, Params, State

__all__ = ["Amplifier", "CircuitRules", "EnergyModel", "Params", "State"]


@dataclass(frozen=True)
class Amplifier:
    """The op-amp a family's cells are built of, as its datasheet gives it: what
    `analogep energy` prices (the quiescent current between the rails) and times (the
    gain-bandwidth product sets how fast each stage follows; the slew rate bounds it)."""

    part: str
    quiescent_a: float  # supply current of one amplifier at rest (A)
    gbw_hz: float  # gain-bandwidth product (Hz)
    slew_v_per_s: float  # slew rate (V/s)
    source: str  # the datasheet


@dataclass(frozen=True)
class CircuitRules:
    """What the circuit compiler needs from a family (method.md section 7): the library
    cell of each layer's neurons with its parameters (g0 is added by the compiler), the
    parameters realised as crossbars between two layers, and those realised as bias
    currents into one layer's sense lines."""

    cells: tuple[tuple[str, dict[str, float]], ...]  # per layer: (subcircuit, extra parameters)
    couplings: tuple[tuple[str, int, int], ...]  # (parameter, pre layer, post layer); shape (n_post, n_pre)
    biases: tuple[tuple[str, int], ...]  # (parameter, layer)
    # (parameter, layer, current): a noise-level bias whose current sources carry current(params),
    # c^T B at the level code now applied (model/interactions.py LevelBias)
    level_biases: tuple = ()
    library: str = "analogep.lib"  # the cell library (circuits/) the cells come from
    supplies: tuple[tuple[str, float], ...] = ()  # global supply rails the cells use: (node, volts)
    swing: float | None = None  # the largest |V| an amplifier of the cells holds (None: no rails)
    # Whether ngspice's KLU solver may take these decks: with the op-amp cells of physical.lib,
    # KLU and a .nodeset failed every sweep point of the tiny model (ngspice-46; gmin and source
    # stepping failed), the sparse solver converged on all (docs/results/physical.md).
    klu: bool = True
    # ngspice's absolute current tolerance (A) for decks whose crossbar columns end on 0 V
    # sources, the sense amplifiers of a read gain (devices.scale_fraction), where the family's
    # cells need more than circuit.abstol; None: circuit.abstol. On physical.lib's op-amp cells,
    # with those currents fed into the transimpedance stages, Newton never met 1e-14 A (nor
    # 1e-13) and met 1e-12 (ngspice-46: .op, gmin and source stepping failed; docs/results/physical.md).
    sense_abstol: float | None = None
    # The cells' own op-amp (a family with cells of datasheet parts, physical.lib): `analogep
    # energy` then prices and times the cells the layers declare (model/layers.py `cell_supply`,
    # `cell_lag`); None: analogep.lib's amplifiers, priced by config/physics.yaml.
    amplifier: Amplifier | None = None


class EnergyModel(LayeredField):
    """An energy E(theta, s) over a layered state whose field is dE/ds (method.md section 1)."""

    @property
    @abstractmethod
    def param_names(self) -> tuple[str, ...]:
        """Parameter names in their canonical order (checkpoints and updates follow it)."""

    @abstractmethod
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each parameter."""

    @abstractmethod
    def init_params(self, rng: np.random.Generator) -> Params:
        """Fresh parameters."""

    @abstractmethod
    def energy(self, params: Params, state: State) -> np.ndarray:
        """E per batch element, shape (batch,)."""

    @abstractmethod
    def param_terms(self, params: Params, state: State, weights: np.ndarray | None = None) -> Params:
        """dE/dtheta at `state`, averaged over the batch: the local measurements EP needs
        (method.md section 3). With `weights` (batch,), each point's term is scaled by its
        weight before the mean."""

    @abstractmethod
    def hessian_vector(self, params: Params, state: State, direction: State) -> State:
        """d2E/ds2 . direction (the exact gradient by implicit differentiation; the
        curvature that tells a minimum from a saddle, model/curvature.py)."""

    @abstractmethod
    def param_terms_jvp(self, params: Params, state: State, direction: State) -> Params:
        """d/d eps of param_terms(state + eps * direction): the mixed second derivative."""

    @abstractmethod
    def circuit_rules(self) -> CircuitRules:
        """How the compiler builds this energy as a circuit (method.md section 7)."""

    @property
    def level_features(self) -> int:
        """The size of the noise-level code the energy takes (0: none; method.md section 6.3)."""
        return 0

    def condition(self, code: np.ndarray | None) -> None:
        """Apply a noise-level code; an energy without level-bias rows takes none."""
        if code is not None:
            raise ValueError(f"{type(self).__name__} takes no level code")

    @property
    def n_params(self) -> int:
        return int(sum(np.prod(s) for s in self.param_shapes().values()))
