"""Attention metrics on hand-made heatmaps with known mass in known bands (tolerance 1e-6)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.errors import InputDataError
from geomag.axes import SpectrogramAxes
from xai.attention import (
    BANDS,
    CHANNELS_NOT_AVAILABLE,
    attention_summary,
    band_shares,
    component_shares,
    concentration,
    native_resolution,
    peak_and_centroid,
    temporal_profile,
)

TOL = 1e-6
HOUR = 3600.0


def _five_row_axes() -> SpectrogramAxes:
    """Channels layout, one row per band: Pc3 50 mHz, Pc4 15, ULF+Pc5 5, ULF 1.5, rest 0.7 mHz."""
    return SpectrogramAxes(
        layout="channels",
        components=("H", "D", "Z"),
        row_frequency_hz=np.array([0.05, 0.015, 0.005, 0.0015, 0.0007]),
        row_component=np.full(5, -1),
        column_time_s=np.array([3.5, 2.5, 1.5, 0.5]) * HOUR,
        frequency_range_hz=(0.0005, 0.07),
        frequency_scale="log",
        window_s=4 * HOUR,
    )


def _five_row_map() -> np.ndarray:
    heatmap = np.zeros((5, 4))
    heatmap[0, :] = 1.0  # Pc3: 4
    heatmap[2, 0] = 4.0  # ULF and Pc5: 4
    heatmap[3, 3] = 2.0  # ULF only: 2
    heatmap[4, 2] = 2.0  # rest: 2
    return heatmap  # total 12


def test_band_mass_area_and_enrichment_by_hand():
    bands = band_shares(_five_row_map(), _five_row_axes())
    expected = {  # name: (mass share, area share)
        "ULF": (6 / 12, 2 / 5),
        "Pc5": (4 / 12, 1 / 5),
        "Pc4": (0.0, 1 / 5),
        "Pc3": (4 / 12, 1 / 5),
        "rest": (2 / 12, 1 / 5),
    }
    assert set(bands) == set(expected)
    for name, (mass, area) in expected.items():
        assert bands[name]["covered"] is True
        assert bands[name]["mass_share"] == pytest.approx(mass, abs=TOL)
        assert bands[name]["area_share"] == pytest.approx(area, abs=TOL)
        assert bands[name]["enrichment"] == pytest.approx(mass / area, abs=TOL)
    assert bands["ULF"]["frequency_range_hz"] == [1e-3, 10e-3]
    assert "by_component" not in bands["ULF"]  # channels layout without per-channel maps


def test_band_not_covered_has_no_numbers():
    axes = SpectrogramAxes.regular(
        layout="channels",
        components=("H", "D", "Z"),
        n_rows=16,
        n_cols=8,
        frequency_range_hz=(0.0005, 0.005),
        frequency_scale="log",
        window_s=6 * HOUR,
    )
    heatmap = np.random.default_rng(0).random(axes.shape)
    bands = band_shares(heatmap, axes)
    for name in ("Pc3", "Pc4"):
        assert bands[name] == {
            "covered": False,
            "frequency_range_hz": list(next([b.fmin_hz, b.fmax_hz] for b in BANDS if b.name == name)),
            "label": bands[name]["label"],
        }
        assert "mass_share" not in bands[name] and "enrichment" not in bands[name]
    ulf_rows = (axes.row_frequency_hz >= 1e-3) & (axes.row_frequency_hz < 1e-2)
    assert bands["ULF"]["covered"] is True
    assert bands["ULF"]["mass_share"] == pytest.approx(heatmap[ulf_rows].sum() / heatmap.sum(), abs=TOL)
    assert bands["ULF"]["area_share"] == pytest.approx(ulf_rows.mean(), abs=TOL)
    assert bands["rest"]["mass_share"] == pytest.approx(heatmap[~ulf_rows].sum() / heatmap.sum(), abs=TOL)


def test_stacked_component_shares_and_band_by_component():
    axes = SpectrogramAxes.regular(
        layout="stacked",
        components=("H", "D", "Z"),
        n_rows=6,
        n_cols=4,
        frequency_range_hz=(0.001, 0.1),
        frequency_scale="log",
        window_s=4 * HOUR,
    )
    # panels: rows 0-1 H, 2-3 D, 4-5 Z; within a panel row 0 = 31.6 mHz (Pc3), row 1 = 3.16 mHz (ULF)
    heatmap = np.zeros(axes.shape)
    heatmap[2, :] = 0.5  # D, Pc3: 2
    heatmap[3, 1] = 1.0  # D, ULF: 1
    heatmap[5, 0] = 1.0  # Z, ULF: 1
    shares = component_shares(heatmap, axes)
    assert shares == pytest.approx({"H": 0.0, "D": 0.75, "Z": 0.25}, abs=TOL)
    bands = band_shares(heatmap, axes)
    assert bands["ULF"]["mass_share"] == pytest.approx(0.5, abs=TOL)
    assert bands["ULF"]["area_share"] == pytest.approx(0.5, abs=TOL)
    assert bands["ULF"]["by_component"] == pytest.approx({"H": 0.0, "D": 0.25, "Z": 0.25}, abs=TOL)
    assert bands["Pc3"]["by_component"] == pytest.approx({"H": 0.0, "D": 0.5, "Z": 0.0}, abs=TOL)
    located = peak_and_centroid(heatmap, axes)
    assert located["peak"]["component"] == "D" and (located["peak"]["row"], located["peak"]["col"]) == (3, 1)


def test_channels_layout_component_split_needs_per_channel_map():
    axes = _five_row_axes()
    heatmap = _five_row_map()
    assert component_shares(heatmap, axes) == CHANNELS_NOT_AVAILABLE
    per_channel = np.zeros(axes.shape + (3,))
    per_channel[..., 0] = 1.0
    per_channel[0, 0, 2] = 20.0
    shares = component_shares(heatmap, axes, per_channel=per_channel)
    assert shares == pytest.approx({"H": 20 / 40, "D": 0.0, "Z": 20 / 40}, abs=TOL)
    bands = band_shares(heatmap, axes, per_channel=per_channel)
    assert bands["Pc3"]["by_component"] == pytest.approx({"H": 4 / 40, "D": 0.0, "Z": 20 / 40}, abs=TOL)
    with pytest.raises(InputDataError, match="per-channel"):
        component_shares(heatmap, axes, per_channel=np.zeros(axes.shape + (2,)))


def test_temporal_profile_columns_and_hourly_bins():
    axes, heatmap = _five_row_axes(), _five_row_map()
    # column masses: col0 = 1 + 4, col1 = 1, col2 = 1 + 2, col3 = 1 + 2
    profile = temporal_profile(heatmap, axes)
    assert profile["column_mass_share"] == pytest.approx([5 / 12, 1 / 12, 3 / 12, 3 / 12], abs=TOL)
    assert profile["column_hours_before"] == pytest.approx([3.5, 2.5, 1.5, 0.5], abs=TOL)
    assert profile["bin_edges_hours_before"] == pytest.approx([4, 3, 2, 1, 0], abs=TOL)
    assert profile["bin_mass_share"] == pytest.approx([5 / 12, 1 / 12, 3 / 12, 3 / 12], abs=TOL)
    coarse = temporal_profile(heatmap, axes, bin_hours=2.0)
    assert coarse["bin_edges_hours_before"] == pytest.approx([4, 2, 0], abs=TOL)
    assert coarse["bin_mass_share"] == pytest.approx([6 / 12, 6 / 12], abs=TOL)
    uneven = temporal_profile(heatmap, axes, bin_hours=3.0)
    assert uneven["bin_edges_hours_before"] == pytest.approx([4, 3, 0], abs=TOL)
    assert uneven["bin_mass_share"] == pytest.approx([5 / 12, 7 / 12], abs=TOL)


def test_peak_and_centroid_by_hand():
    axes, heatmap = _five_row_axes(), _five_row_map()
    located = peak_and_centroid(heatmap, axes)
    expected_peak = {"frequency_hz": 0.005, "hours_before": 3.5, "component": None, "row": 2, "col": 0}
    assert located["peak"] == expected_peak
    row_weights = np.array([4, 0, 4, 2, 2]) / 12
    log_mean = float(np.dot(row_weights, np.log10(axes.row_frequency_hz)))
    assert located["centroid"]["frequency_hz"] == pytest.approx(10**log_mean, rel=TOL)
    expected_hours = (5 * 3.5 + 2.5 + 3 * 1.5 + 3 * 0.5) / 12
    assert located["centroid"]["hours_before"] == pytest.approx(expected_hours, abs=TOL)
    # ties: the first maximum in row-major order wins
    tied = np.zeros(axes.shape)
    tied[1, 2] = tied[3, 0] = 1.0
    assert peak_and_centroid(tied, axes)["peak"]["row"] == 1


def test_concentration_simple_cases():
    assert concentration(np.ones((4, 5)))["normalized_entropy"] == pytest.approx(1.0, abs=TOL)
    one = np.zeros((4, 5))
    one[1, 1] = 3.0
    result = concentration(one)
    assert result["normalized_entropy"] == pytest.approx(0.0, abs=TOL)
    assert result["top_mass_share"] == pytest.approx(1.0, abs=TOL) and result["top_cells"] == 2
    two = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert concentration(two)["normalized_entropy"] == pytest.approx(math.log(2) / math.log(4), abs=TOL)
    ramp = np.arange(1, 101, dtype=float).reshape(10, 10)
    result = concentration(ramp)
    assert result["top_cells"] == 10
    assert result["top_mass_share"] == pytest.approx(sum(range(91, 101)) / 5050, abs=TOL)
    assert concentration(np.ones((4, 5)))["top_mass_share"] == pytest.approx(2 / 20, abs=TOL)


def test_summary_is_json_ready_with_native_resolution():
    axes = SpectrogramAxes.regular(
        layout="channels",
        components=("H", "D", "Z"),
        n_rows=32,
        n_cols=24,
        frequency_range_hz=(0.0005, 0.1),
        frequency_scale="log",
        window_s=6 * HOUR,
    )
    heatmap = np.random.default_rng(1).random(axes.shape).astype(np.float32)
    summary = attention_summary(heatmap, axes, native_shape=(7, 7))
    json.dumps(summary, allow_nan=False)
    assert summary["empty"] is False
    assert summary["components"] == CHANNELS_NOT_AVAILABLE
    assert summary["native_resolution"]["time_cells"] == 7
    assert summary["native_resolution"]["frequency_cells"] == 7
    assert summary["native_resolution"]["hours_per_cell"] == pytest.approx(6 / 7, abs=TOL)
    assert summary["native_resolution"]["decades_per_cell"] == pytest.approx(math.log10(200) / 7, abs=TOL)
    assert set(summary["bands"]) == {"ULF", "Pc5", "Pc4", "Pc3", "rest"}
    assert sum(summary["temporal_profile"]["bin_mass_share"]) == pytest.approx(1.0, abs=TOL)
    stacked = SpectrogramAxes.regular(
        layout="stacked",
        components=("H", "D", "Z"),
        n_rows=30,
        n_cols=10,
        frequency_range_hz=(0.001, 0.1),
        frequency_scale="linear",
        window_s=HOUR,
    )
    res = native_resolution((6, 5), stacked)
    assert res["frequency_cells_per_panel"] == pytest.approx(2.0)
    assert res["hz_per_cell"] == pytest.approx(0.0495)


def test_empty_and_negative_maps():
    axes = _five_row_axes()
    summary = attention_summary(np.zeros(axes.shape), axes)
    json.dumps(summary, allow_nan=False)
    assert summary["empty"] is True
    assert summary["bands"]["ULF"]["mass_share"] is None and summary["bands"]["ULF"]["enrichment"] is None
    assert summary["bands"]["ULF"]["area_share"] == pytest.approx(0.4)
    assert summary["peak"] is None and summary["centroid"] is None
    assert summary["concentration"]["normalized_entropy"] is None
    assert summary["temporal_profile"]["bin_mass_share"] == [None] * 4
    negative = _five_row_map()
    negative[1, :] = -3.0  # Pc4 row: negative everywhere, clipped to 0
    summary = attention_summary(negative, axes)
    assert summary["negative_fraction"] == pytest.approx(12 / 24, abs=TOL)
    assert summary["bands"]["Pc4"]["mass_share"] == pytest.approx(0.0, abs=TOL)
    assert summary["bands"]["ULF"]["mass_share"] == pytest.approx(0.5, abs=TOL)


def test_bad_maps_are_refused():
    axes = _five_row_axes()
    with pytest.raises(InputDataError, match="shape"):
        attention_summary(np.ones((4, 4)), axes)
    bad = _five_row_map()
    bad[0, 0] = np.nan
    with pytest.raises(InputDataError, match="NaN"):
        attention_summary(bad, axes)
    with pytest.raises(InputDataError, match="reserved"):
        band_shares(_five_row_map(), axes, bands={"rest": (0.001, 0.01)})
