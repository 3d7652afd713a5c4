"""The comparison's numbers: predictions, agreement, attention per physical band and heatmap similarity."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import PrecursorError
from core.names import HEADS
from xai.attention import attention_summary
from xai.compare.discover import Found
from xai.compare.load import native_shape
from xai.compare.rules import PREFERRED_METHOD, RULES
from xai.similarity import heatmap_similarity


@dataclass(frozen=True)
class Plan:
    """What is compared: the models, samples and heads found, each model's methods, the figure method."""

    models: list[str]
    samples: list[str]
    heads: list[str]
    methods: dict[str, list[str]]
    figure_method: str


def make_plan(found: Found) -> Plan:
    """Models and samples sorted by name; heads in canonical order (others after, sorted).

    The figure method is Grad-CAM when every model has it, else the first method all models share,
    else the first model's first method.
    """
    models = sorted(found.records)
    samples = sorted({s for per_model in found.records.values() for s in per_model})
    records = [r for per_model in found.records.values() for r in per_model.values()]
    heads = [h for h in HEADS if any(h in r.entry["heads"] for r in records)]
    heads += sorted({h for r in records for h in r.entry["heads"]} - set(heads))
    methods = {m: [str(x) for x in (found.model_meta[m].get("methods") or [])] for m in models}
    common_methods = sorted(set.intersection(*(set(v) for v in methods.values()))) if models else []
    if PREFERRED_METHOD in common_methods:
        figure_method = PREFERRED_METHOD
    elif common_methods:
        figure_method = common_methods[0]
    else:
        figure_method = next((v[0] for v in methods.values() if v), PREFERRED_METHOD)
    return Plan(models, samples, heads, methods, figure_method)


def comparison_facts(found: Found, roots: Sequence[Path], plan: Plan) -> dict[str, Any]:
    """The comparison's inputs: folders, per-model facts, jobs (failed, missing, ...), notes."""
    comparison: dict[str, Any] = {
        "folders": [r.as_posix() for r in roots],
        "models": {},
        "samples": plan.samples,
        "heads": plan.heads,
        "figure_method": plan.figure_method,
        "rules": RULES,
        "jobs": {
            "failed": sorted(found.failed, key=lambda f: (str(f.get("job")), str(f.get("file")))),
            "missing": sorted(
                found.missing, key=lambda f: (str(f.get("job")), str(f.get("model")), str(f.get("sample")))
            ),
            "unreadable": found.unreadable,
            "duplicates": found.duplicates,
        },
        "notes": [],
        "problems": [],
    }
    for model in plan.models:
        meta = found.model_meta[model]
        comparison["models"][model] = {
            "results_files": found.model_files[model],
            "model_file": meta.get("model_file"),
            "target_layer": meta.get("target_layer"),
            "input_shape": meta.get("input_shape"),
            "methods": plan.methods[model],
            "score": meta.get("score"),
            "native_resolution": meta.get("native_resolution"),
            "environment": meta.get("environment"),
            "status": meta.get("status"),
            "samples": sorted(found.records[model]),
        }
    if len(plan.models) < 2:
        comparison["notes"].append(
            f"only {len(plan.models)} model found: per-model facts only; agreement and heatmap similarity "
            "need at least 2 models"
        )
    return comparison


def trust_summary(found: Found) -> dict:
    """The data-set results without per-sample lists (those stay in the data-set folder)."""
    out = {}
    for model, data in sorted(found.trust.items()):
        trust = json.loads(json.dumps(data["trust"]))
        trust.pop("per_sample", None)  # per-sample values: paired across models by trust_pairs()
        for per_head in (trust.get("randomisation", {}).get("methods") or {}).values():
            for item in per_head.values():
                item.pop("per_sample", None)
        out[model] = {
            "file": found.trust_files[model],
            "model": model,
            "n_samples": data.get("n_samples"),
            "selection": data.get("selection"),
            "methods": data.get("methods", []),
            "heads": data.get("heads", []),
            "confidence": data.get("confidence", 0.95),
            "heads_summary": data.get("heads_summary", {}),
            "trust": trust,
            "confound": data.get("confound"),
            "excluded_disturbed": data.get("excluded_disturbed"),
        }
    return out


