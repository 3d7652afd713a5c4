"""Explanation methods, one small file each (see ``docs/architecture.md``, "Explainers").

Build one from its Hydra config with ``hydra.utils.instantiate(cfg.xai.methods[name], bundle)``
or :func:`build_explainers`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from xai.explainers.base import Explainer, Explanation, normalize_for_display, to_grid

__all__ = ["Explainer", "Explanation", "build_explainers", "normalize_for_display", "to_grid"]


def build_explainers(
    methods: Mapping[str, Any],
    model: Any,
    target_layer: str | None = None,
    heads: Sequence[str] | None = None,
) -> dict[str, Explainer]:
    """``{method name: Explainer}`` from ``cfg.xai.methods`` (each a ``_target_`` config).

    ``model`` is a ``ModelBundle``, a ``keras.Model`` or an ``ExplanationGraph``; ``target_layer``
    and ``heads`` (for a bare ``keras.Model``) are passed on unless a method config sets them.
    """
    from hydra.utils import instantiate

    from core.errors import ConfigError, PrecursorError

    explainers: dict[str, Explainer] = {}
    for name, config in methods.items():
        extra: dict[str, Any] = {}
        if target_layer is not None and "target_layer" not in config:
            extra["target_layer"] = target_layer
        if heads is not None and "heads" not in config:
            extra["heads"] = tuple(heads)
        try:
            explainer = instantiate(config, model, **extra)
        except PrecursorError:
            raise
        except Exception as error:  # hydra wraps the real cause
            cause = error.__cause__ if isinstance(error.__cause__, PrecursorError) else None
            if cause is not None:
                raise cause from error
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ConfigError(f"xai.methods.{name}: cannot build the explainer: {first}") from error
        if not isinstance(explainer, Explainer):
            raise ConfigError(f"xai.methods.{name}: _target_ is not an explainer ({type(explainer).__name__})")
        explainers[name] = explainer
    return explainers
