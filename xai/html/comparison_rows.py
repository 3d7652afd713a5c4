"""The sample explorer's rows of a sweep comparison: the models' predictions side by side, whether
they agree (and agree on a wrong class), band shares, and links to each model's own files."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.names import RESULTS_FILE
from xai.html.files import link
from xai.html.rows import alt_text, attention_tables, cell, figure_fields
from xai.html.templating import method_title

log = logging.getLogger(__name__)


def comparison_figure_name(sample: str) -> str:
    """File name of a sample's side-by-side figure in the comparison folder."""
    cleaned = re.sub(r"[^-\w.]+", "_", str(sample)).strip("._") or "sample"
    return f"{cleaned}_comparison.png"


def resolve_label(label: str, folders: Sequence[str], page_folder: Path) -> Path | None:
    """The file behind a comparison label ``<root name>/<relative path>`` (``None`` if not on disk).

    The roots are the compared folders recorded in ``comparison.json``; when the sweep folder was
    moved, the comparison folder's parent (the sweep folder itself) is tried as the root.
    """
    head, _, rest = str(label).partition("/")
    candidates = [Path(f) / rest for f in folders if Path(f).name == head]
    candidates.append(Path(page_folder).parent / rest)
    return next((c for c in candidates if rest and c.is_file()), None)


def model_files(comparison: Mapping, page_folder: Path) -> dict[str, dict[str, tuple[Path, dict]]]:
    """model -> sample -> (model folder, the sample's ``files`` entry) from the models' results files."""
    out: dict[str, dict[str, tuple[Path, dict]]] = {}
    for model, info in (comparison.get("models") or {}).items():
        for label in info.get("results_files") or []:
            path = resolve_label(label, comparison.get("folders") or [], page_folder)
            if path is None or path.name != RESULTS_FILE:
                continue
            try:
                results = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                log.warning("%s: not linked from the HTML report (%s)", path, error)
                continue
            for entry in results.get("samples") or []:
                if isinstance(entry, Mapping) and isinstance(entry.get("files"), Mapping):
                    out.setdefault(model, {}).setdefault(str(entry.get("sample")), (path.parent, dict(entry["files"])))
    return out


def _agreement_flags(comparison: Mapping, sample: str, head: str) -> tuple[bool | None, bool]:
    everyone = ((comparison.get("agreement") or {}).get(head) or {}).get("all_models") or {}
    models = list(comparison.get("models") or {})
    present = (comparison["predictions"][head].get(sample) or {}).get("models") or {}
    wrong = {item.get("sample") for item in everyone.get("agree_wrong_samples") or []}
    if len(models) < 2 or any(m not in present for m in models):
        return None, sample in wrong
    return sample in (everyone.get("agree_samples") or []), sample in wrong


def _sample_tables(comparison: Mapping, sample: str) -> list[list]:
    tables = []
    method = comparison.get("figure_method")
    for head in comparison.get("heads") or []:
        entry = comparison["predictions"][head].get(sample) or {}
        tables.append(
            [
                f"{head}: predictions",
                "preds",
                [
                    [
                        m,
                        p.get("prediction"),
                        p.get("confidence"),
                        p.get("explained_class"),
                        {True: "correct", False: "wrong"}.get(p.get("correct"), "unknown"),
                    ]
                    for m, p in (entry.get("models") or {}).items()
                ],
            ]
        )
        summaries = {}
        for model, per_head in (comparison.get("attention") or {}).items():
            for name, item in (per_head.get(head) or {}).items():
                summary = (item.get("per_sample") or {}).get(sample)
                if summary is not None:
                    summaries[f"{model} · {method_title(name)}"] = summary
        tables += attention_tables(head, dict(sorted(summaries.items(), key=lambda kv: method not in kv[0])))
        similar = [
            [f"{method_title(name)}, {pair}", v.get("spearman"), v.get("top_iou")]
            for name, pairs in ((comparison.get("similarity") or {}).get(head) or {}).items()
            for pair, item in pairs.items()
            for v in [(item.get("per_sample") or {}).get(sample)]
            if v
        ]
        if similar:
            tables.append([f"{head}: heatmap similarity", "sim", similar])
    return tables


def comparison_rows(comparison: Mapping, folder: Path, width: int) -> list[dict]:
    """One row per compared sample (see the module docstring)."""
    method = comparison.get("figure_method")
    files = model_files(comparison, folder)
    rows = []
    for sample in comparison.get("samples") or []:
        true, per_model, agree, agree_wrong = {}, {}, {}, {}
        for head in comparison.get("heads") or []:
            entry = comparison["predictions"][head].get(sample) or {}
            true[head] = entry.get("true")
            for model, p in (entry.get("models") or {}).items():
                bands = (((comparison.get("attention") or {}).get(model) or {}).get(head) or {}).get(method) or {}
                summary = (bands.get("per_sample") or {}).get(sample) or {}
                per_model.setdefault(model, {})[head] = cell(
                    p.get("prediction"), p.get("confidence"), p.get("correct"), entry.get("true"), summary.get("bands")
                )
            agree[head], agree_wrong[head] = _agreement_flags(comparison, sample, head)
        links = []
        for model in sorted(files):
            found = files[model].get(sample)
            if found is None:
                continue
            model_folder, names = found
            for key, label in (("figure", "figure (PNG)"), ("heatmaps", "heatmaps (NPZ)")):
                item = (
                    link(model_folder / str(names.get(key, "")), folder, f"{model} {label}") if names.get(key) else None
                )
                if item:
                    links.append(item)
        row = {
            "s": sample,
            "true": true,
            "m": per_model,
            "ag": agree,
            "aw": agree_wrong,
            "links": links,
            "meta": [],
            "tables": _sample_tables(comparison, sample),
            **figure_fields(folder / comparison_figure_name(sample), folder, width),
        }
        row["alt"] = alt_text(sample, per_model, agree_wrong)
        rows.append(row)
    return rows
