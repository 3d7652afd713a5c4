"""``python main.py`` / ``task=explain``: explain the selected samples with every configured method,
for both heads, and write per-model figures, heatmaps (NPZ) and ``visualization_results.json``.

Thin layer over the library: data source -> model bundle -> explainers -> attention -> render.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError, InputDataError
from core.io import atomic_savez, atomic_write_json
from geomag.dataset import ClassMappings, SampleRecord, default_selection, select_samples
from xai.attention import attention_summary
from xai.explainers.base import normalize_for_display, to_grid
from xai.runtime import environment, output_dir, staged_folder

log = logging.getLogger(__name__)

# One model (and its compiled explainers) is kept per process: a sweep's jobs reuse it.
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
            raise ConfigError("model.file: set the path of your trained model (the demo model only exists "
                              "for data=demo)")
        model_dir = ensure_demo_model(model_cfg, source, cfg.paths.cache_dir, int(cfg.seed))
        bundle = load_model_bundle_from_config(model_cfg, file=model_dir / "model.keras",
                                               class_mappings=model_dir / "class_mappings.json")
        resolved = ResolvedModel(bundle, model_dir, read_split(model_dir))
    _CACHE.update(key=key, model=resolved, explainers={})
    return resolved


def _clear_cache() -> None:
    if _CACHE:
        import keras

        _CACHE.clear()
        keras.backend.clear_session()  # free the previous model's graphs between sweep jobs


def build_explainers(methods_cfg: Mapping, bundle) -> dict:
    """Instantiate every configured method (``conf/method/*.yaml``) for this model, cached."""
    cache = _CACHE.setdefault("explainers", {})
    out = {}
    for name, method_cfg in methods_cfg.items():
        key = (name, repr(OmegaConf.to_container(method_cfg, resolve=True)))
        if key not in cache:
            try:
                factory = hydra.utils.instantiate(method_cfg, _partial_=True)
                cache[key] = factory(model=bundle, target_layer=bundle.target_layer)
            except hydra.errors.InstantiationException as exc:
                raise ConfigError(f"xai.methods.{name}: {exc}") from None
        out[name] = cache[key]
    return out


def explained_classes(spec: object, head: str, mappings: ClassMappings, predicted: np.ndarray,
                      records: Sequence[SampleRecord]) -> np.ndarray:
    """Class index per sample: ``predicted`` | ``true`` | a class name | ``{head: name}``."""
    if isinstance(spec, Mapping):
        spec = spec.get(head, "predicted")
    spec = str(spec)
    if spec == "predicted":
        return predicted.astype(np.int32)
    if spec == "true":
        return np.array([mappings.index(head, r.true_class(head)) for r in records], dtype=np.int32)
    classes = mappings.classes(head)
    if spec not in classes:
        other = "azimuth" if head == "magnitude" else "magnitude"
        if spec in mappings.classes(other):
            return predicted.astype(np.int32)  # a class of the other head: this head explains its prediction
        raise ConfigError(f"xai.explained_class: {spec!r} is neither 'predicted', 'true' nor a class of "
                          f"either head ({classes} / {mappings.classes(other)})")
    return np.full(len(records), classes.index(spec), dtype=np.int32)


def choose_samples(cfg: DictConfig, source, resolved: ResolvedModel) -> list[SampleRecord]:
    records = source.records()
    selection = cfg.get("sample")
    if selection is None and resolved.split:
        held_out = [r for r in records if resolved.split.get(r.name) == "test"]
        if held_out:  # explain unseen samples by default
            return select_samples(records, default_selection(held_out, source.class_mappings),
                                  source.class_mappings)
    return select_samples(records, selection, source.class_mappings)


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def explain_samples(cfg: DictConfig, source, resolved: ResolvedModel, samples: list[SampleRecord],
                    folder: Path) -> list[dict]:
    """Explain ``samples`` with every method and head; write NPZ and figure per sample; return entries."""
    from xai.render import render_sample_figure

    bundle = resolved.bundle
    heads = [str(h) for h in cfg.xai.heads]
    for head in heads:
        if head not in bundle.heads:
            raise ConfigError(f"xai.heads: unknown head {head!r}; the model has {sorted(bundle.heads)}")
    explainers = build_explainers(cfg.xai.methods, bundle)
    spec = OmegaConf.to_container(cfg.xai.explained_class) if OmegaConf.is_config(
        cfg.xai.explained_class) else cfg.xai.explained_class
    entries = []
    for batch in _batches(samples, int(cfg.xai.batch_size)):
        loaded = [source.load(r) for r in batch]
        shapes = {item.image.shape for item in loaded}
        groups = [[i] for i in range(len(batch))] if len(shapes) > 1 else [list(range(len(batch)))]
        for group in groups:
            entries.extend(_explain_group([batch[i] for i in group], [loaded[i] for i in group], bundle,
                                          explainers, heads, spec, folder, render_sample_figure, resolved))
    return entries


def _explain_group(records, loaded, bundle, explainers, heads, spec, folder, render, resolved) -> list[dict]:
    grids = np.stack([item.image for item in loaded]).astype(np.float32)
    if not np.isfinite(grids).all():
        bad = next(r for r, item in zip(records, loaded) if not np.isfinite(item.image).all())
        raise InputDataError(bad.path, "spectrogram contains NaN or infinite values")
    inputs = bundle.prepare(grids)
    probabilities = bundle.predict_probabilities(inputs)
    grid_shape = grids.shape[1:3]
    per_sample = [{"arrays": {"input": grids[i]}, "heads": {}} for i in range(len(records))]
    for head in heads:
        classes = bundle.classes(head)
        probs = probabilities[head]
        predicted = probs.argmax(axis=1)
        targets = explained_classes(spec, head, bundle.class_mappings, predicted, records)
        maps_by_method = {}
        for name, explainer in explainers.items():
            explanation = explainer(inputs, head=head, class_indices=targets)
            on_grid = to_grid(explanation.maps, grid_shape)
            maps_by_method[name] = (explanation, on_grid, normalize_for_display(on_grid))
        for i, record in enumerate(records):
            true = record.true_class(head)
            prediction = classes[int(predicted[i])]
            head_entry = {
                "prediction": prediction,
                "confidence": float(probs[i, predicted[i]]),
                "probabilities": {c: float(p) for c, p in zip(classes, probs[i])},
                "explained_class": classes[int(targets[i])],
                "true": true,
                "correct": (prediction == true) if true in classes else None,
                "score": bundle.explanation_graph().score_kind[head],
                "method_scores": {name: ex.score_kind for name, (ex, _, _) in maps_by_method.items()},
                "attention": {},
            }
            for name, (explanation, on_grid, display) in maps_by_method.items():
                per_sample[i]["arrays"][f"{name}__{head}"] = on_grid[i]
                per_sample[i]["arrays"][f"{name}__{head}__display"] = display[i]
                per_sample[i]["arrays"][f"{name}__{head}__native"] = explanation.maps[i]
                head_entry["attention"][name] = attention_summary(on_grid[i], loaded[i].axes,
                                                                  native_shape=explanation.native_shape)
            head_entry["_display"] = {name: display[i] for name, (_, _, display) in maps_by_method.items()}
            per_sample[i]["heads"][head] = head_entry
    entries = []
    for i, record in enumerate(records):
        files = {"figure": f"{record.name}_visualization.png", "heatmaps": f"{record.name}_heatmaps.npz"}
        axes = loaded[i].axes
        arrays = {**per_sample[i]["arrays"], **axes.to_npz_arrays()}
        atomic_savez(folder / files["heatmaps"], **arrays)
        render(folder / files["figure"], sample=record.name, model=bundle.name, grid_image=grids[i], axes=axes,
               heads={h: {"prediction": e["prediction"], "confidence": e["confidence"], "true": e["true"],
                          "correct": e["correct"], "explained_class": e["explained_class"],
                          "maps": e.pop("_display")} for h, e in per_sample[i]["heads"].items()})
        for head_entry in per_sample[i]["heads"].values():
            head_entry["files"] = files
        entries.append({
            "sample": record.name,
            "source": str(record.path),
            "split": resolved.split.get(record.name),
            "event_time": record.event_time,
            "true": {"magnitude": record.magnitude_class, "azimuth": record.azimuth_class},
            "heads": per_sample[i]["heads"],
            "files": files,
            "axes": axes.to_dict() if i == 0 else None,
        })
        log.info("%s: magnitude %s (p=%.2f, true %s), azimuth %s (p=%.2f, true %s)", record.name,
                 *(per_sample[i]["heads"][h][k] for h in ("magnitude", "azimuth") if h in per_sample[i]["heads"]
                   for k in ("prediction", "confidence", "true")))
    return entries


def run(cfg: DictConfig) -> Path:
    """The explain task; returns the per-model output folder."""
    from models.device import configure_devices

    device = configure_devices(bool(cfg.runtime.mixed_precision))
    source = hydra.utils.instantiate(cfg.data)
    resolved = resolve_model(cfg, source)
    bundle = resolved.bundle
    samples = choose_samples(cfg, source, resolved)
    log.info("explaining %d sample(s) with %s on heads %s", len(samples), list(cfg.xai.methods),
             list(cfg.xai.heads))
    final = output_dir() / bundle.name
    with staged_folder(final) as folder:
        entries = explain_samples(cfg, source, resolved, samples, folder)
        graph = bundle.explanation_graph()
        first_axes = next((e.pop("axes") for e in entries if e.get("axes")), None)
        for entry in entries:
            entry.pop("axes", None)
        native = {}
        for name, explainer in build_explainers(cfg.xai.methods, bundle).items():
            native[name] = list(getattr(explainer, "native_shape", None) or ())
        results = {
            "model": bundle.name,
            "model_file": str(bundle.source_file),
            "target_layer": bundle.target_layer,
            "input_shape": list(bundle.input_shape),
            "class_mappings": bundle.class_mappings.to_dict(),
            "methods": list(cfg.xai.methods),
            "heads": [str(h) for h in cfg.xai.heads],
            "score": {h: graph.score_kind[h] for h in cfg.xai.heads},
            "preprocessing": bundle.preprocessing,
            "data": source.describe(),
            "environment": environment(device),
            "axes": first_axes,
            "samples": entries,
            "status": "ok",
        }
        atomic_write_json(folder / "visualization_results.json", results)
    log.info("wrote %d sample(s) to %s", len(entries), final)
    return final
