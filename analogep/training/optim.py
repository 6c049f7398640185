"""Optimizers over parameter dicts, with state that checkpoints can save and restore.
"""

from __future__ import annotations

import numpy as np

from analogep.config.sections import OptimizerSpec
from analogep.model.energy import Params
from analogep.model.tensors import params_norm


def clip_by_global_norm(grad: Params, max_norm: float) -> tuple[Params, float]:
    """Scale the gradient so its global norm is at most max_norm (0: no clipping)."""
    norm = params_norm(grad)
    if max_norm > 0 and norm > max_norm:
        scale = max_norm / (norm + 1e-12)
        grad = {k: v * np.asarray(scale, dtype=v.dtype) for k, v in grad.items()}
    return grad, norm


class Adam:
    """Adam (Kingma & Ba 2015); the paper uses beta1 0.9, beta2 0.95, lr 1e-3."""

    def __init__(self, spec: OptimizerSpec, params: Params):
        self.spec = spec
        self.t = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: Params, grad: Params, lr: float | None = None) -> None:
        """Update params in place, at rate `lr` (None: spec.lr; training/schedule.py sets it)."""
        lr = self.spec.lr if lr is None else lr
        b1, b2 = self.spec.betas
        self.t += 1
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for k, g in grad.items():
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            update = lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.spec.eps)
            params[k] -= update.astype(params[k].dtype)

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {"t": np.array(self.t)}
        out.update({f"m/{k}": v for k, v in self.m.items()})
        out.update({f"v/{k}": v for k, v in self.v.items()})
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.t = int(state["t"])
        self.m = {k: state[f"m/{k}"].copy() for k in self.m}
        self.v = {k: state[f"v/{k}"].copy() for k in self.v}


class SGD:
    """Plain gradient descent (for experiments)."""

    def __init__(self, spec: OptimizerSpec, params: Params):
        self.spec = spec

    def step(self, params: Params, grad: Params, lr: float | None = None) -> None:
        lr = self.spec.lr if lr is None else lr
        for k, g in grad.items():
            params[k] -= (lr * g).astype(params[k].dtype)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        pass


def optimizer_state_problem(spec: OptimizerSpec, params: Params, state: dict[str, np.ndarray]) -> str | None:
    """What is wrong with `state` as the state_dict of spec's optimizer for `params`
    (None: nothing): Adam keeps its step count t (an integer >= 0) and the moments m/NAME
    and v/NAME of each parameter's shape; SGD keeps nothing."""
    if spec.name == "sgd":
        return None if not state else f"holds {', '.join(sorted(state))}; SGD keeps no state"
    want = {"t": ()} | {f"{m}/{k}": v.shape for m in ("m", "v") for k, v in params.items()}
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    if missing or extra:
        return "; ".join(x for x in (f"lacks {', '.join(missing)}" if missing else "",
                                     f"holds unknown {', '.join(extra)}" if extra else "") if x) + " (Adam's)"
    shapes = {k: state[k].shape for k in want if state[k].shape != want[k]}
    if shapes:
        return f"has shapes {shapes}, where the parameters need {({k: want[k] for k in shapes})}"
    t = state["t"]
    if t.dtype.kind not in "iu" or int(t) < 0:
        return f"has Adam step count t = {t.item()!r}; must be an integer >= 0"
    kinds = sorted(k for k in want if k != "t" and state[k].dtype.kind != "f")
    if kinds:
        return f"has moments that are not floating point: {', '.join(kinds)}"
    return None


def build_optimizer(spec: OptimizerSpec, params: Params) -> Adam | SGD:
    return {"adam": Adam, "sgd": SGD}[spec.name](spec, params)
