"""precursor-xai entry point: `python main.py [task=explain|train|compare] [model=...] [sample=...]`."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from geomag.errors import PrecursorError

    try:
        task = hydra.utils.instantiate(cfg.task)
        task(cfg)
    except PrecursorError as error:
        log.error("%s", error)
        from xai.runtime import record_failure

        record_failure(cfg, error)
        if not _in_multirun():
            sys.exit(2)
        raise


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


if __name__ == "__main__":
    main()
