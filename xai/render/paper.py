"""The paper grid: samples × models of one method's overlays, 7 in wide, as PDF and 300-dpi PNG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure, SubFigure

from core.errors import InputDataError
from geomag.axes import SpectrogramAxes
from xai.render.checks import as_map, check_confidence, check_image, require
from xai.render.geometry import panel_rows, slot_axes
from xai.render.labels import method_title, verdict
from xai.render.panels import draw_image, relevance_over
from xai.render.planes import background_plane
from xai.render.style import PAPER_DPI, PAPER_WIDTH_IN, SCREEN_DPI, naming, paper_style, save_all


@dataclass(frozen=True, eq=False)
class _Cell:
    """One checked (sample, model) cell: its entry, grid, grey background and map."""

    info: Mapping
    axes: SpectrogramAxes
    background: np.ndarray
    background_name: str
    heat: np.ndarray


def _prepare(
    samples: Sequence[str], models: Sequence[str], cells: Mapping, method: str, where: Path
) -> dict[tuple[str, str], _Cell]:
    """Check every present cell; missing (sample, model) pairs are left out."""
    if not samples or not models:
        raise InputDataError(where, "paper grid needs at least one sample and one model")
    prepared = {}
    for sample in samples:
        for model in models:
            cell = cells.get((sample, model))
            if cell is None:
                continue
            where_cell = f"cells[({sample!r}, {model!r})]"
            require(cell, ("axes", "grid_image", "map", "prediction"), where_cell, where)
            axes = cell["axes"]
            check_confidence(cell.get("confidence"), where_cell, where)
            image = check_image(cell["grid_image"], axes, f"{sample}/{model} input image")
            heat = as_map(cell["map"], axes, f"{sample}/{model} {method} map", unit_range=True)
            prepared[(sample, model)] = _Cell(cell, axes, *background_plane(image, axes), heat)
    if not prepared:
        raise InputDataError(where, f"paper grid: no cells for samples {list(samples)} and models {list(models)}")
    return prepared


def _canvas(n_s: int, n_m: int, stacked: bool) -> tuple[Figure, list[SubFigure]]:
    """The 7-in-wide figure with one sub-figure per sample and one for the colour bar."""
    cell_w = (PAPER_WIDTH_IN - 1.1) / n_m
    cell_h = min(2.4 if stacked else 1.9, max(1.3, 0.75 * cell_w * (1.5 if stacked else 1.0)))
    bar_h = 0.6
    heights = [cell_h + 0.35] * n_s + [bar_h]
    fig = Figure(figsize=(PAPER_WIDTH_IN, sum(heights)), dpi=SCREEN_DPI, layout="constrained")
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, hspace=0.02, wspace=0.02)
    return fig, fig.subfigures(n_s + 1, 1, height_ratios=heights, hspace=0.0)


def _draw_cell(
    row_fig: SubFigure, spec, model: str, cell: _Cell, *, xlabel: bool, ylabel: bool, ulf_label: bool
) -> QuadMesh:
    """The overlay of one (sample, model) cell titled with the prediction and its verdict mark."""
    panels = slot_axes(row_fig, spec, len(panel_rows(cell.axes, None)))
    options = replace(relevance_over(cell.background, cell.heat), xlabel=xlabel, ylabel=ylabel, ulf_label=ulf_label)
    mesh = draw_image(panels, cell.background, cell.axes, None, options)
    info = cell.info
    _, mark, colour = verdict(info["prediction"], info.get("confidence"), info.get("true"), info.get("correct"))
    conf = "" if info.get("confidence") is None else f" ({float(info['confidence']):.2f})"
    panels[0].set_title(f"{model}: {info['prediction']}{conf} {mark}".rstrip(), color=colour)
    return mesh


def _draw_sample_row(
    row_fig: SubFigure,
    sample: str,
    models: Sequence[str],
    prepared: dict[tuple[str, str], _Cell],
    first: bool,
    last: bool,
    backgrounds: list[str],
) -> QuadMesh | None:
    """One row of the grid: the sample (and its true classes) as title, one cell per model."""
    grid = row_fig.add_gridspec(1, len(models))
    truths = {str(prepared[(sample, m)].info.get("true")) for m in models if (sample, m) in prepared}
    truths.discard("None")
    truth = f" (true: {', '.join(sorted(truths))})" if truths else ""
    row_fig.suptitle(f"{sample}{truth}", x=0.01, ha="left", fontweight="bold")
    mesh = None
    for j, model in enumerate(models):
        cell = prepared.get((sample, model))
        if cell is None:
            ax = row_fig.add_subplot(grid[0, j])
            ax.set_axis_off()
            ax.set_title(f"{model}: n/a")
            continue
        if cell.background_name not in backgrounds:
            backgrounds.append(cell.background_name)
        mesh = _draw_cell(row_fig, grid[0, j], model, cell, xlabel=last, ylabel=j == 0, ulf_label=first and j == 0)
    return mesh


def build_paper_grid_figure(
    *,
    samples: Sequence[str],
    models: Sequence[str],
    cells: Mapping,
    head: str,
    method: str,
    path: Path | None = None,
) -> Figure:
    """Build (without saving) the samples × models overlay grid of :func:`render_paper_grid`.

    Call inside :func:`paper_style` for the paper fonts.
    """
    where = Path(path) if path is not None else Path("paper_grid")
    prepared = _prepare(samples, models, cells, method, where)
    stacked = any(len(panel_rows(p.axes, None)) > 1 for p in prepared.values())
    n_s = len(samples)
    fig, rows = _canvas(n_s, len(models), stacked)
    mesh, backgrounds = None, []
    for i, (row_fig, sample) in enumerate(zip(rows[:-1], samples)):
        drawn = _draw_sample_row(row_fig, sample, models, prepared, i == 0, i == n_s - 1, backgrounds)
        mesh = mesh if drawn is None else drawn
    if mesh is not None:
        cax = rows[-1].add_gridspec(1, 3, width_ratios=[1.0, 2.0, 1.0])[0, 1]
        label = f"{method_title(method)} ({head} head, normalised) over {' / '.join(backgrounds)} (grey)"
        bar = rows[-1].colorbar(
            mesh, cax=rows[-1].add_subplot(cax, label="<colorbar>"), orientation="horizontal", label=label
        )
        bar.solids.set_alpha(1.0)
    return fig


def _paper_paths(path_stem) -> tuple[Path, Path]:
    """``(<stem>.pdf, <stem>.png)``; a ``.pdf``/``.png`` suffix on the stem is dropped."""
    stem = Path(path_stem)
    if stem.suffix.lower() in (".pdf", ".png"):
        stem = stem.with_suffix("")
    return stem.with_name(stem.name + ".pdf"), stem.with_name(stem.name + ".png")


def render_paper_grid(
    path_stem,
    *,
    samples: list[str],
    models: list[str],
    cells: dict,
    head: str,
    method: str,
) -> list[Path]:
    """Samples × models grid of ``method`` overlays for a paper: ``<stem>.pdf`` + 300-dpi ``<stem>.png``.

    ``cells[(sample, model)] = {"axes", "grid_image", "map", "prediction", "true", "correct",
    "confidence"}``; the figure is 7.0 in wide (a two-column page) with 8 pt sans-serif text.
    """
    pdf, png = _paper_paths(path_stem)
    with paper_style(), naming(pdf):
        fig = build_paper_grid_figure(samples=samples, models=models, cells=cells, head=head, method=method, path=pdf)
        return save_all(fig, [(pdf, PAPER_DPI), (png, PAPER_DPI)])
