"""Annealed Langevin sampling on the learned score (method.md section 6).

Song & Ermon 2019 (NCSN, Algorithm 1): for each noise level sigma_i, largest first, run
T steps of x <- x + eps_i/2 s(x) + sqrt(eps_i) z with eps_i = eps (sigma_i / sigma_min)^2,
z ~ N(0, I); then, optionally, one denoising step x <- x + sigma_min^2 s(x) (Tweedie's
formula for E[x_0 | x]; Song & Ermon 2020, Jolicoeur-Martineau et al. 2021). The score
is read from the programmed backend exactly as generation reads the velocity
(sampling.velocity_field), s(x) = v(x) / sigma_i^p (p = 0 unconditioned, 2 with the
read-out gain; method.md section 6), at the level's energy when it depends on the level
(`condition(sigma)`, method.md section 6.3), so the same code samples the numpy model and the
circuit. `langevin_snapshots` reads one chain at several levels (the schedule cut short or
continued below sigma_min: evaluation/dsm_generation.py).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from analogep.backends.base import EquilibriumBackend
from analogep.config.sections import GradEPSpec
from analogep.model.energy import EnergyModel
from analogep.objectives.sampling import SAMPLE_CHUNK, sample_in_chunks, velocity_field


def annealed_langevin(
    model: EnergyModel,
    backend: EquilibriumBackend,
    gradep: GradEPSpec,
    *,
    sigmas: Sequence[float],
    step: float,
    steps_per_level: int,
    denoise: bool,
    gain_power: int = 0,
    n: int,
    mode: str = "energy",
    seed: int = 0,
    condition: Callable[[float], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    out: np.ndarray | None = None,
    step_sigma: float | None = None,
) -> np.ndarray:
    """n samples, (n, D), from x ~ N(0, sigma_max^2 I) by annealed Langevin dynamics over
    `sigmas` (largest first), SAMPLE_CHUNK samples at a time (`out` as in
    flow_sampling.generate). One generator draws, chunk by chunk, the chunk's start and
    then each step's noise; `on_step(done, total)` counts score evaluations over all chunks.
    The step is `step` at `step_sigma` (default: the smallest sigma, dsm.sigma_min), so a
    schedule cut short or continued below sigma_min keeps the trained schedule's steps.
    """
    per_chunk = len(sigmas) * steps_per_level + int(denoise)

    def run(x: np.ndarray, rng: np.random.Generator, tick: Callable[[int], None] | None) -> np.ndarray:
        return _chain(model, backend, gradep, x, rng, sigmas=sigmas, step=step, steps_per_level=steps_per_level,
                      denoise=denoise, gain_power=gain_power, mode=mode, condition=condition, tick=tick,
                      step_sigma=step_sigma)

    return sample_in_chunks(model, n, seed, per_chunk, out, run, on_step, scale=sigmas[0])


def langevin_snapshots(
    model: EnergyModel,
    backend: EquilibriumBackend,
    gradep: GradEPSpec,
    *,
    sigmas: Sequence[float],
    ends: Sequence[int],
    step: float,
    steps_per_level: int | Sequence[int],
    denoise: bool,
    step_sigma: float,
    gain_power: int = 0,
    n: int,
    mode: str = "energy",
    seed: int = 0,
    condition: Callable[[float], None] | None = None,
) -> dict[int, np.ndarray]:
    """{i: (n, D)} for each level index i in `ends`: what annealed_langevin over sigmas[:i + 1]
    returns (same noise, same warm starts, denoised at sigmas[i] with `denoise`), from one
    chain to max(ends) instead of one per end; n up to SAMPLE_CHUNK (one batch).
    `steps_per_level` may give each level its own count (a level repeated with one step
    each is that many more steps there)."""
    if n > SAMPLE_CHUNK:
        raise ValueError(f"snapshots are of one batch: n must be at most {SAMPLE_CHUNK}, got {n}")
    wanted, shots = set(ends), {}

    def keep(i: int, x: np.ndarray) -> None:
        if i in wanted:
            shots[i] = x

    rng = np.random.default_rng(seed)
    x0 = (sigmas[0] * rng.standard_normal((n, model.sizes[0]))).astype(model.dtype)
    _chain(model, backend, gradep, x0, rng, sigmas=list(sigmas)[: max(wanted) + 1], step=step,
           steps_per_level=steps_per_level, denoise=denoise, gain_power=gain_power, mode=mode, condition=condition,
           tick=None, step_sigma=step_sigma, keep=keep)
    return shots


def _chain(
    model: EnergyModel,
    backend: EquilibriumBackend,
    gradep: GradEPSpec,
    x: np.ndarray,
    rng: np.random.Generator,
    *,
    sigmas: Sequence[float],
    step: float,
    steps_per_level: int | Sequence[int],
    denoise: bool,
    gain_power: int,
    mode: str,
    condition: Callable[[float], None] | None,
    tick: Callable[[int], None] | None,
    step_sigma: float | None,
    keep: Callable[[int, np.ndarray], None] | None = None,
) -> np.ndarray:
    """One batch's chain from its start `x` down `sigmas`, its noise from `rng`; `keep(i, y)`
    sees, after level i, the samples a chain ending there returns (denoised at sigmas[i] with
    `denoise`: one more score read that leaves the chain and its warm start as they are)."""
    sigma_min = min(sigmas)
    ref = sigma_min if step_sigma is None else step_sigma
    counts = [steps_per_level] * len(sigmas) if isinstance(steps_per_level, int) else list(steps_per_level)
    hidden, k = None, 0

    def tweedie(y: np.ndarray, warm: list[np.ndarray] | None, sigma: float) -> tuple[np.ndarray, list[np.ndarray]]:
        if condition is not None:
            condition(sigma)
        readout, warm = velocity_field(backend, y, warm, gradep, mode)
        return (y + sigma ** (2 - gain_power) * readout).astype(model.dtype), warm

    for i, sigma in enumerate(sigmas):
        eps = step * (sigma / ref) ** 2
        drift = 0.5 * eps / sigma**gain_power  # eps/2 times the score's gain 1/sigma^p
        if condition is not None:  # a level-dependent energy: the level's code (method.md 6.3)
            condition(sigma)
        for _ in range(counts[i]):
            readout, hidden = velocity_field(backend, x, hidden, gradep, mode)
            noise = rng.standard_normal(x.shape)
            x = (x + drift * readout + np.sqrt(eps) * noise).astype(model.dtype)
            k += 1
            if tick is not None:
                tick(k)
        if keep is not None:
            keep(i, tweedie(x, hidden, sigma)[0] if denoise else x.copy())
    if denoise:
        x, hidden = tweedie(x, hidden, sigma_min)
        if tick is not None:
            tick(k + 1)
    return x
