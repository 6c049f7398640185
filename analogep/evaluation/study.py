"""The bias study of symmetric EP (De 2026, arXiv 2604.23806; method.md section 6):
three measurements of the EP gradient against the exact one (evaluation/gradcheck.py),
each a function of one knob, for one-sided (two-phase) and symmetric (three-phase) EP.

1. unbiasedness: error vs the nudge beta with relaxation to machine precision; the fitted
   log-log slope (1 one-sided, 2 symmetric: Scellier & Bengio 2017, Laborieux et al. 2021)
   and the prefactor, separately for couplings (W) and biases (b), where De 2026 claims one
   leading bias term vanishes for couplings.
2. relaxation budget: cosine vs the number of solver iterations each phase gets (explicit
   Euler steps, or block sweeps of the fast solver), no tolerance, nudged phases warm-started
   from the unfinished free state as training does. De 2026: one-sided EP turns
   anti-correlated, symmetric stays aligned.
3. bias-variance: each phase's node voltages read with Gaussian noise of standard deviation
   s (or quantised by an ADC); the mean squared error of the estimate vs beta, its minimum
   beta*(s) against the prediction beta* ~ s^(1/2) one-sided (bias ~ beta, noise ~ s/beta),
   s^(1/3) symmetric (bias ~ beta^2).

Everything runs in float64 on the numpy backend: what is measured is the method, not float32
rounding.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from analogep.backends.numpy_backend import NumpyBackend
from analogep.config.sections import GradEPSpec, RelaxSpec
from analogep.config.spec import Spec
from analogep.data import load_dataset
from analogep.ep.levels import gradient_by_level, phases_by_level
from analogep.ep.phases import PhaseResult
from analogep.evaluation import gradcheck as gc
from analogep.model.energy import Params
from analogep.objectives.base import TrainingBatch
from analogep.objectives.factory import build_objective

KINDS = {"one-sided": 2, "symmetric": 3}


def param_groups(names) -> dict[str, list[str]]:
    """Couplings (every tensor that multiplies two activities: W..., and any other matrix),
    biases (b...: linear in one activity) and, when the energy has them, the noise-level
    biases (lb...: linear in one activity, gated by the level code; method.md 6.3)."""
    bias = [k for k in names if k.startswith("b")]
    level = [k for k in names if k.startswith("lb")]
    groups = {"coupling": [k for k in names if k not in bias and k not in level], "bias": bias}
    return {**groups, "level-bias": level} if level else groups


def group_stats(estimate: Params, exact: Params) -> dict[str, dict[str, float]]:
    """Over all parameters and per group: cosine, relative error |est - g| / |g|, and that
    error split into its part along g (scale: est.g / |g|^2 - 1, a wrong step size) and
    across g (direction: |est - (est.g / |g|^2) g| / |g|, a wrong direction)."""
    out = {}
    for group, names in {"all": list(exact), **param_groups(exact)}.items():
        a = np.concatenate([estimate[k].astype(np.float64).ravel() for k in names])
        b = np.concatenate([exact[k].astype(np.float64).ravel() for k in names])
        nb2 = float(b @ b) + 1e-300
        along = float(a @ b) / nb2
        out[group] = {
            "cosine": float(a @ b / (np.linalg.norm(a) * np.sqrt(nb2))),
            "rel_error": float(np.linalg.norm(a - b) / np.sqrt(nb2)),
            "scale_error": along - 1.0,
            "direction_error": float(np.linalg.norm(a - along * b) / np.sqrt(nb2)),
        }
    return out


def fit_slope(x, y) -> tuple[float, float]:
    """Least-squares line through (log x, log y): slope and the prefactor y / x^slope at x = 1."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    ok = np.isfinite(ly)
    if ok.sum() < 2:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(lx[ok], ly[ok], 1)
    return float(slope), float(np.exp(intercept))


def _setup(spec: Spec, params: Params, batch: int, seed: int):
    data = load_dataset(spec.train.dataset, dtype=np.float64, source=spec.data)
    points = build_objective(spec).batch(data, batch, np.random.default_rng(seed))
    model, params64 = gc.as_float64(spec, params)
    return model, params64, points, gc.exact_gradient(model, params64, points, spec.gradep)


