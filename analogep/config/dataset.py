"""model.yaml's `data` section: where train.dataset's points come from when it is not digits.

A 2-D benchmark (eight_gaussians, moons, circles, checkerboard, swiss_roll) has a size, a
noise level and a seed; a user's file (train.dataset: file) has a path, an .npz key, a
scaling into the model's range and a held-out share that `evaluate` judges samples
against. analogep/data reads them; the section is left out of a dumped config while it
holds its defaults, so a digits run's config.yaml and checkpoint stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from analogep.config.schema import meta


@dataclass(frozen=True)
class DataSpec:
    """The data source's settings (analogep/data)."""

    size: int = field(default=2000, metadata=meta("points of a 2-D benchmark", ge=2))
    noise: float | None = field(
        default=None, metadata=meta("standard deviation of a benchmark's noise, in model units (null: its own)", ge=0)
    )
    scale: float = field(
        default=1.0,
        metadata=meta("a benchmark's points multiplied by this (1: within about [-1, 1]; noise included)", gt=0),
    )
    seed: int = field(default=0, metadata=meta("seed of a benchmark's points (held-out: a separate draw)", ge=0))
    path: str | None = field(default=None, metadata=meta("a .npy or .npz of an N x D array (train.dataset: file)"))
    key: str | None = field(default=None, metadata=meta("the array's name in a .npz (null: its only array)"))
    scaling: Literal["none", "minmax", "standard"] = field(
        default="none",
        metadata=meta("into the model's range: none (as it is), minmax (each feature onto [-1, 1]) or standard"),
    )
    holdout: float = field(
        default=0.2, metadata=meta("share of a file's rows, the last ones, kept out of training for evaluate", ge=0, lt=1)
    )
