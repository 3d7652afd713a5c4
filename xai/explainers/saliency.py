"""Vanilla gradient saliency (Simonyan et al., 2014, "Deep Inside Convolutional Networks:
Visualising Image Classification Models and Saliency Maps"), computed by tf-keras-vis.

The map is ``max_c |d score / d x_c|`` over input channels, at the input resolution; the
per-channel maps ``|d score / d x_c|`` are kept (``Explanation.channel_maps``) for the component
shares of :mod:`xai.components`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from tf_keras_vis.saliency import Saliency as TfkvSaliency

from xai.explainers.tfkv import TfkvExplainer


class Saliency(TfkvExplainer):
    """tf-keras-vis ``Saliency`` on the head's pre-softmax score (compiled model call by default)."""

    name = "saliency"

    def call_options(self) -> dict[str, Any]:
        return {}

    def run(self, x: np.ndarray, head: str, classes: np.ndarray, contrast: np.ndarray | None = None) -> np.ndarray:
        """Per-channel maps ``(B, H, W, C)``; the explainer's map is their maximum over the channels."""
        visualizer = TfkvSaliency(self.vis_model())
        # compiled: the VJP of exactly these scores comes with the compiled forward pass
        upstream = self.expected_upstream(head, classes, contrast)
        hint = self.models.compiled.expecting(upstream) if self.compiled else None
        scores = self.scores(head, classes, contrast)
        with hint or contextlib.nullcontext():
            maps = visualizer(scores, x, normalize_map=False, keepdims=True, **self.call_options())
        return self.to_numpy(maps)
