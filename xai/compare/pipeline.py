"""``compare_runs``: find the models' results, compute the comparison, draw its figures and write JSON and report."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.errors import ConfigError, InputDataError, PrecursorError
from core.io import atomic_write_json, atomic_write_text
from core.jsonvalues import json_value
from core.names import COMPARISON_JSON, COMPARISON_REPORT, RESULTS_FILE
from core.progress import progress
from xai.compare import aggregate
from xai.compare.discover import Found, check_expected, discover
from xai.compare.figures import FigureBook
from xai.compare.load import load_sample
from xai.compare.reliance import reliance_summary
from xai.compare.report import report
from xai.compare.rules import DECIMALS

log = logging.getLogger(__name__)


class SweepHadFailures(PrecursorError):  # noqa: N818 - a status, read as "the sweep had failures"
    """Raised by ``task=compare`` after all outputs are written when a job failed or is missing."""


def compare_runs(
    folders: Sequence[Path | str],
    out_dir: Path | str,
    expected_models: Sequence[str] | None = None,
    expected_samples: Sequence[str] | None = None,
) -> dict:
    """Collect the models' results under ``folders``, compare them and write all outputs to ``out_dir``.

    ``folders`` are run folders (``<run>/<model>/visualization_results.json``) and/or sweep folders
    (``<sweep>/<job num>/<model>/...``). Everything found is merged by model *name*; failed jobs
    (``status.json``) and jobs that left nothing (a ``.hydra/`` folder only) are listed, never dropped.
    Writes ``<sample>_comparison.png``, the confidence charts, ``paper_<method>_<head>.pdf/.png``,
    ``comparison.json`` (sorted keys, floats rounded to 6 decimals, no timestamps or output paths:
    the same folders give the same bytes) and the Markdown report made from those numbers only.

    Returns the (rounded) content of ``comparison.json``. Raises
    :class:`~core.errors.ConfigError` when there are no folders or nothing at all (no results,
    no failed or missing jobs) is found under them; a folder that does not exist, or two results of
    one model name from different model files, raise :class:`~core.errors.InputDataError`.
    """
    if not folders:
        raise ConfigError("task.folders: no folders to compare")
    roots = []
    for folder in folders:
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise InputDataError(folder, "folder to compare does not exist")
        roots.append(path)
    roots = list(dict.fromkeys(roots))
    out = Path(out_dir)
    found = discover(roots)
    if found.is_empty():
        raise ConfigError(
            f"task.folders: no {RESULTS_FILE} (and no failed or missing jobs) found under "
            f"{', '.join(str(r) for r in roots)}"
        )
    check_expected(found, expected_models, expected_samples)
    out.mkdir(parents=True, exist_ok=True)
    comparison, figure_errors = build_comparison(found, roots, out)
    rounded = json_value(comparison, DECIMALS)
    atomic_write_json(out / COMPARISON_JSON, rounded, sort_keys=True)
    atomic_write_text(out / COMPARISON_REPORT, report(rounded, figure_errors))
    log.info("comparison written to %s (report %s)", out, out / COMPARISON_REPORT)
    return rounded


def has_failures(comparison: Mapping) -> bool:
    """True when any job failed, is missing, or left unreadable results."""
    jobs = comparison.get("jobs", {})
    return bool(jobs.get("failed") or jobs.get("missing") or jobs.get("unreadable"))


def build_comparison(found: Found, roots: Sequence[Path], out: Path) -> tuple[dict, list[str]]:
    """All numbers of the comparison, and its figures drawn into ``out``.

    Returns ``(comparison, figure errors)``; the figure errors go to the log and the report only,
    so ``comparison.json`` keeps deterministic content.
    """
    plan = aggregate.make_plan(found)
    comparison = aggregate.comparison_facts(found, roots, plan)
    comparison["trust"] = aggregate.trust_summary(found)
    comparison["trust_paired"] = aggregate.trust_pairs(found)
    comparison["activity"] = aggregate.sample_activity(found, plan)
    comparison["reliance"] = reliance_summary(found)
    predictions, accuracy, confidence = aggregate.predictions(found, plan)
    comparison["predictions"] = predictions
    comparison["accuracy"] = accuracy
    comparison["confidence"] = confidence
    comparison["agreement"] = aggregate.agreement(predictions, plan)
    maps = aggregate.MapAggregates(plan)
    figures = FigureBook(out, plan)
    for sample in progress(plan.samples, "comparison figures", unit="sample", logger=log):
        loaded = load_sample(found.records, plan.models, sample, comparison["problems"])
        maps.add(sample, loaded, comparison["problems"])
        figures.add_sample(sample, loaded, predictions)
    comparison["similarity"], comparison["attention"] = maps.results()
    figures.add_summary(comparison)
    comparison["figures"] = sorted(figures.written)
    return comparison, figures.errors
