"""Compare the explain outputs of several models (runs or sweep jobs) and write an honest report.

Input: run folders (``<run>/<model>/visualization_results.json``) and/or sweep folders
(``<sweep>/<job num>/<model>/...``). Everything found is merged by model *name* (the samples of
the same model from several jobs are combined); failed jobs (``status.json`` with
``"status": "failed"``) and jobs that left neither results nor a status (a folder with ``.hydra/``
but nothing else) are listed, never dropped.

Output (``out_dir``, normally ``<sweep or run dir>/comparison/``):

* ``<sample>_comparison.png`` – the models' Grad-CAM overlays side by side;
* ``confidence_comparison.png`` and ``paper_confidence_comparison.pdf/.png``;
* ``paper_<method>_<head>.pdf/.png`` – samples × models overlay grid per head;
* ``comparison.json`` – all numbers, deterministic (sorted keys, floats rounded to 6 decimals,
  no timestamps, no output paths), so re-running over the same folders reproduces it byte for
  byte;
* ``GRADCAM_COMPARISON_REPORT.md`` – text generated from those numbers only.

Rules used by the report (also stored under ``"rules"`` in ``comparison.json``):

* **Band claims**: "attention concentrates in band B" only when the mean enrichment (mass
  share ÷ area share) is ≥ 1.5; "gets less than its area share" when ≤ 1/1.5; otherwise the
  report says that the band is not preferred. The enrichment is always printed beside the claim.
* **Concentration**: model A is "more concentrated" than B only when its mean normalised entropy
  is lower by ≥ 0.01 *and* its top-10 % mass share is higher by ≥ 0.01 ("more distributed" for
  the reverse); when both differences are < 0.01 they are "similarly concentrated"; otherwise the
  two measures disagree and the report says so.
* **Finer**: only from the native map resolution (hours and frequency decades per native cell).
* **Similarity**: Spearman ρ is labelled negligible (|ρ| < 0.2), weak (< 0.4), moderate (< 0.7)
  or strong (≥ 0.7); top-10 % IoU is printed next to its chance level 0.1/1.9 ≈ 0.053.
* Class agreement is by class *name* (class order differs between models). Confidence spread is
  the population standard deviation over the samples.

Failures: :func:`compare_runs` returns the comparison; :func:`has_failures` tells whether any
job failed, is missing or left unreadable results. :func:`run_compare_task` (``task=compare``)
raises :class:`SweepHadFailures` *after* writing every output, so the process exits non-zero.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError, InputDataError, PrecursorError
from core.io import atomic_write_json, atomic_write_text
from core.jsonvalues import json_value
from core.names import (
    COMPARISON_DIR,
    COMPARISON_JSON,
    COMPARISON_REPORT,
    DATASET_FILE,
    HEADS,
    METHOD_TITLES,
    RESULTS_FILE,
    STATUS_FILE,
)
from geomag.axes import SpectrogramAxes
from xai.attention import REST, attention_summary
from xai.similarity import CHANCE_TOP10_IOU, heatmap_similarity

log = logging.getLogger(__name__)

__all__ = [
    "RULES",
    "SweepHadFailures",
    "compare_runs",
    "has_failures",
    "run_compare_task",
]

REPORT_FILE = COMPARISON_REPORT
OUTPUT_DIR_NAME = COMPARISON_DIR
PREFERRED_METHOD = "gradcam"
DECIMALS = 6

RULES = {
    "enrichment_concentrates": 1.5,
    "enrichment_depleted": round(1 / 1.5, DECIMALS),
    "concentration_min_difference": 0.01,
    "spearman_labels": {"negligible": 0.0, "weak": 0.2, "moderate": 0.4, "strong": 0.7},
    "top_fraction": 0.10,
    "top_iou_chance": round(CHANCE_TOP10_IOU, DECIMALS),
    "confidence_std": "population (ddof=0)",
    "agreement": "by class name",
}

METHOD_NAMES = METHOD_TITLES


class SweepHadFailures(PrecursorError):  # noqa: N818 - a status, read as "the sweep had failures"
    """Raised by ``task=compare`` after all outputs are written when a job failed or is missing."""


# ============================================================================ discovery
@dataclass
class _SampleRecord:
    model: str
    sample: str
    folder: Path  # the model folder
    results_file: Path
    entry: dict  # the sample's entry of visualization_results.json
    meta: dict  # the rest of visualization_results.json


@dataclass
class _Found:
    records: dict[str, dict[str, _SampleRecord]] = field(default_factory=dict)  # model -> sample -> rec
    model_meta: dict[str, dict] = field(default_factory=dict)
    model_files: dict[str, list[str]] = field(default_factory=dict)
    failed: list[dict] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)
    unreadable: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    trust: dict[str, dict] = field(default_factory=dict)  # model -> data-set results (task=dataset)
    trust_files: dict[str, str] = field(default_factory=dict)


def _is_skipped(path: Path, root: Path) -> bool:
    """Skip earlier comparison outputs and hidden folders (e.g. ``.hydra``, ``.cache``)."""
    parts = path.relative_to(root).parts[:-1]
    return any(p == OUTPUT_DIR_NAME or p.startswith(".") for p in parts)


def _label(path: Path, root: Path) -> str:
    """A stable display name for a file or folder: relative to the root folder it was found in."""
    rel = path.relative_to(root).as_posix()
    return f"{root.name}/{rel}" if rel != "." else root.name


def _safe_name(name: str) -> str:
    """A file-name-safe version of a sample name (no folders, no odd characters)."""
    cleaned = re.sub(r"[^-\w.]+", "_", str(name)).strip("._")
    return cleaned or "sample"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputDataError(path, f"cannot read JSON: {error}") from error


def _load_yaml(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        from omegaconf import OmegaConf

        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as error:  # noqa: BLE001 - a broken Hydra file only loses a detail
        log.warning("%s: cannot read: %s", path, error)
        return None


def _override_value(overrides: Sequence[str], key: str) -> str | None:
    for item in overrides:
        name, sep, value = item.lstrip("+~").partition("=")
        if sep and name == key:
            return value
    return None


def _job_info(job_dir: Path) -> dict:
    """Task target, model, sample and overrides of a Hydra job folder (from ``.hydra/``)."""
    values = _load_yaml(job_dir / ".hydra" / "overrides.yaml")
    overrides = [str(v) for v in values] if isinstance(values, list) else []
    config = _load_yaml(job_dir / ".hydra" / "config.yaml")
    config = config if isinstance(config, dict) else {}
    task = config.get("task") if isinstance(config.get("task"), dict) else {}
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    sample = config.get("sample", _override_value(overrides, "sample"))
    return {
        "task": task.get("_target_"),
        "model": model.get("name") or _override_value(overrides, "model"),
        "sample": sample if isinstance(sample, (str, type(None))) else str(sample),
        "overrides": overrides,
    }


def _discover(folders: Sequence[Path]) -> _Found:
    found = _Found()
    seen_files: set[Path] = set()
    for root in folders:
        results = sorted(p for p in root.rglob(RESULTS_FILE) if not _is_skipped(p, root))
        statuses = sorted(p for p in root.rglob(STATUS_FILE) if not _is_skipped(p, root))
        datasets = sorted(p for p in root.rglob(DATASET_FILE) if not _is_skipped(p, root))
        for path in datasets:
            if path.resolve() not in seen_files:
                seen_files.add(path.resolve())
                _add_dataset(found, path, root)
        for path in results:
            if path.resolve() in seen_files:
                continue
            seen_files.add(path.resolve())
            _add_results(found, path, root)
        for path in statuses:
            if path.resolve() in seen_files:
                continue
            seen_files.add(path.resolve())
            _add_status(found, path, root)
        job_dirs = sorted({p.parent for p in root.rglob(".hydra") if p.is_dir() and not _is_skipped(p, root)})
        if (root / ".hydra").is_dir():
            job_dirs = sorted(set(job_dirs) | {root})
        for job in job_dirs:
            has_output = any(p.is_relative_to(job) for p in itertools.chain(results, statuses, datasets))
            if has_output:
                continue
            info = _job_info(job)
            if info["task"] and not any(t in str(info["task"]) for t in ("explain", "dataset")):
                continue  # a train or compare run: it is not expected to leave explanations
            found.missing.append(
                {
                    "job": _label(job, root),
                    "model": info["model"],
                    "sample": info["sample"],
                    "overrides": info["overrides"],
                    "reason": "the job folder has neither visualization_results.json nor status.json",
                }
            )
    return found


def _add_results(found: _Found, path: Path, root: Path) -> None:
    try:
        data = _read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
            raise InputDataError(path, "has no 'samples' list")
        model = str(data.get("model") or path.parent.name)
        for i, entry in enumerate(data["samples"]):
            if not isinstance(entry, dict) or not isinstance(entry.get("sample"), str):
                raise InputDataError(path, f"samples[{i}] has no 'sample' name")
            if not isinstance(entry.get("heads"), dict):
                raise InputDataError(path, f"samples[{i}] ({entry['sample']}) has no 'heads' object")
    except PrecursorError as error:
        log.error("%s", error)
        found.unreadable.append({"file": _label(path, root), "error": str(error)})
        return
    meta = {k: v for k, v in data.items() if k != "samples"}
    found.model_meta.setdefault(model, meta)
    found.model_files.setdefault(model, []).append(_label(path, root))
    per_model = found.records.setdefault(model, {})
    for entry in data["samples"]:
        name = entry["sample"]
        if name in per_model:
            found.duplicates.append(
                {
                    "model": model,
                    "sample": name,
                    "kept": _label(per_model[name].results_file, root),
                    "ignored": _label(path, root),
                }
            )
            log.warning(
                "%s: sample %s of model %s was already found in %s; keeping the first",
                path,
                name,
                model,
                per_model[name].results_file,
            )
            continue
        per_model[name] = _SampleRecord(model, name, path.parent, path, entry, meta)


def _add_dataset(found: _Found, path: Path, root: Path) -> None:
    """A data-set run's results (``task=dataset``): its trust measurements go into the report."""
    try:
        data = _read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("trust"), dict):
            raise InputDataError(path, "has no 'trust' object")
    except PrecursorError as error:
        log.error("%s", error)
        found.unreadable.append({"file": _label(path, root), "error": str(error)})
        return
    model = str(data.get("model") or path.parent.name)
    if model in found.trust:
        found.duplicates.append({"model": model, "sample": "(data-set results)", "kept": found.trust_files[model],
                                 "ignored": _label(path, root)})
        return
    found.trust[model] = data
    found.trust_files[model] = _label(path, root)


