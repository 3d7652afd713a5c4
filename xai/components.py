"""Which geomagnetic component (H, D, Z) an explanation points at: per-component maps and mass shares.

* ``channels`` layout (model input channels = components): gradient methods (Saliency, Simonyan et
  al., 2014; SmoothGrad, Smilkov et al., 2017) give one map per input channel,
  ``|d score / d x_c|`` (:attr:`xai.explainers.base.Explanation.channel_maps`); they are resampled
  to the grid, put in component order (``imagenet_caffe`` preprocessing feeds the channels in BGR
  order, i.e. reversed) and a component's **share** is its map's mass over the sum of the three.
  CAM maps (Grad-CAM and its variants) are computed on the target layer's feature maps, where the
  input channels are already mixed, so they have no components: the entry says so and points at
  occlusion, whose component marginals measure component reliance directly.
* ``stacked`` layout (panels H, D, Z stacked in rows): every method's grid map is split by panel,
  a component's share being the map's (non-negative) mass in its panel's rows over the total.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.errors import InputDataError
from geomag.axes import SpectrogramAxes
from xai.explainers.base import Explanation, to_grid

__all__ = [
    "CAM_REASON",
    "OCCLUSION_REASON",
    "component_entry",
    "component_shares",
    "figure_components",
    "grid_channel_maps",
]

CAM_REASON = (
    "CAM maps are computed on the target layer's feature maps, which mix the input channels; "
    "see occlusion for component reliance"
)
OCCLUSION_REASON = "occlusion measures component reliance directly: see its component marginals"
SINGLE_MAP_REASON = "the method gives one map over all input channels"


def grid_channel_maps(
    explanation: Explanation, grid_shape: Sequence[int], axes: SpectrogramAxes, preprocessing: str | None = None
) -> np.ndarray | None:
    """Per-component maps ``(B, rows, cols, n_components)`` on the grid, in ``axes.components`` order.

    ``None`` when the method has no per-channel maps or in the ``stacked`` layout (where the
    channels are image colours and the components are panels).
    """
    channels = explanation.channel_maps
    if channels is None or axes.layout != "channels":
        return None
    channels = np.asarray(channels, dtype=np.float32)
    if channels.ndim != 4 or channels.shape[-1] != len(axes.components):
        raise InputDataError(
            None,
            f"method {explanation.method}: per-channel maps of shape {channels.shape} do not match "
            f"the components {', '.join(axes.components)}",
        )
    order = list(range(channels.shape[-1]))
    if preprocessing == "imagenet_caffe":
        order = order[::-1]  # caffe preprocessing feeds the channels in BGR order
    planes = [to_grid(channels[..., c], grid_shape) for c in order]
    return np.stack(planes, axis=-1)


def component_shares(
    heatmap: np.ndarray, axes: SpectrogramAxes, per_channel: np.ndarray | None = None
) -> dict[str, float | None] | None:
    """Share of the non-negative mass per component: from ``per_channel`` ``(rows, cols, C)`` in the
    ``channels`` layout, from the panels of ``heatmap`` ``(rows, cols)`` in the ``stacked`` layout;
    ``None`` when the layout gives no split. An all-zero map gives ``None`` shares."""
    if axes.layout == "stacked":
        row_mass = np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, None).sum(axis=1)
        mass = np.array([row_mass[axes.panel_rows(i)].sum() for i in range(len(axes.components))])
    elif per_channel is not None:
        mass = np.clip(np.asarray(per_channel, dtype=np.float64), 0.0, None).sum(axis=(0, 1))
    else:
        return None
    if not np.isfinite(mass).all():
        raise InputDataError(None, "component maps contain NaN or infinite values")
    total = float(mass.sum())
    return {c: (float(m) / total if total > 0 else None) for c, m in zip(axes.components, mass)}


def component_entry(
    explanation: Explanation,
    heatmap: np.ndarray,
    axes: SpectrogramAxes,
    per_channel: np.ndarray | None = None,
    is_cam: bool = False,
) -> dict:
    """The JSON ``components`` entry of one sample's map: ``available``, ``layout``, ``unit`` and
    ``shares`` (component -> share of the mass), or ``available: false`` with the ``reason``."""
    shares = component_shares(heatmap, axes, per_channel)
    if shares is not None:
        unit = "panel rows of the map" if axes.layout == "stacked" else "input channel |d score / d x_c|"
        entry = {"available": True, "layout": axes.layout, "unit": unit, "shares": shares}
        if is_cam:
            shape = "x".join(str(v) for v in explanation.native_shape)
            entry["note"] = f"from a coarse {shape} CAM resampled to the grid: panel borders are blurred"
        return entry
    if is_cam:
        reason = CAM_REASON
    elif explanation.method == "occlusion":
        reason = OCCLUSION_REASON
    else:
        reason = SINGLE_MAP_REASON
    return {"available": False, "layout": axes.layout, "reason": reason}


def figure_components(entry: dict) -> dict[str, float | None] | str:
    """What the sample figure's share panel shows for one method: the shares, or a short reason."""
    if entry.get("available"):
        return entry["shares"]
    reason = entry.get("reason", "")
    if reason == CAM_REASON:
        return "CAM: channels mixed (see occlusion)"
    if reason == OCCLUSION_REASON:
        return "see the occlusion marginals"
    return "one map for all channels"
