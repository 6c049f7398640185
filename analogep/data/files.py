"""A user's own data: an N x D array in a .npy file, or under a named key of a .npz.

Opened memory-mapped (numpy's format header says dtype, shape and where the values
start), so a file larger than memory is read a batch at a time. A .npz member is mapped
in place when it is stored uncompressed (numpy.savez); a compressed one
(numpy.savez_compressed) has to be read whole. Every problem is one DataError line
naming the file and what is wrong with it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from analogep.errors import DataError

_LOCAL_HEADER = 30  # bytes of a zip local file header before its name and extra field (APPNOTE 4.3.7)


def _npz_member(path: Path, key: str | None) -> np.ndarray:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read as .npz ({exc})") from None
    with archive:
        members = {n[:-4]: n for n in archive.namelist() if n.endswith(".npy")}
        if key is None:
            if len(members) != 1:
                raise DataError(
                    f"{path}: holds {len(members)} arrays ({', '.join(sorted(members)) or 'none'}); name one with data.key"
                )
            key = next(iter(members))
        if key not in members:
            raise DataError(f"{path}: has no array {key!r} (data.key); it holds {', '.join(sorted(members)) or 'none'}")
        info = archive.getinfo(members[key])
        if info.compress_type != zipfile.ZIP_STORED:  # compressed: no way to map it
            with archive.open(info) as f:
                try:
                    return np.lib.format.read_array(f, allow_pickle=False)
                except ValueError as exc:
                    raise DataError(f"{path}[{key}]: cannot read ({exc})") from None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(_LOCAL_HEADER)
        start = info.header_offset + _LOCAL_HEADER + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
        f.seek(start)
        try:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):  # 3.0: utf-8 field names, never a plain N x D array
                raise ValueError(f"unsupported .npy format version {version}")
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
        except ValueError as exc:
            raise DataError(f"{path}[{key}]: cannot read ({exc})") from None
        offset = f.tell()
    if dtype.hasobject:
        raise DataError(f"{path}[{key}]: holds Python objects, not numbers")
    if 0 in shape:
        return np.empty(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def open_array(path: str | Path, key: str | None = None) -> np.ndarray:
    """The array of a .npy or .npz, memory-mapped where the format allows, checked to be a
    non-empty N x D array of numbers (its values are checked by the scaling pass)."""
    p = Path(path)
    where = f"{p}[{key}]" if key and p.suffix == ".npz" else str(p)
    if not p.is_file():
        raise DataError(f"{p}: no such file (data.path)")
    if p.suffix not in (".npy", ".npz"):
        raise DataError(f"{p}: data.path must be a .npy or .npz file")
    if p.suffix == ".npz":
        array = _npz_member(p, key)
    else:
        try:
            array = np.load(p, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{p}: cannot read as .npy ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if array.dtype.kind not in "fiub":
        raise DataError(f"{where}: dtype {array.dtype} is not numeric")
    if array.ndim != 2:
        raise DataError(f"{where}: shape {array.shape} is not N x D (rank {array.ndim}, must be 2)")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"{where}: empty (shape {array.shape})")
    return array
