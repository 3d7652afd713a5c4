"""Grad-CAM++ (Chattopadhay et al., 2018, "Grad-CAM++: Generalized Gradient-based Visual
Explanations for Deep Convolutional Networks"), computed by tf-keras-vis.

Note: tf-keras-vis derives the higher-order terms from ``exp(score)``, which assumes the score
is a pre-softmax logit (``score_kind == "logit"``).
"""

from __future__ import annotations

from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus as TfkvGradcamPlusPlus

from xai.explainers.tfkv import TfkvCamExplainer


class GradcamPlusPlus(TfkvCamExplainer):
    """tf-keras-vis ``GradcamPlusPlus`` on the target layer (native resolution maps)."""

    name = "gradcam_plus_plus"
    visualizer_class = TfkvGradcamPlusPlus
