"""Confound test: do a model's predictions follow geomagnetic activity instead of earthquake precursors?

Geomagnetic storms and substorms, not earthquakes, explain most claimed ULF anomalies (Masci 2011, PEPI 187:
Kp explains 7 of 9 published cases; Thomas, Love & Johnston 2009, GRL 36), so every window carries an
activity flag (:mod:`geomag.activity`) and this module measures, per head:

* the **Spearman rank correlation** (Spearman 1904) of each class score with the activity index (the local
  K, else Kp, else -Dst, else the grid proxy z), with a percentile-bootstrap confidence interval over
  windows (Efron & Tibshirani 1993);
* the **predicted-precursor rate** (any magnitude class but ``Normal``) on quiet, active and disturbed
  windows, also among the windows whose true class is ``Normal`` when labels exist (there every precursor
  prediction is a false alarm, so a storm-driven model shows up even when quiet windows hold true precursors);
* the **attention statistics** (band mass shares, :mod:`xai.attention`) recomputed on quiet windows only.

Sentences are generated from these numbers (:func:`confound_sentences`); the thresholds are in
:class:`ConfoundOptions`. No pictures here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from xai.metrics.statistics import bootstrap_ci

log = logging.getLogger(__name__)

FLAGS = ("quiet", "active", "disturbed", "unknown")
#: Classes named per head in a correlation sentence (the strongest; the rest are in the table).
SENTENCE_CLASSES = 3
#: The per-window activity numbers kept in the results (``windows``).
WINDOW_KEYS = ("flag", "k", "kp", "dst_nT", "proxy_z", "source")
NORMAL = "Normal"
PRECURSOR_HEAD = "magnitude"
#: Activity indices in order of preference: (name, summary key, sign so that larger = more disturbed, label).
INDICES = (
    ("K", "k", 1.0, "local K index"),
    ("Kp", "kp", 1.0, "Kp (user)"),
    ("-Dst", "dst_nT", -1.0, "-Dst in nT (user)"),
    ("proxy z", "proxy_z", 1.0, "grid proxy z (not a K index)"),
)


@dataclass(frozen=True)
class ConfoundOptions:
    """Bootstrap settings and the thresholds of the sentences."""

    confidence: float = 0.95
    bootstrap_resamples: int = 1000
    seed: int = 0
    min_windows: int = 5  # per group, to compare precursor rates
    follows_rho: float = 0.3  # |Spearman| with a CI excluding 0: a class score "follows" activity
    follows_rate_gap: float = 0.2  # precursor rate on disturbed minus quiet windows


def activity_index(rows: Sequence[Mapping]) -> tuple[dict, np.ndarray]:
    """``(index description, values)``: the first index of :data:`INDICES` known for at least half of the
    windows (NaN where unknown); an empty description when none is."""
    activities = [r.get("activity") or {} for r in rows]
    for name, key, sign, label in INDICES:
        values = np.array([np.nan if a.get(key) is None else sign * float(a[key]) for a in activities])
        if rows and np.isfinite(values).sum() >= max(3, len(rows) / 2):
            return {"name": name, "label": label, "n": int(np.isfinite(values).sum())}, values
    return {}, np.full(len(rows), np.nan)


def spearman_ci(x: Sequence[float], y: Sequence[float], options: ConfoundOptions) -> dict:
    """Spearman's rho of the finite pairs and its percentile-bootstrap CI (pairs resampled)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"rho": None, "low": None, "high": None, "n": n}
    rho = float(stats.spearmanr(x, y).statistic)
    rng = np.random.default_rng(options.seed)
    idx = rng.integers(0, n, size=(int(options.bootstrap_resamples), n))
    rx, ry = stats.rankdata(x[idx], axis=1), stats.rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (rx * ry).sum(axis=1) / np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    alpha = (1.0 - float(options.confidence)) / 2.0
    low, high = np.nanquantile(boot, [alpha, 1.0 - alpha])
    return {"rho": rho, "low": float(low), "high": float(high), "n": n}


