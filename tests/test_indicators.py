"""Physical indicators against synthetic series of known amplitude ratio and a known power law."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from core.errors import InputDataError
from geomag.axes import SpectrogramAxes
from geomag.spectrogram import SpectrogramConfig, compute_spectrogram
from xai.indicators import (
    IMAGE_REASON,
    IndicatorSettings,
    band_power,
    component_power,
    flat_indicators,
    grid_log_power,
    indicators,
    indicators_batch,
    polarization_ratios,
    sample_indicators,
    spectral_slope,
)
from xai.trust.indicators import indicator_correlations as correlations
from xai.trust.indicators import indicator_report, spearman_ci

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


# --------------------------------------------------------------------------- model-input grids and data-set mode
def test_stacked_jet_grid_is_inverted_to_log_power():
    wide = (-8.0, 4.0)  # holds every value of this spectrogram
    config = SpectrogramConfig(layout="stacked", grid=(150, 64), jet_range_log10=wide)
    spec = compute_spectrogram(_ulf_series(np.random.default_rng(2)), config)
    log_power, how = grid_log_power(spec.image, spec.axes, IndicatorSettings(jet_range_log10=wide))
    assert "jet colours inverted" in how["source"] and how["clipped_fraction"] == 0.0
    # one jet colour step is 12 decades / 255; jet repeats a colour in its flat runs (a few steps)
    error, step = np.abs(log_power - spec.log_power), 12.0 / 255
    assert np.median(error) <= step / 2 + 1e-6 and error.max() <= 3 * step
    entry = sample_indicators(spec.image, spec.axes, None, IndicatorSettings(jet_range_log10=wide))
    assert entry["available"] and entry["polarization"]["Z/H"] == pytest.approx(0.25, rel=0.02)
    flat = flat_indicators(entry)
    assert flat["Z/H"] == entry["polarization"]["Z/H"] and flat["H power 1-10 mHz"] > flat["Z power 1-10 mHz"]
    assert set(flat) >= {"Z/G", "slope H", "D power 22-100 mHz"}
    # the default range (-3, 3) clips the quiet Z rows: the entry says how much
    narrow = compute_spectrogram(
        _ulf_series(np.random.default_rng(2)), SpectrogramConfig(layout="stacked", grid=(150, 64))
    )
    assert sample_indicators(narrow.image, narrow.axes)["clipped_fraction"] > 0.05


def test_image_inputs_get_no_indicators():
    from pathlib import Path

    axes = SpectrogramAxes.regular(
        layout="channels",
        components=("H", "D", "Z"),
        n_rows=8,
        n_cols=4,
        frequency_range_hz=(0.0005, 0.1),
        frequency_scale="log",
        window_s=3600.0,
    )
    entry = sample_indicators(np.zeros((8, 4, 3)), axes, Path("sample.png"))
    assert entry == {"available": False, "reason": IMAGE_REASON} and "inverted colour map" in IMAGE_REASON
    assert sample_indicators(np.zeros((8, 4, 3)), axes, Path("users.npy"))["available"] is False
    demo = IndicatorSettings(power_arrays=True)
    assert sample_indicators(np.zeros((8, 4, 3)), axes, Path("demo.npy"), demo)["available"] is True
    assert flat_indicators(entry) == {}
    assert correlations([{"indicators": {}, "heads": {}}], {"magnitude": ["A"]})["available"] is False


def test_spearman_with_bootstrap_interval_by_hand():
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert spearman_ci(x, [10, 20, 30, 40, 50, 60])["rho"] == pytest.approx(1.0)
    assert spearman_ci(x, [6, 5, 4, 3, 2, 1])["rho"] == pytest.approx(-1.0)
    # d = rank differences (0, 0, 1, -1, 0, 0): rho = 1 - 6 * 2 / (6 * 35)
    value = spearman_ci(x, [1, 2, 4, 3, 5, 6], n_resamples=200)
    assert value["rho"] == pytest.approx(1 - 12 / 210) and value["n"] == 6
    assert -1.0 <= value["low"] <= value["rho"] <= value["high"] <= 1.0
    assert spearman_ci(x[:4], x[:4])["rho"] is None  # too few pairs
    assert spearman_ci(x, [None, 2, 3, 4, 5, 6])["n"] == 5
    assert spearman_ci(x, [1.0] * 6)["rho"] is None  # a constant score has no ranks


def test_correlations_name_the_indicator_the_score_follows():
    rng = np.random.default_rng(0)
    n = 40
    h_power = rng.uniform(1, 10, n)
    z_over_h = rng.uniform(0.1, 1.0, n)
    large = 1 / (1 + np.exp(-(h_power - 5)))  # the Large probability follows H power only
    journal = [
        {
            "indicators": {"H power 1-10 mHz": h_power[i], "Z/H": z_over_h[i]},
            "heads": {"magnitude": {"probabilities": [1 - large[i], large[i]]}},
        }
        for i in range(n)
    ]
    result = correlations(journal, {"magnitude": ["Normal", "Large"]}, n_resamples=300)
    by_class = result["heads"]["magnitude"]["by_class"]
    assert by_class["Large"]["H power 1-10 mHz"]["rho"] == pytest.approx(1.0)
    assert by_class["Normal"]["H power 1-10 mHz"]["rho"] == pytest.approx(-1.0)
    assert by_class["Large"]["Z/H"]["rho"] == pytest.approx(spearmanr(z_over_h, large).statistic)
    sentence = result["heads"]["magnitude"]["sentence"]
    expected = (
        "The Normal score (magnitude) follows H power 1-10 mHz inversely (ρ = -1.00",
        "The Large score (magnitude) ",
    )
    assert sentence.startswith(expected[0]) or sentence.startswith(expected[1] + "follows H power 1-10 mHz (ρ = +1.00")
    assert "more than Z/H (ρ = " in sentence
    report = indicator_report(result)
    assert "## Physical indicators" in report and "| H power 1-10 mHz | -1.00" in report


@pytest.mark.slow
def test_dataset_mode_journals_indicators_and_correlates_them(tmp_path):
    from geomag.sources import DemoDataSource
    from models.loading import bundle_from_model
    from tests.conftest import tiny_model
    from xai.dataset import DatasetOptions, explain_dataset, read_journal
    from xai.explainers.gradcam import GradCAM

    source = DemoDataSource(tmp_path / "cache", {"n_samples": 12}, SpectrogramConfig(grid=(32, 32)))
    mappings = source.class_mappings
    bundle = bundle_from_model(
        tiny_model(len(mappings.magnitude_classes), len(mappings.azimuth_classes)), mappings, name="tiny"
    )
    options = DatasetOptions(
        batch_size=6, faithfulness_samples=0, randomisation_samples=0, bootstrap_resamples=50, localisation=False
    )
    records = source.records()
    results = explain_dataset(bundle, {"gradcam": GradCAM(bundle)}, source, records, tmp_path / "run", options)
    journal = read_journal(tmp_path / "run")
    first = journal[0]["indicators"]
    grid = source.load(records[0])
    assert records[0].path.suffix == ".npy" and IndicatorSettings.of_source(source).power_arrays
    expected = flat_indicators(sample_indicators(grid.image, grid.axes))
    assert first == pytest.approx(expected) and "Z/H" in first
    section = results["indicators"]
    assert section["available"] and section["samples"] == 12
    for head in ("magnitude", "azimuth"):
        large = section["heads"][head]["by_class"][bundle.classes(head)[0]]["Z/H"]
        probabilities = [e["heads"][head]["probabilities"][0] for e in journal]
        assert large["rho"] == pytest.approx(spearmanr([e["indicators"]["Z/H"] for e in journal], probabilities)[0])
        assert section["heads"][head]["sentence"]
    assert "## Physical indicators and class scores" in (tmp_path / "run" / "report.md").read_text()
