"""The paper's layered Hopfield-like energy (method.md section 1; Gower 2026, FlowEqProp).

    E(s) = sum_l 1/2 |s_l|^2 - b_x . x - sum_l rho(s_{l+1}) . (W_l a_l + b_l)

with s_0 = x the visible units, a_0 = x (x enters linearly) and a_l = rho(s_l) for the
hidden layers. Parameters: b_x, then W_l (n_{l+1} x n_l) and b_l for each layer pair.
"""

from __future__ import annotations

import numpy as np

from analogep.config.spec import ModelSpec
from analogep.model.activations import Activation
from analogep.model.energy import CircuitRules, EnergyModel, Params, State


class HopfieldEnergy(EnergyModel):
    """Layered energy with quadratic leaks, visible units linear, hidden units through rho."""

    def __init__(self, spec: ModelSpec):
        self.sizes = tuple(spec.sizes)
        self.dtype = np.dtype(spec.dtype)
        self.rho = Activation(spec.activation, spec.clamp)
        self.init_gain = spec.init_gain
        self.n_layers = len(self.sizes) - 1  # number of weight matrices

    # Parameters ----------------------------------------------------------------------------------

    @property
    def param_names(self) -> tuple[str, ...]:
        names = ["b_x"]
        for l in range(self.n_layers):
            names += [f"W{l}", f"b{l}"]
        return tuple(names)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {"b_x": (self.sizes[0],)}
        for l in range(self.n_layers):
            shapes[f"W{l}"] = (self.sizes[l + 1], self.sizes[l])
            shapes[f"b{l}"] = (self.sizes[l + 1],)
        return shapes

    def init_params(self, rng: np.random.Generator) -> Params:
        """Xavier-normal weights with the configured gain, zero biases (paper: gain 0.5)."""
        params: Params = {}
        for name, shape in self.param_shapes().items():
            if name.startswith("W"):
                fan_out, fan_in = shape
                std = self.init_gain * np.sqrt(2.0 / (fan_in + fan_out))
                params[name] = (rng.standard_normal(shape) * std).astype(self.dtype)
            else:
                params[name] = np.zeros(shape, dtype=self.dtype)
        return params

    # Energy and its derivatives ------------------------------------------------------------------

    def _activities(self, state: State, order: int = 2) -> tuple[list[np.ndarray], list, list]:
        """a_l, a_l', a_l'' per layer (the visible layer is linear: a_0 = x); derivatives
        above `order` are None (not computed: rho is the hot spot of every solver)."""
        acts, d1, d2 = [state[0]], [None], [None]
        for s in state[1:]:
            values = self.rho.evaluate(s, order) + (None,) * (2 - order)
            acts.append(values[0])
            d1.append(values[1])
            d2.append(values[2])
        return acts, d1, d2

    def _drives(self, params: Params, acts: list[np.ndarray]) -> list[np.ndarray]:
        """c_l for every layer, so that dE/ds_l = s_l - a_l' c_l."""
        return [self.layer_drive(params, [], layer, acts) for layer in range(self.n_layers + 1)]

    def energy(self, params: Params, state: State) -> np.ndarray:
        acts, _, _ = self._activities(state, order=0)
        e = sum(0.5 * np.sum(s * s, axis=1) for s in state) - state[0] @ params["b_x"]
        for l in range(self.n_layers):
            e = e - np.sum(acts[l + 1] * (acts[l] @ params[f"W{l}"].T + params[f"b{l}"]), axis=1)
        return e

    def state_grad(self, params: Params, state: State) -> State:
        acts, d1, _ = self._activities(state, order=1)
        drives = self._drives(params, acts)
        grads = [state[0] - drives[0]]
        grads += [s - d * c for s, d, c in zip(state[1:], d1[1:], drives[1:])]
        return grads

    def layer_drive(
        self, params: Params, state: State, layer: int, acts: list[np.ndarray] | None = None,
        transposed: Params | None = None,
    ) -> np.ndarray:
        L = self.n_layers
        above = params if transposed is None else transposed

        def act(l: int) -> np.ndarray:
            if acts is not None:
                return acts[l]
            return state[0] if l == 0 else self.rho(state[l])

        if layer == 0:
            return params["b_x"] + act(1) @ above["W0"]
        c = act(layer - 1) @ params[f"W{layer - 1}"].T + params[f"b{layer - 1}"]
        if layer < L:
            c = c + act(layer + 1) @ above[f"W{layer}"]
        return c

    def param_terms(self, params: Params, state: State, weights: np.ndarray | None = None) -> Params:
        """Local dE/dtheta (method.md section 3): each weight's term is -a_post a_pre^T."""
        acts, _, _ = self._activities(state, order=0)
        batch = state[0].shape[0]
        if weights is not None:  # scale each point's post-synaptic side: its terms scale with it
            w = np.asarray(weights, dtype=self.dtype)[:, None]
            terms: Params = {"b_x": -(state[0] * w).sum(axis=0) / batch}
            for l in range(self.n_layers):
                post = acts[l + 1] * w
                terms[f"W{l}"] = -(post.T @ acts[l]) / batch
                terms[f"b{l}"] = -post.sum(axis=0) / batch
            return terms
        terms = {"b_x": -state[0].mean(axis=0)}
        for l in range(self.n_layers):
            terms[f"W{l}"] = -(acts[l + 1].T @ acts[l]) / batch
            terms[f"b{l}"] = -acts[l + 1].mean(axis=0)
        return terms

    # Block coordinate descent (solvers/block.py) ---------------------------------------------------

    def activity(self, layer: int, s: np.ndarray, order: int) -> tuple[np.ndarray, ...] | None:
        """The visible layer is linear (None); hidden layers go through rho."""
        return None if layer == 0 else self.rho.evaluate(s, order)

    def block_update(self, layer, s, drive, derivs, spring, omega) -> np.ndarray:
        """Visible: given h1 the visible energy 1/2 |x|^2 - c.x plus the spring is quadratic
        and is solved exactly (omega unused). Hidden: one safeguarded Newton step per unit
        on 1/2 s^2 - c rho(s), scaled by omega."""
        if layer == 0:
            k = 0.0 if spring is None else spring.stiffness
            pull = drive if spring is None else drive + spring.pull
            slope = (1.0 + k) * s - pull
            s[...] = pull / (1.0 + k)
            return slope
        _, d1, d2 = derivs
        return _newton_move(s, drive, d1, d2, omega)

    def block_slope(self, layer, s, drive, derivs, spring) -> np.ndarray:
        if layer == 0:
            k = 0.0 if spring is None else spring.stiffness
            pull = drive if spring is None else drive + spring.pull
            return (1.0 + k) * s - pull
        slope = drive * derivs[1]
        np.subtract(s, slope, out=slope)
        return slope

    # The circuit -----------------------------------------------------------------------------------

    def circuit_rules(self) -> CircuitRules:
        """Visible neurons are linear cells; hidden neurons the rho cell of the library
        (circuits/analogep.lib); W_l couples layer l to l+1; b_x and b_l are bias currents."""
        hidden = ("hidden_soft_silu", {"clamp": self.rho.clamp}) if self.rho.name == "soft_silu" else ("hidden_silu", {})
        return CircuitRules(
            cells=(("visible", {}),) + (hidden,) * self.n_layers,
            couplings=tuple((f"W{l}", l, l + 1) for l in range(self.n_layers)),
            biases=(("b_x", 0),) + tuple((f"b{l}", l + 1) for l in range(self.n_layers)),
        )

    def hessian_vector(self, params: Params, state: State, direction: State) -> State:
        acts, d1, d2 = self._activities(state)
        drives = self._drives(params, acts)
        L = self.n_layers
        dacts = [direction[0]] + [d * w for d, w in zip(d1[1:], direction[1:])]
        out = []
        for l in range(L + 1):
            dc = np.zeros_like(direction[l])
            if l >= 1:
                dc = dc + dacts[l - 1] @ params[f"W{l - 1}"].T
            if l < L:
                dc = dc + dacts[l + 1] @ params[f"W{l}"]
            if l == 0:
                out.append(direction[0] - dc)
            else:
                out.append(direction[l] - d2[l] * direction[l] * drives[l] - d1[l] * dc)
        return out

    def param_terms_jvp(self, params: Params, state: State, direction: State) -> Params:
        acts, d1, _ = self._activities(state, order=1)
        batch = state[0].shape[0]
        dacts = [direction[0]] + [d * w for d, w in zip(d1[1:], direction[1:])]
        out: Params = {"b_x": -direction[0].mean(axis=0)}
        for l in range(self.n_layers):
            out[f"W{l}"] = -(dacts[l + 1].T @ acts[l] + acts[l + 1].T @ dacts[l]) / batch
            out[f"b{l}"] = -dacts[l + 1].mean(axis=0)
        return out


# Safeguards of the per-unit Newton step. The unit energy 1/2 s^2 - c rho(s) is not convex
# where c rho''(s) > 1, so the curvature 1 - c rho'' is floored to keep the step a descent
# direction; and since rho saturates (soft clamp), a step from a small curvature could land
# far outside the region the quadratic model describes, so each move is capped (state units).
MIN_CURVATURE = 0.3
MAX_MOVE = 2.0


def _newton_move(s: np.ndarray, drive: np.ndarray, d1: np.ndarray, d2: np.ndarray, omega) -> np.ndarray:
    """One safeguarded Newton step on 1/2 s^2 - c rho(s) per unit, scaled by omega (a number
    or a (rows, 1) column), in place. d1, d2 are rho', rho'' at s. Returns dE/ds at s."""
    slope = drive * d1
    np.subtract(s, slope, out=slope)
    move = drive * d2
    np.subtract(1.0, move, out=move)
    np.maximum(move, MIN_CURVATURE, out=move)
    np.divide(slope, move, out=move)
    np.clip(move, -MAX_MOVE, MAX_MOVE, out=move)
    move *= omega
    s -= move
    return slope
