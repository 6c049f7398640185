"""The FlowEqProp paper's extended-generation claim, measured on a denoising score-matching
run (Gower 2026, section 4; the DSM sampler: method.md section 6, objectives/langevin.py).

Flow matching's knob is the end time t1: its field is time independent, so integrating
past t = 1 keeps descending the learned energy. The DSM sampler's clock is the noise level:
annealed Langevin walks the geometric schedule sigma(tau) = sigma_max (sigma_min /
sigma_max)^tau, tau = i / (levels - 1) at level i, so tau = 1 ends at sigma_min (the
training horizon) and tau < 1 stops early, as t1 < 1 does. Past tau = 1 the schedule goes
on below sigma_min with the same geometric ratio and the same step rule (eps_i = eps
(sigma_i / sigma_min)^2) on the last level's energy (a level-bias code stays at sigma_min's,
dsm.level_code clips it), and ends with the Tweedie step at the last sigma. With the score
read-out / sigma^p (p >= 1: scale, level-bias, gain) the chain at sigma samples exp(-alpha
F / sigma^p): going on lowers the temperature on the fixed learned free energy F, so it
relaxes further into F's minima; that is "integrate longer on the learned energy" for a
sampler with noise. (With p = 0, conditioning none, the target does not sharpen: only the
step and the noise shrink.) Why not the other samplers: the probability-flow ODE is
deterministic transport, not relaxation; continued from sigma_min to 0 it moves x by
dx = -sigma^(1-p) v dsigma, in all sigma_min^(2-p) / (2 - p) times the read-out for p < 2,
no more than the Tweedie step it ends with already moves it, so it has no "longer" to
over-sharpen with. The ancestral sampler's corrector steps are Langevin steps of this same
chain. More Langevin steps per level at a fixed tau, the other way to relax longer, is the
steps sweep.

`tau_sweep` puts every `evaluate` figure against tau per read-out mode over several noise
seeds (one chain per mode and seed to the largest tau, every smaller tau read on the way:
objectives/langevin.langevin_snapshots); `steps_sweep` puts them against the Langevin steps
per level at a fixed tau (the DSM sampler's count of clamped equilibria, as the Euler steps
are flow matching's); `extra_sweep` against Langevin steps added at sigma_min before the
Tweedie step, the second reading of "relax longer": at a fixed temperature instead of a
falling one, so it does not freeze (past tau = 1 the step eps_i shrinks with sigma^2 and the
drift per step, eps_i / (2 sigma^p), with sigma^(2-p): for p <= 1 the chain's total drift
below sigma_min is a geometric series, r / (1 - r) levels' worth at sigma_min for
the level ratio r (3.4 for 10 levels from 1 to 0.1); with the gain, p = 2, the drift stays
and only the noise fades).
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from analogep.config.dsm import DSMSpec
from analogep.config.spec import Spec
from analogep.errors import AnalogepError
from analogep.evaluation.generation import MODES, _programmed, figures_by_mode, figures_over_seeds, sweet_spots
from analogep.model.energy import Params
from analogep.objectives.dsm import level_code
from analogep.objectives.langevin import annealed_langevin, langevin_snapshots
from analogep.objectives.sampling import ScoreSampling


def schedule_levels(dsm: DSMSpec, taus: list[float]) -> list[int]:
    """The level index each tau ends at, round(tau (levels - 1)); a grid whose points share
    a level, or a one-level schedule (no clock to extend), is refused."""
    if dsm.levels < 2:
        raise AnalogepError("--t1-grid: dsm.levels is 1; a one-level schedule has no noise-level clock to extend")
    ends = [int(round(t * (dsm.levels - 1))) for t in taus]
    for (a, i), (b, j) in zip(zip(taus, ends), list(zip(taus, ends))[1:]):
        if i == j:
            raise AnalogepError(f"--t1-grid: {a:g} and {b:g} both end at level {i} (tau = {i / (dsm.levels - 1):g}); "
                                f"the schedule has {dsm.levels - 1} level steps per unit of tau")
    return ends


def extended_sigmas(dsm: DSMSpec, last: int) -> list[float]:
    """Levels 0..last of the geometric schedule continued past sigma_min with its ratio
    (levels 0..levels-1 are dsm.sigmas exactly)."""
    ratio = dsm.sigma_min / dsm.sigma_max
    return [dsm.sigma_max * ratio ** (i / (dsm.levels - 1)) for i in range(last + 1)]


def _langevin_settings(spec: Spec, backend) -> dict:
    """The chain's settings of the run's annealed Langevin sampler (step at sigma_min)."""
    d = spec.dsm
    return dict(step=d.langevin_step, denoise=d.denoise, step_sigma=d.sigma_min)


def _sampling(spec: Spec, model, backend, *, n: int, mode: str, seed: int) -> ScoreSampling:
    """How the run's score is read: its gain power and, for a level-dependent energy (method.md
    6.3), each sigma's code (clipped below sigma_min)."""
    d = spec.dsm
    condition = None
    if d.code_size:
        def condition(sigma: float) -> None:
            backend.condition(level_code(d, sigma))
    return ScoreSampling(model, backend, spec.gradep, n, d.gain_power, mode, seed, condition)


