"""A compact, labelled summary of a window's geomagnetic activity for results files, figures and reports.

The flag of :mod:`geomag.activity` rests on different numbers depending on the input: the **local K index**
of raw 1-s data (FMI method, Sucksdorff et al. 1991; or the demo generator's ``activity_k`` column, computed
the same way from the raw window), the **user's Kp/Dst** (:mod:`geomag.indices`) or, for image/array inputs
without either, the **grid proxy** (:mod:`geomag.disturbance_proxy`, not a K index). Every summary names its
source so that a reader never mistakes a proxy for an index.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from core.jsonvalues import json_value
from geomag.activity import WindowActivity

logger = logging.getLogger(__name__)

SUMMARY_KEYS = (
    "flag",
    "basis",
    "reasons",
    "source",
    "k",
    "k9_nT",
    "k9_source",
    "kp",
    "dst_nT",
    "indices_source",
    "proxy_z",
    "window_start",
    "window_end",
    "station",
    "notes",
)


def source_label(activity: WindowActivity | Mapping) -> str:
    """Where the flag's numbers come from, e.g. ``"local K index (K9 500 nT from the file)"``."""
    data = activity.to_dict() if isinstance(activity, WindowActivity) else dict(activity)
    basis = list(data.get("basis") or [])
    parts = []
    if "K" in basis:
        if data.get("k9_source"):
            parts.append(f"local K index (K9 {data.get('k9_nT'):g} nT from the {data['k9_source']})")
        else:
            parts.append("local K index (metadata column)")
    if "Kp" in basis or "Dst" in basis:
        parts.append(f"user {'/'.join(b for b in basis if b in ('Kp', 'Dst'))} ({data.get('indices_source') or 'CSV'})")
    if "proxy" in basis:
        parts.append("grid proxy, not a K index (z against this data set)")
    return " + ".join(parts) or "no activity numbers"


def activity_summary(activity: WindowActivity) -> dict:
    """The flag, its numbers and their source as plain JSON (``k_intervals`` kept for raw files)."""
    data = activity.to_dict()
    summary = {key: data.get(key) for key in SUMMARY_KEYS if key in data}
    summary["source"] = source_label(data)
    summary["proxy_z"] = (data.get("proxy") or {}).get("z")
    if data.get("proxy"):
        summary["proxy_limits"] = data["proxy"].get("limits")
    if data.get("k_intervals"):
        summary["k_intervals"] = [{"start": r["start"], "k": r["k"]} for r in data["k_intervals"]]
    return json_value({k: summary.get(k) for k in (*SUMMARY_KEYS, *summary)}, decimals=4)


def activity_numbers(summary: Mapping) -> str:
    """The numbers behind a flag, e.g. ``"K=8"``, ``"Kp=9, Dst=-300 nT"`` or ``"proxy z=4.1"``."""
    parts = []
    if summary.get("k") is not None:
        parts.append(f"K={summary['k']}")
    if summary.get("kp") is not None:
        parts.append(f"Kp={summary['kp']:g}")
    if summary.get("dst_nT") is not None:
        parts.append(f"Dst={summary['dst_nT']:g} nT")
    if not parts and summary.get("proxy_z") is not None:
        parts.append(f"proxy z={summary['proxy_z']:.1f}")
    return ", ".join(parts)


def activity_text(summary: Mapping | None) -> str | None:
    """One line for a figure's title block: ``"activity: disturbed (K=8; local K index ...)"``."""
    if not summary:
        return None
    numbers = activity_numbers(summary)
    detail = "; ".join(p for p in (numbers, summary.get("source")) if p)
    return f"activity: {summary.get('flag', 'unknown')}" + (f" ({detail})" if detail else "")


def record_activity(source: object, record: object, config: object | None = None) -> dict | None:
    """The summary of one sample's activity (``source.activity(record, config)``); None when the data source
    has no activity, and an ``unknown`` flag with the reason when its numbers cannot be had (logged)."""
    from core.errors import PrecursorError

    getter = getattr(source, "activity", None)
    if getter is None:
        return None
    try:
        return activity_summary(getter(record, config))
    except PrecursorError as exc:
        logger.warning("%s: no geomagnetic activity (%s)", getattr(record, "name", record), exc)
        return json_value({"flag": "unknown", "basis": [], "reasons": [str(exc)], "source": "no activity numbers"})
