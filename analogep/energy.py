"""The energy-family interface that GradEP, the solvers, the compiler and the measurement use.

A family is a class with `energy`, `state_grad` and `param_terms` (the local dE/dtheta);
nothing else in analogep knows its formulas. A new family is one new file.

States and parameters are plain containers so that solvers, optimizers and checkpoints
stay generic:
- a state is a list of arrays, one (batch, size) array per layer, visible layer first;
- parameters are a dict name -> array, in a fixed order (`param_names`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import numpy as np

State = list[np.ndarray]
Params = dict[str, np.ndarray]


class Activation:
    """rho and its first two derivatives, elementwise.

    `soft_silu` is the reference code's soft clamp of SiLU, clamp*tanh(silu(u)/clamp):
    without it the paper's method blew up within 400-1250 steps (issue 2 measurements).
    """

    def __init__(self, name: str, clamp: float = 10.0):
        if name not in ("silu", "soft_silu"):
            raise ValueError(f"unknown activation {name!r}")
        self.name, self.clamp = name, clamp

    def evaluate(self, u: np.ndarray, order: int) -> tuple[np.ndarray, ...]:
        """rho and its derivatives up to `order`. Hot in every solver (profiled: most of a
        relaxation sweep), so it computes nothing extra and works in place: each fresh
        batch-sized temporary costs more than the arithmetic on it. The logistic is
        1 / (1 + exp(-u)), not the tanh form: numpy's float32 exp is about twice as fast."""
        sig = np.negative(u)
        with np.errstate(over="ignore", under="ignore"):
            np.exp(sig, out=sig)  # inf for u < -88 (float32): sig is then 0, its limit
        sig += 1.0
        np.reciprocal(sig, out=sig)
        f = u * sig
        df = d2f = one_minus = None
        if order >= 1:
            one_minus = 1.0 - sig
            df = u * one_minus
            df += 1.0
            df *= sig  # sig (1 + u (1 - sig))
        if order >= 2:
            d2f = np.multiply(sig, -2.0)
            d2f += 1.0
            d2f *= u
            d2f += 2.0
            d2f *= sig
            d2f *= one_minus  # sig (1 - sig) (2 + u (1 - 2 sig))
        if self.name == "silu":
            return (f, df, d2f)[: order + 1]
        c = self.clamp
        t = np.multiply(f, 1.0 / c, out=f)
        np.tanh(t, out=t)
        value = t * c
        if order == 0:
            return (value,)
        sech2 = np.multiply(t, t, out=one_minus)  # one_minus is not needed any more
        np.subtract(1.0, sech2, out=sech2)
        if order >= 2:
            correction = t * df  # d2 = sech2 (d2f - 2 t df^2 / c)
            correction *= df
            correction *= 2.0 / c
            d2f -= correction
            d2f *= sech2
        df *= sech2
        return (value, df, d2f)[: order + 1]

    def all(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rho, rho', rho'') at u."""
        return self.evaluate(u, 2)

    def __call__(self, u: np.ndarray) -> np.ndarray:
        return self.evaluate(u, 0)[0]

    def deriv(self, u: np.ndarray) -> np.ndarray:
        return self.evaluate(u, 1)[1]


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
    def param_terms(self, params: Params, state: State) -> Params:
        """dE/dtheta at `state`, averaged over the batch: the local measurements EP needs."""

    # Optional structure the fast solver and the exact gradient use --------------------------------

    def layer_drive(
        self, params: Params, state: State, layer: int, acts: list[np.ndarray] | None = None
    ) -> np.ndarray:
        """c_l with dE/ds_l = s_l - rho_l'(s_l) * c_l (layered energies; see relax.fast).
        `acts`, when given, holds each layer's activity a_l (x itself for the visible layer),
        so a solver that keeps them current does not recompute rho."""
        raise NotImplementedError(f"{type(self).__name__} has no layered structure")

    def hessian_vector(self, params: Params, state: State, direction: State) -> State:
        """d2E/ds2 . direction (exact gradients by implicit differentiation)."""
        raise NotImplementedError

    def param_terms_jvp(self, params: Params, state: State, direction: State) -> Params:
        """d/d eps of param_terms(state + eps * direction): the mixed second derivative."""
        raise NotImplementedError

    # Helpers ---------------------------------------------------------------------------------------

    def zeros_state(self, batch: int) -> State:
        return [np.zeros((batch, n), dtype=self.dtype) for n in self.sizes]

    @property
    def n_params(self) -> int:
        return int(sum(np.prod(s) for s in self.param_shapes().values()))


def state_map(fn: Callable[..., np.ndarray], *states: State) -> State:
    """Apply fn layer by layer across states."""
    return [fn(*layers) for layers in zip(*states)]


def max_abs(state: State) -> float:
    """Largest absolute entry over all layers (the residual measure max |dE/ds|)."""
    return float(max(np.max(np.abs(layer)) if layer.size else 0.0 for layer in state))


def params_map(fn: Callable[..., np.ndarray], *params: Params) -> Params:
    """Apply fn tensor by tensor across parameter dicts (keeps the first dict's order)."""
    return {name: fn(*(p[name] for p in params)) for name in params[0]}


def params_norm(params: Params) -> float:
    """Global Euclidean norm over all tensors."""
    return float(np.sqrt(sum(float(np.sum(np.square(v, dtype=np.float64))) for v in params.values())))


def params_dot(a: Params, b: Params) -> float:
    return float(sum(float(np.sum(a[k].astype(np.float64) * b[k])) for k in a))