def _phases(model, params, points: TrainingBatch, gradep: GradEPSpec, relax: RelaxSpec) -> PhaseResult:
    backend = NumpyBackend(model, gradep, relax)
    backend.program(params)
    return phases_by_level(backend, points, gradep)  # float64 points (_setup); level by level with level-bias


def _estimate(model, params, phases: PhaseResult, points: TrainingBatch) -> Params:
    weight = None if points.weight is None else points.weight.astype(np.float64)
    return gradient_by_level(model, params, phases, np.ones(points.x_t.shape[0], dtype=bool), points, weight)


def default_betas(gradep: GradEPSpec, n: int = 9) -> np.ndarray:
    """1e-5 up to half the largest beta whose -beta phase is still bounded."""
    return np.geomspace(1e-5, 0.5 * gradep.max_stable_beta, n)


def unbiasedness(
    spec: Spec, params: Params, *, batch: int = 32, seed: int = 0, betas=None, fit_min: float = 1e-5, fit_max: float = 1e-3
) -> dict:
    """Cosine and relative error of one-sided and symmetric EP vs exact (and its scale and
    direction parts), per beta and per parameter group, relaxed to 1e-11; log-log slopes
    and prefactors of the relative error and of its direction part fitted over
    fit_min <= beta <= fit_max (above about 1e-3 the nudge spring's own saturation,
    beta (alpha lambda)^2 against 1 + lambda, bends the one-sided curve)."""
    betas = default_betas(spec.gradep) if betas is None else np.asarray(betas, float)
    model, params64, points, exact = _setup(spec, params, batch, seed)
    result: dict = {"betas": [float(b) for b in betas], "batch": batch, "fit_min": fit_min, "fit_max": fit_max}
    for kind, phases in KINDS.items():
        curves: dict[str, dict[str, list[float]]] = {}
        for beta in betas:
            g = dataclasses.replace(spec.gradep, beta=float(beta), phases=phases)
            stats = group_stats(_estimate(model, params64, _phases(model, params64, points, g, gc.REFERENCE_RELAX), points), exact)
            for group, s in stats.items():
                for key, value in s.items():
                    curves.setdefault(group, {}).setdefault(key, []).append(value)
        use = (betas >= fit_min) & (betas <= fit_max)
        for group, c in curves.items():
            c["slope"], c["prefactor"] = fit_slope(betas[use], np.asarray(c["rel_error"])[use])
            c["direction_slope"], c["direction_prefactor"] = fit_slope(betas[use], np.asarray(c["direction_error"])[use])
        result[kind] = curves
    return result


def default_budgets(solver: str) -> list[int]:
    return [1, 2, 3, 5, 8, 12, 20, 30, 50, 100] if solver == "fast" else [5, 10, 20, 30, 50, 80, 120, 200, 300, 500]


def relaxation_budget(spec: Spec, params: Params, *, batch: int = 32, seed: int = 0, budgets: dict | None = None) -> dict:
    """Cosine and relative error vs exact when every phase gets a fixed number of solver
    iterations (tol 0), for the euler and fast solvers, one-sided and symmetric, at the
    config's beta. The exact gradient is of the true equilibrium (relaxed to 1e-11)."""
    model, params64, points, exact = _setup(spec, params, batch, seed)
    budgets = budgets or {"euler": default_budgets("euler"), "fast": default_budgets("fast")}
    result: dict = {"beta": spec.gradep.beta, "batch": batch}
    for solver, steps in budgets.items():
        result[solver] = {"budgets": list(steps)}
        for kind, phases in KINDS.items():
            g = dataclasses.replace(spec.gradep, phases=phases)
            curve: dict[str, list[float]] = {"cosine": [], "rel_error": [], "residual": []}
            for k in steps:
                relax = dataclasses.replace(spec.relax, solver=solver, free_steps=int(k), nudge_steps=int(k), tol=0.0)
                ph = _phases(model, params64, points, g, relax)
                s = group_stats(_estimate(model, params64, ph, points), exact)["all"]
                curve["cosine"].append(s["cosine"])
                curve["rel_error"].append(s["rel_error"])
                curve["residual"].append(float(ph.free.residual))
            result[solver][kind] = curve
    return result


