"""Atomic file writers: every output is written to a temp file in the target folder, then
``os.replace``-d into place, so a crash never leaves a half-written file behind.

``os.replace`` is atomic on POSIX and Windows when source and target are on the same file
system, which is why the temp file lives in the target's own folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputDataError

log = logging.getLogger(__name__)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; outputs get the usual permissions (0666 minus the umask).
_FILE_MODE = 0o666 & ~_current_umask()

__all__ = [
    "atomic_path",
    "atomic_savez",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
]


@contextlib.contextmanager
def atomic_path(path: str | PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it replaces ``path``, on error it is deleted.

    The parent folder is created. ``suffix`` defaults to the target's suffix so libraries that
    pick a format from the file name (matplotlib, ``np.savez``) see the right extension.
    The temp file exists (empty) when the block starts; writers may overwrite or replace it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.",
        suffix=".tmp" + (target.suffix if suffix is None else suffix),
        dir=target.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists():
            raise InputDataError(target, "the writer did not produce the temporary file it was given")
        with contextlib.suppress(OSError):
            os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)


def atomic_write_text(path: str | PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8, ``\\n`` newlines); returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def _json_default(value: Any) -> Any:
    """Make numpy scalars/arrays and paths JSON-serialisable; anything else is an error."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, PathLike):
        return os.fspath(value)
    raise TypeError(f"object of type {type(value).__name__} is not JSON serialisable")


def atomic_write_json(path: str | PathLike, obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Serialise ``obj`` as JSON (strict: NaN/Infinity are refused) and write it atomically.

    Numpy scalars and arrays are converted to Python numbers/lists. A value that cannot be
    represented raises :class:`~core.errors.InputDataError` naming the file, and nothing is
    written.
    """
    try:
        text = json.dumps(
            obj,
            indent=indent,
            sort_keys=sort_keys,
            allow_nan=False,
            default=_json_default,
            ensure_ascii=False,
        )
    except (TypeError, ValueError) as error:
        raise InputDataError(path, f"cannot write JSON: {error}") from error
    return atomic_write_text(path, text + "\n")


def atomic_savez(path: str | PathLike, **arrays: Any) -> Path:
    """``np.savez_compressed`` to ``path`` atomically; object (pickled) arrays are refused."""
    converted = {}
    for name, value in arrays.items():
        array = np.asarray(value)
        if array.dtype == object:
            raise InputDataError(path, f"array {name!r} has dtype object; NPZ outputs must not need pickles")
        converted[name] = array
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
        # np.savez_compressed on a file object keeps the temp name (no ".npz" appended).
        np.savez_compressed(handle, **converted)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)
