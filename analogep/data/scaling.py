"""How a user's array is scaled into the model's range, and back.

x_model = (x - offset) / scale, per feature: `none` (offset 0, scale 1), `minmax` (each
feature onto [-1, 1], the range of the visible nodes, method.md section 4) or `standard`
(zero mean, unit variance). The statistics are taken over the training rows in chunks,
so a memory-mapped file is never copied whole. The scaling is saved with a run
(scaling.json) so that samples can be mapped back to the data's units.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCALINGS = ("none", "minmax", "standard")
SCALING_NAME = "scaling.json"

# Rows per chunk of the statistics pass (bounds its memory to ~CHUNK_ROWS * D * 8 bytes).
CHUNK_ROWS = 65536


@dataclass(frozen=True)
class Scaling:
    """x_model = (x - offset) / scale, per feature."""

    kind: str
    offset: np.ndarray
    scale: np.ndarray

    def apply(self, x: np.ndarray, dtype: np.dtype | type = np.float64) -> np.ndarray:
        """Rows of the data in model units."""
        if self.kind == "none":
            return np.asarray(x, dtype=dtype)
        return ((np.asarray(x, dtype=np.float64) - self.offset) / self.scale).astype(dtype, copy=False)

    def invert(self, x: np.ndarray) -> np.ndarray:
        """Samples in model units mapped back to the data's units (float64)."""
        return np.asarray(x, dtype=np.float64) * self.scale + self.offset

    def to_json(self) -> dict:
        return {"kind": self.kind, "offset": self.offset.tolist(), "scale": self.scale.tolist(),
                "rule": "x_model = (x - offset) / scale"}

    @classmethod
    def from_json(cls, data: dict) -> "Scaling":
        return cls(str(data["kind"]), np.asarray(data["offset"], dtype=np.float64),
                   np.asarray(data["scale"], dtype=np.float64))


def column_stats(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Per-feature min, max, mean, standard deviation over `rows` in chunks, and the number
    of rows holding a non-finite value."""
    d = rows.shape[1]
    lo, hi = np.full(d, np.inf), np.full(d, -np.inf)
    total, total_sq, bad = np.zeros(d), np.zeros(d), 0
    for start in range(0, rows.shape[0], CHUNK_ROWS):
        block = np.asarray(rows[start : start + CHUNK_ROWS], dtype=np.float64)
        finite = np.isfinite(block).all(axis=1)
        bad += int(np.count_nonzero(~finite))
        block = block[finite]
        if len(block):
            lo, hi = np.minimum(lo, block.min(axis=0)), np.maximum(hi, block.max(axis=0))
            total += block.sum(axis=0)
            total_sq += (block * block).sum(axis=0)
    n = max(rows.shape[0] - bad, 1)
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean * mean, 0.0))
    return lo, hi, mean, std, bad


def fit_scaling(kind: str, lo: np.ndarray, hi: np.ndarray, mean: np.ndarray, std: np.ndarray) -> Scaling:
    """The scaling `kind` from the training rows' statistics; a constant feature maps to 0."""
    d = len(lo)
    if kind == "none":
        return Scaling("none", np.zeros(d), np.ones(d))
    if kind == "minmax":
        span = hi - lo
        return Scaling("minmax", (hi + lo) / 2, np.where(span > 0, span / 2, 1.0))
    return Scaling("standard", mean.copy(), np.where(std > 0, std, 1.0))


def write_scaling(folder: str | Path, scaling: Scaling, source: str) -> Path:
    """Save `scaling` as folder/scaling.json (atomically)."""
    from analogep.io import write_json

    path = Path(folder) / SCALING_NAME
    write_json(path, {"source": source, **scaling.to_json()})
    return path


def read_scaling(folder: str | Path) -> Scaling | None:
    """The scaling saved with a run, or None where the run has none (digits, benchmarks)."""
    path = Path(folder) / SCALING_NAME
    if not path.is_file():
        return None
    return Scaling.from_json(json.loads(path.read_text()))


class ScaledRows:
    """A (memory-mapped) N x D array seen in model units, converted a batch at a time:
    `rows[idx]` reads and scales only those rows. Used for files too large to hold
    scaled in memory (data.MAX_IN_MEMORY)."""

    def __init__(self, raw: np.ndarray, scaling: Scaling, dtype: np.dtype | type) -> None:
        self.raw, self.scaling, self.dtype = raw, scaling, np.dtype(dtype)
        self.shape, self.ndim = raw.shape, 2

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        return self.scaling.apply(self.raw[index], self.dtype)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.scaling.apply(self.raw[:], dtype or self.dtype)
