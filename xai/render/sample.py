"""The per-sample figure: the input spectrogram, then one row of explanation maps per head."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure, SubFigure

from core.errors import InputDataError
from geomag.axes import SpectrogramAxes
from xai.render.checks import as_map, check_confidence, check_image, require
from xai.render.components import draw_component_shares, has_shares
from xai.render.geometry import panel_rows, slot_axes
from xai.render.labels import method_title, value_label, verdict, window_text
from xai.render.panels import DrawOptions, draw_image, relevance_over
from xai.render.planes import background_plane, value_norm
from xai.render.reliance import RELIANCE_SLOTS, check_reliance, draw_reliance
from xai.render.style import HEATMAP_CMAP, SCREEN_DPI, SPECTROGRAM_CMAP, naming, save_all, screen_style


@dataclass(frozen=True)
class _Layout:
    """Grid of the figure: panels per image (1, or one per stacked component) and slot columns."""

    n_panels: int
    n_cols: int
    reliance: bool = False  # a head carries occlusion reliance (per-component maps need height)


def _checked_maps(sample: str, axes: SpectrogramAxes, heads: Mapping[str, Mapping], where: Path) -> dict:
    """``{head: {method: display map}}`` after checking every head's entries."""
    if not heads:
        raise InputDataError(where, f"{sample}: no heads to draw")
    head_maps: dict[str, dict[str, np.ndarray]] = {}
    for head, info in heads.items():
        require(info, ("prediction", "confidence", "maps"), f"heads[{head!r}]", where)
        check_confidence(info["confidence"], f"heads[{head!r}]", where)
        if not info["maps"]:
            raise InputDataError(where, f"heads[{head!r}] has no maps")
        head_maps[head] = {
            m: as_map(v, axes, f"{sample}: {head} {m} map", unit_range=True) for m, v in info["maps"].items()
        }
    return head_maps


def _canvas(
    title: str, axes: SpectrogramAxes, n_heads: int, layout: _Layout, activity: str | None = None
) -> tuple[Figure, list[SubFigure]]:
    """The figure with its title (and the window's geomagnetic activity line) and one sub-figure for the input
    plus one per head."""
    map_row_h = 3.0 if layout.n_panels == 1 and not layout.reliance else 5.4
    heights = [3.0] + [map_row_h] * n_heads
    width = min(20.0, max(16.0, 4.6 * layout.n_cols))
    fig = Figure(figsize=(width, sum(heights) + 0.5), dpi=SCREEN_DPI, layout="constrained")
    if axes.event_time:
        title += f" · event {axes.event_time}"
    fig.suptitle(f"{title} · {window_text(axes)}" + (f"\n{activity}" if activity else ""), fontweight="bold")
    return fig, fig.subfigures(len(heights), 1, height_ratios=heights, hspace=0.02)


def _draw_input_row(top: SubFigure, image: np.ndarray, axes: SpectrogramAxes, heads: Mapping, n_cols: int) -> None:
    """One panel per component on physical axes, one shared colour bar and the summary box."""
    rgb_input = axes.layout == "stacked" and image.shape[-1] == 3
    grid = top.add_gridspec(1, n_cols)
    norm = None if rgb_input else value_norm(image, None, None)
    input_axes = []
    mesh = None
    for k, comp in enumerate(axes.components):
        ax = top.add_subplot(grid[0, k])
        input_axes.append(ax)
        plane = image if rgb_input else (image[..., k] if axes.layout == "channels" else image[..., 0])
        options = DrawOptions(cmap=SPECTROGRAM_CMAP, norm=norm, ylabel=k == 0, ulf_label=k == 0)
        mesh = draw_image([ax], plane, axes, comp, options)
        ax.set_title(f"input · component {comp}")
    if norm is not None:
        top.colorbar(mesh, ax=input_axes, label=value_label(axes), fraction=0.04, pad=0.01)
    if n_cols > len(axes.components):
        _summary_box(top.add_subplot(grid[0, len(axes.components) :]), heads, axes)
    top.suptitle(
        "input spectrogram" + (" (RGB image as given)" if rgb_input else ""),
        x=0.01,
        ha="left",
        fontweight="bold",
    )


def _summary_box(ax: Axes, heads: Mapping[str, Mapping], axes: SpectrogramAxes) -> None:
    """Text panel with the predictions of every head and the grid facts."""
    ax.set_axis_off()
    lines = []
    for head, info in heads.items():
        text, _, _ = verdict(info["prediction"], info["confidence"], info.get("true"), info.get("correct"))
        lines.append(f"{head}:\n   {text}")
    fmin, fmax = axes.frequency_range_hz
    lines.append(
        f"grid {axes.shape[0]}×{axes.shape[1]}, {axes.layout} layout\n"
        f"{fmin * 1e3:g}–{fmax * 1e3:g} mHz ({axes.frequency_scale}), {window_text(axes)}"
    )
    lines.append("dashed lines: ULF precursor band 1–10 mHz")
    ax.text(0.02, 0.95, "\n\n".join(lines), ha="left", va="top", transform=ax.transAxes, wrap=True)


