"""Markdown of the data-set results: the "Can these explanations be trusted?" section (shared by
the data-set report and the comparison report) and the data-set report itself."""

from __future__ import annotations

from collections.abc import Mapping

from core.names import METHOD_TITLES
from xai.attention import BANDS


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
    for head in results.get("heads", []):
        lines.append(f"{hashes}# {head} head")
        lines.append("")
        lines.extend(_head_references(trust, head))
        lines.append("")
        lines.extend(_method_table(results, trust, head))
        lines.append("")
        lines.extend(_by_class_table(results, trust, head))
        for method in results.get("methods", []):
            checks = trust["verdicts"][method][head]["checks"]
            if checks:
                lines.append(
                    f"- {METHOD_TITLES.get(method, method)}: "
                    + "; ".join(f"{name} {'✔' if c['passed'] else '✘'} ({c['detail']})" for name, c in checks.items())
                )
        lines.append("")
    return lines


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
            _spearman(rm.get("final_mean_spearman")),
            _spearman(rm.get("random_logit_mean_spearman")),
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
    run = results.get("run", {})
    if run:
        lines.append(
            f"Run: {run.get('seconds_this_process')} s in this process, peak RSS "
            f"{run.get('peak_rss_mb')} MiB, RSS growth after warm-up {run.get('rss_growth_after_warmup')}."
        )
    return "\n".join(lines) + "\n"
