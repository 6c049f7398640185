"""Interactions of a network: the terms of the energy that carry its parameters
(method.md sections 1 and 3).

Each interaction is one row of a network's table: one parameter, the layers its term
touches, and everything about that term (Scellier's energy-based-learning: a network is
its layers and interactions): its energy, its drive into each layer it touches (minus its
gradient in that layer's activity), the change of that drive along a direction (second
derivatives), its local parameter term dE/dtheta (what EP measures) with its derivative
along a direction, and the circuit element that realises it (method.md section 7).

Activities are passed as `acts`, indexed by layer: a_l = the state for a linear layer,
rho(s_l) for an activation layer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from analogep.model.field import Params


class Interaction(ABC):
    """One parameterised term of the energy: a row of a network's table."""

    name: str  # its parameter
    layers: tuple[int, ...]  # the layers its term touches
    # The circuit element realising it (network.circuit_rules): "crossbar" (a row with `pre` and
    # `post` layers, read both ways), "bias" (a row with a `layer`: a current source),
    # "level-bias" (a row with a `layer`: a current source set by the level code), or None.
    circuit: str | None = None

    @abstractmethod
    def shape(self, sizes: tuple[int, ...]) -> tuple[int, ...]:
        """The parameter's shape for layers of these sizes."""

    @abstractmethod
    def init(self, rng: np.random.Generator, sizes: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A fresh parameter (draws from `rng` in table order, so checkpoints reproduce)."""

    @abstractmethod
    def energy(self, params: Params, acts) -> np.ndarray:
        """The term's energy per batch element."""

    @abstractmethod
    def drive(self, layer: int, params: Params, acts, transposed: Params | None = None) -> np.ndarray:
        """Minus the term's gradient in layer `layer`'s activity: its share of that layer's
        drive c_l. `transposed`: the weights read from `layer` towards a lower one go
        through (a crossbar's second, mismatched copy; devices/realised.py)."""

    @abstractmethod
    def drive_jvp(self, layer: int, params: Params, dacts) -> np.ndarray | None:
        """The change of `drive(layer)` when the activities move by `dacts` (None: the drive
        does not depend on the activities)."""

    @abstractmethod
    def param_term(self, acts, weights: np.ndarray | None, batch: int) -> np.ndarray:
        """dE/dtheta averaged over the batch; with `weights` (a (batch, 1) column: the
        per-point weights of the loss), each point's term scaled by its weight."""

    @abstractmethod
    def param_term_jvp(self, acts, dacts, batch: int) -> np.ndarray:
        """d/d eps of `param_term` at activities acts + eps dacts."""

    def source(self, layer: int) -> int:
        """The layer the term's drive into `layer` comes from (`layer` itself for a term of
        one layer). A layer's drive sums its terms in the order of their sources."""
        others = [l for l in self.layers if l != layer]
        return others[0] if others else layer


class Coupling(Interaction):
    """E = -a_post . W a_pre with W (n_post, n_pre): a crossbar between two layers; the
    local term is dE/dW = -a_post a_pre^T. Initialised Xavier-normal with `gain`."""

    circuit = "crossbar"

    def __init__(self, name: str, pre: int, post: int, gain: float):
        if pre == post:
            raise ValueError(f"coupling {name}: pre and post layer are both {pre}")
        self.name, self.pre, self.post, self.gain = name, pre, post, gain
        self.layers = (pre, post)

    def shape(self, sizes):
        return (sizes[self.post], sizes[self.pre])

    def init(self, rng, sizes, dtype):
        shape = self.shape(sizes)
        fan_out, fan_in = shape
        std = self.gain * np.sqrt(2.0 / (fan_in + fan_out))
        return (rng.standard_normal(shape) * std).astype(dtype)

    def energy(self, params, acts):
        return -np.sum(acts[self.post] * (acts[self.pre] @ params[self.name].T), axis=1)

    def drive(self, layer, params, acts, transposed=None):
        if layer == self.post:
            return acts[self.pre] @ params[self.name].T
        return acts[self.post] @ (params if transposed is None else transposed)[self.name]

    def drive_jvp(self, layer, params, dacts):
        if layer == self.post:
            return dacts[self.pre] @ params[self.name].T
        return dacts[self.post] @ params[self.name]

    def param_term(self, acts, weights, batch):
        post = acts[self.post] if weights is None else acts[self.post] * weights
        return -(post.T @ acts[self.pre]) / batch

    def param_term_jvp(self, acts, dacts, batch):
        return -(dacts[self.post].T @ acts[self.pre] + acts[self.post].T @ dacts[self.pre]) / batch


class Bias(Interaction):
    """E = -a_l . b: a bias into one layer (a current source into its neurons); the local
    term is dE/db = -a_l. Initialised at zero."""

    circuit = "bias"

    def __init__(self, name: str, layer: int):
        self.name, self.layer = name, layer
        self.layers = (layer,)

    def shape(self, sizes):
        return (sizes[self.layer],)

    def init(self, rng, sizes, dtype):
        return np.zeros(self.shape(sizes), dtype=dtype)

    def energy(self, params, acts):
        return -(acts[self.layer] @ params[self.name])

    def drive(self, layer, params, acts, transposed=None):
        return params[self.name]

    def drive_jvp(self, layer, params, dacts):
        return None

    def param_term(self, acts, weights, batch):
        if weights is None:
            return -acts[self.layer].mean(axis=0)
        return -(acts[self.layer] * weights).sum(axis=0) / batch

    def param_term_jvp(self, acts, dacts, batch):
        return -dacts[self.layer].mean(axis=0)


class LevelBias(Interaction):
    """E = -a_l . (c^T B): a bias into one layer that depends on the noise level through a
    clamped level code c (K,) driving a K x n_l crossbar B (method.md section 6.3; issue
    20). With a one-hot code it is one bias vector per level, updated only while its level
    is active; with a few Fourier features of log sigma it is defined between levels. The
    code is not a state: the network is conditioned on one code at a time
    (Network.condition; a training batch is solved level by level), so the term is a
    plain bias c^T B while a code is set. The local term dE/dB = -c a_l^T is the bias
    update gated by the code. Initialised at zero, as the biases."""

    circuit = "level-bias"

    def __init__(self, name: str, layer: int, features: int):
        if features < 1:
            raise ValueError(f"level bias {name}: the level code needs at least one feature, got {features}")
        self.name, self.layer, self.features = name, layer, features
        self.layers = (layer,)
        self.code: np.ndarray | None = None  # the level code now applied (Network.condition)

    def _code(self) -> np.ndarray:
        if self.code is None:
            raise ValueError(f"level bias {self.name}: no level code is set (condition the backend on a noise level)")
        return self.code

    def shape(self, sizes):
        return (self.features, sizes[self.layer])

    def init(self, rng, sizes, dtype):
        return np.zeros(self.shape(sizes), dtype=dtype)

    def current(self, params: Params) -> np.ndarray:
        """The bias the code selects, c^T B (what a current source into the layer carries)."""
        p = params[self.name]
        return (self._code().astype(p.dtype) @ p).astype(p.dtype)

    def energy(self, params, acts):
        return -(acts[self.layer] @ self.current(params))

    def drive(self, layer, params, acts, transposed=None):
        return self.current(params)

    def drive_jvp(self, layer, params, dacts):
        return None

    def param_term(self, acts, weights, batch):
        a = acts[self.layer]
        mean = a.mean(axis=0) if weights is None else (a * weights).sum(axis=0) / batch
        return -np.outer(self._code().astype(a.dtype), mean)

    def param_term_jvp(self, acts, dacts, batch):
        return -np.outer(self._code().astype(dacts[self.layer].dtype), dacts[self.layer].mean(axis=0))
