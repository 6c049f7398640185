"""`analogep study`: the bias study of symmetric EP on the DSM gradient (De 2026; method.md 6),
one subcommand and one figure per claim."""

from __future__ import annotations

import click
import numpy as np

from analogep import api
from analogep.cli.common import check_image_path, check_precharge, echo_json, load_source
from analogep.errors import AnalogepError

_SOURCE = click.argument("source", required=False, type=click.Path(exists=False))
_BATCH = click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True, help="Training points compared.")
_SEED = click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the objective's batch.")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print the measurements as JSON.")


def _plot_option(default: str):
    return click.option("--plot", type=click.Path(dir_okay=False), default=default, show_default=True,
                        help="Where the figure goes (the extension picks the format).")


def _source(source: str | None, plot: str):
    """Check the figure's path first (a typo costs no computation), then load the model."""
    check_image_path(plot)
    return load_source(source)


@click.group("study")
def study_cmd() -> None:
    """The bias study of EP on the objective's gradient: one subcommand per claim of De 2026
    (unbiasedness, relaxation budget, bias-variance), each with a figure; and the FlowEqProp
    paper's generation claims (generation: quality against t1 and Euler steps; on a DSM run
    against the noise schedule's extent and the Langevin steps).

    SOURCE is a CONFIG (initial weights) or a RUN_DIR/CHECKPOINT (trained weights), as for
    gradcheck; the objective is the config's (train.objective: dsm for the paper's claims).
    The reference is the exact gradient by implicit differentiation (float64).
    """


@study_cmd.command("unbiasedness")
@_SOURCE
@_BATCH
@_SEED
@click.option("--fit-min", type=click.FloatRange(min=0, min_open=True), default=1e-5, show_default=True,
              help="Smallest beta in the slope fit.")
@click.option("--fit-max", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="Largest beta in the slope fit (beyond, the nudge spring saturates).")
@_plot_option("unbiasedness.png")
@_JSON
def unbiasedness_cmd(source, batch, seed, fit_min, fit_max, plot, as_json):
    """Error of one-sided and symmetric EP vs exact as beta -> 0, couplings and biases apart.

    Nine betas from 1e-5 to half the largest stable one, relaxed to 1e-11 in float64; the
    log-log slope of the relative error (expected 1 one-sided, 2 symmetric) and its
    prefactor (error / beta^slope) per parameter group, and the same for the error's part
    across the exact gradient (a wrong direction; the rest is a wrong step size).
    """
    if fit_min >= fit_max:
        raise AnalogepError(f"--fit-min {fit_min:g} must be below --fit-max {fit_max:g}")
    spec, params, origin = _source(source, plot)
    result = {"source": origin, **api.study("unbiasedness", spec, params, batch=batch, seed=seed, fit_min=fit_min,
                                            fit_max=fit_max)}
    if _plotted(result, "plot_unbiasedness", plot, as_json):
        return
    click.echo(f"EP vs exact gradient as beta -> 0, {origin} ({spec.train.objective}), batch {batch}")
    for kind in ("one-sided", "symmetric"):
        for group in ("coupling", "bias", "all"):
            c = result[kind][group]
            click.echo(f"  {kind:9s} {group:8s} error slope {c['slope']:.3f} prefactor {c['prefactor']:.3g}; "
                       f"direction slope {c['direction_slope']:.3f} prefactor {c['direction_prefactor']:.3g}")
    click.echo(f"figure -> {plot}")


