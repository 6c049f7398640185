"""Annealed Langevin sampling on the learned score (method.md section 6).

Song & Ermon 2019 (NCSN, Algorithm 1): for each noise level sigma_i, largest first, run
T steps of x <- x + eps_i/2 s(x) + sqrt(eps_i) z with eps_i = eps (sigma_i / sigma_min)^2,
z ~ N(0, I); then, optionally, one denoising step x <- x + sigma_min^2 s(x) (Tweedie's
formula for E[x_0 | x]; Song & Ermon 2020, Jolicoeur-Martineau et al. 2021). The score
is read from the programmed backend exactly as generation reads the velocity
(sampling.velocity_field), s(x) = v(x) / sigma_i^p (p = 0 unconditioned, 2 with the
read-out gain; method.md section 6), at the level's energy when it depends on the level
(`condition(sigma)`, method.md section 6.3), so the same code samples the numpy model and the
circuit.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from analogep.objectives.sampling import ReadOuts, ScoreSampling


def annealed_langevin(
    sampling: ScoreSampling, *, sigmas: Sequence[float], step: float, steps_per_level: int, denoise: bool
) -> np.ndarray:
    """n samples, (n, D), from x ~ N(0, sigma_max^2 I) by annealed Langevin dynamics over
    `sigmas` (largest first), SAMPLE_CHUNK samples at a time. One generator draws, chunk by
    chunk, the chunk's start and then each step's noise; on_step counts score evaluations
    over all chunks."""
    sigma_min = min(sigmas)
    per_chunk = len(sigmas) * steps_per_level + int(denoise)
    dtype, gain_power = sampling.model.dtype, sampling.gain_power

    def chain(x: np.ndarray, rng: np.random.Generator, read: ReadOuts) -> np.ndarray:
        for sigma in sigmas:
            eps = step * (sigma / sigma_min) ** 2
            drift = 0.5 * eps / sigma**gain_power  # eps/2 times the score's gain 1/sigma^p
            sampling.at_level(sigma)  # a level-dependent energy: the level's code (method.md 6.3)
            for _ in range(steps_per_level):
                readout = read(x)
                noise = rng.standard_normal(x.shape)
                x = (x + drift * readout + np.sqrt(eps) * noise).astype(dtype)
        return sampling.denoised(x, sigma_min, read) if denoise else x

    return sampling.draw(per_chunk, sigmas[0], chain)
