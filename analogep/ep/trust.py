"""Trust checks on a GradEP step: which training points to average, and when to skip a step.

The EP estimate divides the difference of two nudged states by 2 beta (400x at the
paper's beta), so an unconverged phase, or a nudged phase that jumps to another basin,
turns into a huge wrong gradient. Such points are dropped, and a step that would drop too
many is reported, not applied.
"""

from __future__ import annotations

import numpy as np

from analogep.ep.measurement import nudge_asymmetry
from analogep.ep.phases import PhaseResult
from analogep.model.energy import Params


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