@study_cmd.command("budget")
@_SOURCE
@_BATCH
@_SEED
@click.option("--euler", "euler_steps", help="Comma-separated Euler steps per phase [default: 5 to 500].")
@click.option("--sweeps", "fast_sweeps", help="Comma-separated fast-solver sweeps per phase [default: 1 to 100].")
@_plot_option("budget.png")
@_JSON
def budget_cmd(source, batch, seed, euler_steps, fast_sweeps, plot, as_json):
    """Cosine of one-sided and symmetric EP vs exact under a finite relaxation budget.

    Every phase gets exactly N iterations (tolerance 0; nudged phases start from the
    unfinished free state, as in training), at the config's beta, float64: explicit Euler
    steps (relax.step) and block sweeps of the fast solver. The exact gradient is of the
    true equilibrium.
    """
    budgets = {"euler": _counts(euler_steps, "--euler"), "fast": _counts(fast_sweeps, "--sweeps")}
    spec, params, origin = _source(source, plot)
    from analogep.evaluation.study import default_budgets

    budgets = {k: v or default_budgets(k) for k, v in budgets.items()}
    result = {"source": origin, **api.study("budget", spec, params, batch=batch, seed=seed, budgets=budgets)}
    if _plotted(result, "plot_relaxation_budget", plot, as_json):
        return
    click.echo(f"EP vs exact gradient under a finite relaxation budget, {origin}, beta {result['beta']:g}, batch {batch}")
    for solver in ("euler", "fast"):
        r = result[solver]
        click.echo(f"  {solver}: iterations  " + " ".join(f"{k:>7d}" for k in r["budgets"]))
        for kind in ("one-sided", "symmetric"):
            click.echo(f"    {kind:9s} cosine " + " ".join(f"{c:7.3f}" for c in r[kind]["cosine"]))
    click.echo(f"figure -> {plot}")


@study_cmd.command("bias-variance")
@_SOURCE
@_BATCH
@_SEED
@click.option("--noise", "noise", help="Comma-separated read-noise levels s, state units [default: 1e-7,1e-6,1e-5,1e-4].")
@click.option("--repeats", type=click.IntRange(min=1), default=8, show_default=True, help="Noisy read-outs per point of the curve.")
@click.option("--adc-bits", type=click.IntRange(min=0, max=24),
              help="Also a noise-free read-out through an ADC of this many bits over +-physics.adc_range; 0: none "
                   "[default: physics.adc_bits].")
@_plot_option("bias_variance.png")
@_JSON
def bias_variance_cmd(source, batch, seed, noise, repeats, adc_bits, plot, as_json):
    """Error of one-sided and symmetric EP vs beta with noisy node-voltage read-outs.

    Every node of every phase is read with independent Gaussian noise of standard
    deviation s; the rms relative error over --repeats read-outs is minimised over beta.
    The analysis predicts beta* ~ s^(1/2) one-sided (bias ~ beta, noise ~ s/beta) and
    s^(1/3) symmetric (bias ~ beta^2); the measured exponent is the slope of log beta*
    against log s.
    """
    levels = _floats(noise, "--noise") or [1e-7, 1e-6, 1e-5, 1e-4]
    if len(levels) < 2:
        raise AnalogepError(f"--noise: {noise!r} gives one level; the exponent needs two or more")
    spec, params, origin = _source(source, plot)
    bits = spec.physics.adc_bits if adc_bits is None else adc_bits
    adc = (bits, spec.physics.adc_range) if bits else None
    result = {"source": origin, **api.study("bias-variance", spec, params, batch=batch, seed=seed,
                                            noise_levels=levels, repeats=repeats, adc=adc)}
    if _plotted(result, "plot_bias_variance", plot, as_json):
        return
    click.echo(f"EP vs exact gradient with read noise, {origin}, batch {batch}, {repeats} read-outs per point")
    for kind in ("one-sided", "symmetric"):
        r = result[kind]
        pairs = "  ".join(f"s {s:.0e}: beta* {b:.2e} (error {e:.1e})"
                          for s, b, e in zip(levels, r["best_beta"], r["best_error"]))
        click.echo(f"  {kind:9s} {pairs}")
        click.echo(f"  {kind:9s} exponent of beta*(s): {r['exponent']:.3f} (predicted {result['predicted_exponent'][kind]:.3f})")
        if adc:
            click.echo(f"  {kind:9s} {adc[0]}-bit ADC alone: best beta {r['adc_best_beta']:.2e}")
    click.echo(f"figure -> {plot}")


