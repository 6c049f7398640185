"""Checkpoints: parameters, optimizer state, RNG state and step in one .npz, written
atomically, and read back checked whole (one validation for every command that loads one).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from analogep.config.load import dump_spec
from analogep.config.schema import ConfigError
from analogep.config.spec import Spec, from_dict
from analogep.errors import CheckpointError
from analogep.io import atomic_path
from analogep.model.energy import EnergyModel, Params
from analogep.model.factory import build_energy
from analogep.training.optim import optimizer_state_problem

CHECKPOINT_NAME = "checkpoint.npz"


@dataclass
class Checkpoint:
    params: Params
    optimizer: dict[str, np.ndarray]
    rng_state: dict
    step: int
    spec: Spec
    bad_steps: int = 0
    skipped: tuple[int, ...] = ()  # the skipped steps among the last ones (train.max_skipped_share)
    devices: tuple[dict[str, np.ndarray], dict] | None = None  # non-ideal devices' state (Devices.state_dict)


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> None:
    """Write the checkpoint atomically: a crash mid-write leaves the previous one intact."""
    arrays = {f"param/{k}": v for k, v in ckpt.params.items()}
    arrays.update({f"optim/{k}": v for k, v in ckpt.optimizer.items()})
    meta = {
        "format": "analogep-checkpoint-1",
        "step": ckpt.step,
        "bad_steps": ckpt.bad_steps,
        "skipped": list(ckpt.skipped),
        "rng_state": ckpt.rng_state,
        "config": dump_spec(ckpt.spec),
    }
    if ckpt.devices is not None:
        arrays.update({f"device/{k}": v for k, v in ckpt.devices[0].items()})
        meta["devices"] = ckpt.devices[1]
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder or a checkpoint file -> the checkpoint file."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise CheckpointError(f"{path}: no checkpoint found (expected a run folder holding {CHECKPOINT_NAME}, or a .npz)")
    return p


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint (a run folder is accepted too), checked
    whole: every command that loads one (train --resume, sample, evaluate, compile,
    robustness, and load_model's gradcheck, check, energy, study) gets a checkpoint it can
    use, or one CheckpointError line naming the file and what is wrong in it."""
    p = resolve_checkpoint(path)
    try:
        with _open_npz(p) as data:
            meta = json.loads(str(data["meta"]))
            params = {k[6:]: data[k] for k in data.files if k.startswith("param/")}
            optimizer = {k[6:]: data[k] for k in data.files if k.startswith("optim/")}
            device_arrays = {k[7:]: data[k] for k in data.files if k.startswith("device/")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{p}: not an analogep checkpoint ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{p}: not an analogep checkpoint (its metadata is a {type(meta).__name__}, not a mapping)")
    if meta.get("format") != "analogep-checkpoint-1":
        raise CheckpointError(f"{p}: not an analogep checkpoint (format {meta.get('format')!r})")
    spec = _stored_spec(p, meta)
    model = build_energy(spec.model)
    ensure_params_fit(model, params, str(p), exact_dtype=True)
    ensure_finite({**params, **{f"optimizer {k}": v for k, v in optimizer.items()}}, str(p))
    _check_optimizer(p, spec, params, optimizer)
    step = _count(p, meta, "step")
    devices = meta.get("devices")
    if devices is not None and not isinstance(devices, dict):
        raise CheckpointError(f"{p}: its device state is a {type(devices).__name__}, not a mapping")
    return Checkpoint(
        params, optimizer, _rng_state(p, meta), step, spec, _count(p, meta, "bad_steps", 0),
        _skipped(p, meta, step), (device_arrays, devices) if devices is not None else None,
    )


def _stored_spec(p: Path, meta: dict) -> Spec:
    """The config the checkpoint was trained with (its meta's YAML text)."""
    text = meta.get("config")
    if not isinstance(text, str):
        raise CheckpointError(f"{p}: holds no config (the metadata's 'config' is {_short(text)}); not a training checkpoint")
    try:
        return from_dict(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise CheckpointError(f"{p}: its stored config is not valid YAML{where} ({getattr(exc, 'problem', None) or exc})") from None
    except ConfigError as exc:
        raise CheckpointError(f"{p}: its stored config is invalid ({exc})") from None


def _count(p: Path, meta: dict, key: str, default: int | None = None) -> int:
    """A non-negative integer of the metadata (the step, the bad-step count)."""
    value = meta.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CheckpointError(f"{p}: its {key} is {_short(value)}; must be an integer >= 0")
    return value


def _skipped(p: Path, meta: dict, step: int) -> tuple[int, ...]:
    skipped = meta.get("skipped", [])
    if not isinstance(skipped, list) or any(isinstance(s, bool) or not isinstance(s, int) or not 0 < s <= step
                                            for s in skipped):
        raise CheckpointError(f"{p}: its skipped is {_short(skipped)}; must list steps 1..{step}")
    return tuple(skipped)


def _rng_state(p: Path, meta: dict) -> dict:
    """The batch stream's state: numpy's PCG64 (what default_rng makes), tried on a generator."""
    state = meta.get("rng_state")
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
        kind = state.get("bit_generator") if isinstance(state, dict) else state
        raise CheckpointError(f"{p}: its rng_state is not numpy PCG64's (got {_short(kind)}); the batch stream cannot continue")
    try:
        np.random.default_rng().bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise CheckpointError(f"{p}: its rng_state cannot be restored ({exc})") from None
    return state


def _check_optimizer(p: Path, spec: Spec, params: Params, state: dict[str, np.ndarray]) -> None:
    """The optimizer state must be what train.optimizer keeps for these parameters."""
    problem = optimizer_state_problem(spec.train.optimizer, params, state)
    if problem:
        raise CheckpointError(f"{p}: its optimizer state {problem}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _open_npz(p: Path):
    """np.load of a checkpoint, refusing what is not a .npz archive up front (np.load would
    hand back an array for a .npy and ask to unpickle anything else)."""
    if not zipfile.is_zipfile(p):
        with open(p, "rb") as f:
            head = f.read(6)
        kind = "a numpy .npy array" if head == b"\x93NUMPY" else "not a .npz archive"
        raise CheckpointError(f"{p}: not an analogep checkpoint ({kind}; train writes {CHECKPOINT_NAME})")
    return np.load(p, allow_pickle=False)


def ensure_finite(arrays: dict[str, np.ndarray], where: str) -> None:
    """Refuse parameters (or optimizer state) holding a NaN or an infinity: they make every
    equilibrium NaN, so samples, decks and gradients would be NaN without a word."""
    bad = [k for k, v in arrays.items() if np.asarray(v).dtype.kind in "fc" and not np.all(np.isfinite(v))]
    if bad:
        raise CheckpointError(f"{where}: non-finite values (NaN or inf) in {', '.join(bad)}; these weights cannot be used")


def ensure_params_fit(model: EnergyModel, params: Params, where: str, exact_dtype: bool = False) -> None:
    """Parameters must match the model's names and shapes (a checkpoint of another model),
    and be floating point (an edited integer W0 would silently lose every update);
    `exact_dtype`: of the model's dtype itself (a checkpoint of the model it was trained as)."""
    shapes = model.param_shapes()
    if set(params) != set(shapes) or any(params[k].shape != s for k, s in shapes.items()):
        got = {k: v.shape for k, v in params.items()}
        missing, extra = sorted(set(shapes) - set(params)), sorted(set(params) - set(shapes))
        what = "; ".join(x for x in (f"missing {', '.join(missing)}" if missing else "",
                                     f"extra {', '.join(extra)}" if extra else "") if x)
        raise CheckpointError(f"{where}: parameters {got} do not fit the model {shapes}" + (f" ({what})" if what else ""))
    wrong = {k: str(v.dtype) for k, v in params.items()
             if (v.dtype != model.dtype if exact_dtype else v.dtype.kind != "f")}
    if wrong:
        raise CheckpointError(f"{where}: parameters of dtype {wrong}; the model (model.dtype) is {np.dtype(model.dtype)}")
