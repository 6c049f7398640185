"""The energy-family interface that GradEP, the solvers, the compiler and the measurement use.

A family is a class with `energy`, `state_grad` and `param_terms` (the local dE/dtheta),
plus, for the block solver, its per-layer block update, and for the compiler its circuit
rules; nothing else in analogep knows its formulas. A new family is one module in
model/families/ and one line in analogep.registry.FAMILIES.

States and parameters are plain containers so that solvers, optimizers and checkpoints
stay generic:
- a state is a list of arrays, one (batch, size) array per layer, visible layer first;
- parameters are a dict name -> array, in a fixed order (`param_names`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

State = list[np.ndarray]


Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class CircuitRules:
    """What the circuit compiler needs from a family (method.md section 7): the library
    cell of each layer's neurons with its parameters (g0 is added by the compiler), the
    parameters realised as crossbars between two layers, and those realised as bias
    currents into one layer's sense lines."""

    cells: tuple[tuple[str, dict[str, float]], ...]  # per layer: (subcircuit, extra parameters)
    couplings: tuple[tuple[str, int, int], ...]  # (parameter, pre layer, post layer); shape (n_post, n_pre)
    biases: tuple[tuple[str, int], ...]  # (parameter, layer)


class EnergyModel(ABC):
    """An energy E(theta, s) over a layered state; see method.md section 1."""

    sizes: tuple[int, ...]
    dtype: np.dtype

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
    def state_grad(self, params: Params, state: State) -> State:
        """dE/ds for every layer."""

    @abstractmethod
    def param_terms(self, params: Params, state: State, weights: np.ndarray | None = None) -> Params:
        """dE/dtheta at `state`, averaged over the batch: the local measurements EP needs.
        With `weights` (batch,), each point's term is scaled by its weight before the mean."""

    # Layered structure: the block solver and the exact gradient use it ----------------------------

    def activity(self, layer: int, s: np.ndarray, order: int) -> tuple[np.ndarray, ...] | None:
        """(a_l, a_l', a_l'') of layer `layer` at s, up to `order`; None for a linear layer,
        whose activity is the state itself (the block solver then aliases it)."""
        raise NotImplementedError(f"{type(self).__name__} has no layered structure")

    def layer_drive(
        self, params: Params, state: State, layer: int, acts: list[np.ndarray] | None = None,
        transposed: Params | None = None,
    ) -> np.ndarray:
        """c_l, the input layer l receives from its neighbours and its bias. `acts`, when
        given, holds each layer's activity, so a solver that keeps them current does not
        recompute them. `transposed`, when given, holds the weights the reads from the layer
        above go through (a crossbar's second, mismatched copy; devices/realised.py)."""
        raise NotImplementedError(f"{type(self).__name__} has no layered structure")

    def block_update(
        self, layer: int, s: np.ndarray, drive: np.ndarray, derivs: tuple | None, spring, omega
    ) -> np.ndarray:
        """Move layer `layer` (in place) towards the minimum of its own energy given its
        neighbours (`drive`), scaled by `omega` (a number or a (rows, 1) column; exact
        solves may ignore it). `derivs` is `activity(layer, s, 2)`; `spring`, on the
        visible layer, a VisibleSpring or None. Returns dE_total/ds_l before the move."""
        raise NotImplementedError(f"{type(self).__name__} has no block update")

    def block_slope(self, layer: int, s: np.ndarray, drive: np.ndarray, derivs: tuple | None, spring) -> np.ndarray:
        """dE_total/ds_l at s from the cached `drive` and `derivs` (a fresh array)."""
        raise NotImplementedError(f"{type(self).__name__} has no block update")

    def hessian_vector(self, params: Params, state: State, direction: State) -> State:
        """d2E/ds2 . direction (exact gradients by implicit differentiation)."""
        raise NotImplementedError

    def param_terms_jvp(self, params: Params, state: State, direction: State) -> Params:
        """d/d eps of param_terms(state + eps * direction): the mixed second derivative."""
        raise NotImplementedError

    # The circuit (method.md section 7) -------------------------------------------------------------

    def circuit_rules(self) -> "CircuitRules":
        """How the compiler builds this energy as a circuit."""
        raise NotImplementedError(f"{type(self).__name__} has no circuit mapping")

    # Helpers ---------------------------------------------------------------------------------------

    def zeros_state(self, batch: int) -> State:
        return [np.zeros((batch, n), dtype=self.dtype) for n in self.sizes]

    @property
    def n_params(self) -> int:
        return int(sum(np.prod(s) for s in self.param_shapes().values()))
