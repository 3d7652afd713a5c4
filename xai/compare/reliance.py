"""Occlusion reliance per model in the comparison: mean marginal drops and attention-vs-reliance agreement.

From the explained samples (``heads[head]["reliance"][method]`` of ``visualization_results.json``):
the mean drop of removing each whole band, hour and component (Zeiler & Fergus, 2014, occlusion)
and each gradient method's mean Spearman rho with the region drops; from a model's data-set run
(``dataset_results.json``, key ``reliance``) the class means with their CIs are passed through.
Class order differs between models, so marginals are averaged over samples, never by class index.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from core.names import METHOD_TITLES
from xai.compare.discover import Found

__all__ = ["reliance_section", "reliance_summary"]

KINDS = ("band", "segment", "component")


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _head_summary(entries: list[Mapping]) -> dict:
    unit = entries[0].get("unit", "logit")
    key = "drop_logit" if unit == "logit" else "drop_probability"
    marginals: dict = {}
    for kind in KINDS:
        names = list(dict.fromkeys(n for e in entries for n in e.get("marginals", {}).get(kind, {})))
        marginals[kind] = {
            name: _mean([e["marginals"][kind][name].get(key) for e in entries if name in e["marginals"].get(kind, {})])
            for name in names
        }
    methods = list(dict.fromkeys(m for e in entries for m in e.get("agreement", {})))
    agreement = {
        m: _mean([e["agreement"][m].get("spearman_rho") for e in entries if m in e["agreement"]]) for m in methods
    }
    return {"n": len(entries), "unit": unit, "marginals": marginals, "agreement_rho": agreement}


def reliance_summary(found: Found) -> dict:
    """``{model: {"samples": {method: {head: summary}}, "dataset": data-set reliance or None}}`` for the
    models that ran occlusion (empty when none did)."""
    out: dict = {}
    for model in sorted(found.records):
        collected: dict[str, dict[str, list]] = {}
        for record in found.records[model].values():
            for head, head_entry in record.entry.get("heads", {}).items():
                for method, entry in (head_entry.get("reliance") or {}).items():
                    collected.setdefault(method, {}).setdefault(head, []).append(entry)
        samples = {m: {h: _head_summary(e) for h, e in per_head.items()} for m, per_head in collected.items()}
        dataset = (found.trust.get(model) or {}).get("reliance") or None
        if samples or dataset:
            out[model] = {"samples": samples, "dataset": dataset}
    for model, data in found.trust.items():
        if model not in out and data.get("reliance"):
            out[model] = {"samples": {}, "dataset": data["reliance"]}
    return out


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def _table(rows: Mapping[str, Mapping], kind: str) -> list[str]:
    """One row per model: the mean drop of removing each band / hour / component."""
    names = list(dict.fromkeys(n for item in rows.values() for n in item["marginals"].get(kind, {})))
    if not names:
        return []
    lines = [f"| model | n | {kind}: " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for model, item in rows.items():
        cells = [_fmt(item["marginals"][kind].get(n)) for n in names]
        lines.append(f"| {model} | {item['n']} | " + " | ".join(cells) + " |")
    return lines + [""]


def reliance_section(c: Mapping) -> list[str]:
    """Markdown lines of the comparison's reliance section (none without occlusion results)."""
    reliance = c.get("reliance") or {}
    if not reliance:
        return []
    lines = ["## Reliance: what the predictions depend on (occlusion)", ""]
    lines.append(
        "Mean score drop when a whole frequency band, hour or component is replaced by its median "
        "background (explained samples; positive = relied on)."
    )
    lines.append("")
    methods = list(dict.fromkeys(m for item in reliance.values() for m in item["samples"]))
    heads = list(dict.fromkeys(h for item in reliance.values() for per in item["samples"].values() for h in per))
    for method in methods:
        for head in heads:
            rows = {m: item["samples"][method][head] for m, item in reliance.items()
                    if head in item["samples"].get(method, {})}  # fmt: skip
            if not rows:
                continue
            unit = next(iter(rows.values()))["unit"]
            lines += [f"**{METHOD_TITLES.get(method, method)} — {head}** ({unit} drop)", ""]
            for kind in KINDS:
                lines += _table(rows, kind)
            for model, item in rows.items():
                rhos = ", ".join(f"{METHOD_TITLES.get(m, m)} ρ = {_fmt(r)}" for m, r in item["agreement_rho"].items())
                if rhos:
                    lines.append(f"- **{model}**: attention vs reliance over the regions (mean): {rhos}.")
            lines.append("")
    with_dataset = [m for m, item in reliance.items() if item.get("dataset")]
    if with_dataset:
        lines.append(
            "Class means with confidence intervals: the data-set reports of "
            + ", ".join(f"`{m}`" for m in with_dataset)
            + " (section Reliance)."
        )
        lines.append("")
    return lines
