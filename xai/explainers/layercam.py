"""LayerCAM (Jiang et al., 2021, "LayerCAM: Exploring Hierarchical Class Activation Maps for
Localization"), computed by tf-keras-vis: ``ReLU(sum_k ReLU(d score / d A_k) * A_k)`` per cell.
"""

from __future__ import annotations

from tf_keras_vis.layercam import Layercam as TfkvLayercam

from xai.explainers.tfkv import TfkvCamExplainer


class Layercam(TfkvCamExplainer):
    """tf-keras-vis ``Layercam`` on the target layer (native resolution maps)."""

    name = "layercam"
    visualizer_class = TfkvLayercam
