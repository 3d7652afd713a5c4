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
from xai.runtime import output_dir
from xai.tasks.explain import resolve_model

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


def run(cfg: DictConfig, split: str = "test", fresh: dict | None = None, limit: int | None = None, **options) -> Path:
    """The data-set task; returns the model's output folder."""
    from models.device import configure_devices
    from xai.render import render_class_means, render_sample_figure

    configure_devices(bool(cfg.runtime.mixed_precision))
    source = hydra.utils.instantiate(cfg.data)
    resolved = resolve_model(cfg, source)
    bundle = resolved.bundle
    source, records = select_records(str(split), source, resolved, cfg, plain(fresh), limit)
    try:
        settings = DatasetOptions(
            heads=[str(h) for h in cfg.xai.heads],
            seed=int(cfg.seed),
            explained_class=plain(cfg.xai.explained_class),
            **{k: plain(v) for k, v in options.items()},
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
    explain_dataset(
        bundle,
        explainers,
        source,
        records,
        partial,
        settings,
        info=RunInfo(splits=resolved.split, describe=describe),
        figures=DatasetFigures(sample=render_sample_figure, class_means=render_class_means),
    )
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.rename(final, old)
        shutil.rmtree(old, ignore_errors=True)
    os.rename(partial, final)
    log.info("wrote the data-set results to %s (report.md, dataset_results.json)", final)
    return final
