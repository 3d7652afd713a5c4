"""The three report pages: an explain run's model folder, a sweep's comparison folder and a data-set
run's model folder, each written as ``report.html`` beside its JSON (and Markdown) results."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError, InputDataError
from core.io import atomic_write_text
from core.names import COMPARISON_JSON, COMPARISON_REPORT, DATASET_FILE, HEADS, RESULTS_FILE, STATUS_FILE
from core.text import plain
from xai.html.comparison_rows import comparison_figure_name, comparison_rows, resolve_label
from xai.html.files import link, links, read_json, read_jsonl
from xai.html.rows import BAND_NAMES, Explorer, dataset_rows, explain_rows, preferred_method
from xai.html.sections import band_means, figure_groups, head_accuracy
from xai.html.templating import method_title, render

log = logging.getLogger(__name__)

PAGE = "report.html"
JOURNAL = "samples.jsonl"
FIGURE_PREFIXES = ("paper_", "confidence_")  # the comparison's summary figures (per-sample ones end in _comparison)


@dataclass(frozen=True)
class HtmlOptions:
    """``report:`` settings (``conf/report/default.yaml``): the switch, thumbnail width, rows per page."""

    html: bool = True
    thumbnail_width: int = 360
    page_size: int = 48

    def __post_init__(self) -> None:
        if not 32 <= int(self.thumbnail_width) <= 2000:
            raise ConfigError(f"report.thumbnail_width: {self.thumbnail_width} is not between 32 and 2000 pixels")
        if not 1 <= int(self.page_size) <= 10000:
            raise ConfigError(f"report.page_size: {self.page_size} is not between 1 and 10000")


def html_options(cfg: Any = None) -> HtmlOptions:
    """The report options of a Hydra config (``cfg.report``); the defaults when it has none."""
    from omegaconf import OmegaConf

    section = OmegaConf.select(cfg, "report", default=None) if OmegaConf.is_config(cfg) else None
    values = plain(section) or {}
    if not isinstance(values, Mapping):
        raise ConfigError("report: must be a mapping such as {html: true}")
    unknown = sorted(set(values) - {"html", "thumbnail_width", "page_size"})
    if unknown:
        raise ConfigError(f"report: unknown key(s) {unknown}; known: html, thumbnail_width, page_size")
    return HtmlOptions(**values)


def write_report_page(kind: str, folder: str | Path, cfg: Any = None) -> Path | None:
    """The page of ``kind`` (``model``, ``dataset`` or ``comparison``) for ``folder`` when ``report.html`` is on.

    The one call the tasks make. A wrong ``report`` setting raises :class:`ConfigError`; any other failure
    is logged with its traceback and returns ``None``: the run's results stand without their page.
    """
    writers = {"model": write_model_page, "dataset": write_dataset_page, "comparison": write_comparison_page}
    if kind not in writers:
        raise ConfigError(f"report page kind {kind!r} is not one of {sorted(writers)}")
    options = html_options(cfg)
    if not options.html:
        return None
    try:
        return writers[kind](folder, options)
    except Exception as error:  # noqa: BLE001 - a report page must never cost the run its results
        log.error("%s: no report.html (%s)", folder, error, exc_info=True)
        return None


def _write(folder: Path, template: str, **context: Any) -> Path:
    path = atomic_write_text(Path(folder) / PAGE, render(template, **context))
    log.info("wrote %s", path)
    return path


def _short(value: Any, limit: int = 240) -> str:
    if isinstance(value, Mapping):
        text = ", ".join(f"{k}: {v}" for k, v in value.items() if not isinstance(v, (Mapping, list)))
    else:
        text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_model_page(model_folder: str | Path, options: HtmlOptions | None = None) -> Path:
    """``<run>/<model>/report.html`` of an explain run (a failed job's ``status.json`` gets a short page)."""
    options = options or HtmlOptions()
    folder = Path(model_folder)
    results_path = folder / RESULTS_FILE
    nav = [
        ("inputs", "Model"),
        ("accuracy", "Predictions"),
        ("samples", "Samples"),
        ("attention", "Band attention"),
        ("files", "Files"),
    ]
    if not results_path.is_file() and (folder / STATUS_FILE).is_file():
        failure = read_json(folder / STATUS_FILE)
        return _write(
            folder,
            "model.html.j2",
            title=f"{failure.get('model') or folder.name}: failed",
            subtitle=None,
            nav=[("status-section", "Status"), ("files", "Files")],
            failure=failure,
            explorer=None,
            files=links([folder / STATUS_FILE], folder),
        )
    results = read_json(results_path)
    samples = results.get("samples")
    if not isinstance(samples, list) or not all(
        isinstance(s, Mapping) and isinstance(s.get("sample"), str) for s in samples
    ):
        raise InputDataError(results_path, "has no 'samples' list of objects with a 'sample' name")
    model = str(results.get("model") or folder.name)
    methods = [str(m) for m in results.get("methods") or []]
    heads = [str(h) for h in results.get("heads") or HEADS]
    explorer = Explorer(
        "model",
        [model],
        heads,
        preferred_method(methods),
        explain_rows(results, folder, options.thumbnail_width),
        options.page_size,
    )
    axes = results.get("axes") or {}
    env = results.get("environment") or {}
    sample_files = [folder / str(v) for s in samples for v in (s.get("files") or {}).values()]
    return _write(
        folder,
        "model.html.j2",
        title=f"{model}: explanations of {len(samples)} sample(s)",
        subtitle=f"explain run · {', '.join(heads)} heads · " + ", ".join(map(method_title, methods)),
        nav=nav,
        failure=None,
        results=results,
        methods=methods,
        explorer=explorer.payload(),
        accuracy=head_accuracy(samples, heads),
        bands=band_means(samples, heads, methods),
        score_text=_short(results.get("score")),
        data_text=_short(results.get("data")),
        grid_text=_grid_text(axes),
        versions_text=_short({k: v for k, v in env.items() if k != "device"}),
        files=links([results_path, *sample_files], folder),
    )


def _grid_text(axes: Mapping) -> str:
    rows, cols = axes.get("row_frequency_hz"), axes.get("column_time_s")
    if not isinstance(rows, list) or not isinstance(cols, list) or not rows or not cols:
        return ""
    text = f"{len(rows)}×{len(cols)} cells; row centres {min(rows) * 1e3:.3g}–{max(rows) * 1e3:.3g} mHz, "
    return (
        text
        + f"column centres {max(cols) / 3600:.1f}–{min(cols) / 3600:.1f} h before the event; layout "
        + str(axes.get("layout", "n/a"))
    )


def write_dataset_page(model_folder: str | Path, options: HtmlOptions | None = None) -> Path:
    """``<run>/<model>/report.html`` of a data-set run (``dataset_results.json`` + ``samples.jsonl``)."""
    options = options or HtmlOptions()
    folder = Path(model_folder)
    results = read_json(folder / DATASET_FILE)
    journal = read_jsonl(folder / JOURNAL)
    model = str(results.get("model") or folder.name)
    heads = [str(h) for h in results.get("heads") or HEADS]
    method = preferred_method(results.get("methods") or [])
    explorer = Explorer(
        "dataset",
        [model],
        heads,
        method,
        dataset_rows(journal, folder, model, method, options.thumbnail_width),
        options.page_size,
    )
    class_means = figure_groups(folder, [str(f) for f in (results.get("class_means") or {}).get("figures") or []])
    heatmaps = sorted((folder / "heatmaps").glob("*")) if (folder / "heatmaps").is_dir() else []
    run = results.get("run") or {}
    run_text = (
        f"{run.get('seconds_this_process')} s in the last process, peak RSS {run.get('peak_rss_mb')} MiB" if run else ""
    )
    names = [DATASET_FILE, JOURNAL, "report.md", "class_means.npz"]
    return _write(
        folder,
        "dataset.html.j2",
        title=f"{model}: data-set report ({results.get('n_samples')} samples)",
        subtitle=f"data-set run · {results.get('selection') or 'data set'}",
        nav=[
            ("inputs", "Model"),
            ("accuracy", "Accuracy"),
            ("samples", "Samples"),
            ("attention", "Band attention"),
            ("trust", "Trust"),
            ("findings", "Activity"),
            ("files", "Files"),
        ],
        results=results,
        explorer=explorer.payload(),
        band_names=list(BAND_NAMES),
        class_means=class_means,
        data_text=_short(results.get("data")),
        run_text=run_text,
        files=links([*(folder / n for n in names), *heatmaps], folder),
    )


def write_comparison_page(comparison_folder: str | Path, options: HtmlOptions | None = None) -> Path:
    """``<sweep>/comparison/report.html`` from ``comparison.json`` (and the models' own results files)."""
    options = options or HtmlOptions()
    folder = Path(comparison_folder)
    path = folder / COMPARISON_JSON
    comparison = read_json(path)
    for key in ("samples", "heads", "models", "predictions"):
        if key not in comparison:
            raise InputDataError(path, f"has no {key!r} entry (is it a comparison.json?)")
    names = list(comparison["models"])
    explorer = Explorer(
        "comparison",
        names,
        [str(h) for h in comparison["heads"]],
        comparison.get("figure_method"),
        comparison_rows(comparison, folder, options.thumbnail_width),
        options.page_size,
    )
    models = [
        {"name": m, "info": comparison["models"][m], "links": _results_links(comparison, m, folder)} for m in names
    ]
    trust = comparison.get("trust") or {}
    sample_names = {comparison_figure_name(s) for s in comparison["samples"]}
    written = sorted(
        {
            *map(str, comparison.get("figures") or []),
            *(p.name for p in folder.glob("*") if p.suffix in (".png", ".pdf") and p.name.startswith(FIGURE_PREFIXES)),
        }
    )
    nav = [
        ("inputs", "Inputs"),
        ("jobs", "Jobs"),
        *((f"head-{h}", f"{h} head") for h in comparison["heads"]),
        ("samples", "Samples"),
        ("similarity", "Similarity"),
        ("attention", "Band attention"),
        ("trust", "Trust"),
        ("figures", "Figures"),
        ("files", "Files"),
    ]
    return _write(
        folder,
        "comparison.html.j2",
        title=f"Comparison of {len(names)} model(s) on {len(comparison['samples'])} sample(s)",
        subtitle="sweep comparison · " + ", ".join(names),
        nav=nav,
        c=comparison,
        models=models,
        explorer=explorer.payload(),
        band_names=list(BAND_NAMES),
        attention=_attention_blocks(comparison),
        trust_models=[{"name": m, "results": trust.get(m)} for m in sorted(set(names) | set(trust))],
        summary_figures=figure_groups(folder, [n for n in written if n not in sample_names]),
        sample_figures=links([folder / n for n in written if n in sample_names], folder),
        files=links([path, folder / COMPARISON_REPORT], folder),
    )


def _results_links(comparison: Mapping, model: str, folder: Path) -> list[dict]:
    out = []
    for label in comparison["models"][model].get("results_files") or []:
        target = resolve_label(label, comparison.get("folders") or [], folder)
        item = link(target, folder, f"results of {model}") if target else None
        if item:
            out.append(item)
            page = link(target.parent / PAGE, folder, f"{model} report page")
            if page:
                out.append(page)
    return out


def _attention_blocks(comparison: Mapping) -> list[dict]:
    """Per head and method (the figure method first): each model's band summary."""
    attention = comparison.get("attention") or {}
    first = comparison.get("figure_method")
    blocks = []
    for head in comparison.get("heads") or []:
        methods = sorted(
            {m for per_head in attention.values() for m in (per_head.get(head) or {})}, key=lambda m: (m != first, m)
        )
        for method in methods:
            models = [
                (model, per_head[head][method]["summary"])
                for model, per_head in attention.items()
                if method in (per_head.get(head) or {}) and "summary" in per_head[head][method]
            ]
            blocks.append({"head": head, "method": method, "models": models})
    return blocks
