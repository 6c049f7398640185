"""The analogep command line: train, sample, evaluate, gradcheck (and the SPICE commands).

Every command explains itself with --help, reports as JSON with --json, and turns bad
input into one line on stderr naming what is wrong, with exit code 2.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import click
import numpy as np

from .errors import AnalogepError, CheckpointError

EXAMPLES = """
\b
Examples:
  analogep train examples/tiny.yaml --out runs/tiny
  analogep sample runs/tiny --n 100 --out tiny.png
  analogep evaluate runs/tiny --json
  analogep gradcheck examples/tiny.yaml --beta-sweep
  analogep compare runs/digits runs/digits-euler
"""


class Group(click.Group):
    """Turn analogep's user errors into one clean line and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AnalogepError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=Group, epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="analogep")
def main() -> None:
    """Train energy-based generative models with Gradient Equilibrium Propagation.

    FlowEqProp (Gower 2026): a Hopfield-like energy network learns a flow-matching
    velocity field from spring-clamped equilibria, with no backpropagation. The
    equilibria come from numpy relaxation or from an ngspice-simulated analog circuit.
    """


# --- shared loading ------------------------------------------------------------------------------


def _load_config(config: str | None):
    from .spec import load_spec

    return load_spec(config)


def _load_source(source: str | None):
    """CONFIG (fresh params from its seed), RUN_DIR or CHECKPOINT -> (spec, params, origin)."""
    from .checkpoint import load_checkpoint
    from .hopfield import build_energy
    from .train import check_params

    if source is not None and (Path(source).is_dir() or source.endswith(".npz")):
        ckpt = load_checkpoint(source)
        check_params(build_energy(ckpt.spec.model), ckpt.params, source)
        return ckpt.spec, ckpt.params, f"{source} (step {ckpt.step})"
    spec = _load_config(source)
    params = build_energy(spec.model).init_params(np.random.default_rng(spec.model.seed))
    return spec, params, f"{source or 'default config'} (initial weights, seed {spec.model.seed})"


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=float))


# --- train ---------------------------------------------------------------------------------------


@main.command()
@click.argument("config", required=False)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run folder [default: runs/<config name>].")
@click.option("--steps", type=click.IntRange(min=1), help="Override train.steps.")
@click.option("--batch", type=click.IntRange(min=1), help="Override train.batch.")
@click.option("--seed", type=click.IntRange(min=0), help="Override train.seed (noise, times, batches).")
@click.option("--solver", type=click.Choice(["euler", "fast"]), help="Override relax.solver.")
@click.option("--threads", type=click.IntRange(min=0), help="Override train.threads (BLAS threads, 0 = auto).")
@click.option("--backend", type=click.Choice(["numpy", "spice"]), default="numpy", show_default=True,
              help="Where equilibria come from: numpy relaxation or ngspice DC solves.")
@click.option("--spice-runner", type=click.Choice(["auto", "shared", "subprocess"]),
              help="With --backend spice: ngspice in process (PySpice) or ngspice -b [default: circuit.runner].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint (same result as an uninterrupted run).")
