"""Merging the shards of a data-set run (:mod:`xai.shards`) into one ``<model>/`` folder equal to a single-process run.

The merge needs no model and no TensorFlow: it checks that every shard of the run finished (its
``shard.json``) with the same run fingerprint, writes the heatmap rows of every shard at their global
rows (byte for byte what one process writes), joins the journals in data-set order, copies the
per-sample figures, and runs the same aggregation as a single process
(:func:`xai.dataset.write_results`). Only ``run`` in ``dataset_results.json`` (timing, memory, the
shard list) differs. A missing, unfinished or failed shard is listed in one error and no result is
written (only ``<model>/status.json`` recording the refusal).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InputDataError
from core.failures import failure_status, write_failure
from core.io import atomic_write_json, atomic_write_text
from core.names import STATUS_FILE
from geomag.axes import SpectrogramAxes
from geomag.dataset import ClassMappings
from xai.dataset import INDEX, JOURNAL, DatasetFigures, DatasetOptions, DatasetRun, RunInfo, write_results
from xai.heatmap_store import HeatmapStore
from xai.pipeline import ExplainContext
from xai.runtime import staged_folder
from xai.shards import SHARD_FILE

log = logging.getLogger(__name__)

__all__ = ["MergeRequest", "find_shards", "merge_shards"]


@dataclass(frozen=True)
class MergeRequest:
    """What to merge: the shard folders under ``folder`` (a sweep folder, or any folder above the shards),
    expecting ``shards`` shards per model (``None``: as the shards say); the merged ``<model>/`` goes to
    ``out`` (default ``folder``). ``figures`` paints the class means, ``page`` writes a folder's report page."""

    folder: Path
    shards: int | None = None
    out: Path | None = None
    figures: DatasetFigures = DatasetFigures()
    page: Callable[[Path], Any] | None = None


@dataclass
class _Found:
    """Finished shard manifests per model, and what went wrong with the others."""

    manifests: dict[str, dict[int, tuple[Path, dict]]] = field(default_factory=dict)
    unfinished: dict[str, list[str]] = field(default_factory=dict)  # model -> descriptions
    failures: list[dict] = field(default_factory=list)  # status.json of failed shard jobs


@dataclass(frozen=True)
class _ModelFacts:
    """What the aggregation needs to know about the model (no Keras model is loaded to merge)."""

    name: str
    source_file: str
    class_mappings: ClassMappings
    heads: tuple[str, ...]

    def classes(self, head: str) -> list[str]:
        return self.class_mappings.classes(head)


def _skipped(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts[:-1])


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InputDataError(path, f"unreadable ({error})") from None
    if not isinstance(data, dict):
        raise InputDataError(path, "expected a JSON object")
    return data


def _shard_of(overrides: Sequence[str]) -> int | None:
    for item in overrides:
        key, _, value = str(item).lstrip("+~").partition("=")
        if key == "task.shard" and value.strip().isdigit():
            return int(value)
    return None


def find_shards(folder: Path) -> _Found:
    """Every shard folder under ``folder``: finished ones (``shard.json``), unfinished ones, failed jobs."""
    found = _Found()
    for path in sorted(folder.rglob(SHARD_FILE)):
        if _skipped(path, folder):
            continue
        manifest = _read(path)
        model, index = str(manifest.get("model")), int(manifest.get("shard", -1))
        per_model = found.manifests.setdefault(model, {})
        if index in per_model and per_model[index][1]["index"]["fingerprint"] != manifest["index"]["fingerprint"]:
            raise InputDataError(path, f"shard {index} of model {model} also in {per_model[index][0]} for another run")
        per_model.setdefault(index, (path.parent, manifest))
    for path in sorted(folder.rglob("*.shard-*-of-*")):
        if path.is_dir() and not (path / SHARD_FILE).exists() and not _skipped(path, folder):
            model = path.name.split(".shard-")[0]
            found.unfinished.setdefault(model, []).append(
                f"{path.relative_to(folder)} has no {SHARD_FILE} (unfinished)"
            )
    for path in sorted(folder.rglob(STATUS_FILE)):
        status = {} if _skipped(path, folder) else _read(path)
        shard = _shard_of(status.get("overrides") or [])
        if status.get("status") == "failed" and shard is not None:
            found.failures.append({**status, "shard": shard, "file": str(path.relative_to(folder))})
    return found


