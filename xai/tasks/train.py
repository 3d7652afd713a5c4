"""``python main.py task=train model=...``: train the configured model on ``cfg.data`` into ``<run>/<model>/``.

Thin layer over :func:`models.training.train_model` (splits, class-balanced weights, progressive
resizing, held-out evaluation), which writes ``model.keras``, ``class_mappings.json``,
``history.json``, ``evaluation.json`` and ``split.csv``.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from models.identity import model_name
from models.training import TrainingResult, train_model
from xai.runtime import output_dir

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> TrainingResult:
    """Train ``cfg.model`` on ``cfg.data`` (demo or the user's CSV) with seed ``cfg.seed``."""
    from models.device import configure_devices  # imports Keras: only when the task runs

    configure_devices(bool(cfg.runtime.mixed_precision))
    source = hydra.utils.instantiate(cfg.data)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    result = train_model(model_cfg, source, output_dir() / str(model_name(cfg.model)), int(cfg.seed))
    log.info("trained model written to %s", result.model_file)
    return result
