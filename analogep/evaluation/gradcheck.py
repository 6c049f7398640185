"""Is the EP gradient the gradient? Compare it with the exact gradient of the same loss.

Loss: L(theta) = mean over the batch of w/2 |v - u|^2, v = alpha lambda (x* - x_t), where
s* = (x*, h*) is the free (spring-clamped) equilibrium, u the objective's target and w its
per-point weight (TrainingBatch.weight; 1 when None, as for flow matching). Exact gradient by implicit
differentiation of dE_spring/ds (s*, theta) = 0 (e.g. Scellier & Bengio 2017, appendix):

    dL/dtheta = -(d2E/dtheta ds) H^{-1} dL/ds,   H = d2E_spring/ds2 at s*,

computed in float64 with the model's analytic Hessian-vector products, one dense
(n x n) solve per training point. Finite differences of L along random parameter
directions (`directional_fd`) check the implicit gradient itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from analogep.backends.numpy_backend import NumpyBackend
from analogep.backends.spring import velocity
from analogep.config.sections import GradEPSpec, RelaxSpec
from analogep.config.spec import Spec
from analogep.ep.levels import mean_by_level
from analogep.ep.measurement import ep_gradient
from analogep.ep.phases import run_phases
from analogep.errors import AnalogepError
from analogep.model.energy import EnergyModel, Params
from analogep.model.factory import build_energy
from analogep.model.tensors import params_dot, params_map, params_norm
from analogep.objectives.base import TrainingBatch

# Relaxation used for reference equilibria: float64, to (near) machine precision.
REFERENCE_RELAX = RelaxSpec(solver="fast", free_steps=5000, nudge_steps=5000, tol=1e-11)


REFERENCE_RESIDUAL = 1e-8


def as_float64(spec: Spec, params: Params) -> tuple[EnergyModel, Params]:
    model = build_energy(dataclasses.replace(spec.model, dtype="float64"))
    return model, {k: v.astype(np.float64) for k, v in params.items()}


def free_equilibrium(model, params, x_t, gradep: GradEPSpec, relax_spec: RelaxSpec = REFERENCE_RELAX):
    """The reference free equilibrium; refuses to go on from one that did not converge."""
    backend = NumpyBackend(model, gradep, relax_spec)
    backend.program(params)
    eq = backend.equilibrium(x_t, None, None)
    if not eq.residual <= REFERENCE_RESIDUAL:
        raise AnalogepError(
            f"gradcheck: the reference free equilibrium did not converge (max |dE/ds| = {eq.residual:.2g} "
            f"after {eq.iterations} sweeps, need {REFERENCE_RESIDUAL:g}); the exact gradient would be wrong"
        )
    return eq


def loss_at(model, params, batch: TrainingBatch, gradep: GradEPSpec) -> float:
    """The loss EP descends: mean over the batch of w/2 sum over pixels (v - u)^2."""
    eq = free_equilibrium(model, params, batch.x_t.astype(np.float64), gradep)
    v = velocity(eq.state[0], batch.x_t, gradep)
    per_point = np.sum((v - batch.target) ** 2, axis=1)
    if batch.weight is not None:
        per_point = batch.weight.astype(np.float64) * per_point
    return float(0.5 * np.mean(per_point))


def exact_gradient(model: EnergyModel, params: Params, batch: TrainingBatch, gradep: GradEPSpec) -> Params:
    """dL/dtheta by implicit differentiation (float64 model and params expected); with a
    level-dependent energy, each level's points at that level (ep/levels.py)."""
    return mean_by_level(model, batch, lambda part: _exact_gradient(model, params, part, gradep))


