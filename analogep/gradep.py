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

# Nudge asymmetry above this means a nudged phase left the linear-response regime.
MAX_NUDGE_ASYMMETRY = 0.5


@dataclass
class StepResult:
    """What one step measured; `trouble` is empty when the gradient can be trusted."""

    grad: Params
    loss: float
    v: np.ndarray
    phases: PhaseResult
    metrics: dict = field(default_factory=dict)
    trouble: list[str] = field(default_factory=list)


def gradep_step(
    model: EnergyModel,
    backend: EquilibriumBackend,
    params: Params,
    batch: FlowBatch,
    gradep: GradEPSpec,
    max_residual: float = np.inf,
) -> StepResult:
    """Run the phases on `batch` and measure the EP gradient of 1/2 |v - u|^2."""
    phases = run_phases(backend, params, batch.x_t, batch.u, gradep)
    v = velocity(phases.free.state[0], batch.x_t, gradep)
    grad = ep_gradient(model, params, phases)
    x_free = phases.free.state[0]
    metrics = {
        "loss": flow_loss(v, batch.u),
        "grad_norm": params_norm(grad),
        "v_norm": float(np.mean(np.linalg.norm(v, axis=1))),
        "u_norm": float(np.mean(np.linalg.norm(batch.u, axis=1))),
        "free_disp": float(np.mean(np.linalg.norm(x_free - batch.x_t, axis=1))),
        "nudge_disp": float(np.mean(np.linalg.norm(phases.plus.state[0] - x_free, axis=1))),
        "nudge_asym": nudge_asymmetry(phases),
        "residual_free": phases.free.residual,
        "residual_nudge": max(e.residual for e in phases.all[1:]),
        "iters_free": phases.free.iterations,
        "iters_nudge": max(e.iterations for e in phases.all[1:]),
    }
    return StepResult(grad, metrics["loss"], v, phases, metrics, diagnose(metrics, grad, max_residual))


def diagnose(metrics: dict, grad: Params, max_residual: float) -> list[str]:
    """Reasons not to trust this step's gradient (empty list: fine)."""
    trouble = []
    if not all(np.all(np.isfinite(g)) for g in grad.values()) or not np.isfinite(metrics["loss"]):
        trouble.append("non-finite gradient or loss")
    for phase in ("free", "nudge"):
        r = metrics[f"residual_{phase}"]
        if not r <= max_residual:
            trouble.append(f"{phase} phase unconverged (max |dE/ds| = {r:.3g} > {max_residual:g})")
    if metrics["nudge_asym"] > MAX_NUDGE_ASYMMETRY:
        trouble.append(
            f"nudged phases left the linear regime (asymmetry {metrics['nudge_asym']:.2f} > {MAX_NUDGE_ASYMMETRY})"
        )
    return trouble
