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

from analogep.objectives.sampling import SAMPLE_CHUNK, ReadOuts, ScoreSampling, velocity_field


def annealed_langevin(
    sampling: ScoreSampling,
    *,
    sigmas: Sequence[float],
    step: float,
    steps_per_level: int | Sequence[int],
    denoise: bool,
    step_sigma: float | None = None,
) -> np.ndarray:
    """n samples, (n, D), from x ~ N(0, sigma_max^2 I) by annealed Langevin dynamics over
    `sigmas` (largest first), SAMPLE_CHUNK samples at a time. One generator draws, chunk by
    chunk, the chunk's start and then each step's noise; on_step counts score evaluations
    over all chunks. The step is `step` at `step_sigma` (default: the smallest sigma,
    dsm.sigma_min), so a schedule cut short or continued below sigma_min keeps the trained
    schedule's steps; `steps_per_level` may give each level its own count."""
    counts = _counts(steps_per_level, sigmas)

    def chain(x: np.ndarray, rng: np.random.Generator, read: ReadOuts) -> np.ndarray:
        return _chain(sampling, x, rng, read, sigmas=sigmas, step=step, counts=counts, denoise=denoise,
                      step_sigma=step_sigma)

    return sampling.draw(sum(counts) + int(denoise), sigmas[0], chain)


def langevin_snapshots(
    sampling: ScoreSampling,
    *,
    sigmas: Sequence[float],
    ends: Sequence[int],
    step: float,
    steps_per_level: int | Sequence[int],
    denoise: bool,
    step_sigma: float,
) -> dict[int, np.ndarray]:
    """{i: (n, D)} for each level index i in `ends`: what annealed_langevin over sigmas[:i + 1]
    returns (same noise, same warm starts, denoised at sigmas[i] with `denoise`), from one
    chain to max(ends) instead of one per end; n up to SAMPLE_CHUNK (one batch). A level
    repeated with one step each is that many more steps there."""
    if sampling.n > SAMPLE_CHUNK:
        raise ValueError(f"snapshots are of one batch: n must be at most {SAMPLE_CHUNK}, got {sampling.n}")
    wanted, shots = set(ends), {}

    def keep(i: int, x: np.ndarray) -> None:
        if i in wanted:
            shots[i] = x

    sigmas = list(sigmas)[: max(wanted) + 1]
    rng = np.random.default_rng(sampling.seed)
    x0 = (sigmas[0] * rng.standard_normal((sampling.n, sampling.model.sizes[0]))).astype(sampling.model.dtype)
    _chain(sampling, x0, rng, ReadOuts(sampling, None), sigmas=sigmas, step=step,
           counts=_counts(steps_per_level, sigmas), denoise=denoise, step_sigma=step_sigma, keep=keep)
    return shots


def _counts(steps_per_level: int | Sequence[int], sigmas: Sequence[float]) -> list[int]:
    if isinstance(steps_per_level, int):
        return [steps_per_level] * len(sigmas)
    return list(steps_per_level)[: len(sigmas)]


def _chain(
    sampling: ScoreSampling,
    x: np.ndarray,
    rng: np.random.Generator,
    read: ReadOuts,
    *,
    sigmas: Sequence[float],
    step: float,
    counts: list[int],
    denoise: bool,
    step_sigma: float | None,
    keep: Callable[[int, np.ndarray], None] | None = None,
) -> np.ndarray:
    """One batch's chain from its start `x` down `sigmas`, its noise from `rng`; `keep(i, y)`
    sees, after level i, the samples a chain ending there returns (denoised at sigmas[i] with
    `denoise`: one more score read that leaves the chain and its warm start as they are)."""
    sigma_min = min(sigmas)
    ref = sigma_min if step_sigma is None else step_sigma
    dtype, gain_power = sampling.model.dtype, sampling.gain_power
    for i, sigma in enumerate(sigmas):
        eps = step * (sigma / ref) ** 2
        drift = 0.5 * eps / sigma**gain_power  # eps/2 times the score's gain 1/sigma^p
        sampling.at_level(sigma)  # a level-dependent energy: the level's code (method.md 6.3)
        for _ in range(counts[i]):
            readout = read(x)
            noise = rng.standard_normal(x.shape)
            x = (x + drift * readout + np.sqrt(eps) * noise).astype(dtype)
        if keep is not None:
            keep(i, _peek_denoised(sampling, x, read, sigma) if denoise else x.copy())
    return sampling.denoised(x, sigma_min, read) if denoise else x


def _peek_denoised(sampling: ScoreSampling, x: np.ndarray, read: ReadOuts, sigma: float) -> np.ndarray:
    """Tweedie's step at sigma from the chain's warm start, leaving the chain's read-outs
    (their warm start and count) as they are."""
    sampling.at_level(sigma)
    readout, _ = velocity_field(sampling.backend, x, read.hidden, sampling.gradep, sampling.mode)
    return (x + sigma ** (2 - sampling.gain_power) * readout).astype(sampling.model.dtype)
