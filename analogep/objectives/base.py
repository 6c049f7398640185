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
from analogep.config.spec import Spec
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
    """An objective owns its settings: it reads them from the spec in `from_spec`, and it
    answers the questions the CLI asks about its sampler, so that no caller branches on
    train.objective. Their schema stays in analogep.config (a file is checked when it is
    read, whatever its objective; the config layer sits below the objectives)."""

    name: str  # as train.objective names it
    label: str  # as a sentence names it ("denoising score-matching")
    kind: str  # as a message names its runs ("score-matching": "a score-matching run")
    # The options of `analogep sample` that steer its sampler, each with the model.yaml key it
    # sets ({"t1": "generate.t1"}); they are checked as that key is, and refused on a run of
    # another objective.
    sampler_options: dict[str, str]
    sampling: str  # how it samples, naming those options (after "sampled by" in a message)
    sampler_choice: str | None  # which of its samplers draws (recorded beside a quality report); None: it has one

    @classmethod
    def from_spec(cls, spec: Spec) -> "Objective":
        """The objective with its settings from `spec`."""

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

    def sampler_label(self, generate: GenerateSpec, *, run: bool = False) -> str:
        """How `sample` draws with `generate`, for a figure title; `run`: the title of a
        finished run's samples."""

    def sampler_summary(self, generate: GenerateSpec) -> dict:
        """The settings `sample` draws with, for a JSON summary."""
