"""The GradEP training loop: batches, steps, logging, checkpoints, resume.

Resuming from a checkpoint gives the same parameters as an uninterrupted run: the
checkpoint holds parameters, optimizer state, the RNG state and the step, and metrics
logged after the checkpoint are dropped before the run continues.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from analogep.backends.base import EquilibriumBackend
from analogep.backends.registry import make_backend
from analogep.config.load import dump_spec
from analogep.config.spec import Spec
from analogep.data import load_dataset
from analogep.ep.step import StepResult, gradep_step
from analogep.errors import CheckpointError
from analogep.io import write_text
from analogep.model.energy import EnergyModel, Params
from analogep.model.registry import build_energy
from analogep.objectives.registry import build_objective
from analogep.training.checkpoint import (
    CHECKPOINT_NAME,
    Checkpoint,
    ensure_params_fit,
    load_checkpoint,
    save_checkpoint,
)
from analogep.training.optim import SGD, Adam, build_optimizer, clip_by_global_norm
from analogep.training.runlog import RunLog, read_metrics


@dataclass
class TrainResult:
    params: Params
    step: int
    records: list[dict]
    seconds: float
    stopped: str | None = None  # why training stopped early (trouble), else None


@dataclass
class _Run:
    """Everything a checkpoint restores."""

    params: Params
    optimizer: Adam | SGD
    rng: np.random.Generator
    step: int = 0
    bad_steps: int = 0
    records: list[dict] = field(default_factory=list)


def _start(spec: Spec, model: EnergyModel, out: Path, resume: bool) -> _Run:
    """A fresh run from the config's seeds, or the run in `out` at its checkpoint."""
    ckpt_path = out / CHECKPOINT_NAME
    if not resume:
        if ckpt_path.exists():
            raise CheckpointError(f"{out}: already holds a run ({CHECKPOINT_NAME}); use --resume or another --out")
        params = model.init_params(np.random.default_rng(spec.model.seed))
        return _Run(params, build_optimizer(spec.train.optimizer, params), np.random.default_rng(spec.train.seed))
    ckpt = load_checkpoint(ckpt_path)
    ensure_params_fit(model, ckpt.params, str(ckpt_path))
    optimizer = build_optimizer(spec.train.optimizer, ckpt.params)
    optimizer.load_state_dict(ckpt.optimizer)
    rng = np.random.default_rng()
    rng.bit_generator.state = ckpt.rng_state
    records = [r for r in read_metrics(out) if r["step"] <= ckpt.step]
    return _Run(ckpt.params, optimizer, rng, ckpt.step, ckpt.bad_steps, records)


def _record(run: _Run, result: StepResult, grad_clip: float) -> dict:
    """Apply a trusted step's update; the step's log record."""
    record = {"step": run.step, **result.metrics}
    if result.trouble:
        run.bad_steps += 1
        record["skipped"] = "; ".join(result.trouble)
    else:
        run.bad_steps = 0
        grad, _ = clip_by_global_norm(result.grad, grad_clip)
        run.optimizer.step(run.params, grad)
    return record


def train(
    spec: Spec,
    out_dir: str | Path,
    *,
    resume: bool = False,
    backend_name: str = "numpy",
    backend: EquilibriumBackend | None = None,
    on_step: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Train spec's model with GradEP, writing config.yaml, metrics.jsonl and checkpoint.npz.

    Equilibria come from `backend` when given (the caller closes it), else from a backend
    built by name and closed at the end."""
    out = Path(out_dir)
    model = build_energy(spec.model)
    objective = build_objective(spec)
    data = load_dataset(spec.train.dataset, dtype=model.dtype)
    run = _start(spec, model, out, resume)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", dump_spec(spec))
    log = RunLog(out, run.records)
    own_backend = backend is None
    backend = backend or make_backend(spec, model, backend_name)
    batches = objective.batches(data, run.rng, spec.train.steps - run.step)
    start_time, stopped = time.perf_counter(), None

    def checkpoint() -> None:
        log.flush()
        state = Checkpoint(run.params, run.optimizer.state_dict(), batches.rng_state, run.step, spec, run.bad_steps)
        save_checkpoint(out / CHECKPOINT_NAME, state)

    try:
        while run.step < spec.train.steps:
            step_start = time.perf_counter()
            batch = batches.next()
            realised = backend.program(run.params)
            result = gradep_step(model, backend, realised, batch, objective, spec.gradep, spec.train)
            run.step += 1
            record = _record(run, result, spec.train.grad_clip)
            clipped = getattr(backend, "clipped", None)  # devices that clip weights count them (circuit.clip)
            if clipped is not None:
                record["clipped"] = int(sum(clipped.values()))
            now = time.perf_counter()
            record["step_time"] = round(now - step_start, 4)  # this step alone: batch wait, phases, update
            record["time"] = round(now - start_time, 3)  # since this process started training
            if run.step % spec.train.log_every == 0 or run.step == spec.train.steps or result.trouble:
                run.records.append(record)
                log.write(record)
            if on_step is not None:
                on_step(run.step, record)
            if run.bad_steps >= spec.train.max_bad_steps:
                stopped = (
                    f"step {run.step}: {run.bad_steps} consecutive steps had untrustworthy gradients "
                    f"({record['skipped']}); parameters kept from step {run.step - run.bad_steps}"
                )
                break
            if run.step % spec.train.checkpoint_every == 0 or run.step == spec.train.steps:
                checkpoint()
        if stopped is not None:
            checkpoint()  # skipped steps changed no parameters: this is the last good model
    finally:
        log.close()
        batches.close()
        if own_backend:
            backend.close()
    return TrainResult(run.params, run.step, run.records, time.perf_counter() - start_time, stopped)
