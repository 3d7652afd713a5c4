"""Compare the explain outputs of several models (runs or sweep jobs) and write an honest report.

Modules: :mod:`~xai.compare.discover` (finding results, failure records and job folders),
:mod:`~xai.compare.load` (reading JSON/NPZ), :mod:`~xai.compare.aggregate` (the numbers),
:mod:`~xai.compare.figures` (drawing through :mod:`xai.render`), :mod:`~xai.compare.report` (the
Markdown text from ``comparison.json``), :mod:`~xai.compare.rules` (the wording thresholds) and
:mod:`~xai.compare.pipeline` (:func:`compare_runs`, which runs them in that order).
"""

from __future__ import annotations

from xai.compare.pipeline import SweepHadFailures, compare_runs, has_failures
from xai.compare.rules import RULES

__all__ = ["RULES", "SweepHadFailures", "compare_runs", "has_failures"]