def _problems(found: _Found, model: str, count: int) -> list[str]:
    have = found.manifests.get(model, {})
    problems = []
    for index in range(count):
        if index in have:
            continue
        failed = [f for f in found.failures if f["shard"] == index and f.get("model") in (None, model)]
        if failed:
            problems.append(f"shard {index} failed: {failed[0].get('error')} ({failed[0]['file']})")
        else:
            problems.append(f"shard {index} missing")
    if problems:
        problems += found.unfinished.get(model, [])
        problems += [  # failed jobs asking for a shard that does not exist (e.g. task.shard out of range)
            f"job task.shard={f['shard']} failed: {f.get('error')} ({f['file']})"
            for f in found.failures
            if not 0 <= f["shard"] < count and f.get("model") in (None, model)
        ]
    counts = {m["shards"] for _, m in have.values()}
    prints = {m["index"]["fingerprint"] for _, m in have.values()}
    if len(counts) > 1 or (counts and counts != {count}):
        problems.append(f"the shards were made for {sorted(counts)} shards, expected {count}")
    if len(prints) > 1:
        problems.append("the shards belong to different runs (different fingerprints)")
    return problems


def merge_shards(request: MergeRequest) -> list[Path]:
    """Merge every model's shards under ``request.folder``; the merged ``<model>/`` folders.

    Raises :class:`InputDataError` naming every missing, unfinished or failed shard (after writing
    ``<model>/status.json`` with the same list); nothing complete-looking is written then.
    """
    folder = Path(request.folder)
    if not folder.is_dir():
        raise InputDataError(folder, "no such folder to merge shards from")
    found = find_shards(folder)
    models = sorted(found.manifests) or sorted(found.unfinished)
    if not models:
        raise InputDataError(folder, f"no data-set shards found (no {SHARD_FILE} and no *.shard-*-of-* folder)")
    out = Path(request.out or folder)
    merged, errors = [], []
    for model in models:
        have = found.manifests.get(model, {})
        count = int(request.shards or (next(iter(have.values()))[1]["shards"] if have else 0))
        problems = _problems(found, model, count) if count else [f"no shard of model {model} finished"]
        if problems:
            message = f"cannot merge the {count} shards of model {model}: " + "; ".join(problems)
            write_failure(out / model, failure_status(message, "InputDataError", model, None))
            errors.append(message)
            continue
        merged.append(_merge_model(request, out / model, [have[i] for i in range(count)]))
    if errors:
        raise InputDataError(folder, " | ".join(errors))
    return merged


def _merge_model(request: MergeRequest, final: Path, shards: Sequence[tuple[Path, dict]]) -> Path:
    started = time.perf_counter()
    first = shards[0][1]
    index = first["index"]
    with staged_folder(final) as staging:
        run = _merged_run(staging, first, request.figures)
        journal = _merge_rows(run, index, shards)
        _copy_figures(staging, shards)
        randomisation = {}
        if first.get("randomisation"):
            randomisation = _read(shards[0][0] / first["randomisation"])
        run_fields = _run_fields(shards, time.perf_counter() - started)
        write_results(run, journal, randomisation, run_fields)
        if request.page is not None:
            request.page(staging)
    log.info("merged %d shards of model %s into %s", len(shards), first["model"], final)
    return final


def _merged_run(folder: Path, manifest: Mapping, figures: DatasetFigures) -> DatasetRun:
    """The run object :func:`xai.dataset.write_results` aggregates, rebuilt from a shard's manifest."""
    facts = manifest["model_facts"]
    bundle = _ModelFacts(
        name=str(facts["name"]),
        source_file=str(facts["model_file"]),
        class_mappings=ClassMappings.from_dict(facts["class_mappings"]),
        heads=tuple(facts["heads"]),
    )
    index = manifest["index"]
    axes = SpectrogramAxes.from_dict(index["axes"])
    options = DatasetOptions(**manifest["options"])
    context = ExplainContext(
        bundle, dict.fromkeys(index["methods"]), tuple(index["heads"]), options.explained_class, axes=axes
    )
    keys = [(m, h) for m in index["methods"] for h in index["heads"]]
    store = HeatmapStore(folder / "heatmaps", keys, len(index["samples"]), index["grid_shape"], dtype=index["dtype"])
    info = RunInfo(describe=manifest.get("describe") or {})
    return DatasetRun(context, options, folder, store, info, figures, tuple(index["grid_shape"]), 0)