def _exact_gradient(model: EnergyModel, params: Params, batch: TrainingBatch, gradep: GradEPSpec) -> Params:
    x_t = batch.x_t.astype(np.float64)
    eq = free_equilibrium(model, params, x_t, gradep)
    state, sizes = eq.state, model.sizes
    n, batch_size = sum(sizes), x_t.shape[0]
    offsets = np.cumsum((0,) + tuple(sizes))

    def split(flat: np.ndarray) -> list[np.ndarray]:
        return [flat[:, offsets[i] : offsets[i + 1]] for i in range(len(sizes))]

    hessian = np.empty((batch_size, n, n))
    for j in range(n):
        basis = np.zeros((batch_size, n))
        basis[:, j] = 1.0
        column = model.hessian_vector(params, state, split(basis))
        column[0] = column[0] + gradep.lam * basis[:, : sizes[0]]  # the spring's curvature
        hessian[:, :, j] = np.concatenate(column, axis=1)
    v = velocity(state[0], x_t, gradep)
    dl_ds = np.zeros((batch_size, n))
    dl_ds[:, : sizes[0]] = gradep.alpha * gradep.lam * (v - batch.target)
    if batch.weight is not None:
        dl_ds *= batch.weight.astype(np.float64)[:, None]
    w = np.linalg.solve(hessian, dl_ds[:, :, None])[:, :, 0]
    return params_map(lambda g: -g, model.param_terms_jvp(params, state, split(w)))


def directional_fd(model, params, batch, gradep, direction: Params, eps: float = 1e-5) -> float:
    """Central finite difference of the loss along a parameter direction."""
    plus = params_map(lambda p, d: p + eps * d, params, direction)
    minus = params_map(lambda p, d: p - eps * d, params, direction)
    return (loss_at(model, plus, batch, gradep) - loss_at(model, minus, batch, gradep)) / (2 * eps)


def ep_estimate(model, params, batch: TrainingBatch, gradep: GradEPSpec, relax_spec: RelaxSpec) -> Params:
    """The EP gradient exactly as training measures it, for the given relaxation settings
    (level by level with a level-dependent energy, as training does)."""
    return mean_by_level(model, batch, lambda part: _ep_estimate(model, params, part, gradep, relax_spec))


def _ep_estimate(model, params, batch: TrainingBatch, gradep: GradEPSpec, relax_spec: RelaxSpec) -> Params:
    backend = NumpyBackend(model, gradep, relax_spec)
    backend.program(params)
    x_t = batch.x_t.astype(model.dtype)
    target = batch.target.astype(model.dtype)
    weight = None if batch.weight is None else batch.weight.astype(model.dtype)
    return ep_gradient(model, params, run_phases(backend, x_t, target, gradep), weights=weight)


@dataclass
class Comparison:
    """How close an estimate is to the reference, overall and per tensor."""

    cosine: float
    rel_error: float
    per_tensor: dict[str, dict[str, float]]

    def to_dict(self) -> dict:
        return {"cosine": self.cosine, "rel_error": self.rel_error, "per_tensor": self.per_tensor}


def compare(estimate: Params, reference: Params) -> Comparison:
    def stats(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
        nb = np.linalg.norm(b)
        cos = float(a @ b / (np.linalg.norm(a) * nb + 1e-300))
        return cos, float(np.linalg.norm(a - b) / (nb + 1e-300))

    per = {}
    for k in reference:
        c, r = stats(estimate[k], reference[k])
        per[k] = {"cosine": c, "rel_error": r}
    diff = params_map(lambda a, b: a.astype(np.float64) - b, estimate, reference)
    cos = params_dot(estimate, reference) / (params_norm(estimate) * params_norm(reference) + 1e-300)
    return Comparison(float(cos), params_norm(diff) / (params_norm(reference) + 1e-300), per)


def beta_sweep(
    model: EnergyModel, params: Params, batch: TrainingBatch, gradep: GradEPSpec, betas: np.ndarray
) -> dict[str, list[float]]:
    """Relative error of two- and three-phase EP vs the exact gradient, per beta (float64,
    tight relaxation: what is left is the method's bias, O(beta) and O(beta^2))."""
    exact = exact_gradient(model, params, batch, gradep)
    errors: dict[str, list[float]] = {"two-phase": [], "three-phase": []}
    for beta in betas:
        for label, phases in (("two-phase", 2), ("three-phase", 3)):
            g = dataclasses.replace(gradep, beta=float(beta), phases=phases)
            errors[label].append(compare(ep_estimate(model, params, batch, g, REFERENCE_RELAX), exact).rel_error)
    return errors