def _probabilities(head_entry: Mapping, classes: Sequence[str]) -> dict[str, float]:
    probs = head_entry.get("probabilities")
    if isinstance(probs, Mapping):
        return {str(c): float(p) for c, p in probs.items()}
    return {c: float(p) for c, p in zip(classes, probs or [])}


def _rate(predictions: Sequence[str], normal: str) -> dict:
    k = sum(p != normal for p in predictions)
    n = len(predictions)
    return {"rate": (k / n) if n else None, "k": k, "n": n}


def _precursor_rates(rows: Sequence[Mapping], flags: Sequence[str], head: str) -> dict:
    """Predicted-precursor rate per flag, on all windows and on those whose true class is Normal."""
    predictions = [r["heads"][head]["prediction"] for r in rows]
    truth = [(r.get("true") or {}).get(head) for r in rows]
    out: dict = {"head": head, "normal_class": NORMAL, "all": {}, "true_normal": {}}
    for flag in FLAGS:
        chosen = [i for i, f in enumerate(flags) if f == flag]
        out["all"][flag] = _rate([predictions[i] for i in chosen], NORMAL)
        out["true_normal"][flag] = _rate([predictions[i] for i in chosen if truth[i] == NORMAL], NORMAL)
        counts: dict[str, int] = {}
        for i in chosen:
            counts[predictions[i]] = counts.get(predictions[i], 0) + 1
        out.setdefault("predicted_classes", {})[flag] = counts
    out["labels_known"] = any(t is not None for t in truth)
    return out


def _attention(rows: Sequence[Mapping], flags: Sequence[str], heads: Sequence[str], options: ConfoundOptions) -> dict:
    """Mean band mass shares (bootstrap CIs) per method and head on all, quiet and disturbed windows."""
    out: dict = {}
    groups = {"all": list(range(len(rows)))}
    groups.update({flag: [i for i, f in enumerate(flags) if f == flag] for flag in ("quiet", "disturbed")})
    for head in heads:
        methods = sorted({m for r in rows for m in (r["heads"][head].get("bands") or {})})
        for method in methods:
            per_group = {}
            for group, chosen in groups.items():
                shares = [(rows[i]["heads"][head].get("bands") or {}).get(method) or {} for i in chosen]
                bands = sorted({b for s in shares for b in s if isinstance(s.get(b), (int, float))})
                per_group[group] = {
                    b: bootstrap_ci(
                        [s.get(b) if isinstance(s.get(b), (int, float)) else np.nan for s in shares],
                        confidence=options.confidence,
                        n_resamples=int(options.bootstrap_resamples),
                        seed=options.seed,
                    )
                    for b in bands
                }
            out.setdefault(method, {})[head] = per_group
    return out


