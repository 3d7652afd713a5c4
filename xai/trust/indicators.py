"""Do the class scores track the physical indicators? Spearman ρ with bootstrap CIs and one sentence per head.

For every head, class and indicator (:func:`xai.indicators.flat_indicators`: band power per
component, the ULF polarisation ratios Z/H and Z/G of Hayakawa et al., 1996, spectral slopes) over
the samples of a data-set run: Spearman's rank correlation ρ (Spearman, 1904, "The proof and
measurement of association between two things") between the indicator and the class's predicted
probability, with a paired percentile-bootstrap confidence interval (Efron & Tibshirani, 1993;
samples resampled with replacement, both values together). The sentence per head names the
strongest (class, indicator) pair and sets it against Z/H, the field's standard precursor
indicator ("the Large score follows H power 1-10 mHz (ρ = …) more than Z/H (ρ = …)").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

from core.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "MIN_SAMPLES",
    "REFERENCE_INDICATOR",
    "indicator_correlations",
    "indicator_report",
    "indicator_sentence",
    "spearman_ci",
]

MIN_SAMPLES = 5  # fewer samples with both values: no correlation
REFERENCE_INDICATOR = "Z/H"


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman ρ of each row pair of ``x`` and ``y`` ``(R, n)`` (average ranks for ties; NaN when constant)."""
    rx = rankdata(x, axis=1) - (x.shape[1] + 1) / 2.0
    ry = rankdata(y, axis=1) - (y.shape[1] + 1) / 2.0
    denominator = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rx * ry).sum(axis=1) / np.where(denominator > 0, denominator, 1.0), np.nan)


