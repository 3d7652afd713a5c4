"""Spectrograms handed over directly (image/array files, in-memory arrays, raw 1-second files) as a data source.

The notebook API (:func:`xai.explain`) explains such inputs without a metadata CSV. Each input
becomes a :class:`~geomag.dataset.SampleRecord` whose name is the file's stem (or ``sample_<i>``
for an array, or the key of a mapping), read like :class:`geomag.sources.CsvDataSource` reads its
rows: images and ``.npy`` arrays with the :class:`~geomag.images.ImageSpec` axes, raw files
(IAGA-2002, ImagCDF, BMKG, recognised by content) through the pre-processing pipeline at their
``event_time``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError, InputDataError
from geomag.dataset import SampleRecord
from geomag.images import IMAGE_SUFFIXES, ImageSpec, LoadedSpectrogram, load_spectrogram_image
from geomag.spectrogram import SpectrogramConfig

ARRAY_PREFIX = "<array>"


@dataclass
class _Item:
    """One input: a file path or an in-memory array, with optional event time and true classes."""

    name: str
    path: Path | None = None
    array: np.ndarray | None = None
    event_time: str | None = None
    magnitude_class: str | None = None  # the true classes, when known
    azimuth_class: str | None = None


def _item(name: str, value: Any) -> _Item:
    if isinstance(value, Mapping):
        known = {"path", "array", "event_time", "magnitude_class", "azimuth_class"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ConfigError(f"inputs[{name!r}]: unknown keys {unknown}; use {sorted(known)}")
        item = _item(name, value.get("array") if value.get("array") is not None else value.get("path"))
        item.event_time = None if value.get("event_time") is None else str(value["event_time"])
        item.magnitude_class = value.get("magnitude_class")
        item.azimuth_class = value.get("azimuth_class")
        return item
    if isinstance(value, np.ndarray):
        return _Item(name, array=value)
    if isinstance(value, (str, Path)):
        return _Item(name, path=Path(value).expanduser())
    raise ConfigError(f"inputs[{name!r}]: expected a file path, a numpy array or a mapping, got {type(value).__name__}")


def _items(inputs: Any) -> list[_Item]:
    """``inputs`` as items: one path or array, a sequence of them, or a mapping name -> path/array/dict."""
    if isinstance(inputs, (str, Path, np.ndarray)):
        inputs = [inputs]
    if isinstance(inputs, Mapping):
        items = [_item(str(name), value) for name, value in inputs.items()]
    elif isinstance(inputs, Sequence):
        items = []
        for i, value in enumerate(inputs):
            name = Path(value).stem if isinstance(value, (str, Path)) else f"sample_{i}"
            items.append(_item(name, value))
    else:
        raise ConfigError(f"inputs: expected paths, arrays or a mapping, got {type(inputs).__name__}")
    if not items:
        raise ConfigError("inputs: nothing to explain")
    names = [item.name for item in items]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"inputs: sample names repeat ({', '.join(repeated)}); pass a mapping name -> input")
    return items


class InputsSource:
    """A data source over inputs given directly (see the module doc); ``image``: the axes of image and
    array inputs (:class:`ImageSpec` or its keys), ``spectrogram``: the STFT and pre-processing of raw
    files (``conf/spectrogram`` keys)."""

    class_mappings = None

    def __init__(
        self,
        inputs: Any,
        image: ImageSpec | Mapping | None = None,
        spectrogram: SpectrogramConfig | Mapping | None = None,
    ) -> None:
        try:
            self.image_spec = image if isinstance(image, ImageSpec) else ImageSpec(**dict(image or {}))
        except TypeError as exc:  # an unknown key
            raise ConfigError(f"axes: {exc}") from None
        self.spectrogram = (
            spectrogram
            if isinstance(spectrogram, SpectrogramConfig)
            else SpectrogramConfig.from_config(spectrogram or {})
        )
        self.gaps = dict(self.spectrogram.extra.get("gaps") or {})
        self.detrend = str(self.spectrogram.extra.get("detrend", "linear"))
        self._items = {item.name: item for item in _items(inputs)}
        self._records = [
            SampleRecord(
                name=item.name,
                magnitude_class=item.magnitude_class,
                azimuth_class=item.azimuth_class,
                station="",
                date="",
                path=item.path
                if item.path is not None
                else Path(f"{ARRAY_PREFIX}{item.name}.npy"),  # reads as an array
                event_time=item.event_time,
            )
            for item in self._items.values()
        ]

    def records(self) -> list[SampleRecord]:
        return list(self._records)

    def load(self, record: SampleRecord) -> LoadedSpectrogram:
        """The input's spectrogram image and physical axes."""
        item = self._items[record.name]
        if item.array is not None:
            return self._load_array(item)
        suffix = record.path.suffix.lower()
        if suffix in IMAGE_SUFFIXES or suffix == ".npy":
            return load_spectrogram_image(record.path, self.image_spec, event_time=record.event_time)
        return self._load_raw(record)

    def _load_array(self, item: _Item) -> LoadedSpectrogram:
        """An in-memory grid image ``(rows, cols[, channels])``: uint8 scaled by 1/255, floats as given."""
        array = np.asarray(item.array)
        if array.ndim == 2 and self.image_spec.channels == 1:
            array = array[..., None]
        if array.ndim != 3 or array.shape[2] != self.image_spec.channels:
            raise InputDataError(
                item.name, f"array must be (rows, cols, {self.image_spec.channels}), got shape {array.shape}"
            )
        image = array.astype(np.float32) / np.float32(255.0) if array.dtype == np.uint8 else array.astype(np.float32)
        if not np.isfinite(image).all():
            raise InputDataError(item.name, "array contains NaN or infinite values")
        axes = self.image_spec.axes(image.shape[0], image.shape[1], event_time=item.event_time)
        return LoadedSpectrogram(image=np.ascontiguousarray(image), axes=axes)

    def _load_raw(self, record: SampleRecord) -> LoadedSpectrogram:
        from geomag.pipeline import load_raw_window

        if not record.event_time:
            raise InputDataError(
                record.path, "a raw data file needs its event time: pass {'path': ..., 'event_time': ...}"
            )
        return load_raw_window(record.path, record.event_time, self.spectrogram, self.gaps, self.detrend)

    def mask(self, record: SampleRecord) -> None:
        """Inputs given directly carry no ground-truth mask."""
        return None

    def describe(self) -> dict:
        return {"kind": type(self).__name__, "samples": [r.name for r in self._records]}
