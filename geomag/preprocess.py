"""Pre-processing of raw geomagnetic series: gap filling, detrending, pre-event windows, quality.

All functions are pure: they take a :class:`GeomagSeries` (or a :class:`PreEventWindow`) and
configuration values as arguments and return new objects.

Quality plausibility thresholds (:class:`QualityThresholds`) come from the facts in
``../shared/README.md`` (measured on the LUT days and from the literature):

* quiet-day diurnal range is 35-60 nT in H and Z, so the standard deviation within one hour is
  a few nT; an hourly std of **> 100 nT** is either a wrong byte layout (the README warns that
  "hundreds of nT" means the reader has the layout wrong) or a severe storm. The two differ in
  smoothness: a wrong layout scrambles the samples (the lag-1 autocorrelation of the worst hour is
  near 0), a storm is a smooth, red variation (about 0.9999 at 1 s, e.g. the 10-11 May 2024 storm
  at WIC). So a large but smooth hour is reported as an **activity note** (``activity_notes``:
  physically plausible, see :mod:`geomag.activity`); a large and rough one (lag-1 autocorrelation
  **< 0.5**), one **> 2,000 nT** (beyond the largest storm-time variation within an hour, which
  reaches a few thousand nT peak to peak only in the auroral zone in the greatest storms), or one
  in a component with a format signature below, is a format warning;
* band RMS at LUT is 0.03-0.42 nT in Pc3/Pc4/Pc5/1-10 mHz; **> 50 nT** in any band is beyond
  even strong-storm pulsations at low latitude;
* the quiet-day ULF power spectrum falls as f^-2 to f^-3 between 2 and 100 mHz: a log-log slope
  **> -1** (white, e.g. random bytes) or **< -5** (over-smoothed, wrong units) is implausible;
* more than **20 %** missing samples makes band statistics unreliable;
* the Earth's main field is below ~67,000 nT, so a mean magnitude **> 70,000 nT** is wrong, and a
  field value beyond **+-80,000 nT** is impossible (the FRG-604RC invalid-data level);
* a first difference of a multiple of 2^16 x 0.01 nT = 655.36 nT (2^24 x 0.01 nT is 256 of them),
  give or take the field's own change between two samples (< 1 nT at 1 s, even in the May 2024
  storm), is the signature of a wrong byte order or sign extension of 0.01-nT integer counts, never
  of the field; two or more such steps are reported.

Warnings say the data are impossible for the format; activity notes say they are disturbed.

Band limits follow the IAGA pulsation classes (Jacobs et al., 1964): Pc3 22-100 mHz,
Pc4 6.7-22 mHz, Pc5 1.7-6.7 mHz; the "ULF precursor band" of this field is 1-10 mHz.
Power spectra use Welch's method (Welch, 1967) on the gap-filled, segment-detrended data.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from scipy import signal

from core.errors import ConfigError, InputDataError
from geomag.timeseries import GeomagSeries

logger = logging.getLogger(__name__)

#: Bands (Hz) the quality report integrates the PSD over.
DEFAULT_BANDS: dict[str, tuple[float, float]] = {
    "Pc5": (1.7e-3, 6.7e-3),
    "Pc4": (6.7e-3, 22e-3),
    "Pc3": (22e-3, 100e-3),
    "ULF_1_10mHz": (1e-3, 10e-3),
}
#: Frequency range (Hz) of the log-log spectral-slope fit.
SLOPE_RANGE_HZ = (2e-3, 100e-3)
#: Welch segment length bounds (samples); >= 2048 so that 1-10 mHz is resolved at 1 Hz.
MIN_NPERSEG = 2048
MAX_NPERSEG = 8192
DETREND_KINDS = ("linear", "constant", "none")
#: 2^16 counts of 0.01 nT: steps of a multiple of this are byte-order / sign-extension signatures.
BYTE_STEP_NT = 2**16 * 0.01
#: The field's own change between neighbouring samples that such a step carries (< 1 nT at 1 s, even in storms).
BYTE_STEP_TOLERANCE_NT = 1.0
MIN_BYTE_STEPS = 2


@dataclass(frozen=True)
class QualityThresholds:
    """Plausibility limits of :func:`quality_report` (see the module docstring for sources)."""

    max_missing_fraction: float = 0.2
    max_hourly_std_nt: float = 100.0
    max_band_rms_nt: float = 50.0
    slope_min: float = -5.0
    slope_max: float = -1.0
    max_abs_mean_nt: float = 70_000.0
    max_abs_value_nt: float = 80_000.0
    min_lag1_autocorrelation: float = 0.5
    max_plausible_hourly_std_nt: float = 2_000.0


@dataclass
class PreEventWindow:
    """A fixed-length window of data ending at an event.

    ``series`` holds exactly ``window_s / sampling_interval_s`` samples at
    ``start_time + k * interval``; the last sample is the last one strictly before the event
    (on the file's sample grid); samples the file does not cover are NaN.
    """

    series: GeomagSeries
    event_time: np.datetime64
    start_time: np.datetime64
    window_s: float

    @property
    def n_samples(self) -> int:
        return len(self.series)

    @property
    def seconds_before_event(self) -> np.ndarray:
        """Seconds from each sample to the event (positive, decreasing)."""
        return (self.event_time - self.series.times).astype("timedelta64[ms]").astype(np.float64) / 1000.0


# --------------------------------------------------------------------------- helpers
def _with_components(series: GeomagSeries, components: dict[str, np.ndarray], **metadata) -> GeomagSeries:
    meta = dict(series.metadata)
    meta.update(metadata)
    return dataclasses.replace(series, components=components, metadata=meta)


def _nan_runs(missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the runs of True in a boolean array."""
    padded = np.concatenate(([False], missing, [False])).astype(np.int8)
    edges = np.diff(padded)
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def as_datetime64(value: object, what: str = "event time") -> np.datetime64:
    """A UTC ``datetime64[ms]`` from a string (ISO 8601, ``Z``/offsets allowed), datetime or datetime64."""
    try:
        if isinstance(value, np.datetime64):
            result = value.astype("datetime64[ms]")
        elif isinstance(value, datetime):
            if value.tzinfo is not None:
                value = value.astimezone(timezone.utc).replace(tzinfo=None)
            result = np.datetime64(value, "ms")
        elif isinstance(value, str):
            text = value.strip()
            text = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
            result = np.datetime64(parsed, "ms")
        else:
            raise TypeError(type(value).__name__)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"invalid {what} {value!r} ({exc})") from None
    if np.isnat(result):
        raise ConfigError(f"invalid {what} {value!r} (NaT)")
    return result