def _merge_rows(run: DatasetRun, index: Mapping, shards: Sequence[tuple[Path, dict]]) -> list[dict]:
    """Heatmap rows at their global rows and the journal lines in data-set order; returns the journal."""
    names = index["samples"]
    lines: list[tuple[int, bytes, dict]] = []
    for folder, manifest in shards:
        shard_store = HeatmapStore(
            folder / "heatmaps",
            run.store.keys,
            manifest["n_samples"],
            index["grid_shape"],
            dtype=index["dtype"],
            create=False,
        )
        rows = [row for begin, end in manifest["batches"] for row in range(begin, end)]
        size = max(end - begin for begin, end in manifest["batches"])  # every batch but the data set's last
        for method, head in run.store.keys:
            for start, block in shard_store.chunks(method, head, size=size):
                run.store.write(method, head, rows[start], block)  # one whole batch, contiguous in both
        raw = (folder / JOURNAL).read_bytes().splitlines(keepends=True)
        if len(raw) != manifest["n_samples"]:
            raise InputDataError(folder / JOURNAL, f"holds {len(raw)} lines, the manifest says {manifest['n_samples']}")
        for line, row in zip(raw, rows):
            entry = json.loads(line)
            if entry.get("index") != row or entry.get("sample") != names[row]:
                raise InputDataError(folder / JOURNAL, f"line for row {row} holds {entry.get('sample')!r}")
            lines.append((row, line, entry))
    lines.sort(key=lambda item: item[0])
    if [row for row, _, _ in lines] != list(range(len(names))):
        raise InputDataError(run.folder, "the shards do not cover every sample exactly once")
    atomic_write_json(run.folder / "heatmaps" / INDEX, dict(index))
    atomic_write_text(run.folder / JOURNAL, b"".join(line for _, line, _ in lines).decode("utf-8"))
    return [entry for _, _, entry in lines]


def _copy_figures(folder: Path, shards: Sequence[tuple[Path, dict]]) -> None:
    for shard_folder, _ in shards:
        figures = shard_folder / "figures"
        if figures.is_dir():
            (folder / "figures").mkdir(exist_ok=True)
            for path in sorted(figures.iterdir()):
                shutil.copy2(path, folder / "figures" / path.name)


def _run_fields(shards: Sequence[tuple[Path, dict]], join_seconds: float) -> dict:
    """``run`` of the merged results: the slowest shard's seconds, the joining's, each shard's time and memory."""
    per_shard = [
        {
            "shard": m["shard"],
            "folder": str(folder),
            "n_samples": m["n_samples"],
            **{k: m["run"].get(k) for k in ("seconds_this_process", "resumed_from", "peak_rss_mb")},
        }
        for folder, m in shards
    ]
    growth = [m["run"].get("rss_growth_after_warmup") for _, m in shards]
    cost: dict = {}
    for _, m in shards:  # seconds of each check, summed over the shards
        for name, item in (m["run"].get("check_seconds") or {}).items():
            total = cost.setdefault(name, {"seconds": 0.0, "samples": 0, "by_method": {}})
            total["seconds"] = round(total["seconds"] + float(item.get("seconds") or 0), 3)
            total["samples"] += int(item.get("samples") or 0)
            for method, seconds in (item.get("by_method") or {}).items():
                total["by_method"][method] = round(total["by_method"].get(method, 0.0) + float(seconds), 3)
    return {
        "seconds_this_process": max(s["seconds_this_process"] or 0 for s in per_shard),  # the slowest shard
        "join_seconds": round(join_seconds, 1),  # joining rows and journals (before the aggregation)
        "resumed_from": sum(s["resumed_from"] or 0 for s in per_shard),
        "peak_rss_mb": max(s["peak_rss_mb"] or 0 for s in per_shard),
        "rss_growth_after_warmup": max((g for g in growth if g is not None), default=None),
        "check_seconds": cost,
        "shards": per_shard,
    }
