"""The paper's layered Hopfield-like energy (method.md section 1; Gower 2026, FlowEqProp).

    E(s) = sum_l 1/2 |s_l|^2 - b_x . x - sum_l rho(s_{l+1}) . (W_l a_l + b_l)

with s_0 = x the visible units, a_0 = x (x enters linearly) and a_l = rho(s_l) for the
hidden layers. Parameters: b_x, then W_l (n_{l+1} x n_l) and b_l for each layer pair.

With `model.skip_rank` k > 0 a skip coupling joins the visible layer to the top hidden
layer h_L through k bottleneck neurons z, one more hidden layer of the state (the last,
index L+1), coupled to x by the crossbar U (k x n_0) and to h_L by V (k x n_L):

    E_skip(s) = E(s) + 1/2 |z|^2 - rho(z) . (U x + V rho(h_L) + b_z)

so x and h_L interact through a rank-k channel with O((n_0 + n_L) k) couplings instead of
the n_0 n_L of a full skip matrix (method.md section 1; De 2026, arXiv 2604.14332). The
layer graph then has the cycle x - h_1 - ... - h_L - z - x; every formula below is
still "each layer sees the activities of its neighbours".
"""

from __future__ import annotations

import numpy as np

from analogep.config.sections import ModelSpec
from analogep.model.activations import Activation
from analogep.model.energy import CircuitRules, EnergyModel, Params, State


