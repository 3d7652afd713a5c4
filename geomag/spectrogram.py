"""Per-component log-power STFT spectrograms on a physical grid (scipy.signal.ShortTimeFFT).

The STFT uses only slices that lie entirely inside the window (no zero-padded edge slices), so
the grid's first and last columns sit ``nperseg/2`` samples inside the window and the axes say so.
Each grid row averages the PSD bins inside the row's frequency cell (cell edges are geometric
midpoints on a log axis); rows narrower than a bin interpolate linearly in frequency.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import ShortTimeFFT, get_window

from core.errors import ConfigError, InputDataError
from geomag.axes import SpectrogramAxes, _panel_frequencies

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpectrogramConfig:
    """STFT and grid settings (mirrors ``conf/spectrogram/*.yaml``)."""

    window_hours: float = 6.0
    sampling_interval_s: float = 1.0
    nperseg: int = 2048
    hop: int = 128
    window_function: str = "hann"
    frequency_range_hz: tuple[float, float] = (0.0005, 0.1)
    frequency_scale: str = "log"
    layout: str = "channels"
    components: tuple[str, ...] = ("H", "D", "Z")
    grid: tuple[int, int] = (112, 112)
    power_floor: float = 1e-6
    jet_range_log10: tuple[float, float] = (-3.0, 3.0)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg) -> "SpectrogramConfig":
        """Build from a Hydra/OmegaConf node or a plain dict (unknown keys go to ``extra``)."""
        data = dict(cfg)
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {k: data.pop(k) for k in list(data) if k in known}
        for key in ("frequency_range_hz", "components", "grid", "jet_range_log10"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs, extra=data)

    @property
    def window_s(self) -> float:
        return self.window_hours * 3600.0

    def check(self) -> None:
        """Fail early when the STFT cannot resolve the configured lowest frequency."""
        resolution = 1.0 / (self.nperseg * self.sampling_interval_s)
        fmin, fmax = self.frequency_range_hz
        nyquist = 0.5 / self.sampling_interval_s
        if not 0 < fmin < fmax <= nyquist:
            raise ConfigError(
                f"spectrogram.frequency_range_hz={list(self.frequency_range_hz)} must satisfy "
                f"0 < fmin < fmax <= Nyquist ({nyquist} Hz)"
            )
        if resolution > 2 * fmin:
            raise ConfigError(
                f"spectrogram.nperseg={self.nperseg} gives {resolution * 1e3:.2f} mHz bins, too coarse for "
                f"fmin={fmin * 1e3:.2f} mHz; use nperseg >= {int(np.ceil(0.5 / fmin / self.sampling_interval_s))}"
            )
        if self.nperseg * self.sampling_interval_s >= self.window_s:
            raise ConfigError(f"spectrogram.nperseg={self.nperseg} is longer than the {self.window_hours} h window")


@dataclass
class Spectrogram:
    """A model-ready spectrogram image with its physical axes.

    ``image``: float32 ``(rows, cols, C)`` — log10 power per component (channels layout) or
    jet RGB in [0, 1] (stacked layout). ``log_power``: float32 ``(rows, cols, n_components)``
    for channels, ``(rows, cols)`` for stacked (each row in its component's panel).
    """

    image: np.ndarray
    axes: SpectrogramAxes
    log_power: np.ndarray
    native_frequencies_hz: np.ndarray
    native_times_before_s: np.ndarray


def _stft(config: SpectrogramConfig, n_samples: int) -> tuple[ShortTimeFFT, int, int]:
    window = get_window(config.window_function, config.nperseg, fftbins=True)
    sft = ShortTimeFFT(
        window, hop=config.hop, fs=1.0 / config.sampling_interval_s, fft_mode="onesided2X", scale_to="psd"
    )
    p0 = sft.lower_border_end[1]
    p1 = sft.upper_border_begin(n_samples)[1]
    if p1 <= p0:
        raise ConfigError(f"window of {n_samples} samples holds no full STFT slice of {config.nperseg}")
    return sft, p0, p1


def _cell_edges(centres: np.ndarray, scale: str) -> np.ndarray:
    """Edges of cells around ascending centres (geometric midpoints on log axes)."""
    values = np.log(centres) if scale == "log" else centres
    mid = 0.5 * (values[1:] + values[:-1])
    edges = np.concatenate([[2 * values[0] - mid[0]], mid, [2 * values[-1] - mid[-1]]])
    return np.exp(edges) if scale == "log" else edges


def _rows_from_bins(psd: np.ndarray, freqs: np.ndarray, row_freqs_desc: np.ndarray, scale: str) -> np.ndarray:
    """Resample PSD ``(n_f, n_t)`` onto descending row frequencies: cell mean, else interpolation."""
    row_freqs = row_freqs_desc[::-1]
    edges = _cell_edges(row_freqs, scale)
    out = np.empty((row_freqs.size, psd.shape[1]), dtype=np.float64)
    left = np.searchsorted(freqs, edges[:-1], side="left")
    right = np.searchsorted(freqs, edges[1:], side="left")
    for i, (lo, hi) in enumerate(zip(left, right)):
        if hi > lo:
            out[i] = psd[lo:hi].mean(axis=0)
        else:
            j = int(np.clip(np.searchsorted(freqs, row_freqs[i]), 1, freqs.size - 1))
            w = (row_freqs[i] - freqs[j - 1]) / (freqs[j] - freqs[j - 1])
            out[i] = (1 - w) * psd[j - 1] + w * psd[j]
    return out[::-1]


def _columns_to_grid(values: np.ndarray, src_times: np.ndarray, dst_times: np.ndarray) -> np.ndarray:
    """Linear interpolation along time of ``(rows, n_src)`` onto ``dst_times`` (ascending src)."""
    out = np.empty((values.shape[0], dst_times.size), dtype=np.float64)
    for i in range(values.shape[0]):
        out[i] = np.interp(dst_times, src_times, values[i])
    return out


def compute_spectrogram(
    components: dict[str, np.ndarray] | Sequence[np.ndarray],
    config: SpectrogramConfig,
    *,
    event_time: str | None = None,
    source: str | None = None,
) -> Spectrogram:
    """Log-power spectrogram of a pre-event window.

    ``components`` maps names to equally long arrays (nT, already gap-filled and detrended)
    that end at the event time. NaNs left by long gaps are set to zero (the detrended mean)
    and the affected fraction is recorded in ``axes.extra["missing_fraction"]``.
    """
    config.check()
    if not isinstance(components, dict):
        components = dict(zip(config.components, components))
    missing = [c for c in config.components if c not in components]
    if missing:
        raise InputDataError(source, f"component(s) {missing} missing; have {sorted(components)}")
    n = len(np.asarray(components[config.components[0]]))
    expected = int(round(config.window_s / config.sampling_interval_s))
    if n != expected:
        raise InputDataError(source, f"window has {n} samples, expected {expected} ({config.window_hours} h)")
    sft, p0, p1 = _stft(config, n)
    freqs = sft.f
    start_times = sft.t(n, p0, p1)  # slice centres, s after the window start
    native_before = config.window_s - start_times  # descending
    rows, cols = config.grid
    column_before = np.linspace(native_before[0], native_before[-1], cols)
    fmin, fmax = config.frequency_range_hz
    panel_sizes = (
        [rows] * len(config.components)
        if config.layout == "channels"
        else [len(p) for p in np.array_split(np.arange(rows), len(config.components))]
    )
    log_panels, missing_fraction = [], {}
    for name, panel_rows in zip(config.components, panel_sizes):
        x = np.asarray(components[name], dtype=np.float64)
        bad = ~np.isfinite(x)
        missing_fraction[name] = float(bad.mean())
        if bad.all():
            raise InputDataError(source, f"component {name} has no valid samples in the window")
        x = np.where(bad, 0.0, x)
        psd = sft.spectrogram(x, p0=p0, p1=p1)
        row_freqs = _panel_frequencies(panel_rows, fmin, fmax, config.frequency_scale)
        on_rows = _rows_from_bins(psd, freqs, row_freqs, config.frequency_scale)
        on_grid = _columns_to_grid(on_rows, start_times, config.window_s - column_before)
        log_panels.append(np.log10(on_grid + config.power_floor))
    axes = SpectrogramAxes.regular(
        layout=config.layout,
        components=config.components,
        n_rows=rows,
        n_cols=cols,
        frequency_range_hz=config.frequency_range_hz,
        frequency_scale=config.frequency_scale,
        window_s=config.window_s,
        event_time=event_time,
    )
    extra = {"missing_fraction": missing_fraction, "nperseg": config.nperseg, "hop": config.hop}
    extra.update(frequency_resolution_hz=float(freqs[1] - freqs[0]), source=source)
    axes = SpectrogramAxes(**{**axes.__dict__, "column_time_s": column_before, "extra": extra})
    if config.layout == "channels":
        log_power = np.stack(log_panels, axis=-1).astype(np.float32)
        image = log_power
    else:
        log_power = np.concatenate(log_panels, axis=0).astype(np.float32)
        image = jet_rgb(log_power, config.jet_range_log10)
    if not np.all(np.isfinite(image)):
        raise InputDataError(source, "spectrogram contains non-finite values")
    return Spectrogram(
        image=image.astype(np.float32),
        axes=axes,
        log_power=log_power,
        native_frequencies_hz=freqs,
        native_times_before_s=native_before,
    )


def jet_rgb(scalar: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Map a scalar image to matplotlib's ``jet`` RGB in [0, 1] (the users' stacked layout)."""
    from matplotlib import colormaps

    lo, hi = value_range
    scaled = np.clip((scalar - lo) / (hi - lo), 0.0, 1.0)
    lut = colormaps["jet"].resampled(256)(np.linspace(0, 1, 256))[:, :3]
    return lut[np.round(scaled * 255).astype(np.int64)].astype(np.float32)
