"""`analogep robustness`: an ideally trained model deployed on non-ideal devices."""

from __future__ import annotations

from pathlib import Path

import click

from analogep import api
from analogep.cli.common import check_image_path, echo_json, report_then_save


@click.command("robustness")
@click.argument("source", type=click.Path())
@click.option("--devices", "devices",
              help="Base devices of every sweep: a preset (ideal, rram, rram-stress, pcm, periphery, or a + combination) or a devices YAML file "
                   "[default: ideal with w_max 1].")
@click.option("--sweep", "sweeps", multiple=True, metavar="KEY=v1,v2,...",
              help="A devices key and its values (YAML scalars: null, 8, 0.01); repeatable "
                   "[default: variability, bits, stuck faults, driver gain and offset, read noise, ADC bits].")
@click.option("--n", type=click.IntRange(min=2), default=500, show_default=True, help="Samples per severity.")
@click.option("--threads", type=click.IntRange(min=0), help="BLAS threads [default: the run's train.threads].")
@click.option("--plot", type=click.Path(dir_okay=False), help="Quality against each non-ideality (the extension picks the format).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def robustness_cmd(source, devices, sweeps, n, threads, plot, as_json):
    """Deploy a trained model on non-ideal devices and report sample quality per severity.

    SOURCE is a RUN_DIR or CHECKPOINT (typically trained ideally). For each swept devices
    key and value, the weights are programmed once onto fresh devices (the base devices
    with that key changed), N digits are sampled through the non-ideal numpy circuit, and
    judged as `evaluate` judges them (classifier confidence, classes covered, Frechet
    distance). Wire resistance is not swept (--sweep wire_resistance is refused): the numpy
    backend does not model it, so every row would be the same (analogep check --devices on
    the SPICE backend does model it). The report is printed before the plot is written.
    """
    from analogep.config.load import with_devices
    from analogep.config.schema import to_dict
    from analogep.evaluation.robustness import parse_sweep
    from analogep.training.checkpoint import load_checkpoint

    if plot is not None:
        check_image_path(plot)
    ckpt = load_checkpoint(source)
    base = None if devices is None else to_dict(with_devices(ckpt.spec, devices).devices)
    parsed = dict(parse_sweep(s) for s in sweeps) if sweeps else None
    if base is not None and base.get("wire_resistance", 0) > 0:
        click.echo(f"warning: --devices {devices}: wire_resistance {base['wire_resistance']:g} ohm is not modelled "
                   f"by the numpy backend these samples come from; every row is without it", err=True)

    def row(key, value, q):
        click.echo(f"robustness: {key} = {value}: confidence {q['confidence']:.3f}, classes {q['classes_covered']}, "
                   f"Frechet {q['frechet']:.2f}", err=True)

    report = api.robustness(ckpt.spec, ckpt.params, devices=base, sweeps=parsed, n=n, threads=threads, on_row=row)
    source_text = f"{source} (step {ckpt.step})"
    result = {"source": source_text, **report.to_dict()}
    if plot is not None:
        result["plot"] = str(Path(plot))

    def show() -> None:
        if as_json:
            echo_json(result)
            return
        click.echo(f"{source_text} deployed on devices, {n} samples per row")
        click.echo(report.format())
        if plot is not None:
            click.echo(f"plot -> {plot}")

    def save() -> None:
        if plot is not None:
            from analogep.evaluation.plots import plot_robustness

            plot_robustness(result, plot, title=source_text)

    report_then_save(show, save)
