"""Hydra callback: compare all models of a sweep when the sweep ends.

``conf/config.yaml`` registers :class:`CompareOnMultirunEnd` under ``hydra.callbacks``. After
``python main.py -m model=vgg16,efficientnet ...`` it writes ``<sweep dir>/comparison/``
(see :mod:`xai.compare`) and logs where the report is.

**Failed jobs.** Hydra's basic sweeper re-raises the first failed job *before*
``on_multirun_end`` runs, so a single failure would silently skip the comparison. With
``keep_going=True`` (default) :meth:`CompareOnMultirunEnd.on_job_end` therefore logs the failed
job's error (with its traceback when it is not a documented ``PrecursorError``), makes sure an
explain job left a ``status.json`` (``{"status": "failed", "error", "model", "sample"}``, written only if
the job did not write one itself), and marks the job as completed for Hydra, so the remaining
jobs and the comparison still run. At the end, :meth:`on_multirun_end` writes the comparison
(which lists the failed and missing jobs), logs an error naming them and exits with status 1
(``exit_on_failure``) – after everything is written. A failure of the comparison itself is
logged as an error (never hiding the jobs' own results) and also gives exit status 1.

**Sharded data-set runs.** A sweep over ``task.shard`` of ``task=dataset task.shards=N`` is one run
split into N jobs: at its end the shards are merged into ``<sweep dir>/<model>/``
(:mod:`xai.merge`) instead of compared; a missing or failed shard gives no merged result and exit
status 1.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from core.errors import PrecursorError
from core.failures import failure_status, write_failure
from core.names import COMPARISON_DIR, COMPARISON_REPORT, STATUS_FILE
from models.identity import model_name

log = logging.getLogger(__name__)

__all__ = ["CompareOnMultirunEnd"]


def _select(config: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(config, key, default=None)
    except Exception:  # noqa: BLE001 - an unresolvable interpolation only loses a detail
        return None


def _is_multirun(config: DictConfig) -> bool:
    from hydra.types import RunMode

    mode = _select(config, "hydra.mode")
    return mode == RunMode.MULTIRUN or str(mode).endswith("MULTIRUN")


def _is_sharded(config: DictConfig) -> bool:
    """A sweep over the shards of one data-set run (``task=dataset task.shards=N``, N > 1)."""
    shards = _select(config, "task.shards")
    target = str(_select(config, "task._target_") or "")
    return target.endswith("dataset.run") and str(shards).isdigit() and int(shards) > 1


class CompareOnMultirunEnd(Callback):
    """Run :func:`xai.compare.compare_runs` over the sweep folder when a multirun ends."""

    def __init__(self, enabled: bool = True, keep_going: bool = True, exit_on_failure: bool = True) -> None:
        self.enabled = bool(enabled)
        self.keep_going = bool(keep_going)
        self.exit_on_failure = bool(exit_on_failure)
        self.failed_jobs: list[dict] = []

    # ------------------------------------------------------------------ per job
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.failed_jobs = []

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """Record a failed job (log, ``status.json``) and, in a multirun, let the sweep go on."""
        from hydra.core.utils import JobStatus

        if getattr(job_return, "status", None) != JobStatus.FAILED:
            return
        try:
            job_return.return_value  # noqa: B018 - raises the job's exception
            error: BaseException = RuntimeError("the job failed without an exception")
        except BaseException as raised:  # noqa: BLE001 - we record whatever the job raised
            error = raised
        model = model_name(_select(config, "model"))
        sample = _select(config, "sample")
        job_dir = _select(config, "hydra.runtime.output_dir")
        message = str(error) if isinstance(error, PrecursorError) else f"{type(error).__name__}: {error}"
        record = {"job": job_dir, "model": model, "sample": sample, "error": message}
        self.failed_jobs.append(record)
        log.error(
            "job %s (model %s, sample %s) failed: %s",
            _select(config, "hydra.job.num"),
            model,
            sample,
            message,
            exc_info=None if isinstance(error, PrecursorError) else (type(error), error, error.__traceback__),
        )
        task = _select(config, "task._target_")
        if job_dir and (not task or any(t in str(task) for t in ("explain", "dataset"))):  # train/compare: none
            self._ensure_status_file(Path(job_dir), model, sample, error, message)
        if self.keep_going and _is_multirun(config):
            # Hydra's sweeper would re-raise this before on_multirun_end: the failure is reported there.
            job_return.status = JobStatus.COMPLETED

    @staticmethod
    def _ensure_status_file(job_dir: Path, model: Any, sample: Any, error: BaseException, message: str) -> None:
        if job_dir.is_dir() and any(job_dir.rglob(STATUS_FILE)):
            return  # the job recorded its own failure
        folder = job_dir / str(model) if model else job_dir
        write_failure(folder, failure_status(message, type(error).__name__, model, sample))

    # ------------------------------------------------------------------ end of the sweep
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write ``<sweep dir>/comparison``; exit with status 1 if a job failed or the comparison failed."""
        if not self.enabled:
            return
        sweep = _select(config, "hydra.sweep.dir")
        if not sweep:
            log.error("comparison skipped: hydra.sweep.dir is not set")
            return
        sweep_dir = Path(str(sweep))
        if _is_sharded(config):  # a data-set run split into shards: merge them instead of comparing
            self._merge_shards(config, sweep_dir)
            return
        out_dir = sweep_dir / COMPARISON_DIR
        comparison_failed = False
        comparison: dict | None = None
        try:
            from xai.compare import compare_runs
            from xai.html import write_report_page

            comparison = compare_runs([sweep_dir], out_dir)
            write_report_page("comparison", out_dir, config)
            log.info("comparison of %s written; report: %s", sweep_dir, out_dir / COMPARISON_REPORT)
        except Exception as error:  # noqa: BLE001 - a comparison failure must not hide the job results
            comparison_failed = True
            log.error(
                "comparison of %s failed: %s (the jobs' own results are unaffected)",
                sweep_dir,
                error,
                exc_info=not isinstance(error, PrecursorError),
            )
        problems = self._problems(comparison)
        if problems:
            log.error(
                "%d job(s) of the sweep failed or are missing: %s; see %s",
                len(problems),
                "; ".join(problems),
                out_dir / COMPARISON_REPORT,
            )
        if (problems or comparison_failed) and self.exit_on_failure:
            sys.exit(1)

    def _merge_shards(self, config: DictConfig, sweep_dir: Path) -> None:
        """Merge the shards into ``<sweep dir>/<model>/`` (:mod:`xai.merge`); exit with status 1 when a shard
        is missing or failed (the merge then writes no result) or the merge itself failed."""
        from xai.dataset import DatasetFigures
        from xai.html import write_report_page
        from xai.merge import MergeRequest, merge_shards
        from xai.render import render_class_means

        request = MergeRequest(
            sweep_dir,
            shards=int(_select(config, "task.shards")),
            figures=DatasetFigures(class_means=render_class_means),
            page=lambda folder: write_report_page("dataset", folder, config),
        )
        try:
            for folder in merge_shards(request):
                log.info("merged the shards of the sweep into %s (report.md, dataset_results.json)", folder)
            failed = False
        except Exception as error:  # noqa: BLE001 - reported, then the exit status says it
            log.error("%s", error, exc_info=not isinstance(error, PrecursorError))
            failed = True
        if (failed or self.failed_jobs) and self.exit_on_failure:
            sys.exit(1)

    def _problems(self, comparison: dict | None) -> list[str]:
        problems: list[str] = []
        if comparison is not None:
            jobs = comparison.get("jobs", {})
            for item in jobs.get("failed", []):
                problems.append(f"failed {item.get('job') or item.get('file')}: {item.get('error')}")
            for item in jobs.get("missing", []):
                problems.append(f"missing {item.get('job') or item.get('model')}: {item.get('reason')}")
            for item in jobs.get("unreadable", []):
                problems.append(f"unreadable {item.get('file')}: {item.get('error')}")
            reported = {str(item.get("error")) for item in jobs.get("failed", [])}
        else:
            reported = set()
        for record in self.failed_jobs:  # failures the comparison could not see on disk
            if record["error"] not in reported:
                problems.append(f"failed {record['job']}: {record['error']}")
        return problems
