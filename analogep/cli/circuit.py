"""The SPICE commands of the CLI: `compile` (circuit decks) and `check` (ngspice vs numpy).
"""

from __future__ import annotations

from pathlib import Path

import click

from analogep import api
from analogep.spice.run.runners import runner_choices
from analogep.cli.common import devices_option, spec_with_devices


# Peak memory of compiling, per parameter: measured 2.9 kB ([64, 4000], 260k parameters:
# 750 MB above the process's start, while the decks' text is 87 B per parameter each).
COMPILE_BYTES_PER_PARAM = 3000
# From this many parameters on, compile says what it is building before it starts.
COMPILE_ANNOUNCE = 100_000


@click.command("compile")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--checkpoint", type=click.Path(), help="Trained weights (run folder or .npz) [default: initial weights from the config's seed].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Output folder [default: decks/<config name>; the repository's reviewed decks in netlists/ change only "
                   "when named here].")
@click.option("--transient", is_flag=True, help="Also write <phase>_tran.cir: the circuit relaxing in time from the phase's start (needs circuit.capacitance > 0).")
@devices_option
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON (out, files, clipped, weights).")
def compile_cmd(config, checkpoint, out_dir, transient, devices, as_json):
    """Compile the energy network into ngspice decks (method.md section 7).

    Writes free.cir, nudge_plus.cir, nudge_minus.cir (the three GradEP phases of one
    training point), generate.cir (visible nodes clamped: the inference circuit) and
    the subcircuit library analogep.lib beside them. Each deck runs as it is:
    ngspice -b OUT/free.cir prints the equilibrium node voltages. With --transient each
    circuit also gets a transient deck (free_tran.cir, ...): with capacitance on every
    node it relaxes in time from where the phase starts and prints where it ended, a
    minimum of the energy, with no .nodeset. With --devices (or a run trained in situ,
    on its own devices) the decks are of the circuit realised on the devices.
    """
    from analogep.cli.common import check_writable, echo_json, ensure_fits_in_memory, load_config, load_source, refuse_empty
    from analogep.cli.outputs import DECKS_FOLDER
    from analogep.io import write_text
    from analogep.model.factory import build_energy
    from analogep.runtime import size_text
    from analogep.training.checkpoint import ensure_params_fit, load_checkpoint

    refuse_empty(out=out_dir)

    state = None
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)  # a run folder or .npz, never a config
        params, origin = ckpt.params, f"{checkpoint} (step {ckpt.step})"
        state = ckpt.devices if devices is None else None  # a run trained in situ: its own devices
        spec = load_config(config) if config else ckpt.spec
        ensure_params_fit(build_energy(spec.model), params, checkpoint)
    else:
        spec, params, origin = load_config(config), None, None
    spec = spec_with_devices(spec, devices)
    out = Path(out_dir or DECKS_FOLDER / spec.name)
    check_writable(out / "free.cir")
    n_params = build_energy(spec.model).n_params
    ensure_fits_in_memory(n_params * COMPILE_BYTES_PER_PARAM, f"the decks of {n_params:,} parameters",
                          "compile a smaller model (model.sizes)")
    if params is None:  # the config's initial weights, drawn once the decks are known to fit
        _, params, origin = load_source(config)
    if n_params >= COMPILE_ANNOUNCE:
        click.echo(f"compile: {n_params:,} parameters, about {size_text(n_params * COMPILE_BYTES_PER_PARAM)} of memory; "
                   f"relaxing the decks' points and writing the decks", err=True)
    files, clipped = api.compile_circuit(spec, params, origin, transient=transient, device_state=state)
    for name, text in files.items():
        write_text(out / name, text)
    n_clipped = sum(clipped.values())
    if n_clipped:
        click.echo(
            f"warning: clipped {n_clipped} weights to the conductance range ("
            + ", ".join(f"{k}: {v}" for k, v in clipped.items())
            + f"; |W| <= {(spec.circuit.gmax - spec.circuit.gmin) / spec.circuit.g0:g})",
            err=True,
        )
    if as_json:
        echo_json({"out": str(out), "files": list(files), "clipped": clipped, "weights": origin})
        return
    click.echo(f"wrote {', '.join(files)} to {out} (weights: {origin}); run: ngspice -b {out / 'free.cir'}")


