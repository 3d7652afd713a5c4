"""Explanations of CNN classifiers of geomagnetic precursor spectrograms (notebooks: ``from xai import explain``).

The notebook functions ``explain``, ``explain_dataset`` and ``compare_models`` live in :mod:`xai.api` and
are imported on first use, so ``import xai`` stays light (no TensorFlow).
"""

from __future__ import annotations

from typing import Any

__all__ = ["compare_models", "explain", "explain_dataset"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from xai import api

        return getattr(api, name)
    raise AttributeError(f"module 'xai' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
