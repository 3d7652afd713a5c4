"""Pre-processing: gap filling, detrending, pre-event windows and the quality report."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from core.errors import ConfigError, InputDataError
from geomag.bmkg import BLOCK_BYTES, HEADER_BYTES, INVALID_ABS_NT, decode_int24, read_bmkg_frg604
from geomag.preprocess import (
    DEFAULT_BANDS,
    PreEventWindow,
    QualityThresholds,
    as_datetime64,
    cut_window,
    detrend,
    fill_gaps,
    quality_report,
)
from geomag.timeseries import GeomagSeries

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LUT_DAY1 = SHARED / "data" / "bmkg" / "S230101.LUT.gz"
LUT_DAY2 = SHARED / "data" / "bmkg" / "S230102.LUT.gz"
DAY0 = np.datetime64("2023-01-01T00:00:00", "ms")


def _series(components: dict[str, np.ndarray], interval_s: float = 1.0, start=DAY0) -> GeomagSeries:
    n = len(next(iter(components.values())))
    step = np.timedelta64(int(interval_s * 1000), "ms")
    return GeomagSeries(
        times=start + np.arange(n) * step,
        components={k: np.asarray(v, dtype=float) for k, v in components.items()},
        station="TST",
        sampling_interval_s=interval_s,
        source="synthetic.sec",
    )


def _red_noise(n: int, seed: int = 0, scale: float = 0.05) -> np.ndarray:
    """Random walk: a PSD falling as f^-2, like quiet-day ULF background."""
    return np.cumsum(np.random.default_rng(seed).normal(0.0, scale, n))


def _shared_day(path: Path) -> GeomagSeries:
    if not path.exists():
        pytest.skip(f"{path} not available (../shared/data is absent)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_bmkg_frg604(path)


# ------------------------------------------------------------------ fill_gaps
def test_fill_gaps_interpolates_short_runs_only():
    n = 1000
    ramp = np.arange(n, dtype=float) * 0.5 + 10.0
    values = ramp.copy()
    values[:3] = np.nan  # touches the start: cannot interpolate
    values[100] = np.nan  # 1 s
    values[200:260] = np.nan  # exactly 60 s
    values[400:461] = np.nan  # 61 s: too long
    values[-2:] = np.nan  # touches the end
    series = _series({"H": values, "Z": ramp})
    filled, unfilled = fill_gaps(series, max_interpolate_s=60)
    h = filled["H"]
    np.testing.assert_allclose(h[100], ramp[100])
    np.testing.assert_allclose(h[200:260], ramp[200:260])
    assert np.isnan(h[400:461]).all() and np.isnan(h[:3]).all() and np.isnan(h[-2:]).all()
    expected = np.zeros(n, dtype=bool)
    expected[:3] = expected[400:461] = expected[-2:] = True
    np.testing.assert_array_equal(unfilled["H"], expected)
    assert not unfilled["Z"].any()
    assert filled.metadata["gap_fill"]["counts"]["H"] == {"interpolated": 61, "unfilled": 66}
    assert np.isnan(series["H"][100]), "input must not be modified"


def test_fill_gaps_respects_the_sampling_interval():
    values = np.arange(100, dtype=float)
    values[50:52] = np.nan  # 2 samples of 60 s = 120 s
    series = _series({"H": values}, interval_s=60.0)
    assert np.isnan(fill_gaps(series, 60)[0]["H"][50:52]).all()
    np.testing.assert_allclose(fill_gaps(series, 120)[0]["H"][50:52], [50.0, 51.0])
    with pytest.raises(ConfigError):
        fill_gaps(series, -1)


# ------------------------------------------------------------------ detrend
def test_detrend_matches_scipy_and_handles_nan():
    t = np.arange(5000, dtype=float)
    wave = np.sin(2 * np.pi * t / 300.0)
    values = 3.0 + 0.01 * t + wave
    series = _series({"H": values})
    linear = detrend(series, "linear")
    np.testing.assert_allclose(linear["H"], signal.detrend(values, type="linear"))
    np.testing.assert_allclose(detrend(series, "constant")["H"], values - values.mean())
    np.testing.assert_array_equal(detrend(series, "none")["H"], values)
    gappy = values.copy()
    gappy[1000:1500] = np.nan
    out = detrend(_series({"H": gappy}), "linear")["H"]
    assert np.isnan(out[1000:1500]).all()
    # the trend is the least-squares line through the finite samples at their true positions
    x = np.flatnonzero(np.isfinite(gappy))
    coef = np.polyfit(x, gappy[x], 1)
    np.testing.assert_allclose(out[x], gappy[x] - np.polyval(coef, x), atol=1e-9)
    assert coef[0] == pytest.approx(0.01, abs=1e-3)
    assert np.nanmax(np.abs(out - wave)) < 0.15
    with pytest.raises(ConfigError):
        detrend(series, "quadratic")


# ------------------------------------------------------------------ cut_window
def test_cut_window_length_alignment_and_values():
    n = 86400
    series = _series({"H": np.arange(n, dtype=float)})
    window = cut_window(series, "2023-01-01T12:00:00Z", window_hours=6.0)
    assert isinstance(window, PreEventWindow)
    assert len(window.series) == 21600 == window.n_samples
    assert window.start_time == np.datetime64("2023-01-01T06:00:00", "ms")
    assert window.series.times[-1] == np.datetime64("2023-01-01T11:59:59", "ms")
    assert window.window_s == 21600.0
    assert window.series["H"][0] == 6 * 3600 and window.series["H"][-1] == 12 * 3600 - 1
    assert window.seconds_before_event[0] == 21600.0 and window.seconds_before_event[-1] == 1.0
    # an event between samples: the last sample is the last one before it
    window = cut_window(series, np.datetime64("2023-01-01T12:00:00.400"), window_hours=1.0)
    assert window.series.times[-1] == np.datetime64("2023-01-01T12:00:00", "ms")
    assert len(window.series) == 3600
    # time zones are converted to UTC
    window = cut_window(series, "2023-01-01T20:00:00+08:00", window_hours=1.0)
    assert window.series.times[-1] == np.datetime64("2023-01-01T11:59:59", "ms")


def test_cut_window_pads_uncovered_samples_with_nan():
    series = _series({"H": np.ones(3600)}, start=np.datetime64("2023-01-01T05:00:00", "ms"))
    window = cut_window(series, "2023-01-01T07:00:00", window_hours=3.0)
    h = window.series["H"]
    assert h.shape == (10800,)
    assert np.isnan(h[:3600]).all() and (h[3600:7200] == 1).all() and np.isnan(h[7200:]).all()
    assert window.series.metadata["window"]["file_coverage"] == pytest.approx(1 / 3)


def test_cut_window_errors():
    series = _series({"H": np.ones(3600)})
    with pytest.raises(InputDataError) as excinfo:
        cut_window(series, "2023-01-03T00:00:00", window_hours=6.0)
    assert "synthetic.sec" in str(excinfo.value) and "overlap" in str(excinfo.value)
    nan_series = _series({"H": np.full(3600, np.nan)})
    with pytest.raises(InputDataError, match="no valid sample"):
        cut_window(nan_series, "2023-01-01T01:00:00", window_hours=1.0)
    with pytest.raises(ConfigError):
        cut_window(series, "not a date", window_hours=1.0)
    with pytest.raises(ConfigError):
        cut_window(series, "2023-01-01T01:00:00", window_hours=-1)
    minute = _series({"H": np.ones(600)}, interval_s=60.0)
    with pytest.raises(ConfigError, match="whole number"):
        cut_window(minute, "2023-01-01T05:00:00", window_hours=0.01)  # 36 s
    assert as_datetime64("2023-01-01 00:00:01") == np.datetime64("2023-01-01T00:00:01", "ms")


# ------------------------------------------------------------------ quality report
def test_quality_report_red_noise_passes_and_is_json():
    series = _series({"H": 38000 + _red_noise(21600, 1), "D": _red_noise(21600, 2)})
    report = quality_report(series)
    assert report["warnings"] == [] and report["ok"]
    assert report["nperseg"] >= 2048
    for name in ("H", "D"):
        entry = report["components"][name]
        assert set(entry["band_rms_nT"]) == set(DEFAULT_BANDS)
        assert -2.5 < entry["spectral_slope"] < -1.5
        assert entry["missing_fraction"] == 0.0
    json.dumps(report)


def test_quality_report_band_rms_of_a_sine():
    t = np.arange(21600, dtype=float)
    amplitude = 2.0
    series = _series({"H": amplitude * np.sin(2 * np.pi * 0.004 * t) + _red_noise(21600, 3, 0.001)})
    report = quality_report(series, bands={"Pc5": (1.7e-3, 6.7e-3), "Pc3": (0.022, 0.1)})
    assert report["components"]["H"]["band_rms_nT"]["Pc5"] == pytest.approx(amplitude / np.sqrt(2), rel=0.05)
    assert report["components"]["H"]["band_rms_nT"]["Pc3"] < 0.05


def test_quality_report_flags_implausible_values():
    rng = np.random.default_rng(0)
    white = rng.normal(0, 300.0, 21600)  # flat spectrum, hundreds of nT
    gappy = 38000 + _red_noise(21600, 4)
    gappy[: 21600 // 3] = np.nan
    series = _series({"H": white, "Z": gappy, "F": np.full(21600, 90000.0)})
    report = quality_report(series)
    text = " | ".join(report["warnings"])
    assert not report["ok"]
    assert "H: hourly std" in text and "H: spectral slope" in text and "H: Pc3 RMS" in text
    assert "Z: 33.3 % of samples missing" in text
    assert "F: mean 90000 nT" in text and "F: constant signal" in text
    assert report["components"]["Z"]["warnings"] == ["Z: 33.3 % of samples missing (> 20 %)"]
    relaxed = quality_report(series, thresholds=QualityThresholds(max_missing_fraction=0.5))
    assert relaxed["components"]["Z"]["warnings"] == []


def test_quality_report_short_series_and_bad_bands():
    series = _series({"H": _red_noise(1000)})
    report = quality_report(series)
    assert report["nperseg"] is None and report["notes"]
    assert report["components"]["H"]["band_rms_nT"]["Pc5"] is None
    assert report["components"]["H"]["std_nT"] > 0
    with pytest.raises(ConfigError):
        quality_report(series, bands={"bad": (0.01, 0.001)})
    minute = _series({"H": _red_noise(4096)}, interval_s=60.0)
    report = quality_report(minute)
    assert report["components"]["H"]["band_rms_nT"]["Pc3"] is None  # above Nyquist (8.3 mHz)
    assert any("Pc3" in note for note in report["notes"])


@pytest.mark.shared
@pytest.mark.parametrize("path", [LUT_DAY1, LUT_DAY2])
def test_quality_report_real_lut_days_pass(path):
    series = _shared_day(path)
    report = quality_report(series)
    assert report["warnings"] == [], report["warnings"]
    h = report["components"]["H"]
    # README: LUT band RMS Pc5 0.13-0.30, Pc4 0.05-0.16, Pc3 0.03-0.08, 1-10 mHz 0.17-0.42 nT
    assert 0.10 < h["band_rms_nT"]["Pc5"] < 0.35
    assert 0.04 < h["band_rms_nT"]["Pc4"] < 0.2
    assert 0.02 < h["band_rms_nT"]["Pc3"] < 0.1
    assert 0.15 < h["band_rms_nT"]["ULF_1_10mHz"] < 0.5
    assert -3.0 <= h["spectral_slope"] <= -2.0
    # the 6-hour pre-event window path: cut, fill, detrend, report
    window = cut_window(series, series.times[0] + np.timedelta64(18, "h"), window_hours=6.0)
    filled, unfilled = fill_gaps(window.series, max_interpolate_s=60)
    window_report = quality_report(detrend(filled, "linear"))
    assert window_report["warnings"] == [], window_report["warnings"]


@pytest.mark.shared
def test_quality_report_catches_wrong_byte_order():
    if not LUT_DAY1.exists():
        pytest.skip(f"{LUT_DAY1} not available (../shared/data is absent)")
    raw = gzip.decompress(LUT_DAY1.read_bytes())
    blocks = np.frombuffer(raw[: 144 * BLOCK_BYTES], dtype=np.uint8).reshape(144, BLOCK_BYTES)
    records = blocks[:, HEADER_BYTES:].reshape(144, 600, 17)
    components = {}
    for name, cols in (("H", slice(0, 3)), ("D", slice(3, 6)), ("Z", slice(6, 9))):
        values = decode_int24(records[..., cols], byteorder="big").ravel() * 0.01
        values[np.abs(values) > INVALID_ABS_NT] = np.nan
        components[name] = values
    misparsed = _series(components)
    report = quality_report(misparsed)
    assert not report["ok"]
    assert report["components"]["H"]["max_hourly_std_nT"] > 1000
    assert any(w.startswith("H: hourly std") for w in report["warnings"])
    assert any("steps of a multiple of 655.36 nT" in w for w in report["warnings"])
    assert report["activity_notes"] == []  # a scrambled layout is never taken for a storm


# ------------------------------------------------------------------ format problem or disturbance?
def test_large_smooth_variation_is_an_activity_note_not_a_format_warning():
    t = np.arange(21600, dtype=float)
    storm = 38000 + 450.0 * np.sin(2 * np.pi * t / 7200.0) + _red_noise(21600, 5)  # hourly std ~140 nT
    report = quality_report(_series({"H": storm}))
    assert report["warnings"] == [] and report["ok"]
    (note,) = report["activity_notes"]
    assert note.startswith("H: hourly std") and "not a file-format problem" in note and "byte" not in note
    assert report["components"]["H"]["worst_hour_lag1_autocorrelation"] > 0.99
    beyond = quality_report(_series({"H": 38000 + 8000.0 * np.sin(2 * np.pi * t / 7200.0)}))
    assert any("wrong byte layout" in w for w in beyond["warnings"])  # > 2,000 nT within an hour: not a field


def test_byte_order_signatures_are_format_warnings():
    quiet = np.round((38000 + _red_noise(21600, 6)) / 0.01) * 0.01  # 0.01-nT counts, as the instruments record
    corrupted = quiet.copy()
    corrupted[[100, 5000, 9000]] += 2**16 * 0.01  # three samples off by 2^16 counts: six such steps
    report = quality_report(_series({"H": corrupted}))
    assert any(w.startswith("H: 6 steps of a multiple of 655.36 nT") for w in report["warnings"])
    wrapped = quiet.copy()
    wrapped[7000:] -= 2**24 * 0.01  # a lost sign extension of 24-bit counts
    text = " | ".join(quality_report(_series({"H": wrapped}))["warnings"])
    assert "samples beyond +-80,000 nT" in text
    assert quality_report(_series({"H": quiet}))["warnings"] == []
    angle = GeomagSeries(
        times=DAY0 + np.arange(21600) * np.timedelta64(1, "s"),
        components={"D": 100000.0 + _red_noise(21600, 7)},
        station="TST",
        metadata={"units": {"D": "minutes of arc"}},
    )
    assert not any("80,000" in w for w in quality_report(angle)["warnings"])  # angles are not field values


@pytest.mark.shared
@pytest.mark.parametrize("event", ["2024-05-10T23:59:00", "2024-05-11T06:00:00", "2024-05-11T12:00:00"])
def test_real_storm_is_never_called_a_byte_layout_problem(shared_dir, event):
    """The 10-11 May 2024 storm at WIC: E swings by an hourly std of 127 nT, smoothly (a disturbance)."""
    from geomag.readers import read_timeseries

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        series = read_timeseries(shared_dir / "data/imagcdf/wic_2024-05-09_4days_1s.cdf")
    window = cut_window(series, event, window_hours=6.0)
    filled, _ = fill_gaps(window.series, max_interpolate_s=60)
    report = quality_report(filled)
    assert not any("byte" in w or "units" in w for w in report["warnings"]), report["warnings"]
    if event.startswith("2024-05-10"):
        assert report["ok"]
        assert report["activity_notes"][0].startswith("E: hourly std 127.1 nT > 100 nT, smooth")
    whole = quality_report(series)
    assert not any("byte" in w for w in whole["warnings"]) and whole["activity_notes"]
