"""Finding the results, data-set results, failure records and Hydra job folders under run and sweep folders."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import InputDataError, PrecursorError
from core.names import COMPARISON_DIR, DATASET_FILE, RESULTS_FILE, STATUS_FILE
from models.identity import model_name
from xai.compare.load import load_yaml, read_json
from xai.results_schema import check_results

log = logging.getLogger(__name__)

# Jobs of these tasks are expected to leave results (a train or compare job is not).
EXPLAINING_TASKS = ("explain", "dataset")


@dataclass
class SampleRecord:
    """One sample of one model, as found in a ``visualization_results.json``."""

    model: str
    sample: str
    folder: Path  # the model folder
    results_file: Path
    entry: dict  # the sample's entry of visualization_results.json
    meta: dict  # the rest of visualization_results.json


@dataclass
class Found:
    """Everything found under the folders, merged by model name."""

    records: dict[str, dict[str, SampleRecord]] = field(default_factory=dict)  # model -> sample -> record
    model_meta: dict[str, dict] = field(default_factory=dict)
    model_files: dict[str, list[str]] = field(default_factory=dict)
    failed: list[dict] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)
    unreadable: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    trust: dict[str, dict] = field(default_factory=dict)  # model -> data-set results (task=dataset)
    trust_files: dict[str, str] = field(default_factory=dict)
    first_results: dict[str, Path] = field(default_factory=dict)  # model -> its first results file
    model_sources: dict[str, tuple[str, Path]] = field(default_factory=dict)  # model -> (model file, first file)

    def is_empty(self) -> bool:
        """True when nothing at all (results, failures, missing jobs, data-set results) was found."""
        return not (self.records or self.failed or self.missing or self.unreadable or self.trust)


def is_skipped(path: Path, root: Path) -> bool:
    """Skip earlier comparison outputs and hidden folders (e.g. ``.hydra``, ``.cache``)."""
    parts = path.relative_to(root).parts[:-1]
    return any(p == COMPARISON_DIR or p.startswith(".") for p in parts)


def label(path: Path, root: Path) -> str:
    """A stable display name for a file or folder: relative to the root folder it was found in."""
    rel = path.relative_to(root).as_posix()
    return f"{root.name}/{rel}" if rel != "." else root.name


def _override_value(overrides: Sequence[str], key: str) -> str | None:
    for item in overrides:
        name, sep, value = item.lstrip("+~").partition("=")
        if sep and name == key:
            return value
    return None


def job_info(job_dir: Path) -> dict:
    """Task target, model, sample and overrides of a Hydra job folder (from ``.hydra/``)."""
    values = load_yaml(job_dir / ".hydra" / "overrides.yaml")
    overrides = [str(v) for v in values] if isinstance(values, list) else []
    config = load_yaml(job_dir / ".hydra" / "config.yaml")
    config = config if isinstance(config, dict) else {}
    task = config.get("task") if isinstance(config.get("task"), dict) else {}
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    sample = config.get("sample", _override_value(overrides, "sample"))
    return {
        "task": task.get("_target_"),
        "model": model_name(model) or _override_value(overrides, "model"),
        "sample": sample if isinstance(sample, (str, type(None))) else str(sample),
        "overrides": overrides,
    }


def discover(folders: Sequence[Path]) -> Found:
    """Collect every results, data-set results and status file under ``folders``, and the jobs that left none.

    Raises :class:`~core.errors.InputDataError` when two results files carry the same model name
    but different model files (they are never merged).
    """
    found = Found()
    seen_files: set[Path] = set()
    for root in folders:
        results = sorted(p for p in root.rglob(RESULTS_FILE) if not is_skipped(p, root))
        statuses = sorted(p for p in root.rglob(STATUS_FILE) if not is_skipped(p, root))
        datasets = sorted(p for p in root.rglob(DATASET_FILE) if not is_skipped(p, root))
        for paths, add in ((datasets, _add_dataset), (results, _add_results), (statuses, _add_status)):
            for path in paths:
                if path.resolve() not in seen_files:
                    seen_files.add(path.resolve())
                    add(found, path, root)
        outputs = [*results, *statuses, *datasets]
        found.missing += _missing_jobs(root, outputs)
    return found


def _missing_jobs(root: Path, outputs: Sequence[Path]) -> list[dict]:
    """Hydra job folders of explaining tasks under ``root`` that hold none of ``outputs``."""
    job_dirs = sorted({p.parent for p in root.rglob(".hydra") if p.is_dir() and not is_skipped(p, root)})
    if (root / ".hydra").is_dir():
        job_dirs = sorted(set(job_dirs) | {root})
    missing = []
    for job in job_dirs:
        if any(p.is_relative_to(job) for p in outputs):
            continue
        info = job_info(job)
        if info["task"] and not any(t in str(info["task"]) for t in EXPLAINING_TASKS):
            continue  # a train or compare run: it is not expected to leave explanations
        missing.append(
            {
                "job": label(job, root),
                "model": info["model"],
                "sample": info["sample"],
                "overrides": info["overrides"],
                "reason": "the job folder has neither visualization_results.json nor status.json",
            }
        )
    return missing


def _add_results(found: Found, path: Path, root: Path) -> None:
    try:
        data = check_results(read_json(path), path)
        model = str(data.get("model") or path.parent.name)
    except PrecursorError as error:
        log.error("%s", error)
        found.unreadable.append({"file": label(path, root), "error": str(error)})
        return
    meta = {k: v for k, v in data.items() if k != "samples"}
    _check_same_model_file(found, model, meta, path)
    found.model_meta.setdefault(model, meta)
    found.first_results.setdefault(model, path)
    found.model_files.setdefault(model, []).append(label(path, root))
    per_model = found.records.setdefault(model, {})
    for entry in data["samples"]:
        name = entry["sample"]
        if name in per_model:
            found.duplicates.append(
                {
                    "model": model,
                    "sample": name,
                    "kept": label(per_model[name].results_file, root),
                    "ignored": label(path, root),
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
        per_model[name] = SampleRecord(model, name, path.parent, path, entry, meta)


def _check_same_model_file(found: Found, model: str, meta: dict, path: Path) -> None:
    """Results (and data-set results) of one model name must come from one model file: two
    different files are refused, naming both, instead of one being dropped as a duplicate."""
    second = meta.get("model_file")
    if second is None:
        return
    known = found.model_sources.get(model)
    if known is None:
        found.model_sources[model] = (str(second), path)
        return
    first, first_path = known
    if first != str(second):
        raise InputDataError(
            path,
            f"model {model!r} was explained from model file {second}, but {first_path} "
            f"holds model {model!r} explained from model file {first}; results of different model files "
            "are not merged under one name (compare them in separate runs or give the models different "
            "names: model.name=...)",
        )


def _add_dataset(found: Found, path: Path, root: Path) -> None:
    """A data-set run's results (``task=dataset``): its trust measurements go into the report."""
    try:
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("trust"), dict):
            raise InputDataError(path, "has no 'trust' object")
    except PrecursorError as error:
        log.error("%s", error)
        found.unreadable.append({"file": label(path, root), "error": str(error)})
        return
    model = str(data.get("model") or path.parent.name)
    _check_same_model_file(found, model, data, path)
    if model in found.trust:
        found.duplicates.append(
            {
                "model": model,
                "sample": "(data-set results)",
                "kept": found.trust_files[model],
                "ignored": label(path, root),
            }
        )
        return
    found.trust[model] = data
    found.trust_files[model] = label(path, root)


def _add_status(found: Found, path: Path, root: Path) -> None:
    try:
        data = read_json(path)
        if not isinstance(data, dict):
            raise InputDataError(path, "is not a JSON object")
    except PrecursorError as error:
        found.failed.append(
            {
                "status": "failed",
                "file": label(path, root),
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
            "file": label(path, root),
            "job": label(job, root) if job.is_relative_to(root) else None,
            "model": model,
            "sample": data.get("sample"),
            "error": str(data.get("error") or "no error message recorded"),
        }
    )


def check_expected(found: Found, models: Sequence[str] | None, samples: Sequence[str] | None) -> None:
    """Add a ``missing`` entry for every expected model without results (or failure record) and every
    expected sample a model has no results for."""
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
