"""`analogep gradcheck` and `analogep compare`: is the EP gradient the gradient, and how runs differ."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from analogep import api
from analogep.cli.common import check_image_path, echo_json, load_source
from analogep.errors import AnalogepError


@click.command("gradcheck")
@click.argument("source", required=False, type=click.Path(exists=False))
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True, help="Training points compared.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the objective's training batch.")
@click.option("--beta-sweep", is_flag=True, help="Also plot error vs beta for two- and three-phase EP (log-log).")
@click.option("--plot", type=click.Path(dir_okay=False), default="beta_sweep.png", show_default=True, help="Where the sweep plot goes (the extension picks the format).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON (top-level cosine).")
def gradcheck_cmd(source, batch, seed, beta_sweep, plot, as_json):
    """Compare the EP gradient with the exact gradient of the same loss.

    SOURCE is a CONFIG (initial weights) or a RUN_DIR/CHECKPOINT (trained weights).
    The exact gradient of the objective's loss, mean w/2 |v - u|^2 (w = 1 for flow
    matching, sigma^2 for score matching), comes from implicit differentiation of the
    free equilibrium (float64, relaxed to 1e-11). The EP estimate is measured as
    training measures it (the config's solver, steps and dtype), and again in float64
    with tight relaxation, which leaves only the O(beta^2) (three-phase) or O(beta)
    (two-phase) bias of the method.
    """
    if beta_sweep:
        check_image_path(plot)
    spec, params, origin = load_source(source)
    betas = np.geomspace(1e-5, 0.5 * spec.gradep.max_stable_beta, 9) if beta_sweep else None
    result = {"source": origin, **api.gradcheck(spec, params, batch=batch, seed=seed, beta_sweep=betas)}
    if beta_sweep:
        from analogep.evaluation.plots import plot_beta_sweep

        errors = result["beta_sweep"]
        plot_beta_sweep(betas, {k: v for k, v in errors.items() if k != "betas"}, plot,
                        title=f"EP vs exact gradient, {origin}, batch {batch}")
        errors["plot"] = plot
    as_trained = result
    tight = result["float64_tight"]
    if as_json:
        echo_json(result)
        return
    click.echo(f"EP vs exact gradient, {origin}, batch {batch}, beta {spec.gradep.beta:g}, {spec.gradep.phases} phases")
    click.echo(f"  as trained ({spec.relax.solver}, {spec.model.dtype}): cosine {as_trained['cosine']:.8f}  rel. error {as_trained['rel_error']:.3e}")
    click.echo(f"  float64, tight relaxation:      cosine {tight['cosine']:.8f}  rel. error {tight['rel_error']:.3e}")
    click.echo("  per tensor (as trained):")
    for name, s in as_trained['per_tensor'].items():
        click.echo(f"    {name:6s} cosine {s['cosine']:.8f}  rel. error {s['rel_error']:.3e}")
    if beta_sweep:
        click.echo(f"  beta sweep -> {plot}")
        for i, b in enumerate(result["beta_sweep"]["betas"]):
            click.echo(f"    beta {b:.2e}: two-phase {errors['two-phase'][i]:.2e}  three-phase {errors['three-phase'][i]:.2e}")


@click.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--plot", type=click.Path(dir_okay=False), default="compare.png", show_default=True,
              help="Where the overlaid loss curves go (the extension picks the format).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare_cmd(runs, plot, as_json):
    """Compare training runs step by step (the first is the reference).

    RUNS are run folders. Reports each run's solver, steps, final loss, seconds per step
    (median of the logged steps' step_time) and, where `analogep evaluate` wrote quality.json, its sample quality; then each run
    against the first over the steps both logged: up to which step the losses agree,
    the largest difference, and the mean loss over the second half. Writes the loss
    curves and their differences to --plot.
    """
    from analogep.evaluation.compare import compare_runs, format_comparison, load_run
    from analogep.evaluation.plots import plot_loss_comparison

    if len(runs) < 2:
        raise AnalogepError(f"compare needs at least two run folders; got {len(runs)}")
    check_image_path(plot)
    summaries = [load_run(r) for r in runs]
    result = compare_runs(summaries)
    plot_loss_comparison([(f"{Path(s.path).name} ({s.solver})", s.steps, s.loss) for s in summaries], plot)
    result["plot"] = plot
    if as_json:
        echo_json(result)
    else:
        click.echo(format_comparison(result))
        click.echo(f"loss curves -> {plot}")
