"""precursor-xai entry point: `python main.py [task=explain|dataset|shortcut|train|compare] [model=...]`."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Run the configured task; a documented error becomes one `[ERROR]` line and exit status 2."""
    from core.errors import PrecursorError
    from core.quiet import start_tensorflow
    from models.device import allow_memory_growth_before_start

    allow_memory_growth_before_start()
    start_tensorflow(cfg.get("runtime", {}).get("tf_log_level"))

    multirun = _in_multirun()
    try:
        task = hydra.utils.instantiate(cfg.task)
        task(cfg)
    except PrecursorError as error:
        log.error("%s", error)
        _record(cfg, error)
        if not multirun:
            sys.exit(2)
        # in a sweep the job is recorded as failed and the sweep goes on; the comparison step
        # lists it and the process exits non-zero at the end (xai.callbacks)
    except Exception as error:
        if not multirun:
            raise
        log.exception("job failed: %s", error)
        _record(cfg, error)


def _record(cfg: DictConfig, error: BaseException) -> None:
    from xai.runtime import record_failure

    record_failure(cfg, error)


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


if __name__ == "__main__":
    main()