# --------------------------------------------------------------------------- gap filling
def fill_gaps(series: GeomagSeries, max_interpolate_s: float) -> tuple[GeomagSeries, dict[str, np.ndarray]]:
    """Linearly interpolate NaN runs no longer than ``max_interpolate_s`` seconds.

    A run of ``n`` missing samples is ``n * sampling_interval_s`` seconds long. Longer runs,
    and runs touching either end of the series (nothing to interpolate from), stay NaN.

    Returns:
        ``(filled_series, unfilled)`` where ``unfilled[name]`` is a boolean array, True where
        the sample is still missing. ``metadata["gap_fill"]`` counts interpolated/unfilled
        samples per component.
    """
    try:
        limit_s = float(max_interpolate_s)
    except (TypeError, ValueError):
        limit_s = float("nan")
    if not math.isfinite(limit_s) or limit_s < 0:
        raise ConfigError(f"gaps.max_interpolate_s must be a number >= 0, got {max_interpolate_s!r}")
    max_run = int(math.floor(limit_s / series.sampling_interval_s + 1e-9))
    n = len(series)
    positions = np.arange(n, dtype=np.float64)
    components, masks, counts = {}, {}, {}
    for name, values in series.components.items():
        missing = ~np.isfinite(values)
        out = np.where(missing, np.nan, values)
        fillable = np.zeros(n, dtype=bool)
        if missing.any() and not missing.all():
            starts, ends = _nan_runs(missing)
            ok = (ends - starts <= max_run) & (starts > 0) & (ends < n)
            for s, e in zip(starts[ok], ends[ok]):
                fillable[s:e] = True
            if fillable.any():
                good = ~missing
                out[fillable] = np.interp(positions[fillable], positions[good], values[good])
        components[name] = out
        masks[name] = missing & ~fillable
        counts[name] = {"interpolated": int(fillable.sum()), "unfilled": int(masks[name].sum())}
    return _with_components(series, components, gap_fill={"max_interpolate_s": limit_s, "counts": counts}), masks


