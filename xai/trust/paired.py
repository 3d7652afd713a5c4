"""Paired comparisons on the same samples: per-sample differences of a trust measure between two
methods (or two models) with a bootstrap interval of their mean, decided like every check
(:mod:`xai.trust.intervals`), so "Grad-CAM localises better than Saliency" is passes / fails /
inconclusive rather than two overlapping intervals.

Pairing removes the between-sample spread that two separate intervals carry (a paired difference's
interval is the bootstrap interval of the mean of ``a_i - b_i``, Efron & Tibshirani 1993).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from xai.trust.intervals import DEFAULT_MIN_SAMPLES, Rule, decide, interval

# per-sample measure: (title, higher is better)
MEASURES = {
    "relevance_mass_accuracy": ("relevance mass", True),
    "pointing_game": ("pointing game", True),
    "deletion_auc": ("deletion AUC", False),
    "insertion_auc": ("insertion AUC", True),
    "random_logit_spearman": ("ρ with another class's map", False),
}

__all__ = ["MEASURES", "method_pairs", "model_pairs", "paired_difference", "per_sample_values"]


def paired_difference(
    a: Any, b: Any, options: Any, higher_is_better: bool = True, min_samples: int = DEFAULT_MIN_SAMPLES
) -> dict:
    """Decide "``a`` is better than ``b``" from per-sample pairs (NaN / None in either: pair left out).

    Returns ``{'difference': {mean, low, high, n} of a - b, 'outcome': passes | fails | inconclusive,
    'n_needed'}``: *passes* when the whole interval of the mean difference lies on the better side of 0,
    *fails* when it lies on the worse side (``b`` is better), inconclusive otherwise.
    """
    a = np.array([np.nan if v is None else float(v) for v in a], dtype=float)
    b = np.array([np.nan if v is None else float(v) for v in b], dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    ci = interval(a[keep] - b[keep], options)
    decision = decide(ci, Rule(0.0, "above" if higher_is_better else "below", int(min_samples)))
    return {
        "difference": ci,
        "outcome": decision["outcome"],
        "n_needed": decision["n_needed"],
        "reason": decision["reason"],
    }


def per_sample_values(
    journal: Sequence[Mapping], randomisation: Mapping, methods: Sequence[str], heads: Sequence[str]
) -> dict:
    """``{'samples': names, head: {measure: {method: [value or None per sample]}}}`` in journal order.

    Localisation and deletion/insertion come from the journal; the random-logit ρ (mean over its
    draws) from the randomisation tests, which ran on the first samples.
    """
    out: dict = {"samples": [e["sample"] for e in journal]}
    n = len(journal)
    for head in heads:
        out[head] = {}
        for measure in MEASURES:
            out[head][measure] = {}
            for method in methods:
                if measure == "random_logit_spearman":
                    item = (randomisation.get(method) or {}).get(head) or {}
                    values = list(item.get("random_logit") or [])
                    values = (values + [None] * n)[:n]
                else:
                    section = "faithfulness" if measure.endswith("_auc") else "localisation"
                    values = [((e["heads"][head].get(section) or {}).get(method) or {}).get(measure) for e in journal]
                out[head][measure][method] = [None if v is None else float(v) for v in values]
    return out


def _finite_count(values: Sequence[float | None]) -> int:
    return sum(v is not None and np.isfinite(v) for v in values)


def method_pairs(per_sample: Mapping, methods: Sequence[str], heads: Sequence[str], options: Any) -> dict:
    """Every pair of methods on every measured per-sample measure:
    ``{head: {measure: [{'a', 'b', 'higher_is_better', 'difference', 'outcome', 'n_needed'}]}}``."""
    min_samples = int(getattr(options, "min_samples", DEFAULT_MIN_SAMPLES))
    out: dict = {}
    for head in heads:
        out[head] = {}
        for measure, (_, higher) in MEASURES.items():
            values = per_sample[head][measure]
            rows = []
            for a, b in itertools.combinations(methods, 2):
                if not _finite_count(values[a]) or not _finite_count(values[b]):
                    continue
                rows.append(
                    {"a": a, "b": b, "higher_is_better": higher}
                    | paired_difference(values[a], values[b], options, higher, min_samples)
                )
            if rows:
                out[head][measure] = rows
    return out


def model_pairs(per_model: Mapping[str, Mapping], options: Any) -> dict:
    """Two or more models' data-set runs on the same samples, paired by sample name:
    ``{head: {measure: [{'a', 'b', 'method', ...paired_difference}]}}`` for every method both ran.
    ``per_model[model]`` is that run's :func:`per_sample_values`; runs on other samples pair on
    the samples they share."""
    min_samples = int(getattr(options, "min_samples", DEFAULT_MIN_SAMPLES))
    out: dict = {}
    for a, b in itertools.combinations(sorted(per_model), 2):
        va, vb = per_model[a], per_model[b]
        index_b = {name: i for i, name in enumerate(vb.get("samples", []))}
        common = [(i, index_b[name]) for i, name in enumerate(va.get("samples", [])) if name in index_b]
        if not common:
            continue
        for head in [h for h in va if h != "samples" and h in vb]:
            for measure, (_, higher) in MEASURES.items():
                ma, mb = va[head].get(measure, {}), vb[head].get(measure, {})
                for method in [m for m in ma if m in mb]:
                    xa = [ma[method][i] for i, _ in common]
                    xb = [mb[method][j] for _, j in common]
                    if not _finite_count(xa) or not _finite_count(xb):
                        continue
                    row = {"a": a, "b": b, "method": method, "higher_is_better": higher}
                    row |= paired_difference(xa, xb, options, higher, min_samples)
                    out.setdefault(head, {}).setdefault(measure, []).append(row)
    return out
