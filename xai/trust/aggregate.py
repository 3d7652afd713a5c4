"""Aggregation of a finished data-set run into numbers: accuracy and confusion per head, class-mean
maps, band-share distributions and the trust measures, each with bootstrap confidence intervals.

The measures (thresholds and verdicts in :mod:`xai.trust.verdicts`): localisation against the
ground-truth masks (Arras et al. 2022), deletion/insertion faithfulness against a random cell
order (Petsiuk et al. 2018), cascading model randomisation and the random-logit test (Adebayo et
al. 2018). No pictures here: the class-mean figures are drawn by the caller from :class:`ClassMeans`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.names import SIGNED_METHODS
from models.training import confusion
from xai.attention import BANDS, REST
from xai.trust.intervals import DEFAULT_MIN_SAMPLES, N_NEEDED_METHOD
from xai.trust.paired import method_pairs, per_sample_values
from xai.trust.verdicts import DEFAULT_THRESHOLDS, verdicts

log = logging.getLogger(__name__)

LOCALISATION_KEYS = ("relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game")
CLASS_MEANS_FILE = "class_means.npz"


def _ci(values: Sequence[float | None], options: Any, seed_offset: int = 0) -> dict:
    from xai.metrics.statistics import bootstrap_ci

    array = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    return bootstrap_ci(
        array,
        confidence=float(options.confidence),
        n_resamples=int(options.bootstrap_resamples),
        seed=int(options.seed) + seed_offset,
    )


def confusion_by_name(truth: Sequence[str], pred: Sequence[str], classes: Sequence[str]) -> dict:
    """Confusion matrix (rows true, columns predicted) of class names; samples whose true class
    is not one of the model's classes are left out."""
    index = {c: i for i, c in enumerate(classes)}
    pairs = np.array([(index[t], index[p]) for t, p in zip(truth, pred) if t in index], dtype=int).reshape(-1, 2)
    matrix = confusion(pairs[:, 0], pairs[:, 1], classes)
    return {key: matrix[key] for key in ("classes", "rows", "columns", "matrix")}


@dataclass
class ClassMeans:
    """Class-mean maps per (method, head, true class): each map scaled to unit mass, then averaged.

    ``means[method][head][class]``: float32 ``(rows, cols)``; ``counts[method][head][class]``:
    the number of maps averaged (every class of the head, 0 included).
    """

    means: dict[str, dict[str, dict[str, np.ndarray]]]
    counts: dict[str, dict[str, dict[str, int]]]

    def arrays(self) -> dict[str, np.ndarray]:
        """NPZ arrays named ``<method>__<head>__<class>``."""
        return {
            f"{method}__{head}__{cls}": value
            for method, per_head in self.means.items()
            for head, per_class in per_head.items()
            for cls, value in per_class.items()
        }

    def summary(self, figures: Sequence[str]) -> dict:
        """The ``class_means`` entry of the results (``figures``: the file names of the drawn figures)."""
        return {
            "file": CLASS_MEANS_FILE,
            "figures": list(figures),
            "counts": self.counts,
            "grouping": "true class",
            "normalisation": "each map scaled to unit mass before averaging; "
            + ", ".join(sorted(SIGNED_METHODS))
            + ": mean signed score drop",
        }


def _class_mean_terms(method: str, block: np.ndarray):
    """``(row, map)`` pairs to average: signed drops as they are, attention clipped to unit mass (empty skipped)."""
    if method in SIGNED_METHODS:
        yield from ((i, block[i].astype(np.float64)) for i in range(len(block)))
        return
    mass = np.clip(block, 0, None).sum(axis=(1, 2))
    yield from ((i, np.clip(block[i], 0, None) / mass[i]) for i in range(len(block)) if mass[i] > 0)


def class_means(store: Any, journal: Sequence[Mapping], context: Any) -> ClassMeans:
    """Class-mean maps of the stored heatmaps (read in chunks), grouped by the journal's true classes."""
    means: dict = {}
    counts: dict = {}
    for method in context.methods:
        means[method], counts[method] = {}, {}
        for head in context.heads:
            classes = context.bundle.classes(head)
            truth = [e["heads"][head]["true"] for e in journal]
            sums = {c: np.zeros(store.shape[1:], dtype=np.float64) for c in classes}
            n = dict.fromkeys(classes, 0)
            for start, block in store.chunks(method, head):
                for i, normalised in _class_mean_terms(method, block):
                    cls = truth[start + i]
                    if cls in sums:
                        sums[cls] += normalised
                        n[cls] += 1
            means[method][head] = {c: (sums[c] / n[c]).astype(np.float32) for c in classes if n[c]}
            counts[method][head] = n
    return ClassMeans(means, counts)