def _trust_summary(found: _Found) -> dict:
    """The data-set results without per-sample lists (those stay in the data-set folder)."""
    out = {}
    for model, data in sorted(found.trust.items()):
        trust = json.loads(json.dumps(data["trust"]))
        for per_head in (trust.get("randomisation", {}).get("methods") or {}).values():
            for item in per_head.values():
                item.pop("per_sample", None)
        out[model] = {"file": found.trust_files[model], "model": model, "n_samples": data.get("n_samples"),
                      "selection": data.get("selection"), "methods": data.get("methods", []),
                      "heads": data.get("heads", []), "confidence": data.get("confidence", 0.95),
                      "heads_summary": data.get("heads_summary", {}), "trust": trust}
    return out


def _add_status(found: _Found, path: Path, root: Path) -> None:
    try:
        data = _read_json(path)
        if not isinstance(data, dict):
            raise InputDataError(path, "is not a JSON object")
    except PrecursorError as error:
        found.failed.append(
            {
                "status": "failed",
                "file": _label(path, root),
                "model": None,
                "sample": None,
                "error": f"unreadable status file: {error}",
            }
        )
        return
    if str(data.get("status", "failed")) != "failed":
        return
    job = path.parent
    parent_is_model_folder = not (path.parent / ".hydra").is_dir() and path.parent != root
    model = data.get("model") or (path.parent.name if parent_is_model_folder else None)
    if parent_is_model_folder:
        job = path.parent.parent
    found.failed.append(
        {
            "status": "failed",
            "file": _label(path, root),
            "job": _label(job, root) if job.is_relative_to(root) else None,
            "model": model,
            "sample": data.get("sample"),
            "error": str(data.get("error") or "no error message recorded"),
        }
    )


