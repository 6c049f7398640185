"""What the CLI commands share: loading a model, JSON output, progress, writing samples."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import click
import numpy as np

from analogep import api
from analogep.errors import AnalogepError
from analogep.io import json_text
from analogep.objectives.factory import build_objective
from analogep.registry import names, resolve


def load_config(config: str | None):
    """CONFIG (None: the packaged paper config) -> its validated Spec."""
    return api.load_config(config)


def load_source(source: str | None):
    """CONFIG (fresh params from its seed), RUN_DIR or CHECKPOINT -> (spec, params, origin)."""
    return api.load_model(source)


def echo_json(obj) -> None:
    """What --json prints: `obj` as strict JSON (a NaN or an infinity as null), indented,
    keys sorted, numpy numbers as JSON numbers."""
    click.echo(json_text(obj, indent=2, sort_keys=True, default=float))


class _Lines:
    """Progress as lines, for a log (stderr not a terminal, where click's bar draws only its
    label): one line every 1/`parts` of the work or every minute, and at the end."""

    EVERY_S = 60.0

    def __init__(self, label: str, total: int, parts: int = 20):
        self.label, self.total, self.every = label, total, max(1, math.ceil(total / parts))
        self.last = (0, time.perf_counter())  # (done, time) of the last line

    def update(self, done: int, status: str, eta: float) -> None:
        now = time.perf_counter()
        last_done, last_time = self.last
        if done == self.total or done - last_done >= self.every or now - last_time >= self.EVERY_S:
            eta_text = f"  ETA {eta:.0f} s" if math.isfinite(eta) else ""
            click.echo(f"{self.label}: {status}{eta_text}", err=True)
            self.last = (done, now)


class TrainBar:
    """Progress on stderr with loss, steps/s and ETA (and the weights a device clipped, when
    any): a bar on a terminal, lines in a log. Steps per second count the steps' own time
    from the first step on, not the start-up before it (loading, building the backend), so
    the first ETAs are right."""

    def __init__(self, total: int, solves_per_step: int = 0):
        self.total, self.last, self.t0, self.bar = total, 0, time.perf_counter(), None
        self.solves_per_step = solves_per_step  # DC solves per step (SPICE backend: batch x phases)
        self.first = None
        self.lines = None if sys.stderr.isatty() else _Lines("train", total)

    def update(self, step: int, record: dict) -> None:
        now = time.perf_counter()
        if self.first is None:  # the clock starts where the first step started
            self.first, self.t0 = step - 1, now - record.get("step_time", 0.0)
        rate = (step - self.first) / max(now - self.t0, 1e-9)
        flag = f"  {rate * self.solves_per_step:.1f} solves/s" if self.solves_per_step else ""
        flag += f"  clipped {record['clipped']}" if record.get("clipped") else ""
        flag += " SKIPPED" if "skipped" in record else ""
        status = f"loss {record['loss']:.4f}  {rate:.2f} steps/s{flag}"
        if self.lines is not None:
            eta = (self.total - step) / rate if rate > 0 else float("nan")
            self.lines.update(step, f"step {step}/{self.total}  {status}", eta)
            return
        if self.bar is None:
            self.bar = click.progressbar(
                length=self.total, label="train", file=sys.stderr, show_eta=True, show_pos=True,
                item_show_func=lambda r: r,
            )
            self.bar.__enter__()
            self.bar.update(self.first)
        self.bar.update(step - self.last if self.last else step - self.first, status)
        self.last = step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


class WorkBar:
    """Progress of a command's steps (`label`: sampling, generating for evaluate) on stderr:
    a bar on a terminal, lines with the share done and the ETA in a log."""

    def __init__(self, label: str):
        self.label, self.bar, self.lines, self.t0 = label, None, None, None

    def __call__(self, done: int, total: int) -> None:
        if self.t0 is None:
            self.t0 = time.perf_counter()
            if sys.stderr.isatty():
                self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
                self.bar.__enter__()
            else:
                self.lines = _Lines(self.label, total, parts=10)
        if self.bar is not None:
            self.bar.update(1)
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / done * (total - done) if done else float("nan")
        self.lines.update(done, f"{done}/{total} steps ({100 * done / total:.0f}%)", eta)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def devices_option(f):
    """--devices PRESET|FILE.yaml: the crossbar devices to use instead of the config's."""
    return click.option(
        "--devices", "devices",
        help="Non-ideal crossbar devices: a preset (ideal, rram, rram-stress, pcm, periphery; combined with +, e.g. "
             "rram+periphery) or a YAML file of devices keys "
             "(method.md section 7) [default: the config's devices section].",
    )(f)


