"""Training data: scikit-learn's 8x8 digits (the default, method.md section 4), the 2-D
benchmarks of flow matching (data/benchmarks.py) and a user's own .npy/.npz array
(data/files.py), scaled into the model's range (data/scaling.py).

`source` below is model.yaml's `data` section (config/dataset.py): size, noise and seed of
a benchmark; path, key, scaling and holdout of a file. Every problem with the data is one
DataError line naming the file and what is wrong.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from analogep.data.benchmarks import DEFAULT_NOISE, GENERATORS, MODES, generate, mode_radius
from analogep.data.digits import DIGITS_PIXELS, digits
from analogep.data.files import open_array
from analogep.data.scaling import SCALINGS, Scaling, ScaledRows, column_stats, fit_scaling
from analogep.errors import DataError

if TYPE_CHECKING:
    from analogep.config.dataset import DataSpec

BENCHMARKS = tuple(GENERATORS)
DATASETS = ("digits", *BENCHMARKS, "file")

# A file's training rows are scaled into memory up to this many bytes; a larger one stays
# memory-mapped and is scaled a batch at a time (ScaledRows).
MAX_IN_MEMORY = 256 * 2**20

# A benchmark's held-out set is drawn with seed + this: independent of the training points.
HELDOUT_SEED_OFFSET = 1_000_003

__all__ = [
    "BENCHMARKS", "DATASETS", "DIGITS_PIXELS", "DEFAULT_NOISE", "MODES", "SCALINGS", "Scaling",
    "dataset_dim", "data_scaling", "load_dataset", "load_digits_labelled", "mode_radius", "reference_split",
]


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")


class _FileData(NamedTuple):
    raw: np.ndarray  # every row, as stored (memory-mapped where the format allows)
    n_train: int  # rows [0, n_train) train, the rest are held out
    scaling: Scaling


def _file_key(source: "DataSpec") -> tuple:
    p = Path(source.path)
    try:
        st = os.stat(p)
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    return (str(p.resolve()), stamp, source.key, source.scaling, source.holdout)


@lru_cache(maxsize=4)
def _file_cached(key: tuple) -> _FileData:
    path, _, name, scaling, holdout = key
    return _open_file(path, name, scaling, holdout)


def _open_file(path: str, key: str | None, scaling: str, holdout: float) -> _FileData:
    raw = open_array(path, key)
    where = f"{path}[{key}]" if key and path.endswith(".npz") else path
    n = raw.shape[0]
    n_train = n - int(round(holdout * n))
    if n_train < 2:
        raise DataError(f"{where}: {n} rows leave {n_train} for training after data.holdout {holdout:g}; need at least 2")
    if raw.dtype.kind in "iub" and scaling == "none":
        raise DataError(
            f"{where}: integer values ({raw.dtype}, pixels or counts?) with data.scaling none; "
            "choose data.scaling minmax or standard"
        )
    lo, hi, mean, std, bad = column_stats(raw)
    if bad:
        raise DataError(f"{where}: {bad} of {n} rows hold non-finite values (NaN or inf)")
    train_stats = column_stats(raw[:n_train]) if n_train < n else (lo, hi, mean, std, 0)
    return _FileData(raw, n_train, fit_scaling(scaling, *train_stats[:4]))


def _file(source: "DataSpec") -> _FileData:
    if source is None or source.path is None:
        raise DataError("data.path: train.dataset is file, but no data.path names the .npy or .npz")
    return _file_cached(_file_key(source))


def load_dataset(name: str = "digits", dtype: np.dtype | type = np.float32, source: "DataSpec | None" = None) -> np.ndarray:
    """The training data as an (N, D) array in model units (digits: 1797 x 64, x/16*2 - 1;
    a benchmark: data.size x 2; a file: its rows before the held-out share, scaled). A file
    too large for memory comes as ScaledRows, read a batch at a time."""
    if name == "digits":
        images, _ = digits()
        return images.astype(dtype, copy=True)
    if name in GENERATORS:
        return generate(name, source.size, source.noise, source.seed, source.scale).astype(dtype)
    if name != "file":
        raise _unknown(name)
    f = _file(source)
    train = f.raw[: f.n_train]
    if f.scaling.kind == "none" and train.dtype == np.dtype(dtype):
        return train  # the memory map itself: nothing copied
    if f.n_train * train.shape[1] * np.dtype(dtype).itemsize <= MAX_IN_MEMORY:
        return f.scaling.apply(train, dtype)
    return ScaledRows(train, f.scaling, dtype)


def reference_split(name: str, source: "DataSpec | None", limit: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) rows in model units, float64, each at most `limit` rows (an even
    stride through a larger set): what `evaluate` judges samples against. A benchmark's
    held-out set is a fresh draw of data.size points; a file's is its last data.holdout
    share of rows (its training rows when the holdout is 0)."""
    if name == "digits":
        raise ValueError("digits are judged by evaluation/quality.py")
    if name in GENERATORS:
        train = generate(name, source.size, source.noise, source.seed, source.scale)
        held = generate(name, source.size, source.noise, source.seed + HELDOUT_SEED_OFFSET, source.scale)
    elif name == "file":
        f = _file(source)
        train_raw, held_raw = f.raw[: f.n_train], f.raw[f.n_train :]
        if len(held_raw) == 0:
            held_raw = train_raw
        train, held = (f.scaling.apply(_thin(r, limit)) for r in (train_raw, held_raw))
    else:
        raise _unknown(name)
    return _thin(train, limit), _thin(held, limit)


def _thin(rows: np.ndarray, limit: int) -> np.ndarray:
    if len(rows) <= limit:
        return np.asarray(rows, dtype=np.float64)
    return np.asarray(rows[np.linspace(0, len(rows) - 1, limit).astype(np.int64)], dtype=np.float64)


def data_scaling(name: str, source: "DataSpec | None") -> Scaling | None:
    """The scaling from the data's units to the model's: a file's; None for the rest."""
    return _file(source).scaling if name == "file" else None


def load_digits_labelled() -> tuple[np.ndarray, np.ndarray]:
    """Digits in [-1, 1] (float64) with their labels, for the quality metrics."""
    images, labels = digits()
    return images.copy(), labels.copy()


def dataset_dim(name: str, source: "DataSpec | None" = None) -> int:
    """Number of visible units a dataset needs (checked against the model's first size).
    A file is opened (its header read and its values checked) to tell."""
    if name == "digits":
        return DIGITS_PIXELS
    if name in GENERATORS:
        return 2
    if name == "file":
        return int(_file(source).raw.shape[1])
    raise _unknown(name)
