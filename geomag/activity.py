"""Local geomagnetic activity of a data window: K index, hourly ranges, Pc band power and a quiet/active/disturbed flag.

Why: geomagnetic storms, not earthquakes, explain most claimed ULF "precursors" (Masci 2011, PEPI 187;
Thomas, Love & Johnston 2009, GRL 36), so windows recorded during disturbed conditions must be known and can
be excluded. Laboratories do that with Kp, Dst or a local K index; this module gives the local numbers from
raw data, and the flag from whichever numbers are available (:func:`classify`).

**K index** (Bartels, Heck & Johnston 1939; the computer method of the Finnish Meteorological Institute,
Sucksdorff, Menvielle & Sucksdorff 1991, one of the four algorithms accepted by IAGA, reviewed by
Menvielle et al. 1995, GJI 123). For every 3-hour UT interval:

1. the horizontal components as the file reports them (``X/Y``, ``H/D`` or ``H/E``), in nT; a declination
   ``D`` in minutes or degrees of arc becomes nT through ``H * D`` (radians);
2. one-minute means of the samples (a minute with fewer than half of its samples is missing);
3. a preliminary K from the range of the minute values of each interval;
4. the smooth regular daily variation: for every UT hour the mean of the minute values over the hour
   extended on both sides by ``DefLength(local time) + K**3.3`` minutes (DefLength 90 min at night, local
   time 21-03 h, 60 min at dawn 03-06 h and dusk 18-21 h, 0 by day; local time from the station longitude,
   UT when it is unknown), joined by a shape-preserving cubic (PCHIP) through the hourly means. The FMI
   method fits five harmonics to a whole day instead; the interpolation also works on windows shorter
   than a day, and both keep the slow variation out of the range;
5. K from the largest range of ``component - regular variation`` over the horizontal components, on the
   standard quasi-logarithmic scale: the lower limits of K = 0..9 are ``K9 * (0, 5, 10, 20, 40, 70, 120,
   200, 330, 500) / 500`` nT (Mayaud 1980). Steps 4-5 run twice with the new K, as in the FMI method.

K9 comes from the file (ImagCDF ``StationK9``, stored as ``metadata["station_k9"]``; an IAGA-2002
``K9-limit`` comment), else from ``ActivityConfig.station_k9_nT``, else the **default 500 nT** (a typical
mid-latitude value; low-latitude stations have smaller K9, e.g. ~300 nT, so the default underestimates
their K). A window's K is the largest K of the 3-hour intervals that overlap it; an interval with less
than ``min_interval_coverage`` of its minutes is skipped (noted).

**Hourly ranges** (max - min per hour of the window, every component, D in nT) and **Pc band power**
(Welch 1967 PSD integrated over the IAGA pulsation bands of Jacobs et al. 1964: Pc5 1.7-6.7 mHz,
Pc4 6.7-22 mHz, Pc3 22-100 mHz) describe the window itself.

**Flag** (:class:`ActivityThresholds`, defaults of common practice): ``disturbed`` when K >= 5 or
Kp >= 5 or Dst <= -50 nT; ``quiet`` when every available number is quiet (K < 3, Kp < 3, Dst > -20 nT);
``active`` otherwise; ``unknown`` when there is no number at all.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

import numpy as np
from scipy import signal
from scipy.interpolate import PchipInterpolator

from core.errors import ConfigError
from core.jsonvalues import json_value
from geomag.timeseries import GeomagSeries

logger = logging.getLogger(__name__)

#: Lower limits of K = 0..9 in nT for K9 = 500 nT (the standard scale; other stations scale by K9/500).
K_LOWER_LIMITS_500 = (0.0, 5.0, 10.0, 20.0, 40.0, 70.0, 120.0, 200.0, 330.0, 500.0)
#: The K9 used when neither the file nor the configuration names one (mid-latitude default).
DEFAULT_K9_NT = 500.0
#: IAGA pulsation bands (Hz), Jacobs et al. (1964).
PC_BANDS: dict[str, tuple[float, float]] = {"Pc5": (1.7e-3, 6.7e-3), "Pc4": (6.7e-3, 22e-3), "Pc3": (22e-3, 100e-3)}
#: Horizontal component pairs, in order of preference.
HORIZONTAL_SETS = (("X", "Y"), ("H", "D"), ("H", "E"), ("H",), ("X",))
FLAGS = ("quiet", "active", "disturbed", "unknown")
INTERVAL_MINUTES = 180
K_EXPONENT = 3.3
MAX_WING_MINUTES = 24 * 60
REFINEMENTS = 2
_K9_COMMENT = re.compile(r"K9[-_ ]?limit\D*?(\d+(?:\.\d+)?)", re.IGNORECASE)


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class ActivityThresholds:
    """Flag thresholds (``conf/activity/default.yaml``); K and Kp on their 0-9 scale, Dst in nT."""

    disturbed_k: float = 5.0
    disturbed_kp: float = 5.0
    disturbed_dst_nT: float = -50.0
    quiet_k: float = 3.0
    quiet_kp: float = 3.0
    quiet_dst_nT: float = -20.0
    proxy_disturbed_z: float = 3.0
    proxy_quiet_z: float = 1.5


@dataclass(frozen=True)
class ActivityConfig:
    """How activity is measured: K9 per station, longitudes for local time, interval coverage, thresholds."""

    default_k9_nT: float = DEFAULT_K9_NT
    station_k9_nT: dict = field(default_factory=dict)
    station_longitude: dict = field(default_factory=dict)
    min_interval_coverage: float = 0.5
    margin_hours: float = 12.0
    thresholds: ActivityThresholds = field(default_factory=ActivityThresholds)

    @classmethod
    def from_config(cls, cfg: Mapping | None) -> "ActivityConfig":
        """Build from a plain mapping or OmegaConf node (``conf/activity/default.yaml``); unknown keys fail."""
        data = {str(k): v for k, v in dict(cfg or {}).items()}
        thresholds = dict(data.pop("thresholds", None) or {})
        known = {f.name for f in fields(cls)} - {"thresholds"}
        unknown = sorted(set(data) - known)
        known_t = {f.name for f in fields(ActivityThresholds)}
        unknown += [f"thresholds.{k}" for k in sorted(set(thresholds) - known_t)]
        if unknown:
            raise ConfigError(f"activity: unknown key(s) {unknown}")
        try:
            limits = ActivityThresholds(**{k: float(v) for k, v in thresholds.items()})
            for key in ("station_k9_nT", "station_longitude"):
                if key in data:
                    data[key] = {str(s): float(v) for s, v in dict(data[key] or {}).items()}
            for key in ("default_k9_nT", "min_interval_coverage", "margin_hours"):
                if key in data:
                    data[key] = float(data[key])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"activity: {exc}") from None
        config = cls(**data, thresholds=limits)
        if not config.default_k9_nT > 0 or any(v <= 0 for v in config.station_k9_nT.values()):
            raise ConfigError("activity: K9 values must be positive (nT)")
        if not 0 < config.min_interval_coverage <= 1:
            raise ConfigError("activity.min_interval_coverage must lie in (0, 1]")
        return config


# --------------------------------------------------------------------------- the result
@dataclass
class WindowActivity:
    """Geomagnetic activity of one data window, and the quiet/active/disturbed flag.

    ``basis`` names the numbers the flag rests on (``K``, ``Kp``, ``Dst`` or ``proxy``) and ``reasons`` says
    why, e.g. ``"K 8 >= 5"``. ``k_intervals`` lists every 3-hour UT interval that overlaps the window
    (``start``, ``end``, ``k``, ``range_nT`` per horizontal component, ``coverage``). ``hourly_range_nT`` and
    ``band_rms_nT`` / ``band_power_nT2`` hold one list / mapping per component; ``proxy`` is set only for
    image/array inputs (:mod:`geomag.disturbance_proxy`) and carries its own ``limits``.
    """

    flag: str
    basis: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    window_start: str | None = None
    window_end: str | None = None
    station: str | None = None
    k: int | None = None
    k9_nT: float | None = None
    k9_source: str | None = None
    k_intervals: list[dict] = field(default_factory=list)
    kp: float | None = None
    dst_nT: float | None = None
    indices_source: str | None = None
    hour_starts: list[str] = field(default_factory=list)
    hourly_range_nT: dict[str, list] = field(default_factory=dict)
    band_rms_nT: dict[str, dict] = field(default_factory=dict)
    band_power_nT2: dict[str, dict] = field(default_factory=dict)
    proxy: dict | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain JSON data (floats rounded to 4 decimals, non-finite values as ``None``)."""
        return json_value(asdict(self), decimals=4)