def tau_sweep(
    spec: Spec,
    params: Params,
    *,
    taus: list[float],
    seeds: list[int],
    n: int,
    steps_per_level: int,
    modes: tuple[str, ...] = MODES,
    say: Callable[[str], None] = lambda _: None,
) -> dict:
    """Every evaluate figure against the schedule's extent tau, per read-out mode, mean and
    spread over the noise seeds, and each figure's sweet spot."""
    ends = schedule_levels(spec.dsm, taus)
    sigmas = extended_sigmas(spec.dsm, max(ends))
    model, backend = _programmed(spec, params)
    settings = _langevin_settings(spec, backend)
    result: dict = {"grid": list(taus), "levels": ends, "tau": [i / (spec.dsm.levels - 1) for i in ends],
                    "sigma_end": [sigmas[i] for i in ends], "steps_per_level": steps_per_level, "n": n,
                    "seeds": list(seeds), "modes": {}, "sampler": "langevin",
                    "xlabel": f"tau (annealed Langevin, {steps_per_level} steps per level)"}

    def draw_for(mode: str) -> Callable[[int], list[np.ndarray]]:
        def draw(seed: int) -> list[np.ndarray]:
            say(f"tau sweep: {mode} mode, seed {seed}, {max(ends) + 1} levels x {steps_per_level} Langevin steps "
                f"down to sigma {sigmas[-1]:.3g}, {n} samples")
            shots = langevin_snapshots(_sampling(spec, model, backend, n=n, mode=mode, seed=seed), sigmas=sigmas,
                                       ends=ends, steps_per_level=steps_per_level, **settings)
            return [shots[i] for i in ends]
        return draw

    result["modes"], result["reference"] = figures_by_mode(modes, taus, seeds, draw_for)
    return result


def steps_sweep(
    spec: Spec,
    params: Params,
    *,
    steps_grid: list[int],
    seeds: list[int],
    n: int,
    tau: float,
    mode: str = "energy",
    say: Callable[[str], None] = lambda _: None,
) -> dict:
    """Every evaluate figure against the Langevin steps per level of a schedule to tau, mean
    and spread over the noise seeds."""
    (end,) = schedule_levels(spec.dsm, [tau])
    sigmas = extended_sigmas(spec.dsm, end)
    model, backend = _programmed(spec, params)
    settings = _langevin_settings(spec, backend)

    def draw(seed: int) -> Iterator[np.ndarray]:
        for k in steps_grid:
            say(f"steps sweep: {k} Langevin steps per level, {end + 1} levels (tau {tau:g}), seed {seed}")
            yield annealed_langevin(_sampling(spec, model, backend, n=n, mode=mode, seed=seed), sigmas=sigmas,
                                    steps_per_level=k, **settings)

    figures, reference = figures_over_seeds(seeds, draw)
    return {"grid": list(steps_grid), "tau": end / (spec.dsm.levels - 1), "t1": tau, "mode": mode, "n": n,
            "seeds": list(seeds), "figures": figures, "reference": reference,
            "sweet_spot": sweet_spots(list(steps_grid), figures, reference),
            "xlabel": f"Langevin steps per level to tau = {end / (spec.dsm.levels - 1):g}"}


def extra_sweep(
    spec: Spec,
    params: Params,
    *,
    extra_grid: list[int],
    seeds: list[int],
    n: int,
    steps_per_level: int,
    mode: str = "energy",
    say: Callable[[str], None] = lambda _: None,
) -> dict:
    """Every evaluate figure against the Langevin steps added at sigma_min, after the trained
    schedule's last level and before its Tweedie step: relaxing longer at the final noise
    level on its energy (one chain per seed, read at each count on the way), mean and spread
    over the noise seeds. 0 is the sampler as it is."""
    d = spec.dsm
    levels = list(d.sigmas)
    most = max(extra_grid)
    sigmas = levels + [d.sigma_min] * most  # each extra step is a one-step level at sigma_min
    counts = [steps_per_level] * len(levels) + [1] * most
    ends = [len(levels) - 1 + e for e in extra_grid]
    model, backend = _programmed(spec, params)
    settings = _langevin_settings(spec, backend)

    def draw(seed: int) -> list[np.ndarray]:
        say(f"extra sweep: {len(levels)} levels x {steps_per_level} Langevin steps, then up to {most} more at "
            f"sigma_min {d.sigma_min:g}, seed {seed}, {n} samples")
        shots = langevin_snapshots(_sampling(spec, model, backend, n=n, mode=mode, seed=seed), sigmas=sigmas, ends=ends,
                                   steps_per_level=counts, **settings)
        return [shots[i] for i in ends]

    figures, reference = figures_over_seeds(seeds, draw)
    return {"grid": list(extra_grid), "steps_per_level": steps_per_level, "mode": mode, "n": n, "seeds": list(seeds),
            "figures": figures, "reference": reference, "sweet_spot": sweet_spots(list(extra_grid), figures, reference),
            "xlabel": f"Langevin steps added at sigma_min {d.sigma_min:g}"}
