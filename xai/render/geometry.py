"""Physical axes geometry: cell edges, panel rows, axis styling, ULF band marks and panel layout.

Cell edges are the (geometric, on log-frequency axes) midpoints between the row/column centres
of :class:`geomag.axes.SpectrogramAxes`, so the frequency axis is exact in Hz and the time axis
exact in hours; time is drawn increasing to the right (hours before the event 6 … 0).
"""

from __future__ import annotations

import math

import matplotlib as mpl
import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

from core.errors import InputDataError
from geomag.axes import SpectrogramAxes
from xai.render.style import FREQ_LABEL, TIME_LABEL, ULF_BAND_HZ, ULF_LABEL


def edges(centres: np.ndarray, *, log_scale: bool, fallback: tuple[float, float]) -> np.ndarray:
    """Cell edges from cell centres: (geometric) midpoints, ends mirrored outwards."""
    centres = np.asarray(centres, dtype=np.float64)
    if centres.size == 1:
        return np.asarray(fallback, dtype=np.float64)
    values = np.log(centres) if log_scale else centres
    inner = 0.5 * (values[:-1] + values[1:])
    first = values[0] - (inner[0] - values[0])
    last = values[-1] + (values[-1] - inner[-1])
    result = np.concatenate([[first], inner, [last]])
    return np.exp(result) if log_scale else result


def panel_rows(axes: SpectrogramAxes, component: str | int | None) -> list[tuple[str | None, np.ndarray]]:
    """``[(component label, row indices)]`` to draw for one image."""
    if axes.layout == "channels":
        label = None if component is None else axes.components[axes.component_index(component)]
        return [(label, np.arange(axes.shape[0]))]
    if component is not None:
        index = axes.component_index(component)
        return [(axes.components[index], axes.panel_rows(index))]
    order = sorted(range(len(axes.components)), key=lambda i: int(axes.panel_rows(i).min(initial=0)))
    return [(axes.components[i], axes.panel_rows(i)) for i in order if axes.panel_rows(i).size]


def row_edges(axes: SpectrogramAxes, rows: np.ndarray) -> np.ndarray:
    """Frequency edges (Hz) of the cells of ``rows``; one row spans the axes' frequency range."""
    freqs = axes.row_frequency_hz[rows]
    if freqs.size > 1 and not (np.all(np.diff(freqs) < 0) or np.all(np.diff(freqs) > 0)):
        raise InputDataError(None, "spectrogram axes: row frequencies of a panel are not monotonic")
    if np.any(freqs <= 0) and axes.frequency_scale == "log":
        raise InputDataError(None, "spectrogram axes: log-frequency rows must be positive")
    fmin, fmax = axes.frequency_range_hz
    fallback = (fmax, fmin) if freqs.size == 1 else (fmin, fmax)
    return edges(freqs, log_scale=axes.frequency_scale == "log", fallback=fallback)


def column_edges(axes: SpectrogramAxes) -> np.ndarray:
    """Time edges (hours before the event) of the columns; one column spans the whole window."""
    return edges(axes.column_hours_before, log_scale=False, fallback=(axes.window_s / 3600.0, 0.0))


def _mhz(value: float, _pos=None) -> str:
    return f"{value * 1e3:g}"


def _frequency_ticks(ax: Axes, axes: SpectrogramAxes, rows_hz: np.ndarray, compact: bool) -> None:
    """Log-frequency ticks dense enough for the number of decades shown, or a few linear ticks."""
    if axes.frequency_scale == "log":
        ax.set_yscale("log")
        decades = math.log10(float(rows_hz.max()) / float(rows_hz.min()))
        if decades >= (1.5 if compact else 3.5):
            subs: tuple[float, ...] = (1.0,)
        elif decades >= (0.6 if compact else 0.8):
            subs = (1.0, 2.0, 5.0)
        else:
            subs = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=30))
        ax.yaxis.set_minor_formatter(NullFormatter())
        if compact:  # decade labels already show the log scale; minor ticks only clutter small panels
            ax.yaxis.set_minor_locator(NullLocator())
    else:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=3 if compact else 5))


