"""The learning-rate schedule: the step size each optimizer step takes.

A constant rate (the paper's) leaves a small network on the 2-D benchmarks in a trade:
a rate high enough to grow the first layer's weights out of SiLU's linear range ends
with steps too noisy to settle (docs/results/data.md). Cosine annealing (Loshchilov &
Hutter 2017, "SGDR", eq. 5, one cycle, no restarts) takes both: large steps early,
small ones at the end.
"""

from __future__ import annotations

import math

from analogep.config.sections import OptimizerSpec


def learning_rate(spec: OptimizerSpec, step: int, steps: int) -> float:
    """The rate of training step `step` (1 for the first) of a run of `steps` steps:
    spec.lr throughout (constant), or from spec.lr at the first step down the half cosine
    to spec.final_lr after the last (cosine). The step number, not the optimizer's count
    of applied updates, sets it, so skipped steps and a resume keep the same rates."""
    if spec.schedule == "constant":
        return spec.lr
    done = min(max(step - 1, 0), steps) / steps
    return spec.final_lr + 0.5 * (spec.lr - spec.final_lr) * (1.0 + math.cos(math.pi * done))
