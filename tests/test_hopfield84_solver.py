"""hopfield84's per-unit solve warm-started from the block solver's state (benchmarks/block_solver.py):
any start gives the same exact root as the cold solve, in both dtypes."""

from __future__ import annotations

import numpy as np
import pytest

from analogep.model.families import hopfield84 as h84


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_warm_start_reaches_the_cold_root_from_any_guess(dtype):
    layer = h84.DiodeUnits(5)
    rng = np.random.default_rng(0)
    c = (3.0 * rng.standard_normal((64, 5))).astype(dtype)
    c[0] = [-50.0, -1e-6, 0.0, 1e-6, 50.0]
    cold = layer.transfer(c)
    eps = np.finfo(dtype).eps
    # the cold root solves the node: |g^{-1}(s) - c| within a few eps of the drive, scaled by the slope
    wide = cold.astype(np.float64)
    assert np.max(np.abs(layer.inverse(wide) - c) / layer.curvature(wide)) < 64 * eps
    guesses = {
        "near": cold + dtype(1e-3) * rng.standard_normal(c.shape).astype(dtype),
        "wrong sign": -cold,
        "far above": np.full_like(c, 3.0) * np.sign(c),
        "zero": np.zeros_like(c),
    }
    for name, start in guesses.items():
        warm = layer.transfer(c, start=start)
        assert warm.dtype == c.dtype
        np.testing.assert_allclose(warm, cold, rtol=0, atol=16 * eps, err_msg=name)
    assert np.all(np.sign(cold) == np.sign(c))  # odd, increasing: the sign of the drive


def test_block_update_is_the_exact_solve_moved_by_omega():
    layer = h84.DiodeUnits(4)
    rng = np.random.default_rng(1)
    s = 0.3 * rng.standard_normal((3, 4))
    drive = 2.0 * rng.standard_normal((3, 4))
    before = s.copy()
    slope = layer.block_update(s, drive, None, None, 1.4)
    np.testing.assert_allclose(slope, layer.inverse(before) - drive)
    np.testing.assert_allclose(s, before + 1.4 * (layer.transfer(drive) - before), atol=1e-15)
