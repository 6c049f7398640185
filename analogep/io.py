"""Writing files: atomically (a crash or a bad input never leaves a half-written file
behind), as strict JSON, and with their disk space taken up front.

Every output goes through `atomic_path`, whose failure (a full disk, a read-only folder,
no permission) is one OutputError naming the file, so each command reports it in one line.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from analogep.errors import OutputError


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file keeps the target's suffix (or `suffix`) so writers that pick a
    format from the extension (numpy, matplotlib) still work. An OSError while making the
    folder, writing or renaming is raised as OutputError naming `path` (not the temporary
    name), and the temporary file is removed.
    """
    target = Path(path)
    tmp_path = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=suffix if suffix is not None else target.suffix, dir=target.parent
        )
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp_path, target)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(exc.errno or errno.EIO, exc.strerror or str(exc), str(target)) from None
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def stale_temps(folder: str | os.PathLike, names: list[str]) -> list[Path]:
    """The temporary files atomic_path would make for `names` in `folder` (".NAME.xxxxxxxx.SUFFIX",
    mkstemp's eight random characters), left behind when a writer was killed mid-write.

    Only call this while no writer can be active in `folder` (a run folder's lock held):
    a live writer's temporary file matches too."""
    folder = Path(folder)
    patterns = [
        re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{8}" + re.escape(Path(name).suffix)) for name in names
    ]
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if any(r.fullmatch(p.name) for r in patterns) and p.is_file() and not p.is_symlink()
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _strict(obj: Any) -> Any:
    """`obj` with NaN and infinities as None, numpy scalars and arrays as Python values."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _strict(obj.tolist())
    if isinstance(obj, np.generic):
        return _strict(obj.item())
    return obj


def json_text(obj: Any, **options) -> str:
    """`obj` as strict JSON (RFC 8259, what every JSON reader accepts): a NaN or an infinity,
    which JSON cannot hold, is written as null, and numpy numbers as JSON numbers.
    `options` go to json.dumps (indent, sort_keys, default)."""
    return json.dumps(_strict(obj), allow_nan=False, **options)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented strict JSON atomically."""
    write_text(path, json_text(obj, indent=2, sort_keys=True) + "\n")


def preallocate(path: str | os.PathLike, start: int, end: int) -> None:
    """Give the bytes start..end of the file at `path` their disk blocks now (the file's
    content there is zeros or stays). A file written through a memory map must own its
    blocks before the map touches them: a page that finds the disk full raises SIGBUS (the
    process dies with 'Bus error'), where this raises OSError (ENOSPC) first."""
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            os.posix_fallocate(fd, start, max(0, end - start))
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            zeros = bytes(1 << 20)  # a file system without fallocate: write the zeros
            for offset in range(start, end, len(zeros)):
                os.pwrite(fd, zeros[: min(len(zeros), end - offset)], offset)
    finally:
        os.close(fd)