# ============================================================================ per-sample data
@dataclass
class _Loaded:
    axes: SpectrogramAxes | None
    arrays: dict[str, np.ndarray]
    problem: str | None = None


def _heatmap_file(record: _SampleRecord) -> Path:
    files = record.entry.get("files") or {}
    name = files.get("heatmaps") if isinstance(files, dict) else None
    if not name:
        for head_info in record.entry["heads"].values():
            head_files = head_info.get("files") if isinstance(head_info, dict) else None
            if isinstance(head_files, dict) and head_files.get("heatmaps"):
                name = head_files["heatmaps"]
                break
    path = Path(name) if name else Path(f"{record.sample}_heatmaps.npz")
    return path if path.is_absolute() else record.folder / path


def _load_npz(record: _SampleRecord) -> _Loaded:
    path = _heatmap_file(record)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in npz.files}
    except (OSError, ValueError) as error:
        return _Loaded(None, {}, f"{path.name}: cannot read heatmaps ({error})")
    axes = None
    try:
        if "axes_json" in arrays:
            axes = SpectrogramAxes.from_dict(json.loads(str(arrays["axes_json"])))
        elif isinstance(record.meta.get("axes"), dict):
            axes = SpectrogramAxes.from_dict(record.meta["axes"])
    except (KeyError, TypeError, ValueError, PrecursorError) as error:
        return _Loaded(None, arrays, f"{path.name}: cannot read the spectrogram axes ({error})")
    if axes is None:
        return _Loaded(None, arrays, f"{path.name}: no spectrogram axes in the NPZ or the results JSON")
    return _Loaded(axes, arrays)


def _display_map(arrays: Mapping[str, np.ndarray], method: str, head: str) -> np.ndarray | None:
    """The [0, 1] display map, or the raw map min-max normalised when no display copy is stored."""
    display = arrays.get(f"{method}__{head}__display")
    if display is not None:
        return np.clip(np.asarray(display, dtype=np.float64), 0.0, 1.0)
    raw = arrays.get(f"{method}__{head}")
    if raw is None:
        return None
    raw = np.clip(np.asarray(raw, dtype=np.float64), 0.0, None)
    top = float(raw.max()) if raw.size else 0.0
    return raw / top if top > 0 else np.zeros_like(raw)


def _native_shape(record: _SampleRecord, arrays: Mapping[str, np.ndarray], method: str) -> list[int] | None:
    for head in HEADS:
        key = f"{method}__{head}__native"
        if key in arrays and np.asarray(arrays[key]).ndim >= 2:
            return [int(v) for v in np.asarray(arrays[key]).shape[:2]]
    value = (record.meta.get("native_resolution") or {}).get(method)
    if isinstance(value, (list, tuple)) and len(value) >= 2:
        return [int(value[0]), int(value[1])]
    return None