def time_option(f):
    """--time-since-programming SECONDS: when the deployed devices are read (PCM drift)."""
    return click.option(
        "--time-since-programming", "time_since", type=float,
        help="Seconds between programming the devices and using them: PCM conductance drift and 1/f noise, "
             "with global drift compensation (devices.drift_nu, flicker_q) [default: devices.time_since_programming].",
    )(f)


def check_time(time_since: float | None) -> None:
    """Refuse a --time-since-programming below 0 (or not finite) before anything is read."""
    from analogep.errors import AnalogepError

    if time_since is not None and not 0 <= time_since < float("inf"):
        raise AnalogepError(f"--time-since-programming: {time_since:g} s is not allowed; give the seconds since "
                            f"programming, a finite number >= 0")


def spec_with_time(spec, time_since: float | None):
    """The spec with --time-since-programming applied (None: unchanged)."""
    check_time(time_since)
    return spec if time_since is None else spec.replace(devices={"time_since_programming": float(time_since)})


def spec_with_devices(spec, devices: str | None):
    """The spec with --devices applied (None: unchanged)."""
    from analogep.config.load import with_devices

    return spec if devices is None else with_devices(spec, devices)


def spec_with_runner(spec, spice_runner: str | None, scheduler: str | None):
    """The spec with --spice-runner and --scheduler applied (a scheduler address picks a
    runner that runs on a cluster when the runner is auto)."""
    changes = {k: v for k, v in (("runner", spice_runner), ("scheduler", scheduler)) if v}
    return spec.replace(circuit=changes) if changes else spec


def sample_with_progress(
    spec, params, g, threads: int | None = None, backend: str = "numpy", spice_runner: str | None = None,
    out: np.ndarray | None = None, device_state=None, label: str = "sample",
) -> np.ndarray:
    """Samples with progress on stderr (the API's sample with generate settings `g`; see
    WorkBar). The progress starts at the first step, so a refused setting prints its error
    line alone."""
    bar = WorkBar(label)
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # diverging samples are reported once, after sampling
            return api.sample(spec, params, n=g.n, t1=g.t1, dt=g.dt, mode=g.mode, seed=g.seed, backend=backend,
                              spice_runner=spice_runner, threads=threads, on_step=bar, out=out,
                              device_state=device_state)
    finally:
        bar.close()


def spec_with_sampler_options(spec, **options):
    """The spec with the sample command's sampler options (None: not given) set on the
    model.yaml keys the run's objective declares for them (Objective.sampler_options), checked
    as model.yaml is; an option that steers another objective's sampler is refused."""
    given = {k: v for k, v in options.items() if v is not None}
    own = resolve("objective", spec.train.objective)
    foreign = [k for k in given if k not in own.sampler_options]
    if foreign:
        owner = next(cls for cls in (resolve("objective", n) for n in names("objective"))
                     if foreign[0] in cls.sampler_options)
        flags = ", ".join("--" + k.replace("_", "-") for k in foreign if k in owner.sampler_options)
        raise AnalogepError(f"{flags}: only for a {owner.kind} run (train.objective: {owner.name}); this run is "
                            f"{own.name}, sampled by {own.sampling}")
    changes: dict[str, dict] = {}
    for option, value in given.items():
        section, key = own.sampler_options[option].split(".")
        changes.setdefault(section, {})[key] = value
    return spec.replace(**changes) if changes else spec


def check_writable(path: str | Path) -> None:
    """Refuse an output whose folder is a file or not writable before the work that makes it
    (the writers create missing folders)."""
    existing = Path(path).absolute().parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise AnalogepError(f"{path}: cannot write there ({existing} is not a writable folder)")


def check_image_path(path: str | Path) -> None:
    """An image output: an extension matplotlib writes, in a folder that can be written."""
    from analogep.evaluation.plots import image_format

    image_format(path)
    check_writable(path)


def check_samples_path(npy: str | Path) -> None:
    """A samples file must end in .npy: np.save would append it to any other name, and
    `evaluate` tells samples from a run by it."""
    if not str(npy).endswith(".npy"):
        raise AnalogepError(f"{npy}: a samples file must end in .npy (evaluate reads samples by that extension)")
    check_writable(npy)


def report_then_save(report, save) -> None:
    """Print a computed result (`report()`), then write its file (`save()`): a folder that
    refuses the file (full, read-only) costs the file, never the result, and is one line
    (the OutputError, exit 2) after it."""
    report()
    save()


