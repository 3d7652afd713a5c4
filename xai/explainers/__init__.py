"""Explanation methods, one small file each (see ``docs/architecture.md``, "Explainers").

Build them from their Hydra configs (``conf/method/*.yaml``) with :func:`build_explainers`: the
one place that instantiates explainers, cached per model and method config so that the jobs of
a sweep in one process reuse their compiled functions.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from xai.explainers.base import Explainer, Explanation, normalize_for_display, to_grid

__all__ = ["Explainer", "Explanation", "build_explainers", "normalize_for_display", "to_grid"]

# id(model) -> {(method name, method config, target layer, heads): explainer}; an entry is dropped
# when its model is garbage-collected.
_CACHE: dict[int, dict[tuple, Explainer]] = {}


def _model_cache(model: Any) -> dict[tuple, Explainer]:
    key = id(model)
    if key not in _CACHE:
        try:
            weakref.finalize(model, _CACHE.pop, key, None)
        except TypeError:  # not weakly referenceable: nothing would ever drop the entry, so do not cache
            return {}
        _CACHE[key] = {}
    return _CACHE[key]


def _config_key(config: Any) -> str:
    from omegaconf import OmegaConf

    return repr(OmegaConf.to_container(config, resolve=True) if OmegaConf.is_config(config) else config)


def build_explainers(
    methods: Mapping[str, Any],
    model: Any,
    target_layer: str | None = None,
    heads: Sequence[str] | None = None,
) -> dict[str, Explainer]:
    """``{method name: Explainer}`` from ``cfg.xai.methods`` (each a ``_target_`` config).

    ``model`` is a ``ModelBundle``, a ``keras.Model`` or an ``ExplanationGraph``; ``target_layer``
    and ``heads`` (for a bare ``keras.Model``) are passed on unless a method config sets them.
    The explainers are cached per (model, method config): a second call returns the same objects.
    """
    cache = _model_cache(model)
    explainers: dict[str, Explainer] = {}
    for name, config in methods.items():
        key = (str(name), _config_key(config), target_layer, None if heads is None else tuple(heads))
        if key not in cache:
            cache[key] = _instantiate(str(name), config, model, target_layer, heads)
        explainers[name] = cache[key]
    return explainers


def _instantiate(
    name: str, config: Any, model: Any, target_layer: str | None, heads: Sequence[str] | None
) -> Explainer:
    """One explainer from its config; every failure becomes a one-line ``ConfigError`` naming the method."""
    from hydra.utils import instantiate

    from core.errors import ConfigError, PrecursorError
    from core.text import first_line

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
        raise ConfigError(f"xai.methods.{name}: cannot build the explainer: {first_line(error)}") from error
    if not isinstance(explainer, Explainer):
        raise ConfigError(f"xai.methods.{name}: _target_ is not an explainer ({type(explainer).__name__})")
    return explainer