# ============================================================================ helpers
def _mean_std(values: Iterable[float | None]) -> dict:
    numbers = [float(v) for v in values if v is not None]
    if not numbers:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(numbers)), "std": float(np.std(numbers)), "n": len(numbers)}


def _method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _spearman_label(rho: float | None) -> str:
    if rho is None:
        return "undefined"
    magnitude = abs(rho)
    labels = RULES["spearman_labels"]
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


# ============================================================================ the comparison
def compare_runs(
    folders: Sequence[Path | str],
    out_dir: Path | str,
    expected_models: Sequence[str] | None = None,
    expected_samples: Sequence[str] | None = None,
) -> dict:
    """Collect the models' results under ``folders``, compare them and write all outputs to ``out_dir``.

    Returns the (rounded) content of ``comparison.json``. Raises
    :class:`~core.errors.ConfigError` when there are no folders or nothing at all (no results,
    no failed or missing jobs) is found under them; a folder that does not exist raises
    :class:`~core.errors.InputDataError`.
    """
    if not folders:
        raise ConfigError("task.folders: no folders to compare")
    roots = []
    for folder in folders:
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise InputDataError(folder, "folder to compare does not exist")
        roots.append(path)
    roots = list(dict.fromkeys(roots))
    out = Path(out_dir)
    found = _discover(roots)
    if not found.records and not found.failed and not found.missing and not found.unreadable and not found.trust:
        raise ConfigError(
            f"task.folders: no {RESULTS_FILE} (and no failed or missing jobs) found under "
            f"{', '.join(str(r) for r in roots)}"
        )
    _check_expected(found, expected_models, expected_samples)
    out.mkdir(parents=True, exist_ok=True)
    comparison, figure_errors = _build(found, roots, out)
    rounded = json_value(comparison, DECIMALS)
    atomic_write_json(out / COMPARISON_JSON, rounded, sort_keys=True)
    atomic_write_text(out / REPORT_FILE, _report(rounded, figure_errors))
    log.info("comparison written to %s (report %s)", out, out / REPORT_FILE)
    return rounded


def has_failures(comparison: Mapping) -> bool:
    """True when any job failed, is missing, or left unreadable results."""
    jobs = comparison.get("jobs", {})
    return bool(jobs.get("failed") or jobs.get("missing") or jobs.get("unreadable"))


def _check_expected(found: _Found, models: Sequence[str] | None, samples: Sequence[str] | None) -> None:
    present_models = set(found.records)
    failed_models = {f.get("model") for f in found.failed}
    for model in models or []:
        if model not in present_models and model not in failed_models:
            found.missing.append(
                {
                    "job": None,
                    "model": model,
                    "sample": None,
                    "overrides": [],
                    "reason": "expected model has no results",
                }
            )
    for sample in samples or []:
        for model in sorted(present_models):
            if sample not in found.records[model]:
                found.missing.append(
                    {
                        "job": None,
                        "model": model,
                        "sample": sample,
                        "overrides": [],
                        "reason": "expected sample has no results for this model",
                    }
                )


