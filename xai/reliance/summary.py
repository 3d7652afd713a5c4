"""Occlusion reliance over a data set: compact journal entries, class means with CIs and a report section.

Per sample and head the journal keeps the marginal drops (whole band, time segment and component
removed at once; Zeiler & Fergus, 2014, occlusion), the most relied-on regions and, per other
method, the attention-versus-reliance agreement (Spearman's rho over the regions; region
perturbation AOPC after Samek et al., 2017, where it ran). :func:`aggregate_reliance` gives the mean
marginals per true class and the agreement statistics, each with a percentile-bootstrap CI
(:func:`xai.metrics.statistics.bootstrap_ci`); :func:`reliance_report` turns them into Markdown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from core.names import METHOD_TITLES
from xai.metrics.statistics import bootstrap_ci

__all__ = ["aggregate_reliance", "journal_entry", "reliance_report"]

KINDS = ("band", "segment", "component")


def journal_entry(entry: Mapping) -> dict:
    """The compact journal form of :func:`xai.reliance.batch.reliance_entry` (no region table)."""
    unit = entry["unit"]
    key = "drop_logit" if unit == "logit" else "drop_probability"
    return {
        "unit": unit,
        "explained_class": entry.get("explained_class"),
        "marginals": {
            kind: {name: values.get(key) for name, values in entry["marginals"].get(kind, {}).items()} for kind in KINDS
        },
        "marginals_probability": {
            kind: {name: values.get("drop_probability") for name, values in entry["marginals"].get(kind, {}).items()}
            for kind in KINDS
        },
        "top_region": entry.get("top_region"),
        "top_band_segment": entry.get("top_band_segment"),
        "agreement": {
            method: {
                "spearman_rho": item.get("spearman_rho"),
                "aopc": (item.get("region_perturbation") or {}).get("aopc"),
                "aopc_random": (item.get("region_perturbation") or {}).get("aopc_random"),
            }
            for method, item in entry.get("agreement", {}).items()
        },
    }


def _values(rows: Sequence[Mapping], getter) -> np.ndarray:
    out = []
    for row in rows:
        value = getter(row)
        out.append(np.nan if value is None else float(value))
    return np.asarray(out, dtype=np.float64)


def _marginal_means(rows: Sequence[Mapping], ci: dict) -> dict:
    names = {kind: list(dict.fromkeys(n for r in rows for n in r["marginals"].get(kind, {}))) for kind in KINDS}
    return {
        kind: {
            name: bootstrap_ci(_values(rows, lambda r, k=kind, n=name: r["marginals"].get(k, {}).get(n)), **ci)
            for name in names[kind]
        }
        for kind in KINDS
    }


def _agreement_stats(rows: Sequence[Mapping], ci: dict) -> dict:
    methods = list(dict.fromkeys(m for r in rows for m in r.get("agreement", {})))
    out = {}
    for method in methods:

        def get(r: Mapping, key: str, m: str = method) -> Any:
            return r.get("agreement", {}).get(m, {}).get(key)

        aopc, random = _values(rows, lambda r: get(r, "aopc")), _values(rows, lambda r: get(r, "aopc_random"))
        both = np.isfinite(aopc) & np.isfinite(random)
        out[method] = {
            "spearman_rho": bootstrap_ci(_values(rows, lambda r: get(r, "spearman_rho")), **ci),
            "aopc": bootstrap_ci(aopc, **ci),
            "aopc_random": bootstrap_ci(random, **ci),
            "aopc_above_random_rate": float(np.mean(aopc[both] > random[both])) if both.any() else None,
        }
    return out


def aggregate_reliance(
    journal: Sequence[Mapping], heads: Sequence[str], confidence: float = 0.95, resamples: int = 1000, seed: int = 0
) -> dict:
    """``{method: {head: {"unit", "per_class": {true class: {"n", "marginals"}}, "agreement"}}}`` from
    the journal's ``heads[head]["reliance"][method]`` entries (empty when occlusion did not run)."""
    ci = {"confidence": confidence, "n_resamples": int(resamples), "seed": int(seed)}
    methods = list(dict.fromkeys(m for e in journal for h in e["heads"].values() for m in h.get("reliance", {})))
    out: dict = {}
    for method in methods:
        out[method] = {}
        for head in heads:
            rows = [(e, e["heads"][head]["reliance"][method]) for e in journal
                    if method in e["heads"].get(head, {}).get("reliance", {})]  # fmt: skip
            if not rows:
                continue
            classes = list(dict.fromkeys(str(e["true"].get(head)) for e, _ in rows))
            per_class = {}
            for cls in classes:
                members = [r for e, r in rows if str(e["true"].get(head)) == cls]
                per_class[cls] = {"n": len(members), "marginals": _marginal_means(members, ci)}
            out[method][head] = {
                "unit": rows[0][1]["unit"],
                "per_class": per_class,
                "agreement": _agreement_stats([r for _, r in rows], ci),
            }
    return out


def _ci_text(item: Mapping) -> str:
    if item.get("mean") is None:
        return "–"
    return f"{item['mean']:.3g} [{item['low']:.3g}, {item['high']:.3g}]"


def _agreement_sentence(method: str, item: Mapping) -> str:
    title = METHOD_TITLES.get(method, method)
    rho = item["spearman_rho"].get("mean")
    if rho is None:
        return f"- {title}: agreement with occlusion undefined (constant maps)."
    verdict = "agrees with" if rho >= 0.6 else "agrees only partly with" if rho >= 0.3 else "disagrees with"
    text = f"- {title}'s attention {verdict} occlusion reliance (mean ρ = {_ci_text(item['spearman_rho'])})"
    rate = item.get("aopc_above_random_rate")
    if rate is not None:
        text += f"; removing regions in its order beats a random order in {100 * rate:.0f} % of the samples"
    return text + "."


def reliance_report(reliance: Mapping, confidence: float = 0.95) -> str:
    """Markdown section: mean marginal drops per true class and the agreement of every method."""
    if not reliance:
        return ""
    level = f"{100 * confidence:g} %"
    lines = ["## Reliance (occlusion of bands, hours, components)", ""]
    for method, per_head in reliance.items():
        for head, item in per_head.items():
            lines += [f"**{METHOD_TITLES.get(method, method)} — {head}** (mean {item['unit']} drop [{level} CI])", ""]
            for kind in KINDS:
                names = list(dict.fromkeys(n for c in item["per_class"].values() for n in c["marginals"][kind]))
                if not names:
                    continue
                lines.append(f"| class | n | {kind}: " + " | ".join(names) + " |")
                lines.append("|---|---|" + "---|" * len(names))
                for cls, values in item["per_class"].items():
                    cells = [_ci_text(values["marginals"][kind].get(n, {})) for n in names]
                    lines.append(f"| {cls} | {values['n']} | " + " | ".join(cells) + " |")
                lines.append("")
            lines += [_agreement_sentence(m, a) for m, a in item["agreement"].items()] + [""]
    return "\n".join(lines) + "\n"
