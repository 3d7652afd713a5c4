"""Similarity of two heatmaps that may live on different spectrogram grids.

Two models can use different grids (e.g. 56x56 vs 112x112, or different frequency ranges), so
maps are first resampled onto a common physical grid (:func:`common_axes_for`,
:func:`resample_to_common_grid`) and then compared cell by cell:

* :func:`spearman` – rank correlation of the flattened maps (Spearman 1904, via
  :func:`scipy.stats.spearmanr`); robust to the different scales of different methods/models;
* :func:`top_fraction_iou` – intersection over union of the cells holding the top 10 % of each
  map (the "most important region" overlap used e.g. by Adebayo et al., "Sanity checks for
  saliency maps", NeurIPS 2018). Two independent random masks of 10 % of the cells have an
  expected IoU of 0.1 / 1.9 ≈ 0.053.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from core.errors import ConfigError, InputDataError
from geomag.axes import SpectrogramAxes
from xai.attention import concentration

__all__ = [
    "CHANCE_TOP10_IOU",
    "common_axes_for",
    "heatmap_similarity",
    "resample_to_common_grid",
    "spearman",
    "top_fraction_iou",
]

CHANCE_TOP10_IOU = 0.1 / 1.9


def _frequency_coordinate(freqs: np.ndarray, scale: str) -> np.ndarray:
    return np.log10(freqs) if scale == "log" else np.asarray(freqs, dtype=np.float64)


def _panels(axes: SpectrogramAxes) -> list[tuple[str | None, np.ndarray]]:
    """``(component name, row indices)`` per panel; one panel named ``None`` in the channels layout."""
    if axes.layout == "channels":
        return [(None, np.arange(axes.shape[0]))]
    return [(name, np.flatnonzero(axes.row_component == i)) for i, name in enumerate(axes.components)]


def _interp_axis(values: np.ndarray, source: np.ndarray, target: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``values`` along ``axis`` from ``source`` to ``target`` coordinates.

    Coordinates outside the source range take the edge value (``np.interp`` clamps).
    """
    order = np.argsort(source, kind="stable")
    src = source[order]
    moved = np.moveaxis(np.take(values, order, axis=axis), axis, -1)
    out = np.empty(moved.shape[:-1] + (target.size,), dtype=np.float64)
    for index in np.ndindex(moved.shape[:-1]):
        out[index] = np.interp(target, src, moved[index])
    return np.moveaxis(out, -1, axis)


def resample_to_common_grid(heatmap: np.ndarray, axes: SpectrogramAxes, common_axes: SpectrogramAxes) -> np.ndarray:
    """Resample a ``(n_rows, n_cols)`` heatmap from ``axes`` onto ``common_axes``.

    Separable linear interpolation at the target row/column centres: along frequency in
    ``log10 f`` (log target axes) or ``f`` (linear), within each component panel (stacked layout,
    matched by component *name*), then along time (seconds before the event). Targets outside the
    source's row/column centres take the nearest edge value. The resampling is **not**
    mass-preserving (a finer target grid repeats values rather than splitting them); the rank and
    top-cell comparisons here do not need it, and mass shares are computed on each model's own grid.
    """
    array = np.asarray(heatmap, dtype=np.float64)
    if array.shape != axes.shape:
        raise InputDataError(None, f"heatmap shape {array.shape} does not match its grid {axes.shape}")
    if axes.layout != common_axes.layout:
        raise ConfigError(f"cannot resample a {axes.layout}-layout map onto a {common_axes.layout}-layout grid")
    scale = common_axes.frequency_scale
    n_rows, n_cols = common_axes.shape
    by_frequency = np.empty((n_rows, axes.shape[1]), dtype=np.float64)
    source_panels = dict(_panels(axes))
    for name, target_rows in _panels(common_axes):
        if name not in source_panels:
            raise ConfigError(f"component {name!r} of the common grid is missing from the map's grid {axes.components}")
        rows = source_panels[name]
        by_frequency[target_rows] = _interp_axis(
            array[rows],
            _frequency_coordinate(axes.row_frequency_hz[rows], scale),
            _frequency_coordinate(common_axes.row_frequency_hz[target_rows], scale),
            axis=0,
        )
    result = _interp_axis(by_frequency, axes.column_time_s, common_axes.column_time_s, axis=1)
    assert result.shape == (n_rows, n_cols)
    return result


