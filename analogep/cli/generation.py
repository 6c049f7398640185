"""`analogep sample` and `analogep evaluate`: generation and sample quality."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import numpy as np

from analogep import api
from analogep.spice.run.runners import runner_choices
from analogep.cli.common import (
    check_image_path,
    check_precharge,
    check_samples_path,
    devices_option,
    echo_json,
    sample_to_files,
    sample_with_progress,
    spec_with_devices,
    check_time,
    spec_with_time,
    time_option,
    spec_with_runner,
    spec_with_sampler_options,
    ensure_fits_in_memory,
    refuse_empty,
)
from analogep.cli.outputs import sampling_settings, settings_name
from analogep.config.rules import MAX_GENERATE_STEPS
from analogep.config.spec import Spec
from analogep.errors import AnalogepError, CheckpointError
from analogep.objectives.factory import build_objective
from analogep.registry import names


# Visible over hidden node capacitance of continuous generation. Measured (docs/results/
# generation.md): on the tiny model the samples match the Euler sampler's from 30 on; on
# the digits model hidden lag leaves the Fréchet distance 16% above it at 100, 5% at 300.
DEFAULT_RATIO = 100.0


@click.command("sample")
@click.argument("source", type=click.Path(exists=False))
@click.option("--n", type=click.IntRange(min=1),
              help="Number of samples, taken in chunks of bounded memory; with --save they go to disk as they come "
                   "[default: generate.n].")
@click.option("--t1", type=click.FloatRange(min=0, min_open=True), help="End time; > 1 is extended generation [default: generate.t1].")
@click.option("--dt", type=click.FloatRange(min=0, min_open=True),
              help="Euler time step: at most t1, below 2/alpha (Euler is unstable beyond), and at most "
                   f"{MAX_GENERATE_STEPS:,} steps t1/dt [default: generate.dt].")
@click.option("--mode", type=click.Choice(["energy", "spring", "continuous"]),
              help="Velocity read-out of the Euler sampler (energy, spring), or continuous: no Euler steps, the "
                   "circuit's own flow with the visible capacitance --ratio times the hidden one (objectives/continuous.py; "
                   "--backend spice: ngspice transients) [default: generate.mode].")
@click.option("--ratio", type=float, help=f"With --mode continuous: visible over hidden node capacitance, >= 1 [default: {DEFAULT_RATIO:g}].")
@click.option("--spice-reltol", type=float,
              help="With --mode continuous --backend spice: ngspice's reltol of the transient [default: 1e-6].")
@click.option("--precharge", type=float,
              help="With --mode continuous: hold the visible nodes at the noise for this many hidden time constants "
                   "C_h/g0 before releasing them, so the hidden layer starts near its equilibrium [default: 0, none].")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the initial noise [default: generate.seed].")
@click.option("--sampler", type=click.Choice(["langevin", "ode", "ancestral"]),
              help="Score-matching runs: annealed Langevin dynamics, the probability-flow ODE or the ancestral "
                   "reverse-SDE sampler [default: dsm.sampler].")
@click.option("--steps-per-level", type=click.IntRange(min=1),
              help="Score-matching runs, Langevin: steps at each noise level [default: dsm.steps_per_level].")
@click.option("--ode-steps", type=click.IntRange(min=1),
              help="Score-matching runs, ODE: Heun steps from sigma_max to sigma_min [default: dsm.ode_steps].")
@click.option("--substeps", type=click.IntRange(min=1),
              help="Score-matching runs, ancestral: reverse-SDE steps between adjacent levels [default: dsm.substeps].")
@click.option("--out", "png", type=click.Path(dir_okay=False),
              help="Image grid of the first 100 samples; the extension picks the format [default: with --save, its name "
                   "as .png; else samples.png beside the checkpoint, or samples-SETTINGS.png when the settings are not "
                   "the run's, so the run's own samples.png is not replaced by other samples].")
@click.option("--save", "npy", type=click.Path(dir_okay=False), help="Save the samples as an N x D .npy in model units (digits: [-1, 1]; the name must end in .npy).")
@click.option("--backend", type=click.Choice(names("backend")), default="numpy", show_default=True,
              help="numpy relaxation, or the compiled inference circuit in ngspice.")
@click.option("--spice-runner", type=click.Choice(runner_choices()),
              help="With --backend spice: ngspice in process (PySpice), ngspice -b, or on Dask workers [default: circuit.runner].")
@click.option("--scheduler", help="With the dask runner: a running Dask cluster's scheduler, tcp://HOST:PORT [default: circuit.scheduler].")
@click.option("--threads", type=click.IntRange(min=0), help="BLAS threads [default: the run's train.threads; 0 = auto].")
@click.option("--data-units", is_flag=True,
              help="With --save: map the saved samples back to the units of the run's data file (its scaling.json).")
@devices_option
@time_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def sample_cmd(source, n, t1, dt, mode, ratio, spice_reltol, precharge, seed, sampler, steps_per_level, ode_steps, substeps, png, npy,
               backend, spice_runner, scheduler, threads, data_units, devices, time_since, as_json):
    """Generate samples from a trained model (RUN_DIR or CHECKPOINT): digits, or the run's data.

    Flow matching: draws x ~ N(0, I) and Euler-integrates dx/dt = v(x) from 0 to t1,
    re-relaxing the hidden units at every step (method.md section 5). Score matching:
    draws x ~ N(0, sigma_max^2 I) and runs annealed Langevin dynamics or the
    probability-flow ODE down the noise schedule (method.md section 6). Samples that come
    out non-finite are an error, and nothing is written. With --devices, the weights are
    deployed on those devices (programmed onto fresh ones); without it, a run trained in
    situ samples on its own devices.
    """
    from analogep.training.checkpoint import load_checkpoint, resolve_checkpoint

    continuous = mode == "continuous"
    given = [name for name, v in (("--ratio", ratio), ("--spice-reltol", spice_reltol), ("--precharge", precharge))
             if v is not None]
    if not continuous and given:
        raise AnalogepError(f"{given[0]}: only with --mode continuous")
    check_precharge(precharge)
    precharge = precharge or 0.0
    if continuous:
        ratio = DEFAULT_RATIO if ratio is None else ratio
        if not np.isfinite(ratio) or ratio < 1:
            raise AnalogepError(f"--ratio: {ratio:g} is below 1; the visible nodes must be the slow ones (C_v >= C_h)")
        if spice_reltol is not None and (backend != "spice" or not (np.isfinite(spice_reltol) and 0 < spice_reltol < 1)):
            raise AnalogepError(f"--spice-reltol: {spice_reltol:g} must be in (0, 1), with --backend spice")
        if dt is not None:
            raise AnalogepError("--dt: continuous generation takes no Euler steps")
        if devices is not None and backend == "spice":
            raise AnalogepError("--devices: continuous generation on devices runs with --backend numpy only")
        mode = None
    refuse_empty(out=png, save=npy)
    check_time(time_since)
    if png:
        check_image_path(png)
    if npy:
        check_samples_path(npy)
    ckpt_path = resolve_checkpoint(source)
    scaling = None
    if data_units:
        from analogep.data.scaling import SCALING_NAME, read_scaling

        if not npy:
            raise AnalogepError("--data-units: maps the samples saved with --save; give --save FILE.npy")
        scaling = read_scaling(ckpt_path.parent)
        if scaling is None:
            raise AnalogepError(f"--data-units: {ckpt_path.parent / SCALING_NAME}: no such file "
                                "(only a run on a data file has one; its samples are in the data's units already)")
    ckpt = load_checkpoint(ckpt_path)
    spec, params = spec_with_devices(spec_with_runner(ckpt.spec, None, scheduler), devices), ckpt.params
    spec = spec_with_time(spec, time_since)
    spec = spec_with_sampler_options(spec, t1=t1, dt=dt, sampler=sampler, steps_per_level=steps_per_level, ode_steps=ode_steps,
                                     substeps=substeps)
    spec = spec.replace(generate={k: v for k, v in dict(mode=mode, seed=seed).items() if v is not None})
    objective = build_objective(spec)
    if continuous and spec.train.objective != "flow":
        raise AnalogepError(f"--mode continuous: {ckpt_path} is a {spec.train.objective} run; continuous generation "
                            "is the flow-matching energy's gradient flow")
    if continuous and spec.train.time_code_size:
        raise AnalogepError(f"--mode continuous: {ckpt_path} has a time input (train.time_conditioning: "
                            f"{spec.train.time_conditioning}); the circuit's own flow cannot set a time code as it "
                            "runs, use the Euler sampler (--mode energy or spring)")
    state = ckpt.devices if devices is None else None
    if continuous and state is not None and backend == "spice":
        raise AnalogepError(f"--mode continuous: {ckpt_path} was trained in situ on devices; its continuous generation "
                            "runs with --backend numpy only")
    g = dataclasses.replace(spec.generate, n=spec.generate.n if n is None else n)
    if png:
        png = Path(png)
    elif npy:  # the image of the samples saved, beside them
        png = Path(npy).with_suffix(".png")
    else:  # the run's samples.png only for the run's own settings (cli/outputs.py)
        settings = sampling_settings(ckpt.spec, spec, n=n, backend=backend, devices=devices)
        settings.update({} if time_since is None else {"t": time_since})
        if continuous:
            settings = {**settings, "mode": "continuous", "ratio": ratio, **({"precharge": precharge} if precharge else {})}
        png = settings_name(ckpt_path.parent / "samples.png", settings)
    check_image_path(png)
    extra: dict = {}
    if continuous:
        label = (f"t1={g.t1}, continuous, ratio {ratio:g}" + (f", precharge {precharge:g}" if precharge else "")
                 + (", ngspice" if backend == "spice" else ""))
        draw, extra = _continuous_sampler(spec, params, g, ratio, backend, spice_reltol, precharge, state)
        seconds = sample_to_files(spec, params, g, png, npy, title=f"{ckpt_path.parent.name} step {ckpt.step}: {label}",
                                  data_units=scaling, sampler=draw)
    else:
        seconds = sample_to_files(spec, params, g, png, npy,
                                  title=f"{ckpt_path.parent.name} step {ckpt.step}: {objective.sampler_label(g)}",
                                  threads=threads, backend=backend, spice_runner=spice_runner, device_state=state,
                                  data_units=scaling)
    summary = {"n": g.n, "mode": "continuous" if continuous else g.mode, "seconds": round(seconds, 3), "png": str(png),
               "npy": npy, **objective.sampler_summary(g), **extra}
    if continuous:
        summary.pop("dt", None)
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"wrote {g.n} samples to {png}" + (f" and {npy}" if npy else "") + f" in {seconds:.1f} s")


def _continuous_sampler(spec, params, g, ratio: float, backend: str, reltol: float | None, precharge: float,
                        device_state=None):
    """The continuous generation of `sample --mode continuous` as sample_to_files' sampler,
    and what the summary adds (the circuit's seconds per sample)."""
    from analogep.objectives.continuous import float64_model, generate_continuous, physical_time

    c_h = spec.physics.capacitance if spec.circuit.capacitance <= 0 else spec.circuit.capacitance
    extra = {"ratio": ratio, "precharge": precharge, "backend": backend,
             "circuit_seconds_per_sample": physical_time(spec, g.t1, ratio, c_h) + precharge * c_h / spec.circuit.g0,
             "hidden_capacitance": c_h}

    def draw(out):
        if backend == "numpy":
            x = generate_continuous(spec, params, n=g.n, t1=g.t1, ratio=ratio, seed=g.seed, precharge=precharge,
                                   device_state=device_state)
        else:
            from analogep.spice.generation import DEFAULT_RELTOL, generate_spice

            model, p64 = float64_model(spec, params)
            x0 = np.random.default_rng(g.seed).standard_normal((g.n, spec.model.sizes[0])).astype(spec.model.dtype)
            x = generate_spice(spec, model, p64, x0.astype(np.float64), t1=g.t1, ratio=ratio, hidden_capacitance=c_h,
                               reltol=reltol or DEFAULT_RELTOL, precharge=precharge).samples.astype(spec.model.dtype)
        if out is None:
            return x
        out[...] = x
        return out

    return draw, extra


# evaluate's standard sample count: the quality.json of a run is of this many samples.
EVALUATE_N = 1000


@click.command("evaluate")
@click.argument("source", type=click.Path(exists=False))
@click.option("--n", type=click.IntRange(min=2), default=EVALUATE_N, show_default=True,
              help="Samples to generate from a run.")
@click.option("--t1", type=click.FloatRange(min=0, min_open=True), help="Generation end time [default: the run's generate.t1].")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the initial noise [default: generate.seed].")
@click.option("--sampler", type=click.Choice(["langevin", "ode", "ancestral"]),
              help="Score-matching runs: annealed Langevin dynamics, the probability-flow ODE or the ancestral "
                   "reverse-SDE sampler [default: dsm.sampler].")
@devices_option
@time_option
@click.option("--run", "data_of", type=click.Path(exists=False), metavar="RUN_DIR",
              help="SOURCE is a .npy of samples of this run's data (a run folder or checkpoint): judge them "
                   "against its held-out data [default: the digits].")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (top-level confidence, classes_covered, frechet).")
def evaluate_cmd(source, n, t1, seed, sampler, devices, time_since, data_of, as_json):
    """Sample quality against the real digits, or held-out data.

    A run on other data than digits (a 2-D benchmark, a file) is judged with no
    classifier: MMD, sliced Wasserstein, Frechet and nearest-train distances and the
    share out of range, beside held-out data's, and the modes covered of the 8 Gaussians
    and the checkerboard (docs/guide.md, evaluate). For digits:

    SOURCE is a run folder or checkpoint (N samples are generated) or an N x 64 .npy of
    floating-point samples in [-1, 1] scale (integer arrays are refused: they are raw
    pixels on another scale); a .npy of samples of other data is judged with --run, the
    run whose data they are of. Reports the mean confidence and class shares of a
    classifier trained on real digits, the Fréchet distance to held-out digits, the
    mean distance to the nearest training image (memorisation) and the share of samples
    with a pixel beyond [-1, 1] by more than 1, each beside the same figure for held-out
    real digits; warns when most samples are that far out (another scale). For a run,
    also writes the report (with the step of the checkpoint judged) beside the
    checkpoint: quality.json for the run's own settings (1000 samples, its generate
    seed, t1 and sampler), which `compare` reads; with other settings
    quality-SETTINGS.json (quality-n200.json, quality-devices-pcm.json), so the run's
    quality.json is not replaced by another evaluation. The report is printed before it
    is written: a folder that refuses it still shows the result.
    """
    from analogep.evaluation.quality import OUTSIDE_WARNING, RANGE_TOLERANCE
    from analogep.io import write_json

    check_time(time_since)
    out_json, spec = None, None
    if source.endswith(".npy"):
        if sampler:
            raise AnalogepError(f"--sampler: {source} holds samples already; the option is for a run folder or checkpoint")
        try:
            x = np.load(source, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise AnalogepError(f"{source}: cannot read samples ({exc})") from None
        spec = _spec_of_samples(source, x, data_of)
    else:
        if data_of is not None:
            raise AnalogepError(f"--run: {source} is a run; the option names the run of a .npy of samples")
        from analogep.training.checkpoint import load_checkpoint, resolve_checkpoint

        ckpt_path = resolve_checkpoint(source)
        if ckpt_path.suffix != ".npz" and not _is_zip(ckpt_path) and not _is_npy(ckpt_path):
            raise AnalogepError(
                f"{source}: evaluate reads a run folder, a checkpoint (.npz) or samples (.npy, numpy.save of an "
                f"N x 64 array); this is a {ckpt_path.suffix or 'file without extension'} file"
            )
        ckpt = load_checkpoint(ckpt_path)
        spec = spec_with_sampler_options(spec_with_time(spec_with_devices(ckpt.spec, devices), time_since), t1=t1,
                                         sampler=sampler)
        if seed is not None:
            spec = spec.replace(generate={"seed": seed})
        g = dataclasses.replace(spec.generate, n=n)
        ensure_fits_in_memory(n * spec.model.sizes[0] * np.dtype(spec.model.dtype).itemsize * 4,
                              f"--n {n:,} samples and their evaluation", "lower --n")
        settings = sampling_settings(ckpt.spec, spec, n=n, run_n=EVALUATE_N, devices=devices)
        settings.update({} if time_since is None else {"t": time_since})
        out_json = settings_name(ckpt_path.parent / "quality.json", settings)
        x = sample_with_progress(spec, ckpt.params, g, device_state=ckpt.devices if devices is None else None,
                                 label="evaluate: sampling")
    try:
        report = api.evaluate(x, spec)
    except ValueError as exc:
        raise AnalogepError(f"{source}: {exc}") from None
    digits = spec is None or spec.train.dataset == "digits"
    if digits and report.outside_range > OUTSIDE_WARNING:
        click.echo(
            f"warning: {100 * report.outside_range:.0f}% of the samples have pixels beyond [-1, 1] by more than "
            f"{RANGE_TOLERANCE:g} (held-out real digits: none); samples must be on the data scale pixel/16*2 - 1",
            err=True,
        )
    result = report.to_dict()
    if out_json is not None:
        result["step"] = ckpt.step  # the checkpoint judged: `compare` flags a report older than the run
        choice = build_objective(spec).sampler_choice
        if choice is not None:  # which of the objective's samplers drew the samples judged
            result["sampler"] = choice
    if as_json:
        echo_json(result)
    else:
        click.echo(report.format())
    if out_json is not None:  # printed first: a folder that refuses the file still shows the result
        try:
            write_json(out_json, result)
        except OSError as exc:
            raise AnalogepError(f"{exc.filename or out_json}: cannot write ({exc.strerror or exc}); "
                                f"the report above was not saved") from None
        if not as_json:
            click.echo(f"report -> {out_json}")


def _spec_of_samples(source: str, x: np.ndarray, data_of: str | None) -> Spec | None:
    """The config whose data a .npy of samples is judged against: --run's (its dataset and
    held-out split), or None, the digits. Samples with other than 64 features and no --run
    are of other data: refused, naming the option, rather than judged as digits."""
    from analogep.training.checkpoint import load_checkpoint

    if data_of is None:
        if x.ndim == 2 and x.shape[1] != 64:
            raise AnalogepError(
                f"{source}: samples of shape {x.shape} are not digits, (N, 64); to judge samples of a run's data "
                f"(a 2-D benchmark, a file), name the run: --run RUN_DIR"
            )
        return None
    try:
        spec = load_checkpoint(data_of).spec
    except CheckpointError as exc:
        raise AnalogepError(f"--run: {exc}") from None
    dim = spec.model.sizes[0]
    if x.ndim != 2 or x.shape[1] != dim:
        raise AnalogepError(
            f"{source}: samples of shape {x.shape}, but run {data_of} models {dim} features "
            f"(dataset {spec.train.dataset!r}); need N x {dim}"
        )
    return spec


def _is_npy(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(6) == b"\x93NUMPY"
    except OSError:
        return False


def _is_zip(path: Path) -> bool:
    import zipfile

    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False