def classify(
    k: float | None = None,
    kp: float | None = None,
    dst_nT: float | None = None,
    proxy_z: float | None = None,
    thresholds: ActivityThresholds | None = None,
) -> tuple[str, list[str], list[str]]:
    """``(flag, basis, reasons)`` from whichever numbers are given.

    The proxy z-score counts only when there is no K, Kp or Dst. ``disturbed`` if any number is disturbed;
    ``quiet`` if all are quiet; ``active`` otherwise; ``unknown`` without numbers.
    """
    t = thresholds or ActivityThresholds()
    checks = []  # (name, value, disturbed?, quiet?, disturbed text, quiet text)
    if k is not None:
        checks.append(("K", k, k >= t.disturbed_k, k < t.quiet_k, f">= {t.disturbed_k:g}", f"< {t.quiet_k:g}"))
    if kp is not None:
        checks.append(("Kp", kp, kp >= t.disturbed_kp, kp < t.quiet_kp, f">= {t.disturbed_kp:g}", f"< {t.quiet_kp:g}"))
    if dst_nT is not None:
        checks.append(
            (
                "Dst",
                dst_nT,
                dst_nT <= t.disturbed_dst_nT,
                dst_nT > t.quiet_dst_nT,
                f"<= {t.disturbed_dst_nT:g} nT",
                f"> {t.quiet_dst_nT:g} nT",
            )
        )
    if not checks and proxy_z is not None:
        checks.append(
            (
                "proxy",
                proxy_z,
                proxy_z >= t.proxy_disturbed_z,
                proxy_z < t.proxy_quiet_z,
                f"z >= {t.proxy_disturbed_z:g}",
                f"z < {t.proxy_quiet_z:g}",
            )
        )
    if not checks:
        return "unknown", [], ["no K, Kp, Dst or proxy for this window"]
    basis = [c[0] for c in checks]
    disturbed = [f"{name} {value:g} {text}" for name, value, bad, _, text, _ in checks if bad]
    if disturbed:
        return "disturbed", basis, disturbed
    if all(c[3] for c in checks):
        return "quiet", basis, [f"{name} {value:g} {text}" for name, value, _, _, _, text in checks]
    return (
        "active",
        basis,
        [f"{name} {value:g} not quiet ({text} is quiet)" for name, value, _, q, _, text in checks if not q],
    )


