"""What every sampler shares (method.md sections 5 and 6): the velocity field read from a
programmed backend, and n samples drawn in chunks of bounded memory. Flow matching's Euler
sampler (flow_sampling.py), annealed Langevin (langevin.py), the probability-flow ODE
(probability_flow.py) and the ancestral sampler (ancestral.py) are each a `run` of one chunk
on top of these; the three score samplers share their settings and read-out loop
(ScoreSampling, ReadOuts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from analogep.backends.base import EquilibriumBackend
from analogep.backends.spring import velocity
from analogep.config.spec import GradEPSpec
from analogep.model.energy import EnergyModel

# Samples integrated at once. The relaxation's working arrays grow with the batch (about
# 2.8 KB per sample on examples/tiny.yaml, more on wider models: 10 million samples in one
# batch grew to 24 GB), so sampling goes chunk by chunk; a few thousand points keep the
# matrix products as efficient as one batch (measured: the same CPU time for 200,000
# samples in chunks as in one batch).
SAMPLE_CHUNK = 4096


def velocity_field(
    backend: EquilibriumBackend,
    x: np.ndarray,
    hidden: list[np.ndarray] | None,
    gradep: GradEPSpec,
    mode: str = "energy",
) -> tuple[np.ndarray, list[np.ndarray]]:
    """v(x) and the relaxed hidden state, from a programmed backend.

    energy: v = -alpha dE/dx at the hidden equilibrium h*(x) with x clamped (method.md 2);
    spring: v = alpha lambda (x* - x) with the training spring anchored at x (method.md 5).
    """
    if mode == "energy":
        eq, de_dx = backend.clamped(x, hidden)
        return -gradep.alpha * de_dx, eq.state[1:]
    if mode == "spring":
        start = None if hidden is None else [x.copy()] + list(hidden)
        eq = backend.equilibrium(x, None, start)
        return velocity(eq.state[0], x, gradep), eq.state[1:]
    raise ValueError(f"unknown generation mode {mode!r}; allowed: energy, spring")


def sample_in_chunks(
    model: EnergyModel,
    n: int,
    seed: int,
    steps_per_chunk: int,
    out: np.ndarray | None,
    run: Callable[[np.ndarray, np.random.Generator, Callable[[int], None] | None], np.ndarray],
    on_step: Callable[[int, int], None] | None,
    scale: float = 1.0,
) -> np.ndarray:
    """What every sampler shares: n samples, SAMPLE_CHUNK at a time, each chunk started
    from scale * N(0, I) drawn from one generator of `seed` (rows in order, so the start is
    the same for any chunking) and carried by `run(x, rng, tick)` (the rest of its noise
    from the same generator; `tick(k)` after its k-th of `steps_per_chunk` steps, which
    `on_step(done, total)` sees counted over all chunks), into `out` or a new array."""
    dim = model.sizes[0]
    if out is not None and out.shape != (n, dim):
        raise ValueError(f"out has shape {out.shape}; the samples need ({n}, {dim})")
    rng = np.random.default_rng(seed)
    starts = range(0, n, SAMPLE_CHUNK)
    total = len(starts) * steps_per_chunk
    for c, start in enumerate(starts):
        size = min(SAMPLE_CHUNK, n - start)
        draw = rng.standard_normal((size, dim))
        x = (draw if scale == 1.0 else scale * draw).astype(model.dtype)
        done = c * steps_per_chunk
        x = run(x, rng, None if on_step is None else (lambda k, done=done: on_step(done + k, total)))
        if out is None:
            out = np.empty((n, dim), dtype=x.dtype)
        out[start : start + size] = x
    return out if out is not None else np.empty((0, dim), dtype=model.dtype)


class ReadOuts:
    """The read-outs of one chunk's chain, in order: each warm-starts the relaxation from the
    previous hidden equilibrium (the chain moves x a little per step) and counts one step
    for `tick` (progress over the chunk)."""

    def __init__(self, sampling: ScoreSampling, tick: Callable[[int], None] | None):
        self.sampling, self.tick = sampling, tick
        self.hidden: list[np.ndarray] | None = None
        self.count = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The read-out v(x) (sampling.velocity_field), after which the count advances."""
        s = self.sampling
        readout, self.hidden = velocity_field(s.backend, x, self.hidden, s.gradep, s.mode)
        self.count += 1
        if self.tick is not None:
            self.tick(self.count)
        return readout


@dataclass(frozen=True)
class ScoreSampling:
    """How a score sampler (annealed Langevin, the probability-flow ODE, the ancestral
    sampler; method.md section 6) reads s(x, sigma) = v(x) / sigma^p from a programmed
    backend and draws its n samples: p = gain_power (dsm.conditioning), `mode` how v is
    read, `condition(sigma)` the level's code for a level-dependent energy (method.md
    6.3), `on_step(done, total)` progress over all chunks, `out` as in
    flow_sampling.generate."""

    model: EnergyModel
    backend: EquilibriumBackend
    gradep: GradEPSpec
    n: int
    gain_power: int = 0
    mode: str = "energy"
    seed: int = 0
    condition: Callable[[float], None] | None = None
    on_step: Callable[[int, int], None] | None = None
    out: np.ndarray | None = None

    def at_level(self, sigma: float) -> None:
        """Condition the energy on sigma's level code, where it depends on the level."""
        if self.condition is not None:
            self.condition(sigma)

    def denoised(self, x: np.ndarray, sigma: float, read: ReadOuts) -> np.ndarray:
        """Tweedie's denoising step x + sigma^2 s(x, sigma) = x + sigma^(2-p) v(x) (Song &
        Ermon 2020; Jolicoeur-Martineau et al. 2021), at sigma's level."""
        self.at_level(sigma)
        return (x + sigma ** (2 - self.gain_power) * read(x)).astype(self.model.dtype)

    def draw(
        self,
        steps_per_chunk: int,
        scale: float,
        chain: Callable[[np.ndarray, np.random.Generator, ReadOuts], np.ndarray],
    ) -> np.ndarray:
        """n samples, each chunk started from scale * N(0, I) and carried by
        `chain(x, rng, read)` (sample_in_chunks), which takes its read-outs from `read`."""

        def run(x: np.ndarray, rng: np.random.Generator, tick: Callable[[int], None] | None) -> np.ndarray:
            return chain(x, rng, ReadOuts(self, tick))

        return sample_in_chunks(self.model, self.n, self.seed, steps_per_chunk, self.out, run, self.on_step, scale)
