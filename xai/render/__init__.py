"""Figures on physical axes: spectrograms, explanation maps, comparisons and paper panels.

Conventions used in every figure (see :mod:`xai.render.geometry` and :mod:`xai.render.panels`):

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
``os.replace``). One module per figure: :mod:`~xai.render.sample`, :mod:`~xai.render.comparison`,
:mod:`~xai.render.confidence`, :mod:`~xai.render.paper`, :mod:`~xai.render.class_means`.
"""

from xai.render.class_means import render_class_means
from xai.render.comparison import build_comparison_figure, render_comparison_figure
from xai.render.confidence import build_confidence_figure, render_confidence_chart
from xai.render.panels import OverlayOptions, SpectrogramOptions, plot_heatmap_overlay, plot_spectrogram
from xai.render.paper import build_paper_grid_figure, render_paper_grid
from xai.render.sample import build_sample_figure, render_sample_figure
from xai.render.style import (
    FREQ_LABEL,
    HEATMAP_CMAP,
    MODEL_COLOURS,
    PAPER_DPI,
    PAPER_WIDTH_IN,
    POWER_LABEL,
    SCREEN_DPI,
    SPECTROGRAM_CMAP,
    TIME_LABEL,
    ULF_BAND_HZ,
    ULF_LABEL,
    paper_style,
)

__all__ = [
    "FREQ_LABEL",
    "HEATMAP_CMAP",
    "MODEL_COLOURS",
    "PAPER_DPI",
    "PAPER_WIDTH_IN",
    "POWER_LABEL",
    "SCREEN_DPI",
    "SPECTROGRAM_CMAP",
    "TIME_LABEL",
    "ULF_BAND_HZ",
    "ULF_LABEL",
    "OverlayOptions",
    "SpectrogramOptions",
    "build_comparison_figure",
    "build_confidence_figure",
    "build_paper_grid_figure",
    "build_sample_figure",
    "paper_style",
    "plot_heatmap_overlay",
    "plot_spectrogram",
    "render_class_means",
    "render_comparison_figure",
    "render_confidence_chart",
    "render_paper_grid",
    "render_sample_figure",
]
