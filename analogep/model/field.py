"""What a relaxation solver needs of a circuit: a layered field (method.md section 3).

The solvers descend a vector field over a layered state, and need nothing else of it: the
field itself (`state_grad`: dE/ds for an energy, the Kirchhoff current residual of a circuit
that has none) and, for block coordinate descent, each layer's activity, the drive it gets
from the other layers and its own biases, and the layer's block update and slope given that
drive. An energy family (model/energy.py) is one such field; the non-ideal circuit of
mismatched crossbar copies (devices/realised.py), which settles where its currents balance
but minimises no energy, is another.

States and parameters are plain containers so that solvers, optimizers and checkpoints
stay generic:
- a state is a list of arrays, one (batch, size) array per layer, visible layer first;
- parameters are a dict name -> array, in a fixed order (the family's `param_names`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

State = list[np.ndarray]


Params = dict[str, np.ndarray]


class LayeredField(ABC):
    """A field over a layered state, descended by the solvers (solvers/euler.py, fast.py).

    The block solver's contract (Scellier 2024, block coordinate descent): given its
    neighbours, each layer's part of the field depends on them only through one array per
    layer, its drive c_l, so a layer can be updated from its drive alone. The spring of a
    phase (solvers.base.VisibleSpring) acts on the visible layer, layer 0."""

    sizes: tuple[int, ...]
    dtype: np.dtype

    @abstractmethod
    def state_grad(self, params: Params, state: State) -> State:
        """The field at `state` for every layer (dE/ds for an energy)."""

    @abstractmethod
    def activity(self, layer: int, s: np.ndarray, order: int) -> tuple[np.ndarray, ...] | None:
        """(a_l, a_l', a_l'') of layer `layer` at s, up to `order`; None for a linear layer,
        whose activity is the state itself (the block solver then aliases it)."""

    @abstractmethod
    def layer_drive(self, params: Params, state: State, layer: int, acts: list[np.ndarray] | None = None) -> np.ndarray:
        """c_l, the input layer l receives from the other layers and its biases. `acts`,
        when given, holds each layer's activity, so a solver that keeps them current does
        not recompute them."""

    @abstractmethod
    def block_update(
        self, layer: int, s: np.ndarray, drive: np.ndarray, derivs: tuple | None, spring, omega
    ) -> np.ndarray:
        """Move layer `layer` (in place) towards the zero of its own field given its
        neighbours (`drive`), scaled by `omega` (a number or a (rows, 1) column; exact
        solves may ignore it). `derivs` is `activity(layer, s, 2)`; `spring`, on the
        visible layer, a VisibleSpring or None. Returns the layer's field before the move."""

    @abstractmethod
    def block_slope(self, layer: int, s: np.ndarray, drive: np.ndarray, derivs: tuple | None, spring) -> np.ndarray:
        """The layer's field at s (plus the spring on the visible layer) from the cached
        `drive` and `derivs` (a fresh array)."""

    def zeros_state(self, batch: int) -> State:
        return [np.zeros((batch, n), dtype=self.dtype) for n in self.sizes]