# --------------------------------------------------------------------------- K scale and components
def k_lower_limits(k9_nT: float) -> np.ndarray:
    """Lower limits (nT) of K = 0..9 for a station with K9 lower limit ``k9_nT``."""
    return np.asarray(K_LOWER_LIMITS_500) * (float(k9_nT) / 500.0)


def k_from_range(range_nT: float, k9_nT: float) -> int:
    """K (0..9) of a range in nT: the largest K whose lower limit the range reaches."""
    return int(np.searchsorted(k_lower_limits(k9_nT), float(range_nT), side="right") - 1)


def station_k9(series: GeomagSeries, config: ActivityConfig) -> tuple[float, str]:
    """``(K9 in nT, source)``: the file's value, else ``config.station_k9_nT[station]``, else the default."""
    meta = series.metadata or {}
    candidates = [meta.get("station_k9")]
    candidates += [m.group(1) for c in meta.get("comments") or [] for m in [_K9_COMMENT.search(str(c))] if m]
    for value in candidates:
        try:
            k9 = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(k9) and k9 > 0:
            return k9, "file"
    if series.station in config.station_k9_nT:
        return float(config.station_k9_nT[series.station]), "config"
    return float(config.default_k9_nT), "default"


def _angle_factor(unit: object) -> float | None:
    """Radians per unit of an angle unit name; None for nT (or an unnamed unit)."""
    text = str(unit or "").strip().lower()
    if not text or text.startswith("nt") or "tesla" in text:
        return None
    if "min" in text:
        return math.pi / 10800.0
    if "deg" in text:
        return math.pi / 180.0
    if "rad" in text:
        return 1.0
    return None


