"""``python main.py task=compare 'task.folders=[...]'``: compare earlier runs and sweeps (see :mod:`xai.compare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import to_absolute_path
from omegaconf import OmegaConf

from core.errors import ConfigError
from core.names import COMPARISON_DIR, COMPARISON_REPORT
from xai.compare import SweepHadFailures, compare_runs, has_failures
from xai.html import write_report_page

_UNSET = object()


def run(
    cfg: Any,
    folders: Any = _UNSET,
    out_dir: Any = _UNSET,
    expected_models: Any = _UNSET,
    expected_samples: Any = _UNSET,
) -> dict:
    """Compare the run or sweep folders ``folders`` and write ``<output dir>/comparison``.

    ``conf/task/compare.yaml`` is instantiated as a partial, so its keys arrive as keyword
    arguments; anything not passed is read from ``cfg.task``. ``out_dir`` overrides the output
    folder (default: the Hydra run's output dir + ``/comparison``); ``expected_models`` /
    ``expected_samples`` list what should be there (anything absent is reported as missing).
    Raises :class:`~xai.compare.SweepHadFailures` after writing everything when a job failed, is
    missing or left unreadable results (``main.py`` then exits non-zero).
    """

    def option(value: Any, key: str) -> Any:
        if value is _UNSET:
            value = OmegaConf.select(cfg, f"task.{key}", default=None) if cfg is not None else None
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        return value

    folders = option(folders, "folders")
    if isinstance(folders, (str, Path)):
        folders = [folders]
    folders = list(folders or [])
    if not folders:
        raise ConfigError(
            "task.folders: give the run or sweep folders to compare, e.g. "
            "'task.folders=[outputs/multirun/2024-01-01/12-00-00]'"
        )
    out_path = Path(_absolute(str(_output_folder(option(out_dir, "out_dir")))))
    expected_models = option(expected_models, "expected_models")
    expected_samples = option(expected_samples, "expected_samples")
    comparison = compare_runs(
        [Path(_absolute(str(f))) for f in folders],
        out_path,
        expected_models=[str(m) for m in expected_models] if expected_models else None,
        expected_samples=[str(m) for m in expected_samples] if expected_samples else None,
    )
    write_report_page("comparison", out_path, cfg)
    if has_failures(comparison):
        jobs = comparison["jobs"]
        raise SweepHadFailures(
            f"{len(jobs['failed'])} failed, {len(jobs['missing'])} missing and {len(jobs['unreadable'])} "
            f"unreadable job result(s); see {out_path / COMPARISON_REPORT}"
        )
    return comparison


def _output_folder(out_dir: Any) -> Any:
    """``out_dir`` if given, else ``<Hydra run output dir>/comparison``."""
    if out_dir:
        return out_dir
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir) / COMPARISON_DIR
    except ValueError as error:
        raise ConfigError("task.out_dir: not running under Hydra, so the output folder must be given") from error


def _absolute(path: str) -> str:
    """``path`` relative to Hydra's original working folder, or to the current folder outside Hydra."""
    try:
        return to_absolute_path(path)
    except ValueError:  # not under Hydra: relative to the current folder
        return str(Path(path).resolve())
