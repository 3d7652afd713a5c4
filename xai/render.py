"""Figures on physical axes: spectrograms, explanation maps, comparisons and paper panels.

Every image is drawn with ``pcolormesh`` on cell edges computed from the row/column centres of
:class:`geomag.axes.SpectrogramAxes` (geometric midpoints on log-frequency axes), so the
frequency axis is exact in Hz and the time axis is exact in hours.

Conventions used in every figure:

* x axis: **hours before the event**, drawn so that time increases to the right
  (ticks 6 … 0, the event at the right edge);
* y axis: frequency, tick labels in mHz, log scale when ``axes.frequency_scale == "log"``;
* ``channels`` layout: one panel per component for the input; explanation maps span all
  components and are overlaid on the H component (or the first component when there is no H);
* ``stacked`` layout: every image is drawn as its component panels (H, D, Z, top to bottom),
  each on its own frequency axis;
* the ULF precursor band 1–10 mHz is marked with thin dashed lines (``ulf_band``).

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot, no global state) and saved
atomically through :func:`core.io.atomic_path` (temporary file in the target folder, then
``os.replace``).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.colors import Normalize
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

from core.errors import InputDataError
from core.io import atomic_path
from core.names import METHOD_TITLES
from geomag.axes import SpectrogramAxes

log = logging.getLogger(__name__)

ULF_BAND_HZ = (1e-3, 1e-2)
ULF_LABEL = "ULF 1–10 mHz"
TIME_LABEL = "hours before event"
FREQ_LABEL = "frequency (mHz)"
POWER_LABEL = "log10 power (nT²/Hz)"
HEATMAP_CMAP = "turbo"  # perceptually improved jet (Mikhailov 2019) for all relevance maps
SPECTROGRAM_CMAP = "viridis"
SCREEN_DPI = 110
PAPER_DPI = 300
PAPER_WIDTH_IN = 7.0


_SCREEN_RC = {
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 14,
    "figure.dpi": SCREEN_DPI,
}

_PAPER_RC = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.titlesize": 9,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "xtick.minor.size": 1.5,
    "ytick.minor.size": 1.5,
    "lines.linewidth": 0.8,
    "hatch.linewidth": 0.6,
    "pdf.fonttype": 42,  # TrueType in the PDF (journals reject Type 3 fonts)
    "ps.fonttype": 42,
    "savefig.dpi": PAPER_DPI,
}


# ============================================================================ styles and saving
@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Local rcParams for publication figures (8 pt sans-serif, TrueType fonts in PDFs)."""
    with mpl.rc_context(_PAPER_RC):
        yield


@contextlib.contextmanager
def _screen_style() -> Iterator[None]:
    with mpl.rc_context(_SCREEN_RC):
        yield


def _save_atomic(fig: Figure, path: Path, *, dpi: float) -> Path:
    """Save ``fig`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "pdf", "svg"):
        raise InputDataError(path, f"unsupported figure format {path.suffix!r}; use .png, .pdf or .svg")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    log.info("wrote figure %s", path)
    return path


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Re-raise input errors that lack a file name with the figure's path, so messages name a file."""
    try:
        yield
    except InputDataError as error:
        if error.path is None:
            raise InputDataError(path, error.problem) from None
        raise


def _release(fig: Figure) -> None:
    """Drop all artists so the figure's memory is freed at once (no pyplot registry involved)."""
    fig.clear()


