"""Trust metrics of explanations: localisation against ground-truth masks, deletion/insertion
faithfulness, model-parameter randomisation sanity checks, and bootstrap confidence intervals.

Names are imported lazily (PEP 562), so the numpy-only metrics do not load TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "faithfulness": (
        "area_under_curve",
        "deletion_insertion",
        "importance_order",
        "median_background",
        "perturbation_curves",
        "random_order",
    ),
    "localisation": (
        "localisation_scores",
        "mask_area_share",
        "pointing_game",
        "random_heatmaps",
        "relevance_mass_accuracy",
        "relevance_rank_accuracy",
    ),
    "randomisation": (
        "cascading_randomisation",
        "random_logit_draws",
        "random_logit_test",
        "randomisation_steps",
        "randomised_weights",
    ),
    "statistics": ("bootstrap_ci",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