def sample_activity(found: Found, plan: Plan) -> dict:
    """The compared samples' geomagnetic activity (from the first model that carries it) and, per model, the
    confound test of its explained samples (:mod:`xai.trust.confound`); empty when no sample carries activity."""
    from xai.trust.confound import confound_test

    per_sample = {}
    for sample in plan.samples:
        entries = [found.records[m][sample].entry for m in plan.models if sample in found.records[m]]
        activity = next((e.get("activity") for e in entries if e.get("activity")), None)
        if activity:
            per_sample[sample] = activity
    if not per_sample:
        return {}
    models = {}
    for model in plan.models:
        rows = [r.entry for r in found.records[model].values()]
        classes = {h: list(found.model_meta[model].get("class_mappings", {}).get(f"{h}_classes") or []) for h in HEADS}
        models[model] = confound_test(rows, {h: c for h, c in classes.items() if c})
    return {"samples": per_sample, "models": models}


def trust_pairs(found: Found) -> dict:
    """Models against models on the samples their data-set runs share: paired per-sample differences
    of each trust measure with bootstrap intervals, decided (:func:`xai.trust.paired.model_pairs`)."""
    from types import SimpleNamespace

    from xai.trust.paired import model_pairs

    per_model = {m: d["trust"]["per_sample"] for m, d in found.trust.items() if d["trust"].get("per_sample")}
    if len(per_model) < 2:
        return {}
    first = next(iter(found.trust.values()))
    options = SimpleNamespace(
        confidence=float(first.get("confidence", 0.95)),
        bootstrap_resamples=1000,
        seed=0,
        min_samples=int((first["trust"].get("decision") or {}).get("min_samples", 3)),
    )
    return model_pairs(per_model, options)


def mean_std(values: Iterable[float | None]) -> dict:
    """Mean, population standard deviation and count of the values that are not None."""
    numbers = [float(v) for v in values if v is not None]
    if not numbers:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(numbers)), "std": float(np.std(numbers)), "n": len(numbers)}


# ---------------------------------------------------------------------------- predictions
def predictions(found: Found, plan: Plan) -> tuple[dict, dict, dict]:
    """Per head and sample: the true class and each model's prediction; per head and model: accuracy
    and confidence (mean ± population std)."""
    result: dict = {h: {} for h in plan.heads}
    for head in plan.heads:
        for sample in plan.samples:
            result[head][sample] = _sample_predictions(found, plan.models, sample, head)
    accuracy: dict = {h: {} for h in plan.heads}
    confidence: dict = {h: {} for h in plan.heads}
    for head in plan.heads:
        for model in plan.models:
            values = [result[head][s]["models"][model] for s in plan.samples if model in result[head][s]["models"]]
            known = [v["correct"] for v in values if v["correct"] is not None]
            accuracy[head][model] = {
                "correct": int(sum(known)),
                "n": len(known),
                "accuracy": (sum(known) / len(known)) if known else None,
                "unknown_truth": len(values) - len(known),
            }
            per_sample = {
                s: result[head][s]["models"][model]["confidence"]
                for s in plan.samples
                if model in result[head][s]["models"]
            }
            confidence[head][model] = dict(mean_std(per_sample.values()), values=per_sample)
    return result, accuracy, confidence


def _sample_predictions(found: Found, models: Sequence[str], sample: str, head: str) -> dict:
    """One sample's true class (None when unknown or when the models' results disagree) and predictions."""
    truths = {}
    per_model = {}
    for model in models:
        record = found.records[model].get(sample)
        if record is None:
            continue
        true = (record.entry.get("true") or {}).get(head)
        if true is not None:
            truths[model] = str(true)
        info = record.entry["heads"].get(head)
        if not isinstance(info, dict) or info.get("prediction") is None:
            continue
        conf = info.get("confidence")
        per_model[model] = {
            "prediction": str(info["prediction"]),
            "confidence": None if conf is None else float(conf),
            "explained_class": info.get("explained_class"),
        }
    distinct = sorted(set(truths.values()))
    for model, pred in per_model.items():
        model_true = truths.get(model)
        pred["correct"] = None if model_true is None else pred["prediction"] == model_true
    entry = {"true": distinct[0] if len(distinct) == 1 else None, "models": per_model}
    if len(distinct) > 1:
        entry["true_conflict"] = truths
    return entry


