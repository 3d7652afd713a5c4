"""Where a heatmap puts its mass, in physical terms: frequency bands, components and time.

A heatmap ``(n_rows, n_cols)`` lies on a spectrogram grid described by
:class:`geomag.axes.SpectrogramAxes`. The metrics here treat it as a mass distribution:

* **mass share** of a band = sum of the heatmap over the rows whose *centre* frequency lies in
  ``[fmin, fmax)`` (:meth:`SpectrogramAxes.band_rows`) divided by the total mass;
* **area share** = fraction of the grid's cells in those rows;
* **enrichment** = mass share / area share (1 = the band gets exactly its share of the image,
  > 1 = the explanation prefers it). A band with no row centre inside it is reported as
  ``{"covered": false}`` without numbers, never as 0 or NaN;
* ``rest`` = mass outside the union of all bands.

The default bands follow the ULF geomagnetic precursor literature (1-10 mHz; Hayakawa et al.,
"ULF/ELF electromagnetic phenomena for short-term earthquake prediction", 1999) and the IAGA
classification of continuous pulsations (Jacobs et al., "Classification of geomagnetic
micropulsations", JGR 1964): Pc5 1.7-6.7 mHz, Pc4 6.7-22 mHz, Pc3 22-100 mHz. The bands overlap
(ULF contains Pc5 and part of Pc4), so band shares do not add up to 1.

**Negative values.** Grad-CAM maps are ReLU'd and saliency maps are ``|gradient|``, so maps are
non-negative by construction; any negative value (e.g. a method without ReLU) is clipped to 0
before the mass is computed, and the clipped fraction is reported as ``negative_fraction``
(sum of |negative values| / sum of |values|). NaN or infinite values are refused.

An all-zero map has no distribution: ``"empty": true`` and every share, peak and centroid is
``null``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import InputDataError
from geomag.axes import SpectrogramAxes

__all__ = [
    "BANDS",
    "CHANNELS_NOT_AVAILABLE",
    "REST",
    "Band",
    "attention_summary",
    "band_shares",
    "component_shares",
    "concentration",
    "native_resolution",
    "peak_and_centroid",
    "temporal_profile",
]

REST = "rest"
CHANNELS_NOT_AVAILABLE = "not available (channels layout)"


@dataclass(frozen=True)
class Band:
    """A named frequency band ``[fmin_hz, fmax_hz)``."""

    name: str
    fmin_hz: float
    fmax_hz: float
    label: str = ""

    def describe(self) -> str:
        """Human-readable range, e.g. ``"1-10 mHz"``."""
        return f"{_fmt_mhz(self.fmin_hz)}–{_fmt_mhz(self.fmax_hz)} mHz"


def _fmt_mhz(value_hz: float) -> str:
    return f"{value_hz * 1e3:g}"


BANDS: tuple[Band, ...] = (
    Band("ULF", 1.0e-3, 10.0e-3, "ULF precursor band"),
    Band("Pc5", 1.7e-3, 6.7e-3, "Pc5 pulsations"),
    Band("Pc4", 6.7e-3, 22.0e-3, "Pc4 pulsations"),
    Band("Pc3", 22.0e-3, 100.0e-3, "Pc3 pulsations"),
)


def _as_bands(bands: Iterable[Band] | Mapping[str, Sequence[float]]) -> tuple[Band, ...]:
    if isinstance(bands, Mapping):
        result = tuple(Band(str(k), float(v[0]), float(v[1])) for k, v in bands.items())
    else:
        result = tuple(bands)
    for band in result:
        if band.name == REST:
            raise InputDataError(None, f"band name {REST!r} is reserved for the mass outside all bands")
        if not 0 <= band.fmin_hz < band.fmax_hz:
            raise InputDataError(
                None, f"band {band.name!r} needs 0 <= fmin < fmax, got {band.fmin_hz}..{band.fmax_hz} Hz"
            )
    return result


# ---------------------------------------------------------------------------- input checks
def _check_map(heatmap: np.ndarray, axes: SpectrogramAxes, what: str = "heatmap") -> tuple[np.ndarray, float]:
    """Validated float64 copy with negatives clipped to 0, plus the clipped negative fraction."""
    array = np.asarray(heatmap, dtype=np.float64)
    if array.ndim != 2 or array.shape != axes.shape:
        raise InputDataError(None, f"{what} has shape {array.shape}, the spectrogram grid is {axes.shape}")
    if not np.all(np.isfinite(array)):
        raise InputDataError(None, f"{what} contains NaN or infinite values")
    absolute = float(np.abs(array).sum())
    negative = float(-array[array < 0].sum())
    return np.clip(array, 0.0, None), (negative / absolute if absolute > 0 else 0.0)


def _check_per_channel(per_channel: np.ndarray, axes: SpectrogramAxes) -> np.ndarray:
    array = np.asarray(per_channel, dtype=np.float64)
    n_components = len(axes.components)
    if array.ndim != 3 or array.shape[:2] != axes.shape or array.shape[2] != n_components:
        raise InputDataError(None, f"per-channel map has shape {array.shape}, expected {axes.shape + (n_components,)}")
    if not np.all(np.isfinite(array)):
        raise InputDataError(None, "per-channel map contains NaN or infinite values")
    return np.clip(array, 0.0, None)


# ---------------------------------------------------------------------------- metrics
def band_shares(
    heatmap: np.ndarray,
    axes: SpectrogramAxes,
    bands: Iterable[Band] | Mapping[str, Sequence[float]] = BANDS,
    per_channel: np.ndarray | None = None,
) -> dict[str, dict]:
    """Mass share, area share and enrichment of every band plus ``rest``.

    Rows belong to a band when their centre frequency lies in ``[fmin, fmax)``. In the stacked
    layout (or with a per-channel map) each covered band also gets ``by_component``: the share of
    the *total* mass that lies in the band and that component.
    """
    band_list = _as_bands(bands)
    mass, _ = _check_map(heatmap, axes)
    total = float(mass.sum())
    n_rows = axes.shape[0]
    row_mass = mass.sum(axis=1)
    channel_row_mass = None
    if per_channel is not None and axes.layout == "channels":
        channels = _check_per_channel(per_channel, axes)
        channel_total = float(channels.sum())
        channel_row_mass = channels.sum(axis=1)  # (rows, C)

    union = np.zeros(n_rows, dtype=bool)
    entries: list[tuple[str, np.ndarray, dict]] = []
    for band in band_list:
        rows = axes.band_rows(band.fmin_hz, band.fmax_hz)
        union |= rows
        entries.append(
            (
                band.name,
                rows,
                {
                    "frequency_range_hz": [band.fmin_hz, band.fmax_hz],
                    "label": band.label or band.name,
                },
            )
        )
    entries.append((REST, ~union, {"frequency_range_hz": None, "label": "outside all bands"}))

    result: dict[str, dict] = {}
    for name, rows, info in entries:
        entry = dict(info)
        if not rows.any():
            entry["covered"] = False
            result[name] = entry
            continue
        area = float(rows.sum()) / n_rows
        entry.update(covered=True, area_share=area, rows=int(rows.sum()))
        if total > 0:
            share = float(row_mass[rows].sum()) / total
            entry.update(mass_share=share, enrichment=share / area)
        else:
            entry.update(mass_share=None, enrichment=None)
        if axes.layout == "stacked":
            entry["by_component"] = {
                comp: (float(row_mass[rows & (axes.row_component == i)].sum()) / total if total > 0 else None)
                for i, comp in enumerate(axes.components)
            }
        elif channel_row_mass is not None:
            entry["by_component"] = {
                comp: (float(channel_row_mass[rows, i].sum()) / channel_total if channel_total > 0 else None)
                for i, comp in enumerate(axes.components)
            }
        result[name] = entry
    return result


def component_shares(
    heatmap: np.ndarray, axes: SpectrogramAxes, per_channel: np.ndarray | None = None
) -> dict[str, float | None] | str:
    """Share of the mass per component (H, D, Z).

    Stacked layout: rows are split by ``axes.row_component``. Channels layout: a 2-D map mixes all
    components, so the split is only available from a per-channel map ``(rows, cols, C)`` (e.g.
    saliency before the channel reduction); otherwise :data:`CHANNELS_NOT_AVAILABLE` is returned.
    """
    mass, _ = _check_map(heatmap, axes)
    if axes.layout == "stacked":
        total = float(mass.sum())
        row_mass = mass.sum(axis=1)
        return {
            comp: (float(row_mass[axes.row_component == i].sum()) / total if total > 0 else None)
            for i, comp in enumerate(axes.components)
        }
    if per_channel is None:
        return CHANNELS_NOT_AVAILABLE
    channels = _check_per_channel(per_channel, axes)
    channel_mass = channels.sum(axis=(0, 1))
    total = float(channel_mass.sum())
    return {comp: (float(channel_mass[i]) / total if total > 0 else None) for i, comp in enumerate(axes.components)}


def _hour_edges(window_hours: float, bin_hours: float) -> np.ndarray:
    """Bin edges in hours before the event, earliest first, e.g. ``[6, 5, ..., 0]``."""
    n_full = int(math.floor(window_hours / bin_hours + 1e-9))
    edges = [k * bin_hours for k in range(n_full + 1)]
    if window_hours - edges[-1] > 1e-9 * max(1.0, window_hours):
        edges.append(window_hours)
    return np.asarray(edges[::-1], dtype=np.float64)


def temporal_profile(heatmap: np.ndarray, axes: SpectrogramAxes, bin_hours: float = 1.0) -> dict:
    """Mass per column (normalised to sum 1) and on a coarse binning in hours before the event.

    Bins run from the start of the window to the event (earliest first, like the columns); a bin
    ``[edges[k], edges[k+1])`` in hours before holds the columns whose centre lies in
    ``edges[k+1] <= t < edges[k]`` (the earliest bin also takes a centre exactly at the window
    start). The last bin is shorter when the window is not a multiple of ``bin_hours``.
    """
    if not bin_hours > 0:
        raise InputDataError(None, f"temporal bin width must be positive, got {bin_hours} h")
    mass, _ = _check_map(heatmap, axes)
    total = float(mass.sum())
    hours = axes.column_hours_before
    column_mass = mass.sum(axis=0)
    edges = _hour_edges(axes.window_s / 3600.0, bin_hours)
    if total > 0:
        column_share = (column_mass / total).tolist()
        binned = []
        for k in range(len(edges) - 1):
            upper, lower = edges[k], edges[k + 1]
            in_bin = (hours >= lower) & ((hours < upper) if k > 0 else (hours <= upper))
            binned.append(float(column_mass[in_bin].sum()) / total)
    else:
        column_share = [None] * len(column_mass)
        binned = [None] * (len(edges) - 1)
    return {
        "column_hours_before": hours.tolist(),
        "column_mass_share": column_share,
        "bin_hours": float(bin_hours),
        "bin_edges_hours_before": edges.tolist(),
        "bin_mass_share": binned,
    }


def peak_and_centroid(heatmap: np.ndarray, axes: SpectrogramAxes, per_channel: np.ndarray | None = None) -> dict:
    """Peak cell and mass-weighted centroid in physical units.

    Peak: the first maximal cell in row-major order (deterministic under ties); its component is
    the panel in the stacked layout, or the strongest channel at that cell when a per-channel map
    is given in the channels layout (else ``null``). Centroid: frequency = mass-weighted mean of
    ``log10 f`` on log axes (reported back in Hz, i.e. a geometric mean) or of ``f`` on linear
    axes; time = mass-weighted mean hours before the event.
    """
    mass, _ = _check_map(heatmap, axes)
    total = float(mass.sum())
    if total <= 0:
        return {"peak": None, "centroid": None}
    row, col = (int(v) for v in np.unravel_index(int(np.argmax(mass)), mass.shape))
    component = None
    if axes.layout == "stacked":
        component = axes.components[int(axes.row_component[row])]
    elif per_channel is not None:
        channels = _check_per_channel(per_channel, axes)
        if channels[row, col].sum() > 0:
            component = axes.components[int(np.argmax(channels[row, col]))]
    row_weight = mass.sum(axis=1) / total
    col_weight = mass.sum(axis=0) / total
    if axes.frequency_scale == "log":
        centroid_f = float(10.0 ** np.dot(row_weight, np.log10(axes.row_frequency_hz)))
    else:
        centroid_f = float(np.dot(row_weight, axes.row_frequency_hz))
    return {
        "peak": {
            "frequency_hz": float(axes.row_frequency_hz[row]),
            "hours_before": float(axes.column_hours_before[col]),
            "component": component,
            "row": row,
            "col": col,
        },
        "centroid": {
            "frequency_hz": centroid_f,
            "hours_before": float(np.dot(col_weight, axes.column_hours_before)),
        },
    }


def concentration(heatmap: np.ndarray, top_fraction: float = 0.10) -> dict:
    """Normalised entropy ``H(p) / log(N)`` (0 = one cell, 1 = uniform) and top-cell mass share.

    ``p`` is the clipped map divided by its sum over all ``N`` cells (``0 log 0 = 0``). The top
    cells are the ``ceil(top_fraction * N)`` largest (at least one); their share of the mass is
    ``top_mass_share``. Both are ``null`` for an all-zero map; the entropy is ``null`` for N = 1.
    """
    array = np.asarray(heatmap, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise InputDataError(None, "heatmap contains NaN or infinite values")
    if not 0 < top_fraction <= 1:
        raise InputDataError(None, f"top fraction must be in (0, 1], got {top_fraction}")
    mass = np.clip(array, 0.0, None).ravel()
    n = mass.size
    k = max(1, math.ceil(top_fraction * n - 1e-9))
    total = float(mass.sum())
    result = {"normalized_entropy": None, "top_fraction": top_fraction, "top_cells": k, "top_mass_share": None}
    if total <= 0 or n == 0:
        return result
    p = mass / total
    nonzero = p[p > 0]
    entropy = float(-(nonzero * np.log(nonzero)).sum())
    normalized = entropy / math.log(n) if n > 1 else None
    top = float(np.sort(mass)[::-1][:k].sum()) / total
    result.update(normalized_entropy=normalized, top_mass_share=top)
    return result


def native_resolution(native_shape: Sequence[int] | None, axes: SpectrogramAxes) -> dict | None:
    """Size of one native-map cell in physical units.

    The native map (e.g. 7x7 for Grad-CAM on VGG16) covers the whole model input, i.e. the whole
    grid; in the stacked layout its rows are shared by the component panels.
    """
    if native_shape is None:
        return None
    if len(native_shape) < 2 or int(native_shape[0]) < 1 or int(native_shape[1]) < 1:
        raise InputDataError(None, f"native map shape {tuple(native_shape)} is not (rows, cols)")
    h, w = int(native_shape[0]), int(native_shape[1])
    panels = len(axes.components) if axes.layout == "stacked" else 1
    per_panel = h / panels
    fmin, fmax = axes.frequency_range_hz
    result = {
        "time_cells": w,
        "frequency_cells": h,
        "frequency_cells_per_panel": per_panel,
        "hours_per_cell": axes.window_s / 3600.0 / w,
    }
    if axes.frequency_scale == "log":
        result["decades_per_cell"] = math.log10(fmax / fmin) / per_panel
    else:
        result["hz_per_cell"] = (fmax - fmin) / per_panel
    return result


def attention_summary(
    heatmap: np.ndarray,
    axes: SpectrogramAxes,
    native_shape: Sequence[int] | None = None,
    per_channel: np.ndarray | None = None,
    *,
    bands: Iterable[Band] | Mapping[str, Sequence[float]] = BANDS,
    top_fraction: float = 0.10,
    bin_hours: float = 1.0,
) -> dict:
    """All attention metrics of one heatmap as a JSON-ready dict (floats, lists, ``None``).

    ``per_channel`` (rows, cols, C) is only used in the channels layout (component shares, band x
    component, peak component); in the stacked layout the panels give the components.
    """
    mass, negative_fraction = _check_map(heatmap, axes)
    total = float(mass.sum())
    empty = total <= 0
    fmin, fmax = axes.frequency_range_hz
    located = peak_and_centroid(mass, axes, per_channel)
    summary = {
        "empty": empty,
        "total_mass": total,
        "negative_fraction": negative_fraction,
        "layout": axes.layout,
        "grid": {
            "rows": axes.shape[0],
            "cols": axes.shape[1],
            "frequency_range_hz": [float(fmin), float(fmax)],
            "window_hours": axes.window_s / 3600.0,
        },
        "bands": band_shares(mass, axes, bands, per_channel),
        "components": component_shares(mass, axes, per_channel),
        "temporal_profile": temporal_profile(mass, axes, bin_hours),
        "peak": located["peak"],
        "centroid": located["centroid"],
        "concentration": concentration(mass, top_fraction),
        "native_resolution": native_resolution(native_shape, axes),
    }
    return summary
