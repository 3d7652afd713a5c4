"""Data-set mode split over independent jobs: whole batches go to shards by a deterministic, stratified
assignment, and each shard runs into its own resumable folder that :mod:`xai.merge` joins into one run.

**Why whole batches.** A single process explains the samples in consecutive batches of
``batch_size`` (data-set order); the random references of deletion/insertion (Petsiuk et al. 2018,
RISE) and of the localisation scores are seeded by the batch's first row, and the median background
is taken over a batch. A shard therefore receives complete batches of that same plan, so every
batch is computed exactly as in one process and the merged heatmaps, journal and aggregates are
identical to a single-process run whatever the number of shards. The samples of the randomisation
tests (Adebayo et al. 2018) are the first ones of the whole data set; shard 0 runs them.

**Stratified.** Batches go to shards in data-set order; each goes to the shard (among those whose
load is within one batch of the lightest) that has seen the fewest of the batch's classes, so every
shard sees every class of both heads whenever the classes span enough batches.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from core.errors import ConfigError, InputDataError
from core.io import atomic_write_json, atomic_write_text
from core.jsonvalues import json_value
from geomag.dataset import SampleRecord
from xai.dataset import (
    JOURNAL,
    DatasetFigures,
    DatasetOptions,
    RunInfo,
    _explain_rows,
    _open,
    _Progress,
    read_journal,
    run_index,
)
from xai.memory import peak_rss_mb, release_freed_memory, rss_growth_after_warmup, rss_mb
from xai.pipeline import ExplainContext, batches, check_heads
from xai.trust.randomisation import randomisation_tests

log = logging.getLogger(__name__)

SHARD_FILE = "shard.json"  # written last: a shard folder without it is unfinished
RANDOMISATION_FILE = "randomisation.json"  # shard 0's randomisation tests (the first samples of the data set)

__all__ = [
    "RANDOMISATION_FILE",
    "SHARD_FILE",
    "ShardJob",
    "ShardSpec",
    "assign_batches",
    "run_shard",
    "shard_folder_name",
    "shard_spec",
]


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` of ``count`` (``task.shard`` of ``task.shards``)."""

    index: int
    count: int

    @property
    def label(self) -> str:
        return f"{self.index}-of-{self.count}"


def shard_spec(shards: Any, shard: Any) -> ShardSpec | None:
    """The shard of ``task.shards`` / ``task.shard``; ``None`` for a run in one process (``shards: 1``)."""
    try:
        count = int(shards if shards is not None else 1)
        index = None if shard is None else int(shard)
    except (TypeError, ValueError):
        raise ConfigError(f"task.shards={shards!r} / task.shard={shard!r}: both must be whole numbers") from None
    if count < 1:
        raise ConfigError(f"task.shards={count}: must be at least 1")
    if count == 1:
        if index not in (None, 0):
            raise ConfigError(f"task.shard={index}: task.shards is 1 (set task.shards=N to split the run)")
        return None
    if index is None:
        raise ConfigError(
            f"task.shards={count} needs task.shard (0..{count - 1}); sweep them all: -m 'task.shard=range(0,{count})'"
        )
    if not 0 <= index < count:
        raise ConfigError(f"task.shard={index}: must be between 0 and {count - 1} (task.shards={count})")
    return ShardSpec(index, count)


def shard_folder_name(model: str, spec: ShardSpec) -> str:
    """``<model>.shard-<i>-of-<N>``: a shard's folder inside its job's output folder."""
    return f"{model}.shard-{spec.label}"


def stratum(record: SampleRecord) -> tuple[str, str]:
    """The classes a sample stands for in the stratification: its true class of each head."""
    return f"magnitude:{record.magnitude_class}", f"azimuth:{record.azimuth_class}"


def assign_batches(labels: Sequence[Sequence[str]], batch_size: int, count: int) -> list[list[tuple[int, int]]]:
    """Per shard, the ``(begin, end)`` batches of the single-process plan it explains (in data-set order).

    ``labels[i]``: the classes of sample ``i``. Deterministic: depends only on the labels, the batch
    size and the number of shards, never on the launcher or the order the jobs start in.
    """
    if batch_size < 1:
        raise ConfigError(f"task.batch_size={batch_size}: must be at least 1")
    plan: list[list[tuple[int, int]]] = [[] for _ in range(count)]
    load = [0] * count
    seen: list[set[str]] = [set() for _ in range(count)]
    for begin, end in batches(len(labels), batch_size):
        classes = {c for row in labels[begin:end] for c in row}
        lightest = min(load)
        candidates = [j for j in range(count) if load[j] - lightest < batch_size]
        chosen = max(candidates, key=lambda j: (len(classes - seen[j]), -load[j], -j))
        plan[chosen].append((begin, end))
        load[chosen] += end - begin
        seen[chosen] |= classes
    return plan


@dataclass
class ShardJob:
    """One shard's inputs: the whole data set's ``records`` (the shard picks its batches) and its ``folder``."""

    bundle: Any
    explainers: Mapping[str, Any]
    source: Any
    records: Sequence[SampleRecord]
    folder: Path
    options: DatasetOptions
    spec: ShardSpec
    info: RunInfo = RunInfo()
    figures: DatasetFigures = DatasetFigures()


