"""Markdown of the data-set results: the "Can these explanations be trusted?" section (shared by
the data-set report and the comparison report) and the data-set report itself."""

from __future__ import annotations

from collections.abc import Mapping

from core.names import METHOD_TITLES
from xai.attention import BANDS
from xai.trust.confound_report import confound_section


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
    conf = results.get("confidence", 0.95)
    lines.append(
        f"{results.get('n_samples')} samples; brackets are bootstrap {conf:.0%} confidence intervals. "
        "Localisation is against the planted precursor mask (Arras et al. 2022); deletion/insertion "
        "(Petsiuk et al. 2018) replace grid cells by the per-frequency median background; randomisation "
        "(Adebayo et al. 2018) re-draws the model's weights from the top down."
    )
    lines.append("")
    lines.extend(decision_lines(trust))
    for head in results.get("heads", []):
        lines.append(f"{hashes}# {head} head")
        lines.append("")
        lines.extend(_head_references(trust, head))
        lines.append("")
        lines.extend(_method_table(results, trust, head))
        lines.append("")
        lines.extend(_by_class_table(results, trust, head))
        for method in results.get("methods", []):
            lines.extend(check_lines(trust["verdicts"][method][head], METHOD_TITLES.get(method, method)))
        lines.append("")
        lines.extend(paired_lines(trust, head))
    return lines


def decision_lines(trust: Mapping) -> list[str]:
    """How checks are decided, what each cost on this machine, and which did not run."""
    decision = trust.get("decision") or {}
    lines = []
    if decision:
        lines.append(
            f"Each check {decision['rule']}; a check on fewer than {decision['min_samples']} samples is never "
            f'decided. "≈ N samples would likely decide it" beside an inconclusive check: {decision["n_needed"]}.'
        )
    cost = trust.get("cost") or {}
    if cost:
        parts = [
            f"{name} {item['seconds']:.1f} s for {item['samples']} samples"
            + (f" ({item['seconds'] / item['samples']:.2f} s per sample)" if item.get("samples") else "")
            for name, item in cost.items()
        ]
        lines.append("Cost on this machine (this process, all methods and heads): " + "; ".join(parts) + ".")
    missing = {
        name: trust[name].get("reason")
        for name in ("localisation", "faithfulness", "randomisation")
        if not (trust.get(name) or {}).get("measured", True)
    }
    if missing:
        lines.append("Not run: " + "; ".join(f"{name} ({reason})" for name, reason in missing.items()) + ".")
    return [*lines, ""] if lines else []


def check_lines(verdict: Mapping, title: str) -> list[str]:
    """One bullet per method: each decided check with its intervals, then the checks that did not run."""
    checks = verdict.get("checks") or {}
    if not checks and not verdict.get("not_run"):
        return []
    parts = []
    for name, check in checks.items():
        outcome = check.get("outcome") or ("passes" if check.get("passed") else "fails")
        text = f"{name} **{outcome}** ({check['detail']}"
        if outcome == "inconclusive":
            needed = check.get("n_needed")
            text += f"; {check['reason']}" if check.get("reason") else ""
            text += f"; ≈ {needed} samples would likely decide it" if needed else ""
        parts.append(text + ")")
    parts += [f"{name} not run ({reason})" for name, reason in (verdict.get("not_run") or {}).items()]
    lines = [f"- {title}: " + "; ".join(parts)]
    agreement = verdict.get("reliance")
    if agreement:
        lines.append(f"  - {title} against what the prediction depends on: {_agreement_text(agreement)}")
    return lines


def _agreement_text(check: Mapping) -> str:
    """``agrees with occlusion's reliance``, ``does not agree ...`` or ``inconclusive`` with the interval."""
    outcome = check.get("outcome")
    words = {"passes": "agrees with", "fails": "does not agree with"}.get(outcome, "inconclusive against")
    text = f"**{words}** {check.get('against', 'occlusion')}'s reliance ({check['detail']}"
    if outcome == "inconclusive" and check.get("n_needed"):
        text += f"; ≈ {check['n_needed']} samples would likely decide it"
    return text + ")"


_PAIRED_TITLES = {
    "relevance_mass_accuracy": "relevance mass",
    "pointing_game": "pointing game",
    "deletion_auc": "deletion AUC (lower is better)",
    "insertion_auc": "insertion AUC",
    "random_logit_spearman": "ρ with another class (lower is better)",
}


