"""`analogep train`: GradEP training from the command line."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from analogep import api
from analogep.spice.run.runners import runner_choices
from analogep.cli.common import (
    TrainBar,
    devices_option,
    echo_json,
    load_config,
    spec_with_devices,
    spec_with_runner,
    write_run_samples,
)
from analogep.config.rules import substrate_problem
from analogep.config.schema import ConfigError
from analogep.errors import AnalogepError, AnalogepWarning, CheckpointError
from analogep.registry import names


@click.command("train")
@click.argument("config", required=False)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run folder [default: runs/<config name>].")
@click.option("--steps", type=click.IntRange(min=1), help="Override train.steps.")
@click.option("--batch", type=click.IntRange(min=1), help="Override train.batch.")
@click.option("--seed", type=click.IntRange(min=0), help="Override train.seed (noise, times, batches).")
@click.option("--solver", type=click.Choice(names("solver")), help="Override relax.solver.")
@click.option("--threads", type=click.IntRange(min=0), help="Override train.threads (BLAS threads, 0 = auto).")
@click.option("--backend", type=click.Choice(names("backend")),
              help="Where equilibria come from: numpy relaxation or ngspice DC solves [default: train.backend, numpy; "
                   "with --resume the run's own].")
@click.option("--spice-runner", type=click.Choice(runner_choices()),
              help="With --backend spice: ngspice in process (PySpice), ngspice -b, or on Dask workers [default: circuit.runner].")
@click.option("--scheduler", help="With the dask runner: a running Dask cluster's scheduler, tcp://HOST:PORT [default: circuit.scheduler].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint (same result as an uninterrupted run).")
@devices_option
@click.option("--samples/--no-samples", default=True, show_default=True, help="Write samples.png and samples.npy at the end.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary at the end.")
def train_cmd(config, out_dir, steps, batch, seed, solver, threads, backend, spice_runner, scheduler, resume, devices, samples,
              as_json):
    """Train a model with GradEP flow matching.

    CONFIG is a model.yaml (default: the paper's 64-128-128 digits config). Writes
    OUT/config.yaml (resolved), OUT/metrics.jsonl (one JSON object per logged step),
    OUT/checkpoint.npz (every train.checkpoint_every steps and at the end),
    OUT/loss.png and OUT/samples.png.

    With --devices PRESET (or a devices YAML file), training is in situ: every
    equilibrium is the non-ideal circuit's and every update is written through the
    devices' write rule; the checkpoint keeps the devices' state, so --resume continues on
    the same devices.

    With --resume, the config is read from OUT/config.yaml (CONFIG is not needed;
    --steps may extend the run, not shorten it). Ctrl-C (or SIGTERM) keeps a checkpoint of
    the last finished step and exits with code 130 (143); one process at a time writes OUT.
    """
    from analogep.evaluation.plots import plot_loss
    from analogep.model.factory import build_energy
    from analogep.training.lock import run_lock

    spec, out = _training_spec(config, out_dir, resume, dict(steps=steps, batch=batch, seed=seed, threads=threads,
                                                             backend=backend), solver, spice_runner, scheduler, devices)
    backend = spec.train.backend
    n_params = build_energy(spec.model).n_params
    sizes = "-".join(map(str, spec.model.sizes)) + (f" + skip rank {spec.model.skip_rank}" if spec.model.skip_rank else "")
    click.echo(
        f"analogep: training {spec.name} ({sizes}, {n_params:,} parameters) for {spec.train.steps} steps, "
        f"{_batch_label(spec)}, solver {spec.relax.solver}, backend {backend}"
        f"{'' if spec.devices.ideal else f', devices {spec.devices.preset} (in situ)'} -> {out}",
        err=True,
    )
    bar = TrainBar(spec.train.steps, spec.train.batch * spec.gradep.phases if backend == "spice" else 0)
    try:
        with run_lock(out, create=not resume):  # through the samples: nobody else writes this folder meanwhile
            try:
                result = api.train(spec, out, resume=resume, on_step=bar.update)
            finally:
                bar.close()
            if result.records:
                title = f"{out} ({spec.name}), step {result.step}"
                _write(out, "loss.png", result.step, lambda: plot_loss(result.records, out / "loss.png", title=title))
            if samples and result.stopped is None:
                _write(out, "samples.npy and samples.png", result.step,
                       lambda: write_run_samples(spec, result.params, out, result.step))
    except KeyboardInterrupt as exc:
        click.echo(_interrupted(out, exc), err=True)
        signum = getattr(exc, "signum", 2)  # SIGINT unless training saw SIGTERM
        click.get_current_context().exit(128 + signum)  # as a shell reports it: not a bad input (2)
    summary = {
        "out": str(out),
        "step": result.step,
        "seconds": round(result.seconds, 2),
        "loss": result.records[-1]["loss"] if result.records else None,
        "n_params": n_params,
        "stopped": result.stopped,
    }
    if result.stopped:
        raise AnalogepError(f"training stopped at {result.stopped}")
    if as_json:
        echo_json(summary)
    else:
        loss = f"loss {summary['loss']:.4f}, " if summary["loss"] is not None else ""
        click.echo(f"done: step {result.step}, {loss}{result.seconds:.1f} s; wrote {out}")


def _batch_label(spec) -> str:
    """The batch training uses: train.batch, or the whole dataset when that is smaller."""
    from analogep.data import load_dataset

    n = len(load_dataset(spec.train.dataset, source=spec.data))
    if spec.train.batch <= n:
        return f"batch {spec.train.batch}"
    return f"batch {n} (the whole {spec.train.dataset} set; train.batch {spec.train.batch} is larger)"


def _write(out: Path, what: str, step: int, call) -> None:
    """Write an end-of-run file; a folder that refuses it (full disk, no permission) is one line."""
    try:
        call()
    except OSError as exc:
        raise CheckpointError(
            f"{out}: cannot write {what} ({exc.strerror or exc}); training reached step {step}, its checkpoint is kept"
        ) from None


def _interrupted(out: Path, exc: KeyboardInterrupt) -> str:
    """The one line Ctrl-C leaves: which checkpoint is on disk and how to continue."""
    from analogep.training.checkpoint import load_checkpoint
    from analogep.training.interrupts import TrainingInterrupted

    if isinstance(exc, TrainingInterrupted):
        step = exc.step
    else:  # before training started or while writing the samples: whatever is on disk
        try:
            step = load_checkpoint(out).step
        except AnalogepError:
            step = None
    if step is None:
        return f"interrupted: no checkpoint in {out} yet; start again with: analogep train CONFIG --out {out}"
    return f"interrupted: checkpoint of step {step} kept in {out}; continue with: analogep train --out {out} --resume"


def _training_spec(config, out_dir, resume: bool, train_overrides: dict, solver, spice_runner, scheduler=None,
                   devices=None):
    """The spec a `train` command runs (its config, or the run's own config.yaml on
    --resume, with the flags' overrides) and its run folder; refuses what cannot run."""
    from analogep.training.checkpoint import CHECKPOINT_NAME

    if out_dir is not None and not out_dir.strip():
        raise AnalogepError("--out: an empty name; give a folder (default: runs/<config name>)")
    if resume:
        if out_dir is None:
            raise AnalogepError("--resume needs --out RUN_DIR")
        if config is not None:
            raise AnalogepError(f"--resume continues {out_dir} with its own config.yaml; drop {config} (use --steps to extend)")
        saved = Path(out_dir) / "config.yaml"
        if saved.is_file():
            spec = api.load_config(saved)
        elif (Path(out_dir) / CHECKPOINT_NAME).is_file():  # the checkpoint holds the config it was trained with
            spec = api.load_model(out_dir)[0]
            warnings.warn(AnalogepWarning(f"{saved}: missing; resuming with the config stored in {CHECKPOINT_NAME}"))
        else:
            raise CheckpointError(f"{out_dir}: nothing to resume (no config.yaml)")
    else:
        spec = load_config(config)
    overrides = {k: v for k, v in train_overrides.items() if v is not None}
    if overrides:
        spec = spec.replace(train=overrides)
    if solver:
        spec = spec.replace(relax={"solver": solver})
    spec = spec_with_runner(spec, spice_runner, scheduler)
    spec = spec_with_devices(spec, devices)
    problem = substrate_problem(spec)  # the devices are final here (--devices applied)
    if problem:
        raise ConfigError(problem)
    out = Path(out_dir or Path("runs") / spec.name)
    if not resume and (out / CHECKPOINT_NAME).exists():
        raise CheckpointError(f"{out}: already holds a run ({CHECKPOINT_NAME}); use --resume or another --out")
    return spec, out
