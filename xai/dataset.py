"""Data-set mode: explain every sample of a split (or a whole metadata CSV) in batches and measure
whether the explanations can be trusted.

Per batch, for every method and head: the maps go to one compact array file per (method, head)
(:mod:`xai.heatmap_store`), and one line per sample goes to ``samples.jsonl`` (predictions, band
attention shares, ground-truth localisation where masks exist, deletion/insertion AUCs for the
first ``faithfulness_samples``). The journal makes a run resumable: an interrupted run continues
with the samples it has not finished. At the end the journal and the array files are aggregated
(:mod:`xai.trust`): accuracy and confusion per head, class-mean maps, band-share distributions with
bootstrap confidence intervals, and the trust measures with a verdict per method.

Usable from a notebook: :func:`explain_dataset` takes a bundle, explainers, a data source and the
records; the Hydra task (:mod:`xai.tasks.dataset`) only wires the config to it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError, InputDataError
from core.io import atomic_write_json, atomic_write_text
from core.jsonvalues import json_value
from geomag.dataset import SampleRecord
from xai.attention import BANDS, band_shares
from xai.explainers.base import to_grid
from xai.heatmap_store import HeatmapStore

log = logging.getLogger(__name__)

JOURNAL = "samples.jsonl"
INDEX = "index.json"


@dataclass
class DatasetOptions:
    """What the data-set run computes (``conf/task/dataset.yaml``)."""

    heads: Sequence[str] = ("magnitude", "azimuth")
    explained_class: Any = "predicted"
    batch_size: int = 16
    figures: Any = 0                      # per-sample figures: the first N samples, or a list of sample names
    localisation: bool = True             # needs ground-truth masks (the demo data set has them)
    faithfulness_samples: int = 50        # deletion/insertion for the first N samples (0: off)
    faithfulness_steps: int = 10
    randomisation_samples: int = 8        # cascading randomisation + random-logit test (0: off)
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


def rss_mb() -> float:
    """Current resident memory of this process in MiB (Linux ``/proc``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # no glibc (e.g. musl): nothing to trim
        return None


def release_freed_memory() -> None:
    """Hand heap memory that was freed back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Every batch allocates and frees its activations and gradients (about 100 MiB for
    EfficientNet-B0 at 64x64, batch 16). glibc keeps much of that freed heap mapped, so without a
    trim the RSS jumps between two levels from batch to batch although nothing is retained.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


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


# --------------------------------------------------------------------------- main loop
def _batches(n: int, size: int, start: int = 0):
    for begin in range(start, n, size):
        yield begin, min(n, begin + size)


def explain_dataset(
    bundle: Any,
    explainers: Mapping[str, Any],
    source: Any,
    records: Sequence[SampleRecord],
    folder: str | os.PathLike,
    options: DatasetOptions | None = None,
    splits: Mapping[str, str] | None = None,
    describe: Mapping | None = None,
    render: Callable | None = None,
) -> dict:
    """Explain ``records`` into ``folder`` (resuming a matching unfinished run there) and return the
    aggregated results (also written as ``dataset_results.json`` + ``report.md``)."""
    from xai import trust
    from xai.tasks.explain import explained_classes

    options = options or DatasetOptions()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    records = list(records)
    if not records:
        raise ConfigError("task.split: no samples to explain")
    heads = [str(h) for h in options.heads]
    for head in heads:
        if head not in bundle.heads:
            raise ConfigError(f"xai.heads: unknown head {head!r}; the model has {sorted(bundle.heads)}")
    methods = list(explainers)
    first = source.load(records[0])
    axes = first.axes
    grid_shape = tuple(int(v) for v in first.image.shape[:2])
    names = [r.name for r in records]
    fingerprint = options.fingerprint({"model": bundle.name, "model_file": str(bundle.source_file),
                                       "methods": methods, "samples": names, **(describe or {})})
    index = {"fingerprint": fingerprint, "samples": names, "methods": methods, "heads": heads,
             "grid_shape": list(grid_shape), "dtype": "float16", "axes": axes.to_dict()}
    done_entries = _resume_state(folder, index)
    store = HeatmapStore(folder / "heatmaps", [(m, h) for m in methods for h in heads], len(records),
                         grid_shape, create=not done_entries)
    if not done_entries:
        atomic_write_json(folder / "heatmaps" / INDEX, index)
        (folder / JOURNAL).write_text("")
    done = len(done_entries)
    if done:
        log.info("resuming: %d of %d samples already done in %s", done, len(records), folder)
    spec = options.explained_class
    predict = _predictor(bundle)
    rng_seed = int(options.seed)
    progress = _Progress(len(records), done)
    rss_trace: list[list[float]] = []
    started = time.perf_counter()
    try:
        for begin, end in _batches(len(records), int(options.batch_size), start=done):
            batch = records[begin:end]
            loaded = [source.load(r) for r in batch]
            shapes = {item.image.shape for item in loaded}
            if len(shapes) > 1 or next(iter(shapes))[:2] != grid_shape:
                bad = next(r for r, item in zip(batch, loaded) if item.image.shape[:2] != grid_shape)
                raise InputDataError(bad.path, f"spectrogram grid {loaded[batch.index(bad)].image.shape[:2]} "
                                               f"differs from the data set's {grid_shape}")
            grids = np.stack([item.image for item in loaded]).astype(np.float32)
            if not np.isfinite(grids).all():
                bad = next(r for r, item in zip(batch, loaded) if not np.isfinite(item.image).all())
                raise InputDataError(bad.path, "spectrogram contains NaN or infinite values")
            masks = _masks(source, batch, grid_shape) if options.localisation else None
            entries = _explain_batch(bundle, explainers, heads, spec, batch, begin, grids, masks, store,
                                     options, predict, rng_seed, splits or {}, explained_classes, axes)
            chosen = _figure_rows(options.figures, batch, begin)
            if render is not None and chosen:
                _render_figures(render, bundle, batch, chosen, grids, axes, entries, folder / "figures", store, begin)
            _append_journal(folder, entries)
            del entries, loaded, grids, masks
            release_freed_memory()
            progress.update(len(batch))
            rss_trace.append([end, round(rss_mb(), 1)])
    finally:
        progress.close()
    elapsed = time.perf_counter() - started
    journal = read_journal(folder)
    if len(journal) != len(records):
        raise InputDataError(folder / JOURNAL, f"journal holds {len(journal)} samples, expected {len(records)}")
    randomisation = {}
    if options.randomisation_samples > 0:
        randomisation = _randomisation(bundle, explainers, source, records[: options.randomisation_samples],
                                       heads, spec, options, explained_classes)
    results = trust.aggregate(
        journal=journal, store=store, records=records, bundle=bundle, methods=methods, heads=heads,
        axes=axes, options=options, randomisation=randomisation, folder=folder,
    )
    results["run"] = {"seconds_this_process": round(elapsed, 1), "resumed_from": done,
                      "peak_rss_mb": round(peak_rss_mb(), 1), "rss_trace_mb": rss_trace,
                      "rss_growth_after_warmup": _growth(rss_trace)}
    results["confidence"] = float(options.confidence)
    results.update({k: v for k, v in (describe or {}).items() if k not in results})
    atomic_write_json(folder / "dataset_results.json", results)
    atomic_write_text(folder / "report.md", trust.dataset_report(results))
    return results


def _growth(trace: Sequence[Sequence[float]]) -> float | None:
    """Relative RSS growth from the end of warm-up (a tenth of the batches, at least 2) to the peak."""
    if len(trace) < 4:
        return None
    warm = max(2, len(trace) // 10)
    base = trace[warm - 1][1]
    later = max(value for _, value in trace[warm - 1:])
    return round((later - base) / base, 4)


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
            raise InputDataError(record.extra.get("mask_path") or record.path,
                                 f"ground-truth mask shape {mask.shape} differs from the grid {grid_shape}")
        out[i] = mask
    return out


def _predictor(bundle: Any) -> Callable[[np.ndarray], dict]:
    def predict(grids: np.ndarray) -> dict:
        return bundle.predict_probabilities(bundle.prepare(grids))

    return predict


def _explain_batch(bundle, explainers, heads, spec, batch, begin, grids, masks, store, options, predict,
                   rng_seed, splits, explained_classes, axes) -> list[dict]:
    from xai.metrics.faithfulness import area_under_curve, importance_order, perturbation_curves, random_order
    from xai.metrics.localisation import localisation_scores, mask_area_share, random_heatmaps

    inputs = bundle.prepare(grids)
    probabilities = bundle.predict_probabilities(inputs)
    n = len(batch)
    entries = [{"sample": r.name, "index": begin + i, "split": splits.get(r.name),
                "true": {"magnitude": r.magnitude_class, "azimuth": r.azimuth_class}, "heads": {}}
               for i, r in enumerate(batch)]
    faithful = np.flatnonzero(np.arange(begin, begin + n) < options.faithfulness_samples)
    targets_by_head = {}
    for head in heads:
        probs = probabilities[head]
        predicted = probs.argmax(axis=1)
        targets_by_head[head] = explained_classes(spec, head, bundle.class_mappings, predicted, batch)
    baseline = None
    if len(faithful):
        from xai.metrics.faithfulness import median_background

        baseline = median_background(grids[faithful])
        random_orders = random_order((len(faithful), *grids.shape[1:3]), seed=rng_seed + begin)
        random_curves = {mode: perturbation_curves(predict, grids[faithful], random_orders,
                                                   {h: targets_by_head[h][faithful] for h in heads}, mode,
                                                   steps=options.faithfulness_steps, baseline=baseline)
                         for mode in ("deletion", "insertion")}
    random_maps = random_heatmaps((n, *grids.shape[1:3]), seed=rng_seed + 7919 + begin) if masks is not None else None
    for head in heads:
        classes = bundle.classes(head)
        probs = probabilities[head]
        predicted = probs.argmax(axis=1)
        targets = targets_by_head[head]
        head_entries = []
        for i, record in enumerate(batch):
            true = record.true_class(head)
            prediction = classes[int(predicted[i])]
            head_entries.append({
                "prediction": prediction, "confidence": float(probs[i, predicted[i]]),
                "probabilities": [round(float(p), 6) for p in probs[i]],
                "explained_class": classes[int(targets[i])], "true": true,
                "correct": (prediction == true) if true in classes else None,
                "bands": {}, "localisation": {}, "faithfulness": {},
            })
        if masks is not None:
            area = mask_area_share(masks)
            random_scores = localisation_scores(random_maps, masks)
            for i in range(n):
                head_entries[i]["mask_area_share"] = _finite_or_none(area[i])
                head_entries[i]["localisation"]["random"] = {k: _finite_or_none(v[i]) for k, v in random_scores.items()}
        if len(faithful):
            for mode, curves in random_curves.items():
                auc = area_under_curve(curves[head])
                for j, i in enumerate(faithful):
                    head_entries[i]["faithfulness"].setdefault("random", {})[f"{mode}_auc"] = float(auc[j])
        for method, explainer in explainers.items():
            explanation = explainer(inputs, head=head, class_indices=targets)
            on_grid = to_grid(explanation.maps, grids.shape[1:3])
            store.write(method, head, begin, on_grid)
            for i in range(n):
                shares = band_shares(on_grid[i], axes, BANDS)
                head_entries[i]["bands"][method] = {b: v.get("mass_share") for b, v in shares.items()}
            if masks is not None:
                scores = localisation_scores(on_grid, masks)
                for i in range(n):
                    head_entries[i]["localisation"][method] = {k: _finite_or_none(v[i]) for k, v in scores.items()}
            if len(faithful):
                order = importance_order(on_grid[faithful])
                for mode in ("deletion", "insertion"):
                    curves = perturbation_curves(predict, grids[faithful], order, {head: targets[faithful]}, mode,
                                                 steps=options.faithfulness_steps, baseline=baseline)
                    auc = area_under_curve(curves[head])
                    for j, i in enumerate(faithful):
                        head_entries[i]["faithfulness"].setdefault(method, {})[f"{mode}_auc"] = float(auc[j])
        for i in range(n):
            entries[i]["heads"][head] = head_entries[i]
    return entries


def _figure_rows(figures: Any, batch: Sequence[SampleRecord], begin: int) -> list[int]:
    """Rows of this batch that get a figure: ``figures`` = N (the first N samples) or sample names."""
    if isinstance(figures, (list, tuple)):
        wanted = {str(name) for name in figures}
        return [i for i, r in enumerate(batch) if r.name in wanted]
    return [i for i in range(len(batch)) if begin + i < int(figures or 0)]


def _render_figures(render, bundle, batch, rows, grids, axes, entries, folder, store, begin) -> None:
    """Per-sample figures for a selection (``task.figures``)."""
    from xai.explainers.base import normalize_for_display

    folder.mkdir(parents=True, exist_ok=True)
    for i in rows:
        record = batch[i]
        heads = {}
        for head, entry in entries[i]["heads"].items():
            maps = {}
            for method in entry["bands"]:
                maps[method] = _read_row(store, method, head, begin + i)
            heads[head] = {"prediction": entry["prediction"], "confidence": entry["confidence"], "true": entry["true"],
                           "correct": entry["correct"], "explained_class": entry["explained_class"],
                           "maps": {m: normalize_for_display(v[None])[0] for m, v in maps.items()}}
        render(folder / f"{record.name}_visualization.png", sample=record.name, model=bundle.name,
               grid_image=grids[i], axes=axes, heads=heads)


def _read_row(store: HeatmapStore, method: str, head: str, row: int) -> np.ndarray:
    from xai.heatmap_store import heatmap_file

    array = np.load(heatmap_file(store.folder, method, head), mmap_mode="r")
    value = np.array(array[row], dtype=np.float32)
    del array
    return value


def _randomisation(bundle, explainers, source, records, heads, spec, options, explained_classes) -> dict:
    """Cascading model-parameter randomisation and the random-logit test (Adebayo et al. 2018) on a
    few samples, per method and head: Spearman rank correlation with the original maps."""
    from xai.metrics.randomisation import cascading_randomisation, random_logit_test

    grids = np.stack([source.load(r).image for r in records]).astype(np.float32)
    inputs = bundle.prepare(grids)
    probabilities = bundle.predict_probabilities(inputs)
    wanted = options.randomisation_methods
    methods = [m for m in explainers if wanted is None or m in wanted]
    out: dict = {}
    for method in methods:
        explainer = explainers[method]
        out[method] = {}
        for head in heads:
            targets = explained_classes(spec, head, bundle.class_mappings, probabilities[head].argmax(axis=1),
                                        records)

            def explain(x, classes, _explainer=explainer, _head=head):
                return _explainer(x, head=_head, class_indices=np.asarray(classes, dtype=np.int32)).maps

            log.info("randomisation test: %s, head %s, %d samples", method, head, len(records))
            steps = cascading_randomisation(bundle.model, explain, inputs, targets,
                                            max_steps=options.randomisation_steps, seed=options.seed)
            logit = random_logit_test(explain, inputs, targets, len(bundle.classes(head)), seed=options.seed)
            out[method][head] = {
                "cascading": [{"label": s["label"], "layers": list(s["layers"]),
                               "spearman": [_finite_or_none(v) for v in np.asarray(s["spearman"], dtype=float)]}
                              for s in steps],
                "random_logit": [_finite_or_none(v) for v in np.asarray(logit, dtype=float)],
            }
    return out
