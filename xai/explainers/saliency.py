"""Vanilla gradient saliency (Simonyan et al., 2014, "Deep Inside Convolutional Networks:
Visualising Image Classification Models and Saliency Maps"), computed by tf-keras-vis.

The map is ``max_c |d score / d x_c|`` over input channels, at the input resolution.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tf_keras_vis.saliency import Saliency as TfkvSaliency

from xai.explainers.tfkv import TfkvExplainer


class Saliency(TfkvExplainer):
    """tf-keras-vis ``Saliency`` on the head's pre-softmax score (compiled model call by default)."""

    name = "saliency"

    def call_options(self) -> dict[str, Any]:
        return {}

    def run(self, x: np.ndarray, head: str, classes: np.ndarray) -> np.ndarray:
        visualizer = TfkvSaliency(self.vis_model())
        maps = visualizer(
            self.scores(head, classes), x, normalize_map=False, keepdims=False, **self.call_options()
        )
        return self.to_numpy(maps)
