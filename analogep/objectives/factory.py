"""Build the objective a Spec names (train.objective; analogep.registry.OBJECTIVES)."""

from __future__ import annotations

from analogep.config.spec import Spec
from analogep.objectives.base import Objective
from analogep.registry import resolve


def build_objective(spec: Spec) -> Objective:
    return resolve("objective", spec.train.objective).from_spec(spec)
