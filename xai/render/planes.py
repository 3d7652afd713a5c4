"""Scalar planes and colour ranges: the grey background under an overlay and value normalisation."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
from matplotlib.colors import Normalize

from geomag.axes import SpectrogramAxes


def background_plane(image: np.ndarray, axes: SpectrogramAxes) -> tuple[np.ndarray, str]:
    """Scalar plane under an overlay and a short description of it.

    ``channels``: the H component (or the first one without H); ``stacked``: the jet-decoded
    level of a jet-coloured RGB image, else its luminance, or the greyscale plane itself.
    """
    if axes.layout == "channels":
        index = axes.components.index("H") if "H" in axes.components else 0
        return image[..., index], f"{axes.components[index]} log-power"
    if image.shape[-1] == 3:
        level = decode_jet(image)
        if level is not None:
            return level, "jet-decoded input"
        return image @ np.array([0.299, 0.587, 0.114]), "input luminance"
    return image[..., 0], "input"


def decode_jet(rgb: np.ndarray, tolerance: float = 0.05) -> np.ndarray | None:
    """Scalar level in [0, 1] of an image coloured with matplotlib's ``jet`` (the users' stacked
    layout), or None when the colours are not jet. Jet's luminance is not monotonic, so an
    overlay on the decoded level keeps the ordering of the power values."""
    from scipy.spatial import cKDTree

    lut = mpl.colormaps["jet"].resampled(256)(np.linspace(0.0, 1.0, 256))[:, :3]
    distance, index = cKDTree(lut).query(rgb.reshape(-1, 3))
    if float(np.percentile(distance, 95)) > tolerance:
        return None
    return (index / 255.0).reshape(rgb.shape[:2])


def value_norm(values: np.ndarray, vmin: float | None, vmax: float | None) -> Normalize:
    """Colour range ``[vmin, vmax]``, each defaulting to the data's extreme (never empty)."""
    low = float(np.min(values)) if vmin is None else float(vmin)
    high = float(np.max(values)) if vmax is None else float(vmax)
    if high <= low:
        high = low + 1.0
    return Normalize(vmin=low, vmax=high)


def unit_norm(values: np.ndarray) -> Normalize:
    """``[0, 1]`` for maps that lie there, else the data range."""
    if values.min() >= -1e-6 and values.max() <= 1 + 1e-6:
        return Normalize(0.0, 1.0)
    return value_norm(values, None, None)
