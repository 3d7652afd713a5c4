"""``python main.py`` / ``task=explain``: explain the selected samples with every configured method,
for both heads, and write per-model figures, heatmaps (NPZ) and ``visualization_results.json``.

Thin layer over the library: data source -> model bundle -> explainers -> the batch pipeline of
:mod:`xai.pipeline` -> NPZ, figure and results entry per sample.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.io import atomic_savez, atomic_write_json
from core.names import RESULTS_FILE
from core.text import plain
from geomag.dataset import SampleRecord, default_selection, select_samples
from xai.explainers import build_explainers
from xai.explainers.base import normalize_for_display
from xai.pipeline import BatchExplanation, ExplainContext, batches, check_heads, explain_batch, load_grids
from xai.runtime import environment, output_dir, staged_folder

log = logging.getLogger(__name__)

# One model is kept per process: a sweep's jobs reuse it (and, through build_explainers' cache, its
# compiled explainers).
_CACHE: dict = {}


@dataclass
class ResolvedModel:
    bundle: object
    model_dir: Path | None
    split: dict[str, str]


def resolve_model(cfg: DictConfig, source) -> ResolvedModel:
    """The user's model (``model.file``) or the cached demo model (trained once if missing)."""
    from models.loading import load_model_bundle_from_config
    from models.training import ensure_demo_model, read_split

    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    key = ("model", repr(model_cfg), getattr(source, "hash", None))
    if _CACHE.get("key") == key:
        return _CACHE["model"]
    _clear_cache()
    if model_cfg.get("file"):
        bundle = load_model_bundle_from_config(model_cfg)
        resolved = ResolvedModel(bundle, None, {})
    else:
        if not hasattr(source, "hash"):
            raise ConfigError(
                "model.file: set the path of your trained model (the demo model only exists for data=demo)"
            )
        model_dir = ensure_demo_model(model_cfg, source, cfg.paths.cache_dir, int(cfg.seed))
        bundle = load_model_bundle_from_config(
            model_cfg, file=model_dir / "model.keras", class_mappings=model_dir / "class_mappings.json"
        )
        resolved = ResolvedModel(bundle, model_dir, read_split(model_dir))
    _CACHE.update(key=key, model=resolved)
    return resolved


def _clear_cache() -> None:
    if _CACHE:
        import keras

        _CACHE.clear()
        keras.backend.clear_session()  # free the previous model's graphs between sweep jobs


def choose_samples(cfg: DictConfig, source, resolved: ResolvedModel) -> list[SampleRecord]:
    records = source.records()
    selection = cfg.get("sample")
    if selection is None and resolved.split:
        held_out = [r for r in records if resolved.split.get(r.name) == "test"]
        if held_out:  # explain unseen samples by default
            return select_samples(records, default_selection(held_out, source.class_mappings), source.class_mappings)
    return select_samples(records, selection, source.class_mappings)


@dataclass
class _Outputs:
    """What the explain task writes per sample (NPZ, figure) and collects for the results JSON."""

    folder: Path
    bundle: Any
    split: Mapping[str, str]
    render: Callable[..., Any]
    entries: list[dict] = field(default_factory=list)
    native: dict[str, list[int]] = field(default_factory=dict)  # method -> native map shape [h, w]
    axes: dict | None = None  # the first sample's grid axes


def explain_samples(
    cfg: DictConfig, source, resolved: ResolvedModel, samples: list[SampleRecord], folder: Path
) -> _Outputs:
    """Explain ``samples`` with every method and head; write NPZ and figure per sample; return the entries."""
    from xai.render import render_sample_figure

    bundle = resolved.bundle
    heads = check_heads(bundle, cfg.xai.heads)
    context = ExplainContext(bundle, build_explainers(cfg.xai.methods, bundle), heads, plain(cfg.xai.explained_class))
    outputs = _Outputs(folder, bundle, resolved.split, render_sample_figure)
    for begin, end in batches(len(samples), int(cfg.xai.batch_size)):
        for batch in load_grids(source, samples[begin:end]):
            result = explain_batch(context, batch)
            for i in range(len(batch.records)):
                outputs.entries.append(_write_sample(outputs, result, i))
    return outputs


def _write_sample(outputs: _Outputs, result: BatchExplanation, i: int) -> dict:
    """Sample ``i``'s NPZ (maps on the grid, for display and native) and figure; its results entry."""
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
            outputs.native.setdefault(name, [int(v) for v in maps.explanation.native_shape])
        heads[head] = {
            **result.prediction(head, i),
            "score": score_kind[head],
            "method_scores": {name: maps.explanation.score_kind for name, maps in by_method.items()},
            "attention": {name: maps.attention[i] for name, maps in by_method.items()},
        }
        displays[head] = display
    files = {"figure": f"{record.name}_visualization.png", "heatmaps": f"{record.name}_heatmaps.npz"}
    atomic_savez(outputs.folder / files["heatmaps"], **arrays, **axes.to_npz_arrays())
    outputs.render(
        outputs.folder / files["figure"],
        sample=record.name,
        model=outputs.bundle.name,
        grid_image=result.batch.grids[i],
        axes=axes,
        heads={
            h: {
                "prediction": e["prediction"],
                "confidence": e["confidence"],
                "true": e["true"],
                "correct": e["correct"],
                "explained_class": e["explained_class"],
                "maps": displays[h],
            }
            for h, e in heads.items()
        },
    )
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
        "files": files,
    }


def run(cfg: DictConfig) -> Path:
    """The explain task; returns the per-model output folder."""
    from models.device import configure_devices

    device = configure_devices(bool(cfg.runtime.mixed_precision))
    source = hydra.utils.instantiate(cfg.data)
    resolved = resolve_model(cfg, source)
    bundle = resolved.bundle
    samples = choose_samples(cfg, source, resolved)
    log.info("explaining %d sample(s) with %s on heads %s", len(samples), list(cfg.xai.methods), list(cfg.xai.heads))
    final = output_dir() / bundle.name
    with staged_folder(final) as folder:
        outputs = explain_samples(cfg, source, resolved, samples, folder)
        graph = bundle.explanation_graph()
        results = {
            "model": bundle.name,
            "model_file": str(bundle.source_file),
            "target_layer": bundle.target_layer,
            "input_shape": list(bundle.input_shape),
            "class_mappings": bundle.class_mappings.to_dict(),
            "methods": list(cfg.xai.methods),
            "heads": [str(h) for h in cfg.xai.heads],
            "score": {h: graph.score_kind[h] for h in cfg.xai.heads},
            "native_resolution": outputs.native,
            "preprocessing": bundle.preprocessing,
            "data": source.describe(),
            "environment": environment(device),
            "axes": outputs.axes,
            "samples": outputs.entries,
            "status": "ok",
        }
        atomic_write_json(folder / RESULTS_FILE, results)
    log.info("wrote %d sample(s) to %s", len(outputs.entries), final)
    return final