@click.command("check")
@click.argument("source", required=False, type=click.Path())
@click.option("--n", type=click.IntRange(min=1), default=16, show_default=True, help="Training points solved both ways.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the objective's training batch.")
@click.option("--spice-runner", type=click.Choice(runner_choices()), help="ngspice interface [default: circuit.runner].")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="ngspice processes (0: the cores not already busy).")
@click.option("--scheduler", help="With the dask runner: a running Dask cluster's scheduler, tcp://HOST:PORT [default: circuit.scheduler].")
@click.option("--plot", type=click.Path(dir_okay=False), help="Scatter plot of SPICE vs numpy voltages [default: spice_check.png, in RUN_DIR for a run].")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (top-level max_abs_error, max_rel_error, grad_cosine).")
@devices_option
@click.pass_context
def check_cmd(ctx, source, n, seed, spice_runner, scheduler, workers, plot, as_json, devices):
    """Cross-check the circuit: ngspice vs numpy equilibria on the same training points.

    SOURCE is a CONFIG (initial weights) or a RUN_DIR/CHECKPOINT. Solves all GradEP
    phases with both backends and reports the node-voltage errors (relative errors are
    full-scale: divided by the largest node voltage), the velocity error and the cosine
    between the two EP gradients. Exits with 1 when they disagree by more than 1e-6.
    With --devices, both backends program the same devices; with crossbar line
    resistance (devices.wire_resistance, SPICE only) the difference is reported, not judged.
    """
    from analogep.cli.common import check_image_path, load_source, report_then_save, spec_with_runner
    from analogep.evaluation.plots import plot_scatter

    if plot is None:
        plot = str(Path(source) / "spice_check.png") if source and Path(source).is_dir() else "spice_check.png"
    check_image_path(plot)
    spec, params, origin = load_source(source)
    spec = spec_with_devices(spec_with_runner(spec, None, scheduler), devices)
    report, ref, got = api.check_circuit(spec, params, n=n, seed=seed, runner=spice_runner, workers=workers)
    result = {"source": origin, "plot": plot, **report.to_dict()}
    report_then_save(lambda: _print_check(report, result, origin, n, plot, as_json),
                     lambda: plot_scatter(ref, got, plot, "numpy equilibrium (V)", "ngspice node voltage (V)",
                                          title=f"{origin}: {n} points x {spec.gradep.phases} phases"))
    if not report.passed:
        ctx.exit(1)


def _print_check(report, result: dict, origin: str, n: int, plot: str, as_json: bool) -> None:
    from analogep.cli.common import echo_json
    from analogep.evaluation.crosscheck import TOLERANCE

    if as_json:
        echo_json(result)
    else:
        click.echo(f"ngspice {report.ngspice} ({report.runner}{', KLU' if report.klu else ''}) vs numpy, {origin}, {n} training points")
        click.echo(f"  node voltages: max abs error {report.max_abs_error:.3e}, max rel error {report.max_rel_error:.3e} (full scale)")
        click.echo(f"  velocity:      max abs error {report.velocity_abs_error:.3e}, rel {report.velocity_rel_error:.3e}")
        click.echo(f"  EP gradient:   cosine {report.grad_cosine:.9f}, rel error {report.grad_rel_error:.3e}")
        click.echo(f"  time: ngspice {report.spice_seconds:.2f} s ({report.solves_per_s:.1f} solves/s), numpy {report.numpy_seconds:.2f} s; plot {plot}")
        if report.wire_resistance > 0:
            click.echo(f"  NOT JUDGED: line resistance {report.wire_resistance:g} ohm per segment, which numpy does not model; "
                       "the difference above is its IR-drop error")
        else:
            click.echo(f"  {'PASS' if report.passed else 'FAIL'} (tolerance {TOLERANCE:g})")
