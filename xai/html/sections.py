"""Summaries the static sections of the pages show: per-model accuracy and mean band attention of an
explain run, the comparison's wording labels, and the figure downloads grouped by figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xai.html.files import href
from xai.html.rows import BAND_NAMES


def _mean(values: Sequence[Any]) -> float | None:
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return float(np.mean(numbers)) if numbers else None


def head_accuracy(samples: Sequence[Mapping], heads: Sequence[str]) -> list[dict]:
    """Per head: correct / known, accuracy and mean confidence over an explain run's samples."""
    out = []
    for head in heads:
        infos = [s["heads"][head] for s in samples if isinstance((s.get("heads") or {}).get(head), Mapping)]
        known = [i.get("correct") for i in infos if i.get("correct") is not None]
        out.append(
            {
                "head": head,
                "n": len(infos),
                "known": len(known),
                "correct": sum(bool(k) for k in known),
                "accuracy": (sum(bool(k) for k in known) / len(known)) if known else None,
                "confidence": _mean([i.get("confidence") for i in infos]),
            }
        )
    return out


def band_means(samples: Sequence[Mapping], heads: Sequence[str], methods: Sequence[str]) -> list[dict]:
    """Per head and method: mean mass share and enrichment of each band over an explain run's samples."""
    out = []
    for head in heads:
        for method in methods:
            summaries = [((s.get("heads") or {}).get(head) or {}).get("attention", {}).get(method) for s in samples]
            summaries = [x for x in summaries if isinstance(x, Mapping)]
            if not summaries:
                continue
            bands = []
            for name in BAND_NAMES:
                items = [(x.get("bands") or {}).get(name) or {} for x in summaries]
                covered = [i for i in items if i.get("covered")]
                bands.append(
                    {
                        "name": name,
                        "covered": bool(covered),
                        "range": _band_range(items),
                        "mass_share": _mean([i.get("mass_share") for i in covered]),
                        "area_share": _mean([i.get("area_share") for i in covered]),
                        "enrichment": _mean([i.get("enrichment") for i in covered]),
                    }
                )
            out.append(
                {
                    "head": head,
                    "method": method,
                    "n": len(summaries),
                    "empty": sum(1 for x in summaries if x.get("empty")),
                    "bands": bands,
                }
            )
    return out


def _band_range(items: Sequence[Mapping]) -> str:
    span = next((i.get("frequency_range_hz") for i in items if i.get("frequency_range_hz")), None)
    return "outside all bands" if not span else f"{span[0] * 1e3:g}–{span[1] * 1e3:g} mHz"


def band_claim(enrichment: Any, rules: Mapping) -> str:
    """The comparison report's wording for a band's mean enrichment (thresholds from its rules)."""
    if not isinstance(enrichment, (int, float)):
        return "n/a"
    if enrichment >= float(rules.get("enrichment_concentrates", 1.5)):
        return "concentrates"
    if enrichment <= float(rules.get("enrichment_depleted", 1 / 1.5)):
        return "less than its area share"
    return "not preferred"


def spearman_label(rho: Any, rules: Mapping) -> str:
    """negligible / weak / moderate / strong for a Spearman ρ (the comparison's thresholds)."""
    if not isinstance(rho, (int, float)):
        return "undefined"
    labels = rules.get("spearman_labels") or {"negligible": 0.0, "weak": 0.2, "moderate": 0.4, "strong": 0.7}
    name = "negligible"
    for label, bound in sorted(labels.items(), key=lambda kv: kv[1]):
        if abs(rho) >= bound:
            name = label
    return name


def figure_groups(folder: Path, names: Sequence[str], page_folder: Path | None = None) -> list[dict]:
    """Figures grouped by stem: ``{"stem", "image" (PNG link or None), "downloads": [{"label", "href"}]}``.

    Only files that exist are listed; a PNG is shown on the page, every format is a download.
    """
    page_folder = page_folder or folder
    groups: dict[str, dict] = {}
    for name in names:
        path = Path(folder) / name
        if not path.is_file():
            continue
        group = groups.setdefault(path.stem, {"stem": path.stem, "image": None, "downloads": []})
        link = href(path, page_folder)
        if path.suffix.lower() == ".png":
            group["image"] = link
        group["downloads"].append({"label": path.suffix.lstrip(".").upper(), "href": link, "name": path.name})
    for group in groups.values():
        group["downloads"].sort(key=lambda d: d["label"] != "PDF")
    return [groups[stem] for stem in sorted(groups)]