def style_axes(
    ax: Axes,
    axes: SpectrogramAxes,
    rows_hz: np.ndarray,
    cols_h: np.ndarray,
    *,
    xlabel: bool = True,
    ylabel: bool = True,
    compact: bool = False,
) -> None:
    """Physical axes: hours before the event (time increasing to the right) and frequency in mHz."""
    ax.set_xlim(float(cols_h.max()), float(cols_h.min()))
    ax.set_ylim(float(rows_hz.min()), float(rows_hz.max()))
    integer = float(cols_h.max() - cols_h.min()) >= 3.0
    ax.xaxis.set_major_locator(MaxNLocator(nbins=7, integer=integer, steps=[1, 2, 2.5, 3, 5, 6, 10]))
    _frequency_ticks(ax, axes, rows_hz, compact)
    ax.yaxis.set_major_formatter(FuncFormatter(_mhz))
    ax.set_xlabel(TIME_LABEL if xlabel else "")
    ax.set_ylabel(FREQ_LABEL if ylabel else "")


def mark_ulf(ax: Axes, *, label: bool) -> None:
    """Thin dashed lines at the ULF precursor band edges (1 and 10 mHz) with an optional label."""
    low, high = sorted(ax.get_ylim())
    visible = [f for f in ULF_BAND_HZ if low < f < high]
    if not visible:
        return
    width = 0.55 * float(mpl.rcParams["lines.linewidth"])
    stroke = [patheffects.withStroke(linewidth=2.1 * width, foreground="black")]
    for freq in visible:
        ax.axhline(freq, color="white", linestyle=(0, (4, 3)), linewidth=width, path_effects=stroke, zorder=5)
    if label:
        ylow = max(ULF_BAND_HZ[0], low)
        yhigh = min(ULF_BAND_HZ[1], high)
        ymid = math.sqrt(ylow * yhigh) if ax.get_yscale() == "log" else 0.5 * (ylow + yhigh)
        ax.annotate(
            ULF_LABEL,
            xy=(0.99, ymid),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="center",
            fontsize=mpl.rcParams["xtick.labelsize"],
            color="white",
            path_effects=[patheffects.withStroke(linewidth=1.6, foreground="black")],
            zorder=6,
        )


def component_tag(ax: Axes, label: str) -> None:
    """Bold component name (H, D, Z) in the top-left corner of a panel."""
    ax.text(
        0.012,
        0.96,
        label,
        transform=ax.transAxes,
        ha="left",
        va="top",
        fontweight="bold",
        fontsize=mpl.rcParams["axes.labelsize"],
        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        zorder=7,
    )


def panel_axes(ax: Axes, n_panels: int) -> list[Axes]:
    """Split one Axes into ``n_panels`` stacked child axes (top first); the parent keeps the title."""
    if n_panels == 1:
        return [ax]
    ax.set_axis_off()
    gap = 0.06
    height = (1.0 - gap * (n_panels - 1)) / n_panels
    children = []
    for k in range(n_panels):
        bottom = 1.0 - (k + 1) * height - k * gap
        child = ax.inset_axes([0.0, bottom, 1.0, height])
        if children:
            child.sharex(children[0])
        children.append(child)
    return children


def slot_axes(fig: Figure | SubFigure, spec, n_panels: int) -> list[Axes]:
    """One Axes, or ``n_panels`` vertically stacked Axes sharing x, inside a gridspec cell."""
    if n_panels == 1:
        return [fig.add_subplot(spec)]
    inner = spec.subgridspec(n_panels, 1, hspace=0.08)
    first = fig.add_subplot(inner[0, 0])
    return [first] + [fig.add_subplot(inner[k, 0], sharex=first) for k in range(1, n_panels)]
