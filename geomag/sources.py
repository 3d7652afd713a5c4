"""Data sources: where samples come from and how each becomes a spectrogram on physical axes.

``CsvDataSource`` reads the users' metadata CSV. Each row's ``path`` may be a spectrogram image
(PNG/JPG), an array (``.npy``) or a raw file (IAGA-2002, INTERMAGNET ImagCDF ``.cdf`` or BMKG
FRG-604RC, recognised by content; the row then needs an ``event_time`` column) that goes through the
pre-processing pipeline. ``DemoDataSource`` generates the synthetic demo data set once (cached by a
hash of its config) and then reads it through the same CSV code path. ``activity(record)`` gives a sample's
geomagnetic activity (:class:`geomag.activity.WindowActivity`: K index, Kp/Dst, or a proxy, and a flag).

Both are built by Hydra from ``conf/data/*.yaml`` with ``_convert_: all``, so their arguments arrive
as plain dicts and lists.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from core.errors import ConfigError, InputDataError
from geomag.activity import ActivityConfig, WindowActivity
from geomag.axes import SpectrogramAxes
from geomag.dataset import ClassMappings, SampleRecord, load_metadata, resolve_data_path
from geomag.images import IMAGE_SUFFIXES, ImageSpec, LoadedSpectrogram, load_spectrogram_image
from geomag.spectrogram import SpectrogramConfig

log = logging.getLogger(__name__)


class CsvDataSource:
    """Samples described by a metadata CSV (``magnitude_class, azimuth_class, station, date, path``).

    ``spectrogram`` holds the STFT settings and the pre-processing of raw files (its ``gaps`` and
    ``detrend`` keys, as in ``conf/spectrogram/default.yaml``); ``image`` the axes of image samples.
    """

    def __init__(
        self,
        metadata_csv: str | Path,
        root: str | Path | None = None,
        class_mappings: str | Path | None = None,
        image: Mapping | None = None,
        spectrogram: Mapping | SpectrogramConfig | None = None,
        axes_file: str | Path | None = None,
        allow_outside_root: bool = False,
    ) -> None:
        self.metadata_csv = Path(metadata_csv)
        if not self.metadata_csv.is_file():
            raise InputDataError(self.metadata_csv, "metadata CSV not found (data.metadata_csv)")
        self.root = Path(root) if root else self.metadata_csv.parent
        mappings_file = Path(class_mappings) if class_mappings else self.root / "class_mappings.json"
        self.class_mappings = ClassMappings.load(mappings_file) if mappings_file.is_file() else None
        if class_mappings and self.class_mappings is None:
            raise InputDataError(mappings_file, "class mappings file not found (data.class_mappings)")
        try:
            self.image_spec = ImageSpec(**image) if image else None
        except TypeError as exc:  # an unknown key under data.image
            raise ConfigError(f"data.image: {exc}") from None
        self.spectrogram = (
            spectrogram
            if isinstance(spectrogram, SpectrogramConfig)
            else SpectrogramConfig.from_config(spectrogram or {})
        )
        axes_path = Path(axes_file) if axes_file else None
        self.fixed_axes = None
        if axes_path is not None:
            if not axes_path.is_absolute():
                axes_path = self.root / axes_path
            try:
                self.fixed_axes = SpectrogramAxes.from_dict(json.loads(axes_path.read_text()))
            except (OSError, ValueError, KeyError) as exc:
                raise InputDataError(axes_path, f"cannot read spectrogram axes ({exc})") from None
        self.allow_outside_root = allow_outside_root
        self.gaps = dict(self.spectrogram.extra.get("gaps") or {})
        self.detrend = str(self.spectrogram.extra.get("detrend", "linear"))
        self._records: list[SampleRecord] | None = None
        self._proxy_levels: dict[str, object] | None = None

    def records(self) -> list[SampleRecord]:
        if self._records is None:
            self._records = load_metadata(
                self.metadata_csv, self.class_mappings, data_root=self.root, allow_outside_root=self.allow_outside_root
            )
        return self._records

    def load(self, record: SampleRecord) -> LoadedSpectrogram:
        """The sample's spectrogram image and physical axes."""
        suffix = record.path.suffix.lower()
        if suffix in IMAGE_SUFFIXES or suffix == ".npy":
            return self._load_image(record)
        return self._load_raw(record)

    def _load_image(self, record: SampleRecord) -> LoadedSpectrogram:
        if self.fixed_axes is not None:
            spec = ImageSpec(
                layout=self.fixed_axes.layout,
                components=self.fixed_axes.components,
                frequency_range_hz=self.fixed_axes.frequency_range_hz,
                frequency_scale=self.fixed_axes.frequency_scale,
                window_s=self.fixed_axes.window_s,
                expected_shape=self.fixed_axes.shape,
                channels=3 if self.fixed_axes.layout == "stacked" else len(self.fixed_axes.components),
            )
            loaded = load_spectrogram_image(record.path, spec, event_time=record.event_time)
            axes = SpectrogramAxes.from_dict({**self.fixed_axes.to_dict(), "event_time": record.event_time})
            loaded.axes = axes
            return loaded
        if self.image_spec is None:
            raise ConfigError(
                "data.image: the axes of image/array samples must be configured "
                "(layout, frequency_range_hz, frequency_scale, window_s)"
            )
        return load_spectrogram_image(record.path, self.image_spec, event_time=record.event_time)

    def _load_raw(self, record: SampleRecord) -> LoadedSpectrogram:
        from geomag.pipeline import load_raw_window

        if not record.event_time:
            raise InputDataError(self.metadata_csv, f"sample {record.name}: raw data file needs an 'event_time' column")
        return load_raw_window(record.path, record.event_time, self.spectrogram, self.gaps, self.detrend)

    def mask(self, record: SampleRecord) -> np.ndarray | None:
        """Ground-truth precursor mask on the grid, when the data set has one (``mask_path`` column)."""
        mask_path = record.extra.get("mask_path")
        if not mask_path:
            return None
        path = resolve_data_path(
            mask_path, self.root, self.metadata_csv, f"sample {record.name}: mask_path", self.allow_outside_root
        )
        try:
            mask = np.load(path, allow_pickle=False)
        except Exception as exc:  # np.load on untrusted bytes raises many types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputDataError(path, f"cannot read ground-truth mask ({first})") from None
        if not isinstance(mask, np.ndarray):
            mask.close()  # an .npz archive
            raise InputDataError(path, "ground-truth mask must be a single .npy array")
        if mask.dtype.kind not in "biuf":
            raise InputDataError(path, "ground-truth mask must be a numeric or boolean .npy array")
        return mask.astype(bool)

    def activity(self, record: SampleRecord, config: ActivityConfig | None = None) -> WindowActivity:
        """The geomagnetic activity of a sample's window (:class:`geomag.activity.WindowActivity`).

        Raw files: the local K index (read around the window) beside the user's ``kp``/``dst``/``index_csv``
        columns (:mod:`geomag.indices`); other samples: those columns, else the ``activity_flag``/``activity_k``
        columns the demo generator writes, else the grid proxy against this data set
        (:mod:`geomag.disturbance_proxy`); ``config``: ``conf/activity/default.yaml`` as an ``ActivityConfig``.
        """
        from geomag.activity import column_activity, file_activity, window_of
        from geomag.disturbance_proxy import DisturbanceProxy
        from geomag.indices import IndexRequest, record_indices

        config = config or ActivityConfig()
        raw = record.path.suffix.lower() not in (*IMAGE_SUFFIXES, ".npy")
        window_s = self.spectrogram.window_s if raw else self._image_window_s()
        window = window_of(record.event_time, window_s) if record.event_time else None
        row = self.records().index(record) + 2
        request = IndexRequest(self.metadata_csv, row, self.root, window, self.allow_outside_root)
        indices = record_indices(record.extra, request)
        if raw:
            if window is None:
                raise InputDataError(self.metadata_csv, f"sample {record.name}: raw file needs an 'event_time' column")
            return file_activity(record.path, window, config, indices)
        activity = column_activity(record.extra, window, config, indices, f"{self.metadata_csv} row {row}")
        if activity is None:
            levels = self._grid_levels()
            proxy = DisturbanceProxy.fit([level.level for level in levels.values()])
            activity = proxy.activity(levels[record.name], config.thresholds)
            if window is not None:
                activity.window_start, activity.window_end = (str(t) for t in window)
        activity.station = record.station
        return activity

    def _image_window_s(self) -> float:
        if self.fixed_axes is not None:
            return float(self.fixed_axes.window_s)
        return float(self.image_spec.window_s) if self.image_spec is not None else self.spectrogram.window_s

    def _grid_levels(self) -> dict:
        """Proxy levels of every image/array sample of the data set (computed once)."""
        from geomag.disturbance_proxy import grid_level

        if self._proxy_levels is None:
            levels = {}
            for record in self.records():
                if record.path.suffix.lower() in (*IMAGE_SUFFIXES, ".npy"):
                    loaded = self.load(record)
                    levels[record.name] = grid_level(loaded.image, loaded.axes, loaded.scalar)
            self._proxy_levels = levels
        return self._proxy_levels

    def describe(self) -> dict:
        return {"kind": type(self).__name__, "metadata_csv": str(self.metadata_csv), "root": str(self.root)}