def paired_lines(trust: Mapping, head: str) -> list[str]:
    """Method against method on the same samples: "A better than B" passes / fails / inconclusive."""
    paired = (trust.get("paired") or {}).get(head) or {}
    rows = []
    for measure, items in paired.items():
        for item in items:
            a, b = METHOD_TITLES.get(item["a"], item["a"]), METHOD_TITLES.get(item["b"], item["b"])
            outcome = {"passes": f"{a} better", "fails": f"{b} better"}.get(item["outcome"], "inconclusive")
            if item["outcome"] == "inconclusive" and item.get("n_needed"):
                outcome += f" (≈ {item['n_needed']} samples)"
            fmt = ".3f" if measure.endswith("_auc") else ".2f"
            rows.append(
                f"| {_PAIRED_TITLES.get(measure, measure)} | {a} − {b} | {_fmt_ci(item['difference'], fmt)} | "
                f"{item['difference'].get('n')} | {outcome} |"
            )
    if not rows:
        return []
    return [
        "Paired differences on the same samples (mean of per-sample differences, bootstrap interval):",
        "",
        "| measure | difference | mean [CI] | n | decided |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def model_paired_lines(pairs: Mapping) -> list[str]:
    """Model against model on the samples both data-set runs explained (the comparison report)."""
    rows = []
    for head, per_measure in pairs.items():
        for measure, items in per_measure.items():
            for item in items:
                a, b = item["a"], item["b"]
                outcome = {"passes": f"{a} better", "fails": f"{b} better"}.get(item["outcome"], "inconclusive")
                if item["outcome"] == "inconclusive" and item.get("n_needed"):
                    outcome += f" (≈ {item['n_needed']} samples)"
                fmt = ".3f" if measure.endswith("_auc") else ".2f"
                rows.append(
                    f"| {head} | {METHOD_TITLES.get(item['method'], item['method'])} | "
                    f"{_PAIRED_TITLES.get(measure, measure)} | {a} − {b} | {_fmt_ci(item['difference'], fmt)} | "
                    f"{item['difference'].get('n')} | {outcome} |"
                )
    if not rows:
        return []
    return [
        "### Models compared on the same samples",
        "",
        "Paired per-sample differences of the data-set runs' trust measures on the windows both explained "
        "(bootstrap interval of the mean difference; decided like every check).",
        "",
        "| head | method | measure | difference | mean [CI] | n | decided |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _head_references(trust: Mapping, head: str) -> list[str]:
    """What a uniform or random map scores for ``head``: the bar every method must clear."""
    loc, faith = trust["localisation"], trust["faithfulness"]
    lines = []
    if loc.get("measured"):
        lines.append(
            f"Mask area share (what a uniform map scores): {_fmt_ci(loc['mask_area_share'][head])}; "
            f"random map: relevance mass {_fmt_ci(loc['random'][head]['relevance_mass_accuracy'])}, "
            f"pointing game {_fmt_ci(loc['random'][head]['pointing_game'])}."
        )
    if faith.get("measured"):
        lines.append(
            f"Random order ({faith['n']} samples): deletion AUC "
            f"{_fmt_ci(faith['random'][head]['deletion_auc'], '.3f')}, insertion AUC "
            f"{_fmt_ci(faith['random'][head]['insertion_auc'], '.3f')}."
        )
    return lines


def _spearman(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _method_table(results: Mapping, trust: Mapping, head: str) -> list[str]:
    """One row per method: localisation, deletion/insertion, randomisation and the verdict."""
    loc, faith, rand = trust["localisation"], trust["faithfulness"], trust["randomisation"]
    lines = [
        "| method | relevance mass | rank acc. | pointing | deletion AUC ↓ | insertion AUC ↑ | "
        "ρ randomised | ρ other class | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method in results.get("methods", []):
        lm = loc.get("methods", {}).get(method, {}).get(head, {}) if loc.get("measured") else {}
        fm = faith.get("methods", {}).get(method, {}).get(head, {}) if faith.get("measured") else {}
        rm = rand.get("methods", {}).get(method, {}).get(head, {}) if rand.get("measured") else {}
        cells = [
            METHOD_TITLES.get(method, method),
            _fmt_ci(lm.get("relevance_mass_accuracy")),
            _fmt_ci(lm.get("relevance_rank_accuracy")),
            _fmt_ci(lm.get("pointing_game")),
            _fmt_ci(fm.get("deletion_auc"), ".3f"),
            _fmt_ci(fm.get("insertion_auc"), ".3f"),
            _fmt_ci(rm.get("final_spearman")) if rm.get("final_spearman") else _spearman(rm.get("final_mean_spearman")),
            _fmt_ci(rm.get("random_logit_spearman"))
            if rm.get("random_logit_spearman")
            else _spearman(rm.get("random_logit_mean_spearman")),
            trust["verdicts"][method][head]["verdict"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _by_class_table(results: Mapping, trust: Mapping, head: str) -> list[str]:
    """Relevance mass per true class (samples with a planted precursor), when localisation was measured."""
    loc = trust["localisation"]
    by_class = loc.get("by_class", {}).get(head, {}) if loc.get("measured") else {}
    if not by_class:
        return []
    methods = results.get("methods", [])
    titles = " | ".join(METHOD_TITLES.get(m, m) for m in methods)
    lines = [
        "Relevance mass by true class (samples with a planted precursor):",
        "",
        f"| class | n | mask area share | {titles} |",
        "|---|---|---|" + "---|" * len(methods),
    ]
    for cls, item in by_class.items():
        lines.append(
            f"| {cls} | {item['n']} | {_fmt_ci(item['mask_area_share'])} | "
            + " | ".join(_fmt_ci(item["relevance_mass_accuracy"].get(m)) for m in methods)
            + " |"
        )
    lines.append("")
    return lines


def dataset_report(results: Mapping) -> str:
    """Markdown report of one model's data-set run."""
    lines = [f"# Data-set report — {results.get('model')}", ""]
    lines.append(
        f"Model file: `{results.get('model_file')}`; {results.get('n_samples')} samples "
        f"({results.get('selection', 'selection')}); explained class: {results.get('explained_class')}."
    )
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
            bands = sorted(
                {b for v in per_class.values() for b in v},
                key=lambda b: [x.name for x in BANDS].index(b) if b in [x.name for x in BANDS] else 99,
            )
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
    lines.extend(confound_section(results))
    run = results.get("run", {})
    if run:
        lines.append(
            f"Run: {run.get('seconds_this_process')} s in this process, peak RSS "
            f"{run.get('peak_rss_mb')} MiB, RSS growth after warm-up {run.get('rss_growth_after_warmup')}."
        )
    return "\n".join(lines) + "\n"