def refuse_empty(**options: str | None) -> None:
    """An output option given as "" (a shell variable that was empty) names no file: refused,
    instead of silently falling back to the default place."""
    for name, value in options.items():
        if value is not None and not str(value).strip():
            raise AnalogepError(f"--{name.replace('_', '-')}: an empty name; give a file name or leave the option out")


def ensure_fits_in_memory(n_bytes: float, what: str, hint: str) -> None:
    """Refuse work whose array cannot be held in this machine's free memory, with the
    estimate, before the allocation fails (a MemoryError, or the machine swapping)."""
    from analogep.runtime import available_memory, size_text

    free = available_memory()
    if free is not None and n_bytes > free:
        raise AnalogepError(f"{what} need {size_text(n_bytes)} of memory, more than the {size_text(free)} free; {hint}")


def check_precharge(precharge: float | None) -> None:
    """A precharge (hidden time constants the visible nodes are held first) is finite and >= 0."""
    if precharge is not None and not (np.isfinite(precharge) and precharge >= 0):
        raise AnalogepError(f"--precharge: {precharge:g} must be a finite number of hidden time constants >= 0")


def _nonfinite_rows(x: np.ndarray, block: int = 65536) -> int:
    """Samples holding a NaN or an infinity, counted a block at a time (x may be a memmap)."""
    return sum(int(np.count_nonzero(~np.isfinite(x[i : i + block]).all(axis=1))) for i in range(0, len(x), block))


def sample_to_files(spec, params, g, png: Path, npy: str | Path | None, title: str, data_units=None,
                    sampler=None, **options) -> float:
    """Sample with settings `g`, plot the first samples to `png` and save all of them to
    `npy` (written as they come, into a temporary .npy renamed at the end: memory stays
    bounded for any n); the seconds spent sampling. Non-finite samples are refused:
    nothing is written. `data_units` (a data.Scaling): the saved samples are mapped back
    to the data's units through it. `sampler(out)`, when given, draws the samples (into
    `out`, or a new array for None) instead of the objective's sampler."""
    from analogep.evaluation.field2d import plot_data_samples
    from analogep.evaluation.plots import plot_samples
    from analogep.io import atomic_path, preallocate

    t0 = time.perf_counter()
    seconds = 0.0

    def finish(x: np.ndarray) -> None:
        nonlocal seconds
        seconds = time.perf_counter() - t0
        bad = _nonfinite_rows(x)
        if bad:
            raise AnalogepError(
                f"sampling diverged: {bad} of {len(x)} samples are not finite (NaN or inf); nothing written"
            )
        if spec.train.dataset == "digits":
            plot_samples(x, png, title=title)
        else:
            plot_data_samples(spec, params, x, png, title=title)
        if data_units is not None:  # the saved samples in the data's units (the figure stays in model units)
            for start in range(0, len(x), 65536):
                x[start : start + 65536] = data_units.invert(x[start : start + 65536])

    shape, dtype = (g.n, spec.model.sizes[0]), np.dtype(spec.model.dtype)
    try:
        if npy is None:
            ensure_fits_in_memory(g.n * shape[1] * dtype.itemsize, f"--n {g.n:,} samples held in memory",
                                  "write them to disk as they come with --save FILE.npy, or lower --n")
            finish(sampler(None) if sampler else sample_with_progress(spec, params, g, out=None, **options))
            return seconds
        with atomic_path(npy) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            try:
                preallocate(tmp, out.offset, out.offset + out.nbytes)  # a full disk: ENOSPC now, not SIGBUS later
                finish(sampler(out) if sampler else sample_with_progress(spec, params, g, out=out, **options))
                out.flush()
            finally:
                del out  # unmap before the rename (or the removal on failure)
    except OSError as exc:  # a folder that cannot be made, a full disk
        raise AnalogepError(f"{exc.filename or npy or png}: cannot write ({exc.strerror or exc}); nothing written") from None
    return seconds


def write_run_samples(spec, params, out: Path, step: int) -> None:
    """A finished run's samples.npy and samples.png (generate settings of its config),
    titled with the run folder and the step; samples that are not finite are a warning
    here: the run itself is fine."""
    g = spec.generate
    try:
        state = None
        if not spec.devices.ideal:  # sample on the devices the run trained
            from analogep.training.checkpoint import load_checkpoint

            state = load_checkpoint(out).devices
        sample_to_files(spec, params, g, out / "samples.png", out / "samples.npy",
                         title=f"{out} step {step}: {g.n} samples ({build_objective(spec).sampler_label(g, run=True)})",
                         device_state=state)
    except AnalogepError as exc:
        click.echo(f"warning: {exc}", err=True)
