"""Denoising score matching over a geometric noise schedule (method.md section 6).

Vincent 2011: for x_t = x_0 + sigma n, n ~ N(0, I), the score of the noised data is the
minimiser of E |s(x_t) - (-n / sigma)|^2. Song & Ermon 2019 (NCSN): geometric sigmas, one
level drawn uniformly per point, weight lambda(sigma) = sigma^2 so every level contributes
alike (|sigma s + n|^2 is O(1) at every level). The score is read from the spring-clamped
equilibrium exactly as flow matching reads the velocity, s = alpha lambda (x* - x_t)
(method.md section 3), so GradEP measures the gradient of the weighted loss with its
unchanged local rule (ep_gradient weights each point by TrainingBatch.weight).

Noise-level conditioning (dsm.conditioning; method.md section 6 says why and what each
costs): none, the energy is time independent and its read-out is the score at every
level; or scale, the score is the read-out divided by sigma (Song & Ermon 2020, technique 3),
so the substrate learns sigma s, whose target -n has unit size at every level; or gain, the score is the read-out divided by sigma^2, so the substrate learns the
denoising displacement sigma^2 s = E[x_0 | x_t] - x_t (Tweedie). The batch holds target and
weight in read-out units: with score = read-out / sigma^p, the read-out's target is
sigma^p (-n / sigma) and its weight sigma^2 / sigma^(2p), the same loss in score units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from analogep.backends.base import EquilibriumBackend
from analogep.config.dsm import DSMSpec
from analogep.config.sections import GenerateSpec, GradEPSpec
from analogep.config.spec import Spec
from analogep.model.energy import EnergyModel
from analogep.objectives.ancestral import ancestral
from analogep.objectives.langevin import annealed_langevin
from analogep.objectives.probability_flow import probability_flow
from analogep.objectives.sampling import ScoreSampling


@dataclass
class DSMBatch:
    """One batch of denoising score-matching training points."""

    x0: np.ndarray  # data
    sigma: np.ndarray  # (batch, 1) noise level of each point
    n: np.ndarray  # standard normal noise
    x_t: np.ndarray  # x0 + sigma n
    gain_power: int = 0  # p: score = read-out / sigma^p (0: unconditioned, 1: scaled, 2: read-out gain)
    level: np.ndarray | None = None  # (batch,) level index of each point
    codes: np.ndarray | None = None  # (levels, K) the level codes, when the energy depends on the level (level-bias)

    def groups(self) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """(level code, rows) per level present, in level order; None without level codes
        (the energy is the same at every level: one pass, ep/levels.py)."""
        if self.codes is None:
            return None
        return [(self.codes[i], np.flatnonzero(self.level == i)) for i in np.unique(self.level)]

    def subset(self, rows: np.ndarray) -> "DSMBatch":
        """The batch of some of its points."""
        return DSMBatch(self.x0[rows], self.sigma[rows], self.n[rows], self.x_t[rows], self.gain_power,
                        None if self.level is None else self.level[rows], self.codes)

    @property
    def target(self) -> np.ndarray:
        """What the spring read-out should produce: the score of the noising kernel, -n / sigma,
        times sigma^p (with the gain: -sigma n, the denoising displacement)."""
        if self.gain_power == 2:
            return -self.sigma * self.n
        if self.gain_power == 1:
            return -self.n
        return -self.n / self.sigma

    @property
    def weight(self) -> np.ndarray:
        """lambda(sigma) = sigma^2 per point (Song & Ermon 2019), in read-out units
        sigma^2 / sigma^(2p) (scaled: 1, every point alike; with the gain: 1 / sigma^2)."""
        if self.gain_power == 2:
            return 1.0 / self.sigma[:, 0] ** 2
        if self.gain_power == 1:
            return np.ones_like(self.sigma[:, 0])
        return self.sigma[:, 0] ** 2


def level_code(dsm: DSMSpec, sigma: float) -> np.ndarray:
    """The level code (dsm.code_size,) of noise level sigma (method.md section 6.3), defined
    between levels as well: onehot, hat functions of log sigma on the levels (exactly one-hot
    at a level, linear between two); fourier, cos(pi k t) for k = 0..K-1 with t = log(sigma_max /
    sigma) / log(sigma_max / sigma_min) in [0, 1] (clipped outside the schedule)."""
    span = np.log(dsm.sigma_max / dsm.sigma_min) if dsm.levels > 1 else 1.0
    t = float(np.clip(np.log(dsm.sigma_max / sigma) / span, 0.0, 1.0)) if sigma > 0 else 1.0
    if dsm.level_code == "fourier":
        return np.cos(np.pi * np.arange(dsm.level_features) * t)
    code = np.zeros(dsm.levels)
    pos = t * (dsm.levels - 1)
    if abs(pos - round(pos)) < 1e-9:  # at a level (up to rounding of the geometric grid)
        code[int(round(pos))] = 1.0
        return code
    i = int(np.floor(pos))
    code[i], code[i + 1] = i + 1 - pos, pos - i
    return code


def level_codes(dsm: DSMSpec) -> np.ndarray | None:
    """(levels, K) the code of each training level; None when the energy takes no code."""
    if not dsm.code_size:
        return None
    if dsm.level_code == "onehot":
        return np.eye(dsm.levels)
    return np.stack([level_code(dsm, s) for s in dsm.sigmas])


def sample_dsm_batch(
    data: np.ndarray, batch: int, sigmas: np.ndarray, rng: np.random.Generator, gain_power: int = 0,
    codes: np.ndarray | None = None,
) -> DSMBatch:
    """Every random draw of one batch, in a fixed order: data subset (the whole set when
    batch >= N), one level per point (uniform over the schedule), noise."""
    n_data = data.shape[0]
    x0 = data if batch >= n_data else data[rng.choice(n_data, size=batch, replace=False)]
    level = rng.integers(0, len(sigmas), size=x0.shape[0])
    noise = rng.standard_normal(x0.shape).astype(data.dtype)
    sigma = sigmas[level][:, None].astype(data.dtype)
    return DSMBatch(x0=x0, sigma=sigma, n=noise, x_t=x0 + sigma * noise, gain_power=gain_power,
                    level=None if codes is None else level, codes=codes)


class DSMBatchStream:
    """The training batches in order; `rng_state` is the generator's state after the draws
    of the last batch handed out (a checkpoint that stores it resumes with the next batch)."""

    def __init__(
        self, data: np.ndarray, batch: int, sigmas: np.ndarray, rng: np.random.Generator, remaining: int, gain_power: int,
        codes: np.ndarray | None = None,
    ):
        self.data, self.batch, self.sigmas, self.rng, self.remaining = data, batch, sigmas, rng, remaining
        self.gain_power, self.codes = gain_power, codes
        self.rng_state = rng.bit_generator.state

    def next(self) -> DSMBatch:
        if self.remaining <= 0:
            raise StopIteration("no batches left")
        self.remaining -= 1
        batch = sample_dsm_batch(self.data, self.batch, self.sigmas, self.rng, self.gain_power, self.codes)
        self.rng_state = self.rng.bit_generator.state
        return batch

    def close(self) -> None:
        pass


def dsm_loss(readout: np.ndarray, batch: DSMBatch) -> float:
    """Mean over batch and pixels of sigma^2 (s - (-n/sigma))^2 = (sigma s + n)^2, s the
    score the read-out gives (the gradient EP measures is of half the sum over pixels, as
    for flow matching)."""
    err = np.square(readout - batch.target, dtype=np.float64)
    return float(np.mean(batch.weight.astype(np.float64)[:, None] * err))


class DenoisingScoreMatching:
    """Denoising score matching by GradEP (De 2026; method.md section 6): batches of
    (x_t, -n/sigma, sigma^2) over a geometric schedule, the weighted loss, and annealed
    Langevin sampling on the learned score."""

    name = "dsm"
    label = "denoising score-matching"
    kind = "score-matching"
    # Its settings are model.yaml's dsm section (config/dsm.py): the noise schedule and
    # conditioning of its batches, and its sampler, of which `analogep sample` sets these.
    sampler_options = {"sampler": "dsm.sampler", "steps_per_level": "dsm.steps_per_level", "ode_steps": "dsm.ode_steps",
                       "substeps": "dsm.substeps"}
    sampling = ("annealed Langevin dynamics (--sampler langevin, --steps-per-level), the probability-flow ODE "
                "(--sampler ode, --ode-steps) or the ancestral sampler (--sampler ancestral, --substeps)")

    def __init__(self, gradep: GradEPSpec, dsm: DSMSpec, batch_size: int):
        self.gradep, self.dsm, self.batch_size = gradep, dsm, batch_size
        self.sigmas = np.asarray(dsm.sigmas, dtype=np.float64)
        self.codes = level_codes(dsm)

    @classmethod
    def from_spec(cls, spec: Spec) -> "DenoisingScoreMatching":
        return cls(spec.gradep, spec.dsm, spec.train.batch)

    def batches(self, data: np.ndarray, rng: np.random.Generator, remaining: int) -> DSMBatchStream:
        return DSMBatchStream(data, self.batch_size, self.sigmas, rng, remaining, self.dsm.gain_power, self.codes)

    def batch(self, data: np.ndarray, size: int, rng: np.random.Generator) -> DSMBatch:
        return sample_dsm_batch(data, size, self.sigmas, rng, self.dsm.gain_power, self.codes)

    def loss(self, readout: np.ndarray, batch: DSMBatch) -> float:
        return dsm_loss(readout, batch)

    def sample(
        self,
        model: EnergyModel,
        backend: EquilibriumBackend,
        generate_spec: GenerateSpec,
        on_step: Callable[[int, int], None] | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """dsm.sampler: annealed Langevin dynamics (objectives/langevin.py) with dsm's schedule
        and step rule, or the probability-flow ODE (objectives/probability_flow.py);
        generate.n, generate.mode (how the score is read) and generate.seed apply."""
        d, g = self.dsm, generate_spec
        condition = None
        if d.code_size:  # the energy depends on the level: the backend takes each sigma's code
            def condition(sigma: float) -> None:
                backend.condition(level_code(d, sigma))
        sampling = ScoreSampling(model, backend, self.gradep, g.n, d.gain_power, g.mode, g.seed, condition, on_step, out)
        if d.sampler == "ode":
            return probability_flow(sampling, sigmas=d.ode_sigmas, denoise=d.denoise)
        if d.sampler == "ancestral":
            return ancestral(sampling, grid=d.ancestral_sigmas, substeps=d.substeps, step=d.langevin_step,
                             steps_per_level=d.steps_per_level, denoise=d.denoise)
        return annealed_langevin(sampling, sigmas=d.sigmas, step=d.langevin_step, steps_per_level=d.steps_per_level,
                                 denoise=d.denoise)

    @property
    def sampler_choice(self) -> str:
        return self.dsm.sampler

    def sampler_label(self, generate_spec: GenerateSpec, *, run: bool = False) -> str:
        """The sampler with its schedule, and the read-out (the same for a finished run)."""
        d = self.dsm
        sigmas = f"sigma {d.sigma_max:g} to {d.sigma_min:g}"
        if d.sampler == "ode":
            how = f"probability-flow ODE, {d.ode_steps} Heun steps"
        elif d.sampler == "ancestral":
            how = f"ancestral, {d.levels} levels x {d.substeps} substeps, {d.steps_per_level} Langevin steps per level"
        else:
            how = f"annealed Langevin, {d.levels} levels x {d.steps_per_level}"
        return f"{how}, {sigmas}, {generate_spec.mode}"

    def sampler_summary(self, generate_spec: GenerateSpec) -> dict:
        d = self.dsm
        return dict(sampler=d.sampler, sigma_min=d.sigma_min, sigma_max=d.sigma_max, levels=d.levels,
                    steps_per_level=d.steps_per_level, ode_steps=d.ode_steps, conditioning=d.conditioning,
                    **({"substeps": d.substeps, "final_sigma": d.final_sigma} if d.sampler == "ancestral" else {}))
