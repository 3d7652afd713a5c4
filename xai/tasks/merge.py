"""``python main.py task=merge task.folder=<sweep folder>``: merge the shards of a data-set run (:mod:`xai.merge`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.utils import to_absolute_path

from core.errors import ConfigError
from xai.dataset import DatasetFigures
from xai.html import write_report_page
from xai.merge import MergeRequest, merge_shards

log = logging.getLogger(__name__)


def run(cfg: Any, folder: str | None = None, shards: int | None = None) -> list[Path]:
    """Merge every model's shards under ``folder`` into ``<folder>/<model>/``; the merged folders.

    A missing, unfinished or failed shard raises :class:`~core.errors.InputDataError` listing them
    (``main.py`` exits with status 2) and no result is written.
    """
    from xai.render import render_class_means

    if not folder:
        raise ConfigError(
            "task.folder: give the sweep folder holding the shards, e.g. task.folder=outputs/multirun/..."
        )
    request = MergeRequest(
        Path(to_absolute_path(str(folder))),
        shards=None if shards is None else int(shards),
        figures=DatasetFigures(class_means=render_class_means),
        page=lambda merged: write_report_page("dataset", merged, cfg),
    )
    merged = merge_shards(request)
    for path in merged:
        log.info("merged the shards into %s (report.md, dataset_results.json)", path)
    return merged