class _ShardRows:
    """The shard's compact heatmap store seen through the global row numbers of its batches."""

    def __init__(self, store: Any, plan: Sequence[tuple[int, int]]) -> None:
        self._store = store
        self._rows: dict[int, int] = {}
        offset = 0
        for begin, end in plan:
            self._rows[begin] = offset
            offset += end - begin

    def write(self, method: str, head: str, start: int, maps: Any) -> None:
        self._store.write(method, head, self._rows[start], maps)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _batch_boundary(folder: Path, plan: Sequence[tuple[int, int]], done: int) -> int:
    """Finished samples rounded down to whole batches (a batch is redone whole, never split)."""
    boundary = 0
    for begin, end in plan:
        if boundary + end - begin > done:
            break
        boundary += end - begin
    if boundary != done:
        journal = read_journal(folder)[:boundary]
        text = "".join(_line(e) for e in journal)
        atomic_write_text(folder / JOURNAL, text)
        log.info("%s: redoing a partly journalled batch (resuming at %d samples)", folder, boundary)
    return boundary


def _done_batches(plan: Sequence[tuple[int, int]], done: int) -> list[tuple[int, int]]:
    """The leading batches of ``plan`` that ``done`` finished samples cover."""
    covered, total = [], 0
    for begin, end in plan:
        total += end - begin
        if total > done:
            break
        covered.append((begin, end))
    return covered


def _line(entry: Mapping) -> str:
    import json

    return json.dumps(json_value(entry), allow_nan=False) + "\n"


def run_shard(job: ShardJob) -> dict:
    """Explain this shard's batches into ``job.folder`` (resuming a matching unfinished shard there) and write
    ``shard.json``, which :func:`xai.merge.merge_shards` needs; returns that manifest."""
    options, records, folder = job.options, list(job.records), Path(job.folder)
    if not records:
        raise ConfigError("task.split: no samples to explain")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SHARD_FILE).unlink(missing_ok=True)  # this folder is unfinished until the manifest is back
    heads = check_heads(job.bundle, options.heads)
    first = job.source.load(records[0])
    context = ExplainContext(
        job.bundle, job.explainers, heads, options.explained_class, axes=first.axes, attention="bands"
    )
    index = run_index(context, options, records, first.image.shape[:2], job.info)
    plan = assign_batches([stratum(r) for r in records], int(options.batch_size), job.spec.count)[job.spec.index]
    if not plan:
        n_batches = len(list(batches(len(records), int(options.batch_size))))
        raise ConfigError(
            f"task.shard={job.spec.index}: no batch left for this shard ({len(records)} samples make "
            f"{n_batches} batches of {options.batch_size}); use task.shards <= {n_batches}"
        )
    mine = [r for begin, end in plan for r in records[begin:end]]
    describe = {**job.info.describe, "shard": job.spec.label, "run_fingerprint": index["fingerprint"]}
    run = _open(context, options, folder, mine, first.image.shape, replace(job.info, describe=describe), job.figures)
    run.done = _batch_boundary(folder, plan, run.done)
    resumed = run.done
    run.store = _ShardRows(run.store, plan)
    log.info("shard %s: %d samples in %d batches", job.spec.label, len(mine), len(plan))
    started, rss_trace = time.perf_counter(), []
    progress, offset = _Progress(len(mine), run.done), 0
    try:
        for begin, end in plan:
            offset += end - begin
            if offset <= run.done:
                continue
            _explain_rows(run, job.source, records[begin:end], begin)
            release_freed_memory()
            progress.update(end - begin)
            rss_trace.append([offset, round(rss_mb(), 1)])
    finally:
        progress.close()
    return _finish_shard(job, run, (index, plan, mine), resumed, (time.perf_counter() - started, rss_trace))


def _finish_shard(job: ShardJob, run: Any, layout: tuple, resumed: int, timing: tuple) -> dict:
    """Randomisation tests (shard 0) and the manifest ``shard.json``, written last."""
    index, plan, mine = layout
    folder, options = Path(job.folder), job.options
    journal = read_journal(folder)
    if len(journal) != len(mine):
        raise InputDataError(folder / JOURNAL, f"journal holds {len(journal)} samples, expected {len(mine)}")
    randomised = job.spec.index == 0 and options.randomisation_samples > 0
    cost: dict = {}
    if randomised:
        chosen = list(job.records)[: options.randomisation_samples]  # the first samples of the whole data set
        randomisation, cost = randomisation_tests(run.context, job.source, chosen, options)
        atomic_write_json(folder / RANDOMISATION_FILE, randomisation)
    faithful = sum(
        1
        for begin, end in plan[len(_done_batches(plan, resumed)) :]
        for i in range(begin, end)
        if i < options.faithfulness_samples
    )
    if run.seconds:
        cost["faithfulness"] = {
            "seconds": round(sum(run.seconds.values()), 3),
            "samples": faithful,
            "by_method": {m: round(s, 3) for m, s in run.seconds.items()},
        }
    elapsed, rss_trace = timing
    bundle = job.bundle
    manifest = {
        "status": "complete",
        "shard": job.spec.index,
        "shards": job.spec.count,
        "model": bundle.name,
        "batches": [list(b) for b in plan],
        "n_samples": len(mine),
        "index": index,
        "options": json_value(asdict(options)),
        "describe": json_value(dict(job.info.describe)),
        "model_facts": {
            "name": bundle.name,
            "model_file": str(bundle.source_file),
            "class_mappings": bundle.class_mappings.to_dict(),
            "heads": list(run.context.heads),
        },
        "randomisation": RANDOMISATION_FILE if randomised else None,
        "run": {
            "seconds_this_process": round(elapsed, 1),
            "resumed_from": resumed,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "rss_trace_mb": rss_trace,
            "rss_growth_after_warmup": rss_growth_after_warmup(rss_trace),
            "pid": os.getpid(),
            "check_seconds": cost,
        },
    }
    atomic_write_json(folder / SHARD_FILE, manifest)
    log.info("shard %s: %d samples written to %s", job.spec.label, len(mine), folder)
    return manifest
