"""`analogep study`: the bias study of symmetric EP on the DSM gradient (De 2026; method.md 6),
one subcommand and one figure per claim."""

from __future__ import annotations

import click
import numpy as np

from analogep import api
from analogep.cli.common import check_image_path, echo_json, load_source
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
    (unbiasedness, relaxation budget, bias-variance), each with a figure.

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
