"""Build the objective a Spec names (train.objective; analogep.registry.OBJECTIVES)."""

from __future__ import annotations

import numpy as np

from analogep.config.spec import Spec, level_code_size
from analogep.objectives.base import Objective
from analogep.registry import resolve


def build_objective(spec: Spec) -> Objective:
    return resolve("objective", spec.train.objective).from_spec(spec)


def first_level_code(spec: Spec) -> np.ndarray | None:
    """The level code of the first training point of train.seed (the point the decks and the
    energy accounting are drawn at): DSM's noise level (method.md section 6.3) or flow
    matching's time (objectives/flow_time.py); None when the energy takes no code."""
    if not level_code_size(spec):
        return None
    from analogep.data import load_dataset

    data = load_dataset(spec.train.dataset, dtype=np.float64, source=spec.data)
    batch = build_objective(spec).batch(data, 1, np.random.default_rng(spec.train.seed))
    return batch.groups()[0][0]
