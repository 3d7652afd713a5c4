"""The component-share panel of the sample figure: one 100 % bar per method split into H, D and Z."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.axes import Axes
from matplotlib.patches import Patch

from xai.render.labels import method_title

__all__ = ["COMPONENT_COLOURS", "draw_component_shares", "has_shares"]

# Okabe-Ito colours, one per geomagnetic component
COMPONENT_COLOURS = {"H": "#0072B2", "D": "#E69F00", "Z": "#009E73"}
_FALLBACK = ("#CC79A7", "#56B4E9", "#D55E00")


def has_shares(components: Mapping[str, Mapping | str | None] | None) -> bool:
    """True when at least one method has component shares to draw."""
    return bool(components) and any(isinstance(shares, Mapping) for shares in components.values())


def draw_component_shares(ax: Axes, components: Mapping[str, Mapping | str | None], names: Sequence[str]) -> None:
    """Horizontal 100 % bars: each method's mass share per component; a string (why a method has no
    shares, e.g. a CAM) or ``None`` is written in the bar's place, and an all-zero map says so."""
    methods = list(components)
    for row, method in enumerate(methods):
        shares = components[method]
        if not isinstance(shares, Mapping) or all(v is None for v in shares.values()):
            text = shares if isinstance(shares, str) else ("the map is zero" if shares else "no component shares")
            ax.text(0.01, row, text, va="center", fontsize="small", color="0.35")
            continue
        left = 0.0
        for k, name in enumerate(names):
            value = float(shares.get(name) or 0.0)
            colour = COMPONENT_COLOURS.get(name, _FALLBACK[k % len(_FALLBACK)])
            ax.barh(row, value, left=left, color=colour, edgecolor="white", height=0.6)
            if value >= 0.08:
                ax.text(left + value / 2, row, f"{name} {value:.0%}", ha="center", va="center", fontsize="small")
            left += value
    ax.set_yticks(range(len(methods)), [method_title(m) for m in methods])
    ax.set_ylim(len(methods) - 0.5, -0.5)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("share of the map's mass")
    ax.set_title("components (H, D, Z)")
    handles = [Patch(color=COMPONENT_COLOURS.get(n, _FALLBACK[k % len(_FALLBACK)])) for k, n in enumerate(names)]
    ax.legend(handles, list(names), loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=len(names), frameon=False)
