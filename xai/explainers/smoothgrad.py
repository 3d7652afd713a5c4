"""SmoothGrad (Smilkov et al., 2017, "SmoothGrad: removing noise by adding noise"), computed by
tf-keras-vis' ``Saliency`` with ``smooth_samples`` noisy copies.

The noise level ``smooth_noise`` is relative to each sample's value range (tf-keras-vis'
convention: sigma = smooth_noise * (max - min)).  The global random seeds are set to ``seed``
before every call, so the same inputs always give the same maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from core.errors import ConfigError
from xai.explainers.base import DEFAULT_HEADS
from xai.explainers.saliency import Saliency


class SmoothGrad(Saliency):
    """Saliency averaged over ``smooth_samples`` copies with Gaussian noise (seeded)."""

    name = "smoothgrad"

    def __init__(
        self,
        model: Any,
        target_layer: str | None = None,
        heads: Sequence[str] | None = DEFAULT_HEADS,
        smooth_samples: int = 20,
        smooth_noise: float = 0.2,
        seed: int | None = 0,
        compiled: bool = True,
        **options: Any,
    ) -> None:
        if isinstance(smooth_samples, bool) or int(smooth_samples) != smooth_samples or int(smooth_samples) < 1:
            raise ConfigError(f"method smoothgrad: smooth_samples must be a positive integer, got {smooth_samples!r}")
        if not float(smooth_noise) > 0.0:
            raise ConfigError(f"method smoothgrad: smooth_noise must be > 0, got {smooth_noise!r}")
        super().__init__(model, target_layer=target_layer, heads=heads, compiled=compiled, **options)
        self.smooth_samples = int(smooth_samples)
        self.smooth_noise = float(smooth_noise)
        self.seed = None if seed is None else int(seed)

    def call_options(self) -> dict[str, Any]:
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)  # numpy draws tf-keras-vis' noise
        return {"smooth_samples": self.smooth_samples, "smooth_noise": self.smooth_noise}