@study_cmd.command("generation")
@_SOURCE
@click.option("--t1-grid", help="Comma-separated end times t1 [default: 0.6,0.8,1,1.2,1.4,1.6,2]. On a DSM run: the "
                                "noise schedule's extent tau, sigma_max (sigma_min/sigma_max)^tau (1: sigma_min; > 1: "
                                "continued below it on the last level's energy).")
@click.option("--steps-grid", help="Comma-separated Euler step counts over [0, --steps-t1] (dt = t1/steps); on a DSM run "
                                   "Langevin steps per level to tau = --steps-t1; none: the steps sweep is not run.")
@click.option("--steps-t1", type=click.FloatRange(min=0, min_open=True),
              help="t1 (DSM: tau) of the steps sweep [default: generate.t1; DSM: 1].")
@click.option("--steps-per-level", type=click.IntRange(min=1),
              help="DSM runs: Langevin steps per level of the tau and extra sweeps [default: dsm.steps_per_level].")
@click.option("--extra-grid", help="DSM runs: comma-separated Langevin steps added at sigma_min after the schedule, "
                                   "before its Tweedie step (0: the sampler as it is); none: not run.")
@click.option("--modes", default="energy,spring", show_default=True, help="Read-out modes of the t1 sweep (energy, spring).")
@click.option("--seeds", default="1,2,3", show_default=True, help="Comma-separated noise seeds (mean and spread over them).")
@click.option("--n", type=click.IntRange(min=2, max=4096), default=500, show_default=True, help="Samples per seed and point.")
@click.option("--dt", type=click.FloatRange(min=0, min_open=True),
              help="Euler step of the t1 sweep (flow matching only) [default: generate.dt].")
@_plot_option("generation.png")
@_JSON
def generation_cmd(source, t1_grid, steps_grid, steps_t1, steps_per_level, extra_grid, modes, seeds, n, dt, plot,
                   as_json):
    """Sample quality against the end time t1 and the number of Euler steps (Gower 2026,
    section 4: extended generation, its sweet spot, spring vs energy read-out).

    Every `evaluate` figure (confidence, classes covered, Fréchet distance, nearest-train
    distance, share outside [-1, 1]) at each t1 for each mode, mean and spread over the
    seeds, and the t1 where each figure is best. SOURCE: a RUN_DIR or CHECKPOINT. On a
    denoising score-matching run the clock is the annealed Langevin sampler's noise
    schedule (evaluation/dsm_generation.py): t1 is its extent tau, the steps are Langevin
    steps per level, and --extra-grid adds steps at sigma_min before the Tweedie step.
    """
    from analogep.evaluation.generation import MODES

    grid = _floats(t1_grid, "--t1-grid") or [0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 2.0]
    counts = _counts(steps_grid, "--steps-grid")
    extra = _extra_counts(extra_grid)
    seed_list = sorted(set(_numbers(seeds, "--seeds", int)))
    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    bad = [m for m in mode_list if m not in MODES]
    if bad or not mode_list:
        raise AnalogepError(f"--modes: {modes!r}; allowed: {', '.join(MODES)}")
    spec, params, origin = _source(source, plot)
    say = (lambda m: None) if as_json else (lambda m: click.echo(m, err=True))
    if spec.train.objective == "dsm":
        if dt is not None:
            raise AnalogepError("--dt: a dsm run's sampler takes no Euler step (its clock is the noise schedule)")
        result = _dsm_generation(spec, params, origin, grid, counts, steps_t1, steps_per_level, extra, mode_list,
                                 seed_list, n, say)
        label = "tau"
    elif spec.train.objective == "flow":
        if steps_per_level is not None or extra:
            name = "--steps-per-level" if steps_per_level is not None else "--extra-grid"
            raise AnalogepError(f"{name}: {origin} is a flow run; the option is of a dsm run's Langevin sampler")
        result = _flow_generation(spec, params, origin, grid, counts, steps_t1, mode_list, seed_list, n, dt, say)
        label = "t1"
    else:
        raise AnalogepError(f"study generation: {origin} is a {spec.train.objective} run; the sweeps are of flow "
                            "matching's Euler sampler and a dsm run's annealed Langevin sampler")
    if _plotted(result, "plot_generation", plot, as_json):
        return
    click.echo(f"generation quality, {origin}: {n} samples, seeds {','.join(map(str, seed_list))} (mean ± sd)")
    ref = result["t1"]["reference"]
    _table(label, result["t1"]["grid"], {m: v["figures"] for m, v in result["t1"]["modes"].items()}, ref)
    if label == "tau":
        click.echo("  tau ends at sigma " + ", ".join(f"{s:.3g}" for s in result["t1"]["sigma_end"])
                   + f" ({result['t1']['steps_per_level']} Langevin steps per level)")
    for m, v in result["t1"]["modes"].items():
        click.echo(f"  sweet spots ({m}): " + ", ".join(f"{f} at {label} = {s['at']:g}" for f, s in v["sweet_spot"].items()))
    if counts:
        _table("steps", counts, {"energy": result["steps"]["figures"]}, ref)
    if extra:
        _table("extra", extra, {"energy": result["extra"]["figures"]}, ref)
        click.echo("  sweet spots (extra steps at sigma_min): "
                   + ", ".join(f"{f} at {s['at']:g}" for f, s in result["extra"]["sweet_spot"].items()))
    click.echo(f"figure -> {plot}")


