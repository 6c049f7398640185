"""Equilibrium propagation: the phases, the local measurement, the trust checks, the step."""

from analogep.ep.measurement import ep_gradient, nudge_asymmetry
from analogep.ep.phases import PhaseResult, nudge_anchor, run_phases
from analogep.ep.step import StepResult, gradep_step
from analogep.ep.trust import diagnose, trusted_points

__all__ = [
    "PhaseResult", "StepResult", "diagnose", "ep_gradient", "gradep_step", "nudge_anchor", "nudge_asymmetry",
    "run_phases", "trusted_points",
]
