"""Flow matching with minibatch optimal-transport coupling (method.md section 4).

Lipman et al. 2023 (conditional flow matching): x_t = (1 - t) x0 + t x1, target
u = x1 - x0. Tong et al. 2024: pair noise and data by the exact OT plan of the batch,
which for equal uniform batches is an assignment problem (scipy's
linear_sum_assignment, Crouse 2016).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass
class FlowBatch:
    """One batch of flow-matching training points."""

    x0: np.ndarray  # noise
    x1: np.ndarray  # data, reordered by the coupling
    t: np.ndarray  # (batch, 1)
    x_t: np.ndarray
    u: np.ndarray  # target velocity x1 - x0


def ot_pairing(x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """Column order of x1 minimising sum_i |x0_i - x1_perm(i)|^2 (exact assignment).

    |a - b|^2 = |a|^2 + |b|^2 - 2 a.b and the norms add a constant to every complete
    assignment, so maximising sum a.b gives the same plan with one matrix product.
    """
    scores = x0.astype(np.float64) @ x1.astype(np.float64).T
    _, cols = linear_sum_assignment(scores, maximize=True)
    return cols


def sample_flow_batch(data: np.ndarray, batch: int, rng: np.random.Generator, ot: bool) -> FlowBatch:
    """Draw data (the whole set when batch >= N), noise and times; couple; interpolate."""
    n, dim = data.shape
    x1 = data if batch >= n else data[rng.choice(n, size=batch, replace=False)]
    x0 = rng.standard_normal(x1.shape).astype(data.dtype)
    if ot:
        x1 = x1[ot_pairing(x0, x1)]
    t = rng.random((x1.shape[0], 1)).astype(data.dtype)
    x_t = (1 - t) * x0 + t * x1
    return FlowBatch(x0=x0, x1=x1, t=t, x_t=x_t, u=x1 - x0)