def _build(found: _Found, roots: Sequence[Path], out: Path) -> tuple[dict, list[str]]:
    """All numbers of the comparison (and the figures); figure errors go to the log and the report only,
    so ``comparison.json`` keeps deterministic content."""
    models = sorted(found.records)
    samples = sorted({s for per_model in found.records.values() for s in per_model})
    heads = [
        h for h in HEADS if any(h in r.entry["heads"] for pm in found.records.values() for r in pm.values())
    ]
    heads += sorted(
        {h for pm in found.records.values() for r in pm.values() for h in r.entry["heads"]} - set(heads)
    )
    methods = {m: [str(x) for x in (found.model_meta[m].get("methods") or [])] for m in models}
    common_methods = sorted(set.intersection(*(set(v) for v in methods.values()))) if models else []
    if PREFERRED_METHOD in common_methods:
        figure_method = PREFERRED_METHOD
    elif common_methods:
        figure_method = common_methods[0]
    else:
        figure_method = next((v[0] for v in methods.values() if v), PREFERRED_METHOD)

    comparison: dict[str, Any] = {
        "folders": [r.as_posix() for r in roots],
        "models": {},
        "samples": samples,
        "heads": heads,
        "figure_method": figure_method,
        "rules": RULES,
        "jobs": {
            "failed": sorted(found.failed, key=lambda f: (str(f.get("job")), str(f.get("file")))),
            "missing": sorted(
                found.missing, key=lambda f: (str(f.get("job")), str(f.get("model")), str(f.get("sample")))
            ),
            "unreadable": found.unreadable,
            "duplicates": found.duplicates,
        },
        "notes": [],
        "problems": [],
    }
    for model in models:
        meta = found.model_meta[model]
        comparison["models"][model] = {
            "results_files": found.model_files[model],
            "model_file": meta.get("model_file"),
            "target_layer": meta.get("target_layer"),
            "input_shape": meta.get("input_shape"),
            "methods": methods[model],
            "score": meta.get("score"),
            "native_resolution": meta.get("native_resolution"),
            "environment": meta.get("environment"),
            "status": meta.get("status"),
            "samples": sorted(found.records[model]),
        }
    if len(models) < 2:
        comparison["notes"].append(
            f"only {len(models)} model found: per-model facts only; agreement and heatmap similarity "
            "need at least 2 models"
        )

    comparison["trust"] = _trust_summary(found)
    predictions, accuracy, confidence = _predictions(found, models, samples, heads)
    comparison["predictions"] = predictions
    comparison["accuracy"] = accuracy
    comparison["confidence"] = confidence
    comparison["agreement"] = _agreement(predictions, models, samples, heads)

    similarity: dict = {h: {} for h in heads}
    attention: dict = {m: {h: {} for h in heads} for m in models}
    figure_cells: dict[str, dict] = {h: {} for h in heads}
    figure_errors: list[str] = []
    figures: list[str] = []
    for sample in samples:
        loaded = {}
        for model in models:
            record = found.records[model].get(sample)
            if record is None:
                continue
            item = _load_npz(record)
            if item.problem:
                comparison["problems"].append({"model": model, "sample": sample, "problem": item.problem})
            loaded[model] = (record, item)
        _attention_for_sample(sample, loaded, methods, heads, attention, comparison["problems"])
        _similarity_for_sample(sample, loaded, methods, heads, similarity)
        entries = []
        for model, (record, item) in loaded.items():
            if item.axes is None or "input" not in item.arrays:
                continue
            entry_heads = {}
            for head in heads:
                info = record.entry["heads"].get(head)
                heat = _display_map(item.arrays, figure_method, head)
                if not isinstance(info, dict) or heat is None:
                    continue
                pred = predictions[head][sample]["models"][model]
                cell = {
                    "prediction": pred["prediction"],
                    "confidence": pred["confidence"],
                    "true": predictions[head][sample]["true"],
                    "correct": pred["correct"],
                    "map": heat,
                }
                entry_heads[head] = cell
                figure_cells[head][(sample, model)] = dict(
                    cell, axes=item.axes, grid_image=item.arrays["input"]
                )
            if entry_heads:
                entries.append(
                    {
                        "model": model,
                        "axes": item.axes,
                        "grid_image": item.arrays["input"],
                        "heads": entry_heads,
                    }
                )
        if entries:
            _figure(
                figures,
                figure_errors,
                out / f"{_safe_name(sample)}_comparison.png",
                "render_comparison_figure",
                sample=sample,
                entries=entries,
                head_order=tuple(heads),
                method=figure_method,
            )

    comparison["similarity"] = _similarity_means(similarity)
    comparison["attention"] = _attention_aggregates(attention)
    _summary_figures(
        comparison, figure_cells, figures, figure_errors, out, models, samples, heads, figure_method
    )
    comparison["figures"] = sorted(figures)
    return comparison, figure_errors


def _figure(figures: list[str], errors: list[str], path: Path, function: str, **kwargs: Any) -> None:
    """Render one figure; a failure is logged and reported but never stops the comparison."""
    try:
        from xai import render

        written = getattr(render, function)(path, **kwargs)
    except Exception as error:  # noqa: BLE001 - figures are secondary to the numbers
        log.error("figure %s failed: %s", path.name, error, exc_info=not isinstance(error, PrecursorError))
        errors.append(f"{path.name}: {error}")
        return
    for item in written if isinstance(written, (list, tuple)) else [written]:
        figures.append(Path(item).name)


def _summary_figures(
    comparison: dict,
    figure_cells: dict,
    figures: list[str],
    errors: list[str],
    out: Path,
    models: list[str],
    samples: list[str],
    heads: list[str],
    method: str,
) -> None:
    if not models or not samples or not heads:
        return
    conf = {
        h: {
            m: {s: v["models"].get(m, {}).get("confidence") for s, v in comparison["predictions"][h].items()}
            for m in models
        }
        for h in heads
    }
    correct = {
        h: {
            m: {s: v["models"].get(m, {}).get("correct") for s, v in comparison["predictions"][h].items()}
            for m in models
        }
        for h in heads
    }
    chart = {"samples": samples, "models": models, "heads": heads, "confidence": conf, "correct": correct}
    _figure(
        figures, errors, out / "confidence_comparison.png", "render_confidence_chart", paper=False, **chart
    )
    _figure(
        figures, errors, out / "paper_confidence_comparison", "render_confidence_chart", paper=True, **chart
    )
    for head in heads:
        cells = figure_cells[head]
        if not cells:
            continue
        _figure(
            figures,
            errors,
            out / f"paper_{method}_{head}",
            "render_paper_grid",
            samples=[s for s in samples if any((s, m) in cells for m in models)],
            models=models,
            cells=cells,
            head=head,
            method=method,
        )