@click.option("--samples/--no-samples", default=True, show_default=True, help="Write samples.png and samples.npy at the end.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary at the end.")
def train(config, out_dir, steps, batch, seed, solver, threads, backend, spice_runner, resume, samples, as_json):
    """Train a model with GradEP flow matching.

    CONFIG is a model.yaml (default: the paper's 64-128-128 digits config). Writes
    OUT/config.yaml (resolved), OUT/metrics.jsonl (one JSON object per logged step),
    OUT/checkpoint.npz (every train.checkpoint_every steps and at the end),
    OUT/loss.png and OUT/samples.png.

    With --resume, the config is read from OUT/config.yaml (CONFIG is not needed;
    --steps may extend the run).
    """
    from .plots import plot_loss
    from .runtime import blas_threads
    from .spec import load_spec
    from .checkpoint import CHECKPOINT_NAME
    from .train import train as run_training

    if resume:
        if out_dir is None:
            raise AnalogepError("--resume needs --out RUN_DIR")
        if config is not None:
            raise AnalogepError(f"--resume continues {out_dir} with its own config.yaml; drop {config} (use --steps to extend)")
        saved = Path(out_dir) / "config.yaml"
        if not saved.is_file():
            raise CheckpointError(f"{out_dir}: nothing to resume (no config.yaml)")
        spec = load_spec(saved)
    else:
        spec = _load_config(config)
    overrides = {k: v for k, v in dict(steps=steps, batch=batch, seed=seed, threads=threads).items() if v is not None}
    if overrides:
        spec = spec.replace(train=overrides)
    if solver:
        spec = spec.replace(relax={"solver": solver})
    if spice_runner:
        spec = spec.replace(circuit={"runner": spice_runner})
    out = Path(out_dir or Path("runs") / spec.name)
    if not resume and (out / CHECKPOINT_NAME).exists():
        raise CheckpointError(f"{out}: already holds a run ({CHECKPOINT_NAME}); use --resume or another --out")

    sizes = "-".join(map(str, spec.model.sizes))
    click.echo(
        f"analogep: training {spec.name} ({sizes}, {spec.n_params:,} parameters) for {spec.train.steps} steps, "
        f"batch {spec.train.batch}, solver {spec.relax.solver}, backend {backend} -> {out}",
        err=True,
    )
    bar = _TrainBar(spec.train.steps, spec.train.batch * spec.gradep.phases if backend == "spice" else 0)
    with blas_threads(spec.train.threads):
        result = run_training(spec, out, resume=resume, backend_name=backend, on_step=bar.update)
    bar.close()
    plot_loss(result.records, out / "loss.png")
    summary = {
        "out": str(out),
        "step": result.step,
        "seconds": round(result.seconds, 2),
        "loss": result.records[-1]["loss"] if result.records else None,
        "n_params": spec.n_params,
        "stopped": result.stopped,
    }
    if samples and result.stopped is None:
        _write_samples(spec, result.params, out)
    if result.stopped:
        raise AnalogepError(f"training stopped at {result.stopped}")
    if as_json:
        _echo_json(summary)
    else:
        loss = f"loss {summary['loss']:.4f}, " if summary["loss"] is not None else ""
        click.echo(f"done: step {result.step}, {loss}{result.seconds:.1f} s; wrote {out}")


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


def _generate(spec, params, g, threads: int | None = None) -> np.ndarray:
    """Samples with a progress bar, under the run's BLAS thread setting (numpy backend)."""
    from .generate import generate
    from .hopfield import build_energy
    from .runtime import blas_threads

    model = build_energy(spec.model)
    with blas_threads(spec.train.threads if threads is None else threads):
        with click.progressbar(length=max(1, int(round(g.t1 / g.dt))), label="sample", file=sys.stderr) as bar:
            return generate(model, params, spec.gradep, spec.relax, n=g.n, t1=g.t1, dt=g.dt, mode=g.mode,
                            seed=g.seed, on_step=lambda k, total: bar.update(1))


def _write_samples(spec, params, out: Path) -> None:
    from .io import atomic_path
    from .plots import plot_samples

    g = spec.generate
    x = _generate(spec, params, g)
    with atomic_path(out / "samples.npy") as tmp:
        np.save(tmp, x)
    plot_samples(x, out / "samples.png", title=f"{spec.name}: {g.n} samples (t1={g.t1}, {g.mode})")


# --- sample --------------------------------------------------------------------------------------


@main.command()
@click.argument("source", type=click.Path(exists=False))
@click.option("--n", type=click.IntRange(min=1), help="Number of samples [default: generate.n].")
@click.option("--t1", type=click.FloatRange(min=0, min_open=True), help="End time; > 1 is extended generation [default: generate.t1].")
@click.option("--dt", type=click.FloatRange(min=0, min_open=True), help="Euler time step [default: generate.dt].")
@click.option("--mode", type=click.Choice(["energy", "spring"]), help="Velocity read-out [default: generate.mode].")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the initial noise [default: generate.seed].")
@click.option("--out", "png", type=click.Path(dir_okay=False), help="Image grid [default: samples.png beside the checkpoint].")
@click.option("--save", "npy", type=click.Path(dir_okay=False), help="Save the samples as an N x 64 .npy in [-1, 1] scale.")
@click.option("--backend", type=click.Choice(["numpy", "spice"]), default="numpy", show_default=True,
              help="numpy relaxation, or the compiled inference circuit in ngspice.")
@click.option("--spice-runner", type=click.Choice(["auto", "shared", "subprocess"]),
              help="With --backend spice: ngspice in process (PySpice) or ngspice -b [default: circuit.runner].")
