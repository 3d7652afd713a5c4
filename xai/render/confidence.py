"""The confidence chart: grouped bars of predicted-class probability per head, wrong ones hatched."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from core.errors import InputDataError
from xai.render.checks import check_confidence
from xai.render.style import MODEL_COLOURS, PAPER_DPI, PAPER_WIDTH_IN, SCREEN_DPI, naming, paper_style, save_all


@dataclass
class _Chart:
    """Samples and models of the chart, the file named in errors, and which bar kinds were drawn."""

    samples: Sequence[str]
    models: Sequence[str]
    where: Path
    seen: dict[str, bool] = field(default_factory=lambda: {"wrong": False, "unknown": False, "missing": False})


def _bar_style(ok: bool | None, colour: str, seen: dict[str, bool]) -> dict:
    """Solid bar when right, hatched outline when wrong, faint dotted bar when the truth is unknown."""
    if ok is None:
        seen["unknown"] = True
        return {"facecolor": colour, "alpha": 0.35, "edgecolor": colour, "linestyle": ":"}
    if ok:
        return {"facecolor": colour, "edgecolor": colour}
    seen["wrong"] = True
    return {"facecolor": "white", "edgecolor": colour, "hatch": "////"}


def _missing_mark(ax: Axes, xpos: float) -> None:
    ax.text(
        xpos,
        0.02,
        "n/a",
        rotation=90,
        ha="center",
        va="bottom",
        color="0.4",
        fontsize=mpl.rcParams["xtick.labelsize"],
    )


def _draw_head(ax: Axes, chart: _Chart, head: str, confidence: Mapping, correct: Mapping) -> None:
    """One bar per (sample, model) of ``head``, models side by side within a sample."""
    conf_h = confidence.get(head, {}) if isinstance(confidence, Mapping) else {}
    corr_h = correct.get(head, {}) if isinstance(correct, Mapping) else {}
    n_m = len(chart.models)
    bar_w = 0.8 / n_m
    x = np.arange(len(chart.samples))
    for j, model in enumerate(chart.models):
        colour = MODEL_COLOURS[j % len(MODEL_COLOURS)]
        offset = (j - (n_m - 1) / 2) * bar_w
        for i, sample in enumerate(chart.samples):
            value = check_confidence(
                conf_h.get(model, {}).get(sample), f"confidence[{head}][{model}][{sample}]", chart.where
            )
            xpos = x[i] + offset
            if value is None:
                chart.seen["missing"] = True
                _missing_mark(ax, xpos)
                continue
            style = _bar_style(corr_h.get(model, {}).get(sample), colour, chart.seen)
            ax.bar(xpos, value, width=bar_w * 0.92, linewidth=0.9, **style)


def _style_head_axes(ax: Axes, head: str, n_samples: int) -> None:
    ax.set_ylim(0, 1.05)
    ax.set_xlim(-0.6, n_samples - 0.4)
    ax.set_ylabel("predicted-class\nprobability")
    ax.set_title(head, loc="left", fontweight="bold")
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.grid(axis="y", linewidth=0.4, color="0.85")
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _legend(fig: Figure, chart: _Chart) -> None:
    """Model colours, the hatching of wrong predictions and, when drawn, unknown and missing bars."""
    handles = [Patch(facecolor=MODEL_COLOURS[j % len(MODEL_COLOURS)], label=m) for j, m in enumerate(chart.models)]
    handles.append(Patch(facecolor="white", edgecolor="0.3", hatch="////", label="wrong prediction (hatched)"))
    if chart.seen["unknown"]:
        handles.append(Patch(facecolor="0.3", alpha=0.35, edgecolor="0.3", linestyle=":", label="true class unknown"))
    if chart.seen["missing"]:
        handles.append(Patch(facecolor="none", edgecolor="none", label="n/a: no prediction"))
    fig.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 6), frameon=False)


def build_confidence_figure(
    *,
    samples: Sequence[str],
    models: Sequence[str],
    heads: Sequence[str],
    confidence: Mapping,
    correct: Mapping,
    path: Path | None = None,
) -> Figure:
    """Build (without saving) the grouped bar chart of :func:`render_confidence_chart`.

    Call inside :func:`paper_style` for the paper fonts.
    """
    where = Path(path) if path is not None else Path("confidence_chart")
    if not samples or not models or not heads:
        raise InputDataError(where, "confidence chart needs at least one sample, model and head")
    chart = _Chart(samples, models, where)
    n_s, n_m = len(samples), len(models)
    width = max(PAPER_WIDTH_IN, min(14.0, 0.35 * n_s * n_m + 1.5))
    fig = Figure(figsize=(width, 0.6 + 2.1 * len(heads)), dpi=SCREEN_DPI, layout="constrained")
    subplots = fig.subplots(len(heads), 1, sharex=True, squeeze=False)[:, 0]
    for ax, head in zip(subplots, heads):
        _draw_head(ax, chart, head, confidence, correct)
        _style_head_axes(ax, head, n_s)
    subplots[-1].set_xticks(np.arange(n_s))
    rotation = 0 if max(len(s) for s in samples) * n_s < 60 else 25
    subplots[-1].set_xticklabels(samples, rotation=rotation, ha="right" if rotation else "center")
    _legend(fig, chart)
    return fig


def _output_paths(path: Path, paper: bool) -> list[tuple[Path, float]]:
    """``[(file, dpi)]``: the given file, or ``<stem>.pdf`` + 300-dpi ``<stem>.png`` for papers."""
    suffix = path.suffix.lower()
    if suffix in (".png", ".pdf", ".svg") and not paper:
        return [(path, PAPER_DPI if suffix != ".png" else 150)]
    stem = path.with_suffix("") if suffix in (".png", ".pdf", ".svg") else path
    return [(stem.with_name(stem.name + ".pdf"), PAPER_DPI), (stem.with_name(stem.name + ".png"), PAPER_DPI)]


def render_confidence_chart(
    path,
    *,
    samples: list[str],
    models: list[str],
    heads: list[str],
    confidence: dict,
    correct: dict,
    paper: bool = False,
) -> list[Path]:
    """Grouped bar chart of predicted-class probability per head (wrong predictions hatched).

    ``confidence[head][model][sample]`` is a probability, ``correct[head][model][sample]`` a
    bool or None. Writes ``path`` (PNG, 150 dpi); when ``path`` has no suffix or ``paper`` is
    true it writes ``<stem>.pdf`` and a 300-dpi ``<stem>.png``. Returns the files written.
    """
    path = Path(path)
    outputs = _output_paths(path, paper)
    with paper_style(), naming(path):
        fig = build_confidence_figure(
            samples=samples, models=models, heads=heads, confidence=confidence, correct=correct, path=path
        )
        return save_all(fig, outputs)
