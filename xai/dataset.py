"""Data-set mode: explain every sample of a split (or a whole metadata CSV) in batches and measure
whether the explanations can be trusted.

Per batch (:mod:`xai.pipeline`), for every method and head: the maps go to one compact array file
per (method, head) (:mod:`xai.heatmap_store`), and one line per sample goes to ``samples.jsonl``
(predictions, band attention shares, ground-truth localisation where masks exist,
deletion/insertion AUCs for the first ``faithfulness_samples``). The journal makes a run
resumable: an interrupted run continues with the samples it has not finished. At the end the
journal and the array files are aggregated (:mod:`xai.trust`): accuracy and confusion per head,
class-mean maps, band-share distributions with bootstrap confidence intervals, and the trust
measures with a verdict per method.

Usable from a notebook: :func:`explain_dataset` takes a bundle, explainers, a data source and the
records; the Hydra task (:mod:`xai.tasks.dataset`) only wires the config to it and hands in the
figure painters (:class:`DatasetFigures`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError, InputDataError
from core.io import atomic_savez, atomic_write_json, atomic_write_text
from core.jsonvalues import json_value
from core.names import DATASET_FILE
from geomag.dataset import SampleRecord
from xai import trust
from xai.explainers.base import normalize_for_display
from xai.heatmap_store import HeatmapStore
from xai.memory import peak_rss_mb, release_freed_memory, rss_growth_after_warmup, rss_mb
from xai.metrics.faithfulness import (
    MODES,
    area_under_curve,
    importance_order,
    median_background,
    perturbation_curves,
    random_order,
)
from xai.metrics.localisation import localisation_scores, mask_area_share, random_heatmaps
from xai.pipeline import (
    BatchExplanation,
    ExplainContext,
    GridBatch,
    batches,
    check_heads,
    explain_batch,
    load_grids,
    predict,
)

log = logging.getLogger(__name__)

__all__ = [
    "JOURNAL",
    "DatasetFigures",
    "DatasetOptions",
    "RunInfo",
    "explain_dataset",
    "peak_rss_mb",
    "read_journal",
    "release_freed_memory",
    "rss_mb",
]

JOURNAL = "samples.jsonl"
INDEX = "index.json"


@dataclass
class DatasetOptions:
    """What the data-set run computes (``conf/task/dataset.yaml``)."""

    heads: Sequence[str] = ("magnitude", "azimuth")
    explained_class: Any = "predicted"
    batch_size: int = 16
    figures: Any = 0  # per-sample figures: the first N samples, or a list of sample names
    localisation: bool = True  # needs ground-truth masks (the demo data set has them)
    faithfulness_samples: int = 50  # deletion/insertion for the first N samples (0: off)
    faithfulness_steps: int = 10
    randomisation_samples: int = 8  # cascading randomisation + random-logit test (0: off)
    randomisation_steps: int = 5
    randomisation_methods: Sequence[str] | None = None  # null: every method
    bootstrap_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    thresholds: dict = field(default_factory=dict)

    def fingerprint(self, extra: Mapping) -> str:
        payload = json.dumps({"options": json_value(asdict(self)), **json_value(extra)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


class _Progress:
    """A progress bar on a terminal (tqdm), a log line every ~10 % otherwise."""

    def __init__(self, total: int, done: int) -> None:
        self.total, self.done, self.next_log = total, done, 0.0
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="sample", desc="data set")

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.done / max(self.total, 1) >= self.next_log or self.done == self.total:
            log.info("explained %d/%d samples (RSS %.0f MiB)", self.done, self.total, rss_mb())
            self.next_log = self.done / max(self.total, 1) + 0.1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------- journal
def read_journal(folder: Path) -> list[dict]:
    """Complete lines of ``samples.jsonl``; a torn last line (killed mid-write) is dropped and cut off."""
    path = Path(folder) / JOURNAL
    if not path.exists():
        return []
    raw = path.read_bytes()
    entries, good = [], 0
    for line in raw.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            break
        good += len(line)
    if good != len(raw):
        with open(path, "r+b") as handle:
            handle.truncate(good)
    return entries


def _append_journal(folder: Path, entries: Sequence[dict]) -> None:
    text = "".join(json.dumps(json_value(e), allow_nan=False) + "\n" for e in entries)
    with open(Path(folder) / JOURNAL, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


# --------------------------------------------------------------------------- run set-up
@dataclass(frozen=True)
class RunInfo:
    """What the caller knows about a data-set run: each sample's split (demo models) and a
    description (selection, data source) kept in the fingerprint and in the results."""

    splits: Mapping[str, str] = field(default_factory=dict)
    describe: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetFigures:
    """Figure painters handed in by the caller, so that this module never imports the renderers.

    ``sample(path, sample=, model=, grid_image=, axes=, heads=)`` draws the per-sample figures of
    ``DatasetOptions.figures``; ``class_means(path, model=, method=, means=, counts=, axes=)``
    draws one class-mean figure per method. ``None`` draws nothing.
    """

    sample: Callable[..., Any] | None = None
    class_means: Callable[..., Any] | None = None


@dataclass
class _Run:
    """The fixed parts of one data-set run."""

    context: ExplainContext
    options: DatasetOptions
    folder: Path
    store: HeatmapStore
    info: RunInfo
    figures: DatasetFigures
    image_shape: tuple[int, ...]
    done: int  # samples finished by an earlier, interrupted run

    def predict(self, grids: np.ndarray) -> dict:
        """Class probabilities of spectrogram grids (the deletion/insertion curves' model)."""
        bundle = self.context.bundle
        return bundle.predict_probabilities(bundle.prepare(grids))


def explain_dataset(
    bundle: Any,
    explainers: Mapping[str, Any],
    source: Any,
    records: Sequence[SampleRecord],
    folder: str | os.PathLike,
    options: DatasetOptions | None = None,
    *,
    info: RunInfo | None = None,
    figures: DatasetFigures | None = None,
) -> dict:
    """Explain ``records`` into ``folder`` (resuming a matching unfinished run there) and return the
    aggregated results (also written as ``dataset_results.json`` + ``report.md``)."""
    options = options or DatasetOptions()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    records = list(records)
    if not records:
        raise ConfigError("task.split: no samples to explain")
    heads = check_heads(bundle, options.heads)
    first = source.load(records[0])
    context = ExplainContext(bundle, explainers, heads, options.explained_class, axes=first.axes, attention="bands")
    run = _open(context, options, folder, records, first.image.shape, info or RunInfo(), figures or DatasetFigures())
    progress = _Progress(len(records), run.done)
    rss_trace: list[list[float]] = []
    started = time.perf_counter()
    try:
        for begin, end in batches(len(records), int(options.batch_size), start=run.done):
            _explain_rows(run, source, records[begin:end], begin)
            release_freed_memory()
            progress.update(end - begin)
            rss_trace.append([end, round(rss_mb(), 1)])
    finally:
        progress.close()
    return _finish(run, source, records, time.perf_counter() - started, rss_trace)


def _open(
    context: ExplainContext,
    options: DatasetOptions,
    folder: Path,
    records: Sequence[SampleRecord],
    image_shape: Sequence[int],
    info: RunInfo,
    figures: DatasetFigures,
) -> _Run:
    """Index, heatmap files and journal of a new run, or those of the matching interrupted run in ``folder``."""
    grid_shape = tuple(int(v) for v in image_shape[:2])
    names = [r.name for r in records]
    methods, heads = context.methods, list(context.heads)
    bundle = context.bundle
    fingerprint = options.fingerprint(
        {
            "model": bundle.name,
            "model_file": str(bundle.source_file),
            "methods": methods,
            "samples": names,
            **info.describe,
        }
    )
    index = {
        "fingerprint": fingerprint,
        "samples": names,
        "methods": methods,
        "heads": heads,
        "grid_shape": list(grid_shape),
        "dtype": "float16",
        "axes": context.axes.to_dict(),
    }
    done = len(_resume_state(folder, index))
    store = HeatmapStore(
        folder / "heatmaps", [(m, h) for m in methods for h in heads], len(records), grid_shape, create=not done
    )
    if not done:
        atomic_write_json(folder / "heatmaps" / INDEX, index)
        (folder / JOURNAL).write_text("")
    else:
        log.info("resuming: %d of %d samples already done in %s", done, len(records), folder)
    return _Run(context, options, folder, store, info, figures, tuple(int(v) for v in image_shape), done)


# --------------------------------------------------------------------------- one batch
def _explain_rows(run: _Run, source: Any, rows: Sequence[SampleRecord], begin: int) -> None:
    """Explain one batch, store its maps, draw the chosen figures and append its journal lines."""
    (batch,) = load_grids(source, rows, expected_shape=run.image_shape)
    masks = _masks(source, rows, batch.grid_shape) if run.options.localisation else None
    result = explain_batch(run.context, batch)
    entries = _journal_entries(run, result, masks, begin)
    chosen = _figure_rows(run.options.figures, rows, begin)
    if run.figures.sample is not None and chosen:
        _render_figures(run, result, chosen, entries)
    _append_journal(run.folder, entries)


@dataclass
class _References:
    """What a batch's maps are measured against: the random cell order's deletion/insertion AUCs
    (``random_auc[mode][head]``, for the ``faithful`` rows, with their median-background
    ``baseline``) and the ground-truth masks with their area shares and a random map's scores."""

    faithful: np.ndarray
    baseline: np.ndarray | None = None
    random_auc: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    masks: np.ndarray | None = None
    mask_area: np.ndarray | None = None
    random_localisation: dict[str, np.ndarray] | None = None


def _references(run: _Run, result: BatchExplanation, masks: np.ndarray | None, begin: int) -> _References:
    grids, heads, seed = result.batch.grids, run.context.heads, int(run.options.seed)
    n = len(grids)
    ref = _References(np.flatnonzero(np.arange(begin, begin + n) < run.options.faithfulness_samples), masks=masks)
    if len(ref.faithful):
        ref.baseline = median_background(grids[ref.faithful])
        orders = random_order((len(ref.faithful), *grids.shape[1:3]), seed=seed + begin)
        targets = {h: result.predictions.targets[h][ref.faithful] for h in heads}
        for mode in MODES:
            curves = perturbation_curves(
                run.predict,
                grids[ref.faithful],
                orders,
                targets,
                mode,
                steps=run.options.faithfulness_steps,
                baseline=ref.baseline,
            )
            ref.random_auc[mode] = {h: area_under_curve(curves[h]) for h in heads}
    if masks is not None:
        ref.mask_area = mask_area_share(masks)
        ref.random_localisation = localisation_scores(
            random_heatmaps((n, *grids.shape[1:3]), seed=seed + 7919 + begin), masks
        )
    return ref


def _journal_entries(run: _Run, result: BatchExplanation, masks: np.ndarray | None, begin: int) -> list[dict]:
    """One journal line per sample; every method's maps go to the heatmap store on the way."""
    records = result.batch.records
    entries = [
        {
            "sample": r.name,
            "index": begin + i,
            "split": run.info.splits.get(r.name),
            "true": {"magnitude": r.magnitude_class, "azimuth": r.azimuth_class},
            "heads": {},
        }
        for i, r in enumerate(records)
    ]
    ref = _references(run, result, masks, begin)
    for head in run.context.heads:
        head_entries = [_head_entry(result, head, i, ref) for i in range(len(records))]
        for method, maps in result.maps[head].items():
            run.store.write(method, head, begin, maps.on_grid)
            _measure(run, result, (head, method), head_entries, ref)
        for entry, head_entry in zip(entries, head_entries):
            entry["heads"][head] = head_entry
    return entries


def _head_entry(result: BatchExplanation, head: str, i: int, ref: _References) -> dict:
    """Sample ``i``'s prediction for ``head`` with the random references; methods are added by :func:`_measure`."""
    entry = result.prediction(head, i)
    entry["probabilities"] = [round(float(p), 6) for p in result.predictions.probabilities[head][i]]
    entry.update(bands={}, localisation={}, faithfulness={})
    if ref.masks is not None:
        entry["mask_area_share"] = _finite_or_none(ref.mask_area[i])
        entry["localisation"]["random"] = {k: _finite_or_none(v[i]) for k, v in ref.random_localisation.items()}
    position = np.flatnonzero(ref.faithful == i)  # this sample's row among the faithful ones, if any
    for mode, per_head in ref.random_auc.items():
        if position.size:
            entry["faithfulness"].setdefault("random", {})[f"{mode}_auc"] = float(per_head[head][position[0]])
    return entry


def _measure(
    run: _Run, result: BatchExplanation, key: tuple[str, str], head_entries: list[dict], ref: _References
) -> None:
    """Band shares, localisation and deletion/insertion AUCs of one (head, method)'s maps."""
    head, method = key
    maps = result.maps[head][method]
    for i, entry in enumerate(head_entries):
        entry["bands"][method] = maps.attention[i]
    if ref.masks is not None:
        scores = localisation_scores(maps.on_grid, ref.masks)
        for i, entry in enumerate(head_entries):
            entry["localisation"][method] = {k: _finite_or_none(v[i]) for k, v in scores.items()}
    if len(ref.faithful):
        order = importance_order(maps.on_grid[ref.faithful])
        targets = {head: result.predictions.targets[head][ref.faithful]}
        for mode in MODES:
            curves = perturbation_curves(
                run.predict,
                result.batch.grids[ref.faithful],
                order,
                targets,
                mode,
                steps=run.options.faithfulness_steps,
                baseline=ref.baseline,
            )
            auc = area_under_curve(curves[head])
            for j, i in enumerate(ref.faithful):
                head_entries[i]["faithfulness"].setdefault(method, {})[f"{mode}_auc"] = float(auc[j])


def _resume_state(folder: Path, index: Mapping) -> list[dict]:
    """Finished journal entries of a matching earlier run in ``folder`` (empty list: start afresh)."""
    index_path = folder / "heatmaps" / INDEX
    if not index_path.exists():
        return []
    try:
        previous = json.loads(index_path.read_text())
    except (OSError, json.JSONDecodeError):
        previous = {}
    if previous.get("fingerprint") != index["fingerprint"]:
        log.info("%s holds a run with another configuration: starting afresh", folder)
        return []
    entries = read_journal(folder)
    names = index["samples"]
    if [e.get("sample") for e in entries] != names[: len(entries)]:
        log.warning("%s: journal does not match the sample order; starting afresh", folder)
        return []
    return entries


def _masks(source: Any, batch: Sequence[SampleRecord], grid_shape: tuple[int, int]) -> np.ndarray | None:
    getter = getattr(source, "mask", None)
    if getter is None:
        return None
    masks = [getter(r) for r in batch]
    if all(m is None for m in masks):
        return None
    out = np.zeros((len(batch), *grid_shape), dtype=bool)
    for i, (record, mask) in enumerate(zip(batch, masks)):
        if mask is None:
            continue
        if mask.shape != grid_shape:
            raise InputDataError(
                record.extra.get("mask_path") or record.path,
                f"ground-truth mask shape {mask.shape} differs from the grid {grid_shape}",
            )
        out[i] = mask
    return out


def _figure_rows(figures: Any, batch: Sequence[SampleRecord], begin: int) -> list[int]:
    """Rows of this batch that get a figure: ``figures`` = N (the first N samples) or sample names."""
    if isinstance(figures, (list, tuple)):
        wanted = {str(name) for name in figures}
        return [i for i, r in enumerate(batch) if r.name in wanted]
    return [i for i in range(len(batch)) if begin + i < int(figures or 0)]


def _render_figures(run: _Run, result: BatchExplanation, rows: Sequence[int], entries: Sequence[dict]) -> None:
    """Per-sample figures for a selection (``task.figures``), of the maps as stored (float16)."""
    folder = run.folder / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    for i in rows:
        record = result.batch.records[i]
        heads = {}
        for head, entry in entries[i]["heads"].items():
            maps = {
                m: np.asarray(result.maps[head][m].on_grid[i], dtype=run.store.dtype).astype(np.float32)
                for m in entry["bands"]
            }
            heads[head] = {
                "prediction": entry["prediction"],
                "confidence": entry["confidence"],
                "true": entry["true"],
                "correct": entry["correct"],
                "explained_class": entry["explained_class"],
                "maps": {m: normalize_for_display(v[None])[0] for m, v in maps.items()},
            }
        run.figures.sample(
            folder / f"{record.name}_visualization.png",
            sample=record.name,
            model=run.context.bundle.name,
            grid_image=result.batch.grids[i],
            axes=run.context.axes,
            heads=heads,
        )


# --------------------------------------------------------------------------- the end of a run
def _finish(
    run: _Run, source: Any, records: Sequence[SampleRecord], elapsed: float, rss_trace: list[list[float]]
) -> dict:
    """Randomisation tests, class means and the aggregation; writes ``dataset_results.json`` + ``report.md``."""
    folder, options = run.folder, run.options
    journal = read_journal(folder)
    if len(journal) != len(records):
        raise InputDataError(folder / JOURNAL, f"journal holds {len(journal)} samples, expected {len(records)}")
    randomisation = {}
    if options.randomisation_samples > 0:
        randomisation = _randomisation(run, source, records[: options.randomisation_samples])
    means = trust.class_means(run.store, journal, run.context)
    atomic_savez(folder / trust.CLASS_MEANS_FILE, **means.arrays(), **run.context.axes.to_npz_arrays())
    figures = _draw_class_means(run, means)
    results = trust.aggregate_run(journal, run.context, options, randomisation, means.summary(figures))
    results["run"] = {
        "seconds_this_process": round(elapsed, 1),
        "resumed_from": run.done,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_trace_mb": rss_trace,
        "rss_growth_after_warmup": rss_growth_after_warmup(rss_trace),
    }
    results["confidence"] = float(options.confidence)
    results.update({k: v for k, v in run.info.describe.items() if k not in results})
    atomic_write_json(folder / DATASET_FILE, results)
    atomic_write_text(folder / "report.md", trust.dataset_report(results))
    return results


def _draw_class_means(run: _Run, means: trust.ClassMeans) -> list[str]:
    """One class-mean figure per method (when the caller handed in a painter); their file names."""
    if run.figures.class_means is None:
        return []
    names = []
    for method in run.context.methods:
        path = run.folder / f"class_means_{method}.png"
        run.figures.class_means(
            path,
            model=run.context.bundle.name,
            method=method,
            means=means.means[method],
            counts=means.counts[method],
            axes=run.context.axes,
        )
        names.append(path.name)
    return names


def _randomisation(run: _Run, source: Any, records: Sequence[SampleRecord]) -> dict:
    """Cascading model-parameter randomisation and the random-logit test (Adebayo et al. 2018) on a
    few samples, per method and head: Spearman rank correlation with the original maps."""
    from xai.metrics.randomisation import cascading_randomisation, random_logit_test

    context, options = run.context, run.options
    predictions = predict(context, GridBatch.of(records, [source.load(r) for r in records]))
    wanted = options.randomisation_methods
    out: dict = {}
    for method in [m for m in context.explainers if wanted is None or m in wanted]:
        out[method] = {}
        for head in context.heads:
            targets = predictions.targets[head]

            def explain(x, classes, _explainer=context.explainers[method], _head=head):
                return _explainer(x, head=_head, class_indices=np.asarray(classes, dtype=np.int32)).maps

            log.info("randomisation test: %s, head %s, %d samples", method, head, len(records))
            steps = cascading_randomisation(
                context.bundle.model,
                explain,
                predictions.inputs,
                targets,
                max_steps=options.randomisation_steps,
                seed=options.seed,
            )
            logit = random_logit_test(
                explain, predictions.inputs, targets, len(context.bundle.classes(head)), seed=options.seed
            )
            out[method][head] = {
                "cascading": [
                    {
                        "label": s["label"],
                        "layers": list(s["layers"]),
                        "spearman": [_finite_or_none(v) for v in np.asarray(s["spearman"], dtype=float)],
                    }
                    for s in steps
                ],
                "random_logit": [_finite_or_none(v) for v in np.asarray(logit, dtype=float)],
            }
    return out