def aggregate_run(
    journal: Sequence[Mapping],
    context: Any,
    options: Any,
    randomisation: Mapping,
    class_means_summary: Mapping,
    cost: Mapping | None = None,
    reliance: Mapping | None = None,
) -> dict:
    """Summaries of a finished data-set run (``context``: an :class:`xai.pipeline.ExplainContext`;
    ``options``: the run's :class:`xai.dataset.DatasetOptions`; ``cost``: seconds per check measured
    in this process, ``{check: {'seconds', 'samples', 'by_method'}}``; ``reliance``: the run's
    occlusion summary, :func:`xai.reliance.summary.aggregate_reliance`)."""
    bundle, methods, heads = context.bundle, context.methods, list(context.heads)
    thresholds = {**DEFAULT_THRESHOLDS, **dict(options.thresholds or {})}
    results: dict = {
        "model": bundle.name,
        "model_file": str(bundle.source_file),
        "n_samples": len(journal),
        "methods": list(methods),
        "heads": heads,
        "explained_class": options.explained_class,
        "heads_summary": {},
        "bands": {},
        "trust": {},
        "files": {},
    }
    for head in heads:
        results["heads_summary"][head] = _head_summary(journal, head, bundle.classes(head))
    results["bands"] = _band_distributions(journal, methods, heads, bundle, options)
    results["class_means"] = dict(class_means_summary)
    min_samples = int(getattr(options, "min_samples", DEFAULT_MIN_SAMPLES))
    per_sample = per_sample_values(journal, randomisation, methods, heads)
    results["trust"] = {
        "localisation": _localisation(journal, methods, heads, options, thresholds),
        "faithfulness": _faithfulness(journal, methods, heads, options),
        "randomisation": _randomisation_summary(randomisation, options),
        "thresholds": thresholds,
        "decision": {
            "rule": "passes when the whole interval clears the threshold, fails when it lies on the wrong "
            "side, inconclusive otherwise",
            "min_samples": min_samples,
            "n_needed": N_NEEDED_METHOD,
        },
        "cost": dict(cost or {}),
        "paired": method_pairs(per_sample, methods, heads, options),
        "per_sample": per_sample,
    }
    results["trust"]["verdicts"] = verdicts(results["trust"], methods, heads, thresholds, min_samples, reliance)
    return results


def _head_summary(journal: Sequence[Mapping], head: str, classes: Sequence[str]) -> dict:
    truth = [e["heads"][head]["true"] for e in journal]
    pred = [e["heads"][head]["prediction"] for e in journal]
    known = [t in classes for t in truth]
    n_known = int(sum(known))
    counts = {c: truth.count(c) for c in classes}
    return {
        "accuracy": (sum(t == p for t, p, k in zip(truth, pred, known) if k) / n_known) if n_known else None,
        "n": n_known,
        "majority_class_rate": (max(counts.values()) / n_known) if n_known else None,
        "class_counts": counts,
        "confusion": confusion_by_name(truth, pred, classes),
    }


def _band_distributions(journal, methods, heads, bundle, options) -> dict:
    """Mean band mass share per (method, head, true class) with bootstrap CIs."""
    band_names = [b.name for b in BANDS] + [REST]
    out: dict = {}
    for method in methods:
        out[method] = {}
        for head in heads:
            out[method][head] = {}
            for cls in bundle.classes(head):
                rows = [e["heads"][head]["bands"][method] for e in journal if e["heads"][head]["true"] == cls]
                if not rows:
                    continue
                out[method][head][cls] = {
                    band: _ci([r.get(band) for r in rows], options)
                    for band in band_names
                    if any(r.get(band) is not None for r in rows)
                }
    return out


def _values(journal, head: str, section: str, method: str, key: str) -> list[float | None]:
    out = []
    for e in journal:
        item = e["heads"][head].get(section, {}).get(method)
        if item is not None:
            out.append(item.get(key))
    return out


def _localisation(journal, methods, heads, options, thresholds: Mapping) -> dict:
    if not any(e["heads"][h].get("localisation") for e in journal for h in heads):
        return {"measured": False, "reason": "no ground-truth masks in this data set"}
    out: dict = {"measured": True, "methods": {}, "random": {}, "mask_area_share": {}}
    for head in heads:
        area = [e["heads"][head].get("mask_area_share") for e in journal]
        out["mask_area_share"][head] = _ci(area, options)
        out["random"][head] = {
            k: _ci(_values(journal, head, "localisation", "random", k), options) for k in LOCALISATION_KEYS
        }
        factor = float(thresholds["mass_vs_area"])
        for method in methods:
            item = {k: _ci(_values(journal, head, "localisation", method, k), options) for k in LOCALISATION_KEYS}
            # paired per sample (windows with a mask): relevance mass beyond factor x the mask's area share,
            # and beyond what a random map scores on the same window
            item.update(_localisation_gains(journal, head, method, factor, options))
            out["methods"].setdefault(method, {})[head] = item
        out.setdefault("by_class", {})[head] = _localisation_by_class(journal, methods, head, options)
    return out


