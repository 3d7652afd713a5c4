"""Explaining chosen samples into the ``visualization_results.json`` structure, with an NPZ and a figure
per sample when a folder is given: the one code path of ``task=explain`` and of :func:`xai.explain`.

Data source -> :mod:`xai.pipeline` batches (predict, explain every head with every method, resample
to the grid, attention summaries) -> one results entry per sample (and its files).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.io import atomic_savez, atomic_write_json
from core.names import HEADS, RESULTS_FILE
from core.progress import Progress
from geomag.activity_summary import activity_text
from geomag.dataset import SampleRecord
from xai.components import figure_components
from xai.explainers.base import normalize_for_display
from xai.explainers.targets import TargetSpec
from xai.indicators import IndicatorSettings, sample_indicators
from xai.pipeline import BatchExplanation, ExplainContext, batches, explain_batch, load_grids

log = logging.getLogger(__name__)


@dataclass
class ExplainRequest:
    """What to explain samples with: the model bundle, its explainers (method name -> explainer), the
    heads, the explained class (``predicted`` | ``true`` | a class name), the explanation target, the
    batch size, the activity settings (``conf/activity`` as a mapping; ``None``: no activity), the
    model's split (sample -> train/validation/test), the environment entry and the figure renderer
    (``None``: :func:`xai.render.render_sample_figure`)."""

    bundle: Any
    explainers: Mapping[str, Any]
    heads: Sequence[str] = HEADS
    explained_class: Any = "predicted"
    target: TargetSpec = field(default_factory=TargetSpec)
    batch_size: int = 8
    activity: Mapping | None = None
    split: Mapping[str, str] = field(default_factory=dict)
    environment: Mapping | None = None
    render: Callable[..., Any] | None = None


@dataclass
class _Outputs:
    """What is written per sample (NPZ, figure; only with a folder) and collected for the results."""

    folder: Path | None
    bundle: Any
    split: Mapping[str, str]
    render: Callable[..., Any] | None
    entries: list[dict] = field(default_factory=list)
    native: dict[str, list[int]] = field(default_factory=dict)  # method -> native map shape [h, w]
    axes: dict | None = None  # the first sample's grid axes
    indicators: IndicatorSettings = field(default_factory=IndicatorSettings)  # grid values -> power
    activity: dict = field(default_factory=dict)  # sample -> geomag.activity_summary.activity_summary (or None)


def explain_records(request: ExplainRequest, source: Any, records: Sequence[SampleRecord], folder: Path | None) -> dict:
    """Explain ``records`` of ``source``; return the ``visualization_results.json`` document.

    With ``folder``: each sample's ``<sample>_heatmaps.npz`` and ``<sample>_visualization.png`` and
    the results JSON are written there (atomically); without: nothing is written and the entries'
    ``files`` are ``None``.
    """
    outputs = explain_samples(request, source, records, folder)
    bundle = request.bundle
    graph = bundle.explanation_graph()
    heads = [str(h) for h in request.heads]
    results = {
        "model": bundle.name,
        "model_file": str(bundle.source_file),
        "target_layer": bundle.target_layer,
        "input_shape": list(bundle.input_shape),
        "class_mappings": bundle.class_mappings.to_dict(),
        "methods": list(request.explainers),
        "heads": heads,
        "score": {h: graph.score_kind[h] for h in heads},
        "target": {"kind": request.target.kind, "contrast_class": request.target.contrast_class},
        "native_resolution": outputs.native,
        "preprocessing": bundle.preprocessing,
        "data": source.describe(),
        "environment": dict(request.environment) if request.environment is not None else None,
        "axes": outputs.axes,
        "samples": outputs.entries,
        "status": "ok",
    }
    if folder is not None:
        atomic_write_json(Path(folder) / RESULTS_FILE, results)
    return results


def explain_samples(
    request: ExplainRequest, source: Any, records: Sequence[SampleRecord], folder: Path | None
) -> _Outputs:
    """Explain ``records`` with every method and head; with ``folder``, write NPZ and figure per sample."""
    render = request.render
    if folder is not None and render is None:
        from xai.render import render_sample_figure

        render = render_sample_figure
    context = ExplainContext(
        request.bundle, request.explainers, tuple(request.heads), request.explained_class, target=request.target
    )
    outputs = _Outputs(None if folder is None else Path(folder), request.bundle, request.split, render)
    outputs.indicators = IndicatorSettings.of_source(source)
    outputs.activity = sample_activities(source, records, request.activity)
    records = list(records)
    with Progress(len(records), "explaining", unit="sample", logger=log) as bar:
        for begin, end in batches(len(records), int(request.batch_size)):
            for batch in load_grids(source, records[begin:end]):
                result = explain_batch(context, batch)
                for i in range(len(batch.records)):
                    outputs.entries.append(_sample_entry(outputs, result, i))
                bar.update(len(batch.records))
    return outputs


def sample_activities(source: Any, records: Sequence[SampleRecord], activity: Mapping | None) -> dict[str, dict | None]:
    """Each sample's geomagnetic activity summary (flag, K / Kp / Dst / proxy and their source);
    ``activity``: ``conf/activity`` as a mapping, ``None``: no activity."""
    if activity is None:
        return {r.name: None for r in records}
    from geomag.activity import ActivityConfig
    from geomag.activity_summary import record_activity

    config = ActivityConfig.from_config(dict(activity))
    return {r.name: record_activity(source, r, config) for r in records}


def _sample_entry(outputs: _Outputs, result: BatchExplanation, i: int) -> dict:
    """Sample ``i``'s results entry; with a folder, also its NPZ (maps on the grid, for display and
    native) and figure."""
    record, axes = result.batch.records[i], result.batch.axes[i]
    score_kind = outputs.bundle.explanation_graph().score_kind
    arrays = {"input": result.batch.grids[i]}
    heads, displays = {}, {}
    for head, by_method in result.maps.items():
        display = {name: normalize_for_display(maps.on_grid[i]) for name, maps in by_method.items()}
        for name, maps in by_method.items():
            arrays[f"{name}__{head}"] = maps.on_grid[i]
            arrays[f"{name}__{head}__display"] = display[name]
            arrays[f"{name}__{head}__native"] = maps.explanation.maps[i]
            if maps.channels is not None:  # per-component maps on the grid (gradient methods, channels layout)
                for k, component in enumerate(axes.components):
                    arrays[f"{name}__{head}__component_{component}"] = maps.channels[i, ..., k]
            outputs.native.setdefault(name, [int(v) for v in maps.explanation.native_shape])
        heads[head] = {
            **result.prediction(head, i),
            "score": score_kind[head],
            "method_scores": {name: maps.explanation.score_kind for name, maps in by_method.items()},
            "attention": {name: maps.attention[i] for name, maps in by_method.items()},
            "components": {name: maps.components[i] for name, maps in by_method.items()},
        }
        for name, per_head in result.reliance.items():  # occlusion: region table, marginals, agreement
            arrays.update(per_head[head][i].npz_arrays(f"{name}__{head}"))
            heads[head].setdefault("reliance", {})[name] = result.reliance_entry(name, head, i)
        displays[head] = {name: value for name, value in display.items() if name not in result.reliance}
    activity = outputs.activity.get(record.name)
    files = None
    if outputs.folder is not None:
        files = {"figure": f"{record.name}_visualization.png", "heatmaps": f"{record.name}_heatmaps.npz"}
        atomic_savez(outputs.folder / files["heatmaps"], **arrays, **axes.to_npz_arrays())
        _render(outputs, result, i, heads, displays, files["figure"], activity)
    for head_entry in heads.values():
        head_entry["files"] = files
    if outputs.axes is None:
        outputs.axes = axes.to_dict()
    log.info(
        "%s: %s",
        record.name,
        ", ".join(f"{h} {e['prediction']} (p={e['confidence']:.2f}, true {e['true']})" for h, e in heads.items()),
    )
    return {
        "sample": record.name,
        "source": str(record.path),
        "split": outputs.split.get(record.name),
        "event_time": record.event_time,
        "true": {"magnitude": record.magnitude_class, "azimuth": record.azimuth_class},
        "heads": heads,
        "indicators": sample_indicators(result.batch.grids[i], axes, record.path, outputs.indicators),
        "files": files,
        "activity": activity,
    }


def _render(
    outputs: _Outputs, result: BatchExplanation, i: int, heads: dict, displays: dict, figure: str, activity: Any
) -> None:
    """Draw sample ``i``'s figure (input, maps per head and method, predictions) into the folder."""
    record = result.batch.records[i]
    outputs.render(
        outputs.folder / figure,
        activity=activity_text(activity),
        sample=record.name,
        model=outputs.bundle.name,
        grid_image=result.batch.grids[i],
        axes=result.batch.axes[i],
        heads={
            h: {
                "prediction": e["prediction"],
                "confidence": e["confidence"],
                "true": e["true"],
                "correct": e["correct"],
                "explained_class": e["explained_class"],
                "target": e["target"],
                "maps": displays[h],
                "reliance": next(
                    (v[h][i].figure_entry(m, e["explained_class"]) for m, v in result.reliance.items()), None
                ),
                "components": {m: figure_components(c) for m, c in e["components"].items()},
            }
            for h, e in heads.items()
        },
    )
