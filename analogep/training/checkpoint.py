"""Checkpoints: parameters, optimizer state, RNG state and step in one .npz, written atomically.
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
    """Read a checkpoint written by save_checkpoint (a run folder is accepted too)."""
    p = resolve_checkpoint(path)
    try:
        with _open_npz(p) as data:
            meta = json.loads(str(data["meta"]))
            params = {k[6:]: data[k] for k in data.files if k.startswith("param/")}
            optimizer = {k[6:]: data[k] for k in data.files if k.startswith("optim/")}
            device_arrays = {k[7:]: data[k] for k in data.files if k.startswith("device/")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{p}: not an analogep checkpoint ({exc})") from None
    if meta.get("format") != "analogep-checkpoint-1":
        raise CheckpointError(f"{p}: not an analogep checkpoint (format {meta.get('format')!r})")
    try:
        spec = from_dict(yaml.safe_load(meta["config"]))
    except ConfigError as exc:
        raise CheckpointError(f"{p}: its stored config is invalid ({exc})") from None
    ensure_finite({**params, **{f"optimizer {k}": v for k, v in optimizer.items()}}, str(p))
    return Checkpoint(
        params, optimizer, meta["rng_state"], int(meta["step"]), spec, int(meta.get("bad_steps", 0)),
        tuple(int(s) for s in meta.get("skipped", ())),
        (device_arrays, meta["devices"]) if "devices" in meta else None,
    )


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


def ensure_params_fit(model: EnergyModel, params: Params, where: str) -> None:
    """Parameters must match the model's names and shapes (a checkpoint of another model)."""
    shapes = model.param_shapes()
    if set(params) != set(shapes) or any(params[k].shape != s for k, s in shapes.items()):
        got = {k: v.shape for k, v in params.items()}
        raise CheckpointError(f"{where}: parameters {got} do not fit the model {shapes}")
