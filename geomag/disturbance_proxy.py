"""A disturbance proxy for image/array samples: their broadband spectrogram level against the data set's quiet level.

A geomagnetic storm raises the ULF power over all frequencies and in every component at once (e.g.
Pc5 power grows tenfold or more, Pc3-Pc5 together; Masci 2011, PEPI 187), whereas a local emission is
narrow-band and short. So the proxy is the **median** of the grid's values over every cell of the Pc5,
Pc4 and Pc3 rows (1.7-100 mHz; Jacobs et al. 1964) of every component (the median is robust to a
narrow-band emission covering a minority of the cells), compared with the data set's own distribution:

    z = (level - Q1) / (1.4826 * MAD)

with Q1 the lower quartile of the levels of all samples of the data set (taken as its quiet level) and
MAD their median absolute deviation. ``z >= proxy_disturbed_z`` flags ``disturbed``, ``z <
proxy_quiet_z`` ``quiet`` (:class:`geomag.activity.ActivityThresholds`).

Limits (repeated in every result as ``proxy.limits``): it is **not** a K index and has no physical unit;
it is relative to the data set (if most windows are disturbed, so is its quartile); an image whose colour
scale is normalised per picture or per panel has lost the broadband level it measures; it cannot see
slow variations below the grid's lowest frequency (a storm's main-phase depression); a strong, long,
broadband emission raises it too; jet-coloured images need ``invert_colormap`` (colours are not values).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from geomag.activity import PC_BANDS, ActivityThresholds, WindowActivity, apply_indices
from geomag.axes import SpectrogramAxes

logger = logging.getLogger(__name__)

LIMITS = (
    "proxy, not a K index: median grid value over the Pc3-Pc5 rows of all components as a robust z-score "
    "against the data set's lower quartile; relative to this data set, no physical unit, lost when images are "
    "normalised per picture or panel, blind to variations below the grid's lowest frequency, raised by any "
    "strong broadband emission"
)
#: MAD -> standard deviation of a normal distribution.
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class GridLevel:
    """Median grid value over the Pc3-Pc5 cells (``level``) and per component and band (``band_levels``).

    ``value_kind`` says what the values are: ``grid values`` (a channels-layout array or image, e.g. the
    generator's log10 power), ``colour scalar`` (a jet image turned back into values) or ``colours`` (not
    measurable); ``level`` is None when nothing can be measured.
    """

    level: float | None
    band_levels: dict = field(default_factory=dict)
    value_kind: str = "grid values"
    note: str | None = None


def grid_level(image: np.ndarray, axes: SpectrogramAxes, scalar: np.ndarray | None = None) -> GridLevel:
    """The broadband level of one spectrogram grid (see the module docstring)."""
    image = np.asarray(image, dtype=np.float64)
    rows_total, _ = axes.shape
    if axes.layout == "stacked":
        if scalar is None:
            return GridLevel(None, {}, "colours", "stacked RGB image: set data.image.invert_colormap=true for values")
        panels = {c: np.asarray(scalar, dtype=np.float64) for c in axes.components}
        kind = "colour scalar"
    else:
        if image.ndim != 3 or image.shape[-1] != len(axes.components):
            return GridLevel(None, {}, "grid values", f"grid of shape {image.shape} does not match {axes.components}")
        panels = {c: image[..., i] for i, c in enumerate(axes.components)}
        kind = "grid values"
    band_levels, cells = {}, []
    for name, values in panels.items():
        in_panel = np.zeros(rows_total, dtype=bool)
        in_panel[axes.panel_rows(name)] = True
        band_levels[name] = {}
        for band, (fmin, fmax) in PC_BANDS.items():
            rows = axes.band_rows(fmin, fmax) & in_panel
            chosen = values[rows][np.isfinite(values[rows])]
            band_levels[name][band] = float(np.median(chosen)) if chosen.size else None
            cells.append(chosen)
    every = np.concatenate(cells) if cells else np.zeros(0)
    if not every.size:
        return GridLevel(None, band_levels, kind, "the grid covers none of the Pc3-Pc5 bands")
    return GridLevel(float(np.median(every)), band_levels, kind)


@dataclass(frozen=True)
class DisturbanceProxy:
    """The data set's quiet reference: lower quartile and robust spread of the sample levels."""

    reference: float
    scale: float
    n_samples: int

    @classmethod
    def fit(cls, levels: Sequence[float | None]) -> "DisturbanceProxy":
        """Reference from the levels of all samples of a data set (None entries are skipped)."""
        values = np.asarray([v for v in levels if v is not None and np.isfinite(v)], dtype=np.float64)
        if not values.size:
            return cls(reference=float("nan"), scale=float("nan"), n_samples=0)
        mad = float(np.median(np.abs(values - np.median(values))))
        spread = MAD_TO_SIGMA * mad
        if not spread > 0:  # fewer than three distinct levels: fall back to the full spread
            spread = float(values.std()) or 1.0
        return cls(reference=float(np.quantile(values, 0.25)), scale=spread, n_samples=int(values.size))

    def z(self, level: float | None) -> float | None:
        """Robust z-score of a level against the reference (None without a level or a reference)."""
        if level is None or self.n_samples == 0:
            return None
        return float((level - self.reference) / self.scale)

    def activity(
        self, level: GridLevel, thresholds: ActivityThresholds | None = None, indices: object | None = None
    ) -> WindowActivity:
        """The :class:`WindowActivity` of one sample (``basis: ["proxy"]`` unless the user gave Kp/Dst)."""
        z = self.z(level.level)
        proxy = {
            "kind": "proxy",
            "z": z,
            "level": level.level,
            "value_kind": level.value_kind,
            "reference_q25": self.reference if self.n_samples else None,
            "scale": self.scale if self.n_samples else None,
            "n_reference_samples": self.n_samples,
            "band_levels": level.band_levels,
            "limits": LIMITS,
        }
        activity = WindowActivity(flag="unknown", proxy=proxy, notes=[level.note] if level.note else [])
        return apply_indices(activity, indices, thresholds or ActivityThresholds())
