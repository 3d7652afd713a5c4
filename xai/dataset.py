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
from geomag.activity_summary import activity_text
from geomag.dataset import SampleRecord
from xai import trust
from xai.explainers.base import normalize_for_display
from xai.explainers.targets import TargetSpec
from xai.heatmap_store import HeatmapStore
from xai.indicators import batch_indicators
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
    batches,
    check_heads,
    explain_batch,
    load_grids,
)
from xai.reliance.summary import aggregate_reliance, reliance_report
from xai.reliance.summary import journal_entry as reliance_journal_entry
from xai.trust.confound import run_confound
from xai.trust.indicators import indicator_correlations, indicator_report
from xai.trust.randomisation import randomisation_tests

log = logging.getLogger(__name__)

__all__ = [
    "JOURNAL",
    "DatasetFigures",
    "DatasetOptions",
    "DatasetRun",
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
    target: Any = None  # xai.target / xai.contrast_class (xai.explainers.targets.TargetSpec); None: the class score
    batch_size: int = 16
    figures: Any = 0  # per-sample figures: the first N samples, or a list of sample names
    localisation: bool = True  # needs ground-truth masks (the demo data set has them)
    faithfulness_samples: int = 50  # deletion/insertion for the first N samples (0: off)
    faithfulness_steps: int = 10
    randomisation_samples: int = 8  # cascading randomisation + random-logit test (0: off)
    randomisation_steps: int = 5
    randomisation_methods: Sequence[str] | None = None  # null: every method
    random_logit_draws: int = 3  # other classes compared per sample in the random-logit test
    min_samples: int = 3  # a check measured on fewer samples is never decided (xai.trust.intervals)
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
    activity: Mapping[str, Any] = field(default_factory=dict)  # sample -> geomagnetic activity summary


@dataclass(frozen=True)
class DatasetFigures:
    """Figure painters handed in by the caller, so that this module never imports the renderers.

    ``sample(path, sample=, model=, grid_image=, axes=, heads=, activity=)`` draws the per-sample figures of
    ``DatasetOptions.figures``; ``class_means(path, model=, method=, means=, counts=, axes=)``
    draws one class-mean figure per method. ``None`` draws nothing.
    """

    sample: Callable[..., Any] | None = None
    class_means: Callable[..., Any] | None = None


@dataclass
class DatasetRun:
    """The fixed parts of one data-set run."""

    context: ExplainContext
    options: DatasetOptions
    folder: Path
    store: HeatmapStore
    info: RunInfo
    figures: DatasetFigures
    image_shape: tuple[int, ...]
    done: int  # samples finished by an earlier, interrupted run
    seconds: dict = field(default_factory=dict)  # faithfulness seconds in this process, per method

    def timed_curves(self, method: str, *args: Any, **kwargs: Any) -> dict:
        """:func:`perturbation_curves` with its seconds added to ``seconds[method]``."""
        started = time.perf_counter()
        curves = perturbation_curves(self.predict, *args, **kwargs)
        self.seconds[method] = self.seconds.get(method, 0.0) + time.perf_counter() - started
        return curves

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
    target = options.target if isinstance(options.target, TargetSpec) else TargetSpec.of(*(options.target or ()))
    context = ExplainContext(bundle, explainers, heads, options.explained_class, first.axes, "bands", target)
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


def run_index(
    context: ExplainContext,
    options: DatasetOptions,
    records: Sequence[SampleRecord],
    grid_shape: Sequence[int],
    info: RunInfo,
) -> dict:
    """``heatmaps/index.json`` of a run: the fingerprint (options, model, methods, samples) and the row order."""
    names = [r.name for r in records]
    bundle, methods = context.bundle, context.methods
    extra = {"model": bundle.name, "model_file": str(bundle.source_file), "methods": methods, "samples": names}
    return {
        "fingerprint": options.fingerprint({**extra, **info.describe}),
        "samples": names,
        "methods": methods,
        "heads": list(context.heads),
        "grid_shape": [int(v) for v in grid_shape],
        "dtype": "float16",
        "axes": context.axes.to_dict(),
    }


def _open(
    context: ExplainContext,
    options: DatasetOptions,
    folder: Path,
    records: Sequence[SampleRecord],
    image_shape: Sequence[int],
    info: RunInfo,
    figures: DatasetFigures,
) -> DatasetRun:
    """Index, heatmap files and journal of a new run, or those of the matching interrupted run in ``folder``."""
    grid_shape = tuple(int(v) for v in image_shape[:2])
    methods, heads = context.methods, list(context.heads)
    index = run_index(context, options, records, grid_shape, info)
    done = len(_resume_state(folder, index))
    store = HeatmapStore(
        folder / "heatmaps", [(m, h) for m in methods for h in heads], len(records), grid_shape, create=not done
    )
    if not done:
        atomic_write_json(folder / "heatmaps" / INDEX, index)
        (folder / JOURNAL).write_text("")
    else:
        log.info("resuming: %d of %d samples already done in %s", done, len(records), folder)
    return DatasetRun(context, options, folder, store, info, figures, tuple(int(v) for v in image_shape), done)


# --------------------------------------------------------------------------- one batch
def _explain_rows(run: DatasetRun, source: Any, rows: Sequence[SampleRecord], begin: int) -> None:
    """Explain one batch, store its maps, draw the chosen figures and append its journal lines."""
    (batch,) = load_grids(source, rows, expected_shape=run.image_shape)
    masks = _masks(source, rows, batch.grid_shape) if run.options.localisation else None
    result = explain_batch(run.context, batch)
    entries = _journal_entries(run, result, masks, begin)
    for entry, values in zip(entries, batch_indicators(batch.grids, batch.axes, rows, source)):
        entry["indicators"] = values  # physical indicators (xai.indicators), for xai.trust.indicators
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


def _references(run: DatasetRun, result: BatchExplanation, masks: np.ndarray | None, begin: int) -> _References:
    grids, heads, seed = result.batch.grids, run.context.heads, int(run.options.seed)
    n = len(grids)
    ref = _References(np.flatnonzero(np.arange(begin, begin + n) < run.options.faithfulness_samples), masks=masks)
    if len(ref.faithful):
        ref.baseline = median_background(grids[ref.faithful])
        orders = random_order((len(ref.faithful), *grids.shape[1:3]), seed=seed + begin)
        targets = {h: result.predictions.targets[h][ref.faithful] for h in heads}
        for mode in MODES:
            curves = run.timed_curves(
                "random order",
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


def _journal_entries(run: DatasetRun, result: BatchExplanation, masks: np.ndarray | None, begin: int) -> list[dict]:
    """One journal line per sample; every method's maps go to the heatmap store on the way."""
    records = result.batch.records
    entries = [
        {
            "sample": r.name,
            "index": begin + i,
            "split": run.info.splits.get(r.name),
            "true": {"magnitude": r.magnitude_class, "azimuth": r.azimuth_class},
            "activity": run.info.activity.get(r.name),
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
        for method, i in ((m, i) for m in result.reliance for i in range(len(records))):  # occlusion reliance
            reliance = result.reliance_entry(method, head, i, perturb=bool(np.isin(i, ref.faithful)))
            head_entries[i].setdefault("reliance", {})[method] = reliance_journal_entry(reliance)
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
    run: DatasetRun, result: BatchExplanation, key: tuple[str, str], head_entries: list[dict], ref: _References
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
            curves = run.timed_curves(
                method,
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
    """Rows of this batch that get a figure: ``figures`` = N (the first N samples), ``all`` or sample names."""
    if figures == "all":
        return list(range(len(batch)))
    if isinstance(figures, (list, tuple)):
        wanted = {str(name) for name in figures}
        return [i for i, r in enumerate(batch) if r.name in wanted]
    return [i for i in range(len(batch)) if begin + i < int(figures or 0)]


def _render_figures(run: DatasetRun, result: BatchExplanation, rows: Sequence[int], entries: Sequence[dict]) -> None:
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
            activity=activity_text(entries[i].get("activity")),
        )


# --------------------------------------------------------------------------- the end of a run
def _finish(
    run: DatasetRun, source: Any, records: Sequence[SampleRecord], elapsed: float, rss_trace: list[list[float]]
) -> dict:
    """Randomisation tests, class means and the aggregation; writes ``dataset_results.json`` + ``report.md``."""
    folder, options = run.folder, run.options
    journal = read_journal(folder)
    if len(journal) != len(records):
        raise InputDataError(folder / JOURNAL, f"journal holds {len(journal)} samples, expected {len(records)}")
    randomisation, cost = {}, {}
    if options.randomisation_samples > 0:
        chosen = records[: options.randomisation_samples]
        randomisation, cost = randomisation_tests(run.context, source, chosen, options)
    if run.seconds:  # seconds of this process: the samples an interrupted run had finished are not counted
        faithful = min(int(options.faithfulness_samples), len(records)) - min(run.done, options.faithfulness_samples)
        by_method = {m: round(s, 3) for m, s in run.seconds.items()}
        seconds = round(sum(by_method.values()), 3)
        cost["faithfulness"] = {"seconds": seconds, "samples": faithful, "by_method": by_method}
    run_fields = {
        "seconds_this_process": round(elapsed, 1),
        "resumed_from": run.done,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_trace_mb": rss_trace,
        "rss_growth_after_warmup": rss_growth_after_warmup(rss_trace),
        "check_seconds": cost,
    }
    return write_results(run, journal, randomisation, run_fields)


def write_results(run: DatasetRun, journal: Sequence[dict], randomisation: Mapping, run_fields: Mapping) -> dict:
    """Class means and the aggregation of a finished journal into ``dataset_results.json`` + ``report.md``
    (also the last step of merging shards, :mod:`xai.merge`)."""
    folder, options = run.folder, run.options
    means = trust.class_means(run.store, journal, run.context)
    atomic_savez(folder / trust.CLASS_MEANS_FILE, **means.arrays(), **run.context.axes.to_npz_arrays())
    figures = _draw_class_means(run, means)
    cost = run_fields.get("check_seconds")
    ci = (options.confidence, options.bootstrap_resamples)
    reliance = aggregate_reliance(journal, run.context.heads, *ci)
    results = trust.aggregate_run(journal, run.context, options, randomisation, means.summary(figures), cost, reliance)
    results["run"] = dict(run_fields)
    results["confidence"] = float(options.confidence)
    results.update({k: v for k, v in run.info.describe.items() if k not in results})
    results["confound"] = run_confound(journal, run.context, options)
    results["reliance"] = reliance
    classes = {head: run.context.bundle.classes(head) for head in run.context.heads}
    results["indicators"] = indicator_correlations(journal, classes, *ci, seed=options.seed)
    atomic_write_json(folder / DATASET_FILE, results)
    report = trust.dataset_report(results) + reliance_report(results["reliance"], options.confidence)
    report += indicator_report(results["indicators"], options.confidence)
    atomic_write_text(folder / "report.md", report)
    return results


def _draw_class_means(run: DatasetRun, means: trust.ClassMeans) -> list[str]:
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


def _randomisation(run: DatasetRun, source: Any, records: Sequence[SampleRecord]) -> dict:
    """The randomisation tests of ``records`` without their cost (:mod:`xai.trust.randomisation`)."""
    return randomisation_tests(run.context, source, records, run.options)[0]