def _draw_head_row(
    row_fig: SubFigure,
    head: str,
    info: Mapping,
    maps: dict[str, np.ndarray],
    axes: SpectrogramAxes,
    background: tuple[np.ndarray, str],
    layout: _Layout,
) -> None:
    """Primary map (Grad-CAM when present), its overlay on the grey background, then every other method."""
    primary = "gradcam" if "gradcam" in maps else next(iter(maps))
    order = [primary, primary] + [m for m in maps if m != primary]
    grid = row_fig.add_gridspec(1, layout.n_cols)
    for j, method in enumerate(order):
        panels = slot_axes(row_fig, grid[0, j], layout.n_panels)
        if j == 1:
            plane, name = background
            options = replace(relevance_over(plane, maps[method]), ylabel=False, ulf_label=False)
            mesh = draw_image(panels, plane, axes, None, options)
            panels[0].set_title(f"{method_title(method)} over {name} (grey)")
        else:
            options = DrawOptions(cmap=HEATMAP_CMAP, norm=Normalize(0, 1), ylabel=j == 0, ulf_label=j == 0)
            mesh = draw_image(panels, maps[method], axes, None, options)
            panels[0].set_title(method_title(method))
        bar = row_fig.colorbar(mesh, ax=panels, label=f"{method_title(method)} (normalised)", fraction=0.05, pad=0.02)
        bar.solids.set_alpha(1.0)
    text, _, colour = verdict(info["prediction"], info["confidence"], info.get("true"), info.get("correct"))
    explained = info.get("explained_class")
    contrast = (info.get("target") or {}).get("contrast_class")
    if contrast is not None:
        text += f" · maps explain score {explained} − score {contrast}"
    elif explained is not None and str(explained) != str(info["prediction"]):
        text += f" · maps explain class {explained}"
    j = len(order)
    if info.get("reliance") is not None:
        draw_reliance(row_fig, (grid[0, j], grid[0, j + 1]), info["reliance"], axes)
        j += RELIANCE_SLOTS
    if has_shares(info.get("components")) and j < layout.n_cols:
        draw_component_shares(row_fig.add_subplot(grid[0, j]), info["components"], axes.components)
    row_fig.suptitle(f"{head}: {text}", x=0.01, ha="left", fontweight="bold", color=colour)


def build_sample_figure(
    *,
    sample: str,
    model: str,
    grid_image: np.ndarray,
    axes: SpectrogramAxes,
    heads: Mapping[str, Mapping],
    path: Path | None = None,
    activity: str | None = None,
) -> Figure:
    """Build (without saving) the per-sample figure of :func:`render_sample_figure`."""
    where = Path(path) if path is not None else Path(f"{sample}_visualization.png")
    image = check_image(grid_image, axes, f"{sample}: input image")
    head_maps = _checked_maps(sample, axes, heads, where)
    heads = {
        h: {**info, "reliance": check_reliance(info["reliance"], axes, where)} if info.get("reliance") else info
        for h, info in heads.items()
    }
    with_reliance = any(info.get("reliance") for info in heads.values())
    with_shares = any(has_shares(info.get("components")) for info in heads.values())
    n_slots = max(len(m) + 1 for m in head_maps.values()) + (RELIANCE_SLOTS if with_reliance else 0) + with_shares
    n_cols = max(n_slots, len(axes.components))
    layout = _Layout(n_panels=len(panel_rows(axes, None)), n_cols=n_cols, reliance=with_reliance)
    fig, rows = _canvas(f"{model} · {sample}", axes, len(heads), layout, activity)
    _draw_input_row(rows[0], image, axes, heads, layout.n_cols)
    background = background_plane(image, axes)
    for row_fig, (head, info) in zip(rows[1:], heads.items()):
        _draw_head_row(row_fig, head, info, head_maps[head], axes, background, layout)
    return fig


def render_sample_figure(
    path,
    *,
    sample: str,
    model: str,
    grid_image: np.ndarray,
    axes: SpectrogramAxes,
    heads: dict,
    activity: str | None = None,
) -> Path:
    """Write the per-sample explanation figure (input + one row of maps per head) and return its path.

    ``heads[head] = {"prediction", "confidence", "true", "correct", "explained_class",
    "maps": {method: (rows, cols) display map in [0, 1]}, "reliance": optional occlusion entry}``
    (:func:`xai.render.reliance.check_reliance`), optionally ``"target"`` (a contrast is named in the
    row title) and ``"components": {method: {component: share} | None}`` (a bar panel of component
    shares, :mod:`xai.render.components`). Grad-CAM (Selvaraju et al. 2017) is shown as a
    map and as an overlay; every other method as a map; occlusion reliance as drop maps on a
    diverging scale and marginal bars. ``activity``: one line on the window's
    geomagnetic activity for the title block (:func:`geomag.activity_summary.activity_text`).
    """
    path = Path(path)
    with screen_style(), naming(path):
        fig = build_sample_figure(
            sample=sample, model=model, grid_image=grid_image, axes=axes, heads=heads, path=path, activity=activity
        )
        return save_all(fig, [(path, SCREEN_DPI)])[0]
