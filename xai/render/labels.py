"""Figure text: method titles, value labels, window length and the verdict on one prediction."""

from __future__ import annotations

from core.names import METHOD_TITLES
from geomag.axes import SpectrogramAxes
from xai.render.style import POWER_LABEL


def value_label(axes: SpectrogramAxes) -> str:
    """Colour-bar label of the input values (log power unless the axes name another quantity)."""
    return str(axes.extra.get("value_label") or POWER_LABEL)


def method_title(method: str) -> str:
    """Display name of an explanation method (``gradcam`` -> ``Grad-CAM``)."""
    return METHOD_TITLES.get(method.lower(), method)


def window_text(axes: SpectrogramAxes) -> str:
    """``"6 h window"`` for the time span of ``axes``."""
    return f"{axes.window_s / 3600.0:g} h window"


def verdict(prediction, confidence, true, correct) -> tuple[str, str, str]:
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
