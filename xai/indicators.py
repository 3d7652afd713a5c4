"""Physical indicators of a spectrogram sample: band power per component, ULF polarisation ratios and spectral slope.

The indicators are computed from the grid's **log power**, never from image colours: the grid holds
``log10(PSD + power_floor)`` in nT²/Hz (:func:`geomag.spectrogram.compute_spectrogram`, ``power_floor``
from ``conf/spectrogram``), which is inverted to PSD first. A ``channels`` grid is
``(rows, cols, n_components)``; a ``stacked`` grid's scalar log power is ``(rows, cols)`` with one
panel of rows per component (``Spectrogram.log_power``; jet RGB images must be turned back into log
power first).

* **band power**: the mean PSD over the rows whose centre frequency lies in a band and all columns;
* **polarisation ratios** (Hayakawa, Kawate, Molchanov & Yumoto, 1996, "Results of ultra-low-frequency
  magnetic field measurements during the Guam earthquake of 8 August 1993", GRL):
  the amplitude ratios ``Z/H = sqrt(P_Z / P_H)`` and ``Z/G = sqrt(P_Z / P_G)`` with the horizontal
  field ``G = sqrt(H² + D²)``, so ``P_G = P_H + P_D``, from the band power in 1-10 mHz;
* **spectral slope**: the least-squares slope of ``log10 P`` against ``log10 f`` of the time-mean
  PSD per component over 2-100 mHz (-2 for a power law ``P ∝ f^-2``).

:func:`grid_log_power` recovers the log power of a model-input grid: the ``channels`` grid of raw
data *is* the log power; a ``stacked`` grid of raw data holds jet colours of the log power clipped
to ``jet_range_log10`` (``conf/spectrogram``), so the colours are inverted first (values beyond the
range stay clipped). The demo data set's ``.npy`` files hold exactly these grids. Users' image
files hold colours and their arrays values of an unknown scale, so they get no indicators (the
entry says so).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import InputDataError
from geomag.axes import SpectrogramAxes
from geomag.images import IMAGE_SUFFIXES, invert_colormap
from xai.reliance.regions import RegionConfig

log = logging.getLogger(__name__)

__all__ = [
    "POLARIZATION_BAND_HZ",
    "SLOPE_RANGE_HZ",
    "band_power",
    "component_power",
    "flat_indicators",
    "grid_log_power",
    "indicators",
    "indicators_batch",
    "IndicatorSettings",
    "batch_indicators",
    "sample_indicators",
    "polarization_ratios",
    "spectral_slope",
]

POLARIZATION_BAND_HZ = (1.0e-3, 10.0e-3)
SLOPE_RANGE_HZ = (2.0e-3, 100.0e-3)
DEFAULT_POWER_FLOOR = 1.0e-6  # conf/spectrogram/default.yaml power_floor


def _default_bands() -> dict[str, tuple[float, float]]:
    bands = {name: (low, high) for name, low, high in RegionConfig().bands()}
    return {**bands, "ULF 1-10 mHz": POLARIZATION_BAND_HZ}


def component_power(
    log_power: np.ndarray, axes: SpectrogramAxes, power_floor: float = DEFAULT_POWER_FLOOR
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per component: ``(row frequencies (n,), PSD (n, cols))`` in nT²/Hz, inverted from ``log10(PSD + floor)``."""
    values = np.asarray(log_power, dtype=np.float64)
    n_components = len(axes.components)
    if axes.layout == "stacked" and values.ndim == 3 and values.shape[2] == 1:
        values = values[..., 0]
    expected = (*axes.shape, n_components) if axes.layout == "channels" else axes.shape
    if values.shape != expected:
        hint = " (stacked images hold jet colours: pass the scalar log power)" if axes.layout == "stacked" else ""
        raise InputDataError(None, f"log power has shape {values.shape}, expected {expected}{hint}")
    if not np.isfinite(values).all():
        raise InputDataError(None, "log power contains NaN or infinite values")
    power = np.clip(10.0**values - float(power_floor), 0.0, None)
    out = {}
    for index, name in enumerate(axes.components):
        rows = axes.panel_rows(index)
        plane = power[..., index] if axes.layout == "channels" else power[rows]
        out[name] = (axes.row_frequency_hz[rows], plane)
    return out