@click.option("--threads", type=click.IntRange(min=0), help="BLAS threads [default: the run's train.threads; 0 = auto].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def sample(source, n, t1, dt, mode, seed, png, npy, backend, spice_runner, threads, as_json):
    """Generate digits from a trained model (RUN_DIR or CHECKPOINT).

    Draws x ~ N(0, I) and Euler-integrates dx/dt = v(x) from 0 to t1, re-relaxing the
    hidden units at every step (method.md section 5).
    """
    from .checkpoint import load_checkpoint, resolve_checkpoint
    from .hopfield import build_energy
    from .io import atomic_path
    from .plots import plot_samples
    from .train import check_params

    ckpt_path = resolve_checkpoint(source)
    ckpt = load_checkpoint(ckpt_path)
    spec = ckpt.spec
    model = build_energy(spec.model)
    check_params(model, ckpt.params, source)
    g = dataclasses.replace(
        spec.generate, **{k: v for k, v in dict(n=n, t1=t1, dt=dt, mode=mode, seed=seed).items() if v is not None}
    )
    t0 = time.perf_counter()
    if backend == "spice":
        from .spice_backend import spice_generate

        if spice_runner:
            spec = spec.replace(circuit={"runner": spice_runner})
        x = spice_generate(spec, ckpt.params, n=g.n, t1=g.t1, dt=g.dt, seed=g.seed)
    else:
        x = _generate(spec, ckpt.params, g, threads)
    seconds = time.perf_counter() - t0
    png = Path(png) if png else ckpt_path.parent / "samples.png"
    plot_samples(x, png, title=f"{spec.name} step {ckpt.step}: t1={g.t1}, dt={g.dt}, {g.mode}")
    if npy:
        with atomic_path(npy) as tmp:
            np.save(tmp, x)
    summary = {"n": g.n, "t1": g.t1, "dt": g.dt, "mode": g.mode, "seconds": round(seconds, 3), "png": str(png), "npy": npy}
    if as_json:
        _echo_json(summary)
    else:
        click.echo(f"wrote {g.n} samples to {png}" + (f" and {npy}" if npy else "") + f" in {seconds:.1f} s")


# --- evaluate ------------------------------------------------------------------------------------


@main.command()
@click.argument("source", type=click.Path(exists=False))
@click.option("--n", type=click.IntRange(min=2), default=1000, show_default=True, help="Samples to generate from a run.")
@click.option("--t1", type=click.FloatRange(min=0, min_open=True), help="Generation end time [default: the run's generate.t1].")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the initial noise [default: generate.seed].")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (top-level confidence, classes_covered, frechet).")
def evaluate(source, n, t1, seed, as_json):
    """Sample quality against the real digits.

    SOURCE is a run folder or checkpoint (N samples are generated) or an N x 64 .npy of
    samples in [-1, 1] scale. Reports the mean confidence and class shares of a
    classifier trained on real digits, the Fréchet distance to held-out digits and the
    mean distance to the nearest training image (memorisation), each beside the same
    figure for held-out real digits. For a run, also writes RUN_DIR/quality.json.
    """
    from .io import write_json
    from .metrics import evaluate_samples

    out_json = None
    if source.endswith(".npy"):
        try:
            x = np.load(source, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise AnalogepError(f"{source}: cannot read samples ({exc})") from None
    else:
        from .checkpoint import load_checkpoint, resolve_checkpoint

        ckpt_path = resolve_checkpoint(source)
        ckpt = load_checkpoint(ckpt_path)
        g = ckpt.spec.generate
        g = dataclasses.replace(g, n=n, t1=t1 or g.t1, seed=g.seed if seed is None else seed)
        x = _generate(ckpt.spec, ckpt.params, g)
        out_json = ckpt_path.parent / "quality.json"
    try:
        report = evaluate_samples(x)
    except ValueError as exc:
        raise AnalogepError(f"{source}: {exc}") from None
    if out_json is not None:
        write_json(out_json, report.to_dict())
    if as_json:
        _echo_json(report.to_dict())
    else:
        click.echo(report.format())


# --- gradcheck -----------------------------------------------------------------------------------


@main.command()
@click.argument("source", required=False, type=click.Path(exists=False))
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True, help="Training points compared.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the flow-matching batch.")
@click.option("--beta-sweep", is_flag=True, help="Also plot error vs beta for two- and three-phase EP (log-log).")
@click.option("--plot", type=click.Path(dir_okay=False), default="beta_sweep.png", show_default=True, help="Where the sweep plot goes.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON (top-level cosine).")
def gradcheck(source, batch, seed, beta_sweep, plot, as_json):
    """Compare the EP gradient with the exact gradient of the same loss.

    SOURCE is a CONFIG (initial weights) or a RUN_DIR/CHECKPOINT (trained weights).
    The exact gradient of mean 1/2|v - u|^2 comes from implicit differentiation of the
    free equilibrium (float64, relaxed to 1e-11). The EP estimate is measured as
    training measures it (the config's solver, steps and dtype), and again in float64
    with tight relaxation, which leaves only the O(beta^2) (three-phase) or O(beta)
    (two-phase) bias of the method.
    """
    from . import gradcheck as gc
    from .data import load_dataset
    from .flow import sample_flow_batch
    from .hopfield import build_energy

    spec, params, origin = _load_source(source)
    data = load_dataset(spec.train.dataset, dtype=np.float64)
    fbatch = sample_flow_batch(data, batch, np.random.default_rng(seed), spec.train.ot_coupling)
    model64, params64 = gc.as_float64(spec, params)
    exact = gc.exact_gradient(model64, params64, fbatch, spec.gradep)
    as_trained = gc.compare(gc.ep_estimate(build_energy(spec.model), params, fbatch, spec.gradep, spec.relax), exact)
    tight = gc.compare(gc.ep_estimate(model64, params64, fbatch, spec.gradep, gc.TIGHT), exact)
    result = {
        "source": origin,
        "batch": batch,
        "beta": spec.gradep.beta,
        "phases": spec.gradep.phases,
        "cosine": as_trained.cosine,
        "rel_error": as_trained.rel_error,
        "per_tensor": as_trained.per_tensor,
        "float64_tight": tight.to_dict(),
    }
    if beta_sweep:
        from .plots import plot_beta_sweep

        betas = np.geomspace(1e-5, 0.5 * gc.max_stable_beta(spec.gradep), 9)
        errors = gc.beta_sweep(model64, params64, fbatch, spec.gradep, betas)
        plot_beta_sweep(betas, errors, plot)
        result["beta_sweep"] = {"betas": betas.tolist(), **errors, "plot": plot}
    if as_json:
        _echo_json(result)
        return
    click.echo(f"EP vs exact gradient, {origin}, batch {batch}, beta {spec.gradep.beta:g}, {spec.gradep.phases} phases")
    click.echo(f"  as trained ({spec.relax.solver}, {spec.model.dtype}): cosine {as_trained.cosine:.8f}  rel. error {as_trained.rel_error:.3e}")
    click.echo(f"  float64, tight relaxation:      cosine {tight.cosine:.8f}  rel. error {tight.rel_error:.3e}")
    click.echo("  per tensor (as trained):")
    for name, s in as_trained.per_tensor.items():
        click.echo(f"    {name:6s} cosine {s['cosine']:.8f}  rel. error {s['rel_error']:.3e}")
    if beta_sweep:
        click.echo(f"  beta sweep -> {plot}")
        for i, b in enumerate(result["beta_sweep"]["betas"]):
            click.echo(f"    beta {b:.2e}: two-phase {errors['two-phase'][i]:.2e}  three-phase {errors['three-phase'][i]:.2e}")