# ---------------------------------------------------------------------------- predictions
def _predictions(found: _Found, models: list[str], samples: list[str], heads: list[str]):
    predictions: dict = {h: {} for h in heads}
    for head in heads:
        for sample in samples:
            truths = {}
            per_model = {}
            for model in models:
                record = found.records[model].get(sample)
                if record is None:
                    continue
                true = (record.entry.get("true") or {}).get(head)
                if true is not None:
                    truths[model] = str(true)
                info = record.entry["heads"].get(head)
                if not isinstance(info, dict) or info.get("prediction") is None:
                    continue
                conf = info.get("confidence")
                per_model[model] = {
                    "prediction": str(info["prediction"]),
                    "confidence": None if conf is None else float(conf),
                    "explained_class": info.get("explained_class"),
                }
            distinct = sorted(set(truths.values()))
            true = distinct[0] if len(distinct) == 1 else None
            for model, pred in per_model.items():
                model_true = truths.get(model)
                pred["correct"] = None if model_true is None else pred["prediction"] == model_true
            entry = {"true": true, "models": per_model}
            if len(distinct) > 1:
                entry["true_conflict"] = truths
            predictions[head][sample] = entry
    accuracy: dict = {h: {} for h in heads}
    confidence: dict = {h: {} for h in heads}
    for head in heads:
        for model in models:
            values = [
                predictions[head][s]["models"][model]
                for s in samples
                if model in predictions[head][s]["models"]
            ]
            known = [v["correct"] for v in values if v["correct"] is not None]
            accuracy[head][model] = {
                "correct": int(sum(known)),
                "n": len(known),
                "accuracy": (sum(known) / len(known)) if known else None,
                "unknown_truth": len(values) - len(known),
            }
            per_sample = {
                s: predictions[head][s]["models"][model]["confidence"]
                for s in samples
                if model in predictions[head][s]["models"]
            }
            confidence[head][model] = dict(_mean_std(per_sample.values()), values=per_sample)
    return predictions, accuracy, confidence


def _agreement(predictions: dict, models: list[str], samples: list[str], heads: list[str]) -> dict:
    result: dict = {}
    for head in heads:
        pairs = []
        for a, b in itertools.combinations(models, 2):
            both = [
                s
                for s in samples
                if a in predictions[head][s]["models"] and b in predictions[head][s]["models"]
            ]
            agree = [
                s
                for s in both
                if predictions[head][s]["models"][a]["prediction"]
                == predictions[head][s]["models"][b]["prediction"]
            ]
            wrong = [
                s
                for s in agree
                if predictions[head][s]["true"] is not None
                and predictions[head][s]["models"][a]["prediction"] != predictions[head][s]["true"]
            ]
            pairs.append(
                {
                    "models": [a, b],
                    "n": len(both),
                    "agree": len(agree),
                    "rate": len(agree) / len(both) if both else None,
                    "agree_samples": agree,
                    "agree_wrong": len(wrong),
                    "agree_wrong_samples": wrong,
                }
            )
        common = [s for s in samples if all(m in predictions[head][s]["models"] for m in models)]
        all_agree, agree_wrong = [], []
        if len(models) >= 2:
            for s in common:
                names = {predictions[head][s]["models"][m]["prediction"] for m in models}
                if len(names) == 1:
                    all_agree.append(s)
                    name = names.pop()
                    true = predictions[head][s]["true"]
                    if true is not None and name != true:
                        agree_wrong.append({"sample": s, "prediction": name, "true": true})
        result[head] = {
            "pairs": pairs,
            "all_models": {
                "models": models,
                "n_common": len(common) if len(models) >= 2 else 0,
                "agree": len(all_agree),
                "agree_samples": all_agree,
                "rate": (len(all_agree) / len(common)) if len(models) >= 2 and common else None,
                "agree_wrong": len(agree_wrong),
                "agree_wrong_samples": agree_wrong,
            },
        }
    return result


# ---------------------------------------------------------------------------- attention + similarity
def _attention_for_sample(
    sample: str, loaded: dict, methods: dict, heads: list[str], attention: dict, problems: list
) -> None:
    for model, (record, item) in loaded.items():
        for head in heads:
            info = record.entry["heads"].get(head)
            stored = info.get("attention") if isinstance(info, dict) else None
            for method in methods[model]:
                summary, source = None, None
                if isinstance(stored, dict) and isinstance(stored.get(method), dict):
                    summary, source = stored[method], "results json"
                elif item.axes is not None and f"{method}__{head}" in item.arrays:
                    try:
                        summary = attention_summary(
                            item.arrays[f"{method}__{head}"],
                            item.axes,
                            native_shape=_native_shape(record, item.arrays, method),
                        )
                        source = "computed from npz"
                    except PrecursorError as error:
                        problems.append(
                            {
                                "model": model,
                                "sample": sample,
                                "problem": f"{method}/{head} attention: {error}",
                            }
                        )
                if summary is not None:
                    attention[model][head].setdefault(method, {})[sample] = dict(summary, source=source)


