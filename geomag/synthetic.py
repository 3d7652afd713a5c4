"""Deterministic synthetic 1-second H/D/Z data with planted ULF precursors (the offline demo).

Physics (facts from ``shared/README.md`` and the ULF-precursor literature, e.g. Hayakawa et al.
1996, "Results of ultra-low-frequency magnetic field measurements during the Guam earthquake"):

* background: power-law ULF noise, H amplitude ~0.7 nT/sqrt(Hz) at 10 mHz with a PSD slope of
  ~ -2.4 (f^-2 .. f^-3), day-to-day level scatter; D and Z quieter than H;
* quiet-day diurnal variation (35-60 nT range in H and Z, H peak near 04-05 UT);
* natural Pc3-Pc5 pulsation bursts (2-80 mHz, random polarisation) in *every* class;
* sensor noise floor 0.02 nT/sqrt(Hz) and 0.01 nT quantisation;
* precursor (non-Normal windows only): band-limited emission inside 1-10 mHz during the hours
  before the event. Its amplitude grows with the magnitude class; its horizontal polarisation
  encodes the azimuth sector theta (H ~ cos(theta), D ~ sin(theta), the same waveform: a
  linearly polarised field); it raises Z/H (Z carries an independent emission of comparable size).

What a *power* spectrogram can tell apart: power sees cos^2(theta) in H and sin^2(theta) in D,
so theta, -theta, theta+180 and 180-theta look identical. Of the 8 sectors only three groups are
separable: {N, S} (power in H only), {E, W} (D only) and {NE, SE, SW, NW} (equal H and D).
The best possible azimuth accuracy is therefore Normal + 1/2 of {N,S} + 1/2 of {E,W} +
1/4 of the diagonals. We do not add unphysical cues to beat that bound.

Each precursor comes with a ground-truth time-frequency mask on the spectrogram grid.

Geomagnetic storms (``storm_fraction`` > 0, ``conf/data/demo_storms.yaml``): a share of the Normal windows
carries a storm, still labelled Normal, because storms, not earthquakes, explain most claimed ULF anomalies
(Masci 2011, PEPI 187; Thomas, Love & Johnston 2009, GRL 36). A storm adds a ring-current main phase
(a depression of H by ``storm_depression_nT``, after a sudden commencement, deepest at local dusk, with an
exponential recovery; Gonzalez et al. 1994, JGR 99), substorm bays (tens to a few hundred nT, mostly near
local midnight; McPherron 1970), enhanced Pc5 (power x ``storm_pc5_power_gain``) and a broadband ULF
enhancement in every component (power x ``storm_broadband_power_gain``). Every window's activity (local
K index and flag, :mod:`geomag.activity`) is written to ``metadata.csv`` (``activity_flag``, ``activity_k``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import detrend

from core.progress import progress
from geomag.activity import classify, window_k
from geomag.spectrogram import SpectrogramConfig, compute_spectrogram
from geomag.timeseries import GeomagSeries

log = logging.getLogger(__name__)

MAGNITUDE_CLASSES = ("Normal", "Moderate", "Medium", "Large")
AZIMUTH_CLASSES = ("Normal", "N", "NE", "E", "SE", "S", "SW", "W", "NW")
SECTOR_ANGLE_DEG = {"N": 0.0, "NE": 45.0, "E": 90.0, "SE": 135.0, "S": 180.0, "SW": 225.0, "W": 270.0, "NW": 315.0}
STATIONS = ("LUT", "MLB", "SCN", "TND", "GTO", "KPY", "LWA", "YOG", "PLU", "SBG")
# separable azimuth groups under power spectrograms (documentation + evaluation helper)
#: Generator settings that exist only for storms (left out of the hash while storms are off).
STORM_KEYS = ("storm_fraction", "storm_depression_nT", "storm_pc5_power_gain", "storm_broadband_power_gain")
#: Generator settings given as lists in YAML that the config holds as tuples.
TUPLE_SETTINGS = (
    "precursor_onset_hours",
    "precursor_end_hours",
    "precursor_band_hz",
    "z_ratio",
    "shortcut_classes",
    "storm_depression_nT",
    "storm_pc5_power_gain",
    "storm_broadband_power_gain",
)
#: Longitude (deg E) of the demo stations (Indonesia: H peaks near 04-05 UT, local noon), for local time.
DEMO_LONGITUDE_DEG = 120.0
AZIMUTH_POWER_GROUPS = {
    "Normal": "Normal",
    "N": "H-only",
    "S": "H-only",
    "E": "D-only",
    "W": "D-only",
    "NE": "H=D",
    "SE": "H=D",
    "SW": "H=D",
    "NW": "H=D",
}


@dataclass(frozen=True)
class GeneratorConfig:
    """Size, balance and physics knobs of the demo data set (``conf/data/demo.yaml``)."""

    n_samples: int = 900
    seed: int = 20240416
    magnitude_fractions: dict = field(
        default_factory=lambda: {"Normal": 0.12, "Moderate": 0.40, "Medium": 0.28, "Large": 0.20}
    )
    precursor_rms_nT: dict = field(default_factory=lambda: {"Moderate": 0.6, "Medium": 1.7, "Large": 4.8})
    amplitude_scatter_log10: float = 0.08
    background_psd_10mHz: float = 0.49  # nT^2/Hz in H at 10 mHz (0.7 nT/sqrt(Hz))
    background_slope: float = 2.4
    background_scatter_log10: float = 0.2
    component_background_ratio: dict = field(default_factory=lambda: {"H": 1.0, "D": 0.9, "Z": 1.2})
    noise_floor_psd: float = 4e-4  # nT^2/Hz (0.02 nT/sqrt(Hz))
    quantum_nT: float = 0.01
    pulsation_bursts_mean: float = 2.0
    precursor_onset_hours: tuple = (2.0, 5.0)
    precursor_end_hours: tuple = (0.0, 1.0)
    precursor_band_hz: tuple = (0.001, 0.01)
    z_ratio: tuple = (0.6, 0.9)
    azimuth_jitter_deg: float = 10.0
    # a narrow-band artefact present only in some classes' windows (off by default)
    shortcut_frequency_hz: float | None = None
    shortcut_rms_nT: float = 0.3
    shortcut_classes: tuple = ("Normal",)  # magnitude classes whose windows carry the artefact
    # geomagnetic storms in a share of the Normal windows (off by default)
    storm_fraction: float = 0.0
    storm_depression_nT: tuple = (100.0, 300.0)
    storm_pc5_power_gain: tuple = (10.0, 30.0)
    storm_broadband_power_gain: tuple = (3.0, 8.0)

    def as_dict(self) -> dict:
        """The settings as a dict; the storm settings only when storms are on (data sets without storms keep
        their hash and description)."""
        generator = asdict(self)
        if not self.storm_fraction:
            for key in STORM_KEYS:
                del generator[key]
        return generator

    def hash(self, spectrogram: SpectrogramConfig) -> str:
        generator = self.as_dict()
        if tuple(generator["shortcut_classes"]) == ("Normal",):
            del generator["shortcut_classes"]  # the default: keeps earlier data-set hashes (and caches) valid
        payload = json.dumps({"generator": generator, "spectrogram": asdict(spectrogram)}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _shaped_noise(rng: np.random.Generator, n: int, psd_of_f, dt: float = 1.0) -> np.ndarray:
    """Gaussian noise with one-sided PSD ``psd_of_f(f)`` (nT^2/Hz) via rfft shaping."""
    f = np.fft.rfftfreq(n, dt)
    amplitude = np.sqrt(np.maximum(psd_of_f(f), 0.0) / (2.0 * dt))
    amplitude[0] = 0.0
    spectrum = np.fft.rfft(rng.standard_normal(n)) * amplitude
    return np.fft.irfft(spectrum, n)


def _band_noise(rng: np.random.Generator, n: int, f_lo: float, f_hi: float) -> np.ndarray:
    """Unit-RMS noise band-limited to [f_lo, f_hi] (cosine-tapered edges)."""
    f = np.fft.rfftfreq(n, 1.0)
    taper = np.clip(np.minimum((f - f_lo * 0.9) / (f_lo * 0.2), (f_hi * 1.1 - f) / (f_hi * 0.2)), 0, 1)
    x = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * np.sin(0.5 * np.pi * taper) ** 2, n)
    return x / max(np.std(x), 1e-12)


def _envelope(n: int, start: int, stop: int, taper_s: int = 600) -> np.ndarray:
    t = np.arange(n)
    up = np.clip((t - start) / taper_s, 0, 1)
    down = np.clip((stop - t) / taper_s, 0, 1)
    return np.sin(0.5 * np.pi * np.minimum(up, down)) ** 2


@dataclass
class SyntheticWindow:
    """One generated pre-event window and what was planted in it."""

    components: dict[str, np.ndarray]
    magnitude_class: str
    azimuth_class: str
    precursor: dict | None


def generate_window(
    rng: np.random.Generator,
    cfg: GeneratorConfig,
    magnitude_class: str,
    azimuth_class: str,
    window_s: float,
    start_hour_ut: float,
) -> SyntheticWindow:
    """Raw 1-second H, D, Z (nT, with baselines, diurnal variation and quantisation)."""
    n = int(window_s)
    t = np.arange(n, dtype=np.float64)
    level = cfg.background_psd_10mHz * 10 ** rng.normal(0.0, cfg.background_scatter_log10)
    slope = cfg.background_slope + rng.normal(0.0, 0.15)

    def background_psd(f):
        f_safe = np.maximum(f, 3e-4)
        return level * (f_safe / 0.01) ** (-slope)

    hours_ut = start_hour_ut + t / 3600.0
    diurnal_phase = 2 * np.pi * (hours_ut - 4.5) / 24.0
    baselines = {"H": 38385.0, "D": -50.0, "Z": -23465.0}
    diurnal = {
        "H": 22.0 * np.cos(diurnal_phase) + 6.0 * np.cos(2 * diurnal_phase),
        "D": 3.0 * np.sin(diurnal_phase),
        "Z": -15.0 * np.cos(diurnal_phase - 0.4),
    }
    comps = {}
    for name in ("H", "D", "Z"):
        ratio = cfg.component_background_ratio[name]
        comps[name] = _shaped_noise(rng, n, lambda f, r=ratio: r * background_psd(f)) + _shaped_noise(
            rng, n, lambda f: np.full_like(f, cfg.noise_floor_psd)
        )
    # natural Pc3-Pc5 pulsation bursts (all classes)
    for _ in range(rng.poisson(cfg.pulsation_bursts_mean)):
        f0 = float(np.exp(rng.uniform(np.log(0.002), np.log(0.08))))
        centre, width = rng.uniform(0, n), rng.uniform(600, 2400)
        amp = rng.uniform(0.1, 0.5) * (f0 / 0.005) ** -0.5
        wave = np.exp(-0.5 * ((t - centre) / (width / 2.355)) ** 2) * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 6.3))
        angle = rng.uniform(0, 2 * np.pi)
        comps["H"] += amp * np.cos(angle) * wave
        comps["D"] += amp * np.sin(angle) * wave
        comps["Z"] += 0.3 * amp * wave
    precursor = None
    if magnitude_class != "Normal":
        lo_band, hi_band = cfg.precursor_band_hz
        f_lo = float(np.exp(rng.uniform(np.log(lo_band * 1.5), np.log(lo_band * 2.5))))
        f_hi = float(min(f_lo * rng.uniform(2.5, 3.5), hi_band))
        onset_h = rng.uniform(*cfg.precursor_onset_hours)
        end_h = rng.uniform(*cfg.precursor_end_hours)
        start, stop = int(n - onset_h * 3600), int(n - end_h * 3600)
        env = _envelope(n, start, stop)
        rms = cfg.precursor_rms_nT[magnitude_class] * 10 ** rng.normal(0.0, cfg.amplitude_scatter_log10)
        theta = np.deg2rad(SECTOR_ANGLE_DEG[azimuth_class] + rng.uniform(-1, 1) * cfg.azimuth_jitter_deg)
        horizontal = rms * env * _band_noise(rng, n, f_lo, f_hi)
        z_ratio = rng.uniform(*cfg.z_ratio)
        comps["H"] += np.cos(theta) * horizontal
        comps["D"] += np.sin(theta) * horizontal
        comps["Z"] += z_ratio * rms * env * _band_noise(rng, n, f_lo, f_hi)
        precursor = {
            "f_lo_hz": f_lo,
            "f_hi_hz": f_hi,
            "onset_hours_before": float(onset_h),
            "end_hours_before": float(end_h),
            "rms_nT": float(rms),
            "theta_deg": float(np.rad2deg(theta)) % 360.0,
            "z_ratio": float(z_ratio),
        }
    if cfg.shortcut_frequency_hz is not None and magnitude_class in cfg.shortcut_classes:
        for name in ("H", "D", "Z"):
            comps[name] += cfg.shortcut_rms_nT * np.sqrt(2) * np.sin(2 * np.pi * cfg.shortcut_frequency_hz * t)
    out = {}
    for name in ("H", "D", "Z"):
        values = baselines[name] + diurnal[name] + comps[name]
        out[name] = np.round(values / cfg.quantum_nT) * cfg.quantum_nT
    return SyntheticWindow(out, magnitude_class, azimuth_class, precursor)


def _background_psd(cfg: GeneratorConfig, f: np.ndarray) -> np.ndarray:
    """The configured mean quiet background PSD of H (nT^2/Hz)."""
    return cfg.background_psd_10mHz * (np.maximum(f, 3e-4) / 0.01) ** (-cfg.background_slope)


def _ring_current(rng: np.random.Generator, cfg: GeneratorConfig, hours: np.ndarray, local: np.ndarray) -> tuple:
    """Sudden commencement, main-phase depression (deepest at local dusk) and recovery of H (nT); its depth."""
    depth = float(rng.uniform(*cfg.storm_depression_nT))
    minimum_h = rng.uniform(-2.0, 8.0)  # Dst minimum, hours after the window start
    main_h, recovery_h = rng.uniform(3.0, 8.0), rng.uniform(6.0, 15.0)
    commencement = rng.uniform(15.0, 50.0)
    since = hours - (minimum_h - main_h)
    ramp = np.clip(since / main_h, 0.0, 1.0)
    main = np.where(
        hours <= minimum_h, -depth * ramp**2 * (3 - 2 * ramp), -depth * np.exp(-(hours - minimum_h) / recovery_h)
    )
    sc = np.where(since >= 0, commencement * (1 - np.exp(-np.maximum(since, 0) * 30.0)) * np.exp(-since / 1.5), 0.0)
    asymmetry = 1.0 + 0.3 * np.cos(2 * np.pi * (local - 18.0) / 24.0)
    return main * asymmetry + sc, depth, main / depth


def _substorm_bays(rng: np.random.Generator, hours: np.ndarray, local_start: float) -> tuple[dict, int]:
    """Substorm bays in H, D, Z (nT): fast rise, slow decay, mostly near local midnight."""
    bays = {name: np.zeros_like(hours) for name in ("H", "D", "Z")}
    count = 0
    for _ in range(rng.poisson(3.0)):
        onset = rng.uniform(-1.0, hours[-1])
        night = 0.5 + 0.5 * np.cos(2 * np.pi * (local_start + onset) / 24.0)  # 1 at local midnight
        amplitude, rise, decay = rng.uniform(40.0, 250.0), rng.uniform(5.0, 15.0) / 60, rng.uniform(30.0, 90.0) / 60
        share_d, share_z = rng.uniform(-0.5, 0.5), rng.uniform(-0.3, 0.3)
        if rng.random() > 0.2 + 0.8 * night:
            continue
        x = np.maximum(hours - onset, 0.0)
        peak_x = rise * np.log1p(decay / rise)
        shape = (1 - np.exp(-x / rise)) * np.exp(-x / decay) / ((1 - np.exp(-peak_x / rise)) * np.exp(-peak_x / decay))
        for name, share in (("H", 1.0), ("D", share_d), ("Z", share_z)):
            bays[name] += share * amplitude * shape
        count += 1
    return bays, count


def add_storm(
    rng: np.random.Generator, cfg: GeneratorConfig, components: dict[str, np.ndarray], start_hour_ut: float
) -> tuple[dict[str, np.ndarray], dict]:
    """A geomagnetic storm added to a window's H, D, Z (re-quantised); returns the components and what was added.

    Ring-current main phase with sudden commencement and recovery (Gonzalez et al. 1994), substorm bays
    (McPherron 1970), Pc5 power x ``storm_pc5_power_gain`` (stronger in the main phase) and a broadband
    ULF enhancement x ``storm_broadband_power_gain`` of the configured quiet background, in every component.
    """
    n = components["H"].size
    t = np.arange(n, dtype=np.float64)
    hours = t / 3600.0
    local = (start_hour_ut + hours + DEMO_LONGITUDE_DEG / 15.0) % 24
    ring, depth, main_shape = _ring_current(rng, cfg, hours, local)
    bays, n_bays = _substorm_bays(rng, hours, float(local[0]))
    broadband = float(rng.uniform(*cfg.storm_broadband_power_gain))
    pc5_gain = float(rng.uniform(*cfg.storm_pc5_power_gain))
    f = np.linspace(1.7e-3, 6.7e-3, 200)
    pc5_quiet = float(np.trapezoid(_background_psd(cfg, f), f))  # nT^2 of quiet Pc5 in H
    envelope = 0.5 - 0.5 * main_shape  # 0.5 .. 1: Pc5 strongest at the main-phase minimum
    envelope /= np.sqrt(np.mean(envelope**2))
    out = {}
    for name, share in (("H", 1.0), ("D", 0.05), ("Z", 0.1)):
        ratio = cfg.component_background_ratio[name]
        extra = _shaped_noise(rng, n, lambda f, r=ratio: (broadband - 1.0) * r * _background_psd(cfg, f))
        pc5_rms = np.sqrt(max(pc5_gain - broadband, 0.0) * ratio * pc5_quiet)
        extra += pc5_rms * envelope * _band_noise(rng, n, 1.7e-3, 6.7e-3)
        values = components[name] + share * ring + bays[name] + extra
        out[name] = np.round(values / cfg.quantum_nT) * cfg.quantum_nT
    info = {
        "depression_nT": depth,
        "substorm_bays": n_bays,
        "pc5_power_gain": pc5_gain,
        "broadband_power_gain": broadband,
    }
    return out, info


def draw_labels(rng: np.random.Generator, cfg: GeneratorConfig) -> list[tuple[str, str]]:
    """Class labels with the configured magnitude balance; azimuth uniform over sectors."""
    names = list(cfg.magnitude_fractions)
    p = np.array([cfg.magnitude_fractions[k] for k in names], dtype=float)
    counts = np.floor(p / p.sum() * cfg.n_samples).astype(int)
    counts[np.argmax(p)] += cfg.n_samples - counts.sum()
    labels = []
    sectors = AZIMUTH_CLASSES[1:]
    for name, count in zip(names, counts):
        for i in range(count):
            labels.append((name, "Normal" if name == "Normal" else sectors[(i + rng.integers(8)) % 8]))
    order = rng.permutation(len(labels))
    return [labels[i] for i in order]


def preprocess_window(components: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The pre-processing the real-data path applies: linear detrend per component."""
    return {k: detrend(v, type="linear") for k, v in components.items()}


