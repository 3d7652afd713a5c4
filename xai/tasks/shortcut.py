"""``python main.py task=shortcut data=demo_shortcut``: does a model exploit a planted cue, and do the
explanations show it? Thin layer over :mod:`xai.shortcut`; writes ``<run>/shortcut/``."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.io import atomic_write_json, atomic_write_text
from geomag.sources import DemoDataSource
from xai import shortcut
from xai.explainers import build_explainers
from xai.runtime import output_dir, staged_folder
from xai.tasks.explain import resolve_model

log = logging.getLogger(__name__)


def run(
    cfg: DictConfig, n_samples: int = 120, seed: int = 11, batch_size: int = 16, methods: list[str] | None = None
) -> Path:
    from models.device import configure_devices

    configure_devices(bool(cfg.runtime.mixed_precision))
    generator = OmegaConf.to_container(cfg.data.generator, resolve=True)
    spectrogram = OmegaConf.to_container(cfg.spectrogram, resolve=True)
    frequency = generator.get("shortcut_frequency_hz")
    if frequency is None:
        raise ConfigError("task=shortcut needs data=demo_shortcut (data.generator.shortcut_frequency_hz is null)")
    methods = list(methods or cfg.xai.methods)
    unknown = [m for m in methods if m not in cfg.xai.methods]
    if unknown:
        raise ConfigError(f"task.methods: {unknown} not in xai.methods ({list(cfg.xai.methods)})")
    classes = list(generator.get("magnitude_fractions") or {"Normal": 1}.keys())
    variants = {
        name: DemoDataSource(cfg.paths.cache_dir, generator=gen, spectrogram=spectrogram)
        for name, gen in shortcut.variant_generators(generator, classes, seed, n_samples).items()
    }
    records = {name: source.records() for name, source in variants.items()}
    results = {
        "frequency_hz": float(frequency),
        "rms_nT": float(generator.get("shortcut_rms_nT", 0.3)),
        "n_samples": int(n_samples),
        "seed": int(seed),
        "models": {},
    }
    clean_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    clean_cfg.data.generator.shortcut_frequency_hz = None
    for name, model_cfg in (("shortcut", cfg), ("clean", clean_cfg)):
        import hydra

        source = hydra.utils.instantiate(model_cfg.data)
        resolved = resolve_model(model_cfg, source)
        bundle = resolved.bundle
        explainers = {m: e for m, e in build_explainers(model_cfg.xai.methods, bundle).items() if m in methods}
        log.info("shortcut study: %s model (%s)", name, resolved.model_dir)
        results["models"][name] = {
            "model_dir": str(resolved.model_dir),
            "predictions": {v: shortcut.prediction_effects(bundle, variants[v], records[v]) for v in shortcut.VARIANTS},
            "explanations": shortcut.explanation_effects(
                bundle, explainers, variants["as_trained"], records["as_trained"], float(frequency), batch_size
            ),
        }
    results["verdict"] = shortcut.verdict(results)
    with staged_folder(output_dir() / "shortcut") as folder:
        atomic_write_json(folder / "shortcut_results.json", results)
        atomic_write_text(folder / "report.md", shortcut.report(results))
    for line in results["verdict"]:
        log.info("%s", line)
    return output_dir() / "shortcut"
