"""The spectrogram's axes object is right: a planted sinusoid peaks where the axes say."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError, InputDataError
from geomag.spectrogram import SpectrogramConfig, compute_spectrogram

N = 21600  # 6 h at 1 Hz


def _burst(frequency_hz: float, centre_s: int, rng) -> dict[str, np.ndarray]:
    t = np.arange(N)
    comps = {c: 0.01 * rng.standard_normal(N) for c in "HDZ"}
    envelope = np.zeros(N)
    envelope[centre_s - 1024 : centre_s + 1024] = np.hanning(2048)
    comps["Z"] = comps["Z"] + envelope * np.sin(2 * np.pi * frequency_hz * t)
    return comps


@pytest.mark.parametrize("layout, grid", [("channels", (112, 112)), ("stacked", (224, 224)), ("channels", (64, 200))])
@pytest.mark.parametrize("frequency_hz, centre_s", [(0.004, 12000), (0.0015, 5000), (0.03, 18000), (0.08, 3000)])
def test_planted_sinusoid_peaks_at_the_pixel_the_axes_name(layout, grid, frequency_hz, centre_s):
    spec = compute_spectrogram(
        _burst(frequency_hz, centre_s, np.random.default_rng(1)), SpectrogramConfig(layout=layout, grid=grid)
    )
    axes = spec.axes
    if layout == "channels":
        power = spec.log_power[..., 2]
    else:
        power = np.where(axes.row_component[:, None] == 2, spec.log_power, -np.inf)
    row, col = np.unravel_index(np.argmax(power), power.shape)
    expected_row = axes.row_of(frequency_hz, "Z")
    expected_col = axes.column_of(N - centre_s)  # the burst's centre, in seconds before the event
    assert abs(row - expected_row) <= 1, (axes.row_frequency_hz[row], frequency_hz)
    assert abs(col - expected_col) <= 1, (axes.column_time_s[col], N - centre_s)
    assert spec.image.shape[:2] == axes.shape == grid


def test_axes_conventions_and_resolution():
    spec = compute_spectrogram(_burst(0.004, 12000, np.random.default_rng(0)), SpectrogramConfig())
    axes = spec.axes
    assert np.all(np.diff(axes.row_frequency_hz) < 0)  # top row = highest frequency
    assert np.all(np.diff(axes.column_time_s) < 0)  # left = earliest
    assert axes.column_time_s[0] == pytest.approx(N - 1024) and axes.column_time_s[-1] == pytest.approx(1024 + 96)
    assert axes.extra["frequency_resolution_hz"] < 0.001  # resolves the 1-10 mHz band
    assert axes.covers_band(0.001, 0.01) and axes.band_rows(0.001, 0.01).sum() > 20


def test_power_is_calibrated_psd():
    rng = np.random.default_rng(3)
    sigma = 0.5  # white noise of variance 0.25 nT^2 at 1 Hz has a one-sided PSD of 0.5 nT^2/Hz
    spec = compute_spectrogram({c: sigma * rng.standard_normal(N) for c in "HDZ"}, SpectrogramConfig(power_floor=0.0))
    assert np.mean(10**spec.log_power) == pytest.approx(2 * sigma**2, rel=0.1)


def test_too_short_segment_cannot_resolve_ulf_band():
    with pytest.raises(ConfigError, match="nperseg=256"):
        SpectrogramConfig(nperseg=256, frequency_range_hz=(0.001, 0.1)).check()


def test_wrong_window_length_and_missing_component_are_reported():
    config = SpectrogramConfig()
    with pytest.raises(InputDataError, match="expected 21600"):
        compute_spectrogram({c: np.zeros(100) for c in "HDZ"}, config, source="x.sec")
    with pytest.raises(InputDataError, match="x.sec.*component"):
        compute_spectrogram({"H": np.zeros(N)}, config, source="x.sec")
    with pytest.raises(InputDataError, match="no valid samples"):
        compute_spectrogram({c: np.full(N, np.nan) for c in "HDZ"}, config, source="x.sec")
