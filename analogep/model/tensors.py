"""Arithmetic over states (lists of layer arrays) and parameter dicts, for solvers,
optimizers and gradient checks that must not know a family's tensors."""

from __future__ import annotations

from typing import Callable

import numpy as np

from analogep.model.field import Params, State


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
