"""Aggregation of a data-set run and the "Can these explanations be trusted?" verdicts.

Checks (thresholds in ``conf/task/dataset.yaml``, ``thresholds``):

* **localisation** (Arras et al. 2022): mean relevance mass accuracy at least ``mass_vs_area`` (2) times
  the mask's mean area share — what a uniform map scores — and its CI above the random-map mean;
* **faithfulness** (Petsiuk et al. 2018): deletion AUC below and insertion AUC above the same
  procedure in random order, both paired differences with a CI excluding 0;
* **randomisation** (Adebayo et al. 2018): after randomising the model top-down the mean Spearman
  with the original map falls below ``max_randomised_spearman`` (0.5);
* **random logit**: the map of another class differs, mean Spearman below ``max_random_logit_spearman``.

A method *passes* when every measured check passes, is *not trustworthy here* when any fails.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.io import atomic_savez
from core.names import METHOD_TITLES
from xai.attention import BANDS, REST

log = logging.getLogger(__name__)

DEFAULT_THRESHOLDS = {"mass_vs_area": 2.0, "max_randomised_spearman": 0.5, "max_random_logit_spearman": 0.5}
LOCALISATION_KEYS = ("relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game")


def _ci(values: Sequence[float | None], options: Any, seed_offset: int = 0) -> dict:
    from xai.metrics.statistics import bootstrap_ci

    array = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    return bootstrap_ci(array, confidence=float(options.confidence), n_resamples=int(options.bootstrap_resamples),
                        seed=int(options.seed) + seed_offset)


def _confusion(truth: Sequence[str], pred: Sequence[str], classes: Sequence[str]) -> dict:
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    for t, p in zip(truth, pred):
        if t in index:
            matrix[index[t], index[p]] += 1
    return {"classes": list(classes), "rows": "true", "columns": "predicted", "matrix": matrix.tolist()}


def aggregate(*, journal, store, records, bundle, methods, heads, axes, options, randomisation, folder) -> dict:
    """Summaries of a finished data-set run (see the module docstring)."""
    thresholds = {**DEFAULT_THRESHOLDS, **dict(options.thresholds or {})}
    results: dict = {"model": bundle.name, "model_file": str(bundle.source_file), "n_samples": len(journal),
                     "methods": list(methods), "heads": list(heads), "explained_class": options.explained_class,
                     "heads_summary": {}, "bands": {}, "trust": {}, "files": {}}
    for head in heads:
        classes = bundle.classes(head)
        truth = [e["heads"][head]["true"] for e in journal]
        pred = [e["heads"][head]["prediction"] for e in journal]
        known = [t in classes for t in truth]
        n_known = int(sum(known))
        counts = {c: truth.count(c) for c in classes}
        results["heads_summary"][head] = {
            "accuracy": (sum(t == p for t, p, k in zip(truth, pred, known) if k) / n_known) if n_known else None,
            "n": n_known,
            "majority_class_rate": (max(counts.values()) / n_known) if n_known else None,
            "class_counts": counts,
            "confusion": _confusion(truth, pred, classes),
        }
    results["bands"] = _band_distributions(journal, methods, heads, bundle, options)
    results["class_means"] = _class_means(store, journal, methods, heads, bundle, axes, folder)
    results["trust"] = {
        "localisation": _localisation(journal, methods, heads, options),
        "faithfulness": _faithfulness(journal, methods, heads, options),
        "randomisation": _randomisation_summary(randomisation),
        "thresholds": thresholds,
    }
    results["trust"]["verdicts"] = verdicts(results["trust"], methods, heads, thresholds)
    return results


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
                out[method][head][cls] = {band: _ci([r.get(band) for r in rows], options) for band in band_names
                                          if any(r.get(band) is not None for r in rows)}
    return out


def _class_means(store, journal, methods, heads, bundle, axes, folder: Path) -> dict:
    """Class-mean maps per (method, head, true class): each map scaled to unit mass, then averaged."""
    from xai.render import render_class_means

    arrays, counts_out, figures = {}, {}, []
    for method in methods:
        means: dict = {}
        counts: dict = {}
        for head in heads:
            classes = bundle.classes(head)
            truth = [e["heads"][head]["true"] for e in journal]
            sums = {c: np.zeros(store.shape[1:], dtype=np.float64) for c in classes}
            n = dict.fromkeys(classes, 0)
            for start, block in store.chunks(method, head):
                mass = np.clip(block, 0, None).sum(axis=(1, 2))
                for i in range(len(block)):
                    cls = truth[start + i]
                    if cls in sums and mass[i] > 0:
                        sums[cls] += np.clip(block[i], 0, None) / mass[i]
                        n[cls] += 1
            means[head] = {c: (sums[c] / n[c]).astype(np.float32) for c in classes if n[c]}
            counts[head] = n
            for c, value in means[head].items():
                arrays[f"{method}__{head}__{c}"] = value
        counts_out[method] = counts
        figure = Path(folder) / f"class_means_{method}.png"
        render_class_means(figure, model=bundle.name, method=method, means=means, counts=counts, axes=axes)
        figures.append(figure.name)
    atomic_savez(Path(folder) / "class_means.npz", **arrays, **axes.to_npz_arrays())
    return {"file": "class_means.npz", "figures": figures, "counts": counts_out,
            "grouping": "true class", "normalisation": "each map scaled to unit mass before averaging"}


def _values(journal, head: str, section: str, method: str, key: str) -> list[float | None]:
    out = []
    for e in journal:
        item = e["heads"][head].get(section, {}).get(method)
        if item is not None:
            out.append(item.get(key))
    return out


def _localisation(journal, methods, heads, options) -> dict:
    if not any(e["heads"][h].get("localisation") for e in journal for h in heads):
        return {"measured": False, "reason": "no ground-truth masks in this data set"}
    out: dict = {"measured": True, "methods": {}, "random": {}, "mask_area_share": {}}
    for head in heads:
        area = [e["heads"][head].get("mask_area_share") for e in journal]
        out["mask_area_share"][head] = _ci(area, options)
        out["random"][head] = {k: _ci(_values(journal, head, "localisation", "random", k), options)
                               for k in LOCALISATION_KEYS}
        for method in methods:
            out["methods"].setdefault(method, {})[head] = {
                k: _ci(_values(journal, head, "localisation", method, k), options) for k in LOCALISATION_KEYS}
        out.setdefault("by_class", {})[head] = _localisation_by_class(journal, methods, head, options)
    return out


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
        out[cls] = {"n": len(rows),
                    "mask_area_share": _ci([e["heads"][head]["mask_area_share"] for e in rows], options),
                    "relevance_mass_accuracy": {
                        m: _ci(_values(rows, head, "localisation", m, "relevance_mass_accuracy"), options)
                        for m in methods}}
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


def _randomisation_summary(randomisation: Mapping) -> dict:
    if not randomisation:
        return {"measured": False, "reason": "randomisation_samples is 0"}
    out: dict = {"measured": True, "methods": {}}
    for method, per_head in randomisation.items():
        for head, item in per_head.items():
            steps = []
            for step in item["cascading"]:
                values = [v for v in step["spearman"] if v is not None]
                steps.append({"label": step["label"], "n_layers": len(step["layers"]),
                              "mean_spearman": float(np.mean(values)) if values else None, "n": len(values)})
            logit = [v for v in item["random_logit"] if v is not None]
            out["methods"].setdefault(method, {})[head] = {
                "cascading": steps,
                "final_mean_spearman": steps[-1]["mean_spearman"] if steps else None,
                "random_logit_mean_spearman": float(np.mean(logit)) if logit else None,
                "n": len(item["random_logit"]),
                "per_sample": item,
            }
    return out


def verdicts(trust: Mapping, methods: Sequence[str], heads: Sequence[str], thresholds: Mapping) -> dict:
    """Per method and head: each check's outcome and a plain verdict."""
    out: dict = {}
    for method in methods:
        out[method] = {}
        for head in heads:
            checks: dict = {}
            loc = trust["localisation"]
            if loc.get("measured") and method in loc["methods"]:
                rma = loc["methods"][method][head]["relevance_mass_accuracy"]
                area = loc["mask_area_share"][head]["mean"]
                random_rma = loc["random"][head]["relevance_mass_accuracy"]["mean"]
                if rma["mean"] is not None and area:
                    ratio = rma["mean"] / area
                    ok = ratio >= thresholds["mass_vs_area"] and (rma["low"] or 0) > (random_rma or 0)
                    checks["localisation"] = {"passed": bool(ok), "detail": (
                        f"relevance mass {rma['mean']:.2f} = {ratio:.1f}× the mask's area share {area:.2f} "
                        f"(needs ≥ {thresholds['mass_vs_area']:g}×)")}
            faith = trust["faithfulness"]
            if faith.get("measured") and method in faith["methods"]:
                item = faith["methods"][method][head]
                dl, il = item["deletion_gain"]["low"], item["insertion_gain"]["low"]
                if dl is not None and il is not None:
                    checks["faithfulness"] = {"passed": bool(dl > 0 and il > 0), "detail": (
                        f"deletion AUC {item['deletion_auc']['mean']:.3f} vs random "
                        f"{faith['random'][head]['deletion_auc']['mean']:.3f}; insertion "
                        f"{item['insertion_auc']['mean']:.3f} vs "
                        f"{faith['random'][head]['insertion_auc']['mean']:.3f}")}
            rand = trust["randomisation"]
            if rand.get("measured") and method in rand["methods"] and head in rand["methods"][method]:
                item = rand["methods"][method][head]
                final = item["final_mean_spearman"]
                if final is not None:
                    checks["randomisation"] = {"passed": bool(abs(final) < thresholds["max_randomised_spearman"]),
                                               "detail": f"Spearman after randomising the model: {final:.2f}"}
                logit = item["random_logit_mean_spearman"]
                if logit is not None:
                    checks["random_logit"] = {"passed": bool(logit < thresholds["max_random_logit_spearman"]),
                                              "detail": f"Spearman with another class's map: {logit:.2f}"}
            if not checks:
                verdict = "not measured"
            elif all(c["passed"] for c in checks.values()):
                verdict = "passes every check"
            else:
                failed = [name for name, c in checks.items() if not c["passed"]]
                verdict = "not trustworthy here (fails " + ", ".join(failed) + ")"
            out[method][head] = {"verdict": verdict, "checks": checks}
    return out