def spearman_ci(
    x: Sequence[float | None],
    y: Sequence[float | None],
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """``{rho, low, high, n}``: Spearman ρ of the pairs where both values are finite, with a paired
    percentile-bootstrap CI; ``None`` values when fewer than :data:`MIN_SAMPLES` pairs or a constant side."""
    if not 0.0 < float(confidence) < 1.0:
        raise ConfigError(f"confidence level must be in (0, 1), got {confidence!r}")
    a = np.array([np.nan if v is None else float(v) for v in x])
    b = np.array([np.nan if v is None else float(v) for v in y])
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = int(a.size)
    empty = {"rho": None, "low": None, "high": None, "n": n}
    if n < MIN_SAMPLES:
        return empty
    rho = float(_spearman_rows(a[None], b[None])[0])
    if not np.isfinite(rho):
        return empty
    rows = np.random.default_rng(seed).integers(0, n, size=(int(n_resamples), n))
    boot = _spearman_rows(a[rows], b[rows])
    boot = boot[np.isfinite(boot)]
    tail = (1.0 - float(confidence)) / 2.0
    low, high = (float(v) for v in np.quantile(boot, [tail, 1.0 - tail])) if boot.size else (None, None)
    return {"rho": rho, "low": low, "high": high, "n": n}


def indicator_correlations(
    journal: Sequence[Mapping],
    classes: Mapping[str, Sequence[str]],
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """Per head: ``by_class[class][indicator] = {rho, low, high, n}`` and its ``sentence``.

    ``journal``: one entry per sample with ``indicators`` (flat: name -> value) and
    ``heads[head]["probabilities"]`` (in ``classes[head]`` order). Without indicators (image
    inputs) the result says so.
    """
    with_values = [e for e in journal if e.get("indicators")]
    if not with_values:
        return {"available": False, "reason": "no sample has physical indicators (image inputs need power values)"}
    names = list(dict.fromkeys(name for e in with_values for name in e["indicators"]))
    out: dict = {"available": True, "score": "class probability", "samples": len(with_values), "heads": {}}
    for head, head_classes in classes.items():
        entries = [e for e in with_values if head in e.get("heads", {})]
        by_class: dict = {}
        for k, name in enumerate(head_classes):
            score = [e["heads"][head]["probabilities"][k] for e in entries]
            by_class[name] = {
                indicator: spearman_ci(
                    [e["indicators"].get(indicator) for e in entries], score, confidence, n_resamples, seed + k
                )
                for indicator in names
            }
        out["heads"][head] = {"by_class": by_class, "sentence": indicator_sentence(head, by_class)}
    return out


def _rho_text(value: Mapping) -> str:
    return f"ρ = {value['rho']:+.2f} [{value['low']:+.2f}, {value['high']:+.2f}]"


def _inversely(value: Mapping) -> str:
    """ " inversely" for a negative correlation: the score falls as the indicator rises."""
    return " inversely" if value["rho"] < 0 else ""


def indicator_sentence(head: str, by_class: Mapping[str, Mapping[str, Mapping]]) -> str:
    """One sentence: the strongest (class, indicator) correlation, set against Z/H of the same class."""
    pairs = [
        (abs(value["rho"]), cls, indicator, value)
        for cls, per_indicator in by_class.items()
        for indicator, value in per_indicator.items()
        if value.get("rho") is not None and value.get("low") is not None
    ]
    if not pairs:
        return f"{head}: too few samples with indicators for a rank correlation."
    _, cls, indicator, best = max(pairs, key=lambda item: item[0])
    clear = best["low"] > 0 or best["high"] < 0
    head_text = f"The {cls} score ({head})"
    if not clear:
        return f"{head_text} follows no indicator clearly: the strongest is {indicator} ({_rho_text(best)}, CI has 0)."
    reference = REFERENCE_INDICATOR if indicator != REFERENCE_INDICATOR else None
    if reference is None:
        others = [p for p in pairs if p[1] == cls and p[2] not in (REFERENCE_INDICATOR, "Z/G")]
        if not others:
            return f"{head_text} follows Z/H{_inversely(best)} ({_rho_text(best)})."
        _, _, other_name, other = max(others, key=lambda item: item[0])
        follows = f"{head_text} follows Z/H{_inversely(best)} ({_rho_text(best)})"
        return f"{follows} more than {other_name} ({_rho_text(other)})."
    versus = by_class[cls].get(reference) or {}
    follows = f"{head_text} follows {indicator}{_inversely(best)}"
    if versus.get("rho") is None or versus.get("low") is None:
        return f"{follows} ({_rho_text(best)}); Z/H has no rank correlation here."
    return f"{follows} ({_rho_text(best)}) more than Z/H ({_rho_text(versus)})."


def _cell(value: Mapping | None) -> str:
    if not value or value.get("rho") is None:
        return "–"
    return f"{value['rho']:+.2f} [{value['low']:+.2f}, {value['high']:+.2f}]"


def indicator_report(section: Mapping, confidence: float = 0.95, rows: int = 8) -> str:
    """Markdown section: the sentence per head and the ``rows`` indicators with the largest |ρ| per head."""
    if not section:
        return ""
    lines = ["## Physical indicators and class scores", ""]
    if not section.get("available"):
        return "\n".join([*lines, f"Not available: {section.get('reason', 'no indicators')}.", ""]) + "\n"
    lines += [
        f"Spearman ρ between each indicator (from the grid's power values) and each class probability over "
        f"{section['samples']} samples, [{100 * confidence:g} % bootstrap CI].",
        "",
    ]
    for head, item in section["heads"].items():
        by_class = item["by_class"]
        names = list(dict.fromkeys(n for per in by_class.values() for n in per))

        def strength(name: str, _by_class: Mapping = by_class) -> float:
            values = [abs(per[name]["rho"]) for per in _by_class.values() if per.get(name, {}).get("rho") is not None]
            return max(values, default=-1.0)

        chosen = sorted(names, key=strength, reverse=True)[:rows]
        for reference in (REFERENCE_INDICATOR, "Z/G"):
            if reference in names and reference not in chosen:
                chosen.append(reference)
        lines += [f"**{head}**: {item['sentence']}", ""]
        lines.append("| indicator | " + " | ".join(by_class) + " |")
        lines.append("|---|" + "---|" * len(by_class))
        for name in chosen:
            lines.append(f"| {name} | " + " | ".join(_cell(per.get(name)) for per in by_class.values()) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"