def _similarity_for_sample(
    sample: str, loaded: dict, methods: dict, heads: list[str], similarity: dict
) -> None:
    for (a, (rec_a, item_a)), (b, (rec_b, item_b)) in itertools.combinations(sorted(loaded.items()), 2):
        if item_a.axes is None or item_b.axes is None:
            continue
        for head in heads:
            for method in sorted(set(methods[a]) & set(methods[b])):
                key = f"{method}__{head}"
                if key not in item_a.arrays or key not in item_b.arrays:
                    continue
                try:
                    values = heatmap_similarity(
                        item_a.arrays[key],
                        item_a.axes,
                        item_b.arrays[key],
                        item_b.axes,
                        fraction=RULES["top_fraction"],
                    )
                except PrecursorError as error:
                    values = {"spearman": None, "top_iou": None, "error": str(error)}
                if "concentration" in values:
                    values["concentration"] = {
                        a: values["concentration"]["a"],
                        b: values["concentration"]["b"],
                    }
                explained = {
                    m: (r.entry["heads"].get(head) or {}).get("explained_class")
                    for m, r in ((a, rec_a), (b, rec_b))
                }
                values["explained_class"] = explained
                values["same_explained_class"] = (
                    None if None in explained.values() else explained[a] == explained[b]
                )
                pair = similarity[head].setdefault(method, {}).setdefault(f"{a} vs {b}", {"models": [a, b]})
                pair.setdefault("per_sample", {})[sample] = values


def _similarity_means(similarity: dict) -> dict:
    for per_method in similarity.values():
        for pairs in per_method.values():
            for pair in pairs.values():
                per_sample = pair.get("per_sample", {})
                pair["spearman"] = _mean_std(v["spearman"] for v in per_sample.values())
                pair["top_iou"] = _mean_std(v["top_iou"] for v in per_sample.values())
                conc = [v["concentration"] for v in per_sample.values() if v.get("concentration")]
                pair["concentration_on_common_grid"] = {
                    model: {
                        key: _mean_std(item[model][key] for item in conc)
                        for key in ("normalized_entropy", "top_mass_share")
                    }
                    for model in pair["models"]
                }
    return similarity


def _attention_aggregates(attention: dict) -> dict:
    result: dict = {}
    threshold = RULES["enrichment_concentrates"]
    for model, per_head in attention.items():
        for head, per_method in per_head.items():
            for method, per_sample in per_method.items():
                summaries = [per_sample[s] for s in sorted(per_sample)]
                bands: dict = {}
                names = []
                for s in summaries:
                    for name in s.get("bands") or {}:
                        if name not in names:
                            names.append(name)
                for name in names:
                    entries = [s["bands"].get(name) or {} for s in summaries]
                    covered = [e for e in entries if e.get("covered")]
                    if not covered:
                        bands[name] = {
                            "covered": False,
                            "frequency_range_hz": entries[0].get("frequency_range_hz"),
                            "label": entries[0].get("label"),
                        }
                        continue
                    enrich = [e.get("enrichment") for e in covered if e.get("enrichment") is not None]
                    bands[name] = {
                        "covered": True,
                        "frequency_range_hz": covered[0].get("frequency_range_hz"),
                        "label": covered[0].get("label"),
                        "area_share": _mean_std(e.get("area_share") for e in covered),
                        "mass_share": _mean_std(e.get("mass_share") for e in covered),
                        "enrichment": _mean_std(enrich),
                        "samples_enriched": sum(1 for v in enrich if v >= threshold),
                        "samples_with_numbers": len(enrich),
                    }
                centroid_f = [
                    s["centroid"]["frequency_hz"]
                    for s in summaries
                    if s.get("centroid") and s["centroid"].get("frequency_hz")
                ]
                native = next(
                    (s.get("native_resolution") for s in summaries if s.get("native_resolution")), None
                )
                components = [s.get("components") for s in summaries]
                if components and all(isinstance(c, dict) for c in components):
                    keys = list(components[0])
                    comp = {k: _mean_std(c.get(k) for c in components) for k in keys}
                else:
                    comp = next((c for c in components if isinstance(c, str)), None)
                result.setdefault(model, {}).setdefault(head, {})[method] = {
                    "per_sample": per_sample,
                    "summary": {
                        "n": len(summaries),
                        "empty_maps": sum(1 for s in summaries if s.get("empty")),
                        "bands": bands,
                        "components": comp,
                        "normalized_entropy": _mean_std(
                            (s.get("concentration") or {}).get("normalized_entropy") for s in summaries
                        ),
                        "top_mass_share": _mean_std(
                            (s.get("concentration") or {}).get("top_mass_share") for s in summaries
                        ),
                        "centroid_frequency_hz_geometric_mean": (
                            float(10 ** np.mean(np.log10(centroid_f))) if centroid_f else None
                        ),
                        "centroid_hours_before": _mean_std(
                            (s.get("centroid") or {}).get("hours_before") for s in summaries
                        ),
                        "native_resolution": native,
                    },
                }
    return result


