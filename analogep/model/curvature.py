"""The curvature of the energy at a state: the Hessian, its slowest mode, minimum or saddle.

The circuit with capacitance C on every neuron node is the gradient flow
C ds/dt = -g0 dE_total/ds (method.md section 7), so near an equilibrium each eigenmode of
the Hessian H of the total energy (the family's E plus the visible springs and nudges)
decays as exp(-g0 lambda_i t / C): the slowest, lambda_min, sets the settling time constant
tau = C / (g0 lambda_min), and lambda_min > 0 is what tells a minimum (where a circuit
settles) from a saddle (where a DC root finder may land as well).

H is built column by column from the family's exact Hessian-vector product
(`EnergyModel.hessian_vector`), batched over the points and chunked so that a
(points, n, n) block stays small.
"""

from __future__ import annotations

import numpy as np

from analogep.model.energy import EnergyModel, Params, State

# Points per Hessian block: 128 x 320 x 320 float64 is 105 MB on the digits model.
CHUNK = 128
# An eigenvalue above -NEGATIVE_TOL counts as >= 0: the Hessian is formed to about 1e-15
# relative, and a minimum at a bifurcation has lambda_min -> 0.
NEGATIVE_TOL = 1e-9


def hessian(
    model: EnergyModel, params: Params, state: State, visible_stiffness: float = 0.0, clamp_visible: bool = False
) -> np.ndarray:
    """(points, n, n) Hessian of E + k/2 |x - anchor|^2 at `state` (float64).

    `visible_stiffness` k: the springs' and nudges' curvature on the visible units
    (lambda, plus beta (alpha lambda)^2 in a nudged phase). With `clamp_visible` the
    visible units are held (the inference circuit): the hidden block alone is returned.
    """
    sizes = model.sizes
    n_points = state[0].shape[0]
    offsets = np.cumsum((0,) + tuple(sizes))
    first = sizes[0] if clamp_visible else 0
    n = offsets[-1] - first
    out = np.empty((n_points, n, n))
    for j in range(n):
        basis = [np.zeros((n_points, k)) for k in sizes]
        layer = int(np.searchsorted(offsets, j + first, side="right") - 1)
        basis[layer][:, j + first - offsets[layer]] = 1.0
        column = model.hessian_vector(params, state, basis)
        if not clamp_visible:
            column[0] = column[0] + visible_stiffness * basis[0]
        out[:, :, j] = np.concatenate(column, axis=1)[:, first:]
    return 0.5 * (out + np.swapaxes(out, 1, 2))


def smallest_eigen(
    model: EnergyModel, params: Params, state: State, visible_stiffness: float = 0.0, clamp_visible: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per point, the smallest Hessian eigenvalue and its unit eigenvector (the slowest mode)."""
    n_points = state[0].shape[0]
    values, vectors = [], []
    for a in range(0, n_points, CHUNK):
        part = [np.asarray(s[a : a + CHUNK], dtype=np.float64) for s in state]
        w, v = np.linalg.eigh(hessian(model, params, part, visible_stiffness, clamp_visible))
        values.append(w[:, 0])
        vectors.append(v[:, :, 0])
    return np.concatenate(values), np.concatenate(vectors)


def smallest_eigenvalues(
    model: EnergyModel, params: Params, state: State, visible_stiffness: float = 0.0, clamp_visible: bool = False
) -> np.ndarray:
    """Per point, the smallest Hessian eigenvalue (no eigenvector: a cheaper solve)."""
    n_points = state[0].shape[0]
    out = [
        np.linalg.eigvalsh(hessian(model, params, [np.asarray(s[a : a + CHUNK], dtype=np.float64) for s in state],
                                   visible_stiffness, clamp_visible))[:, 0]
        for a in range(0, n_points, CHUNK)
    ]
    return np.concatenate(out)


def not_minima(
    model: EnergyModel, params: Params, state: State, visible_stiffness: float = 0.0, clamp_visible: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, smallest eigenvalues) of the points that are not minima of the energy.

    A batched Cholesky factorisation proves a block positive definite at a fraction of an
    eigendecomposition's cost; only a block where it fails gets eigenvalues.
    """
    n_points = state[0].shape[0]
    bad, worst = [], []
    for a in range(0, n_points, CHUNK):
        part = [np.asarray(s[a : a + CHUNK], dtype=np.float64) for s in state]
        h = hessian(model, params, part, visible_stiffness, clamp_visible)
        try:
            np.linalg.cholesky(h)
            continue
        except np.linalg.LinAlgError:
            pass
        lam = np.linalg.eigvalsh(h)[:, 0]
        for i in np.flatnonzero(lam < -NEGATIVE_TOL):
            bad.append(a + int(i))
            worst.append(float(lam[i]))
    return np.asarray(bad, dtype=int), np.asarray(worst)
