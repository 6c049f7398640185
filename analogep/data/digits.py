"""scikit-learn's bundled 8x8 digits, scaled to [-1, 1] (method.md section 4)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

DIGITS_PIXELS = 64


@lru_cache(maxsize=None)
def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 images as x/16*2 - 1 (float64) and their labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.data / 16.0 * 2.0 - 1.0).astype(np.float64)
    return images, bunch.target.astype(np.int64)
