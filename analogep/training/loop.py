"""The GradEP training loop: batches, steps, logging, checkpoints, resume.

Resuming from a checkpoint gives the same parameters as an uninterrupted run: the
checkpoint holds parameters, optimizer state, the RNG state and the step, and metrics
logged after the checkpoint are dropped before the run continues. The checkpoint is the
truth about a run: a resume that would end before its step is refused, a config key fixed
at the run's start (a seed, the model) cannot change, and every other key that differs
from the checkpoint's is reported and recorded (training/resume.py). The backend is part
of the run (train.backend), so a resume keeps it; every record names it.

One process at a time writes a run folder (training/lock.py); it starts by removing the
temporary files of writes a killed process left behind. Ctrl-C, or an error while a step
is computed, saves a checkpoint of the last finished step (training/interrupts.py); a
run folder that cannot be written (full disk, no permission) stops the run with one
line, keeping the last checkpoint.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from analogep.backends.base import EquilibriumBackend
from analogep.backends.factory import make_backend
from analogep.config.load import dump_spec
from analogep.config.rules import substrate_problem
from analogep.config.schema import ConfigError
from analogep.config.sections import TrainSpec
from analogep.config.spec import Spec
from analogep.data import data_scaling, load_dataset
from analogep.data.scaling import SCALING_NAME, write_scaling
from analogep.ep.step import StepResult, gradep_step
from analogep.errors import AnalogepError, AnalogepWarning, CheckpointError
from analogep.io import stale_temps, write_text
from analogep.model.energy import EnergyModel, Params
from analogep.model.factory import build_energy
from analogep.objectives.factory import build_objective
from analogep.training.checkpoint import (
    CHECKPOINT_NAME,
    Checkpoint,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from analogep.training.interrupts import InterruptGuard, TrainingInterrupted
from analogep.training.lock import run_lock
from analogep.training.optim import SGD, Adam, build_optimizer, clip_by_global_norm
from analogep.training.resume import resume_changes
from analogep.training.runlog import METRICS_NAME, RunLog, keep_aside, read_log
from analogep.training.schedule import learning_rate
from analogep.training.substrate import SubstrateUpdate

CONFIG_NAME = "config.yaml"
# What training writes through io.atomic_path: their temporary files are training's to remove.
RUN_FILES = [CONFIG_NAME, METRICS_NAME, CHECKPOINT_NAME, "loss.png", "samples.npy", "samples.png", "scaling.json"]
SKIP_WINDOW = 100  # train.max_skipped_share is the share of skipped steps among the last SKIP_WINDOW
SKIP_MIN_STEPS = 20  # ... judged from this step on (and at the last step)


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
    skipped: list[int] = field(default_factory=list)  # skipped steps among the last SKIP_WINDOW
    saved_step: int | None = None  # the step of the checkpoint on disk (None: none yet)
    last_trouble: str = ""  # why the last skipped step was skipped
    devices: tuple[dict, dict] | None = None  # the checkpoint's device state, restored into the backend
    changed: dict[str, list] = field(default_factory=dict)  # config changes of a resume, logged at its first step


def _start(spec: Spec, model: EnergyModel, out: Path, resume: bool, init: Params | None = None) -> _Run:
    """A fresh run from the config's seeds, or the run in `out` at its checkpoint.

    On resume, refuses a train.steps below the checkpoint's step and a change of a key
    fixed at the run's start, warns about each other config key that differs from the
    checkpoint's and about records missing from the log, and moves log lines that are not
    JSON to metrics.jsonl.bad."""
    ckpt_path = out / CHECKPOINT_NAME
    if not resume:
        if ckpt_path.exists():
            raise CheckpointError(_holds_a_run(out))
        params = model.init_params(np.random.default_rng(spec.model.seed))
        if init is not None:  # fine-tuning: start from given weights (a deployed model), a fresh optimizer
            params = {k: np.array(init[k], dtype=v.dtype) for k, v in params.items()}
        return _Run(params, build_optimizer(spec.train.optimizer, params), np.random.default_rng(spec.train.seed))
    ckpt = load_checkpoint(ckpt_path)  # checked whole, its weights against its own model
    if spec.train.steps < ckpt.step:
        raise CheckpointError(
            f"{out}: the checkpoint is at step {ckpt.step}, past train.steps {spec.train.steps} (--steps); "
            f"a run cannot be shortened (give at least {ckpt.step})"
        )
    changed = resume_changes(ckpt.spec, spec, out, ckpt.step)  # the model itself cannot change
    log = read_log(out)
    optimizer = build_optimizer(spec.train.optimizer, ckpt.params)
    optimizer.load_state_dict(ckpt.optimizer)
    rng = np.random.default_rng()
    rng.bit_generator.state = ckpt.rng_state
    records = [r for r in log.records if r["step"] <= ckpt.step]
    _warn_missing(log.path, records, ckpt.step, ckpt.spec.train.log_every)
    _writing(out, f"{METRICS_NAME}.bad", lambda: keep_aside(log))
    return _Run(ckpt.params, optimizer, rng, ckpt.step, ckpt.bad_steps, records, list(ckpt.skipped), ckpt.step,
                devices=ckpt.devices, changed=changed)


def _holds_a_run(out: Path) -> str:
    return (f"{out}: already holds a run ({CHECKPOINT_NAME}); continue it with --resume (API: resume=True, or "
            f"resume='auto' to continue a run if there is one) or train into another folder")


def _warn_missing(path: Path, records: list[dict], step: int, log_every: int) -> None:
    """A step the log must hold (a multiple of log_every) missing between its last record
    and the checkpoint: those records are lost (the checkpoint, not the log, is the truth)."""
    last = records[-1]["step"] if records else 0
    due = (last // log_every + 1) * log_every
    if due <= step:
        ends = f"ends at step {last}" if records else "holds no record"
        warnings.warn(AnalogepWarning(
            f"{path}: {ends} but the checkpoint is at step {step}; the records of steps {last + 1}-{step} are lost, "
            f"the log continues from step {step + 1}"
        ))


class _Unwritable(CheckpointError):
    """The run folder refused a write (full disk, no permission)."""


def _writing(out: Path, name: str, call):
    """`call()`, with an OSError as a one-line CheckpointError."""
    try:
        return call()
    except OSError as exc:
        raise _Unwritable(f"{out}: cannot write {name} ({exc.strerror or exc})") from None


def _record(run: _Run, result: StepResult, train: TrainSpec, written: bool = False) -> dict:
    """Apply a trusted step's update (`written`: the devices wrote it during the step,
    train.update: substrate); the step's log record (with the step's rate `lr` under a
    schedule that is not constant)."""
    record = {"step": run.step, **result.metrics}
    lr = learning_rate(train.optimizer, run.step, train.steps)
    if train.optimizer.schedule != "constant" and not written:
        record["lr"] = lr
    if result.trouble:
        run.bad_steps += 1
        run.skipped.append(run.step)
        run.last_trouble = record["skipped"] = "; ".join(result.trouble)
    elif not written and not _apply_update(run, result, train.grad_clip, lr):
        run.bad_steps += 1
        run.skipped.append(run.step)
        run.last_trouble = record["skipped"] = (
            "the update made parameters non-finite (an optimizer step that overflows: lower train.optimizer.lr); "
            "update undone"
        )
    else:
        run.bad_steps = 0
    run.skipped = [s for s in run.skipped if s > run.step - SKIP_WINDOW]
    return record


def _apply_update(run: _Run, result: StepResult, grad_clip: float, lr: float) -> bool:
    """The optimizer step at rate `lr`; an update that leaves a parameter NaN or infinite is undone
    (parameters and optimizer state), so a checkpoint never holds non-finite weights."""
    grad, _ = clip_by_global_norm(result.grad, grad_clip)
    before = {k: v.copy() for k, v in run.params.items()}
    state = run.optimizer.state_dict()  # the optimizer replaces its moment arrays: references suffice
    run.optimizer.step(run.params, grad, lr)
    if all(np.all(np.isfinite(v)) for v in run.params.values()):
        return True
    for k, v in before.items():
        run.params[k][...] = v
    run.optimizer.load_state_dict(state)
    return False


def _runaway(result: StepResult) -> str | None:
    """Why the step's loss is not finite, when it is not (None: it is)."""
    if math.isfinite(result.loss):
        return None
    return ("the loss is not finite: the equilibria of these parameters hold NaN or infinite states "
            "(weights that ran away: lower train.optimizer.lr)")


