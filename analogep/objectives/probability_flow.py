"""The probability-flow ODE of the noising process, integrated on the learned score
(method.md section 6).

Song et al. 2021 (score-based SDEs, section 4.3): the variance-exploding process
x_sigma = x_0 + sigma n has the same marginals as the deterministic flow

    dx / dsigma = -sigma s(x, sigma),

so integrating it from x ~ N(0, sigma_max^2 I) down to sigma_min transports noise to the
(noised) data without Langevin noise. Steps: Heun's second-order method on a geometric
sigma grid (Karras et al. 2022, Algorithm 1, without churn), then, with dsm.denoise, the
Tweedie step x + sigma_min^2 s(x) as Langevin ends. The score is read as the Langevin
sampler reads it, s(x, sigma) = v(x) / sigma^p (p from dsm.conditioning), so the same code
samples the numpy model and the circuit.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from analogep.objectives.sampling import ReadOuts, ScoreSampling


def probability_flow(sampling: ScoreSampling, *, sigmas: Sequence[float], denoise: bool) -> np.ndarray:
    """n samples, (n, D), from x ~ N(0, sigmas[0]^2 I) by Heun steps of dx/dsigma = -sigma s
    over the grid `sigmas` (largest first), SAMPLE_CHUNK samples at a time. The seed draws
    only the start; on_step counts score evaluations (two per Heun step, one for the
    denoising step)."""
    sigmas = [float(s) for s in sigmas]
    per_chunk = 2 * (len(sigmas) - 1) + int(denoise)
    dtype, gain_power = sampling.model.dtype, sampling.gain_power

    def chain(x: np.ndarray, rng: np.random.Generator, read: ReadOuts) -> np.ndarray:
        def slope(y: np.ndarray, sigma: float) -> np.ndarray:
            """dx/dsigma = -sigma s(y, sigma) = -sigma^(1-p) v(y)."""
            sampling.at_level(sigma)  # a level-dependent energy: the code of this sigma (method.md 6.3)
            return -(sigma ** (1 - gain_power)) * read(y).astype(np.float64)

        for s_now, s_next in zip(sigmas, sigmas[1:]):
            d = slope(x, s_now)
            predictor = (x + (s_next - s_now) * d).astype(dtype)
            x = (x + (s_next - s_now) * 0.5 * (d + slope(predictor, s_next))).astype(dtype)
        return sampling.denoised(x, sigmas[-1], read) if denoise else x

    return sampling.draw(per_chunk, sigmas[0], chain)
