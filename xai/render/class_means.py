"""The data-set class-mean figure: one row per head, one class-mean map per class on physical axes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from core.names import SIGNED_METHODS
from geomag.axes import SpectrogramAxes
from xai.render.labels import method_title
from xai.render.panels import SpectrogramOptions, plot_spectrogram
from xai.render.reliance import RELIANCE_CMAP, reliance_norm
from xai.render.style import SCREEN_DPI, naming, release, save_atomic, screen_style


def _colour_range(means: Mapping[str, np.ndarray], signed: bool) -> tuple[str, float, float]:
    """Colour map and limits shared by a head's panels: [0, max] for attention, [-m, m] diverging for drops."""
    if signed:
        norm = reliance_norm(np.stack(list(means.values())))
        return RELIANCE_CMAP, norm.vmin, norm.vmax
    return "inferno", 0.0, max(float(np.max(v)) for v in means.values()) or 1.0


def _draw_head_row(row_axes, head: str, means: Mapping[str, np.ndarray], counts: Mapping, axes: SpectrogramAxes,
                   signed: bool):  # fmt: skip
    """The class means of one head on a shared colour range; spare panels left blank."""
    cmap, vmin, vmax = _colour_range(means, signed)
    mesh = None
    for c, ax in enumerate(row_axes):
        if c >= len(means):
            ax.set_axis_off()
            continue
        name = list(means)[c]
        options = SpectrogramOptions(
            cmap=cmap, colorbar=False, vmin=vmin, vmax=vmax, title=f"{head}: {name} (n={counts[name]})"
        )
        mesh = plot_spectrogram(ax, means[name], axes, options)
    if signed and mesh is not None:
        row_axes[0].figure.colorbar(mesh, ax=list(row_axes), shrink=0.8, label="mean score drop")


def render_class_means(
    path,
    *,
    model: str,
    method: str,
    means: Mapping[str, Mapping[str, np.ndarray]],
    counts: Mapping[str, Mapping[str, int]],
    axes: SpectrogramAxes,
) -> Path:
    """One row per head, one panel per class: the class-mean map (each sample's map scaled to unit
    mass before averaging; signed methods' score drops averaged as they are, on a diverging scale) on
    physical axes, with the ULF band marked and ``n`` per class."""
    path = Path(path)
    heads = [h for h in means if means[h]]
    n_cols = max(len(means[h]) for h in heads)
    with screen_style(), naming(path):
        fig = Figure(figsize=(2.3 * n_cols + 0.8, 2.2 * len(heads) + 0.6), dpi=SCREEN_DPI, layout="constrained")
        try:
            grid = fig.subplots(len(heads), n_cols, squeeze=False)
            for r, head in enumerate(heads):
                _draw_head_row(grid[r], head, means[head], counts[head], axes, method in SIGNED_METHODS)
            how = "mean score drop, red: relied on" if method in SIGNED_METHODS else "unit mass per sample"
            fig.suptitle(f"{model} — class-mean {method_title(method)} (true class; {how})")
            return save_atomic(fig, path, dpi=SCREEN_DPI)
        finally:
            release(fig)