def _flow_generation(spec, params, origin, grid, counts, steps_t1, mode_list, seed_list, n, dt, say) -> dict:
    """study generation on a flow-matching run: t1 and Euler steps (evaluation/generation.py)."""
    from analogep.config.rules import MAX_GENERATE_STEPS
    from analogep.evaluation.generation import steps_sweep, t1_sweep

    alpha = spec.gradep.alpha
    dt = spec.generate.dt if dt is None else dt
    t1 = spec.generate.t1 if steps_t1 is None else steps_t1
    if dt * alpha >= 2.0:
        raise AnalogepError(f"--dt: {dt:g} is not below 2/alpha = {2 / alpha:g} (Euler overshoots)")
    if min(grid) < dt:
        raise AnalogepError(f"--t1-grid: {min(grid):g} is below the Euler step dt = {dt:g}")
    if max(grid) / dt > MAX_GENERATE_STEPS:
        raise AnalogepError(f"--t1-grid: {max(grid):g}/{dt:g} is more than {MAX_GENERATE_STEPS:,} Euler steps")
    if counts and (t1 / min(counts)) * alpha >= 2.0:
        raise AnalogepError(f"--steps-grid: {min(counts)} steps over t1 = {t1:g} is a step of {t1 / min(counts):g}, "
                            f"not below 2/alpha = {2 / alpha:g}")
    if counts and max(counts) > MAX_GENERATE_STEPS:
        raise AnalogepError(f"--steps-grid: {max(counts)} is more than {MAX_GENERATE_STEPS:,} Euler steps")
    result: dict = {"source": origin}
    result["t1"] = t1_sweep(spec, params, t1_grid=grid, seeds=seed_list, n=n, dt=dt, modes=tuple(mode_list), say=say)
    if counts:
        result["steps"] = steps_sweep(spec, params, steps_grid=counts, seeds=seed_list, n=n, t1=t1, say=say)
    return result


