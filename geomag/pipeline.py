"""Raw 1-second data -> pre-event window -> quality facts -> spectrogram with physical axes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from os import PathLike

import numpy as np

from core.errors import InputDataError
from geomag.preprocess import PreEventWindow, as_datetime64, cut_window, detrend, fill_gaps, quality_report
from geomag.readers import read_timeseries
from geomag.spectrogram import Spectrogram, SpectrogramConfig, compute_spectrogram
from geomag.timeseries import GeomagSeries

log = logging.getLogger(__name__)


@dataclass
class WindowSpectrogram:
    """A spectrogram together with the window it came from and its data-quality report."""

    spectrogram: Spectrogram
    window: PreEventWindow
    quality: dict


def spectrogram_from_series(
    series: GeomagSeries,
    event_time: object,
    config: SpectrogramConfig,
    *,
    max_interpolate_s: float = 60.0,
    max_missing_fraction: float = 0.2,
    detrend_kind: str = "linear",
) -> WindowSpectrogram:
    """Cut the window ending at ``event_time``, fill short gaps, detrend, and compute the spectrogram."""
    window = cut_window(series, event_time, window_hours=config.window_hours)
    filled, _long_gaps = fill_gaps(window.series, max_interpolate_s)
    quality = quality_report(PreEventWindow(filled, window.event_time, window.start_time, window.window_s))
    source = series.source
    for name in config.components:
        if name not in filled.components:
            raise InputDataError(
                source, f"component {name} not in the file (has {list(filled.components)}); set spectrogram.components"
            )
        fraction = filled.missing_fraction(name)
        if fraction > max_missing_fraction:
            raise InputDataError(
                source,
                f"component {name} misses {fraction:.0%} of the window before "
                f"{event_time} (limit spectrogram.gaps.max_missing_fraction="
                f"{max_missing_fraction})",
            )
    for warning in quality.get("warnings", []):
        log.warning("%s: data quality: %s", source, warning)
    detrended = detrend(filled, detrend_kind)
    spec = compute_spectrogram(
        {name: detrended[name] for name in config.components},
        config,
        event_time=str(window.event_time),
        source=source,
    )
    spec.axes.extra["quality"] = quality
    return WindowSpectrogram(spec, window, quality)


def needed_time_range(event_time: object, config: SpectrogramConfig) -> tuple[np.datetime64, np.datetime64] | None:
    """``(start, end)`` covering every sample of the window before ``event_time`` (one interval of margin).

    None when ``config.window_hours`` is unusable (:func:`~geomag.preprocess.cut_window` then reports it).
    """
    try:
        span_ms = int(round((float(config.window_hours) * 3600.0 + float(config.sampling_interval_s)) * 1000))
    except (TypeError, ValueError, OverflowError):
        return None
    if span_ms <= 0:
        return None
    event = as_datetime64(event_time)
    return event - np.timedelta64(span_ms, "ms"), event


def spectrogram_from_file(
    path: str | PathLike, event_time: object, config: SpectrogramConfig, **options
) -> WindowSpectrogram:
    """Read a raw file (IAGA-2002, ImagCDF or BMKG FRG-604RC) and compute the pre-event spectrogram.

    Only the window before the event is needed: multi-day files (ImagCDF) are read for that window only.
    """
    series = read_timeseries(
        path, expected_interval_s=config.sampling_interval_s, time_range=needed_time_range(event_time, config)
    )
    return spectrogram_from_series(series, event_time, config, **options)


def load_raw_window(path: str | PathLike, event_time: object, config: SpectrogramConfig, gaps: dict, detrend_kind: str):
    """A raw 1-s file's pre-event window as a :class:`geomag.images.LoadedSpectrogram` (the data sources' raw path).

    ``gaps``: ``max_interpolate_s`` (default 60) and ``max_missing_fraction`` (default 0.2).
    """
    from geomag.images import LoadedSpectrogram

    result = spectrogram_from_file(
        path,
        event_time,
        config,
        max_interpolate_s=float(gaps.get("max_interpolate_s", 60)),
        max_missing_fraction=float(gaps.get("max_missing_fraction", 0.2)),
        detrend_kind=detrend_kind,
    )
    spec = result.spectrogram
    return LoadedSpectrogram(image=spec.image, axes=spec.axes, scalar=None, source=path)