def field_components(series: GeomagSeries) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every component in nT (``D`` in angle units converted with the mean ``H``); notes on what was done."""
    units = (series.metadata or {}).get("units") or {}
    out, notes = {}, []
    for name, values in series.components.items():
        factor = _angle_factor(units.get(name))
        if name == "I":
            continue  # inclination is not a field component
        if factor is None:
            out[name] = values
            if name == "D" and not units.get(name):
                notes.append("unit of D not stated: taken as nT")
            continue
        if "H" in series.components:
            h = float(np.nanmean(series["H"]))
        elif {"X", "Y"} <= set(series.components):
            h = float(np.nanmean(np.hypot(series["X"], series["Y"])))
        else:
            notes.append(f"{name} in {units.get(name)} but no H to convert it to nT: left out")
            continue
        out[name] = h * factor * values
        notes.append(f"{name} converted from {units.get(name)} to nT with mean H {h:.0f} nT")
    return out, notes


def horizontal_set(components: Mapping[str, np.ndarray]) -> tuple[str, ...]:
    """The horizontal components the K index uses (``X/Y``, ``H/D``, ``H/E``; else what exists)."""
    for names in HORIZONTAL_SETS:
        if all(n in components for n in names):
            return names
    return ()


# --------------------------------------------------------------------------- K index (FMI method)
def minute_means(series: GeomagSeries, values: np.ndarray) -> tuple[int, np.ndarray]:
    """``(first minute since 1970, one-minute means)``; minutes with < half their samples are NaN."""
    minutes = series.times.astype("datetime64[m]").astype(np.int64)
    first = int(minutes[0])
    index = minutes - first
    finite = np.isfinite(values)
    sums = np.bincount(index, weights=np.where(finite, values, 0.0))
    counts = np.bincount(index, weights=finite.astype(np.float64))
    expected = max(1.0, 60.0 / float(series.sampling_interval_s))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts >= 0.5 * expected, sums / np.maximum(counts, 1.0), np.nan)
    return first, means


def _def_length_minutes(local_hour: float) -> float:
    """FMI ``DefLength``: 90 min at night (21-03 h LT), 60 min at dawn (03-06) and dusk (18-21), 0 by day."""
    h = local_hour % 24
    if h < 3 or h >= 21:
        return 90.0
    if h < 6 or h >= 18:
        return 60.0
    return 0.0


def regular_variation(
    values: np.ndarray, first_minute: int, k_of_interval: Mapping[int, int], longitude: float | None
) -> np.ndarray:
    """Smooth regular variation on the minute grid (FMI extended hourly means joined by a PCHIP curve)."""
    n = values.size
    finite = np.isfinite(values)
    csum = np.concatenate(([0.0], np.cumsum(np.where(finite, values, 0.0))))
    ccount = np.concatenate(([0], np.cumsum(finite)))
    hours = np.arange(first_minute // 60, -(-(first_minute + n) // 60))
    centres, means = [], []
    for hour in hours:
        k = k_of_interval.get(int(hour * 60) // INTERVAL_MINUTES)
        local = (hour % 24) + (longitude or 0.0) / 15.0
        wing = min(30.0 + _def_length_minutes(local) + (k**K_EXPONENT if k else 0.0), MAX_WING_MINUTES)
        centre = hour * 60 + 30 - first_minute
        lo, hi = int(max(0, centre - wing)), int(min(n, centre + wing + 1))
        if hi > lo and ccount[hi] > ccount[lo]:
            centres.append(centre + 0.5)
            means.append((csum[hi] - csum[lo]) / (ccount[hi] - ccount[lo]))
    if not means:
        return np.full(n, np.nan)
    if len(means) == 1:
        return np.full(n, means[0])
    grid = np.clip(np.arange(n) + 0.5, centres[0], centres[-1])
    return PchipInterpolator(np.asarray(centres), np.asarray(means))(grid)


def _interval_k(
    residuals: Mapping[str, np.ndarray], first_minute: int, interval: int, k9_nT: float, min_coverage: float
) -> dict:
    """K of one 3-hour UT interval from the residual minute values of the horizontal components."""
    lo = max(0, interval * INTERVAL_MINUTES - first_minute)
    hi = max(0, (interval + 1) * INTERVAL_MINUTES - first_minute)
    ranges, coverage = {}, 1.0
    for name, resid in residuals.items():
        piece = resid[lo:hi]
        good = piece[np.isfinite(piece)]
        coverage = min(coverage, good.size / INTERVAL_MINUTES)
        ranges[name] = float(good.max() - good.min()) if good.size else None
    usable = coverage >= min_coverage and all(r is not None for r in ranges.values())
    k = k_from_range(max(ranges.values()), k9_nT) if usable else None
    start = np.datetime64(interval * INTERVAL_MINUTES, "m")
    return {
        "start": str(start.astype("datetime64[s]")),
        "end": str((start + INTERVAL_MINUTES).astype("datetime64[s]")),
        "k": k,
        "range_nT": ranges,
        "coverage": coverage,
    }


def k_intervals(
    series: GeomagSeries, k9_nT: float, config: ActivityConfig | None = None
) -> tuple[list[dict], list[str]]:
    """K of every 3-hour UT interval the series touches (FMI method, see the module docstring); and notes."""
    config = config or ActivityConfig()
    components, notes = field_components(series)
    names = horizontal_set(components)
    if not names:
        return [], notes + [f"no horizontal component among {list(series.components)}: no K index"]
    if len(series) == 0 or float(series.sampling_interval_s) > 60.0:
        return [], notes + ["K needs data at a 1-minute cadence or finer: no K index"]
    minutes = {}
    for name in names:
        first, minutes[name] = minute_means(series, components[name])
    n = next(iter(minutes.values())).size
    intervals = range(first // INTERVAL_MINUTES, (first + n - 1) // INTERVAL_MINUTES + 1)
    longitude = series.longitude if series.longitude is not None else config.station_longitude.get(series.station)
    if longitude is None:
        notes.append("station longitude unknown: local time for the regular variation taken as UT")
    results = [_interval_k(minutes, first, i, k9_nT, config.min_interval_coverage) for i in intervals]
    for _ in range(REFINEMENTS):
        k_of = {i: r["k"] for i, r in zip(intervals, results) if r["k"] is not None}
        residuals = {name: v - regular_variation(v, first, k_of, longitude) for name, v in minutes.items()}
        results = [_interval_k(residuals, first, i, k9_nT, config.min_interval_coverage) for i in intervals]
    return results, notes


# --------------------------------------------------------------------------- window statistics
def hourly_ranges(components: Mapping[str, np.ndarray], interval_s: float) -> dict[str, list]:
    """Max - min of each component in consecutive hours from the window's start (None: < half the samples)."""
    chunk = max(1, int(round(3600.0 / interval_s)))
    out = {}
    for name, values in components.items():
        ranges = []
        for start in range(0, values.size, chunk):
            piece = values[start : start + chunk]
            good = piece[np.isfinite(piece)]
            ranges.append(float(good.max() - good.min()) if good.size >= max(1, piece.size // 2) else None)
        out[name] = ranges
    return out


def band_power(values: np.ndarray, interval_s: float) -> dict[str, float | None]:
    """Welch power (nT^2) of the Pc5, Pc4 and Pc3 bands (None: too short, too gappy or above Nyquist)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    n = values.size
    if n < 2048 or finite.mean() < 0.5:
        return {band: None for band in PC_BANDS}
    positions = np.arange(n, dtype=np.float64)
    filled = values if finite.all() else np.interp(positions, positions[finite], values[finite])
    nperseg = int(min(n, max(2048, min(8192, n // 4))))
    freqs, psd = signal.welch(filled, fs=1.0 / interval_s, window="hann", nperseg=nperseg, detrend="linear")
    df = freqs[1] - freqs[0]
    out = {}
    for band, (fmin, fmax) in PC_BANDS.items():
        sel = (freqs >= fmin) & (freqs < fmax)
        out[band] = float(np.sum(psd[sel]) * df) if sel.any() and fmax <= freqs[-1] + df else None
    return out


@dataclass
class WindowK:
    """The K index of a window: the largest K of the overlapping 3-hour intervals, K9 and where it came from."""

    k: int | None
    k9_nT: float
    k9_source: str
    intervals: list[dict]
    notes: list[str]


def window_k(series: GeomagSeries, start: object, end: object, config: ActivityConfig | None = None) -> WindowK:
    """K of the window ``start <= t < end``: the largest K of the 3-hour UT intervals that overlap it."""
    from geomag.preprocess import as_datetime64

    config = config or ActivityConfig()
    t0, t1 = as_datetime64(start, "window start"), as_datetime64(end, "window end")
    k9, k9_source = station_k9(series, config)
    intervals, notes = k_intervals(series, k9, config)
    overlapping = [r for r in intervals if np.datetime64(r["start"], "ms") < t1 and np.datetime64(r["end"], "ms") > t0]
    ks = [r["k"] for r in overlapping if r["k"] is not None]
    skipped = [r["start"] for r in overlapping if r["k"] is None]
    if skipped:
        notes.append(f"3-hour intervals without K (coverage < {config.min_interval_coverage:g}): {skipped}")
    if k9_source == "default":
        notes.append(f"K9 {k9:g} nT is the default (no StationK9 in the file or config)")
    return WindowK(max(ks) if ks else None, k9, k9_source, overlapping, notes)


def window_activity(
    series: GeomagSeries,
    start: object,
    end: object,
    config: ActivityConfig | None = None,
    indices: object | None = None,
) -> WindowActivity:
    """Activity of the window ``start <= t < end`` of ``series`` (which may extend beyond it for the K index).

    ``indices`` (a :class:`geomag.indices.IndexValues`) adds the user's Kp / Dst beside the local K.
    """
    from geomag.preprocess import as_datetime64

    config = config or ActivityConfig()
    t0, t1 = as_datetime64(start, "window start"), as_datetime64(end, "window end")
    k = window_k(series, t0, t1, config)
    window = series.slice_time(t0, t1)
    components, _ = field_components(window)
    interval_s = float(series.sampling_interval_s)
    hours = np.arange(0, len(window), max(1, int(round(3600.0 / interval_s))))
    power = {name: band_power(values, interval_s) for name, values in components.items()}
    rms = {c: {b: None if p is None else math.sqrt(p) for b, p in bands.items()} for c, bands in power.items()}
    activity = WindowActivity(
        flag="unknown",
        window_start=str(t0),
        window_end=str(t1),
        station=series.station,
        k=k.k,
        k9_nT=k.k9_nT,
        k9_source=k.k9_source,
        k_intervals=k.intervals,
        hour_starts=[str(window.times[i]) for i in hours],
        hourly_range_nT=hourly_ranges(components, interval_s),
        band_power_nT2=power,
        band_rms_nT=rms,
        notes=k.notes,
    )
    return apply_indices(activity, indices, config.thresholds)


def apply_indices(activity: WindowActivity, indices: object | None, thresholds: ActivityThresholds) -> WindowActivity:
    """Add the user's Kp / Dst (an ``IndexValues`` or None) to ``activity`` and set its flag."""
    if indices is not None:
        activity.kp = getattr(indices, "kp", None)
        activity.dst_nT = getattr(indices, "dst_nT", None)
        activity.indices_source = getattr(indices, "source", None)
        activity.notes.extend(getattr(indices, "notes", ()) or ())
    proxy_z = (activity.proxy or {}).get("z")
    activity.flag, activity.basis, activity.reasons = classify(
        activity.k, activity.kp, activity.dst_nT, proxy_z, thresholds
    )
    return activity


# --------------------------------------------------------------------------- per record
def window_of(event_time: object, window_s: float) -> tuple[np.datetime64, np.datetime64]:
    """``(start, end)`` of the window of ``window_s`` seconds that ends at ``event_time``."""
    from geomag.preprocess import as_datetime64

    end = as_datetime64(event_time, "event time")
    return end - np.timedelta64(int(round(float(window_s) * 1000)), "ms"), end


def file_activity(
    path: object, window: tuple[object, object], config: ActivityConfig | None = None, indices: object | None = None
) -> WindowActivity:
    """Activity of a window of a raw file, read with ``config.margin_hours`` around it for the K index."""
    from geomag.preprocess import as_datetime64
    from geomag.readers import read_timeseries

    config = config or ActivityConfig()
    start, end = (as_datetime64(t, "window time") for t in window)
    margin = np.timedelta64(int(round(config.margin_hours * 3600 * 1000)), "ms")
    series = read_timeseries(path, expected_interval_s=None, time_range=(start - margin, end + margin))
    activity = window_activity(series, start, end, config, indices)
    if not len(series.slice_time(start, end)):
        activity.notes.append(f"{path}: no data between {start} and {end}")
    return activity


def column_activity(
    extra: Mapping[str, str],
    window: tuple[object, object] | None,
    config: ActivityConfig | None = None,
    indices: object | None = None,
    where: str = "",
) -> WindowActivity | None:
    """Activity from metadata-CSV columns: the generator's ``activity_k``/``activity_flag`` and/or the user's
    indices (``indices``); None when the row has neither. ``where`` names the file and row in errors."""
    from core.errors import InputDataError

    config = config or ActivityConfig()
    flag_text = str(extra.get("activity_flag") or "").strip()
    k_text = str(extra.get("activity_k") or "").strip()
    has_indices = indices is not None and not getattr(indices, "empty", False)
    if not (flag_text or k_text or has_indices):
        return None
    if flag_text and flag_text not in FLAGS:
        raise InputDataError(None, f"{where}: activity_flag {flag_text!r} is not one of {list(FLAGS)}")
    try:
        k = int(k_text) if k_text else None
    except ValueError:
        k = -1
    if k is not None and not 0 <= k <= 9:
        raise InputDataError(None, f"{where}: activity_k {k_text!r} is not a K index 0..9")
    activity = WindowActivity(flag="unknown", k=k)
    if window is not None:
        activity.window_start, activity.window_end = (str(t) for t in window)
    if k is not None:
        activity.notes.append("K from the activity_k column (the generator's local K of the raw window)")
    activity = apply_indices(activity, indices, config.thresholds)
    if activity.flag == "unknown" and flag_text:
        activity.flag, activity.reasons = flag_text, ["activity_flag column"]
    return activity
