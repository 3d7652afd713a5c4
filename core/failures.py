"""One failure record (`status.json`) for a job that could not finish, shared by main.py and the sweep callback."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.io import atomic_write_json
from core.names import RESULT_FILES, STATUS_FILE

log = logging.getLogger(__name__)


def failure_status(error: str, error_type: str, model: Any, sample: Any, overrides: Sequence[str] = ()) -> dict:
    """The `status.json` document of a failed job (one schema for every writer)."""
    return {
        "status": "failed",
        "error": error,
        "error_type": error_type,
        "model": None if model is None else str(model),
        "sample": sample if isinstance(sample, (str, int, float, type(None))) else str(sample),
        "overrides": list(overrides),
    }


def write_failure(folder: Path, status: dict) -> Path | None:
    """Write ``folder/status.json`` unless the folder already holds a finished run's results.

    A failed re-run into the folder of a successful run keeps those results whole (no mix of old
    results and a new failure record); the failure is then only in the log and the exit status.
    """
    folder = Path(folder)
    kept = [name for name in RESULT_FILES if (folder / name).is_file()]
    if kept:
        log.warning("%s keeps the earlier run's %s; this run's failure is not recorded there", folder, kept[0])
        return None
    try:
        return atomic_write_json(folder / STATUS_FILE, status)
    except Exception as error:  # noqa: BLE001 - the failure is still logged and counted
        log.error("could not write %s: %s", folder / STATUS_FILE, error)
        return None
