"""Reading the comparison's inputs: JSON and Hydra YAML files, and each sample's heatmap NPZ."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import InputDataError, PrecursorError
from core.names import HEADS
from geomag.axes import SpectrogramAxes

if TYPE_CHECKING:
    from xai.compare.discover import SampleRecord

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    """One sample's heatmap arrays and spectrogram axes; ``problem`` says why something is missing."""

    axes: SpectrogramAxes | None
    arrays: dict[str, np.ndarray]
    problem: str | None = None


def read_json(path: Path) -> Any:
    """The parsed JSON of ``path``; an unreadable file raises one-line ``InputDataError``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputDataError(path, f"cannot read JSON: {error}") from error


def load_yaml(path: Path) -> Any:
    """The content of a Hydra YAML file (interpolations unresolved), or None if absent or broken."""
    if not path.is_file():
        return None
    try:
        from omegaconf import OmegaConf

        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as error:  # noqa: BLE001 - a broken Hydra file only loses a detail
        log.warning("%s: cannot read: %s", path, error)
        return None


def heatmap_file(record: SampleRecord) -> Path:
    """The sample's heatmap NPZ: named in the results entry, else ``<sample>_heatmaps.npz``."""
    files = record.entry.get("files") or {}
    name = files.get("heatmaps") if isinstance(files, dict) else None
    if not name:
        for head_info in record.entry["heads"].values():
            head_files = head_info.get("files") if isinstance(head_info, dict) else None
            if isinstance(head_files, dict) and head_files.get("heatmaps"):
                name = head_files["heatmaps"]
                break
    path = Path(name) if name else Path(f"{record.sample}_heatmaps.npz")
    return path if path.is_absolute() else record.folder / path


def load_heatmaps(record: SampleRecord) -> Loaded:
    """The sample's NPZ arrays and axes (from the NPZ, else from the results JSON), never raising."""
    path = heatmap_file(record)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in npz.files}
    except (OSError, ValueError) as error:
        return Loaded(None, {}, f"{path.name}: cannot read heatmaps ({error})")
    axes = None
    try:
        if "axes_json" in arrays:
            axes = SpectrogramAxes.from_dict(json.loads(str(arrays["axes_json"])))
        elif isinstance(record.meta.get("axes"), dict):
            axes = SpectrogramAxes.from_dict(record.meta["axes"])
    except (KeyError, TypeError, ValueError, PrecursorError) as error:
        return Loaded(None, arrays, f"{path.name}: cannot read the spectrogram axes ({error})")
    if axes is None:
        return Loaded(None, arrays, f"{path.name}: no spectrogram axes in the NPZ or the results JSON")
    return Loaded(axes, arrays)


def load_sample(
    records: Mapping[str, Mapping[str, SampleRecord]], models: Sequence[str], sample: str, problems: list
) -> dict[str, tuple[SampleRecord, Loaded]]:
    """Every model's record and heatmaps of ``sample`` (models without it are left out).

    A heatmap file that cannot be used is appended to ``problems`` (``{"model", "sample", "problem"}``).
    """
    loaded = {}
    for model in models:
        record = records[model].get(sample)
        if record is None:
            continue
        item = load_heatmaps(record)
        if item.problem:
            problems.append({"model": model, "sample": sample, "problem": item.problem})
        loaded[model] = (record, item)
    return loaded


def display_map(arrays: Mapping[str, np.ndarray], method: str, head: str) -> np.ndarray | None:
    """The [0, 1] display map, or the raw map min-max normalised when no display copy is stored."""
    display = arrays.get(f"{method}__{head}__display")
    if display is not None:
        return np.clip(np.asarray(display, dtype=np.float64), 0.0, 1.0)
    raw = arrays.get(f"{method}__{head}")
    if raw is None:
        return None
    raw = np.clip(np.asarray(raw, dtype=np.float64), 0.0, None)
    top = float(raw.max()) if raw.size else 0.0
    return raw / top if top > 0 else np.zeros_like(raw)


def native_shape(record: SampleRecord, arrays: Mapping[str, np.ndarray], method: str) -> list[int] | None:
    """The method's native map shape: from the NPZ's ``<method>__<head>__native`` array, else from the
    results JSON's ``native_resolution`` object."""
    for head in HEADS:
        key = f"{method}__{head}__native"
        if key in arrays and np.asarray(arrays[key]).ndim >= 2:
            return [int(v) for v in np.asarray(arrays[key]).shape[:2]]
    value = (record.meta.get("native_resolution") or {}).get(method)
    if isinstance(value, (list, tuple)) and len(value) >= 2:
        return [int(value[0]), int(value[1])]
    return None