def band_power(powers: Mapping[str, tuple[np.ndarray, np.ndarray]], low_hz: float, high_hz: float) -> dict:
    """Mean PSD per component over the rows with centre frequency in ``[low, high)``; ``None`` when not covered."""
    out: dict[str, float | None] = {}
    for name, (frequency, plane) in powers.items():
        rows = (frequency >= low_hz) & (frequency < high_hz)
        out[name] = float(plane[rows].mean()) if rows.any() else None
    return out


def polarization_ratios(band: Mapping[str, float | None]) -> dict[str, float | None]:
    """Amplitude ratios ``Z/H`` and ``Z/G`` (``G = sqrt(H² + D²)``) from band powers of H, D, Z."""
    ph, pd, pz = (band.get(c) for c in ("H", "D", "Z"))

    def ratio(numerator: float | None, denominator: float | None) -> float | None:
        if numerator is None or denominator is None or denominator <= 0:
            return None
        return float(np.sqrt(numerator / denominator))

    return {"Z/H": ratio(pz, ph), "Z/G": ratio(pz, None if ph is None or pd is None else ph + pd)}


def spectral_slope(
    frequency: np.ndarray, plane: np.ndarray, low_hz: float = SLOPE_RANGE_HZ[0], high_hz: float = SLOPE_RANGE_HZ[1]
) -> float | None:
    """Slope of ``log10`` time-mean PSD versus ``log10 f`` over ``[low, high)``; ``None`` with fewer than 3 rows."""
    rows = (frequency >= low_hz) & (frequency < high_hz)
    spectrum = plane[rows].mean(axis=1)
    keep = spectrum > 0
    if keep.sum() < 3:
        return None
    slope, _ = np.polyfit(np.log10(frequency[rows][keep]), np.log10(spectrum[keep]), 1)
    return float(slope)


def indicators(
    log_power: np.ndarray,
    axes: SpectrogramAxes,
    power_floor: float = DEFAULT_POWER_FLOOR,
    bands: Mapping[str, Sequence[float]] | None = None,
) -> dict:
    """All indicators of one sample: ``band_power`` (band -> component -> nT²/Hz), ``polarization``
    (``Z/H``, ``Z/G`` in 1-10 mHz) and ``spectral_slope`` (component -> slope over 2-100 mHz).

    ``bands``: name -> ``(low Hz, high Hz)``; default the reliance bands plus ULF 1-10 mHz.
    """
    powers = component_power(log_power, axes, power_floor)
    chosen = _default_bands() if bands is None else {str(k): (float(v[0]), float(v[1])) for k, v in bands.items()}
    missing = [c for c in ("H", "D", "Z") if c not in powers]
    polarization = (
        polarization_ratios(band_power(powers, *POLARIZATION_BAND_HZ)) if not missing else {"Z/H": None, "Z/G": None}
    )
    if missing:
        log.debug("polarisation ratios need H, D and Z; component(s) %s missing", missing)
    return {
        "band_power": {name: band_power(powers, low, high) for name, (low, high) in chosen.items()},
        "polarization": polarization,
        "spectral_slope": {name: spectral_slope(f, plane) for name, (f, plane) in powers.items()},
        "units": {"band_power": "nT^2/Hz", "polarization": "amplitude ratio", "spectral_slope": "log-log"},
    }


def indicators_batch(
    log_powers: np.ndarray, axes: SpectrogramAxes | Sequence[SpectrogramAxes], power_floor: float = DEFAULT_POWER_FLOOR
) -> list[dict]:
    """:func:`indicators` of every sample of a batch (one axes object for all, or one per sample)."""
    batch = list(log_powers)
    per_sample = list(axes) if isinstance(axes, Sequence) else [axes] * len(batch)
    if len(per_sample) != len(batch):
        raise InputDataError(None, f"{len(batch)} samples but {len(per_sample)} axes")
    return [indicators(values, sample_axes, power_floor) for values, sample_axes in zip(batch, per_sample)]


# --------------------------------------------------------------------------- model-input grids
IMAGE_REASON = (
    "image/array inputs hold colours or scaled values, not power: physical indicators need the "
    "inverted colour map and the log-power range of the colour scale"
)


