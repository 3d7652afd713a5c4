"""Markdown of the confound test (:mod:`xai.trust.confound`), shared by the data-set and comparison reports."""

from __future__ import annotations

from collections.abc import Mapping

from core.names import METHOD_TITLES

RATE_FLAGS = ("quiet", "active", "disturbed")


def _ci(item: Mapping | None, key: str = "mean") -> str:
    if not item or item.get(key) is None:
        return "–"
    if item.get("low") is None:
        return f"{item[key]:.2f}"
    return f"{item[key]:.2f} [{item['low']:.2f}, {item['high']:.2f}]"


def _rate(item: Mapping) -> str:
    return "–" if not item or not item.get("n") else f"{100 * item['rate']:.0f} % ({item['k']}/{item['n']})"


def _rate_table(pre: Mapping) -> list[str]:
    lines = [
        f"Predicted-precursor rate (any {pre['head']} class but {pre['normal_class']}) by activity flag:",
        "",
        "| windows | " + " | ".join(RATE_FLAGS) + " |",
        "|---|" + "---|" * len(RATE_FLAGS),
        "| all | " + " | ".join(_rate(pre["all"][f]) for f in RATE_FLAGS) + " |",
    ]
    if pre.get("labels_known"):
        lines.append(
            f"| true class {pre['normal_class']} | "
            + " | ".join(_rate(pre["true_normal"][f]) for f in RATE_FLAGS)
            + " |"
        )
    return [*lines, ""]


def _correlation_table(confound: Mapping) -> list[str]:
    index = confound.get("index") or {}
    if not index:
        return []
    lines = [
        f"Spearman ρ of each class score with the activity index ({index['label']}, n = {index['n']}; "
        f"bootstrap {confound['options']['confidence']:.0%} CI):",
        "",
    ]
    tables = [("all windows", confound["correlation"]), ("labelled Normal", confound.get("correlation_true_normal"))]
    for where, table in tables:
        for head, per_class in (table or {}).items():
            lines.append(f"- {head}, {where}: " + "; ".join(f"{c} {_ci(v, 'rho')}" for c, v in per_class.items()))
    return [*lines, ""]


def _attention_table(confound: Mapping) -> list[str]:
    attention = confound.get("attention") or {}
    rows = []
    for method, per_head in attention.items():
        for head, groups in per_head.items():
            for band in ("ULF", "Pc5", "Pc4", "Pc3"):
                if band in groups.get("all", {}):
                    cells = [_ci(groups.get(g, {}).get(band)) for g in ("all", "quiet", "disturbed")]
                    rows.append(
                        f"| {METHOD_TITLES.get(method, method)} | {head} | {band} | " + " | ".join(cells) + " |"
                    )
    if not rows:
        return []
    return [
        "Attention recomputed on quiet windows only (mean band mass share):",
        "",
        "| method | head | band | all windows | quiet only | disturbed only |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def confound_section(results: Mapping, level: int = 2) -> list[str]:
    """The "Storms are not precursors" section of one model's results (empty without activity)."""
    confound = results.get("confound") or {}
    excluded = results.get("excluded_disturbed")
    if not confound.get("measured") and not excluded:
        return []
    lines = [f"{'#' * level} Storms are not precursors: confound test — {results.get('model')}", ""]
    if excluded:
        lines += [f"{len(excluded)} disturbed window(s) left out (`task.exclude_disturbed=true`).", ""]
    if not confound.get("measured"):
        return [*lines, f"No confound test: {confound.get('reason', 'no activity')}.", ""]
    lines += [f"- {s}" for s in confound.get("sentences", [])] + [""]
    if confound.get("precursor"):
        lines += _rate_table(confound["precursor"])
    return lines + _correlation_table(confound) + _attention_table(confound)
