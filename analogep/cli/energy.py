"""`analogep energy`: what one training step and one generated sample cost in time and energy,
on the circuit and digitally."""

from __future__ import annotations

import click

from analogep import api
from analogep.cli.common import devices_option


@click.command("energy")
@click.argument("source", required=False, type=click.Path())
@click.option("--points", type=click.IntRange(min=1), default=32, show_default=True, help="Training points whose settling is simulated (scaled to the batch).")
@click.option("--samples", type=click.IntRange(min=1), default=1000, show_default=True, help="Generated samples the sampling figures are for.")
@click.option("--sample-points", type=click.IntRange(min=1), default=8, show_default=True, help="Samples whose generation is simulated on the circuit.")
@click.option("--no-cpu", is_flag=True, help="Skip timing a real step and sampling on this machine's CPU.")
@click.option("--cpu-euler", is_flag=True, help="Also time a step with the paper's Euler relaxation on this CPU (seconds to minutes).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Bar charts of where the joules go and of the ways compared (PNG).")
@devices_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (every figure, and each constant with its source).")
def energy_cmd(source, points, samples, sample_points, no_cpu, cpu_euler, plot, devices, as_json):
    """Time and energy per training step and per generated sample: circuit vs digital.

    SOURCE is a RUN_DIR/CHECKPOINT (trained weights) or a CONFIG (initial weights). The
    circuit (method.md section 7) settles each phase of each training point in turn: its
    relaxation (C dV/dt = -g0 dE/ds) is simulated on --points points, and the supply power
    of its amplifiers integrated; ADC readout, DAC anchors, the digital accumulation of the
    update and the conductance writes are added. The digital ways: FLOPs and memory traffic
    of the paper's Euler relaxation, of the fast solver, and of backpropagation through a
    feed-forward net of as many parameters, priced at a GPU's energy per FLOP and per byte;
    and this machine's CPU, timed. Every constant is in analogep/config/physics.yaml with
    its source; model.yaml's physics: section overrides them. With --devices (or a
    devices: section), the circuit is the devices' (their window's g0, the weights they
    realise) and the write pulses per step are counted by the devices' write rule.
    """
    from analogep.cli.common import check_image_path, echo_json, load_source, report_then_save, spec_with_devices
    from analogep.accounting.report import format_report

    if plot:
        check_image_path(plot)
    spec, params, origin = load_source(source)
    spec = spec_with_devices(spec, devices)
    report = api.energy(spec, params, origin, points=points, samples=samples, sample_points=sample_points,
                        measure_cpu=not no_cpu, cpu_euler=cpu_euler,
                        progress=None if as_json else _progress())
    result = report.to_dict()
    if plot:
        result["plot"] = plot

    def show() -> None:
        if as_json:
            echo_json(result)
            return
        click.echo(format_report(report))
        if plot:
            click.echo(f"plot -> {plot}")

    def save() -> None:
        if plot:
            from analogep.evaluation.plots import plot_energy

            plot_energy(result, plot)

    report_then_save(show, save)


def _progress():
    """What `energy` is simulating, one line on stderr per stage with the seconds since the
    start (a circuit that settles slowly, near a bifurcation or on faulty devices, takes
    minutes; --json keeps stderr quiet)."""
    import time

    start = time.perf_counter()
    return lambda message: click.echo(f"energy: {message} ({time.perf_counter() - start:.0f} s)", err=True)
