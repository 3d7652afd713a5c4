"""Can the explanations of a data-set run be trusted: aggregation (numbers), verdicts and the
Markdown report, re-exported here for the callers."""

from xai.trust.aggregate import (
    CLASS_MEANS_FILE,
    LOCALISATION_KEYS,
    ClassMeans,
    aggregate_run,
    class_means,
    confusion_by_name,
)
from xai.trust.report import dataset_report, trust_section
from xai.trust.verdicts import DEFAULT_THRESHOLDS, verdicts

__all__ = [
    "CLASS_MEANS_FILE",
    "DEFAULT_THRESHOLDS",
    "LOCALISATION_KEYS",
    "ClassMeans",
    "aggregate_run",
    "class_means",
    "confusion_by_name",
    "dataset_report",
    "trust_section",
    "verdicts",
]