# --------------------------------------------------------------------------- detrending
def detrend(series: GeomagSeries, kind: str = "linear") -> GeomagSeries:
    """Remove a constant or linear trend from every component (``kind="none"``: copy).

    Uses :func:`scipy.signal.detrend` when a component has no NaN; otherwise the same
    least-squares trend is fitted to the finite samples at their true positions and subtracted,
    so gaps neither bias the trend nor are filled (NaN stay NaN).
    """
    if kind not in DETREND_KINDS:
        raise ConfigError(f"detrend must be one of {DETREND_KINDS}, got {kind!r}")
    components = {}
    for name, values in series.components.items():
        values = np.array(values, dtype=np.float64)
        if kind == "none":
            components[name] = values
            continue
        finite = np.isfinite(values)
        if finite.all() and values.size:
            components[name] = signal.detrend(values, type=kind)
        elif finite.sum() >= (2 if kind == "linear" else 1):
            x = np.flatnonzero(finite).astype(np.float64)
            y = values[finite]
            if kind == "constant":
                trend = np.full(values.size, y.mean())
            else:
                x0 = x.mean()
                slope, intercept = np.polyfit(x - x0, y, 1)
                trend = intercept + slope * (np.arange(values.size) - x0)
            out = values - trend
            out[~finite] = np.nan
            components[name] = out
        else:
            components[name] = np.full(values.size, np.nan)
    return _with_components(series, components, detrend=kind)


