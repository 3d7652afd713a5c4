"""Drawing one image (spectrogram plane or relevance map, optionally overlaid) on physical axes.

Every image is drawn with ``pcolormesh`` on the exact cell edges of :mod:`xai.render.geometry`.
``channels`` layout: the whole plane in one panel; ``stacked`` layout: one panel per component
(H, D, Z from the top), each on its own frequency axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.colors import Normalize

from core.errors import InputDataError
from geomag.axes import SpectrogramAxes
from xai.render.checks import as_map, as_rgb, check_image, is_rgb
from xai.render.geometry import column_edges, component_tag, mark_ulf, panel_axes, panel_rows, row_edges, style_axes
from xai.render.labels import value_label
from xai.render.planes import background_plane, unit_norm, value_norm
from xai.render.style import HEATMAP_CMAP, SPECTROGRAM_CMAP


@dataclass(frozen=True, eq=False)
class Overlay:
    """A relevance map drawn semi-transparently over an image."""

    heat: np.ndarray
    cmap: str
    norm: Normalize
    alpha: float


@dataclass(frozen=True, eq=False)
class DrawOptions:
    """How :func:`draw_image` colours and labels the panels of one image."""

    cmap: str | None
    norm: Normalize | None
    overlay: Overlay | None = None
    ulf_band: bool = True
    ulf_label: bool = True
    xlabel: bool = True
    ylabel: bool = True
    compact: bool | None = None


@dataclass(frozen=True)
class SpectrogramOptions:
    """Options of :func:`plot_spectrogram` (``vmin``/``vmax`` default to the data range)."""

    component: str | int | None = None
    cmap: str = SPECTROGRAM_CMAP
    title: str | None = None
    colorbar: bool = True
    vmin: float | None = None
    vmax: float | None = None
    ulf_band: bool = True
    cbar_label: str | None = None


@dataclass(frozen=True)
class OverlayOptions:
    """Options of :func:`plot_heatmap_overlay` (``alpha`` in [0, 1] is the heatmap's opacity)."""

    component: str | int | None = None
    alpha: float = 0.5
    cmap: str = "jet"
    title: str | None = None
    colorbar: bool = True
    ulf_band: bool = True
    cbar_label: str = "relevance (normalised)"


def relevance_over(background: np.ndarray, heat: np.ndarray) -> DrawOptions:
    """A [0, 1] relevance map in the heatmap colours at half opacity over a grey ``background``."""
    return DrawOptions(
        cmap="gray",
        norm=value_norm(background, None, None),
        overlay=Overlay(heat, HEATMAP_CMAP, Normalize(0, 1), 0.5),
    )


def draw_panel(
    ax: Axes,
    values: np.ndarray,
    axes: SpectrogramAxes,
    rows: np.ndarray,
    *,
    cmap: str | None,
    norm: Normalize | None,
    alpha: float | None = None,
) -> QuadMesh:
    """pcolormesh of ``values[rows]`` (scalar or RGB) on exact physical cell edges."""
    data = values[rows]
    kwargs = {"shading": "flat", "rasterized": True, "alpha": alpha}
    if data.ndim == 2:
        kwargs.update(cmap=cmap, norm=norm)
    return ax.pcolormesh(column_edges(axes), row_edges(axes, rows), data, **kwargs)


def draw_image(
    panels: Sequence[Axes],
    values: np.ndarray,
    axes: SpectrogramAxes,
    component: str | int | None,
    options: DrawOptions,
) -> QuadMesh:
    """Draw ``values`` (and the optional overlay) into one Axes per panel; return the last mesh."""
    parts = panel_rows(axes, component)
    if len(parts) != len(panels):
        raise InputDataError(None, f"internal: {len(parts)} panels to draw into {len(panels)} axes")
    col_edges = column_edges(axes)
    compact = len(parts) > 1 if options.compact is None else options.compact
    mappable = None
    for k, (ax, (label, rows)) in enumerate(zip(panels, parts)):
        mappable = draw_panel(ax, values, axes, rows, cmap=options.cmap, norm=options.norm)
        if options.overlay is not None:
            over = options.overlay
            mappable = draw_panel(ax, over.heat, axes, rows, cmap=over.cmap, norm=over.norm, alpha=over.alpha)
        last = k == len(parts) - 1
        middle = k == (len(parts) - 1) // 2
        style_axes(
            ax,
            axes,
            row_edges(axes, rows),
            col_edges,
            xlabel=options.xlabel and last,
            ylabel=options.ylabel and middle,
            compact=compact,
        )
        if not last:
            ax.tick_params(labelbottom=False)
        if options.ulf_band:
            mark_ulf(ax, label=options.ulf_label and k == 0)
        if label is not None and (axes.layout == "stacked" or len(parts) > 1):
            component_tag(ax, label)
    return mappable


def plot_spectrogram(
    ax: Axes, image2d: np.ndarray, axes: SpectrogramAxes, options: SpectrogramOptions | None = None
) -> QuadMesh:
    """Draw one spectrogram plane on physical axes and return the mappable.

    ``image2d`` is ``(rows, cols)`` on the grid of ``axes`` (or ``(rows, cols, 3)`` RGB for a
    stacked image). ``channels`` layout: the whole plane is drawn and ``options.component`` only
    labels it. ``stacked`` layout: ``options.component`` selects that panel's rows; with
    ``component=None`` ``ax`` is split into one child panel per component (H, D, Z from the top).
    """
    options = options or SpectrogramOptions()
    values = np.asarray(image2d, dtype=np.float64)
    if is_rgb(values):
        if values.shape[:2] != axes.shape or not np.all(np.isfinite(values)):
            raise InputDataError(None, f"spectrogram: RGB image {values.shape} does not fit the grid {axes.shape}")
        values = as_rgb(values, "spectrogram")
        norm = None
    else:
        values = as_map(values, axes, "spectrogram")
        norm = value_norm(values, options.vmin, options.vmax)
    parts = panel_rows(axes, options.component)
    panels = panel_axes(ax, len(parts))
    draw = DrawOptions(cmap=options.cmap, norm=norm, ulf_band=options.ulf_band)
    mesh = draw_image(panels, values, axes, options.component, draw)
    label = parts[0][0] if len(parts) == 1 else None
    title = options.title
    if title is None and label is not None:
        title = f"component {label}"
    if title:
        ax.set_title(title)
    if options.colorbar and norm is not None:
        ax.figure.colorbar(mesh, ax=ax, label=options.cbar_label or value_label(axes), fraction=0.05, pad=0.02)
    return mesh


def plot_heatmap_overlay(
    ax: Axes,
    background2d: np.ndarray,
    heatmap2d: np.ndarray,
    axes: SpectrogramAxes,
    options: OverlayOptions | None = None,
) -> QuadMesh:
    """Draw ``heatmap2d`` semi-transparently over a greyscale ``background2d``; return the heatmap mesh.

    ``background2d`` is ``(rows, cols)`` (or ``(rows, cols, 3)`` RGB, shown as luminance);
    ``heatmap2d`` is ``(rows, cols)``, shown on [0, 1] when it lies there. ``options.component``
    behaves as in :func:`plot_spectrogram`.
    """
    options = options or OverlayOptions()
    if not 0.0 <= options.alpha <= 1.0:
        raise InputDataError(None, f"overlay: alpha must lie in [0, 1], got {options.alpha}")
    background = np.asarray(background2d, dtype=np.float64)
    if is_rgb(background):
        background = background_plane(check_image(background, axes, "overlay background"), axes)[0]
    background = as_map(background, axes, "overlay background")
    heat = as_map(heatmap2d, axes, "overlay heatmap")
    overlay = Overlay(heat, options.cmap, unit_norm(heat), options.alpha)
    draw = DrawOptions(cmap="gray", norm=value_norm(background, None, None), overlay=overlay, ulf_band=options.ulf_band)
    panels = panel_axes(ax, len(panel_rows(axes, options.component)))
    mesh = draw_image(panels, background, axes, options.component, draw)
    if options.title:
        ax.set_title(options.title)
    if options.colorbar:
        bar = ax.figure.colorbar(mesh, ax=ax, label=options.cbar_label, fraction=0.05, pad=0.02)
        bar.solids.set_alpha(1.0)
    return mesh
