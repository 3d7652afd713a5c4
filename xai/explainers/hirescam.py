"""HiResCAM (Draelos & Carin, 2020, "Use HiResCAM instead of Grad-CAM for faithful explanations
of convolutional neural networks"), batched and compiled.

``cam = ReLU(sum_k d score / d A_k ⊙ A_k)``: the gradient multiplies the activation cell by cell,
with no spatial averaging, so the map shows the locations the score actually used.  For a head
that global-average-pools the target layer straight into one linear layer the gradient is
spatially constant and HiResCAM equals Grad-CAM; after a flatten or any spatially varying head
the two differ.
"""

from __future__ import annotations

import tensorflow as tf

from xai.explainers.cam import CompiledCam


class HiResCAM(CompiledCam):
    """Our compiled HiResCAM: the weight of each feature cell is its own gradient."""

    name = "hirescam"

    def cam_weights(self, grads: tf.Tensor, features: tf.Tensor) -> tf.Tensor:
        """``w = d score / d A``, element-wise, shape ``(B, h, w, K)``."""
        return grads