def _dsm_generation(spec, params, origin, grid, counts, steps_t1, steps_per_level, extra, mode_list, seed_list, n,
                    say) -> dict:
    """study generation on a dsm run: the schedule's extent tau and the Langevin steps per
    level (evaluation/dsm_generation.py)."""
    from analogep.config.rules import MAX_GENERATE_STEPS
    from analogep.evaluation.dsm_generation import extra_sweep, schedule_levels, steps_sweep, tau_sweep

    per_level = spec.dsm.steps_per_level if steps_per_level is None else steps_per_level
    tau = 1.0 if steps_t1 is None else steps_t1
    last = max(schedule_levels(spec.dsm, grid))
    if (last + 1) * per_level > MAX_GENERATE_STEPS:
        raise AnalogepError(f"--t1-grid: tau {max(grid):g} is {last + 1} levels x {per_level} steps, more than "
                            f"{MAX_GENERATE_STEPS:,} Langevin steps")
    if counts:
        (end,) = schedule_levels(spec.dsm, [tau])
        if (end + 1) * max(counts) > MAX_GENERATE_STEPS:
            raise AnalogepError(f"--steps-grid: {max(counts)} steps per level x {end + 1} levels is more than "
                                f"{MAX_GENERATE_STEPS:,} Langevin steps")
    if extra and spec.dsm.levels * per_level + max(extra) > MAX_GENERATE_STEPS:
        raise AnalogepError(f"--extra-grid: {spec.dsm.levels} levels x {per_level} steps + {max(extra)} is more than "
                            f"{MAX_GENERATE_STEPS:,} Langevin steps")
    result: dict = {"source": origin}
    result["t1"] = tau_sweep(spec, params, taus=grid, seeds=seed_list, n=n, steps_per_level=per_level,
                             modes=tuple(mode_list), say=say)
    if counts:
        result["steps"] = steps_sweep(spec, params, steps_grid=counts, seeds=seed_list, n=n, tau=tau, say=say)
    if extra:
        result["extra"] = extra_sweep(spec, params, extra_grid=extra, seeds=seed_list, n=n, steps_per_level=per_level,
                                      say=say)
    return result


def _extra_counts(text: str | None) -> list[int]:
    """--extra-grid: distinct whole numbers >= 0, sorted."""
    if text is None:
        return []
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise AnalogepError(f"--extra-grid: {text!r} is not a comma-separated list of whole numbers") from None
    if not values or values[0] < 0:
        raise AnalogepError(f"--extra-grid: {text!r} must list whole numbers >= 0")
    return values


@study_cmd.command("continuous")
@_SOURCE
@click.option("--ratios", help="Comma-separated visible-to-hidden capacitance ratios, each >= 1 [default: 1,3,10,30,100,300].")
@click.option("--seeds", default="1,2,3", show_default=True, help="Comma-separated noise seeds (mean and spread over them).")
@click.option("--n", type=click.IntRange(min=2, max=4096), default=300, show_default=True, help="Samples per seed and ratio.")
@click.option("--t1", type=float, help="Flow time of every sample, > 0 [default: generate.t1].")
@click.option("--spice-samples", type=click.IntRange(min=0), default=0, show_default=True,
              help="Samples also generated by ngspice transients, compared with the numpy flow (0: none).")
@click.option("--spice-ratio", type=float, default=10.0, show_default=True, help="Capacitance ratio of the ngspice transients.")
@click.option("--spice-reltol", type=float, default=1e-6, show_default=True, help="ngspice's reltol of the transients.")
@click.option("--precharge", type=float, default=0.0, show_default=True,
              help="Hold the visible nodes at the noise for this many hidden time constants C_h/g0 before releasing "
                   "them, so the hidden layer starts near its equilibrium (0: none).")
