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

from typing import Callable, Sequence

import numpy as np

from analogep.backends.base import EquilibriumBackend
from analogep.config.sections import GradEPSpec
from analogep.model.energy import EnergyModel
from analogep.objectives.sampling import sample_in_chunks, velocity_field


def probability_flow(
    model: EnergyModel,
    backend: EquilibriumBackend,
    gradep: GradEPSpec,
    *,
    sigmas: Sequence[float],
    denoise: bool,
    gain_power: int = 0,
    n: int,
    mode: str = "energy",
    seed: int = 0,
    condition: Callable[[float], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """n samples, (n, D), from x ~ N(0, sigmas[0]^2 I) by Heun steps of dx/dsigma = -sigma s
    over the grid `sigmas` (largest first), SAMPLE_CHUNK samples at a time (`out` as in
    flow_sampling.generate). The seed draws only the start; `on_step(done, total)` counts
    score evaluations (two per Heun step, one for the denoising step)."""
    sigmas = [float(s) for s in sigmas]
    per_chunk = 2 * (len(sigmas) - 1) + int(denoise)

    def run(x: np.ndarray, rng: np.random.Generator, tick: Callable[[int], None] | None) -> np.ndarray:
        hidden, count = None, 0

        def slope(y: np.ndarray, sigma: float) -> np.ndarray:
            """dx/dsigma = -sigma s(y, sigma) = -sigma^(1-p) v(y)."""
            nonlocal hidden, count
            if condition is not None:  # a level-dependent energy: the code of this sigma (method.md 6.3)
                condition(sigma)
            readout, hidden = velocity_field(backend, y, hidden, gradep, mode)
            count += 1
            if tick is not None:
                tick(count)
            return -(sigma ** (1 - gain_power)) * readout.astype(np.float64)

        for s_now, s_next in zip(sigmas, sigmas[1:]):
            d = slope(x, s_now)
            predictor = (x + (s_next - s_now) * d).astype(model.dtype)
            x = (x + (s_next - s_now) * 0.5 * (d + slope(predictor, s_next))).astype(model.dtype)
        if denoise:
            if condition is not None:
                condition(sigmas[-1])
            readout, hidden = velocity_field(backend, x, hidden, gradep, mode)
            x = (x + sigmas[-1] ** (2 - gain_power) * readout).astype(model.dtype)
            if tick is not None:
                tick(count + 1)
        return x

    return sample_in_chunks(model, n, seed, per_chunk, out, run, on_step, scale=sigmas[0])
