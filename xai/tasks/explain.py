"""``python main.py`` / ``task=explain``: explain the selected samples with every configured method,
for both heads, and write per-model figures, heatmaps (NPZ) and ``visualization_results.json``.

Thin layer over the library: data source -> model bundle -> explainers -> :func:`xai.visualization.explain_records`
(the batch pipeline of :mod:`xai.pipeline` -> NPZ, figure and results entry per sample; the notebook
API :func:`xai.explain` calls it too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.text import plain
from geomag.dataset import SampleRecord, default_selection, select_samples
from xai import visualization
from xai.explainers import build_explainers
from xai.explainers.targets import TargetSpec
from xai.html import write_report_page
from xai.pipeline import check_heads
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


def sample_activities(cfg: DictConfig, source, samples: list[SampleRecord]) -> dict[str, dict | None]:
    """Each sample's geomagnetic activity summary (flag, K / Kp / Dst / proxy and their source), ``cfg.activity``."""
    return visualization.sample_activities(source, samples, activity_settings(cfg))


def activity_settings(cfg: DictConfig) -> dict:
    """``cfg.activity`` as a plain mapping (absent: the defaults of :class:`geomag.activity.ActivityConfig`)."""
    return OmegaConf.to_container(cfg.activity, resolve=True) if "activity" in cfg else {}


def target_spec(cfg: DictConfig) -> TargetSpec:
    """``xai.target`` / ``xai.contrast_class`` (absent keys: one class's score)."""
    return TargetSpec.of(plain(cfg.xai.get("target")), plain(cfg.xai.get("contrast_class")))


def explain_request(cfg: DictConfig, resolved: ResolvedModel, device: str) -> visualization.ExplainRequest:
    """The library's :class:`~xai.visualization.ExplainRequest` from ``cfg.xai`` and ``cfg.activity``."""
    bundle = resolved.bundle
    return visualization.ExplainRequest(
        bundle,
        build_explainers(cfg.xai.methods, bundle),
        heads=check_heads(bundle, cfg.xai.heads),
        explained_class=plain(cfg.xai.explained_class),
        target=target_spec(cfg),
        batch_size=int(cfg.xai.batch_size),
        activity=activity_settings(cfg),
        split=resolved.split,
        environment=environment(device),
    )


def run(cfg: DictConfig) -> Path:
    """The explain task; returns the per-model output folder."""
    from models.device import configure_devices

    device = configure_devices(bool(cfg.runtime.mixed_precision))
    source = hydra.utils.instantiate(cfg.data)
    resolved = resolve_model(cfg, source)
    samples = choose_samples(cfg, source, resolved)
    log.info("explaining %d sample(s) with %s on heads %s", len(samples), list(cfg.xai.methods), list(cfg.xai.heads))
    request = explain_request(cfg, resolved, device)
    final = output_dir() / resolved.bundle.name
    with staged_folder(final) as folder:
        results = visualization.explain_records(request, source, samples, folder)
        write_report_page("model", folder, cfg)
    log.info("wrote %d sample(s) to %s", len(results["samples"]), final)
    return final
