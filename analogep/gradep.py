"""One GradEP training step: flow batch -> phases -> local measurement -> gradient.

Also the trouble detector. The EP estimate divides the difference of two nudged states by
2 beta (400x at the paper's beta), so an unconverged phase, or a nudged phase that jumps
to another basin, turns into a huge wrong gradient; such a step is reported, not applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .energy import EnergyModel, Params, params_norm
from .flow import FlowBatch
from .measurement import ep_gradient, flow_loss, nudge_asymmetry, velocity
from .phases import EquilibriumBackend, PhaseResult, run_phases
from .spec import GradEPSpec

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


def trusted_points(
    phases: PhaseResult, max_residual: float, max_asymmetry: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Which training points give a trustworthy EP estimate, and their nudge asymmetry.

    A point is dropped when any of its phases ended above `max_residual` (unconverged),
    when its nudged phases are not mirror images (a basin jump near a bifurcation, where
    the exact gradient itself blows up as the Hessian turns singular), or when its state
    is not finite. Averaging over the rest keeps one bad point from dominating the step.
    """
    asym = nudge_asymmetry(phases)
    keep = asym <= max_asymmetry
    for eq in phases.all:
        keep &= eq.sample_residual <= max_residual
        for layer in eq.state:
            keep &= np.all(np.isfinite(layer), axis=1)
    return keep, asym


def gradep_step(
    model: EnergyModel,
    backend: EquilibriumBackend,
    params: Params,
    batch: FlowBatch,
    gradep: GradEPSpec,
    max_residual: float = np.inf,
    max_dropped: float = 1.0,
    max_asymmetry: float = 0.5,
) -> StepResult:
    """Run the phases on `batch` and measure the EP gradient of 1/2 |v - u|^2 over the
    trusted points; more than `max_dropped` (a fraction) dropped points is trouble."""
    phases = run_phases(backend, params, batch.x_t, batch.u, gradep)
    v = velocity(phases.free.state[0], batch.x_t, gradep)
    keep, asym = trusted_points(phases, max_residual, max_asymmetry)
    grad = ep_gradient(model, params, phases, keep) if keep.any() else None
    x_free = phases.free.state[0]
    dropped = int(keep.size - keep.sum())
    metrics = {
        "loss": flow_loss(v, batch.u),
        "grad_norm": params_norm(grad) if grad is not None else float("nan"),
        "v_norm": float(np.mean(np.linalg.norm(v, axis=1))),
        "u_norm": float(np.mean(np.linalg.norm(batch.u, axis=1))),
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


def diagnose(metrics: dict, grad: Params | None, batch_size: int, max_dropped: float) -> list[str]:
    """Reasons not to trust this step's gradient (empty list: fine)."""
    trouble = []
    if metrics["dropped"] > max_dropped * batch_size:
        trouble.append(
            f"{metrics['dropped']} of {batch_size} training points had unconverged or basin-jumping phases "
            f"(free residual {metrics['residual_free']:.2g}, nudge residual {metrics['residual_nudge']:.2g}, "
            f"nudge asymmetry {metrics['nudge_asym']:.2f}); allowed: {max_dropped:.0%}"
        )
    if grad is None:
        return trouble  # every point dropped: said above
    if not all(np.all(np.isfinite(g)) for g in grad.values()) or not np.isfinite(metrics["loss"]):
        trouble.append("non-finite gradient or loss")
    return trouble