def _localisation_gains(journal, head: str, method: str, factor: float, options) -> dict:
    mass, area, random = [], [], []
    for e in journal:
        entry = e["heads"][head]
        value = (entry.get("localisation", {}).get(method) or {}).get("relevance_mass_accuracy")
        share = entry.get("mask_area_share")
        if value is None or not share:
            continue
        mass.append(value)
        area.append(share)
        random.append((entry["localisation"].get("random") or {}).get("relevance_mass_accuracy"))
    mass_a, area_a = np.array(mass, dtype=float), np.array(area, dtype=float)
    random_a = np.array([np.nan if v is None else v for v in random], dtype=float)
    return {
        "excess_over_area": _ci(mass_a - factor * area_a, options),
        "gain_over_random": _ci(mass_a - random_a, options),
    }


def _localisation_by_class(journal, methods, head: str, options) -> dict:
    """Relevance mass per true class (samples with a mask only): an average can hide a class whose
    maps point away from the precursor."""
    groups: dict[str, list] = {}
    for e in journal:  # one pass; samples without a mask (Normal windows) have nothing to localise
        cls = e.get("true", {}).get(head)
        if cls is not None and e["heads"][head].get("localisation") and e["heads"][head].get("mask_area_share"):
            groups.setdefault(cls, []).append(e)
    out: dict = {}
    for cls, rows in groups.items():
        out[cls] = {
            "n": len(rows),
            "mask_area_share": _ci([e["heads"][head]["mask_area_share"] for e in rows], options),
            "relevance_mass_accuracy": {
                m: _ci(_values(rows, head, "localisation", m, "relevance_mass_accuracy"), options) for m in methods
            },
        }
    return out


def _faithfulness(journal, methods, heads, options) -> dict:
    rows = [e for e in journal if e["heads"][heads[0]].get("faithfulness")]
    if not rows:
        return {"measured": False, "reason": "faithfulness_samples is 0"}
    out: dict = {"measured": True, "n": len(rows), "methods": {}, "random": {}}
    for head in heads:
        random_del = np.array(_values(rows, head, "faithfulness", "random", "deletion_auc"), dtype=float)
        random_ins = np.array(_values(rows, head, "faithfulness", "random", "insertion_auc"), dtype=float)
        out["random"][head] = {"deletion_auc": _ci(random_del, options), "insertion_auc": _ci(random_ins, options)}
        for method in methods:
            deletion = np.array(_values(rows, head, "faithfulness", method, "deletion_auc"), dtype=float)
            insertion = np.array(_values(rows, head, "faithfulness", method, "insertion_auc"), dtype=float)
            out["methods"].setdefault(method, {})[head] = {
                "deletion_auc": _ci(deletion, options),
                "insertion_auc": _ci(insertion, options),
                # paired per sample: positive = better than random order
                "deletion_gain": _ci(random_del - deletion, options),
                "insertion_gain": _ci(insertion - random_ins, options),
            }
    return out


def _randomisation_summary(randomisation: Mapping, options: Any) -> dict:
    """Per method and head: mean Spearman ρ after each cascading step, and bootstrap intervals over
    samples of the fully randomised step's ρ and of the random-logit ρ (per sample, the mean over
    its other classes)."""
    if not randomisation:
        return {"measured": False, "reason": "randomisation_samples is 0"}
    out: dict = {"measured": True, "methods": {}}
    for method, per_head in randomisation.items():
        for head, item in per_head.items():
            steps = []
            for step in item["cascading"]:
                values = [v for v in step["spearman"] if v is not None]
                steps.append(
                    {
                        "label": step["label"],
                        "n_layers": len(step["layers"]),
                        "mean_spearman": float(np.mean(values)) if values else None,
                        "n": len(values),
                    }
                )
            logit = [v for v in item["random_logit"] if v is not None]
            final = item["cascading"][-1]["spearman"] if item["cascading"] else []
            draws = item.get("random_logit_draws") or [[v] for v in item["random_logit"]]
            out["methods"].setdefault(method, {})[head] = {
                "cascading": steps,
                "final_mean_spearman": steps[-1]["mean_spearman"] if steps else None,
                "final_spearman": _ci(final, options),
                "random_logit_mean_spearman": float(np.mean(logit)) if logit else None,
                "random_logit_spearman": _ci(item["random_logit"], options),
                "random_logit_draws": max((len(row) for row in draws), default=0),
                "n": len(item["random_logit"]),
                "per_sample": item,
            }
    return out
