"""Plain JSON values from numpy/Path/tuple-bearing structures (the one sanitiser every writer uses)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from os import PathLike, fspath
from pathlib import Path
from typing import Any

import numpy as np


def json_value(obj: Any, decimals: int | None = None) -> Any:
    """Return ``obj`` as plain JSON data.

    Numpy scalars/arrays become Python numbers/lists, tuples lists, paths POSIX strings, mapping
    keys strings, non-finite floats ``None``; with ``decimals`` floats are rounded (and ``-0.0``
    becomes ``0.0``) so that the same numbers always give the same file. Other objects become
    their ``str``.
    """
    if isinstance(obj, (bool, type(None), str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _float(float(obj), decimals)
    if isinstance(obj, Mapping):
        return {str(key): json_value(value, decimals) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_value(value, decimals) for value in obj]
    if isinstance(obj, np.ndarray):
        return json_value(obj.tolist(), decimals)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return obj.as_posix()
    if isinstance(obj, PathLike):
        return fspath(obj)
    return str(obj)


def _float(value: float, decimals: int | None) -> float | None:
    if not math.isfinite(value):
        return None
    if decimals is None:
        return value
    value = round(value, decimals)
    return 0.0 if value == 0 else value
