"""The randomisation tests of a data-set run (Adebayo et al. 2018): cascading model-parameter
randomisation and the random-logit test with several other classes per sample, per method and head,
with the seconds each took on this machine."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.progress import Progress
from xai.pipeline import GridBatch, predict

log = logging.getLogger(__name__)

__all__ = ["randomisation_tests"]


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def randomisation_tests(context: Any, source: Any, records: Sequence[Any], options: Any) -> tuple[dict, dict]:
    """``(results, cost)`` of the randomisation tests on ``records``.

    ``results[method][head]``: ``{'cascading': [{'label', 'layers', 'spearman': per sample}],
    'random_logit': per-sample mean ρ over the draws, 'random_logit_draws': per sample, one ρ per
    other class}``; ``cost``: ``{'randomisation' | 'random_logit': {'seconds', 'samples', 'by_method'}}``.
    ``context``: an :class:`xai.pipeline.ExplainContext`; ``options``: a :class:`xai.dataset.DatasetOptions`.
    """
    from xai.metrics.randomisation import cascading_randomisation, random_logit_draws

    predictions = predict(context, GridBatch.of(records, [source.load(r) for r in records]))
    wanted = options.randomisation_methods
    draws = int(getattr(options, "random_logit_draws", 1))
    out: dict = {}
    cost = {
        name: {"seconds": 0.0, "samples": len(records), "by_method": {}} for name in ("randomisation", "random_logit")
    }
    methods = [m for m in context.explainers if wanted is None or m in wanted]
    bar = Progress(len(methods) * len(context.heads), "randomisation tests", unit="method x head", logger=log)
    for method in methods:
        out[method] = {}
        for head in context.heads:
            targets = predictions.targets[head]

            def explain(x, classes, _explainer=context.explainers[method], _head=head):
                return _explainer(x, head=_head, class_indices=np.asarray(classes, dtype=np.int32)).maps

            log.debug("randomisation test: %s, head %s, %d samples", method, head, len(records))
            started = time.perf_counter()
            steps = cascading_randomisation(
                context.bundle.model,
                explain,
                predictions.inputs,
                targets,
                max_steps=options.randomisation_steps,
                seed=options.seed,
            )
            middle = time.perf_counter()
            logit = random_logit_draws(
                explain, predictions.inputs, targets, len(context.bundle.classes(head)), draws, seed=options.seed
            )
            _add_seconds(cost["randomisation"], method, middle - started)
            _add_seconds(cost["random_logit"], method, time.perf_counter() - middle)
            with np.errstate(all="ignore"):
                per_sample = np.array([np.nanmean(row) if np.isfinite(row).any() else np.nan for row in logit])
            out[method][head] = {
                "cascading": [
                    {
                        "label": s["label"],
                        "layers": list(s["layers"]),
                        "spearman": [_finite_or_none(v) for v in np.asarray(s["spearman"], dtype=float)],
                    }
                    for s in steps
                ],
                "random_logit": [_finite_or_none(v) for v in per_sample],
                "random_logit_draws": [[_finite_or_none(v) for v in row] for row in logit],
            }
            bar.update()
    bar.close()
    return out, cost


def _add_seconds(entry: dict, method: str, seconds: float) -> None:
    entry["seconds"] = round(entry["seconds"] + seconds, 3)
    entry["by_method"][method] = round(entry["by_method"].get(method, 0.0) + seconds, 3)