def _read(phases: PhaseResult, rng: np.random.Generator, noise: float, adc: tuple[int, float] | None) -> PhaseResult:
    """The phases as a noisy read-out sees them: every node voltage of every phase plus
    independent N(0, noise^2), then (adc = (bits, range)) rounded to the ADC's step
    2 range / 2^bits and clipped to +-range."""

    def read(eq):
        state = []
        for s in eq.state:
            y = s + noise * rng.standard_normal(s.shape) if noise > 0 else s
            if adc is not None:
                bits, span = adc
                lsb = 2.0 * span / 2**bits
                y = np.clip(np.round(y / lsb) * lsb, -span, span)
            state.append(y)
        return dataclasses.replace(eq, state=state)

    return PhaseResult(read(phases.free), read(phases.plus), None if phases.minus is None else read(phases.minus), phases.beta)


def bias_variance(
    spec: Spec,
    params: Params,
    *,
    batch: int = 32,
    seed: int = 0,
    noise_levels=(1e-7, 1e-6, 1e-5, 1e-4),
    betas=None,
    repeats: int = 8,
    adc: tuple[int, float] | None = None,
) -> dict:
    """Root-mean-square relative error of EP vs exact over `repeats` noisy read-outs, per
    read-noise level and beta, one-sided and symmetric; the best beta per level (the grid
    point of least error, refined by a parabola through its neighbours in log-log) and the
    slope of log beta* against log s, against 1/2 and 1/3. With `adc` (bits, range) also the
    error of a noise-free read-out through that ADC."""
    betas = np.geomspace(1e-5, 0.5 * spec.gradep.max_stable_beta, 19) if betas is None else np.asarray(betas, float)
    model, params64, points, exact = _setup(spec, params, batch, seed)
    rng = np.random.default_rng(seed + 1)
    norm = np.sqrt(sum(float(np.sum(v**2)) for v in exact.values()))
    result: dict = {"betas": [float(b) for b in betas], "noise_levels": [float(s) for s in noise_levels],
                    "repeats": repeats, "batch": batch, "predicted_exponent": {"one-sided": 0.5, "symmetric": 1 / 3}}
    for kind, phases in KINDS.items():
        errors = np.zeros((len(noise_levels), len(betas)))
        adc_errors = []
        for j, beta in enumerate(betas):
            g = dataclasses.replace(spec.gradep, beta=float(beta), phases=phases)
            ph = _phases(model, params64, points, g, gc.REFERENCE_RELAX)
            for i, s in enumerate(noise_levels):
                sq = 0.0
                for _ in range(repeats):
                    est = _estimate(model, params64, _read(ph, rng, s, None), points)
                    sq += sum(float(np.sum((est[k] - exact[k]) ** 2)) for k in exact)
                errors[i, j] = np.sqrt(sq / repeats) / norm
            if adc is not None:
                est = _estimate(model, params64, _read(ph, rng, 0.0, adc), points)
                adc_errors.append(np.sqrt(sum(float(np.sum((est[k] - exact[k]) ** 2)) for k in exact)) / norm)
        best = [_best_beta(betas, row) for row in errors]
        slope, _ = fit_slope(noise_levels, [b for b, _ in best])
        result[kind] = {
            "rel_error": errors.tolist(),
            "best_beta": [b for b, _ in best],
            "best_error": [e for _, e in best],
            "exponent": slope,
        }
        if adc is not None:
            result[kind]["adc_rel_error"] = adc_errors
            result[kind]["adc_best_beta"] = _best_beta(betas, np.asarray(adc_errors))[0]
    if adc is not None:
        result["adc"] = {"bits": adc[0], "range": adc[1], "lsb": 2.0 * adc[1] / 2 ** adc[0]}
    return result


def _best_beta(betas: np.ndarray, errors: np.ndarray) -> tuple[float, float]:
    """The minimum of the error curve: the best grid point, refined by a parabola through it
    and its neighbours in (log beta, log error) when it is interior."""
    i = int(np.nanargmin(errors))
    if 0 < i < len(betas) - 1:
        x, y = np.log(betas[i - 1 : i + 2]), np.log(errors[i - 1 : i + 2])
        a, b, c = np.polyfit(x, y, 2)
        if a > 0:
            xm = float(np.clip(-b / (2 * a), x[0], x[2]))
            return float(np.exp(xm)), float(np.exp(a * xm**2 + b * xm + c))
    return float(betas[i]), float(errors[i])