def _budget_hint(spec: Spec, metrics: dict) -> str | None:
    """When a phase used all its relaxation iterations and ended above train.max_residual,
    the key to raise (None: the budget was not what failed)."""
    r, limit = spec.relax, spec.train.max_residual
    short = [key for key, iters, budget, residual in (
        ("relax.free_steps", metrics.get("iters_free"), r.free_steps, metrics.get("residual_free")),
        ("relax.nudge_steps", metrics.get("iters_nudge"), r.nudge_steps, metrics.get("residual_nudge")),
    ) if iters is not None and iters >= budget and residual is not None and residual > limit]
    if not short:
        return None
    budgets = " and ".join(f"{k} {getattr(r, k.split('.')[1])}" for k in short)
    return (f"the {r.solver} relaxation ran out of its budget ({budgets} iterations, residual above "
            f"train.max_residual {limit:g}): raise {' and '.join(short)}")


def _trouble(run: _Run, train, record: dict) -> str | None:
    """Why training must stop after this step (too many skipped steps, or a last step
    whose loss is not finite), else None."""
    kept = f"parameters kept from step {run.step - run.bad_steps}"
    if run.step == train.steps and record.get("loss") is not None and not math.isfinite(record["loss"]):
        return f"step {run.step}, the last: {run.last_trouble}; {kept}"
    if run.bad_steps >= train.max_bad_steps:
        return (
            f"step {run.step}: {run.bad_steps} consecutive steps had untrustworthy gradients "
            f"({run.last_trouble}); {kept}"
        )
    if run.step >= SKIP_MIN_STEPS or run.step == train.steps:
        window = min(run.step, SKIP_WINDOW)
        if len(run.skipped) > train.max_skipped_share * window:
            why = f" (last: {run.last_trouble})" if run.last_trouble else ""
            return (
                f"step {run.step}: {len(run.skipped)} of the last {window} steps were skipped, more than "
                f"train.max_skipped_share {train.max_skipped_share:g}{why}; {kept}"
            )
    return None