# --- compare -------------------------------------------------------------------------------------


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--plot", type=click.Path(dir_okay=False), default="compare.png", show_default=True,
              help="Where the overlaid loss curves go.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare(runs, plot, as_json):
    """Compare training runs step by step (the first is the reference).

    RUNS are run folders. Reports each run's solver, steps, final loss, seconds per step
    (median of the logged steps' step_time) and, where `analogep evaluate` wrote quality.json, its sample quality; then each run
    against the first over the steps both logged: up to which step the losses agree,
    the largest difference, and the mean loss over the second half. Writes the loss
    curves and their differences to --plot.
    """
    from .compare import compare_runs, format_comparison, load_run
    from .plots import plot_loss_comparison

    if len(runs) < 2:
        raise AnalogepError(f"compare needs at least two run folders; got {len(runs)}")
    summaries = [load_run(r) for r in runs]
    result = compare_runs(summaries)
    plot_loss_comparison([(f"{Path(s.path).name} ({s.solver})", s.steps, s.loss) for s in summaries], plot)
    result["plot"] = plot
    if as_json:
        _echo_json(result)
    else:
        click.echo(format_comparison(result))
        click.echo(f"loss curves -> {plot}")


from .cli_spice import check_cmd, compile_cmd  # noqa: E402  (the SPICE commands, issue 3)

main.add_command(compile_cmd, "compile")
main.add_command(check_cmd, "check")


if __name__ == "__main__":
    main()
