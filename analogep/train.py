"""The GradEP training loop: batches, steps, logging, checkpoints, resume.

Resuming from a checkpoint gives the same parameters as an uninterrupted run: the
checkpoint holds parameters, optimizer state, the RNG state and the step, and metrics
logged after the checkpoint are dropped before the run continues.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .checkpoint import CHECKPOINT_NAME, Checkpoint, load_checkpoint, save_checkpoint
from .data import load_dataset
from .energy import EnergyModel, Params
from .errors import CheckpointError
from .flow import FlowBatchStream
from .gradep import gradep_step
from .hopfield import build_energy
from .io import write_text
from .optim import build_optimizer, clip_by_global_norm
from .phases import EquilibriumBackend, NumpyBackend
from .spec import Spec, dump_spec

METRICS_NAME = "metrics.jsonl"


@dataclass
class TrainResult:
    params: Params
    step: int
    records: list[dict]
    seconds: float
    stopped: str | None = None  # why training stopped early (trouble), else None


def make_backend(spec: Spec, model: EnergyModel, name: str = "numpy") -> EquilibriumBackend:
    """The equilibrium backend named on the command line."""
    if name == "numpy":
        return NumpyBackend(model, spec.gradep, spec.relax)
    if name == "spice":
        from .spice_backend import SpiceBackend  # optional: needs ngspice

        return SpiceBackend(spec, model)
    raise ValueError(f"unknown backend {name!r}; allowed: numpy, spice")


def check_params(model: EnergyModel, params: Params, where: str) -> None:
    """Parameters must match the model's names and shapes (a checkpoint of another model)."""
    shapes = model.param_shapes()
    if set(params) != set(shapes) or any(params[k].shape != s for k, s in shapes.items()):
        got = {k: v.shape for k, v in params.items()}
        raise CheckpointError(f"{where}: parameters {got} do not fit the model {shapes}")


def read_metrics(out_dir: Path) -> list[dict]:
    path = Path(out_dir) / METRICS_NAME
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a crash: everything after it is unreliable
    return records


def train(
    spec: Spec,
    out_dir: str | Path,
    *,
    resume: bool = False,
    backend_name: str = "numpy",
    on_step: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Train spec's model with GradEP, writing config.yaml, metrics.jsonl and checkpoint.npz."""
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT_NAME
    model = build_energy(spec.model)
    data = load_dataset(spec.train.dataset, dtype=model.dtype)

    if resume:
        ckpt = load_checkpoint(ckpt_path)
        params, step, bad_steps = ckpt.params, ckpt.step, ckpt.bad_steps
        check_params(model, params, str(ckpt_path))
        optimizer = build_optimizer(spec.train.optimizer, params)
        optimizer.load_state_dict(ckpt.optimizer)
        rng = np.random.default_rng()
        rng.bit_generator.state = ckpt.rng_state
        records = [r for r in read_metrics(out) if r["step"] <= step]
    else:
        if ckpt_path.exists():
            raise CheckpointError(f"{out}: already holds a run ({CHECKPOINT_NAME}); use --resume or another --out")
        params = model.init_params(np.random.default_rng(spec.model.seed))
        optimizer = build_optimizer(spec.train.optimizer, params)
        rng = np.random.default_rng(spec.train.seed)
        step, bad_steps, records = 0, 0, []
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", dump_spec(spec))
    write_text(out / METRICS_NAME, "".join(json.dumps(r) + "\n" for r in records))

    backend = make_backend(spec, model, backend_name)
    batches = FlowBatchStream(data, spec.train.batch, rng, spec.train.ot_coupling, spec.train.steps - step)
    metrics_file = open(out / METRICS_NAME, "a", buffering=1)  # line-buffered: `tail -f` works
    start_time, stopped = time.perf_counter(), None

    def checkpoint() -> None:
        metrics_file.flush()
        save_checkpoint(
            ckpt_path, Checkpoint(params, optimizer.state_dict(), batches.rng_state, step, spec, bad_steps)
        )

    try:
        while step < spec.train.steps:
            step_start = time.perf_counter()
            batch = batches.next()
            result = gradep_step(
                model, backend, params, batch, spec.gradep, spec.train.max_residual, spec.train.max_dropped,
                spec.train.max_asymmetry,
            )
            step += 1
            record = {"step": step, **result.metrics}
            if result.trouble:
                bad_steps += 1
                record["skipped"] = "; ".join(result.trouble)
            else:
                bad_steps = 0
                grad, _ = clip_by_global_norm(result.grad, spec.train.grad_clip)
                optimizer.step(params, grad)
            now = time.perf_counter()
            record["step_time"] = round(now - step_start, 4)  # this step alone: OT wait, phases, update
            record["time"] = round(now - start_time, 3)  # since this process started training
            if step % spec.train.log_every == 0 or step == spec.train.steps or result.trouble:
                records.append(record)
                metrics_file.write(json.dumps(record) + "\n")
            if on_step is not None:
                on_step(step, record)
            if bad_steps >= spec.train.max_bad_steps:
                stopped = (
                    f"step {step}: {bad_steps} consecutive steps had untrustworthy gradients "
                    f"({record['skipped']}); parameters kept from step {step - bad_steps}"
                )
                break
            if step % spec.train.checkpoint_every == 0 or step == spec.train.steps:
                checkpoint()
        if stopped is not None:
            checkpoint()  # skipped steps changed no parameters: this is the last good model
    finally:
        metrics_file.close()
        batches.close()
    return TrainResult(params, step, records, time.perf_counter() - start_time, stopped)
