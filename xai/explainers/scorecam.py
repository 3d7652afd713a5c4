"""Score-CAM (Wang et al., 2020, "Score-CAM: Score-Weighted Visual Explanations for
Convolutional Neural Networks") in its Faster variant (tf-keras-vis ``max_N``: only the
``max_N`` feature maps with the largest spatial variance are used as masks).

Gradient-free: each (normalised, upsampled) feature map masks the input and the weight is the
softmax probability of the explained class on the masked input.  tf-keras-vis applies the
softmax itself to the model outputs, so the scores are the head's logits and ``score_kind`` is
``"probability"``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from tf_keras_vis.scorecam import Scorecam as TfkvScorecam

from core.errors import ConfigError
from models.graph import FEATURES_KEY, SCORE_LOGIT, SCORE_PROBABILITY
from xai.explainers.base import DEFAULT_HEADS
from xai.explainers.tfkv import TfkvCamExplainer

log = logging.getLogger(__name__)


class Scorecam(TfkvCamExplainer):
    """tf-keras-vis ``Scorecam`` with ``max_N`` masks (Faster Score-CAM); ``max_N=None`` = all channels."""

    name = "scorecam"
    visualizer_class = TfkvScorecam

    def __init__(
        self,
        model: Any,
        target_layer: str | None = None,
        heads: Sequence[str] | None = DEFAULT_HEADS,
        max_N: int | None = 10,
        batch_size: int = 32,
        compiled: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(model, target_layer=target_layer, heads=heads, compiled=compiled, **options)
        channels = int(self.graph.model.output[FEATURES_KEY].shape[-1])
        if max_N is not None and (isinstance(max_N, bool) or int(max_N) != max_N or not 1 <= int(max_N) <= channels):
            raise ConfigError(f"method scorecam: max_N must be an integer in 1..{channels} (or null), got {max_N!r}")
        if int(batch_size) < 1:
            raise ConfigError(f"method scorecam: batch_size must be >= 1, got {batch_size!r}")
        self.max_N = None if max_N is None else int(max_N)
        self.batch_size = int(batch_size)
        for head, kind in self.graph.score_kind.items():
            if kind != SCORE_LOGIT:
                log.warning("scorecam: head %s has no reachable logits; its probabilities get a second softmax", head)

    def score_kind(self, head: str) -> str:
        return SCORE_PROBABILITY

    def call_options(self) -> dict[str, Any]:
        return {"max_N": self.max_N, "batch_size": self.batch_size}
