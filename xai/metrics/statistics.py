"""Confidence intervals for per-sample metric values (bootstrap: Efron & Tibshirani, 1993, "An
Introduction to the Bootstrap"; computed with :func:`scipy.stats.bootstrap`, percentile method)."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from scipy import stats

from core.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["bootstrap_ci"]


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def bootstrap_ci(
    values: Any, confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0
) -> dict[str, float | int | None]:
    """Mean and percentile-bootstrap confidence interval of the finite ``values``.

    Returns ``{'mean', 'low', 'high', 'n'}`` with plain floats (``None`` where undefined, so the
    dict is JSON-safe); ``n`` counts the finite values (NaN = undefined per-sample scores, e.g.
    Normal samples, are left out).  No values: all ``None``; one value, or all equal:
    ``low = high = mean``.
    """
    if not 0.0 < float(confidence) < 1.0:
        raise ConfigError(f"confidence level must be in (0, 1), got {confidence!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ConfigError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    array = np.asarray(values, dtype=np.float64).ravel()
    finite = array[np.isfinite(array)]
    n = int(finite.size)
    if n == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    mean = float(finite.mean())
    if n < 2 or np.ptp(finite) == 0:
        return {"mean": _json_float(mean), "low": _json_float(mean), "high": _json_float(mean), "n": n}
    result = stats.bootstrap(
        (finite,),
        np.mean,
        n_resamples=int(n_resamples),
        confidence_level=float(confidence),
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return {"mean": _json_float(mean), "low": _json_float(interval.low), "high": _json_float(interval.high), "n": n}
