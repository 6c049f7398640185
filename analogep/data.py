"""Datasets: scikit-learn's bundled 8x8 digits, scaled to [-1, 1] (method.md section 4)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

DATASETS = ("digits",)
DIGITS_PIXELS = 64


@lru_cache(maxsize=None)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.data / 16.0 * 2.0 - 1.0).astype(np.float64)
    return images, bunch.target.astype(np.int64)


def load_dataset(name: str = "digits", dtype: np.dtype | type = np.float32) -> np.ndarray:
    """Return the data as an (N, D) array in [-1, 1] (digits: 1797 x 64, x/16*2 - 1)."""
    if name != "digits":
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    images, _ = _digits()
    return images.astype(dtype, copy=True)


def load_digits_labelled() -> tuple[np.ndarray, np.ndarray]:
    """Digits in [-1, 1] (float64) with their labels, for the quality metrics."""
    images, labels = _digits()
    return images.copy(), labels.copy()


def dataset_dim(name: str) -> int:
    """Number of visible units a dataset needs (checked against the model's first size)."""
    if name == "digits":
        return DIGITS_PIXELS
    raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