def spectrogram_of_window(window: SyntheticWindow, spectrogram: SpectrogramConfig, event_time: str):
    return compute_spectrogram(preprocess_window(window.components), spectrogram, event_time=event_time)


def _write_sample(
    folder: str,
    name: str,
    components: dict[str, np.ndarray],
    precursor: dict | None,
    spectrogram: SpectrogramConfig,
    event_time: str,
) -> dict:
    """Spectrogram + ground-truth mask of one window, saved as ``.npy``; returns the grid's axes.

    A pure function of its arguments (no random draws), so it may run in a worker process."""
    spec = spectrogram_of_window(SyntheticWindow(components, "", "", precursor), spectrogram, event_time)
    np.save(Path(folder) / "spectrograms" / f"{name}.npy", spec.image)
    if precursor is not None:
        mask = spec.axes.cell_mask(
            precursor["f_lo_hz"],
            precursor["f_hi_hz"],
            precursor["onset_hours_before"] * 3600.0,
            precursor["end_hours_before"] * 3600.0,
        )
    else:
        mask = np.zeros(spec.axes.shape, dtype=bool)
    np.save(Path(folder) / "masks" / f"{name}.npy", mask)
    return spec.axes.to_dict()


def _drain(pending: deque, keep: int, axes: dict | None) -> dict | None:
    """Wait for all but the ``keep`` newest jobs (their errors surface here); keep the first grid axes."""
    while len(pending) > keep:
        done = pending.popleft().result()
        axes = axes if axes is not None else done
    return axes


