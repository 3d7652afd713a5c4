"""Physical indicators against synthetic series of known amplitude ratio and a known power law."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InputDataError
from geomag.axes import SpectrogramAxes
from geomag.spectrogram import SpectrogramConfig, compute_spectrogram
from xai.indicators import (
    band_power,
    component_power,
    indicators,
    indicators_batch,
    polarization_ratios,
    spectral_slope,
)

N = 21600  # 6 h at 1 Hz
AMPLITUDE = {"H": 2.0, "D": 1.0, "Z": 0.5}  # nT: Z/H = 0.25, Z/G = 0.5 / sqrt(5)


def _ulf_series(rng) -> dict[str, np.ndarray]:
    """H, D, Z with the same 1-10 mHz sinusoids (amplitude ratio AMPLITUDE) plus weak white noise."""
    t = np.arange(N)
    shape = sum(np.sin(2 * np.pi * f * t + phase) for f, phase in ((0.002, 0.3), (0.0045, 1.1), (0.0075, 2.0)))
    return {c: a * shape + 0.005 * rng.standard_normal(N) for c, a in AMPLITUDE.items()}


def _power_law(rng, exponent: float = -2.0) -> np.ndarray:
    """Gaussian noise with a PSD proportional to f**exponent (random phases, exact amplitudes)."""
    f = np.fft.rfftfreq(N, d=1.0)
    amplitude = np.zeros_like(f)
    amplitude[1:] = f[1:] ** (exponent / 2)
    spectrum = amplitude * np.exp(2j * np.pi * rng.random(f.size))
    series = np.fft.irfft(spectrum, n=N)
    return 50.0 * series / series.std()


@pytest.mark.parametrize("layout, grid", [("channels", (112, 112)), ("stacked", (150, 64))])
def test_polarization_ratios_of_known_amplitudes(layout, grid):
    spec = compute_spectrogram(_ulf_series(np.random.default_rng(2)), SpectrogramConfig(layout=layout, grid=grid))
    result = indicators(spec.log_power, spec.axes, power_floor=1e-6)
    assert result["polarization"]["Z/H"] == pytest.approx(0.25, rel=0.01)
    assert result["polarization"]["Z/G"] == pytest.approx(0.5 / np.sqrt(5.0), rel=0.01)
    ulf = result["band_power"]["ULF 1-10 mHz"]
    assert ulf["H"] / ulf["D"] == pytest.approx(4.0, rel=0.01)


@pytest.mark.parametrize("layout", ["channels", "stacked"])
def test_spectral_slope_of_an_f_minus_2_power_law(layout):
    rng = np.random.default_rng(5)
    series = {c: _power_law(rng) for c in "HDZ"}
    spec = compute_spectrogram(series, SpectrogramConfig(layout=layout, grid=(96, 64)))
    slopes = indicators(spec.log_power, spec.axes)["spectral_slope"]
    for component in "HDZ":
        assert slopes[component] == pytest.approx(-2.0, abs=0.05)


def test_log_power_is_inverted_with_the_floor():
    axes = SpectrogramAxes.regular(
        layout="channels",
        components=("H", "D", "Z"),
        n_rows=8,
        n_cols=4,
        frequency_range_hz=(0.0005, 0.1),
        frequency_scale="log",
        window_s=3600.0,
    )
    psd = np.full((8, 4, 3), 0.25)
    powers = component_power(np.log10(psd + 0.01), axes, power_floor=0.01)
    frequency, plane = powers["Z"]
    assert plane.shape == (8, 4) and np.allclose(plane, 0.25)
    assert np.array_equal(frequency, axes.row_frequency_hz)
    covered = band_power(powers, 0.001, 0.01)
    assert covered["H"] == pytest.approx(0.25)
    assert band_power(powers, 0.2, 0.3) == {"H": None, "D": None, "Z": None}  # the grid ends at 0.1 Hz


def test_ratios_and_slope_by_hand():
    assert polarization_ratios({"H": 4.0, "D": 12.0, "Z": 1.0}) == {"Z/H": 0.5, "Z/G": 0.25}
    assert polarization_ratios({"H": 0.0, "D": None, "Z": 1.0}) == {"Z/H": None, "Z/G": None}
    f = np.geomspace(1e-3, 1e-1, 20)
    plane = np.repeat((3.0 * f**-1.5)[:, None], 5, axis=1)
    assert spectral_slope(f, plane) == pytest.approx(-1.5)
    assert spectral_slope(f[:2], plane[:2]) is None


def test_bad_shapes_are_refused():
    axes = SpectrogramAxes.regular(
        layout="stacked",
        components=("H", "D", "Z"),
        n_rows=12,
        n_cols=4,
        frequency_range_hz=(0.0005, 0.1),
        frequency_scale="log",
        window_s=3600.0,
    )
    with pytest.raises(InputDataError, match="jet colours"):
        indicators(np.zeros((12, 4, 3)), axes)
    with pytest.raises(InputDataError, match="NaN"):
        indicators(np.full((12, 4), np.nan), axes)
    assert len(indicators_batch(np.zeros((2, 12, 4)), axes)) == 2
    with pytest.raises(InputDataError, match="2 samples but 1 axes"):
        indicators_batch(np.zeros((2, 12, 4)), [axes])