# ============================================================================ the report
def _report(c: Mapping, figure_errors: Sequence[str]) -> str:
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
    _report_trust(c, models, add)
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


def _report_trust(c: Mapping, models: list[str], add) -> None:
    from xai.trust import trust_section

    add("## Can these explanations be trusted?")
    add("")
    trust = c.get("trust") or {}
    for model in sorted(set(models) | set(trust)):
        if model in trust:
            add(f"From the data-set run `{trust[model]['file']}` ({trust[model].get('selection') or 'data set'}).")
            add("")
            for line in trust_section(trust[model], level=3):
                add(line)
        else:
            add(f"- **{model}**: not measured here. The few samples above cannot show it; run "
                f"`python main.py task=dataset model={model}` and pass its folder to `task=compare`.")
            add("")


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
            add(
                f"- the models' results disagree on the true {head} class of {sample}: "
                f"{entry['true_conflict']}"
            )
    add("")
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
                    f"({_spearman_label(rho['mean'])}, n = {rho['n']}), "
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
            splits = sorted(
                {s["components"] for s in summaries.values() if isinstance(s.get("components"), str)}
            )
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
        centroid = (
            "n/a" if centroid_f is None or hours is None else f"{centroid_f * 1e3:.2f} mHz, {hours:.1f} h"
        )
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
        counts = (
            f"enrichment ≥ {high:g} in {band['samples_enriched']} of {band['samples_with_numbers']} sample(s)"
        )
        if index == 0:
            text = (
                f"- {model} {name} places {_pct(mass)} of its mass in the {band_name} band "
                f"({_band_text(band)}), "
                f"{enrich:.2f}× its area share of {_pct(band['area_share']['mean'])} ({counts})"
            )
            if enrich >= high:
                add(text + f" — attention concentrates in the {band_name} band ({enrich:.2f}× ≥ {high:g}).")
            elif enrich <= low:
                add(
                    text
                    + f" — the {band_name} band gets less than its area share ({enrich:.2f}× ≤ {low:.2f})."
                )
            else:
                add(
                    text
                    + f" — attention does not concentrate in the {band_name} band ({enrich:.2f}× < {high:g})."
                )
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


# ============================================================================ task entry point
_UNSET = object()


def run_compare_task(
    cfg: Any,
    folders: Any = _UNSET,
    out_dir: Any = _UNSET,
    expected_models: Any = _UNSET,
    expected_samples: Any = _UNSET,
) -> dict:
    """``python main.py task=compare 'task.folders=[...]'``: compare and write ``<output dir>/comparison``.

    ``conf/task/compare.yaml`` is instantiated as a partial, so its keys arrive as keyword
    arguments; anything not passed is read from ``cfg.task``. ``out_dir`` overrides the output
    folder (default: the Hydra run's output dir + ``/comparison``); ``expected_models`` /
    ``expected_samples`` list what should be there (anything absent is reported as missing).
    Raises :class:`SweepHadFailures` after writing everything when a job failed, is missing or left
    unreadable results (``main.py`` then exits non-zero).
    """
    from hydra.utils import to_absolute_path
    from omegaconf import OmegaConf

    def option(value: Any, key: str) -> Any:
        if value is _UNSET:
            value = OmegaConf.select(cfg, f"task.{key}", default=None) if cfg is not None else None
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        return value

    folders = option(folders, "folders")
    if isinstance(folders, (str, Path)):
        folders = [folders]
    folders = list(folders or [])
    if not folders:
        raise ConfigError(
            "task.folders: give the run or sweep folders to compare, e.g. "
            "'task.folders=[outputs/multirun/2024-01-01/12-00-00]'"
        )
    out_dir = option(out_dir, "out_dir")
    if not out_dir:
        try:
            from hydra.core.hydra_config import HydraConfig

            out_dir = Path(HydraConfig.get().runtime.output_dir) / OUTPUT_DIR_NAME
        except ValueError as error:
            raise ConfigError(
                "task.out_dir: not running under Hydra, so the output folder must be given"
            ) from error
    out_path = Path(_absolute(str(out_dir), to_absolute_path))
    expected_models = option(expected_models, "expected_models")
    expected_samples = option(expected_samples, "expected_samples")
    comparison = compare_runs(
        [Path(_absolute(str(f), to_absolute_path)) for f in folders],
        out_path,
        expected_models=[str(m) for m in expected_models] if expected_models else None,
        expected_samples=[str(m) for m in expected_samples] if expected_samples else None,
    )
    if has_failures(comparison):
        jobs = comparison["jobs"]
        raise SweepHadFailures(
            f"{len(jobs['failed'])} failed, {len(jobs['missing'])} missing and {len(jobs['unreadable'])} "
            f"unreadable job result(s); see {out_path / REPORT_FILE}"
        )
    return comparison


def _absolute(path: str, to_absolute_path) -> str:
    try:
        return to_absolute_path(path)
    except ValueError:  # not under Hydra: relative to the current folder
        return str(Path(path).resolve())