def confound_test(
    rows: Sequence[Mapping], classes: Mapping[str, Sequence[str]], options: ConfoundOptions | None = None
) -> dict:
    """The confound test of one model's windows (see the module docstring).

    ``rows``: one per window with ``activity`` (a :func:`geomag.activity_summary.activity_summary`),
    ``true`` (class per head) and ``heads[head]`` with ``prediction``, ``probabilities`` (a list in the
    order of ``classes[head]`` or a class -> p mapping) and optionally ``bands`` (method -> band shares).
    """
    options = options or ConfoundOptions()
    rows = [r for r in rows if r.get("activity")]
    if not rows:
        return {"measured": False, "reason": "no window carries geomagnetic activity"}
    flags = [str(r["activity"].get("flag") or "unknown") for r in rows]
    index, values = activity_index(rows)
    heads = [h for h in classes if all(h in r["heads"] for r in rows)]
    result: dict = {
        "measured": True,
        "n": len(rows),
        "flags": {flag: flags.count(flag) for flag in FLAGS},
        "sources": sorted({str(r["activity"].get("source")) for r in rows}),
        "index": index,
        "correlation": {},
        "options": {k: getattr(options, k) for k in options.__dataclass_fields__},
        "windows": [
            {"sample": r.get("sample"), **{k: r["activity"].get(k) for k in WINDOW_KEYS if k in r["activity"]}}
            for r in rows
        ],
    }
    no_event = np.array([(r.get("true") or {}).get(PRECURSOR_HEAD) == NORMAL for r in rows])
    for head in heads:
        probs = [_probabilities(r["heads"][head], classes[head]) for r in rows]
        scores = {cls: np.array([p.get(cls, np.nan) for p in probs]) for cls in classes[head]}
        result["correlation"][head] = {cls: spearman_ci(values, s, options) for cls, s in scores.items()}
        if no_event.sum() >= 2 * options.min_windows:
            result.setdefault("correlation_true_normal", {})[head] = {
                cls: spearman_ci(values[no_event], s[no_event], options) for cls, s in scores.items()
            }
    precursor_head = PRECURSOR_HEAD if PRECURSOR_HEAD in heads else None
    if precursor_head and NORMAL in classes[precursor_head]:
        result["precursor"] = _precursor_rates(rows, flags, precursor_head)
    result["attention"] = _attention(rows, flags, heads, options)
    result["sentences"] = confound_sentences(result)
    return result


# --------------------------------------------------------------------------- sentences
def _pct(rate: Mapping) -> str:
    return f"{100 * rate['rate']:.0f} % ({rate['k']}/{rate['n']})"


def _follows(corr: Mapping, options: Mapping) -> bool:
    if corr.get("rho") is None or corr.get("low") is None:
        return False
    significant = corr["low"] > 0 or corr["high"] < 0
    return significant and abs(corr["rho"]) >= float(options["follows_rho"])


def _rate_sentence(result: Mapping) -> str | None:
    """The precursor-rate sentence: disturbed against quiet windows (true-Normal ones when labels exist)."""
    pre, options = result.get("precursor"), result["options"]
    if not pre:
        return None
    minimum = int(options["min_windows"])
    labelled = pre["labels_known"] and min(pre["true_normal"][f]["n"] for f in ("quiet", "disturbed")) >= minimum
    rates = pre["true_normal"] if labelled else pre["all"]
    which = " labelled Normal" if labelled else ""
    quiet, disturbed = rates["quiet"], rates["disturbed"]
    if not disturbed["n"]:
        return f"No disturbed window{which}: no predicted-precursor rates to compare."
    if disturbed["n"] < minimum or quiet["n"] < minimum:
        return (
            f"Only {disturbed['n']} disturbed and {quiet['n']} quiet window(s){which}: too few (< {minimum}) "
            "to compare the predicted-precursor rates."
        )
    text = (
        f"On disturbed windows{which} the model predicts a precursor in {_pct(disturbed)} against "
        f"{_pct(quiet)} on quiet windows{which}"
    )
    if disturbed["rate"] - quiet["rate"] >= float(options["follows_rate_gap"]):
        counts = {c: n for c, n in pre["predicted_classes"]["disturbed"].items() if c != NORMAL}
        top = max(counts, key=counts.get) if counts else None
        table = result.get("correlation_true_normal") if labelled else None
        corr = (table or result["correlation"]).get(pre["head"], {}).get(top, {}) if top else {}
        evidence = ""
        if corr.get("rho") is not None and corr.get("low") is not None:
            evidence = (
                f" (Spearman ρ of its score with {result['index'].get('name')} = {corr['rho']:.2f} "
                f"[{corr['low']:.2f}, {corr['high']:.2f}])"
            )
        return f"{text}: its {top} class follows geomagnetic activity{evidence}."
    if quiet["rate"] - disturbed["rate"] >= float(options["follows_rate_gap"]):
        return f"{text}: it predicts precursors less often when the field is disturbed."
    gap = 100 * float(options["follows_rate_gap"])
    return f"{text}: the rates differ by less than {gap:.0f} points, no sign that storms drive its precursor calls."


