"""The Markdown comparison report, written from the numbers of ``comparison.json`` only."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

from core.names import METHOD_TITLES
from xai.attention import REST
from xai.compare.reliance import reliance_section


def _method_name(method: str) -> str:
    return METHOD_TITLES.get(method, method)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _spearman_label(rho: float | None, labels: Mapping[str, float]) -> str:
    """negligible / weak / moderate / strong by the absolute value, thresholds from the rules."""
    if rho is None:
        return "undefined"
    magnitude = abs(rho)
    if magnitude >= labels["strong"]:
        return "strong"
    if magnitude >= labels["moderate"]:
        return "moderate"
    if magnitude >= labels["weak"]:
        return "weak"
    return "negligible"


def _band_text(band: Mapping) -> str:
    frange = band.get("frequency_range_hz")
    if not frange:
        return "outside all bands"
    return f"{frange[0] * 1e3:g}–{frange[1] * 1e3:g} mHz"


def report(c: Mapping, figure_errors: Sequence[str]) -> str:
    """The report's Markdown text from the (rounded) comparison ``c``; ``figure_errors`` are listed
    under Figures."""
    lines: list[str] = []
    add = lines.append
    models = list(c["models"])
    heads = c["heads"]
    method = c["figure_method"]
    add("# Grad-CAM comparison report")
    add("")
    add("Generated from `comparison.json`; every statement below is computed from the numbers there.")
    add("")
    add("## Inputs")
    add("")
    for folder in c["folders"]:
        add(f"- folder `{folder}`")
    if models:
        for model in models:
            info = c["models"][model]
            add(
                f"- **{model}**: {len(info['samples'])} sample(s); "
                f"methods {', '.join(info['methods']) or 'none'}; "
                f"target layer `{info.get('target_layer')}`; input shape {info.get('input_shape')}"
            )
    else:
        add("- no model results were found")
    for note in c["notes"]:
        add(f"- note: {note}")
    add("")
    _report_jobs(c, add)
    for head in heads:
        _report_head(c, head, models, add)
    _report_similarity(c, models, add)
    _report_attention(c, models, method, add)
    for line in reliance_section(c):
        add(line)
    _report_activity(c, add)
    _report_trust(c, models, add)
    _report_trust_pairs(c, add)
    add("## Rules used for the wording")
    add("")
    rules = c["rules"]
    add(
        f'- A band "concentrates" attention only when mean enrichment (mass share ÷ area share) is ≥ '
        f'{rules["enrichment_concentrates"]:g}; it "gets less than its area share" when ≤ '
        f"{rules['enrichment_depleted']:.2f}; bands the grid does not cover are reported as not covered."
    )
    add(
        f'- "More concentrated" requires a lower normalised entropy *and* a higher top-10 % mass share, '
        f"each by "
        f'≥ {rules["concentration_min_difference"]:g}; "finer" refers only to the native map resolution.'
    )
    add(
        "- Spearman ρ: negligible < 0.2 ≤ weak < 0.4 ≤ moderate < 0.7 ≤ strong (absolute value); "
        "top-10 % IoU "
        f"chance level ≈ {rules['top_iou_chance']:.3f}."
    )
    add("- Class agreement is by class name; ± is the population standard deviation over samples.")
    add("")
    add("## Figures")
    add("")
    for name in c["figures"]:
        add(f"- `{name}`")
    if not c["figures"]:
        add("- none written")
    for error in figure_errors:
        add(f"- **figure failed**: {error}")
    add("")
    return "\n".join(lines)


def _report_activity(c: Mapping, add) -> None:
    """The compared samples' geomagnetic activity and, per model, the confound sentences (storms are not
    precursors; :mod:`xai.trust.confound`)."""
    from geomag.activity_summary import activity_numbers

    activity = c.get("activity") or {}
    if not activity:
        return
    add("## Geomagnetic activity of the compared samples")
    add("")
    add("| sample | flag | numbers | source |")
    add("|---|---|---|---|")
    for sample, item in activity["samples"].items():
        add(f"| {sample} | {item.get('flag')} | {activity_numbers(item) or '–'} | {item.get('source')} |")
    add("")
    for model, result in activity.get("models", {}).items():
        for sentence in result.get("sentences", [])[1:]:  # after the window count of the table above
            add(f"- **{model}**: {sentence}")
    add("")


def _report_trust(c: Mapping, models: list[str], add) -> None:
    from xai.trust import trust_section
    from xai.trust.confound_report import confound_section

    add("## Can these explanations be trusted?")
    add("")
    trust = c.get("trust") or {}
    for model in sorted(set(models) | set(trust)):
        if model in trust:
            add(f"From the data-set run `{trust[model]['file']}` ({trust[model].get('selection') or 'data set'}).")
            add("")
            for line in trust_section(trust[model], level=3) + confound_section(trust[model], level=3):
                add(line)
        else:
            add(
                f"- **{model}**: not measured here. The few samples above cannot show it; run "
                f"`python main.py task=dataset model={model}` and pass its folder to `task=compare`."
            )
            add("")


def _report_trust_pairs(c: Mapping, add) -> None:
    from xai.trust.report import model_paired_lines

    for line in model_paired_lines(c.get("trust_paired") or {}):
        add(line)


def _report_jobs(c: Mapping, add) -> None:
    jobs = c["jobs"]
    add("## Jobs")
    add("")
    if not (jobs["failed"] or jobs["missing"] or jobs["unreadable"]):
        add("All jobs found under the folders produced results; no failed or missing jobs.")
    for item in jobs["failed"]:
        where = item.get("job") or item.get("file")
        what = ", ".join(f"{k} {item[k]}" for k in ("model", "sample") if item.get(k))
        add(f"- **failed** `{where}`{f' ({what})' if what else ''}: {item['error']}")
    for item in jobs["missing"]:
        where = item.get("job") or "(no job folder)"
        what = ", ".join(f"{k} {item[k]}" for k in ("model", "sample") if item.get(k))
        add(f"- **missing** `{where}`{f' ({what})' if what else ''}: {item['reason']}")
    for item in jobs["unreadable"]:
        add(f"- **unreadable results** `{item['file']}`: {item['error']}")
    for item in jobs["duplicates"]:
        add(
            f"- duplicate: sample {item['sample']} of {item['model']} found again in `{item['ignored']}`; "
            f"kept `{item['kept']}`"
        )
    for item in c["problems"]:
        add(f"- problem with {item['model']} / {item['sample']}: {item['problem']}")
    add("")


def _report_head(c: Mapping, head: str, models: list[str], add) -> None:
    preds = c["predictions"][head]
    add(f"## {head.capitalize()} head: predictions and agreement")
    add("")
    if not models:
        return
    add("| sample | true | " + " | ".join(models) + " |")
    add("|---|---|" + "---|" * len(models))
    for sample, entry in preds.items():
        cells = []
        for model in models:
            p = entry["models"].get(model)
            if p is None:
                cells.append("—")
                continue
            mark = "" if p["correct"] is None else (" ✓" if p["correct"] else " ✗")
            conf = "" if p["confidence"] is None else f" ({p['confidence']:.2f})"
            cells.append(f"{p['prediction']}{conf}{mark}")
        add(f"| {sample} | {entry['true'] or 'unknown'} | " + " | ".join(cells) + " |")
    add("")
    for model in models:
        acc = c["accuracy"][head][model]
        conf = c["confidence"][head][model]
        acc_text = (
            f"{acc['correct']}/{acc['n']} correct ({_pct(acc['accuracy'])})"
            if acc["n"]
            else "no samples with a known true class"
        )
        if acc["unknown_truth"]:
            acc_text += f", {acc['unknown_truth']} without a known true class"
        conf_text = (
            "no confidences"
            if conf["mean"] is None
            else f"mean confidence {conf['mean']:.2f} ± {conf['std']:.2f} (n = {conf['n']})"
        )
        add(f"- **{model}**: {acc_text}; {conf_text}.")
    for sample, entry in preds.items():
        if entry.get("true_conflict"):
            add(f"- the models' results disagree on the true {head} class of {sample}: {entry['true_conflict']}")
    add("")
    _report_agreement(c, head, models, add)


def _report_agreement(c: Mapping, head: str, models: list[str], add) -> None:
    """Pairwise and all-model class agreement of one head, and the samples agreed on but wrong."""
    if len(models) < 2:
        add("Agreement needs at least 2 models; only one was found.")
        add("")
        return
    agreement = c["agreement"][head]
    for pair in agreement["pairs"]:
        a, b = pair["models"]
        if not pair["n"]:
            add(f"- {a} and {b} share no sample for this head.")
            continue
        add(
            f"- {a} and {b} predict the same {head} class on {pair['agree']} of {pair['n']} shared samples "
            f"({_pct(pair['rate'])}); on {pair['agree_wrong']} of these the shared class is wrong."
        )
    everyone = agreement["all_models"]
    subject = "both models" if len(models) == 2 else f"all {len(models)} models"
    if len(models) > 2 and everyone["n_common"]:
        add(
            f"- {subject} agree on {everyone['agree']} of {everyone['n_common']} samples they all have "
            f"({_pct(everyone['rate'])})."
        )
    add("")
    wrong = everyone["agree_wrong_samples"]
    add(f"**Agreed but wrong ({head})**: {len(wrong)} sample(s).")
    for item in wrong:
        add(
            f"- {subject} predicted {item['prediction']} for {item['sample']} (true: {item['true']}) — "
            "agreed, but wrong."
        )
    if everyone["agree"] and not wrong:
        add(f"- every sample on which {subject} agree is classified correctly or has no known true class.")
    add("")


def _report_similarity(c: Mapping, models: list[str], add) -> None:
    add("## Heatmap similarity on the common physical grid")
    add("")
    if len(models) < 2:
        add("Heatmap similarity needs at least 2 models.")
        add("")
        return
    any_pair = False
    for head in c["heads"]:
        for method, pairs in c["similarity"].get(head, {}).items():
            for name, pair in pairs.items():
                any_pair = True
                rho, iou = pair["spearman"], pair["top_iou"]
                add(
                    f"- {_method_name(method)}, {head}, {name}: mean Spearman ρ = {_num(rho['mean'])} "
                    f"({_spearman_label(rho['mean'], c['rules']['spearman_labels'])}, n = {rho['n']}), "
                    f"mean top-10 % IoU = {_num(iou['mean'])} "
                    f"(chance ≈ {c['rules']['top_iou_chance']:.3f})."
                )
                for sample, values in pair["per_sample"].items():
                    if values.get("error"):
                        add(f"  - {sample}: not comparable ({values['error']})")
                        continue
                    same = values.get("same_explained_class")
                    cls = (
                        ""
                        if same is None
                        else (
                            " (same explained class)"
                            if same
                            else " (different explained classes: "
                            + ", ".join(f"{m} {k}" for m, k in values["explained_class"].items())
                            + ")"
                        )
                    )
                    add(f"  - {sample}: ρ = {_num(values['spearman'])}, IoU = {_num(values['top_iou'])}{cls}")
    if not any_pair:
        add("No pair of models has heatmaps of the same method for the same sample.")
    add("")


def _report_attention(c: Mapping, models: list[str], figure_method: str, add) -> None:
    add("## Attention in physical bands")
    add("")
    add(
        "Mass share per band (mean over samples) with the enrichment (mass share ÷ area share of the band "
        "on that model's grid) in brackets; bands overlap (ULF contains Pc5), `rest` is the mass outside all "
        "bands; 'not covered' = no row of the model's grid lies in the band."
    )
    add("")
    rules = c["rules"]
    high, low = rules["enrichment_concentrates"], rules["enrichment_depleted"]
    for head in c["heads"]:
        methods = sorted(
            {m for model in models for m in c["attention"].get(model, {}).get(head, {})},
            key=lambda m: (m != figure_method, m),
        )
        for method in methods:
            add(f"### {_method_name(method)}, {head} head")
            add("")
            present = [m for m in models if method in c["attention"].get(m, {}).get(head, {})]
            summaries = {m: c["attention"][m][head][method]["summary"] for m in present}
            _report_band_table(summaries, add)
            add("")
            for model in present:
                _report_model_bands(model, method, summaries[model], high, low, add)
            splits = sorted({s["components"] for s in summaries.values() if isinstance(s.get("components"), str)})
            for text in splits:
                add(f"- mass per component: {text}.")
            _report_concentration(c, present, head, method, add)
            add("")


def _report_band_table(summaries: Mapping[str, Mapping], add) -> None:
    names: list[str] = []
    for summary in summaries.values():
        names += [n for n in summary["bands"] if n not in names]
    header = [
        f"{n} ({_band_text(b)})" if n != REST else REST
        for n in names
        for b in [next(s["bands"][n] for s in summaries.values() if n in s["bands"])]
    ]
    add(
        "| model | n | "
        + " | ".join(header)
        + " | entropy (own grid) | top-10 % (own grid) | centroid (mean) | native cells |"
    )
    add("|---|---|" + "---|" * (len(names) + 4))
    for model, summary in summaries.items():
        cells = []
        for name in names:
            band = summary["bands"].get(name)
            if band is None:
                cells.append("—")
            elif not band.get("covered"):
                cells.append("not covered")
            else:
                mass, enrich = band["mass_share"]["mean"], band["enrichment"]["mean"]
                cells.append("n/a" if mass is None or enrich is None else f"{_pct(mass)} ({enrich:.2f}×)")
        centroid_f = summary.get("centroid_frequency_hz_geometric_mean")
        hours = (summary.get("centroid_hours_before") or {}).get("mean")
        centroid = "n/a" if centroid_f is None or hours is None else f"{centroid_f * 1e3:.2f} mHz, {hours:.1f} h"
        native = summary.get("native_resolution")
        native_text = f"{native['frequency_cells']}×{native['time_cells']}" if native else "n/a"
        cells += [
            _num(summary["normalized_entropy"]["mean"], ".3f"),
            _pct(summary["top_mass_share"]["mean"]),
            centroid,
            native_text,
        ]
        add(f"| {model} | {summary['n']} | " + " | ".join(cells) + " |")


def _report_model_bands(model: str, method: str, summary: Mapping, high: float, low: float, add) -> None:
    """One sentence on the first (hypothesis) band, plus any other band that passes the threshold."""
    name = _method_name(method)
    n = summary["n"]
    if summary["empty_maps"]:
        add(f"- {model} {name}: {summary['empty_maps']} of {n} map(s) are all zero (no attention to locate).")
    bands = [(k, v) for k, v in summary["bands"].items() if k != REST]
    uncovered = [f"{k} ({_band_text(v)})" for k, v in bands if not v.get("covered")]
    for index, (band_name, band) in enumerate(bands):
        if not band.get("covered"):
            continue
        mass, enrich = band["mass_share"]["mean"], band["enrichment"]["mean"]
        if mass is None or enrich is None:
            continue
        counts = f"enrichment ≥ {high:g} in {band['samples_enriched']} of {band['samples_with_numbers']} sample(s)"
        if index == 0:
            text = (
                f"- {model} {name} places {_pct(mass)} of its mass in the {band_name} band "
                f"({_band_text(band)}), "
                f"{enrich:.2f}× its area share of {_pct(band['area_share']['mean'])} ({counts})"
            )
            if enrich >= high:
                add(text + f" — attention concentrates in the {band_name} band ({enrich:.2f}× ≥ {high:g}).")
            elif enrich <= low:
                add(text + f" — the {band_name} band gets less than its area share ({enrich:.2f}× ≤ {low:.2f}).")
            else:
                add(text + f" — attention does not concentrate in the {band_name} band ({enrich:.2f}× < {high:g}).")
        elif enrich >= high:
            add(
                f"- {model} {name}: attention also concentrates in the {band_name} band "
                f"({_band_text(band)}): "
                f"{_pct(mass)} of the mass, {enrich:.2f}× its area share ({counts})."
            )
    if uncovered:
        add(f"- {model} {name}: not covered by this model's grid: {', '.join(uncovered)}.")
    comps = summary.get("components")
    if isinstance(comps, dict):
        parts = ", ".join(f"{k} {_pct(v['mean'])}" for k, v in comps.items())
        add(f"- {model} {name} mass per component: {parts}.")


def _report_concentration(c: Mapping, models: list[str], head: str, method: str, add) -> None:
    """Concentration verdicts on the pair's common grid (entropy and top-cell share depend on the cell
    count, so own-grid numbers of different grids are not compared)."""
    name = _method_name(method)
    delta = c["rules"]["concentration_min_difference"]
    summaries = {m: c["attention"][m][head][method]["summary"] for m in models}
    pairs = c["similarity"].get(head, {}).get(method, {})
    for a, b in itertools.combinations(models, 2):
        pair = pairs.get(f"{a} vs {b}") or {}
        conc = pair.get("concentration_on_common_grid") or {}
        ea = (conc.get(a) or {}).get("normalized_entropy", {}).get("mean")
        eb = (conc.get(b) or {}).get("normalized_entropy", {}).get("mean")
        ta = (conc.get(a) or {}).get("top_mass_share", {}).get("mean")
        tb = (conc.get(b) or {}).get("top_mass_share", {}).get("mean")
        if None in (ea, eb, ta, tb):
            add(f"- {name}, {head}: concentration of {a} vs {b} not comparable (no shared non-empty maps).")
        else:
            grid = next(iter(pair["per_sample"].values())).get("common_grid") or {}
            numbers = (
                f"on the common {grid.get('rows')}×{grid.get('cols')} grid: normalised entropy {ea:.3f} vs "
                f"{eb:.3f}; top-10 % cells hold {_pct(ta)} vs {_pct(tb)} of the mass"
            )
            if abs(ea - eb) < delta and abs(ta - tb) < delta:
                add(f"- {name}, {head}: {a} and {b} are similarly concentrated ({numbers}).")
            elif ea <= eb - delta and ta >= tb + delta:
                add(f"- {name}, {head}: {a} is more concentrated than {b} ({numbers}).")
            elif ea >= eb + delta and ta <= tb - delta:
                add(f"- {name}, {head}: {a} is more distributed than {b} ({numbers}).")
            else:
                add(f"- {name}, {head}: {a} vs {b}: the two concentration measures disagree ({numbers}).")
        _report_resolution(
            a, b, summaries[a].get("native_resolution"), summaries[b].get("native_resolution"), name, add
        )
    if len(models) == 1:
        native = summaries[models[0]].get("native_resolution")
        if native:
            add(
                f"- {models[0]} {name} native map: {native['frequency_cells']}×{native['time_cells']} cells "
                f"({native['hours_per_cell']:.2f} h per cell)."
            )


def _report_resolution(a: str, b: str, na: Mapping | None, nb: Mapping | None, name: str, add) -> None:
    if not na or not nb:
        return
    size = f"{na['frequency_cells']}×{na['time_cells']} vs {nb['frequency_cells']}×{nb['time_cells']} cells"
    parts = []
    for key, unit, label in (
        ("hours_per_cell", "h", "time"),
        ("decades_per_cell", "decades", "frequency"),
        ("hz_per_cell", "Hz", "frequency"),
    ):
        va, vb = na.get(key), nb.get(key)
        if va is None or vb is None:
            continue
        if math.isclose(va, vb, rel_tol=1e-6):
            parts.append(f"the same in {label} ({va:.3g} {unit} per cell)")
        else:
            finer = a if va < vb else b
            parts.append(f"{finer} is finer in {label} ({va:.3g} vs {vb:.3g} {unit} per cell)")
    add(f"- native {name} resolution, {a} vs {b} ({size}): " + "; ".join(parts) + ".")
