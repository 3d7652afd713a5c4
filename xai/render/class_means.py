"""The data-set class-mean figure: one row per head, one class-mean map per class on physical axes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from geomag.axes import SpectrogramAxes
from xai.render.labels import method_title
from xai.render.panels import SpectrogramOptions, plot_spectrogram
from xai.render.style import SCREEN_DPI, naming, release, save_atomic, screen_style


def _draw_head_row(row_axes, head: str, means: Mapping[str, np.ndarray], counts: Mapping, axes: SpectrogramAxes):
    """The class means of one head on a shared [0, max] colour range; spare panels left blank."""
    vmax = max(float(np.max(v)) for v in means.values()) or 1.0
    for c, ax in enumerate(row_axes):
        if c >= len(means):
            ax.set_axis_off()
            continue
        name = list(means)[c]
        options = SpectrogramOptions(
            cmap="inferno", colorbar=False, vmin=0.0, vmax=vmax, title=f"{head}: {name} (n={counts[name]})"
        )
        plot_spectrogram(ax, means[name], axes, options)


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
    mass before averaging) on physical axes, with the ULF band marked and ``n`` per class."""
    path = Path(path)
    heads = [h for h in means if means[h]]
    n_cols = max(len(means[h]) for h in heads)
    with screen_style(), naming(path):
        fig = Figure(figsize=(2.3 * n_cols + 0.8, 2.2 * len(heads) + 0.6), dpi=SCREEN_DPI, layout="constrained")
        try:
            grid = fig.subplots(len(heads), n_cols, squeeze=False)
            for r, head in enumerate(heads):
                _draw_head_row(grid[r], head, means[head], counts[head], axes)
            fig.suptitle(f"{model} — class-mean {method_title(method)} (true class; unit mass per sample)")
            return save_atomic(fig, path, dpi=SCREEN_DPI)
        finally:
            release(fig)
