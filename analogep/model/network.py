"""A network: an energy built from a list of layers and a table of interactions
(method.md section 1; the layout of Scellier's energy-based-learning).

    E(s) = sum_l E_l(s_l) + sum_k E_k(a)

with E_l a layer's own energy (model/layers.py) and E_k the interactions' terms, each
carrying one parameter (model/interactions.py). One table drives everything: the
parameters (their names, order, shapes and init draws are the table's rows in order), the
energy, the drives the solvers relax with, the parameter terms EP measures, the second
derivatives of the exact gradient, and the circuit the compiler builds. A family is the
table it writes (model/families/).

Each layer's drive c_l = -dE_int/da_l sums the interactions touching it in the order of
the layer each term comes from (model/interactions.py `source`), so a coupling added to
the table (a skip) enters every formula as one more row; dE/ds_l = E_l'(s_l) - a_l' c_l.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from analogep.errors import CircuitError
from analogep.model.energy import Amplifier, CircuitRules, EnergyModel, Params, State
from analogep.model.interactions import Interaction, LevelBias
from analogep.model.layers import Layer


class Network(EnergyModel):
    """The energy of `layers` (visible layer first) and the interactions of `table` (in
    parameter order). `library`, `supplies` and `swing`: the cell library of the layers'
    cells, the supply rails those cells take and the largest output their amplifiers hold
    (circuits/; a family with its own cells sets them); `amplifier`: the op-amp of those
    cells, which `analogep energy` prices (model/energy.py `Amplifier`)."""

    library = "analogep.lib"
    supplies: tuple[tuple[str, float], ...] = ()
    swing: float | None = None
    klu = True
    sense_abstol: float | None = None  # energy.CircuitRules.sense_abstol
    amplifier: Amplifier | None = None

    def __init__(self, layers: Sequence[Layer], table: Sequence[Interaction], dtype: str | np.dtype):
        self.layers = tuple(layers)
        self.table = tuple(table)
        self.sizes = tuple(layer.size for layer in self.layers)
        self.dtype = np.dtype(dtype)
        names = [row.name for row in self.table]
        if len(set(names)) != len(names):
            raise ValueError(f"parameter names repeat in the table: {names}")
        # Per layer, the interactions touching it in the order of their sources (stable).
        self._inputs = tuple(
            tuple(sorted((row for row in self.table if l in row.layers), key=lambda row: row.source(l)))
            for l in range(len(self.layers))
        )
        for l, rows in enumerate(self._inputs):
            if not any(len(row.layers) > 1 for row in rows):
                raise ValueError(f"layer {l} is coupled to no other layer (its drive would not depend on the state)")

    # Parameters ----------------------------------------------------------------------------------

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(row.name for row in self.table)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {row.name: row.shape(self.sizes) for row in self.table}

    def init_params(self, rng: np.random.Generator) -> Params:
        return {row.name: row.init(rng, self.sizes, self.dtype) for row in self.table}

    # The noise-level code (level-bias rows) ---------------------------------------------------------

    @property
    def level_features(self) -> int:
        """The size of the level code the level-bias rows take (0: the energy has none)."""
        return max((row.features for row in self.table if isinstance(row, LevelBias)), default=0)

    def condition(self, code: np.ndarray | None) -> None:
        """Apply a noise-level code (K,) to every level-bias row: from now on the energy is
        that level's (method.md section 6.3). None clears it."""
        k = self.level_features
        if code is not None:
            code = np.asarray(code, dtype=np.float64)
            if code.shape != (k,):
                raise ValueError(f"level code of shape {code.shape}; this network takes ({k},)")
        for row in self.table:
            if isinstance(row, LevelBias):
                row.code = None if code is None else code.copy()

    # The field the solvers relax ---------------------------------------------------------------------

    def activity(self, layer: int, s: np.ndarray, order: int) -> tuple[np.ndarray, ...] | None:
        return self.layers[layer].activity(s, order)

    def _activities(self, state: State, order: int) -> tuple[list[np.ndarray], list]:
        """Each layer's activity (the state itself for a linear layer) and its derivatives
        up to `order` (None for a linear layer; rho is the hot spot of every solver, so
        nothing above `order` is computed)."""
        derivs = [layer.activity(s, order) for layer, s in zip(self.layers, state)]
        return [s if d is None else d[0] for s, d in zip(state, derivs)], derivs

    def layer_drive(
        self, params: Params, state: State, layer: int, acts: list[np.ndarray] | None = None,
        transposed: Params | None = None,
    ) -> np.ndarray:
        """c_l; `transposed`, when given, holds the weights the reads from the layers above
        go through (a crossbar's second, mismatched copy; devices/realised.py)."""
        rows = self._inputs[layer]
        if acts is None:  # only the activities this layer's terms read
            read = {l for row in rows for l in row.layers}
            acts = {l: self._activity_value(l, state[l]) for l in read}
        terms = iter(rows)
        c = next(terms).drive(layer, params, acts, transposed)
        for row in terms:  # each term a temporary, freed as it is added (as in a written-out sum)
            c = c + row.drive(layer, params, acts, transposed)
        return c

    def _activity_value(self, layer: int, s: np.ndarray) -> np.ndarray:
        d = self.layers[layer].activity(s, 0)
        return s if d is None else d[0]

    def state_grad(self, params: Params, state: State) -> State:
        acts, derivs = self._activities(state, 1)
        drives = [self.layer_drive(params, state, l, acts) for l in range(len(self.layers))]
        return [layer.block_slope(s, c, d, None) for layer, s, c, d in zip(self.layers, state, drives, derivs)]

    def block_update(self, layer, s, drive, derivs, spring, omega) -> np.ndarray:
        """The layer's own update (the spring acts on the visible layer only)."""
        return self.layers[layer].block_update(s, drive, derivs, spring if layer == 0 else None, omega)

    def block_slope(self, layer, s, drive, derivs, spring) -> np.ndarray:
        return self.layers[layer].block_slope(s, drive, derivs, spring if layer == 0 else None)

    # The energy and its derivatives ------------------------------------------------------------------

    def energy(self, params: Params, state: State) -> np.ndarray:
        acts, _ = self._activities(state, 0)
        e = sum(layer.energy(s) for layer, s in zip(self.layers, state))
        for row in self.table:
            e = e + row.energy(params, acts)
        return e

    def param_terms(self, params: Params, state: State, weights: np.ndarray | None = None) -> Params:
        """Local dE/dtheta (method.md section 3), each row's own term."""
        acts, _ = self._activities(state, 0)
        batch = state[0].shape[0]
        column = None if weights is None else np.asarray(weights, dtype=self.dtype)[:, None]
        return {row.name: row.param_term(acts, column, batch) for row in self.table}

    def hessian_vector(self, params: Params, state: State, direction: State) -> State:
        acts, derivs = self._activities(state, 2)
        drives = [self.layer_drive(params, state, l, acts) for l in range(len(self.layers))]
        dacts = _activity_changes(direction, derivs)
        out = []
        for l, layer in enumerate(self.layers):
            dc = np.zeros_like(direction[l])
            for row in self._inputs[l]:
                term = row.drive_jvp(l, params, dacts)
                if term is not None:
                    dc = dc + term
            out.append(layer.hessian_vector(state[l], direction[l], drives[l], derivs[l], dc))
        return out

    def param_terms_jvp(self, params: Params, state: State, direction: State) -> Params:
        acts, derivs = self._activities(state, 1)
        batch = state[0].shape[0]
        dacts = _activity_changes(direction, derivs)
        return {row.name: row.param_term_jvp(acts, dacts, batch) for row in self.table}

    # The circuit (method.md section 7) ---------------------------------------------------------------

    def circuit_rules(self) -> CircuitRules:
        """Each layer's unit cell, each crossbar row a coupling, each bias row a current source."""
        unrealised = [f"{row.name} ({type(row).__name__})" for row in self.table
                      if row.circuit not in ("crossbar", "bias", "level-bias")]
        unrealised += [f"layer {l} ({type(layer).__name__})" for l, layer in enumerate(self.layers) if layer.cell is None]
        if unrealised:
            raise CircuitError(f"{type(self).__name__}: no circuit element realises {', '.join(unrealised)}")
        return CircuitRules(
            cells=tuple(layer.cell for layer in self.layers),
            couplings=tuple((row.name, row.pre, row.post) for row in self.table if row.circuit == "crossbar"),
            biases=tuple((row.name, row.layer) for row in self.table if row.circuit == "bias"),
            level_biases=tuple((row.name, row.layer, self._level_current(row)) for row in self.table
                               if row.circuit == "level-bias"),
            library=self.library,
            supplies=self.supplies,
            swing=self.swing,
            klu=self.klu,
            sense_abstol=self.sense_abstol,
            amplifier=self.amplifier,
        )

    @staticmethod
    def _level_current(row: LevelBias):
        """The function of the parameters a level-bias row's current sources carry: c^T B at
        the level code applied when the deck is drawn; one line if none is."""
        def current(params: Params) -> np.ndarray:
            if row.code is None:
                raise CircuitError(f"{row.name}: a level-bias energy is drawn at one noise level; none is set")
            return row.current(params)
        return current


def _activity_changes(direction: State, derivs: list) -> list[np.ndarray]:
    """da_l = a_l' ds_l along `direction` (ds_l itself on a linear layer)."""
    return [v if d is None else d[1] * v for v, d in zip(direction, derivs)]