def train(
    spec: Spec,
    out_dir: str | Path,
    *,
    resume: bool | str = False,
    backend_name: str | None = None,
    backend: EquilibriumBackend | None = None,
    on_step: Callable[[int, dict], None] | None = None,
    init_params: Params | None = None,
) -> TrainResult:
    """Train spec's model with GradEP, writing config.yaml, metrics.jsonl and checkpoint.npz.
    `init_params`: a fresh run starts from these weights instead of the seeded initialisation
    (deploy a trained model, then fine-tune it in situ).

    `resume`: True continues the run in `out_dir`, False starts one there (refused when
    the folder holds a run), "auto" continues the run there if there is one, else starts.
    Equilibria come from `backend` when given (the caller closes it), else from a backend
    of train.backend (`backend_name` sets it), built here and closed at the end. Holds
    the run folder's lock throughout. Ctrl-C raises TrainingInterrupted after a checkpoint
    of the last finished step; a folder that cannot be written raises CheckpointError (the
    last checkpoint kept)."""
    out = Path(out_dir)
    if backend_name is not None:
        spec = spec.replace(train={"backend": backend_name})
    problem = substrate_problem(spec)
    if problem:  # refused before the run folder is touched
        raise ConfigError(problem)
    if resume == "auto":
        resume = (out / CHECKPOINT_NAME).is_file()
    elif resume not in (True, False):
        raise ValueError(f"resume must be True, False or 'auto'; got {resume!r}")
    model = build_energy(spec.model)
    objective = build_objective(spec)
    data = load_dataset(spec.train.dataset, dtype=model.dtype, source=spec.data)
    if resume:
        resolve_checkpoint(out)  # nothing to resume: refuse before touching the folder
    elif (out / CHECKPOINT_NAME).exists():
        raise CheckpointError(_holds_a_run(out))
    with run_lock(out, create=not resume), InterruptGuard() as guard:
        for temp in stale_temps(out, RUN_FILES):  # the lock is ours: no live writer's file
            temp.unlink(missing_ok=True)
        run = _start(spec, model, out, resume, init_params)
        _writing(out, CONFIG_NAME, lambda: write_text(out / CONFIG_NAME, dump_spec(spec)))
        scaling = data_scaling(spec.train.dataset, spec.data)
        if scaling is not None:  # how `sample --data-units` maps samples back to the file's units
            _writing(out, SCALING_NAME, lambda: write_scaling(out, scaling, spec.data.path))
        log = _writing(out, METRICS_NAME, lambda: RunLog(out, run.records))
        own_backend = backend is None
        try:
            backend = backend or make_backend(spec, model, spec.train.backend)
            _restore_devices(backend, run, out)
            _warn_runner_change(backend, run, out)
            batches = objective.batches(data, run.rng, spec.train.steps - run.step)
            try:
                return _steps(spec, model, objective, backend, batches, out, run, log, guard, on_step)
            finally:
                batches.close()
                if own_backend:
                    backend.close()
        finally:
            log.close()


