"""Decisions from confidence intervals: a check passes when its whole interval clears the threshold, fails
when the whole interval lies on the wrong side, and is inconclusive otherwise.

The intervals are percentile-bootstrap intervals of a mean over samples (Efron & Tibshirani 1993; see
:func:`xai.metrics.statistics.bootstrap_ci`). An inconclusive check carries the number of samples that
would likely decide it, from the observed spread by the normal approximation: the half-width of a mean's
interval shrinks as ``1/√n``, so with half-width ``h`` on the threshold's side at ``n`` samples and a mean
at distance ``d`` from the threshold, the interval stops touching the threshold near
``n_needed = ceil(n · (h / d)²)`` (if the mean stays where it is). A check measured on fewer than
``min_samples`` samples is never decided: two values give no usable interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

OUTCOMES = ("passes", "fails", "inconclusive")
DEFAULT_MIN_SAMPLES = 3
N_NEEDED_METHOD = (
    "the observed interval's half-width h at n samples, shrunk as 1/√n (normal approximation) until it "
    "equals the mean's distance d from the threshold: n·(h/d)² samples, if the mean stays where it is"
)

__all__ = [
    "DEFAULT_MIN_SAMPLES",
    "N_NEEDED_METHOD",
    "OUTCOMES",
    "Rule",
    "combine",
    "decide",
    "interval",
    "samples_needed",
]


@dataclass(frozen=True)
class Rule:
    """What passes: the mean's interval entirely ``direction`` ("above" | "below") ``threshold``."""

    threshold: float
    direction: str = "above"
    min_samples: int = DEFAULT_MIN_SAMPLES


def interval(values: Any, options: Any, seed_offset: int = 0) -> dict:
    """Mean and bootstrap interval of the finite ``values`` with the run's ``confidence``,
    ``bootstrap_resamples`` and ``seed`` (attributes of ``options``)."""
    from xai.metrics.statistics import bootstrap_ci

    array = np.array([np.nan if v is None else float(v) for v in np.asarray(values, dtype=object).ravel()])
    return bootstrap_ci(
        array,
        confidence=float(getattr(options, "confidence", 0.95)),
        n_resamples=int(getattr(options, "bootstrap_resamples", 1000)),
        seed=int(getattr(options, "seed", 0)) + seed_offset,
    )


def samples_needed(ci: Mapping, threshold: float, min_samples: int = DEFAULT_MIN_SAMPLES) -> int | None:
    """Samples that would likely make the interval clear ``threshold`` (see the module docstring).

    ``None`` when the mean sits on the threshold (no sample count decides it) or the interval is
    missing. No spread measured (one value): ``min_samples``.
    """
    mean, low, high, n = ci.get("mean"), ci.get("low"), ci.get("high"), int(ci.get("n") or 0)
    if mean is None or low is None or high is None or n == 0:
        return None
    distance = abs(mean - threshold)
    if distance == 0:
        return None
    half_width = (mean - low) if threshold < mean else (high - mean)
    if half_width <= 0:
        return max(int(min_samples), n + 1) if n < min_samples else None
    needed = math.ceil(n * (half_width / distance) ** 2)
    return max(needed, n + 1, int(min_samples))


def decide(ci: Mapping | None, rule: Rule) -> dict:
    """``{'outcome', 'passed', 'n', 'mean', 'low', 'high', 'threshold', 'direction', 'n_needed', 'reason'}``.

    ``passed`` is ``True`` / ``False`` for a decided check and ``None`` when inconclusive.
    """
    ci = dict(ci or {})
    mean, low, high, n = ci.get("mean"), ci.get("low"), ci.get("high"), int(ci.get("n") or 0)
    base = {
        "n": n,
        "mean": mean,
        "low": low,
        "high": high,
        "threshold": float(rule.threshold),
        "direction": rule.direction,
        "n_needed": None,
        "reason": None,
    }
    if rule.direction not in ("above", "below"):
        raise ValueError(f"rule direction must be 'above' or 'below', got {rule.direction!r}")
    if mean is None or low is None or high is None:
        return {**base, "outcome": "inconclusive", "passed": None, "reason": "no values"}
    above, below = low > rule.threshold, high < rule.threshold
    if n < rule.min_samples:
        outcome, reason = "inconclusive", f"n = {n} < {rule.min_samples} samples: never decided"
    elif (above and rule.direction == "above") or (below and rule.direction == "below"):
        outcome, reason = "passes", None
    elif above or below:
        outcome, reason = "fails", None
    else:
        outcome, reason = "inconclusive", "the interval contains the threshold"
    out = {**base, "outcome": outcome, "passed": {"passes": True, "fails": False}.get(outcome), "reason": reason}
    if outcome == "inconclusive":
        out["n_needed"] = samples_needed(ci, rule.threshold, rule.min_samples)
    return out


def combine(parts: Sequence[Mapping]) -> dict:
    """One outcome from several decisions that must all pass: fails if any fails, passes if all pass,
    inconclusive otherwise (``n_needed``: the largest of the inconclusive parts, ``None`` if one is unknown)."""
    outcomes = [p["outcome"] for p in parts]
    if "fails" in outcomes:
        outcome = "fails"
    elif outcomes and all(o == "passes" for o in outcomes):
        outcome = "passes"
    else:
        outcome = "inconclusive"
    n_needed = None
    if outcome == "inconclusive":
        wanted = [p.get("n_needed") for p in parts if p["outcome"] == "inconclusive"]
        n_needed = None if not wanted or any(w is None for w in wanted) else max(wanted)
    reasons = [p["reason"] for p in parts if p.get("reason") and p["outcome"] == "inconclusive"]
    return {
        "outcome": outcome,
        "passed": {"passes": True, "fails": False}.get(outcome),
        "n": min((int(p.get("n") or 0) for p in parts), default=0),
        "n_needed": n_needed,
        "reason": reasons[0] if reasons else None,
    }