# --------------------------------------------------------------------------- windows
def cut_window(series: GeomagSeries, event_time: object, window_hours: float = 6.0) -> PreEventWindow:
    """The ``window_hours`` of data before ``event_time`` as a :class:`PreEventWindow`.

    The window has exactly ``window_hours * 3600 / sampling_interval_s`` samples on the file's
    sample grid; its last sample is the last grid point strictly before the event. Samples
    the file does not cover are NaN. Raises :class:`InputDataError` when the data do not
    overlap the window or hold no valid sample inside it.
    """
    event = as_datetime64(event_time)
    try:
        window_hours = float(window_hours)
    except (TypeError, ValueError):
        raise ConfigError(f"window_hours must be a positive number, got {window_hours!r}") from None
    if not (math.isfinite(window_hours) and window_hours > 0):
        raise ConfigError(f"window_hours must be a positive number, got {window_hours!r}")
    interval = float(series.sampling_interval_s)
    dt_ms = int(round(interval * 1000))
    n_exact = window_hours * 3600.0 / interval
    n = int(round(n_exact))
    if dt_ms <= 0 or n < 1 or abs(n - n_exact) > 1e-6:
        raise ConfigError(f"window_hours={window_hours} is not a whole number of {interval:g}-s samples")
    if len(series) == 0:
        raise InputDataError(series.source, "time series is empty; nothing to cut")
    stamps = series.times.astype(np.int64)
    t0 = int(stamps[0])
    rel = stamps - t0
    if np.any(rel % dt_ms):
        raise InputDataError(series.source, f"time stamps are not on a regular {interval:g}-s grid")
    k_end = -((t0 - int(event.astype(np.int64))) // dt_ms)  # ceil((event - t0) / dt)
    k_start = k_end - n
    index = rel // dt_ms - k_start
    inside = (index >= 0) & (index < n)
    start_time = np.datetime64(t0 + k_start * dt_ms, "ms")
    end_time = np.datetime64(t0 + k_end * dt_ms, "ms")
    if not inside.any():
        raise InputDataError(
            series.source,
            f"data ({series.times[0]} to {series.times[-1]}) do not overlap the "
            f"{window_hours:g} h window {start_time} to {end_time} before the event {event}",
        )
    components = {}
    for name, values in series.components.items():
        out = np.full(n, np.nan)
        out[index[inside]] = values[inside]
        components[name] = out
    if not any(np.isfinite(v).any() for v in components.values()):
        raise InputDataError(
            series.source, f"no valid sample in the {window_hours:g} h window before the event {event}"
        )
    times = start_time + (np.arange(n, dtype=np.int64) * dt_ms).astype("timedelta64[ms]")
    coverage = float(inside.sum()) / n
    if coverage < 1.0:
        logger.info("%s: data cover %.1f %% of the window before %s", series.source, 100 * coverage, event)
    window_series = dataclasses.replace(
        series,
        times=times,
        components=components,
        metadata={
            **series.metadata,
            "window": {
                "event_time": str(event),
                "start_time": str(start_time),
                "window_hours": float(window_hours),
                "file_coverage": coverage,
            },
        },
    )
    return PreEventWindow(
        series=window_series, event_time=event, start_time=start_time, window_s=float(window_hours) * 3600.0
    )


# --------------------------------------------------------------------------- quality
def _checked_bands(bands: Mapping[str, Sequence[float]] | None) -> dict[str, tuple[float, float]]:
    if bands is None:
        return dict(DEFAULT_BANDS)
    out = {}
    for name, limits in bands.items():
        try:
            fmin, fmax = (float(v) for v in limits)
        except (TypeError, ValueError):
            raise ConfigError(f"band {name!r} must be [fmin_hz, fmax_hz], got {limits!r}") from None
        if not 0 <= fmin < fmax:
            raise ConfigError(f"band {name!r} must satisfy 0 <= fmin < fmax, got {limits!r}")
        out[str(name)] = (fmin, fmax)
    return out


def _hourly_std(values: np.ndarray, interval_s: float) -> tuple[float | None, float | None]:
    """Largest standard deviation of the hours of ``values`` and the lag-1 autocorrelation of that hour."""
    chunk = max(1, int(round(3600.0 / interval_s)))
    worst: tuple[float, np.ndarray] | None = None
    for start in range(0, values.size, chunk):
        piece = values[start : start + chunk]
        good = piece[np.isfinite(piece)]
        if good.size >= max(2, min(chunk, values.size) // 2) and (worst is None or good.std() > worst[0]):
            worst = (float(good.std()), piece)
    if worst is None:
        return None, None
    piece = worst[1]
    steps = np.diff(piece)
    steps = steps[np.isfinite(steps)]
    variance = float(np.nanvar(piece))
    if not steps.size or variance == 0.0:
        return worst[0], None
    return worst[0], float(1.0 - np.mean(steps**2) / (2.0 * variance))


def _format_signatures(name: str, values: np.ndarray, limits: QualityThresholds) -> list[str]:
    """Warnings for values impossible in any field record: beyond +-80,000 nT, or byte-sized steps."""
    found = []
    beyond = int(np.sum(np.abs(values[np.isfinite(values)]) > limits.max_abs_value_nt))
    if beyond:
        found.append(
            f"{name}: {beyond} samples beyond +-{limits.max_abs_value_nt:,.0f} nT "
            "(impossible for a field value: invalid-data marker or wrong byte layout)"
        )
    steps = np.abs(np.diff(values))
    steps = steps[np.isfinite(steps) & (steps >= BYTE_STEP_NT - BYTE_STEP_TOLERANCE_NT)]
    near = int(np.sum(np.abs(steps - np.round(steps / BYTE_STEP_NT) * BYTE_STEP_NT) < BYTE_STEP_TOLERANCE_NT))
    if near >= MIN_BYTE_STEPS:
        found.append(
            f"{name}: {near} steps of a multiple of {BYTE_STEP_NT:g} nT (2^16 x 0.01 nT, within "
            f"{BYTE_STEP_TOLERANCE_NT:g} nT): wrong byte order or sign extension"
        )
    return found


def _spectral_quality(
    name: str,
    values: np.ndarray,
    entry: dict,
    report: dict,
    bands: Mapping[str, tuple[float, float]],
    limits: QualityThresholds,
) -> list[str]:
    """Welch band RMS and 2-100 mHz slope of one component into ``entry``; returns its warnings."""
    comp_warnings: list[str] = []
    n, nperseg = values.size, report["nperseg"]
    fs = 1.0 / report["sampling_interval_s"]
    finite = np.isfinite(values)
    positions = np.arange(n, dtype=np.float64)
    filled = values if finite.all() else np.interp(positions, positions[finite], values[finite])
    freqs, psd = signal.welch(filled, fs=fs, window="hann", nperseg=nperseg, detrend="linear")
    df = freqs[1] - freqs[0]
    for band, (fmin, fmax) in bands.items():
        sel = (freqs >= fmin) & (freqs < fmax)
        if fmax > fs / 2 + 1e-12 or not sel.any():
            _note(report, f"{name}: band {band} ({fmin:g}-{fmax:g} Hz) not resolved at fs={fs:g} Hz, nperseg={nperseg}")
            continue
        rms = float(np.sqrt(np.sum(psd[sel]) * df))
        entry["band_rms_nT"][band] = rms
        if rms > limits.max_band_rms_nt:
            comp_warnings.append(f"{name}: {band} RMS {rms:.1f} nT > {limits.max_band_rms_nt:g} nT")
    sel = (freqs >= SLOPE_RANGE_HZ[0]) & (freqs <= min(SLOPE_RANGE_HZ[1], fs / 2)) & (psd > 0)
    if sel.sum() >= 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", np.exceptions.RankWarning)
            slope = float(np.polyfit(np.log10(freqs[sel]), np.log10(psd[sel]), 1)[0])
        entry["spectral_slope"] = slope
        if not limits.slope_min <= slope <= limits.slope_max:
            comp_warnings.append(
                f"{name}: spectral slope {slope:.2f} outside "
                f"[{limits.slope_min:g}, {limits.slope_max:g}] over 2-100 mHz"
            )
    else:
        _note(report, f"{name}: too few PSD bins for the 2-100 mHz slope")
    return comp_warnings


def _component_quality(
    name: str,
    values: np.ndarray,
    report: dict,
    bands: Mapping[str, tuple[float, float]],
    limits: QualityThresholds,
    field_nT: bool = True,
) -> dict:
    """One component's statistics and plausibility warnings (its entry in ``report["components"]``)."""
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    finite = np.isfinite(values)
    comp_warnings: list[str] = []
    missing = float(1.0 - finite.mean()) if n else 1.0
    entry: dict = {
        "missing_fraction": missing,
        "mean_nT": None,
        "std_nT": None,
        "max_hourly_std_nT": None,
        "band_rms_nT": {b: None for b in bands},
        "spectral_slope": None,
    }
    report["components"][name] = entry
    if missing > limits.max_missing_fraction:
        comp_warnings.append(
            f"{name}: {100 * missing:.1f} % of samples missing (> {100 * limits.max_missing_fraction:g} %)"
        )
    if finite.sum() < 2:
        comp_warnings.append(f"{name}: fewer than 2 valid samples")
        entry["warnings"] = comp_warnings
        return entry
    good = values[finite]
    entry["mean_nT"] = float(good.mean())
    entry["std_nT"] = float(good.std())
    entry["max_hourly_std_nT"], rho = _hourly_std(values, report["sampling_interval_s"])
    if abs(entry["mean_nT"]) > limits.max_abs_mean_nt:
        comp_warnings.append(
            f"{name}: mean {entry['mean_nT']:.0f} nT exceeds the Earth's field (> {limits.max_abs_mean_nt:g} nT)"
        )
    if entry["std_nT"] == 0.0:
        comp_warnings.append(f"{name}: constant signal (stuck sensor or fill value?)")
    signatures = _format_signatures(name, values, limits) if field_nT else []
    hourly = entry["max_hourly_std_nT"]
    if hourly is not None and hourly > limits.max_hourly_std_nt:
        entry["worst_hour_lag1_autocorrelation"] = rho
        text = f"{name}: hourly std {hourly:.1f} nT > {limits.max_hourly_std_nt:g} nT"
        smooth = rho is not None and rho >= limits.min_lag1_autocorrelation
        if smooth and hourly <= limits.max_plausible_hourly_std_nt and not signatures:
            report["activity_notes"].append(
                f"{text}, smooth (lag-1 autocorrelation {rho:.4f}): a large but physically plausible variation "
                "(geomagnetic disturbance, see geomag.activity), not a file-format problem"
            )
        else:
            rough = "" if smooth or rho is None else f"; rough from sample to sample (lag-1 autocorrelation {rho:.2f})"
            comp_warnings.append(f"{text} (wrong byte layout or units?){rough}")
    comp_warnings += signatures
    if report["nperseg"] is not None and entry["std_nT"] > 0.0:
        comp_warnings += _spectral_quality(name, values, entry, report, bands, limits)
    entry["warnings"] = comp_warnings
    return entry


def quality_report(
    window_or_series: PreEventWindow | GeomagSeries,
    bands: Mapping[str, Sequence[float]] | None = None,
    thresholds: QualityThresholds | None = None,
) -> dict:
    """Per-component quality statistics and plausibility warnings (JSON-serialisable dict).

    For each component: ``missing_fraction``, ``mean_nT``, ``std_nT``, ``max_hourly_std_nT``,
    ``band_rms_nT`` (sqrt of the Welch PSD integrated over each band; ``nperseg`` >= 2048 on
    the linearly gap-filled data) and ``spectral_slope`` (log-log fit of the PSD over 2-100 mHz),
    plus ``warnings``. The top-level ``warnings`` list gathers all of them (data impossible for the
    format); ``ok`` is True when there is none. ``activity_notes`` lists large but smooth, physically
    plausible variation (a disturbed window, not a format problem; it leaves ``ok`` True). Values that
    cannot be computed (too short, band above Nyquist) are None and explained in ``notes``.
    """
    series = window_or_series.series if isinstance(window_or_series, PreEventWindow) else window_or_series
    limits = thresholds or QualityThresholds()
    band_limits = _checked_bands(bands)
    interval = float(series.sampling_interval_s)
    n = len(series)
    # >= 2048 samples per segment (1-10 mHz resolved), up to 8192, at least ~4 segments when possible
    nperseg = int(min(n, max(MIN_NPERSEG, min(MAX_NPERSEG, n // 4)))) if n >= MIN_NPERSEG else None
    report: dict = {
        "station": series.station,
        "source": series.source,
        "n_samples": n,
        "sampling_interval_s": interval,
        "duration_s": n * interval,
        "bands_hz": {k: list(v) for k, v in band_limits.items()},
        "nperseg": nperseg,
        "thresholds": dataclasses.asdict(limits),
        "components": {},
        "warnings": [],
        "activity_notes": [],
        "notes": [],
    }
    if nperseg is None:
        report["notes"].append(f"{n} samples: too short for spectra (need >= {MIN_NPERSEG})")
    units = (series.metadata or {}).get("units") or {}
    for name, values in series.components.items():
        field_nT = str(units.get(name) or "nT").strip().lower().startswith("nt")
        entry = _component_quality(name, values, report, band_limits, limits, field_nT)
        report["warnings"].extend(entry["warnings"])
    report["ok"] = not report["warnings"]
    for text in report["warnings"]:
        logger.warning("%s: %s", series.source or series.station, text)
    for text in report["activity_notes"]:
        logger.info("%s: %s", series.source or series.station, text)
    return report


def _note(report: dict, text: str) -> None:
    if text not in report["notes"]:
        report["notes"].append(text)