# ============================================================================ validation
def _as_map(values, axes: SpectrogramAxes, what: str, *, unit_range: bool = False) -> np.ndarray:
    """A finite float ``(n_rows, n_cols)`` array on the grid of ``axes``."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.shape != axes.shape:
        raise InputDataError(
            None, f"{what}: shape {array.shape} does not match the spectrogram grid {axes.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise InputDataError(None, f"{what}: contains NaN or infinite values")
    if unit_range and (array.min() < -1e-6 or array.max() > 1 + 1e-6):
        raise InputDataError(
            None, f"{what}: display map must lie in [0, 1], got [{array.min():.3g}, {array.max():.3g}]"
        )
    return array


def _as_rgb(values: np.ndarray, what: str) -> np.ndarray:
    """RGB image scaled to [0, 1] (accepts [0, 1] floats or 0–255 values)."""
    rgb = np.asarray(values, dtype=np.float64)
    low, high = float(rgb.min()), float(rgb.max())
    if low >= 0 and high <= 1:
        return rgb
    if low >= 0 and high <= 255:
        return rgb / 255.0
    raise InputDataError(
        None, f"{what}: RGB values must lie in [0, 1] or [0, 255], got [{low:.3g}, {high:.3g}]"
    )


def _is_rgb(image: np.ndarray) -> bool:
    return image.ndim == 3 and image.shape[-1] == 3


def _check_image(image, axes: SpectrogramAxes, what: str) -> np.ndarray:
    """Validate a grid image for ``axes`` and return it as float64.

    ``channels``: ``(rows, cols, n_components)`` (or ``(rows, cols)`` for one component);
    ``stacked``: ``(rows, cols, 3)`` RGB, or ``(rows, cols)`` / ``(rows, cols, 1)`` greyscale.
    A stacked image whose three channels are identical is returned as one greyscale plane.
    """
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[:2] != axes.shape:
        raise InputDataError(None, f"{what}: shape {np.shape(image)} does not match the grid {axes.shape}")
    if not np.all(np.isfinite(array)):
        raise InputDataError(None, f"{what}: contains NaN or infinite values")
    if axes.layout == "channels":
        if array.shape[-1] != len(axes.components):
            raise InputDataError(
                None,
                f"{what}: {array.shape[-1]} channels but the axes have components {axes.components}",
            )
        return array
    if array.shape[-1] == 3:
        if np.allclose(array[..., 0], array[..., 1]) and np.allclose(array[..., 0], array[..., 2]):
            return array[..., :1]
        return _as_rgb(array, what)
    if array.shape[-1] != 1:
        raise InputDataError(None, f"{what}: a stacked image needs 1 or 3 channels, got {array.shape[-1]}")
    return array


def _background_plane(image: np.ndarray, axes: SpectrogramAxes) -> tuple[np.ndarray, str]:
    """Scalar plane under an overlay and a short description of it."""
    if axes.layout == "channels":
        index = axes.components.index("H") if "H" in axes.components else 0
        return image[..., index], f"{axes.components[index]} log-power"
    if image.shape[-1] == 3:
        level = _decode_jet(image)
        if level is not None:
            return level, "jet-decoded input"
        return image @ np.array([0.299, 0.587, 0.114]), "input luminance"
    return image[..., 0], "input"


def _decode_jet(rgb: np.ndarray, tolerance: float = 0.05) -> np.ndarray | None:
    """Scalar level in [0, 1] of an image coloured with matplotlib's ``jet`` (the users' stacked
    layout), or None when the colours are not jet. Jet's luminance is not monotonic, so an
    overlay on the decoded level keeps the ordering of the power values."""
    from scipy.spatial import cKDTree

    lut = mpl.colormaps["jet"].resampled(256)(np.linspace(0.0, 1.0, 256))[:, :3]
    distance, index = cKDTree(lut).query(rgb.reshape(-1, 3))
    if float(np.percentile(distance, 95)) > tolerance:
        return None
    return (index / 255.0).reshape(rgb.shape[:2])


def _value_label(axes: SpectrogramAxes) -> str:
    return str(axes.extra.get("value_label") or POWER_LABEL)


def _method_title(method: str) -> str:
    return METHOD_TITLES.get(method.lower(), method)


# ============================================================================ geometry
def _edges(centres: np.ndarray, *, log_scale: bool, fallback: tuple[float, float]) -> np.ndarray:
    """Cell edges from cell centres: (geometric) midpoints, ends mirrored outwards."""
    centres = np.asarray(centres, dtype=np.float64)
    if centres.size == 1:
        return np.asarray(fallback, dtype=np.float64)
    values = np.log(centres) if log_scale else centres
    inner = 0.5 * (values[:-1] + values[1:])
    first = values[0] - (inner[0] - values[0])
    last = values[-1] + (values[-1] - inner[-1])
    edges = np.concatenate([[first], inner, [last]])
    return np.exp(edges) if log_scale else edges


def _panel_rows(axes: SpectrogramAxes, component: str | int | None) -> list[tuple[str | None, np.ndarray]]:
    """``[(component label, row indices)]`` to draw for one image."""
    if axes.layout == "channels":
        label = None if component is None else axes.components[axes.component_index(component)]
        return [(label, np.arange(axes.shape[0]))]
    if component is not None:
        index = axes.component_index(component)
        return [(axes.components[index], axes.panel_rows(index))]
    order = sorted(range(len(axes.components)), key=lambda i: int(axes.panel_rows(i).min(initial=0)))
    return [(axes.components[i], axes.panel_rows(i)) for i in order if axes.panel_rows(i).size]


def _row_edges(axes: SpectrogramAxes, rows: np.ndarray) -> np.ndarray:
    freqs = axes.row_frequency_hz[rows]
    if freqs.size > 1 and not (np.all(np.diff(freqs) < 0) or np.all(np.diff(freqs) > 0)):
        raise InputDataError(None, "spectrogram axes: row frequencies of a panel are not monotonic")
    if np.any(freqs <= 0) and axes.frequency_scale == "log":
        raise InputDataError(None, "spectrogram axes: log-frequency rows must be positive")
    fmin, fmax = axes.frequency_range_hz
    fallback = (fmax, fmin) if freqs.size == 1 else (fmin, fmax)
    return _edges(freqs, log_scale=axes.frequency_scale == "log", fallback=fallback)


def _column_edges(axes: SpectrogramAxes) -> np.ndarray:
    return _edges(axes.column_hours_before, log_scale=False, fallback=(axes.window_s / 3600.0, 0.0))


def _mhz(value: float, _pos=None) -> str:
    return f"{value * 1e3:g}"


def _style_axes(
    ax: Axes,
    axes: SpectrogramAxes,
    row_edges: np.ndarray,
    col_edges: np.ndarray,
    *,
    xlabel: bool = True,
    ylabel: bool = True,
    compact: bool = False,
) -> None:
    """Physical axes: hours before the event (time increasing to the right) and frequency in mHz."""
    ax.set_xlim(float(col_edges.max()), float(col_edges.min()))
    ax.set_ylim(float(row_edges.min()), float(row_edges.max()))
    integer = float(col_edges.max() - col_edges.min()) >= 3.0
    ax.xaxis.set_major_locator(MaxNLocator(nbins=7, integer=integer, steps=[1, 2, 2.5, 3, 5, 6, 10]))
    if axes.frequency_scale == "log":
        ax.set_yscale("log")
        decades = math.log10(float(row_edges.max()) / float(row_edges.min()))
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
    ax.yaxis.set_major_formatter(FuncFormatter(_mhz))
    ax.set_xlabel(TIME_LABEL if xlabel else "")
    ax.set_ylabel(FREQ_LABEL if ylabel else "")


def _mark_ulf(ax: Axes, *, label: bool) -> None:
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


def _component_tag(ax: Axes, label: str) -> None:
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


def _draw_panel(
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
    row_edges = _row_edges(axes, rows)
    col_edges = _column_edges(axes)
    data = values[rows]
    kwargs = {"shading": "flat", "rasterized": True, "alpha": alpha}
    if data.ndim == 2:
        kwargs.update(cmap=cmap, norm=norm)
    mesh = ax.pcolormesh(col_edges, row_edges, data, **kwargs)
    return mesh


def _panel_axes(ax: Axes, n_panels: int) -> list[Axes]:
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


def _draw_image(
    panels: Sequence[Axes],
    values: np.ndarray,
    axes: SpectrogramAxes,
    component: str | int | None,
    *,
    cmap: str | None,
    norm: Normalize | None,
    overlay: tuple[np.ndarray, str, Normalize, float] | None = None,
    ulf_band: bool = True,
    ulf_label: bool = True,
    xlabel: bool = True,
    ylabel: bool = True,
    compact: bool | None = None,
) -> QuadMesh:
    """Draw ``values`` (and an optional heatmap overlay) into one Axes per panel; return the last mesh."""
    parts = _panel_rows(axes, component)
    if len(parts) != len(panels):
        raise InputDataError(None, f"internal: {len(parts)} panels to draw into {len(panels)} axes")
    col_edges = _column_edges(axes)
    compact = len(parts) > 1 if compact is None else compact
    mappable = None
    for k, (ax, (label, rows)) in enumerate(zip(panels, parts)):
        mappable = _draw_panel(ax, values, axes, rows, cmap=cmap, norm=norm)
        if overlay is not None:
            heat, heat_cmap, heat_norm, alpha = overlay
            mappable = _draw_panel(ax, heat, axes, rows, cmap=heat_cmap, norm=heat_norm, alpha=alpha)
        last = k == len(parts) - 1
        middle = k == (len(parts) - 1) // 2
        _style_axes(
            ax,
            axes,
            _row_edges(axes, rows),
            col_edges,
            xlabel=xlabel and last,
            ylabel=ylabel and middle,
            compact=compact,
        )
        if not last:
            ax.tick_params(labelbottom=False)
        if ulf_band:
            _mark_ulf(ax, label=ulf_label and k == 0)
        if label is not None and (axes.layout == "stacked" or len(parts) > 1):
            _component_tag(ax, label)
    return mappable


def _norm(values: np.ndarray, vmin: float | None, vmax: float | None) -> Normalize:
    low = float(np.min(values)) if vmin is None else float(vmin)
    high = float(np.max(values)) if vmax is None else float(vmax)
    if high <= low:
        high = low + 1.0
    return Normalize(vmin=low, vmax=high)


def _unit_norm(values: np.ndarray) -> Normalize:
    if values.min() >= -1e-6 and values.max() <= 1 + 1e-6:
        return Normalize(0.0, 1.0)
    return _norm(values, None, None)


# ============================================================================ public panel API
def plot_spectrogram(
    ax: Axes,
    image2d: np.ndarray,
    axes: SpectrogramAxes,
    *,
    component: str | int | None = None,
    cmap: str = SPECTROGRAM_CMAP,
    title: str | None = None,
    colorbar: bool = True,
    vmin: float | None = None,
    vmax: float | None = None,
    ulf_band: bool = True,
    cbar_label: str | None = None,
) -> QuadMesh:
    """Draw one spectrogram plane on physical axes and return the mappable.

    ``image2d`` is ``(rows, cols)`` on the grid of ``axes`` (or ``(rows, cols, 3)`` RGB for a
    stacked image). ``channels`` layout: the whole plane is drawn and ``component`` only labels
    it. ``stacked`` layout: ``component`` selects that panel's rows; with ``component=None``
    ``ax`` is split into one child panel per component (H, D, Z from the top).
    """
    values = np.asarray(image2d, dtype=np.float64)
    if _is_rgb(values):
        if values.shape[:2] != axes.shape or not np.all(np.isfinite(values)):
            raise InputDataError(
                None, f"spectrogram: RGB image {values.shape} does not fit the grid {axes.shape}"
            )
        values = _as_rgb(values, "spectrogram")
        norm = None
    else:
        values = _as_map(values, axes, "spectrogram")
        norm = _norm(values, vmin, vmax)
    parts = _panel_rows(axes, component)
    panels = _panel_axes(ax, len(parts))
    mesh = _draw_image(panels, values, axes, component, cmap=cmap, norm=norm, ulf_band=ulf_band)
    label = parts[0][0] if len(parts) == 1 else None
    if title is None and label is not None:
        title = f"component {label}"
    if title:
        ax.set_title(title)
    if colorbar and norm is not None:
        ax.figure.colorbar(mesh, ax=ax, label=cbar_label or _value_label(axes), fraction=0.05, pad=0.02)
    return mesh


def plot_heatmap_overlay(
    ax: Axes,
    background2d: np.ndarray,
    heatmap2d: np.ndarray,
    axes: SpectrogramAxes,
    *,
    component: str | int | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    title: str | None = None,
    colorbar: bool = True,
    ulf_band: bool = True,
    cbar_label: str = "relevance (normalised)",
) -> QuadMesh:
    """Draw ``heatmap2d`` semi-transparently over a greyscale ``background2d``; return the heatmap mesh.

    ``background2d`` is ``(rows, cols)`` (or ``(rows, cols, 3)`` RGB, shown as luminance);
    ``heatmap2d`` is ``(rows, cols)``, shown on [0, 1] when it lies there. ``component`` behaves
    as in :func:`plot_spectrogram`.
    """
    if not 0.0 <= alpha <= 1.0:
        raise InputDataError(None, f"overlay: alpha must lie in [0, 1], got {alpha}")
    background = np.asarray(background2d, dtype=np.float64)
    if _is_rgb(background):
        background = _background_plane(_check_image(background, axes, "overlay background"), axes)[0]
    background = _as_map(background, axes, "overlay background")
    heat = _as_map(heatmap2d, axes, "overlay heatmap")
    heat_norm = _unit_norm(heat)
    parts = _panel_rows(axes, component)
    panels = _panel_axes(ax, len(parts))
    mesh = _draw_image(
        panels,
        background,
        axes,
        component,
        cmap="gray",
        norm=_norm(background, None, None),
        overlay=(heat, cmap, heat_norm, alpha),
        ulf_band=ulf_band,
    )
    if title:
        ax.set_title(title)
    if colorbar:
        bar = ax.figure.colorbar(mesh, ax=ax, label=cbar_label, fraction=0.05, pad=0.02)
        bar.solids.set_alpha(1.0)
    return mesh


# ============================================================================ verdict text
def _verdict(prediction, confidence, true, correct) -> tuple[str, str, str]:
    """``(long text, short mark, colour)`` describing one prediction."""
    if correct is None and true is not None:
        correct = str(prediction) == str(true)
    conf = "" if confidence is None else f" (p = {float(confidence):.2f})"
    text = f"predicted {prediction}{conf}"
    if true is None:
        return text + " · true class unknown", "", "black"
    if correct:
        return text + f" · true {true} ✓", "✓", "#1a7f37"
    return text + f" · true {true} ✗ wrong", "✗", "#b42318"


def _require(mapping: Mapping, keys: Sequence[str], where: str, path: Path) -> None:
    if not isinstance(mapping, Mapping):
        raise InputDataError(path, f"{where} must be a dict, got {type(mapping).__name__}")
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise InputDataError(path, f"{where} lacks {', '.join(missing)}")


def _check_confidence(value, where: str, path: Path) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not (math.isfinite(value) and -1e-6 <= value <= 1 + 1e-6):
        raise InputDataError(path, f"{where}: confidence must be a probability in [0, 1], got {value}")
    return value


def _fmt_hours(axes: SpectrogramAxes) -> str:
    return f"{axes.window_s / 3600.0:g} h window"


# ============================================================================ sample figure
def _slot_axes(fig: Figure | SubFigure, spec, n_panels: int) -> list[Axes]:
    """One Axes, or ``n_panels`` vertically stacked Axes sharing x, inside a gridspec cell."""
    if n_panels == 1:
        return [fig.add_subplot(spec)]
    inner = spec.subgridspec(n_panels, 1, hspace=0.08)
    first = fig.add_subplot(inner[0, 0])
    return [first] + [fig.add_subplot(inner[k, 0], sharex=first) for k in range(1, n_panels)]


def build_sample_figure(
    *,
    sample: str,
    model: str,
    grid_image: np.ndarray,
    axes: SpectrogramAxes,
    heads: Mapping[str, Mapping],
    path: Path | None = None,
) -> Figure:
    """Build (without saving) the per-sample figure of :func:`render_sample_figure`."""
    where = Path(path) if path is not None else Path(f"{sample}_visualization.png")
    image = _check_image(grid_image, axes, f"{sample}: input image")
    if not heads:
        raise InputDataError(where, f"{sample}: no heads to draw")
    head_maps: dict[str, dict[str, np.ndarray]] = {}
    for head, info in heads.items():
        _require(info, ("prediction", "confidence", "maps"), f"heads[{head!r}]", where)
        _check_confidence(info["confidence"], f"heads[{head!r}]", where)
        if not info["maps"]:
            raise InputDataError(where, f"heads[{head!r}] has no maps")
        head_maps[head] = {
            m: _as_map(v, axes, f"{sample}: {head} {m} map", unit_range=True) for m, v in info["maps"].items()
        }

    rgb_input = axes.layout == "stacked" and image.shape[-1] == 3
    n_panels = len(_panel_rows(axes, None))
    n_slots = max(len(m) + 1 for m in head_maps.values())
    n_cols = max(n_slots, len(axes.components))
    map_row_h = 3.0 if n_panels == 1 else 5.4
    heights = [3.0] + [map_row_h] * len(heads)
    width = min(20.0, max(16.0, 4.6 * n_cols))
    fig = Figure(figsize=(width, sum(heights) + 0.5), dpi=SCREEN_DPI, layout="constrained")
    title = f"{model} · {sample}"
    if axes.event_time:
        title += f" · event {axes.event_time}"
    fig.suptitle(f"{title} · {_fmt_hours(axes)}", fontweight="bold")
    rows = fig.subfigures(len(heights), 1, height_ratios=heights, hspace=0.02)

    # --- input: one panel per component on physical axes, one shared colour bar
    top = rows[0]
    grid = top.add_gridspec(1, n_cols)
    value_norm = None if rgb_input else _norm(image, None, None)
    input_axes = []
    mesh = None
    for k, comp in enumerate(axes.components):
        ax = top.add_subplot(grid[0, k])
        input_axes.append(ax)
        plane = image if rgb_input else (image[..., k] if axes.layout == "channels" else image[..., 0])
        mesh = _draw_image(
            [ax], plane, axes, comp, cmap=SPECTROGRAM_CMAP, norm=value_norm, ylabel=k == 0, ulf_label=k == 0
        )
        ax.set_title(f"input · component {comp}")
    if value_norm is not None:
        top.colorbar(mesh, ax=input_axes, label=_value_label(axes), fraction=0.04, pad=0.01)
    if n_cols > len(axes.components):
        _summary_box(top.add_subplot(grid[0, len(axes.components) :]), heads, axes)
    top.suptitle(
        "input spectrogram" + (" (RGB image as given)" if rgb_input else ""),
        x=0.01,
        ha="left",
        fontweight="bold",
    )

    # --- one row per head: primary map, its overlay, then every other method
    background, background_name = _background_plane(image, axes)
    for row_fig, (head, info) in zip(rows[1:], heads.items()):
        maps = head_maps[head]
        primary = "gradcam" if "gradcam" in maps else next(iter(maps))
        order = [primary, primary] + [m for m in maps if m != primary]
        grid = row_fig.add_gridspec(1, n_cols)
        for j, method in enumerate(order):
            panels = _slot_axes(row_fig, grid[0, j], n_panels)
            is_overlay = j == 1
            if is_overlay:
                mesh = _draw_image(
                    panels,
                    background,
                    axes,
                    None,
                    cmap="gray",
                    norm=_norm(background, None, None),
                    overlay=(maps[method], HEATMAP_CMAP, Normalize(0, 1), 0.5),
                    ylabel=False,
                    ulf_label=False,
                )
                panel_title = f"{_method_title(method)} over {background_name} (grey)"
            else:
                mesh = _draw_image(
                    panels,
                    maps[method],
                    axes,
                    None,
                    cmap=HEATMAP_CMAP,
                    norm=Normalize(0, 1),
                    ylabel=j == 0,
                    ulf_label=j == 0,
                )
                panel_title = _method_title(method)
            panels[0].set_title(panel_title)
            bar = row_fig.colorbar(
                mesh, ax=panels, label=f"{_method_title(method)} (normalised)", fraction=0.05, pad=0.02
            )
            bar.solids.set_alpha(1.0)
        text, _, colour = _verdict(
            info["prediction"], info["confidence"], info.get("true"), info.get("correct")
        )
        explained = info.get("explained_class")
        if explained is not None and str(explained) != str(info["prediction"]):
            text += f" · maps explain class {explained}"
        row_fig.suptitle(f"{head}: {text}", x=0.01, ha="left", fontweight="bold", color=colour)
    return fig


def _summary_box(ax: Axes, heads: Mapping[str, Mapping], axes: SpectrogramAxes) -> None:
    """Text panel with the predictions of every head and the grid facts."""
    ax.set_axis_off()
    lines = []
    for head, info in heads.items():
        text, _, _ = _verdict(info["prediction"], info["confidence"], info.get("true"), info.get("correct"))
        lines.append(f"{head}:\n   {text}")
    fmin, fmax = axes.frequency_range_hz
    lines.append(
        f"grid {axes.shape[0]}×{axes.shape[1]}, {axes.layout} layout\n"
        f"{fmin * 1e3:g}–{fmax * 1e3:g} mHz ({axes.frequency_scale}), {_fmt_hours(axes)}"
    )
    lines.append("dashed lines: ULF precursor band 1–10 mHz")
    ax.text(0.02, 0.95, "\n\n".join(lines), ha="left", va="top", transform=ax.transAxes, wrap=True)


def render_sample_figure(
    path,
    *,
    sample: str,
    model: str,
    grid_image: np.ndarray,
    axes: SpectrogramAxes,
    heads: dict,
) -> Path:
    """Write the per-sample explanation figure (input + one row of maps per head) and return its path.

    ``heads[head] = {"prediction", "confidence", "true", "correct", "explained_class",
    "maps": {method: (rows, cols) display map in [0, 1]}}``. Grad-CAM (Selvaraju et al. 2017)
    is shown as a map and as an overlay; every other method as a map.
    """
    path = Path(path)
    with _screen_style(), _naming(path):
        fig = build_sample_figure(
            sample=sample, model=model, grid_image=grid_image, axes=axes, heads=heads, path=path
        )
        try:
            return _save_atomic(fig, path, dpi=SCREEN_DPI)
        finally:
            _release(fig)


# ============================================================================ comparison figure
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
    if not entries:
        raise InputDataError(where, f"{sample}: no models to compare")
    prepared = []
    for i, entry in enumerate(entries):
        _require(entry, ("model", "axes", "grid_image", "heads"), f"entries[{i}]", where)
        axes = entry["axes"]
        image = _check_image(entry["grid_image"], axes, f"{sample}: {entry['model']} input image")
        heads = {}
        for head in head_order:
            info = entry["heads"].get(head)
            if info is None:
                continue
            _require(info, ("prediction", "confidence", "map"), f"entries[{i}].heads[{head!r}]", where)
            _check_confidence(info["confidence"], f"{entry['model']} {head}", where)
            heads[head] = (info, _as_map(info["map"], axes, f"{entry['model']} {head} map", unit_range=True))
        prepared.append((entry["model"], axes, _background_plane(image, axes), heads))
    present = [h for h in head_order if any(h in p[3] for p in prepared)]
    if not present:
        raise InputDataError(where, f"{sample}: none of the heads {tuple(head_order)} has a map")

    stacked = any(len(_panel_rows(p[1], None)) > 1 for p in prepared)
    n_models = len(prepared)
    width = min(20.0, max(8.0, 5.2 * n_models + 1.2))
    height = len(present) * (4.6 if stacked else 3.4) + 0.6
    fig = Figure(figsize=(width, height), dpi=SCREEN_DPI, layout="constrained")
    fig.suptitle(f"{_method_title(method)} per model · {sample}", fontweight="bold")
    grid = fig.add_gridspec(len(present), n_models + 1, width_ratios=[1.0] * n_models + [0.035])
    mesh = None
    for j, (model, axes, (background, background_name), heads) in enumerate(prepared):
        n_panels = len(_panel_rows(axes, None))
        for i, head in enumerate(present):
            panels = _slot_axes(fig, grid[i, j], n_panels)
            if head not in heads:
                for ax in panels:
                    ax.set_axis_off()
                panels[0].set_title(f"{model} · {head}: no map")
                continue
            info, heat = heads[head]
            mesh = _draw_image(
                panels,
                background,
                axes,
                None,
                cmap="gray",
                norm=_norm(background, None, None),
                overlay=(heat, HEATMAP_CMAP, Normalize(0, 1), 0.5),
                ylabel=j == 0,
                ulf_label=i == 0 and j == 0,
            )
            text, mark, colour = _verdict(
                info["prediction"], info["confidence"], info.get("true"), info.get("correct")
            )
            conf = "" if info["confidence"] is None else f" (p = {float(info['confidence']):.2f})"
            truth = "" if info.get("true") is None else f" · true {info['true']} {mark}"
            panels[0].set_title(
                f"{model} · {head}\npredicted {info['prediction']}{conf}{truth}", color=colour
            )
            panels[-1].annotate(
                f"over {background_name}",
                xy=(0.01, 0.03),
                xycoords="axes fraction",
                fontsize=mpl.rcParams["xtick.labelsize"],
                color="white",
                path_effects=[patheffects.withStroke(linewidth=1.5, foreground="black")],
            )
    if mesh is not None:
        cax = fig.add_subplot(grid[:, -1], label="<colorbar>")
        bar = fig.colorbar(mesh, cax=cax, label=f"{_method_title(method)} (normalised)")
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
    with _screen_style(), _naming(path):
        fig = build_comparison_figure(
            sample=sample, entries=entries, head_order=head_order, method=method, path=path
        )
        try:
            return _save_atomic(fig, path, dpi=SCREEN_DPI)
        finally:
            _release(fig)


# ============================================================================ confidence chart
MODEL_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


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
    n_s, n_m = len(samples), len(models)
    width = max(PAPER_WIDTH_IN, min(14.0, 0.35 * n_s * n_m + 1.5))
    fig = Figure(figsize=(width, 0.6 + 2.1 * len(heads)), dpi=SCREEN_DPI, layout="constrained")
    subplots = fig.subplots(len(heads), 1, sharex=True, squeeze=False)[:, 0]
    bar_w = 0.8 / n_m
    x = np.arange(n_s)
    seen = {"wrong": False, "unknown": False, "missing": False}
    for ax, head in zip(subplots, heads):
        conf_h = confidence.get(head, {}) if isinstance(confidence, Mapping) else {}
        corr_h = correct.get(head, {}) if isinstance(correct, Mapping) else {}
        for j, model in enumerate(models):
            colour = MODEL_COLOURS[j % len(MODEL_COLOURS)]
            offset = (j - (n_m - 1) / 2) * bar_w
            for i, sample in enumerate(samples):
                value = _check_confidence(
                    conf_h.get(model, {}).get(sample), f"confidence[{head}][{model}][{sample}]", where
                )
                xpos = x[i] + offset
                if value is None:
                    seen["missing"] = True
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
                    continue
                ok = corr_h.get(model, {}).get(sample)
                if ok is None:
                    seen["unknown"] = True
                    style = {"facecolor": colour, "alpha": 0.35, "edgecolor": colour, "linestyle": ":"}
                elif ok:
                    style = {"facecolor": colour, "edgecolor": colour}
                else:
                    seen["wrong"] = True
                    style = {"facecolor": "white", "edgecolor": colour, "hatch": "////"}
                ax.bar(xpos, value, width=bar_w * 0.92, linewidth=0.9, **style)
        ax.set_ylim(0, 1.05)
        ax.set_xlim(-0.6, n_s - 0.4)
        ax.set_ylabel("predicted-class\nprobability")
        ax.set_title(head, loc="left", fontweight="bold")
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.grid(axis="y", linewidth=0.4, color="0.85")
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    subplots[-1].set_xticks(x)
    rotation = 0 if max(len(s) for s in samples) * n_s < 60 else 25
    subplots[-1].set_xticklabels(samples, rotation=rotation, ha="right" if rotation else "center")
    handles = [Patch(facecolor=MODEL_COLOURS[j % len(MODEL_COLOURS)], label=m) for j, m in enumerate(models)]
    handles.append(
        Patch(facecolor="white", edgecolor="0.3", hatch="////", label="wrong prediction (hatched)")
    )
    if seen["unknown"]:
        handles.append(
            Patch(facecolor="0.3", alpha=0.35, edgecolor="0.3", linestyle=":", label="true class unknown")
        )
    if seen["missing"]:
        handles.append(Patch(facecolor="none", edgecolor="none", label="n/a: no prediction"))
    fig.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 6), frameon=False)
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
    with paper_style(), _naming(path):
        fig = build_confidence_figure(
            samples=samples, models=models, heads=heads, confidence=confidence, correct=correct, path=path
        )
        try:
            return [_save_atomic(fig, out, dpi=dpi) for out, dpi in outputs]
        finally:
            _release(fig)


# ============================================================================ paper grid
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
    if not samples or not models:
        raise InputDataError(where, "paper grid needs at least one sample and one model")
    prepared = {}
    for sample in samples:
        for model in models:
            cell = cells.get((sample, model))
            if cell is None:
                continue
            _require(
                cell, ("axes", "grid_image", "map", "prediction"), f"cells[({sample!r}, {model!r})]", where
            )
            axes = cell["axes"]
            _check_confidence(cell.get("confidence"), f"cells[({sample!r}, {model!r})]", where)
            image = _check_image(cell["grid_image"], axes, f"{sample}/{model} input image")
            heat = _as_map(cell["map"], axes, f"{sample}/{model} {method} map", unit_range=True)
            prepared[(sample, model)] = (cell, axes, _background_plane(image, axes), heat)
    if not prepared:
        raise InputDataError(
            where, f"paper grid: no cells for samples {list(samples)} and models {list(models)}"
        )
    stacked = any(len(_panel_rows(p[1], None)) > 1 for p in prepared.values())
    n_s, n_m = len(samples), len(models)
    cell_w = (PAPER_WIDTH_IN - 1.1) / n_m
    cell_h = min(2.4 if stacked else 1.9, max(1.3, 0.75 * cell_w * (1.5 if stacked else 1.0)))
    bar_h = 0.6
    heights = [cell_h + 0.35] * n_s + [bar_h]
    fig = Figure(figsize=(PAPER_WIDTH_IN, sum(heights)), dpi=SCREEN_DPI, layout="constrained")
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, hspace=0.02, wspace=0.02)
    rows = fig.subfigures(n_s + 1, 1, height_ratios=heights, hspace=0.0)
    mesh, backgrounds = None, []
    for i, (row_fig, sample) in enumerate(zip(rows[:-1], samples)):
        grid = row_fig.add_gridspec(1, n_m)
        truths = {str(prepared[(sample, m)][0].get("true")) for m in models if (sample, m) in prepared}
        truths.discard("None")
        truth = f" (true: {', '.join(sorted(truths))})" if truths else ""
        row_fig.suptitle(f"{sample}{truth}", x=0.01, ha="left", fontweight="bold")
        for j, model in enumerate(models):
            key = (sample, model)
            if key not in prepared:
                ax = row_fig.add_subplot(grid[0, j])
                ax.set_axis_off()
                ax.set_title(f"{model}: n/a")
                continue
            cell, axes, (background, name), heat = prepared[key]
            if name not in backgrounds:
                backgrounds.append(name)
            panels = _slot_axes(row_fig, grid[0, j], len(_panel_rows(axes, None)))
            mesh = _draw_image(
                panels,
                background,
                axes,
                None,
                cmap="gray",
                norm=_norm(background, None, None),
                overlay=(heat, HEATMAP_CMAP, Normalize(0, 1), 0.5),
                xlabel=i == n_s - 1,
                ylabel=j == 0,
                ulf_label=i == 0 and j == 0,
            )
            _, mark, colour = _verdict(
                cell["prediction"], cell.get("confidence"), cell.get("true"), cell.get("correct")
            )
            conf = "" if cell.get("confidence") is None else f" ({float(cell['confidence']):.2f})"
            panels[0].set_title(f"{model}: {cell['prediction']}{conf} {mark}".rstrip(), color=colour)
    if mesh is not None:
        cax = rows[-1].add_gridspec(1, 3, width_ratios=[1.0, 2.0, 1.0])[0, 1]
        label = f"{_method_title(method)} ({head} head, normalised) over {' / '.join(backgrounds)} (grey)"
        bar = rows[-1].colorbar(
            mesh, cax=rows[-1].add_subplot(cax, label="<colorbar>"), orientation="horizontal", label=label
        )
        bar.solids.set_alpha(1.0)
    return fig


def _paper_paths(path_stem) -> tuple[Path, Path]:
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
    with paper_style(), _naming(pdf):
        fig = build_paper_grid_figure(
            samples=samples, models=models, cells=cells, head=head, method=method, path=pdf
        )
        try:
            return [_save_atomic(fig, pdf, dpi=PAPER_DPI), _save_atomic(fig, png, dpi=PAPER_DPI)]
        finally:
            _release(fig)


# ============================================================================ data-set class means
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
    with _screen_style(), _naming(path):
        fig = Figure(figsize=(2.3 * n_cols + 0.8, 2.2 * len(heads) + 0.6), dpi=SCREEN_DPI, layout="constrained")
        try:
            grid = fig.subplots(len(heads), n_cols, squeeze=False)
            for r, head in enumerate(heads):
                values = list(means[head].values())
                vmax = max(float(np.max(v)) for v in values) or 1.0
                for c in range(n_cols):
                    ax = grid[r][c]
                    if c >= len(means[head]):
                        ax.set_axis_off()
                        continue
                    name = list(means[head])[c]
                    plot_spectrogram(ax, means[head][name], axes, cmap="inferno", colorbar=False, vmin=0.0,
                                     vmax=vmax, title=f"{head}: {name} (n={counts[head][name]})")
            fig.suptitle(f"{model} — class-mean {_method_title(method)} (true class; unit mass per sample)")
            return _save_atomic(fig, path, dpi=SCREEN_DPI)
        finally:
            _release(fig)