@_plot_option("continuous.png")
@_JSON
def continuous_cmd(source, ratios, seeds, n, t1, spice_samples, spice_ratio, spice_reltol, precharge, plot, as_json):
    """Continuous generation (the circuit's own flow, no Euler steps) against the capacitance
    ratio: every `evaluate` figure beside the Euler sampler's at the same t1 from the same
    noise, and the circuit's time and energy per sample beside the clamped loop's.
    SOURCE: a flow-matching RUN_DIR or CHECKPOINT.
    """
    from analogep.evaluation.continuous import continuous_study

    grid = _floats(ratios, "--ratios") or [1.0, 3.0, 10.0, 30.0, 100.0, 300.0]
    if min(grid) < 1:
        raise AnalogepError(f"--ratios: {min(grid):g} is below 1; the visible nodes must be the slow ones (C_v >= C_h)")
    if not np.isfinite(spice_ratio) or spice_ratio < 1:
        raise AnalogepError(f"--spice-ratio: {spice_ratio:g} is below 1; the visible nodes must be the slow ones")
    if not (np.isfinite(spice_reltol) and 0 < spice_reltol < 1):
        raise AnalogepError(f"--spice-reltol: {spice_reltol:g} must be in (0, 1)")
    if t1 is not None and not (np.isfinite(t1) and t1 > 0):
        raise AnalogepError(f"--t1: {t1:g} must be positive")
    check_precharge(precharge)
    seed_list = sorted(set(_numbers(seeds, "--seeds", int)))
    spec, params, origin = _source(source, plot)
    if spec.train.objective != "flow":
        raise AnalogepError(f"study continuous: {origin} is a {spec.train.objective} run; continuous generation is the "
                            "flow-matching energy's gradient flow")
    if spec.train.time_code_size:
        raise AnalogepError(f"study continuous: {origin} has a time input (train.time_conditioning: "
                            f"{spec.train.time_conditioning}); the circuit's own flow cannot set a time code as it runs")
    t1 = spec.generate.t1 if t1 is None else t1
    say = (lambda m: None) if as_json else (lambda m: click.echo(m, err=True))
    result = {"source": origin, **continuous_study(spec, params, ratios=grid, seeds=seed_list, n=n, t1=t1,
                                                   spice_samples=spice_samples, spice_ratio=spice_ratio,
                                                   spice_reltol=spice_reltol, precharge=precharge, say=say)}
    if _plotted(result, "plot_continuous", plot, as_json):
        return
    click.echo(f"continuous generation, {origin}: t1 {t1:g}" + (f", precharge {precharge:g} C_h/g0" if precharge else "")
               + f", {n} samples, seeds {','.join(map(str, seed_list))} (mean ± sd)")
    _table("ratio", grid, {"continuous": result["figures"]}, result["reference"])
    eu = result["euler"]
    click.echo(f"  Euler dt {result['dt']:g}: " + ", ".join(f"{f} {eu[f]['mean']:.3f}±{eu[f]['std']:.3f}" for f in eu))
    en = result["energy"]
    for r, e in zip(grid, en["continuous"]):
        click.echo(f"  ratio {r:g}: {e['seconds'] * 1e6:.3g} us, {e['joules'] * 1e9:.3g} nJ per sample")
    c = en["clamped"]
    click.echo(f"  clamped Euler loop: {c['seconds'] * 1e6:.3g} us, {c['joules'] * 1e9:.3g} nJ per sample")
    if "agreement" in result:
        a = result["agreement"]
        click.echo(f"  ngspice vs numpy at ratio {a['ratio']:g}: max {max(a['spice_vs_numpy']):.2e} of full scale "
                   f"({a['n']} samples; numpy vs Euler {max(a['numpy_vs_euler']):.2e})")
    click.echo(f"figure -> {plot}")


def _table(name: str, grid: list, series: dict, reference: dict) -> None:
    from analogep.evaluation.generation import FIGURES

    for label, figures in series.items():
        click.echo(f"  {label}: {name:>5s} " + " ".join(f"{g:>13g}" for g in grid) + "   held-out real")
        for f in FIGURES:
            cells = " ".join(f"{m:6.3f}±{s:5.3f}" for m, s in zip(figures[f]["mean"], figures[f]["std"]))
            click.echo(f"    {f[:10]:>10s} {cells}   {reference[f]:.3f}")


def _plotted(result: dict, plotter: str, plot: str, as_json: bool) -> bool:
    """Draw the study's figure (evaluation.plots.<plotter>) and note it in `result`; with
    --json print the result and say so (the caller prints nothing more)."""
    from analogep.evaluation import plots

    getattr(plots, plotter)(result, plot)
    result["plot"] = plot
    if as_json:
        echo_json(result)
    return as_json


def _numbers(text: str | None, option: str, cast) -> list:
    if text is None:
        return []
    try:
        values = [cast(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise AnalogepError(f"{option}: {text!r} is not a comma-separated list of numbers") from None
    if not values or any(not np.isfinite(v) or v <= 0 for v in values):
        raise AnalogepError(f"{option}: {text!r} must list positive numbers")
    return values


def _counts(text: str | None, option: str) -> list[int]:
    return sorted(set(_numbers(text, option, int)))


def _floats(text: str | None, option: str) -> list[float]:
    return sorted(set(_numbers(text, option, float)))