@dataclass(frozen=True)
class IndicatorSettings:
    """How grid values map to power: ``power_floor`` and ``jet_range_log10`` of ``conf/spectrogram``;
    ``power_arrays``: ``.npy`` inputs hold the grids computed from raw data (the demo data set)."""

    power_floor: float = DEFAULT_POWER_FLOOR
    jet_range_log10: tuple[float, float] = (-3.0, 3.0)
    power_arrays: bool = False

    @classmethod
    def of_source(cls, source: Any) -> IndicatorSettings:
        """From a data source's spectrogram config (the defaults when it has none)."""
        config = getattr(source, "spectrogram", None)
        if config is None:
            return cls()
        floor = getattr(config, "power_floor", DEFAULT_POWER_FLOOR)
        low, high = getattr(config, "jet_range_log10", (-3.0, 3.0))
        demo = hasattr(source, "generator")  # geomag.sources.DemoDataSource writes the grids it computed
        return cls(float(floor), (float(low), float(high)), demo)


def grid_log_power(
    grid: np.ndarray, axes: SpectrogramAxes, settings: IndicatorSettings = IndicatorSettings()
) -> tuple[np.ndarray, dict]:
    """``(log10 power, {source, clipped_fraction})`` of a raw-data model-input grid (see the module
    docstring); ``clipped_fraction``: the share of cells at either end of the jet range (their power
    is only known to lie beyond it), ``None`` for a ``channels`` grid."""
    values = np.asarray(grid, dtype=np.float64)
    if axes.layout == "channels":
        return values, {"source": "grid values (log10 power)", "clipped_fraction": None}
    if values.ndim != 3 or values.shape[-1] != 3:
        raise InputDataError(None, f"stacked grid has shape {values.shape}, expected (rows, cols, 3) jet RGB")
    rgb = np.clip(np.floor(values * 255.0 + 1e-6), 0, 255).astype(np.uint8)
    centre = invert_colormap(rgb, "jet").astype(np.float64)  # (i + 0.5) / 256 of jet colour i
    index = np.clip(np.round(centre * 256.0 - 0.5), 0, 255)
    low, high = settings.jet_range_log10
    note = f"jet colours inverted to log10 power in [{low:g}, {high:g}] (values beyond are clipped)"
    clipped = float(np.mean((index == 0) | (index == 255)))
    return low + index / 255.0 * (high - low), {"source": note, "clipped_fraction": clipped}


def sample_indicators(
    grid: np.ndarray, axes: SpectrogramAxes, path: Any = None, settings: IndicatorSettings = IndicatorSettings()
) -> dict:
    """The ``indicators`` JSON entry of one model-input grid: :func:`indicators` plus ``source``, or
    ``available: false`` with the reason for image/array inputs (``path``: the sample's file)."""
    suffix = str(getattr(path, "suffix", "") or "").lower()
    if suffix in IMAGE_SUFFIXES or (suffix == ".npy" and not settings.power_arrays):
        return {"available": False, "reason": IMAGE_REASON}
    log_power, how = grid_log_power(grid, axes, settings)
    return {"available": True, **how, **indicators(log_power, axes, settings.power_floor)}


def flat_indicators(entry: Mapping) -> dict[str, float | None]:
    """One number per indicator of a :func:`sample_indicators` entry, named for sentences
    (``"H power 1-10 mHz"``, ``"Z/H"``, ``"slope H"``); empty when not available."""
    if not entry.get("available", True) or "band_power" not in entry:
        return {}
    out: dict[str, float | None] = {}
    for band, per_component in entry["band_power"].items():
        label = band.removeprefix("ULF ")
        for component, value in per_component.items():
            out[f"{component} power {label}"] = value
    out.update({name: value for name, value in entry["polarization"].items()})
    out.update({f"slope {c}": value for c, value in entry["spectral_slope"].items()})
    return out


def batch_indicators(grids: np.ndarray, axes: Sequence[SpectrogramAxes], records: Sequence[Any], source: Any) -> list:
    """Flat indicators (:func:`flat_indicators`) of every grid of a batch, for the data-set journal;
    ``records`` carry each sample's ``path``, ``source`` the spectrogram settings."""
    settings = IndicatorSettings.of_source(source)
    return [
        flat_indicators(sample_indicators(grid, item, getattr(record, "path", None), settings))
        for grid, item, record in zip(grids, axes, records)
    ]
