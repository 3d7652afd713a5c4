"""Input checks for figures: grid images, display maps, probabilities and required keys."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from core.errors import InputDataError
from geomag.axes import SpectrogramAxes


def as_map(values, axes: SpectrogramAxes, what: str, *, unit_range: bool = False) -> np.ndarray:
    """A finite float ``(n_rows, n_cols)`` array on the grid of ``axes``."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.shape != axes.shape:
        raise InputDataError(None, f"{what}: shape {array.shape} does not match the spectrogram grid {axes.shape}")
    if not np.all(np.isfinite(array)):
        raise InputDataError(None, f"{what}: contains NaN or infinite values")
    if unit_range and (array.min() < -1e-6 or array.max() > 1 + 1e-6):
        raise InputDataError(
            None, f"{what}: display map must lie in [0, 1], got [{array.min():.3g}, {array.max():.3g}]"
        )
    return array


def as_rgb(values: np.ndarray, what: str) -> np.ndarray:
    """RGB image scaled to [0, 1] (accepts [0, 1] floats or 0–255 values)."""
    rgb = np.asarray(values, dtype=np.float64)
    low, high = float(rgb.min()), float(rgb.max())
    if low >= 0 and high <= 1:
        return rgb
    if low >= 0 and high <= 255:
        return rgb / 255.0
    raise InputDataError(None, f"{what}: RGB values must lie in [0, 1] or [0, 255], got [{low:.3g}, {high:.3g}]")


def is_rgb(image: np.ndarray) -> bool:
    """True for a ``(rows, cols, 3)`` colour image."""
    return image.ndim == 3 and image.shape[-1] == 3


def check_image(image, axes: SpectrogramAxes, what: str) -> np.ndarray:
    """Validate a grid image for ``axes`` and return it as float64.

    ``channels``: ``(rows, cols, n_components)`` (or ``(rows, cols)`` for one component);
    ``stacked``: ``(rows, cols, 3)`` RGB, or ``(rows, cols)`` / ``(rows, cols, 1)`` greyscale.
    A stacked image whose three channels are identical is returned as one greyscale plane.
    """
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[:2] != axes.shape:
        raise InputDataError(None, f"{what}: shape {np.shape(image)} does not match the grid {axes.shape}")
    if not np.all(np.isfinite(array)):
        raise InputDataError(None, f"{what}: contains NaN or infinite values")
    if axes.layout == "channels":
        if array.shape[-1] != len(axes.components):
            raise InputDataError(
                None,
                f"{what}: {array.shape[-1]} channels but the axes have components {axes.components}",
            )
        return array
    if array.shape[-1] == 3:
        if np.allclose(array[..., 0], array[..., 1]) and np.allclose(array[..., 0], array[..., 2]):
            return array[..., :1]
        return as_rgb(array, what)
    if array.shape[-1] != 1:
        raise InputDataError(None, f"{what}: a stacked image needs 1 or 3 channels, got {array.shape[-1]}")
    return array


def require(mapping: Mapping, keys: Sequence[str], where: str, path: Path) -> None:
    """Raise when ``mapping`` is not a dict or lacks one of ``keys``."""
    if not isinstance(mapping, Mapping):
        raise InputDataError(path, f"{where} must be a dict, got {type(mapping).__name__}")
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise InputDataError(path, f"{where} lacks {', '.join(missing)}")


def check_confidence(value, where: str, path: Path) -> float | None:
    """``value`` as a probability in [0, 1], or None when there is none."""
    if value is None:
        return None
    value = float(value)
    if not (math.isfinite(value) and -1e-6 <= value <= 1 + 1e-6):
        raise InputDataError(path, f"{where}: confidence must be a probability in [0, 1], got {value}")
    return value