# --------------------------------------------------------------------------- Markdown
def _fmt_ci(ci: Mapping | None, fmt: str = ".2f") -> str:
    if not ci or ci.get("mean") is None:
        return "–"
    if ci.get("low") is None or ci.get("high") is None:
        return f"{ci['mean']:{fmt}}"
    return f"{ci['mean']:{fmt}} [{ci['low']:{fmt}}, {ci['high']:{fmt}}]"


def trust_section(results: Mapping, level: int = 2) -> list[str]:
    """The "Can these explanations be trusted?" Markdown section of one model's data-set results."""
    trust = results.get("trust") or {}
    hashes = "#" * level
    lines = [f"{hashes} Can these explanations be trusted? — {results.get('model')}", ""]
    if not trust:
        return [*lines, "No trust measurements (run `python main.py task=dataset`).", ""]
    loc, faith, rand = trust["localisation"], trust["faithfulness"], trust["randomisation"]
    conf = results.get("confidence", 0.95)
    lines.append(f"{results.get('n_samples')} samples; brackets are bootstrap {conf:.0%} confidence intervals. "
                 "Localisation is against the planted precursor mask (Arras et al. 2022); deletion/insertion "
                 "(Petsiuk et al. 2018) replace grid cells by the per-frequency median background; randomisation "
                 "(Adebayo et al. 2018) re-draws the model's weights from the top down.")
    lines.append("")
    for head in results.get("heads", []):
        lines.append(f"{hashes}# {head} head")
        lines.append("")
        if loc.get("measured"):
            lines.append(f"Mask area share (what a uniform map scores): {_fmt_ci(loc['mask_area_share'][head])}; "
                         f"random map: relevance mass {_fmt_ci(loc['random'][head]['relevance_mass_accuracy'])}, "
                         f"pointing game {_fmt_ci(loc['random'][head]['pointing_game'])}.")
        if faith.get("measured"):
            lines.append(f"Random order ({faith['n']} samples): deletion AUC "
                         f"{_fmt_ci(faith['random'][head]['deletion_auc'], '.3f')}, insertion AUC "
                         f"{_fmt_ci(faith['random'][head]['insertion_auc'], '.3f')}.")
        lines.append("")
        lines.append("| method | relevance mass | rank acc. | pointing | deletion AUC ↓ | insertion AUC ↑ | "
                     "ρ randomised | ρ other class | verdict |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for method in results.get("methods", []):
            lm = loc.get("methods", {}).get(method, {}).get(head, {}) if loc.get("measured") else {}
            fm = faith.get("methods", {}).get(method, {}).get(head, {}) if faith.get("measured") else {}
            rm = rand.get("methods", {}).get(method, {}).get(head, {}) if rand.get("measured") else {}
            verdict = trust["verdicts"][method][head]["verdict"]
            lines.append("| " + " | ".join([
                METHOD_TITLES.get(method, method),
                _fmt_ci(lm.get("relevance_mass_accuracy")), _fmt_ci(lm.get("relevance_rank_accuracy")),
                _fmt_ci(lm.get("pointing_game")), _fmt_ci(fm.get("deletion_auc"), ".3f"),
                _fmt_ci(fm.get("insertion_auc"), ".3f"),
                "–" if rm.get("final_mean_spearman") is None else f"{rm['final_mean_spearman']:.2f}",
                "–" if rm.get("random_logit_mean_spearman") is None else f"{rm['random_logit_mean_spearman']:.2f}",
                verdict]) + " |")
        lines.append("")
        by_class = loc.get("by_class", {}).get(head, {}) if loc.get("measured") else {}
        if by_class:
            methods = results.get("methods", [])
            lines.append("Relevance mass by true class (samples with a planted precursor):")
            lines.append("")
            titles = " | ".join(METHOD_TITLES.get(m, m) for m in methods)
            lines.append(f"| class | n | mask area share | {titles} |")
            lines.append("|---|---|---|" + "---|" * len(methods))
            for cls, item in by_class.items():
                lines.append(f"| {cls} | {item['n']} | {_fmt_ci(item['mask_area_share'])} | " + " | ".join(
                    _fmt_ci(item["relevance_mass_accuracy"].get(m)) for m in methods) + " |")
            lines.append("")
        for method in results.get("methods", []):
            checks = trust["verdicts"][method][head]["checks"]
            if checks:
                lines.append(f"- {METHOD_TITLES.get(method, method)}: " + "; ".join(
                    f"{name} {'✔' if c['passed'] else '✘'} ({c['detail']})" for name, c in checks.items()))
        lines.append("")
    return lines


def dataset_report(results: Mapping) -> str:
    """Markdown report of one model's data-set run."""
    lines = [f"# Data-set report — {results.get('model')}", ""]
    lines.append(f"Model file: `{results.get('model_file')}`; {results.get('n_samples')} samples "
                 f"({results.get('selection', 'selection')}); explained class: {results.get('explained_class')}.")
    lines.append("")
    lines.append("## Accuracy")
    lines.append("")
    lines.append("| head | accuracy | majority-class rate | n |")
    lines.append("|---|---|---|---|")
    for head, item in results.get("heads_summary", {}).items():
        acc = "–" if item["accuracy"] is None else f"{item['accuracy']:.3f}"
        maj = "–" if item["majority_class_rate"] is None else f"{item['majority_class_rate']:.3f}"
        lines.append(f"| {head} | {acc} | {maj} | {item['n']} |")
    lines.append("")
    lines.append("## Band attention shares per true class (mean [95 % CI])")
    lines.append("")
    for method, per_head in results.get("bands", {}).items():
        for head, per_class in per_head.items():
            bands = sorted({b for v in per_class.values() for b in v}, key=lambda b: [x.name for x in BANDS].index(b)
                           if b in [x.name for x in BANDS] else 99)
            lines.append(f"**{METHOD_TITLES.get(method, method)} — {head}**")
            lines.append("")
            lines.append("| class | n | " + " | ".join(bands) + " |")
            lines.append("|---|---|" + "---|" * len(bands))
            for cls, item in per_class.items():
                n = next(iter(item.values()))["n"] if item else 0
                lines.append(f"| {cls} | {n} | " + " | ".join(_fmt_ci(item.get(b)) for b in bands) + " |")
            lines.append("")
    figures = results.get("class_means", {}).get("figures", [])
    if figures:
        lines.append("## Class-mean maps")
        lines.append("")
        lines.extend(f"![{name}]({name})" for name in figures)
        lines.append("")
    lines.extend(trust_section(results))
    run = results.get("run", {})
    if run:
        lines.append(f"Run: {run.get('seconds_this_process')} s in this process, peak RSS "
                     f"{run.get('peak_rss_mb')} MiB, RSS growth after warm-up {run.get('rss_growth_after_warmup')}.")
    return "\n".join(lines) + "\n"