def confound_sentences(result: Mapping) -> list[str]:
    """Plain-language findings, each computed from the numbers of :func:`confound_test`."""
    if not result.get("measured"):
        return [f"No confound test: {result.get('reason')}."]
    flags = result["flags"]
    sentences = [
        f"{result['n']} windows: {flags['quiet']} quiet, {flags['active']} active, {flags['disturbed']} disturbed"
        + (f", {flags['unknown']} unknown" if flags["unknown"] else "")
        + f" (from: {'; '.join(result['sources'])})."
    ]
    rate = _rate_sentence(result)
    if rate:
        sentences.append(rate)
    index = result.get("index") or {}
    if not index:
        sentences.append("No activity index is known for most windows: no rank correlation.")
        return sentences
    tables = [("", result["correlation"])]
    if result.get("correlation_true_normal"):
        tables.append((f" on windows labelled {NORMAL}", result["correlation_true_normal"]))
    for where, table in tables:
        for head, per_class in table.items():
            sentences.append(_correlation_sentence(head, per_class, index, where, result["options"]))
    return sentences


def _correlation_sentence(head: str, per_class: Mapping, index: Mapping, where: str, options: Mapping) -> str:
    if all(v.get("rho") is None for v in per_class.values()):
        return f"{head} head{where}: too few windows (or no spread) for a rank correlation with the {index['label']}."
    following = [(c, v) for c, v in per_class.items() if _follows(v, options)]
    if not following:
        return (
            f"{head} head{where}: no class score follows the {index['label']} "
            f"(|ρ| ≥ {options['follows_rho']:g} with a CI excluding 0)."
        )
    following.sort(key=lambda item: -abs(item[1]["rho"]))
    parts = [
        f"the {c} score {'rises' if v['rho'] > 0 else 'falls'} with it (ρ = {v['rho']:.2f} "
        f"[{v['low']:.2f}, {v['high']:.2f}], n = {v['n']})"
        for c, v in following[:SENTENCE_CLASSES]
    ]
    more = len(following) - SENTENCE_CLASSES
    tail = f"; {more} more class(es) in the table" if more > 0 else ""
    return f"{head} head{where}, against the {index['label']}: " + "; ".join(parts) + tail + "."


# --------------------------------------------------------------------------- data-set runs
def journal_rows(journal: Sequence[Mapping]) -> list[Mapping]:
    """Journal entries of a data-set run as confound rows (the true class per head from each head)."""
    rows = []
    for entry in journal:
        true = {h: item.get("true") for h, item in entry.get("heads", {}).items()}
        rows.append({**entry, "true": {**true, **(entry.get("true") or {})}})
    return rows


def drop_disturbed(records: Sequence, activities: Mapping[str, Mapping | None]) -> tuple[list, list[str]]:
    """``(records without the disturbed windows, names of those dropped)`` (``task.exclude_disturbed``)."""
    kept, dropped = [], []
    for record in records:
        flag = (activities.get(record.name) or {}).get("flag")
        (dropped if flag == "disturbed" else kept).append(record if flag != "disturbed" else record.name)
    return kept, dropped


def run_confound(journal: Sequence[Mapping], context: object, options: object) -> dict:
    """The confound test of a finished data-set run (``context``: its ``ExplainContext``; ``options``: its
    ``DatasetOptions``, for the confidence level, resamples and seed)."""
    bundle = context.bundle
    settings = ConfoundOptions(
        confidence=float(getattr(options, "confidence", 0.95)),
        bootstrap_resamples=int(getattr(options, "bootstrap_resamples", 1000)),
        seed=int(getattr(options, "seed", 0)),
    )
    classes = {head: list(bundle.classes(head)) for head in context.heads}
    return confound_test(journal_rows(journal), classes, settings)
