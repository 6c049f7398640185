"""One GradEP training step: a training batch -> phases -> local measurement -> gradient
(method.md section 3), with the trust checks of ep/trust.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from analogep.backends.base import EquilibriumBackend
from analogep.backends.spring import velocity
from analogep.config.sections import GradEPSpec, TrainSpec
from analogep.ep.levels import gradient_by_level, phases_by_level
from analogep.ep.measurement import read_phases
from analogep.ep.phases import PhaseResult
from analogep.ep.trust import diagnose, trusted_points
from analogep.model.energy import EnergyModel, Params
from analogep.model.tensors import params_norm

if TYPE_CHECKING:  # annotations only: objectives sit above ep
    from analogep.objectives.base import Objective, TrainingBatch


@dataclass
class StepResult:
    """What one step measured; `trouble` is empty when the gradient can be trusted."""

    grad: Params
    loss: float
    v: np.ndarray
    phases: PhaseResult
    keep: np.ndarray  # training points whose equilibria passed the checks
    metrics: dict = field(default_factory=dict)
    trouble: list[str] = field(default_factory=list)


def gradep_step(
    model: EnergyModel,
    backend: EquilibriumBackend,
    params: Params,
    batch: "TrainingBatch",
    objective: "Objective",
    gradep: GradEPSpec,
    trust: TrainSpec | None = None,
) -> StepResult:
    """Run the phases on `batch` (the backend programmed with `params`) and measure the EP
    gradient of the objective's loss over the trusted points; more than
    `trust.max_dropped` (a fraction) dropped points is trouble. Without `trust`, every
    point is kept and no step is refused."""
    max_residual, max_asymmetry, max_dropped = (
        (np.inf, 0.5, 1.0) if trust is None else (trust.max_residual, trust.max_asymmetry, trust.max_dropped)
    )
    phases = phases_by_level(backend, batch, gradep)  # one pass, or level by level (ep/levels.py)
    # What the circuit's measurement chain reads (exact without devices); the trust checks
    # judge the equilibria themselves.
    seen, x_applied = read_phases(phases, batch.x_t, backend.readout)
    v = velocity(seen.free.state[0], x_applied, gradep)
    keep, asym = trusted_points(phases, max_residual, max_asymmetry)
    grad = gradient_by_level(model, params, seen, keep, batch, batch.weight) if keep.any() else None
    x_free = phases.free.state[0]
    dropped = int(keep.size - keep.sum())
    metrics = {
        "loss": objective.loss(v, batch),
        "grad_norm": params_norm(grad) if grad is not None else float("nan"),
        "v_norm": float(np.mean(np.linalg.norm(v, axis=1))),
        "u_norm": float(np.mean(np.linalg.norm(batch.target, axis=1))),
        "free_disp": float(np.mean(np.linalg.norm(x_free - batch.x_t, axis=1))),
        "nudge_disp": float(np.mean(np.linalg.norm(phases.plus.state[0] - x_free, axis=1))),
        "nudge_asym": float(np.max(asym)),
        "dropped": dropped,
        "residual_free": phases.free.residual,
        "residual_nudge": max(e.residual for e in phases.all[1:]),
        "iters_free": phases.free.iterations,
        "iters_nudge": max(e.iterations for e in phases.all[1:]),
    }
    trouble = diagnose(metrics, grad, keep.size, max_dropped)
    return StepResult(grad, metrics["loss"], v, phases, keep, metrics, trouble)
