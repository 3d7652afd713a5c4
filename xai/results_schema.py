"""The schema of ``visualization_results.json``: typed builders for its writer and the check its readers apply."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from os import PathLike
from typing import Any

from core.errors import InputDataError

__all__ = [
    "HeadResult",
    "SampleFiles",
    "SampleResult",
    "VisualizationResults",
    "check_results",
]


@dataclass(frozen=True)
class SampleFiles:
    """The per-sample output files, relative to the model folder."""

    figure: str
    heatmaps: str

    @classmethod
    def for_sample(cls, sample: str) -> SampleFiles:
        """The standard names ``<sample>_visualization.png`` and ``<sample>_heatmaps.npz``."""
        return cls(figure=f"{sample}_visualization.png", heatmaps=f"{sample}_heatmaps.npz")


@dataclass(frozen=True, kw_only=True)
class HeadResult:
    """One head's prediction and explanation facts for one sample (``samples[i].heads[<head>]``).

    ``attention`` maps a method name to its :func:`xai.attention.attention_summary`;
    ``method_scores`` maps a method name to the score it explained (``"logit"`` or ``"probability"``);
    ``target`` the explained score (``kind`` class or contrast, ``contrast_class``); ``components`` per method the
    H/D/Z shares (or why a method has none). With occlusion among the methods a ``reliance`` entry follows ``files``.
    """

    prediction: str
    confidence: float
    probabilities: dict[str, float]
    explained_class: str
    target: dict[str, Any] | None = None
    true: str | None
    correct: bool | None
    score: str
    method_scores: dict[str, str]
    attention: dict[str, dict]
    components: dict[str, dict] | None = None
    files: SampleFiles


@dataclass(frozen=True, kw_only=True)
class SampleResult:
    """One explained sample (``samples[i]``); ``true`` holds the true class name per head; ``activity`` the
    window's geomagnetic activity (:func:`geomag.activity_summary.activity_summary`: flag, K / Kp / Dst /
    grid proxy and their ``source``), None when the data source has none."""

    sample: str
    source: str
    split: str | None
    event_time: str | None
    true: dict[str, str | None]
    heads: dict[str, HeadResult]
    indicators: dict[str, Any] | None = None
    files: SampleFiles
    activity: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class VisualizationResults:
    """The whole ``<run dir>/<model>/visualization_results.json`` document, in its key order.

    ``native_resolution`` maps a method name to its native map shape ``[h, w]`` (the heatmap NPZ
    also holds the native maps themselves, ``<method>__<head>__native``).
    """

    model: str
    model_file: str | None
    target_layer: str | None
    input_shape: list[int]
    class_mappings: dict[str, Any]
    methods: list[str]
    heads: list[str]
    score: dict[str, str]
    target: dict[str, Any] | None = None
    native_resolution: dict[str, list[int]]
    preprocessing: str | None
    data: dict[str, Any]
    environment: dict[str, Any]
    axes: dict[str, Any] | None
    samples: list[SampleResult]
    status: str = "ok"

    def to_json(self) -> dict[str, Any]:
        """The document as plain dicts and lists (the key order of the file)."""
        return dataclasses.asdict(self)


def check_results(data: Any, path: str | PathLike) -> dict:
    """Return ``data`` if it has the structure the readers rely on, else raise one-line ``InputDataError``.

    Required: a JSON object with a ``samples`` list whose entries are objects with a ``sample``
    name and a ``heads`` object.
    """
    if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
        raise InputDataError(path, "has no 'samples' list")
    for i, entry in enumerate(data["samples"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("sample"), str):
            raise InputDataError(path, f"samples[{i}] has no 'sample' name")
        if not isinstance(entry.get("heads"), dict):
            raise InputDataError(path, f"samples[{i}] ({entry['sample']}) has no 'heads' object")
    return data