class DemoDataSource(CsvDataSource):
    """The synthetic demo data set, generated on first use under ``<cache_dir>/demo/<config hash>``."""

    def __init__(
        self,
        cache_dir: str | Path,
        generator: Mapping | None = None,
        spectrogram: Mapping | SpectrogramConfig | None = None,
    ) -> None:
        from geomag.synthetic import TUPLE_SETTINGS, GeneratorConfig, generate_dataset

        generator = dict(generator or {})
        for key in TUPLE_SETTINGS:
            if key in generator:
                generator[key] = tuple(generator[key])
        try:
            self.generator = GeneratorConfig(**generator)
        except TypeError as exc:
            raise ConfigError(f"data.generator: {exc}") from None
        spec_cfg = (
            spectrogram
            if isinstance(spectrogram, SpectrogramConfig)
            else SpectrogramConfig.from_config(spectrogram or {})
        )
        self.hash = self.generator.hash(spec_cfg)
        root = Path(cache_dir) / "demo" / self.hash
        if not (root / "metadata.csv").exists():
            log.info("generating the demo data set (%d samples) in %s", self.generator.n_samples, root)
            generate_dataset(root, self.generator, spec_cfg)
        super().__init__(root / "metadata.csv", root=root, spectrogram=spec_cfg, axes_file="axes.json")

    def describe(self) -> dict:
        return {**super().describe(), "generator": self.generator.as_dict(), "hash": self.hash}
