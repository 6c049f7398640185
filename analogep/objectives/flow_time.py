"""Flow matching's time input: a time code into the level-bias crossbar (docs/time-conditioning.md).

The velocity v(x) = -alpha dE/dx of a time-independent energy is at best the time-averaged
field E[x1 - x0 | x_t = x] over t ~ U[0, 1] (docs/results/data.md), not the conditional
field that carries noise to data (Lipman et al. 2023). `train.time_conditioning: time-bias`
gives the energy a time input the way `dsm.conditioning: level-bias` gives it the noise
level (method.md section 6.3; model/interactions.py LevelBias): a code c(t) in R^K, set by
DACs, drives a K x n crossbar into the visible layer and every hidden layer,

    E(s; t) = E(s) - x . c(t)^T B_x - sum_l rho(s_{l+1}) . c(t)^T B_l.

Training draws t from a grid of `train.time_levels` levels t_k = k / (levels - 1), so a
batch splits into level groups, each solved with its code applied (ep/levels.py), as DSM's
noise levels do. The Euler sampler sets the code c(k dt) before step k (flow_sampling.py);
between grid levels the one-hot code is the linear interpolation (hat functions of t), so
the energy is defined at every time the sampler reads; past t = 1 (extended generation) the
code stays at t = 1.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from analogep.backends.base import EquilibriumBackend
from analogep.config.sections import TrainSpec


class TimeCode:
    """The training times and the code of any time, from the train section's time keys."""

    def __init__(self, levels: int, code: str = "onehot", features: int = 4):
        if levels < 2:
            raise ValueError(f"time levels: at least 2, got {levels}")
        self.levels, self.code, self.features = levels, code, features
        self.grid = np.linspace(0.0, 1.0, levels)  # t_k = k / (levels - 1)

    @classmethod
    def from_train(cls, train: TrainSpec) -> "TimeCode | None":
        """The time code of train.time_conditioning; None for a time-independent energy."""
        if not train.time_code_size:
            return None
        return cls(train.time_levels, train.time_code, train.time_features)

    @property
    def size(self) -> int:
        """K, the entries of the code (model.level_features)."""
        return self.levels if self.code == "onehot" else self.features

    def __call__(self, t: float) -> np.ndarray:
        """c(t), (K,): onehot, hat functions of t on the grid (exactly one-hot at a level,
        linear between two); fourier, cos(pi k t), k = 0..K-1. t is clipped to [0, 1]."""
        t = float(np.clip(t, 0.0, 1.0))
        if self.code == "fourier":
            return np.cos(np.pi * np.arange(self.features) * t)
        code = np.zeros(self.levels)
        pos = t * (self.levels - 1)
        if abs(pos - round(pos)) < 1e-9:
            code[int(round(pos))] = 1.0
            return code
        i = int(np.floor(pos))
        code[i], code[i + 1] = i + 1 - pos, pos - i
        return code

    @property
    def codes(self) -> np.ndarray:
        """(levels, K) the code of each training time."""
        return np.stack([self(t) for t in self.grid])


def time_condition(time: TimeCode | None, backend: EquilibriumBackend) -> Callable[[float], None] | None:
    """What the Euler sampler calls with t before each step: set the backend's time code
    (a DAC write); None for a time-independent energy."""
    if time is None:
        return None

    def condition(t: float) -> None:
        backend.condition(time(t))

    return condition
