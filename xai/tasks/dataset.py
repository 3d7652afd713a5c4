"""``python main.py task=dataset``: explain a whole split (or data set) in batches and measure trust.

Thin layer over :func:`xai.dataset.explain_dataset`. Work happens in ``<run>/<model>.partial``;
an interrupted run resumes there when started again with the same ``hydra.run.dir`` and config,
and the folder becomes ``<run>/<model>`` only when everything is written.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.text import plain
from xai.dataset import DatasetFigures, DatasetOptions, RunInfo, explain_dataset
from xai.explainers import build_explainers
from xai.html import write_report_page
from xai.runtime import output_dir
from xai.tasks.explain import resolve_model
from xai.trust.budget import apply_budget

log = logging.getLogger(__name__)

SPLITS = ("test", "validation", "train", "all", "fresh")


def select_records(split: str, source, resolved, cfg: DictConfig, fresh: dict | None, limit: int | None):
    """``(data source, records)`` of the requested split."""
    if split not in SPLITS:
        raise ConfigError(f"task.split: {split!r} is not one of {', '.join(SPLITS)}")
    if split == "fresh":
        from geomag.sources import DemoDataSource

        if not isinstance(source, DemoDataSource):
            raise ConfigError("task.split=fresh generates new demo samples; it needs data=demo")
        generator = {**OmegaConf.to_container(cfg.data.generator, resolve=True), **(fresh or {})}
        source = DemoDataSource(
            cfg.paths.cache_dir, generator=generator, spectrogram=OmegaConf.to_container(cfg.spectrogram, resolve=True)
        )
        records = source.records()
    elif split == "all":
        records = source.records()
    else:
        if not resolved.split:
            raise ConfigError(
                f"task.split={split}: this model has no recorded split (only demo models do); use task.split=all"
            )
        records = [r for r in source.records() if resolved.split.get(r.name) == split]
    if limit:
        records = records[: int(limit)]
    if not records:
        raise ConfigError(f"task.split={split}: no samples")
    return source, records


def with_activity(cfg: DictConfig, source, records: list, exclude: bool) -> tuple[list, dict, list[str]]:
    """``(records, activity per sample, names left out)``: each window's geomagnetic activity (``cfg.activity``);
    the disturbed windows are left out when ``task.exclude_disturbed`` is true."""
    from xai.tasks.explain import sample_activities
    from xai.trust.confound import drop_disturbed

    activities = sample_activities(cfg, source, records)
    if not exclude:
        return records, activities, []
    kept, dropped = drop_disturbed(records, activities)
    log.info("task.exclude_disturbed: left out %d disturbed window(s) of %d", len(dropped), len(records))
    if not kept:
        raise ConfigError("task.exclude_disturbed: every selected window is disturbed; nothing left to explain")
    return kept, activities, dropped


def run(
    cfg: DictConfig,
    split: str = "test",
    fresh: dict | None = None,
    limit: int | None = None,
    exclude_disturbed: bool = False,
    **options,
) -> Path:
    """The data-set task; returns the model's output folder (a shard's folder with ``task.shards`` > 1)."""
    from models.device import configure_devices
    from xai.render import render_class_means
    from xai.render.pool import FigurePool
    from xai.shards import ShardJob, run_shard, shard_folder_name, shard_spec

    spec = shard_spec(options.pop("shards", 1), options.pop("shard", None))  # refused before any work when wrong
    figure_workers = int(options.pop("figure_workers", 2))
    configure_devices(bool(cfg.runtime.mixed_precision))
    source = hydra.utils.instantiate(cfg.data)
    resolved = resolve_model(cfg, source)
    bundle = resolved.bundle
    source, records = select_records(str(split), source, resolved, cfg, plain(fresh), limit)
    records, activities, dropped = with_activity(cfg, source, records, bool(exclude_disturbed))
    options, budget = apply_budget({k: plain(v) for k, v in options.items()})
    try:
        settings = DatasetOptions(
            heads=[str(h) for h in cfg.xai.heads],
            seed=int(cfg.seed),
            explained_class=plain(cfg.xai.explained_class),
            target=(plain(cfg.xai.get("target")), plain(cfg.xai.get("contrast_class"))),
            **options,
        )
    except TypeError as exc:
        raise ConfigError(f"task: {exc}") from None
    explainers = build_explainers(cfg.xai.methods, bundle)
    log.info(
        "data-set mode: %d samples (split %s) with %s on heads %s",
        len(records),
        split,
        list(explainers),
        list(settings.heads),
    )
    final = output_dir() / bundle.name
    partial = final.with_name(final.name + ".partial")
    describe = {"selection": f"split {split}" + (f", first {limit}" if limit else ""), "data": source.describe()}
    describe["budget"] = budget
    if exclude_disturbed:
        describe["excluded_disturbed"] = dropped
    info = RunInfo(splits=resolved.split, describe=describe, activity=activities)
    with FigurePool(figure_workers if settings.figures else 0) as painter:  # per-sample figures in processes
        figures = DatasetFigures(sample=painter, class_means=render_class_means)
        if spec is not None:  # one shard of the run; the sweep's end (or task=merge) merges them
            folder = output_dir() / shard_folder_name(bundle.name, spec)
            run_shard(ShardJob(bundle, explainers, source, records, folder, settings, spec, info, figures))
        else:
            explain_dataset(bundle, explainers, source, records, partial, settings, info=info, figures=figures)
    if spec is not None:
        return folder
    write_report_page("dataset", partial, cfg)
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.rename(final, old)
        shutil.rmtree(old, ignore_errors=True)
    os.rename(partial, final)
    log.info("wrote the data-set results to %s (report.md, dataset_results.json)", final)
    return final