def common_axes_for(axes_list: Sequence[SpectrogramAxes]) -> SpectrogramAxes:
    """A regular grid over the physical intersection of all grids, at the finest resolution.

    Frequency: ``[max fmin, min fmax]``; time: ``[0, min window]`` s before the event. Rows per
    panel = the highest row density of the inputs (rows per decade on log axes, per Hz on linear)
    times the common range, rounded up; columns likewise with columns per second. All grids must
    share the layout (and, stacked, the components); the log scale is used unless all are linear.
    """
    if not axes_list:
        raise ConfigError("common_axes_for needs at least one grid")
    layouts = {a.layout for a in axes_list}
    if len(layouts) != 1:
        raise ConfigError(f"cannot compare maps across spectrogram layouts {sorted(layouts)}")
    layout = layouts.pop()
    components = axes_list[0].components
    if layout == "stacked" and any(set(a.components) != set(components) for a in axes_list):
        raise ConfigError(f"stacked grids have different components: {[a.components for a in axes_list]}")
    scale = "linear" if all(a.frequency_scale == "linear" for a in axes_list) else "log"
    fmin = max(float(a.frequency_range_hz[0]) for a in axes_list)
    fmax = min(float(a.frequency_range_hz[1]) for a in axes_list)
    window = min(float(a.window_s) for a in axes_list)
    if not fmin < fmax:
        raise ConfigError(f"the grids' frequency ranges do not overlap (common range {fmin:g}..{fmax:g} Hz)")

    def span(lo: float, hi: float) -> float:
        return math.log10(hi / lo) if scale == "log" else hi - lo

    n_panels = len(components) if layout == "stacked" else 1
    rows_density = max(
        (a.shape[0] / (len(a.components) if a.layout == "stacked" else 1)) / span(*a.frequency_range_hz)
        for a in axes_list
    )
    cols_density = max(a.shape[1] / a.window_s for a in axes_list)
    rows_per_panel = max(1, math.ceil(rows_density * span(fmin, fmax) - 1e-9))
    n_cols = max(1, math.ceil(cols_density * window - 1e-9))
    return SpectrogramAxes.regular(
        layout=layout,
        components=components,
        n_rows=rows_per_panel * n_panels,
        n_cols=n_cols,
        frequency_range_hz=(fmin, fmax),
        frequency_scale=scale,
        window_s=window,
    )


def _flat_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise InputDataError(None, f"maps to compare have different shapes {x.shape} and {y.shape}")
    return x.ravel(), y.ravel()


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation of two maps over the cells finite in both; ``None`` when undefined.

    Undefined = fewer than two common finite cells, or a map that is constant on them (its ranks
    carry no information, e.g. an all-zero Grad-CAM).
    """
    x, y = _flat_pair(a, b)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    rho = stats.spearmanr(x, y).statistic
    return None if not np.isfinite(rho) else float(rho)


def _top_mask(values: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest cells; ties go to the lower flat index, NaN counts as the smallest."""
    keyed = np.where(np.isfinite(values), values, -np.inf)
    order = np.lexsort((np.arange(values.size), -keyed))
    mask = np.zeros(values.size, dtype=bool)
    mask[order[:k]] = True
    return mask


def top_fraction_iou(a: np.ndarray, b: np.ndarray, fraction: float = 0.10) -> float:
    """IoU of the masks of the ``ceil(fraction * N)`` largest cells of each map.

    Ties are broken deterministically by the flat (row-major) cell index, so a constant map
    selects its first cells. 1 = same top cells, 0 = disjoint.
    """
    if not 0 < fraction <= 1:
        raise InputDataError(None, f"top fraction must be in (0, 1], got {fraction}")
    x, y = _flat_pair(a, b)
    if x.size == 0:
        raise InputDataError(None, "cannot compare empty maps")
    k = max(1, math.ceil(fraction * x.size - 1e-9))
    mask_a, mask_b = _top_mask(x, k), _top_mask(y, k)
    return float(np.sum(mask_a & mask_b)) / float(np.sum(mask_a | mask_b))


def heatmap_similarity(
    map_a: np.ndarray,
    axes_a: SpectrogramAxes,
    map_b: np.ndarray,
    axes_b: SpectrogramAxes,
    fraction: float = 0.10,
) -> dict:
    """Spearman and top-fraction IoU of two maps on their common physical grid (JSON-ready).

    ``concentration`` gives :func:`xai.attention.concentration` of both resampled maps (``"a"``,
    ``"b"``): normalised entropy and top-cell share depend on the number of cells, so maps from
    different grids are only comparable in concentration on the same (common) grid.
    """
    common = common_axes_for([axes_a, axes_b])
    a = resample_to_common_grid(map_a, axes_a, common)
    b = resample_to_common_grid(map_b, axes_b, common)
    fmin, fmax = common.frequency_range_hz
    return {
        "spearman": spearman(a, b),
        "top_iou": top_fraction_iou(a, b, fraction),
        "top_fraction": fraction,
        "concentration": {"a": concentration(a, fraction), "b": concentration(b, fraction)},
        "common_grid": {
            "rows": common.shape[0],
            "cols": common.shape[1],
            "frequency_range_hz": [float(fmin), float(fmax)],
            "frequency_scale": common.frequency_scale,
            "window_hours": common.window_s / 3600.0,
        },
    }