def agreement(predictions: dict, plan: Plan) -> dict:
    """Per head: class agreement (by class name) of every model pair and of all models together."""
    result: dict = {}
    models, samples = plan.models, plan.samples
    for head in plan.heads:
        preds = predictions[head]
        pairs = [_pair_agreement(preds, a, b, samples) for a, b in itertools.combinations(models, 2)]
        common = [s for s in samples if all(m in preds[s]["models"] for m in models)]
        all_agree, agree_wrong = [], []
        if len(models) >= 2:
            for s in common:
                names = {preds[s]["models"][m]["prediction"] for m in models}
                if len(names) == 1:
                    all_agree.append(s)
                    name = names.pop()
                    true = preds[s]["true"]
                    if true is not None and name != true:
                        agree_wrong.append({"sample": s, "prediction": name, "true": true})
        result[head] = {
            "pairs": pairs,
            "all_models": {
                "models": models,
                "n_common": len(common) if len(models) >= 2 else 0,
                "agree": len(all_agree),
                "agree_samples": all_agree,
                "rate": (len(all_agree) / len(common)) if len(models) >= 2 and common else None,
                "agree_wrong": len(agree_wrong),
                "agree_wrong_samples": agree_wrong,
            },
        }
    return result


def _pair_agreement(preds: Mapping, a: str, b: str, samples: Sequence[str]) -> dict:
    both = [s for s in samples if a in preds[s]["models"] and b in preds[s]["models"]]
    agree = [s for s in both if preds[s]["models"][a]["prediction"] == preds[s]["models"][b]["prediction"]]
    wrong = [
        s for s in agree if preds[s]["true"] is not None and preds[s]["models"][a]["prediction"] != preds[s]["true"]
    ]
    return {
        "models": [a, b],
        "n": len(both),
        "agree": len(agree),
        "rate": len(agree) / len(both) if both else None,
        "agree_samples": agree,
        "agree_wrong": len(wrong),
        "agree_wrong_samples": wrong,
    }


# ---------------------------------------------------------------------------- attention + similarity
@dataclass
class MapAggregates:
    """Collects per-sample attention summaries and pairwise heatmap similarity, sample by sample."""

    plan: Plan
    similarity: dict = field(init=False)
    attention: dict = field(init=False)

    def __post_init__(self) -> None:
        self.similarity = {h: {} for h in self.plan.heads}
        self.attention = {m: {h: {} for h in self.plan.heads} for m in self.plan.models}

    def add(self, sample: str, loaded: Mapping[str, tuple], problems: list) -> None:
        """Add one sample's maps (``{model: (record, Loaded)}``); attention problems go to ``problems``."""
        self._add_attention(sample, loaded, problems)
        self._add_similarity(sample, loaded)

    def results(self) -> tuple[dict, dict]:
        """``(similarity, attention)``: per-sample values plus their means over the samples."""
        return _similarity_means(self.similarity), _attention_aggregates(self.attention)

    def _add_attention(self, sample: str, loaded: Mapping[str, tuple], problems: list) -> None:
        for model, (record, item) in loaded.items():
            for head in self.plan.heads:
                info = record.entry["heads"].get(head)
                stored = info.get("attention") if isinstance(info, dict) else None
                for method in self.plan.methods[model]:
                    summary, source = None, None
                    if isinstance(stored, dict) and isinstance(stored.get(method), dict):
                        summary, source = stored[method], "results json"
                    elif item.axes is not None and f"{method}__{head}" in item.arrays:
                        try:
                            summary = attention_summary(
                                item.arrays[f"{method}__{head}"],
                                item.axes,
                                native_shape=native_shape(record, item.arrays, method),
                            )
                            source = "computed from npz"
                        except PrecursorError as error:
                            problems.append(
                                {"model": model, "sample": sample, "problem": f"{method}/{head} attention: {error}"}
                            )
                    if summary is not None:
                        self.attention[model][head].setdefault(method, {})[sample] = dict(summary, source=source)

    def _add_similarity(self, sample: str, loaded: Mapping[str, tuple]) -> None:
        for (a, (rec_a, item_a)), (b, (rec_b, item_b)) in itertools.combinations(sorted(loaded.items()), 2):
            if item_a.axes is None or item_b.axes is None:
                continue
            for head in self.plan.heads:
                for method in sorted(set(self.plan.methods[a]) & set(self.plan.methods[b])):
                    key = f"{method}__{head}"
                    if key not in item_a.arrays or key not in item_b.arrays:
                        continue
                    values = _pair_similarity(key, (a, item_a), (b, item_b))
                    explained = {
                        m: (r.entry["heads"].get(head) or {}).get("explained_class")
                        for m, r in ((a, rec_a), (b, rec_b))
                    }
                    values["explained_class"] = explained
                    values["same_explained_class"] = (
                        None if None in explained.values() else explained[a] == explained[b]
                    )
                    pairs = self.similarity[head].setdefault(method, {})
                    pair = pairs.setdefault(f"{a} vs {b}", {"models": [a, b]})
                    pair.setdefault("per_sample", {})[sample] = values


