"""Atomic file writes: a crash or a bad input never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file keeps the target's suffix (or `suffix`) so writers that pick a
    format from the extension (numpy, matplotlib) still work.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix if suffix is not None else target.suffix, dir=target.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
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


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