def default_workers(n_samples: int) -> int:
    """Worker processes for the spectrograms: one per usable core for a real-size set, none for a few."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores, 8) if n_samples >= 64 and cores > 1 else 0


def generate_dataset(
    root: str | Path, cfg: GeneratorConfig, spectrogram: SpectrogramConfig, workers: int | None = None
) -> Path:
    """Write the demo data set in the users' format; atomic (built in a temp folder, then renamed).

    Layout: ``metadata.csv`` (magnitude_class, azimuth_class, station, date, path + extras),
    ``class_mappings.json``, ``spectrograms/<name>.npy`` (float32 grid image), ``masks/<name>.npy``
    (bool ground-truth precursor mask on the grid), ``axes.json`` and ``generator.json``.

    The random draws stay in one sequential stream (the set depends only on ``cfg``); the
    spectrograms, about 85 % of the work, are computed by ``workers`` processes (``None``: one per
    core; 0: in this process). The files are byte-identical either way.
    """
    from concurrent.futures.process import BrokenProcessPool

    workers = default_workers(cfg.n_samples) if workers is None else int(workers)
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file and not Path(main_file).exists():
        workers = 0  # e.g. `python -` (stdin): spawned workers could not re-import __main__
    try:
        return _generate_dataset(Path(root), cfg, spectrogram, workers)
    except BrokenProcessPool as exc:  # e.g. a __main__ that spawned workers cannot import
        log.warning("worker processes failed (%s); generating the demo data set in this process", exc)
        return _generate_dataset(Path(root), cfg, spectrogram, 0)


@dataclass
class _Sample:
    """One drawn window with its sample name, event time and metadata row."""

    name: str
    event_time: str
    window: SyntheticWindow
    row: dict


def _activity_columns(components: dict[str, np.ndarray], station: str, event_time: str, window_s: float) -> dict:
    """``activity_flag`` and ``activity_k`` of a 1-second window ending at ``event_time`` (geomag.activity)."""
    end = np.datetime64(event_time.rstrip("Z"), "ms")
    start = end - np.timedelta64(int(round(window_s * 1000)), "ms")
    times = start + np.arange(components["H"].size) * np.timedelta64(1000, "ms")
    series = GeomagSeries(
        times,
        dict(components),
        station,
        longitude=DEMO_LONGITUDE_DEG,
        metadata={"units": {name: "nT" for name in components}},
    )
    k = window_k(series, start, end).k
    return {"activity_flag": classify(k)[0], "activity_k": "" if k is None else str(k)}


def _draw_sample(
    rng: np.random.Generator,
    cfg: GeneratorConfig,
    spectrogram: SpectrogramConfig,
    index: int,
    label: tuple[str, str],
    pair: int,
) -> _Sample:
    """Draw window ``index`` (station, date, event time, data, storm) from the data set's random stream.

    A storm draws from its own stream (seeded by the data-set seed and ``index``), so the windows without
    a storm are the same whether storms are on or off."""
    mag, azi = label
    station = STATIONS[pair % len(STATIONS)]
    date = str(np.datetime64("2016-01-01") + np.timedelta64(pair // len(STATIONS), "D"))
    event_hour = float(rng.uniform(0, 24))
    event_time = f"{date}T{int(event_hour):02d}:{int(event_hour % 1 * 60):02d}:00Z"
    start_hour = (event_hour - spectrogram.window_hours) % 24
    window = generate_window(rng, cfg, mag, azi, spectrogram.window_s, start_hour)
    storm = None
    if cfg.storm_fraction and mag == "Normal":
        storm_rng = np.random.default_rng([int(cfg.seed), 1, index])
        if storm_rng.random() < cfg.storm_fraction:
            window.components, storm = add_storm(storm_rng, cfg, window.components, start_hour)
    name = f"{mag}_{station}_{date}"
    p = window.precursor or {}
    row = {
        "magnitude_class": mag,
        "azimuth_class": azi,
        "station": station,
        "date": date,
        "path": f"spectrograms/{name}.npy",
        "event_time": event_time,
        "event_id": f"EV{index:05d}",
        "mask_path": f"masks/{name}.npy",
        "precursor_rms_nT": f"{p.get('rms_nT', 0.0):.4f}",
        "precursor_band_hz": f"{p['f_lo_hz']:.5f}-{p['f_hi_hz']:.5f}" if p else "",
        "precursor_theta_deg": f"{p['theta_deg']:.1f}" if p else "",
        **_activity_columns(window.components, station, event_time, spectrogram.window_s),
    }
    if cfg.storm_fraction:
        row["storm_depression_nT"] = f"{storm['depression_nT']:.1f}" if storm else ""
    return _Sample(name, event_time, window, row)


def _generate_dataset(root: Path, cfg: GeneratorConfig, spectrogram: SpectrogramConfig, workers: int) -> Path:
    import csv
    import multiprocessing
    import os
    import shutil
    import tempfile
    from concurrent.futures import Future, ProcessPoolExecutor

    from core.io import atomic_write_json
    from geomag.dataset import ClassMappings

    if (root / "metadata.csv").exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    # "spawn": the parent may already run TensorFlow's thread pools, which must not be forked
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 0 else None
    try:
        (tmp / "spectrograms").mkdir()
        (tmp / "masks").mkdir()
        rng = np.random.default_rng(cfg.seed)
        labels = draw_labels(rng, cfg)
        pairs = rng.choice(len(STATIONS) * 3000, size=len(labels), replace=False)
        rows, axes_dict, pending = [], None, deque()
        drawn = progress(zip(labels, pairs), "demo data set", total=len(labels), unit="window", logger=log)
        for i, (label, pair) in enumerate(drawn):
            sample = _draw_sample(rng, cfg, spectrogram, i, label, int(pair))
            window = sample.window
            job = (str(tmp), sample.name, window.components, window.precursor, spectrogram, sample.event_time)
            if pool is None:
                pending.append(Future())
                pending[-1].set_result(_write_sample(*job))
            else:
                pending.append(pool.submit(_write_sample, *job))
            axes_dict = _drain(pending, 4 * workers, axes_dict)  # bounded memory: a few windows in flight
            rows.append(sample.row)
        axes_dict = _drain(pending, 0, axes_dict)
        axes_dict["event_time"] = None
        with open(tmp / "metadata.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        ClassMappings(list(MAGNITUDE_CLASSES), list(AZIMUTH_CLASSES)).save(tmp / "class_mappings.json")
        atomic_write_json(tmp / "axes.json", axes_dict)
        atomic_write_json(
            tmp / "generator.json",
            {"generator": cfg.as_dict(), "spectrogram": asdict(spectrogram), "hash": cfg.hash(spectrogram)},
        )
        try:
            os.rename(tmp, root)
        except OSError:
            if not (root / "metadata.csv").exists():
                raise
            log.info("another process created %s first; using it", root)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("demo data set: %d samples in %s (%d worker processes)", len(rows), root, workers)
    return root