def _restore_devices(backend: EquilibriumBackend, run: _Run, out: Path) -> None:
    """A resumed in-situ run continues on the devices it trained: the checkpoint's frozen
    draws, programmed state and noise streams go back into the backend."""
    if backend.devices is None:
        return
    if run.devices is None:
        if run.step > 0:
            raise CheckpointError(
                f"{out}: the checkpoint holds no device state (trained on ideal devices); an in-situ run must start "
                f"on its devices (use another --out)"
            )
        return
    backend.devices.load_state_dict(*run.devices, where=str(out / CHECKPOINT_NAME))


def _warn_runner_change(backend: EquilibriumBackend, run: _Run, out: Path) -> None:
    """A resumed SPICE run whose ngspice runner is not the one its log records, with
    circuit.runner unchanged (auto chose another one on this machine): said, since the
    runner is part of the run (every record names it)."""
    last = next((r for r in reversed(run.records) if "backend" in r), None)
    if last is None or last.get("backend") != "spice" or backend.runner is None or "circuit.runner" in run.changed:
        return
    if last.get("runner") != backend.runner:
        warnings.warn(AnalogepWarning(
            f"{out}: the run's ngspice runner was {last.get('runner')}, here circuit.runner "
            f"chose {backend.runner}; steps {run.step + 1} on use {backend.runner} (metrics.jsonl records it)"
        ))


def _device_state(backend: EquilibriumBackend) -> tuple[dict, dict] | None:
    return None if backend.devices is None else backend.devices.state_dict()


def _hardware_metrics(backend: EquilibriumBackend) -> dict:
    """What the hardware counted while programming: weights clipped to the conductance
    range (circuit.clip, devices), programming pulses and clipped conversions (devices)."""
    clipped = backend.clipped
    return {**({} if clipped is None else {"clipped": int(sum(clipped.values()))}), **backend.device_metrics()}


def _hardware_aware(params: Params, model: EnergyModel, train, step: int) -> Params:
    """The parameters one step's equilibria see in hardware-aware training (train.weight_noise,
    weight_drop; aihwkit's weight modifiers, Joshi et al., Nat. Commun. 11, 2473 (2020)): the
    couplings with Gaussian noise relative to their max|W| and a share of them at 0, drawn
    from (train.seed, step), so a resumed run draws the same. The update is applied to the
    clean parameters. Off (both 0): `params` themselves."""
    if train.weight_noise == 0 and train.weight_drop == 0:
        return params
    rng = np.random.default_rng([train.seed, step, 0x4857])
    out = dict(params)
    for name, _, _ in model.circuit_rules().couplings:
        w = params[name]
        noisy = w + train.weight_noise * np.max(np.abs(w)) * rng.standard_normal(w.shape)
        if train.weight_drop > 0:
            noisy = np.where(rng.random(w.shape) < train.weight_drop, 0.0, noisy)
        out[name] = noisy.astype(w.dtype)
    return out


