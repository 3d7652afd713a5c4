"""Occlusion reliance panels of the sample figure: the drop map on physical axes and the marginal bars.

Drops can be negative (removing a region may raise the score), so the map uses a diverging colour
scale centred at 0 (:data:`RELIANCE_CMAP`, symmetric limits). In the ``channels`` layout the map
is drawn once per component (H, D, Z stacked), because occlusion, unlike the gradient maps,
separates the components; in the ``stacked`` layout the panels already are the components. The
bars show the drop of removing a whole band, time segment or component at once (Zeiler & Fergus,
2014, occlusion; regions from :mod:`xai.reliance.regions`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure, SubFigure

from core.errors import InputDataError
from geomag.axes import SpectrogramAxes
from xai.render.checks import as_map
from xai.render.geometry import component_tag, panel_rows, slot_axes
from xai.render.labels import method_title
from xai.render.panels import DrawOptions, draw_image

__all__ = ["RELIANCE_CMAP", "RELIANCE_SLOTS", "check_reliance", "draw_reliance", "reliance_norm"]

RELIANCE_CMAP = "RdBu_r"  # red: the score drops when the region is removed; blue: it rises
RELIANCE_SLOTS = 2  # map + marginal bars
_KIND_TITLES = {"band": "bands", "segment": "hours before event", "component": "components"}


def reliance_norm(values: np.ndarray) -> Normalize:
    """Symmetric colour limits ``[-m, m]`` around 0, ``m`` the largest absolute value (never empty)."""
    largest = float(np.max(np.abs(values))) if np.size(values) else 0.0
    largest = largest if largest > 0 else 1e-12
    return Normalize(vmin=-largest, vmax=largest)


def check_reliance(reliance: Mapping, axes: SpectrogramAxes, where: Path) -> dict:
    """The checked reliance entry of one head: ``map`` on the grid, optional per-component ``components``
    ``(rows, cols, C)``, ``unit`` and ``marginals`` ``{kind: {name: drop}}``."""
    for key in ("map", "unit", "marginals"):
        if key not in reliance:
            raise InputDataError(where, f"reliance entry has no {key!r}")
    checked = dict(reliance)
    checked["map"] = as_map(reliance["map"], axes, "reliance map")
    components = reliance.get("components")
    if components is not None:
        array = np.asarray(components, dtype=np.float64)
        if array.shape[:2] != axes.shape or array.ndim != 3 or not np.isfinite(array).all():
            raise InputDataError(where, f"reliance components: shape {array.shape} is not a finite {axes.shape} x C")
        checked["components"] = array
    return checked


def _draw_maps(fig: Figure | SubFigure, spec, reliance: Mapping, axes: SpectrogramAxes, ylabel: bool) -> tuple:
    """The drop map(s) in one slot; returns the panels and the last mesh (for the colour bar)."""
    components = reliance.get("components")
    per_component = axes.layout == "channels" and components is not None and components.shape[-1] > 1
    if per_component:
        panels = slot_axes(fig, spec, components.shape[-1])
        norm = reliance_norm(components)
        for k, ax in enumerate(panels):
            last = k == len(panels) - 1
            options = DrawOptions(
                cmap=RELIANCE_CMAP, norm=norm, ylabel=ylabel and k == len(panels) // 2, ulf_label=False,
                xlabel=last, compact=True,
            )  # fmt: skip
            mesh = draw_image([ax], components[..., k], axes, None, options)
            if not last:
                ax.tick_params(labelbottom=False)
            name = axes.components[k] if k < len(axes.components) else str(k)
            component_tag(ax, name)
        return panels, mesh
    panels = slot_axes(fig, spec, len(panel_rows(axes, None)))
    options = DrawOptions(cmap=RELIANCE_CMAP, norm=reliance_norm(reliance["map"]), ylabel=ylabel, ulf_label=False)
    return panels, draw_image(panels, reliance["map"], axes, None, options)


def _draw_bars(ax: Axes, reliance: Mapping) -> None:
    """Horizontal bars of the marginal drops, grouped by bands, hours and components."""
    labels, values, group_starts = [], [], []
    for kind in ("band", "segment", "component"):
        items = reliance["marginals"].get(kind) or {}
        if not items:
            continue
        group_starts.append((len(labels), _KIND_TITLES[kind]))
        for name, drop in items.items():
            labels.append(str(name))
            values.append(np.nan if drop is None else float(drop))
    y = np.arange(len(labels))
    shown = np.nan_to_num(np.asarray(values, dtype=np.float64))
    ax.barh(y, shown, color=["#b2182b" if v > 0 else "#2166ac" for v in shown], height=0.7)
    ax.set_yticks(y, labels, fontsize="small")
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", linewidth=0.8)
    for start, title in group_starts:
        if start:
            ax.axhline(start - 0.5, color="grey", linewidth=0.6, linestyle=":")
        ax.text(1.0, start - 0.4, title, transform=ax.get_yaxis_transform(), ha="right", va="top",
                fontsize="small", color="grey")  # fmt: skip
    ax.set_xlabel(f"score drop when removed ({reliance['unit']})")
    ax.set_title("whole band / hour / component removed")


def draw_reliance(fig: Figure | SubFigure, specs: tuple, reliance: Mapping, axes: SpectrogramAxes) -> None:
    """Draw one head's reliance into two gridspec cells ``specs``: the drop map(s) with a diverging
    colour bar centred at 0, and the marginal bars."""
    method = method_title(str(reliance.get("method", "occlusion")))
    panels, mesh = _draw_maps(fig, specs[0], reliance, axes, ylabel=False)
    unit = reliance["unit"]
    explained = reliance.get("explained_class")
    target = f" of {explained}" if explained is not None else ""
    panels[0].set_title(f"{method}: {unit} drop{target} per region")
    fig.colorbar(mesh, ax=panels, label=f"drop ({unit}); red: relied on", fraction=0.05, pad=0.02)
    _draw_bars(fig.add_subplot(specs[1]), reliance)
