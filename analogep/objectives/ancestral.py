"""The reverse-SDE ancestral sampler with a few Langevin corrector steps per level
(method.md section 6.4).

Song et al. 2021 (score-based SDEs, appendix F; the variance-exploding form of Ho et al.
2020's ancestral step): from level sigma_i to the next, smaller sigma_(i+1),

    x <- x + (sigma_i^2 - sigma_(i+1)^2) s(x, sigma_i) + sqrt(sigma_(i+1)^2 (sigma_i^2 - sigma_(i+1)^2) / sigma_i^2) z,

the exact reverse of the Gaussian noising step for a Gaussian data distribution; a step to
sigma 0 is Tweedie's denoising step x + sigma_i^2 s. The chain never settles at a level:
each level gets `steps_per_level` corrector steps of annealed Langevin (the
predictor-corrector sampler of Song et al. 2021, Algorithm 2, with Song & Ermon's step rule
eps_i = eps (sigma_i / sigma_min)^2) and `substeps` ancestral steps to the next level. On a
substrate each substep is one relaxation with a DAC-set drift gain and noise amplitude
(method.md section 6.4). With a level-dependent energy the backend is conditioned on each
grid sigma before its score is read (`condition(sigma)`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from analogep.objectives.sampling import ReadOuts, ScoreSampling


def ancestral(
    sampling: ScoreSampling, *, grid: Sequence[float], substeps: int, step: float, steps_per_level: int, denoise: bool
) -> np.ndarray:
    """n samples, (n, D), from x ~ N(0, grid[0]^2 I) down the `grid` (largest first, its
    last entry the final sigma, possibly 0); every `substeps`-th grid point before the
    last is a level and gets `steps_per_level` Langevin corrector steps first. The score is
    read-out / sigma^p; on_step counts score evaluations over all chunks."""
    grid = [float(s) for s in grid]
    sigma_min = grid[-2]
    levels = range(0, len(grid) - 1, substeps)
    tweedie = denoise and grid[-1] > 0
    per_chunk = len(levels) * steps_per_level + len(grid) - 1 + int(tweedie)
    dtype, gain_power = sampling.model.dtype, sampling.gain_power

    def chain(x: np.ndarray, rng: np.random.Generator, read: ReadOuts) -> np.ndarray:
        def score(y: np.ndarray, sigma: float) -> np.ndarray:
            return read(y).astype(np.float64) / sigma**gain_power

        for i, (a, b) in enumerate(zip(grid, grid[1:])):
            sampling.at_level(a)
            if i in levels:
                eps = step * (a / sigma_min) ** 2
                for _ in range(steps_per_level):
                    s = score(x, a)
                    x = (x + 0.5 * eps * s + np.sqrt(eps) * rng.standard_normal(x.shape)).astype(dtype)
            s = score(x, a)
            var = a * a - b * b
            x = x + var * s
            if b > 0:
                x = x + np.sqrt(b * b * var / (a * a)) * rng.standard_normal(x.shape)
            x = x.astype(dtype)
        if tweedie:
            last = grid[-1]
            sampling.at_level(last)
            x = (x + last**2 * score(x, last)).astype(dtype)
        return x

    return sampling.draw(per_chunk, grid[0], chain)