class HopfieldEnergy(EnergyModel):
    """Layered energy with quadratic leaks, visible units linear, hidden units through rho."""

    def __init__(self, spec: ModelSpec):
        self.dtype = np.dtype(spec.dtype)
        self.rho = Activation(spec.activation, spec.clamp)
        self.init_gain = spec.init_gain
        self.n_layers = len(spec.sizes) - 1  # number of weight matrices of the chain
        self.skip_rank = spec.skip_rank
        # The bottleneck of the skip coupling is the state's last layer (index L + 1).
        self.sizes = tuple(spec.sizes) + ((self.skip_rank,) if self.skip_rank else ())
        self.z = self.n_layers + 1 if self.skip_rank else None

    # Parameters ----------------------------------------------------------------------------------

    @property
    def param_names(self) -> tuple[str, ...]:
        names = ["b_x"]
        for l in range(self.n_layers):
            names += [f"W{l}", f"b{l}"]
        if self.skip_rank:
            names += ["U", "V", "b_z"]
        return tuple(names)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {"b_x": (self.sizes[0],)}
        for l in range(self.n_layers):
            shapes[f"W{l}"] = (self.sizes[l + 1], self.sizes[l])
            shapes[f"b{l}"] = (self.sizes[l + 1],)
        if self.skip_rank:
            k = self.skip_rank
            shapes.update({"U": (k, self.sizes[0]), "V": (k, self.sizes[self.n_layers]), "b_z": (k,)})
        return shapes

    def init_params(self, rng: np.random.Generator) -> Params:
        """Xavier-normal weights with the configured gain, zero biases (paper: gain 0.5); the
        skip crossbars U and V too (at zero they would stay there: their EP terms are
        products with rho(z), which is 0 while nothing drives z)."""
        params: Params = {}
        for name, shape in self.param_shapes().items():
            if len(shape) == 2:
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
        return [self.layer_drive(params, [], layer, acts) for layer in range(len(self.sizes))]

    def energy(self, params: Params, state: State) -> np.ndarray:
        acts, _, _ = self._activities(state, order=0)
        e = sum(0.5 * np.sum(s * s, axis=1) for s in state) - state[0] @ params["b_x"]
        for l in range(self.n_layers):
            e = e - np.sum(acts[l + 1] * (acts[l] @ params[f"W{l}"].T + params[f"b{l}"]), axis=1)
        if self.skip_rank:
            z, top = self.z, self.n_layers
            e = e - np.sum(acts[z] * (acts[0] @ params["U"].T + acts[top] @ params["V"].T + params["b_z"]), axis=1)
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

        if layer == self.z:
            return act(0) @ params["U"].T + act(L) @ params["V"].T + params["b_z"]
        if layer == 0:
            c = params["b_x"] + act(1) @ above["W0"]
            return c + act(self.z) @ above["U"] if self.skip_rank else c
        c = act(layer - 1) @ params[f"W{layer - 1}"].T + params[f"b{layer - 1}"]
        if layer < L:
            c = c + act(layer + 1) @ above[f"W{layer}"]
        elif self.skip_rank:
            c = c + act(self.z) @ above["V"]
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
            if self.skip_rank:
                post = acts[self.z] * w
                terms.update(self._skip_terms(acts, post, batch))
            return terms
        terms = {"b_x": -state[0].mean(axis=0)}
        for l in range(self.n_layers):
            terms[f"W{l}"] = -(acts[l + 1].T @ acts[l]) / batch
            terms[f"b{l}"] = -acts[l + 1].mean(axis=0)
        if self.skip_rank:
            terms.update(self._skip_terms(acts, acts[self.z], batch))
        return terms

    def _skip_terms(self, acts: list[np.ndarray], post: np.ndarray, batch: int) -> Params:
        """dE/dU = -rho(z) x^T, dE/dV = -rho(z) rho(h_L)^T, dE/db_z = -rho(z): outer products
        of the activities at the two ends of each skip crossbar, as for every W_l."""
        return {
            "U": -(post.T @ acts[0]) / batch,
            "V": -(post.T @ acts[self.n_layers]) / batch,
            "b_z": -post.sum(axis=0) / batch,
        }

    # Block coordinate descent (solvers/fast.py) ---------------------------------------------------

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
        (circuits/analogep.lib); W_l couples layer l to l+1; b_x and b_l are bias currents.
        The skip bottleneck z is a hidden layer like the others, with the crossbars U (from
        x) and V (from h_L) and bias currents b_z: (n_0 + n_L) k more weights."""
        hidden = ("hidden_soft_silu", {"clamp": self.rho.clamp}) if self.rho.name == "soft_silu" else ("hidden_silu", {})
        couplings = tuple((f"W{l}", l, l + 1) for l in range(self.n_layers))
        biases = (("b_x", 0),) + tuple((f"b{l}", l + 1) for l in range(self.n_layers))
        if self.skip_rank:
            couplings += (("U", 0, self.z), ("V", self.n_layers, self.z))
            biases += (("b_z", self.z),)
        return CircuitRules(cells=(("visible", {}),) + (hidden,) * (len(self.sizes) - 1), couplings=couplings, biases=biases)

    def hessian_vector(self, params: Params, state: State, direction: State) -> State:
        acts, d1, d2 = self._activities(state)
        drives = self._drives(params, acts)
        L = self.n_layers
        dacts = [direction[0]] + [d * w for d, w in zip(d1[1:], direction[1:])]
        out = []
        for l in range(len(self.sizes)):
            dc = np.zeros_like(direction[l])
            if l == self.z:
                dc = dc + dacts[0] @ params["U"].T + dacts[L] @ params["V"].T
            else:
                if l >= 1:
                    dc = dc + dacts[l - 1] @ params[f"W{l - 1}"].T
                if l < L:
                    dc = dc + dacts[l + 1] @ params[f"W{l}"]
                if self.skip_rank and l in (0, L):
                    dc = dc + dacts[self.z] @ params["U" if l == 0 else "V"]
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
        if self.skip_rank:
            z, top = self.z, self.n_layers
            out["U"] = -(dacts[z].T @ acts[0] + acts[z].T @ dacts[0]) / batch
            out["V"] = -(dacts[z].T @ acts[top] + acts[z].T @ dacts[top]) / batch
            out["b_z"] = -dacts[z].mean(axis=0)
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
