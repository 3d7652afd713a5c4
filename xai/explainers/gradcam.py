"""Grad-CAM (Selvaraju et al., 2017, "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization"), batched and compiled.

``cam = ReLU(sum_k w_k A_k)`` with ``w_k`` the spatial mean of ``d score / d A_k``, ``A`` the
target layer's activation and ``score`` the explained class's pre-softmax score of one head.
The compiled split-model machinery is :class:`xai.explainers.cam.CompiledCam`.
"""

from __future__ import annotations

import tensorflow as tf

from xai.explainers.cam import CompiledCam


class GradCAM(CompiledCam):
    """Our compiled Grad-CAM: one weight per channel, the spatial mean of its gradient."""

    name = "gradcam"

    def cam_weights(self, grads: tf.Tensor, features: tf.Tensor) -> tf.Tensor:
        """``w_k = mean_ij d score / d A_k[i, j]``, shape ``(B, 1, 1, K)``."""
        return tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