def _pair_similarity(key: str, first: tuple[str, Any], second: tuple[str, Any]) -> dict:
    """Spearman ρ, top-10 % IoU and concentration of two models' maps on their common grid."""
    (a, item_a), (b, item_b) = first, second
    try:
        values = heatmap_similarity(
            item_a.arrays[key], item_a.axes, item_b.arrays[key], item_b.axes, fraction=RULES["top_fraction"]
        )
    except PrecursorError as error:
        values = {"spearman": None, "top_iou": None, "error": str(error)}
    if "concentration" in values:
        values["concentration"] = {a: values["concentration"]["a"], b: values["concentration"]["b"]}
    return values


def _similarity_means(similarity: dict) -> dict:
    for per_method in similarity.values():
        for pairs in per_method.values():
            for pair in pairs.values():
                per_sample = pair.get("per_sample", {})
                pair["spearman"] = mean_std(v["spearman"] for v in per_sample.values())
                pair["top_iou"] = mean_std(v["top_iou"] for v in per_sample.values())
                conc = [v["concentration"] for v in per_sample.values() if v.get("concentration")]
                pair["concentration_on_common_grid"] = {
                    model: {
                        key: mean_std(item[model][key] for item in conc)
                        for key in ("normalized_entropy", "top_mass_share")
                    }
                    for model in pair["models"]
                }
    return similarity


def _attention_aggregates(attention: dict) -> dict:
    result: dict = {}
    for model, per_head in attention.items():
        for head, per_method in per_head.items():
            for method, per_sample in per_method.items():
                summaries = [per_sample[s] for s in sorted(per_sample)]
                result.setdefault(model, {}).setdefault(head, {})[method] = {
                    "per_sample": per_sample,
                    "summary": _attention_summary_means(summaries),
                }
    return result


def _attention_summary_means(summaries: list[dict]) -> dict:
    """Means over the samples of one model, head and method: bands, components, concentration, centroid."""
    centroid_f = [
        s["centroid"]["frequency_hz"] for s in summaries if s.get("centroid") and s["centroid"].get("frequency_hz")
    ]
    native = next((s.get("native_resolution") for s in summaries if s.get("native_resolution")), None)
    components = [s.get("components") for s in summaries]
    if components and all(isinstance(c, dict) for c in components):
        comp = {k: mean_std(c.get(k) for c in components) for k in list(components[0])}
    else:
        comp = next((c for c in components if isinstance(c, str)), None)
    return {
        "n": len(summaries),
        "empty_maps": sum(1 for s in summaries if s.get("empty")),
        "bands": _band_means(summaries),
        "components": comp,
        "normalized_entropy": mean_std((s.get("concentration") or {}).get("normalized_entropy") for s in summaries),
        "top_mass_share": mean_std((s.get("concentration") or {}).get("top_mass_share") for s in summaries),
        "centroid_frequency_hz_geometric_mean": (float(10 ** np.mean(np.log10(centroid_f))) if centroid_f else None),
        "centroid_hours_before": mean_std((s.get("centroid") or {}).get("hours_before") for s in summaries),
        "native_resolution": native,
    }


def _band_means(summaries: list[dict]) -> dict:
    """Per band (in first-seen order): coverage, mean area/mass share, enrichment and how many samples
    reach the "concentrates" threshold."""
    threshold = RULES["enrichment_concentrates"]
    names: list[str] = []
    for s in summaries:
        names += [name for name in s.get("bands") or {} if name not in names]
    bands: dict = {}
    for name in names:
        entries = [s["bands"].get(name) or {} for s in summaries]
        covered = [e for e in entries if e.get("covered")]
        if not covered:
            bands[name] = {
                "covered": False,
                "frequency_range_hz": entries[0].get("frequency_range_hz"),
                "label": entries[0].get("label"),
            }
            continue
        enrich = [e.get("enrichment") for e in covered if e.get("enrichment") is not None]
        bands[name] = {
            "covered": True,
            "frequency_range_hz": covered[0].get("frequency_range_hz"),
            "label": covered[0].get("label"),
            "area_share": mean_std(e.get("area_share") for e in covered),
            "mass_share": mean_std(e.get("mass_share") for e in covered),
            "enrichment": mean_std(enrich),
            "samples_enriched": sum(1 for v in enrich if v >= threshold),
            "samples_with_numbers": len(enrich),
        }
    return bands