class _Stepper:
    """Takes the training steps of one process and writes their records and checkpoints."""

    def __init__(self, spec: Spec, model: EnergyModel, objective, backend: EquilibriumBackend, batches, out: Path,
                 run: _Run, log: RunLog, guard: InterruptGuard):
        self.spec, self.model, self.objective, self.backend = spec, model, objective, backend
        self.batches, self.out, self.run, self.log, self.guard = batches, out, run, log, guard
        self.start_time = time.perf_counter()
        self.rng_state = batches.rng_state  # the batch stream after run.step batches: what a checkpoint stores
        runner = backend.runner
        self.hardware = {"backend": spec.train.backend, **({"runner": runner} if runner else {})}  # in every record
        self.substrate = None  # train.update: substrate: the devices write the update (training/substrate.py)
        if spec.train.update == "substrate":
            self.substrate = SubstrateUpdate(spec, model, backend.devices)
            if run.devices is not None:
                self.substrate.load_state_dict(run.devices[1].get("substrate"), str(out / CHECKPOINT_NAME))

    def step(self) -> tuple[dict, str | None]:
        """One step: the EP gradient of the next batch on the freshly programmed backend,
        then its update, record and checkpoint as a whole or not at all. Returns the
        record and why training must stop (None: it goes on)."""
        step_start = time.perf_counter()
        batch = self.batches.next()
        if self.substrate is not None:
            with self.guard.held():  # the devices change during the step: the step, record and checkpoint or none
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    result = self.substrate.step(self.backend, self.run.params, batch, self.objective,
                                                 self.spec.gradep, self.spec.train)
                return self._commit(result, step_start)
        realised = self.backend.program(_hardware_aware(self.run.params, self.model, self.spec.train, self.run.step))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # non-finite states: judged, not printed
            result = gradep_step(self.model, self.backend, realised, batch, self.objective, self.spec.gradep,
                                 self.spec.train)
        with self.guard.held():  # a whole step or none: the update, its record, its checkpoint
            return self._commit(result, step_start)

    def _commit(self, result: StepResult, step_start: float) -> tuple[dict, str | None]:
        run, train = self.run, self.spec.train
        run.step += 1
        for why in (_runaway(result), result.trouble and _budget_hint(self.spec, result.metrics)):
            if why and why not in result.trouble:
                result.trouble.append(why)
        record = _record(run, result, train, written=self.substrate is not None)  # substrate: the devices wrote it
        record.update(_hardware_metrics(self.backend))
        record.update(self.hardware)
        changed, run.changed = run.changed, {}
        if changed:  # the first step of a resume that changed how steps are computed
            record["changed"] = changed
        self.rng_state = self.batches.rng_state
        now = time.perf_counter()
        record["step_time"] = round(now - step_start, 4)  # this step alone: batch wait, phases, update
        record["time"] = round(now - self.start_time, 3)  # since this process started training
        if run.step % train.log_every == 0 or run.step == train.steps or result.trouble or changed:
            run.records.append(record)
            _writing(self.out, METRICS_NAME, lambda: self.log.write(record))
        stopped = _trouble(run, train, record)
        if stopped is not None or run.step % train.checkpoint_every == 0 or run.step == train.steps:
            self.checkpoint()  # on a stop: skipped steps changed no parameters, this is the last good model
        return record, stopped

    def checkpoint(self) -> None:
        run = self.run

        def save() -> None:
            self.log.flush()
            devices = _device_state(self.backend)
            if self.substrate is not None:  # the pulse streams travel with the devices they write
                devices = (devices[0], {**devices[1], "substrate": self.substrate.state_dict()})
            state = Checkpoint(run.params, run.optimizer.state_dict(), self.rng_state, run.step, self.spec, run.bad_steps,
                               tuple(run.skipped), devices)
            save_checkpoint(self.out / CHECKPOINT_NAME, state)

        _writing(self.out, CHECKPOINT_NAME, save)
        run.saved_step = run.step

    def save_last_step(self) -> bool:
        """After Ctrl-C or an AnalogepError between a step's writes: checkpoint the last
        finished step, so no finished work is lost (a fresh run that finished none keeps
        none). Other exceptions are bugs and end like a crash: resume from the last
        periodic checkpoint."""
        run = self.run
        if self.guard.broken or run.step == run.saved_step or run.step == 0:
            return False
        try:
            with self.guard.held():
                self.checkpoint()
        except KeyboardInterrupt:
            pass  # a second Ctrl-C, held until the checkpoint was written
        except _Unwritable as exc:
            warnings.warn(AnalogepWarning(f"{exc}; the checkpoint on disk is of step {run.saved_step}"))
            return False
        return True


def _steps(
    spec: Spec,
    model: EnergyModel,
    objective,
    backend: EquilibriumBackend,
    batches,
    out: Path,
    run: _Run,
    log: RunLog,
    guard: InterruptGuard,
    on_step: Callable[[int, dict], None] | None,
) -> TrainResult:
    """The training steps from run.step to train.steps (or a stop); Ctrl-C, an unwritable
    folder or a step that cannot be computed end them keeping the last finished step."""
    stepper = _Stepper(spec, model, objective, backend, batches, out, run, log, guard)
    stopped = None
    try:
        while stopped is None and run.step < spec.train.steps:
            record, stopped = stepper.step()
            if on_step is not None:
                on_step(run.step, record)
    except KeyboardInterrupt:
        stepper.save_last_step()
        raise TrainingInterrupted(out, run.saved_step, guard.signum) from None
    except _Unwritable as exc:  # inside a step's writes: the state on disk is the last checkpoint
        kept = (f"the checkpoint of step {run.saved_step} is kept (continue with --resume)" if run.saved_step is not None
                else "no checkpoint was written")
        raise CheckpointError(f"{exc}; training stopped at step {run.step}, {kept}") from None
    except AnalogepError as exc:  # a step that cannot be computed (an ngspice failure...)
        if stepper.save_last_step():
            exc.args = (f"{exc}; training stopped in step {run.step + 1}, the checkpoint of step {run.step} is kept "
                        f"(continue with --resume)",)
        raise
    return TrainResult(run.params, run.step, run.records, time.perf_counter() - stepper.start_time, stopped)
