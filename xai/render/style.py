"""Figure style and output: named labels and colours, screen/paper rc parameters, atomic saving."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import matplotlib as mpl
from matplotlib.figure import Figure

from core.errors import InputDataError
from core.io import atomic_path

log = logging.getLogger(__name__)

ULF_BAND_HZ = (1e-3, 1e-2)
ULF_LABEL = "ULF 1–10 mHz"
TIME_LABEL = "hours before event"
FREQ_LABEL = "frequency (mHz)"
POWER_LABEL = "log10 power (nT²/Hz)"
HEATMAP_CMAP = "turbo"  # perceptually improved jet (Mikhailov 2019) for all relevance maps
SPECTROGRAM_CMAP = "viridis"
MODEL_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
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


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Local rcParams for publication figures (8 pt sans-serif, TrueType fonts in PDFs)."""
    with mpl.rc_context(_PAPER_RC):
        yield


@contextlib.contextmanager
def screen_style() -> Iterator[None]:
    """Local rcParams for on-screen figures (10 pt text, 110 dpi)."""
    with mpl.rc_context(_SCREEN_RC):
        yield


def save_atomic(fig: Figure, path: Path, *, dpi: float) -> Path:
    """Save ``fig`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "pdf", "svg"):
        raise InputDataError(path, f"unsupported figure format {path.suffix!r}; use .png, .pdf or .svg")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    log.info("wrote figure %s", path)
    return path


def save_all(fig: Figure, outputs: list[tuple[Path, float]]) -> list[Path]:
    """Save ``fig`` to every ``(file, dpi)`` of ``outputs`` in order, then free the figure."""
    try:
        return [save_atomic(fig, out, dpi=dpi) for out, dpi in outputs]
    finally:
        release(fig)


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Re-raise input errors that lack a file name with the figure's path, so messages name a file."""
    try:
        yield
    except InputDataError as error:
        if error.path is None:
            raise InputDataError(path, error.problem) from None
        raise


def release(fig: Figure) -> None:
    """Drop all artists so the figure's memory is freed at once (no pyplot registry involved)."""
    fig.clear()
