"""The model-comparison figure: one column per model, one row per head of one method's overlays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib import patheffects
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure

from core.errors import InputDataError
from geomag.axes import SpectrogramAxes
from xai.render.checks import as_map, check_confidence, check_image, require
from xai.render.geometry import panel_rows, slot_axes
from xai.render.labels import method_title, verdict
from xai.render.panels import draw_image, relevance_over
from xai.render.planes import background_plane
from xai.render.style import SCREEN_DPI, naming, save_all, screen_style


@dataclass(frozen=True, eq=False)
class _Entry:
    """One model's checked input: grid, grey background and ``{head: (info, map)}``."""

    model: str
    axes: SpectrogramAxes
    background: np.ndarray
    background_name: str
    heads: dict


def _prepare(sample: str, entries: Sequence[Mapping], head_order: Sequence[str], where: Path) -> list[_Entry]:
    """Check every entry and its heads; keep the heads of ``head_order`` that are present."""
    if not entries:
        raise InputDataError(where, f"{sample}: no models to compare")
    prepared = []
    for i, entry in enumerate(entries):
        require(entry, ("model", "axes", "grid_image", "heads"), f"entries[{i}]", where)
        axes = entry["axes"]
        image = check_image(entry["grid_image"], axes, f"{sample}: {entry['model']} input image")
        heads = {}
        for head in head_order:
            info = entry["heads"].get(head)
            if info is None:
                continue
            require(info, ("prediction", "confidence", "map"), f"entries[{i}].heads[{head!r}]", where)
            check_confidence(info["confidence"], f"{entry['model']} {head}", where)
            heads[head] = (info, as_map(info["map"], axes, f"{entry['model']} {head} map", unit_range=True))
        prepared.append(_Entry(entry["model"], axes, *background_plane(image, axes), heads))
    return prepared


def _draw_cell(fig: Figure, spec, entry: _Entry, head: str, i: int, j: int) -> QuadMesh | None:
    """The overlay of one model and head with its verdict, or an empty "no map" cell."""
    panels = slot_axes(fig, spec, len(panel_rows(entry.axes, None)))
    if head not in entry.heads:
        for ax in panels:
            ax.set_axis_off()
        panels[0].set_title(f"{entry.model} · {head}: no map")
        return None
    info, heat = entry.heads[head]
    options = replace(relevance_over(entry.background, heat), ylabel=j == 0, ulf_label=i == 0 and j == 0)
    mesh = draw_image(panels, entry.background, entry.axes, None, options)
    _, mark, colour = verdict(info["prediction"], info["confidence"], info.get("true"), info.get("correct"))
    conf = "" if info["confidence"] is None else f" (p = {float(info['confidence']):.2f})"
    truth = "" if info.get("true") is None else f" · true {info['true']} {mark}"
    panels[0].set_title(f"{entry.model} · {head}\npredicted {info['prediction']}{conf}{truth}", color=colour)
    panels[-1].annotate(
        f"over {entry.background_name}",
        xy=(0.01, 0.03),
        xycoords="axes fraction",
        fontsize=mpl.rcParams["xtick.labelsize"],
        color="white",
        path_effects=[patheffects.withStroke(linewidth=1.5, foreground="black")],
    )
    return mesh


def build_comparison_figure(
    *,
    sample: str,
    entries: Sequence[Mapping],
    head_order: Sequence[str] = ("magnitude", "azimuth"),
    method: str = "gradcam",
    path: Path | None = None,
) -> Figure:
    """Build (without saving) the model-comparison figure of :func:`render_comparison_figure`."""
    where = Path(path) if path is not None else Path(f"{sample}_comparison.png")
    prepared = _prepare(sample, entries, head_order, where)
    present = [h for h in head_order if any(h in p.heads for p in prepared)]
    if not present:
        raise InputDataError(where, f"{sample}: none of the heads {tuple(head_order)} has a map")
    stacked = any(len(panel_rows(p.axes, None)) > 1 for p in prepared)
    n_models = len(prepared)
    width = min(20.0, max(8.0, 5.2 * n_models + 1.2))
    height = len(present) * (4.6 if stacked else 3.4) + 0.6
    fig = Figure(figsize=(width, height), dpi=SCREEN_DPI, layout="constrained")
    fig.suptitle(f"{method_title(method)} per model · {sample}", fontweight="bold")
    grid = fig.add_gridspec(len(present), n_models + 1, width_ratios=[1.0] * n_models + [0.035])
    mesh = None
    for j, entry in enumerate(prepared):
        for i, head in enumerate(present):
            drawn = _draw_cell(fig, grid[i, j], entry, head, i, j)
            mesh = mesh if drawn is None else drawn
    if mesh is not None:
        cax = fig.add_subplot(grid[:, -1], label="<colorbar>")
        bar = fig.colorbar(mesh, cax=cax, label=f"{method_title(method)} (normalised)")
        bar.solids.set_alpha(1.0)
    return fig


def render_comparison_figure(
    path,
    *,
    sample: str,
    entries: list[dict],
    head_order=("magnitude", "azimuth"),
    method: str = "gradcam",
) -> Path:
    """Write one column per model, one row per head of ``method`` overlays; return the path.

    Each entry is ``{"model", "axes", "grid_image", "heads": {head: {"prediction",
    "confidence", "true", "correct", "map"}}}``; models may have different grids.
    """
    path = Path(path)
    with screen_style(), naming(path):
        fig = build_comparison_figure(sample=sample, entries=entries, head_order=head_order, method=method, path=path)
        return save_all(fig, [(path, SCREEN_DPI)])[0]
