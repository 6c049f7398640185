"""model.yaml's `dsm` section: the settings of denoising score matching (method.md section 6).

The noise schedule and read-out conditioning that training draws from, and the sampler that
draws from the learned score. The schema and the schedule derived from it live here, in the
config layer, so that a file is checked when it is read whatever its train.objective; the
objective that reads them is analogep/objectives/dsm.py, which also declares which of them
`analogep sample` may set (its sampler_options). The rule on the sampler's step sizes is
config/rules.py's schedule_problem, judged only when train.objective is dsm (a flow-matching
run never reads this section, so its defaults must not bound that run's gradep.alpha).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from analogep.config.schema import meta


@dataclass(frozen=True)
class DSMSpec:
    """Denoising score matching and its samplers, annealed Langevin dynamics and the
    probability-flow ODE (method.md section 6); used when train.objective is dsm."""

    sigma_min: float = field(default=0.1, metadata=meta("smallest noise level of the geometric schedule", gt=0))
    sigma_max: float = field(default=1.0, metadata=meta("largest noise level of the geometric schedule", gt=0))
    levels: int = field(default=10, metadata=meta("noise levels, geometric from sigma_max down to sigma_min", ge=1))
    langevin_step: float = field(
        default=0.01,
        metadata=meta("Langevin step size at sigma_min; level i uses langevin_step*(sigma_i/sigma_min)^2", gt=0),
    )
    steps_per_level: int = field(default=10, metadata=meta("Langevin steps at each noise level", ge=1))
    denoise: bool = field(default=True, metadata=meta("end with one denoising step x + sigma_min^2 * score(x)"))
    conditioning: Literal["none", "scale", "gain", "level-bias"] = field(
        default="none",
        metadata=meta(
            "none: the read-out is the score at every level; scale: the score is read-out / sigma; "
            "gain: the score is read-out / sigma^2; level-bias: as scale, and every layer gets a bias that depends on "
            "the noise level (a level code into a crossbar; method.md section 6.3)"
        ),
    )
    level_code: Literal["onehot", "fourier"] = field(
        default="onehot",
        metadata=meta(
            "level-bias: onehot, one bias vector per level (interpolated between levels); fourier, level_features "
            "cosines of log sigma"
        ),
    )
    level_features: int = field(
        default=4, metadata=meta("level-bias with level_code fourier: cosine features of log sigma", ge=1)
    )

    sampler: Literal["langevin", "ode", "ancestral"] = field(
        default="langevin",
        metadata=meta(
            "langevin: annealed Langevin dynamics; ode: the probability-flow ODE (Heun steps); ancestral: the "
            "reverse-SDE ancestral sampler with steps_per_level Langevin corrector steps per level"
        ),
    )
    substeps: int = field(
        default=1, metadata=meta("ancestral: reverse-SDE steps between two adjacent noise levels", ge=1)
    )
    final_sigma: float = field(
        default=0.0,
        metadata=meta("ancestral: the noise level the last step goes to from sigma_min (0: the Tweedie step)", ge=0),
    )
    ode_steps: int = field(
        default=50, metadata=meta("Heun steps of the probability-flow ODE, geometric from sigma_max to sigma_min", ge=1)
    )

    @property
    def gain_power(self) -> int:
        """p in score = read-out / sigma^p: 0 unconditioned, 1 scaled (Song & Ermon 2020), 2 with
        the read-out gain (the substrate learns the denoising displacement)."""
        return {"none": 0, "scale": 1, "gain": 2, "level-bias": 1}[self.conditioning]

    @property
    def code_size(self) -> int:
        """The size of the level code the energy takes: 0 without level-bias, the number of
        levels for a one-hot code, level_features for a Fourier one."""
        if self.conditioning != "level-bias":
            return 0
        return self.levels if self.level_code == "onehot" else self.level_features

    @property
    def ancestral_sigmas(self) -> tuple[float, ...]:
        """The ancestral sampler's grid: the levels with `substeps` geometric steps between
        adjacent ones, then final_sigma."""
        grid = [self.sigma_max]
        levels = self.sigmas
        for a, b in zip(levels, levels[1:]):
            grid += [a * (b / a) ** (j / self.substeps) for j in range(1, self.substeps + 1)]
        return tuple(grid) + (self.final_sigma,)

    @property
    def sigmas(self) -> tuple[float, ...]:
        """The noise levels, largest first: sigma_max (sigma_min/sigma_max)^(i/(levels-1))."""
        if self.levels == 1:
            return (self.sigma_max,)
        ratio = self.sigma_min / self.sigma_max
        return tuple(self.sigma_max * ratio ** (i / (self.levels - 1)) for i in range(self.levels))

    @property
    def max_langevin_step(self) -> float:
        """The step size at sigma_max: langevin_step (sigma_max/sigma_min)^2."""
        return self.langevin_step * (self.sigma_max / self.sigma_min) ** 2

    @property
    def max_drift(self) -> float:
        """The largest factor of the read-out in a Langevin step, eps_i / (2 sigma_i^p) =
        eps sigma_i^(2-p) / (2 sigma_min^2): at sigma_max unconditioned and scaled, the same
        at every level with the gain (p = 2)."""
        if self.gain_power == 2:
            return self.langevin_step / (2.0 * self.sigma_min**2)
        if self.gain_power == 1:
            return self.langevin_step * self.sigma_max / (2.0 * self.sigma_min**2)
        return 0.5 * self.max_langevin_step

    @property
    def ode_sigmas(self) -> tuple[float, ...]:
        """The probability-flow ODE's grid: ode_steps + 1 geometric sigmas, sigma_max to sigma_min."""
        ratio = self.sigma_min / self.sigma_max
        return tuple(self.sigma_max * ratio ** (i / self.ode_steps) for i in range(self.ode_steps + 1))

    @property
    def max_ode_factor(self) -> float:
        """The largest factor of the read-out in one probability-flow step from sigma_i to
        sigma_(i+1): dx = -sigma s dsigma, s = read-out / sigma^p, so (sigma_i - sigma_(i+1))
        sigma_i^(1-p) (largest at sigma_max for p < 2, the same at every step for p = 2)."""
        grid = self.ode_sigmas
        return max((a - b) * a ** (1 - self.gain_power) for a, b in zip(grid, grid[1:]))
