"""What a training objective is to analogep: a source of training batches, a loss, and a
sampler. GradEP (analogep.ep) consumes only these, so an objective is one module plus one
line in analogep.registry.OBJECTIVES.

A training batch holds, per point, the spring anchor x_t, the target the spring-clamped
read-out should produce (method.md section 3: the nudge anchor is x_t + target /
(alpha lambda)), and an optional weight of the point in the loss.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from analogep.backends.base import EquilibriumBackend
from analogep.config.sections import GenerateSpec
from analogep.model.energy import EnergyModel


class TrainingBatch(Protocol):
    x_t: np.ndarray  # (batch, n_visible) spring anchors
    target: np.ndarray  # (batch, n_visible) what the read-out alpha lambda (x* - x_t) should be
    weight: np.ndarray | None  # (batch,) weight of each point in the loss; None: all 1


class BatchStream(Protocol):
    """Training batches in order; `rng_state` resumes the stream after the last batch handed out."""

    rng_state: dict

    def next(self) -> TrainingBatch: ...

    def close(self) -> None: ...


class Objective(Protocol):
    name: str  # as train.objective names it
    label: str  # as a sentence names it ("flow-matching")

    def batches(self, data: np.ndarray, rng: np.random.Generator, remaining: int) -> BatchStream:
        """The next `remaining` training batches drawn with `rng`."""

    def batch(self, data: np.ndarray, size: int, rng: np.random.Generator) -> TrainingBatch:
        """One batch of `size` points (checks and benchmarks)."""

    def loss(self, readout: np.ndarray, batch: TrainingBatch) -> float:
        """The training loss of the free-phase read-out (what metrics.jsonl logs)."""

    def sample(
        self,
        model: EnergyModel,
        backend: EquilibriumBackend,
        generate: GenerateSpec,
        on_step: Callable[[int, int], None] | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Samples (n, n_visible) from the programmed backend, written into `out` when given
        (an (n, n_visible) array, e.g. a memory-mapped .npy: n may exceed memory)."""
