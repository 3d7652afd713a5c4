"""Run-time helpers shared by the Hydra tasks: output folders, failure records, environment facts."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig

from core.failures import failure_status, write_failure

log = logging.getLogger(__name__)


def output_dir() -> Path:
    """This run's (or sweep job's) output folder, from Hydra."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def job_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def record_failure(cfg: DictConfig, error: BaseException) -> Path | None:
    """Write ``<run dir>/<model>/status.json`` describing a failed job (for the comparison step)."""
    target = str(cfg.get("task", {}).get("_target_", ""))
    if not target.endswith(("explain.run", "dataset.run")):
        return None  # only explain and data-set jobs produce model folders the comparison reads
    try:
        from models.identity import model_name

        name = model_name(cfg.model)
        folder = output_dir() / str(name)
    except Exception:  # noqa: BLE001 - no Hydra context or no model: nothing to record
        return None
    status = failure_status(str(error), type(error).__name__, name, cfg.get("sample"), job_overrides())
    return write_failure(folder, status)


@contextmanager
def staged_folder(final: Path):
    """Yield a temporary sibling folder; on success it replaces ``final`` whole (old results are
    never mixed with new ones); on error it is deleted and ``final`` is left as it was."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-", dir=final.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.rename(final, old)
    os.rename(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def environment(device: str) -> dict:
    """Library versions and the device, for the results JSON."""
    import keras
    import tensorflow as tf

    try:
        from importlib.metadata import version

        tfkv = version("tf-keras-vis")
    except Exception:  # noqa: BLE001
        tfkv = "unknown"
    return {"tensorflow": tf.__version__, "keras": keras.__version__, "tf_keras_vis": tfkv, "device": device}
