"""What the CLI commands share: loading a model, JSON output, progress, writing samples."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import numpy as np

from analogep import api


def _load_config(config: str | None):
    return api.load_config(config)


def _load_source(source: str | None):
    """CONFIG (fresh params from its seed), RUN_DIR or CHECKPOINT -> (spec, params, origin)."""
    return api.load_model(source)


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=float))


class _TrainBar:
    """Progress on stderr with loss, steps/s and ETA: a bar on a terminal; in a log (stderr
    not a terminal, where click draws only the label) one line every 5% or minute."""

    LOG_EVERY_S = 60.0

    def __init__(self, total: int, solves_per_step: int = 0):
        self.total, self.last, self.t0, self.bar = total, 0, time.perf_counter(), None
        self.solves_per_step = solves_per_step  # DC solves per step (SPICE backend: batch x phases)
        self.first = None
        self.as_lines = not sys.stderr.isatty()
        self.last_line = (0, self.t0)  # (step, time) of the last logged line

    def update(self, step: int, record: dict) -> None:
        if self.first is None:
            self.first = step - 1
        now = time.perf_counter()
        rate = (step - self.first) / max(now - self.t0, 1e-9)
        flag = f"  {rate * self.solves_per_step:.1f} solves/s" if self.solves_per_step else ""
        flag += " SKIPPED" if "skipped" in record else ""
        status = f"loss {record['loss']:.4f}  {rate:.2f} steps/s{flag}"
        if self.as_lines:
            last_step, last_time = self.last_line
            if step == self.total or step - last_step >= max(1, self.total // 20) or now - last_time >= self.LOG_EVERY_S:
                eta = (self.total - step) / rate if rate > 0 else float("nan")
                click.echo(f"train: step {step}/{self.total}  {status}  ETA {eta:.0f} s", err=True)
                self.last_line = (step, now)
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


def _with_runner(spec, spice_runner: str | None, scheduler: str | None):
    """The spec with --spice-runner and --scheduler applied (a scheduler address picks a
    runner that runs on a cluster when the runner is auto)."""
    changes = {k: v for k, v in (("runner", spice_runner), ("scheduler", scheduler)) if v}
    return spec.replace(circuit=changes) if changes else spec


def _generate(spec, params, g, threads: int | None = None, backend: str = "numpy", spice_runner: str | None = None) -> np.ndarray:
    """Samples with a progress bar (the API's sample with generate settings `g`)."""
    with click.progressbar(length=max(1, int(round(g.t1 / g.dt))), label="sample", file=sys.stderr) as bar:
        return api.sample(spec, params, n=g.n, t1=g.t1, dt=g.dt, mode=g.mode, seed=g.seed, backend=backend,
                          spice_runner=spice_runner, threads=threads, on_step=lambda k, total: bar.update(1))


def _write_samples(spec, params, out: Path) -> None:
    from analogep.evaluation.plots import plot_samples
    from analogep.io import atomic_path

    g = spec.generate
    x = _generate(spec, params, g)
    with atomic_path(out / "samples.npy") as tmp:
        np.save(tmp, x)
    plot_samples(x, out / "samples.png", title=f"{spec.name}: {g.n} samples (t1={g.t1}, {g.mode})")
