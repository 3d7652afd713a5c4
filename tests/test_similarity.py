"""Heatmap similarity: rank correlation, top-10 % IoU and resampling between physical grids."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError, InputDataError
from geomag.axes import SpectrogramAxes
from tests.conftest import grid_axes
from xai.attention import band_shares
from xai.similarity import (
    common_axes_for,
    heatmap_similarity,
    resample_to_common_grid,
    spearman,
    top_fraction_iou,
)

HOUR = 3600.0


def _axes(n: int, layout: str = "channels", frange=(0.0005, 0.1), window_h: float = 6.0) -> SpectrogramAxes:
    return grid_axes(n, layout=layout, frange=frange, window_h=window_h)


def _box(
    axes: SpectrogramAxes, fmin: float, fmax: float, t_start_h: float, t_end_h: float, component: str | None = None
) -> np.ndarray:
    return axes.cell_mask(fmin, fmax, t_start_h * HOUR, t_end_h * HOUR, component=component).astype(float)


def test_identical_maps_correlate_perfectly():
    rng = np.random.default_rng(0)
    heatmap = rng.random((20, 20))
    assert spearman(heatmap, heatmap) == pytest.approx(1.0)
    assert top_fraction_iou(heatmap, heatmap) == pytest.approx(1.0)
    assert spearman(heatmap, -heatmap) == pytest.approx(-1.0)


def test_disjoint_top_cells_give_zero_iou():
    a = np.zeros((10, 10))
    b = np.zeros((10, 10))
    a[0, :] = 1.0  # top 10 % = row 0
    b[9, :] = 1.0  # top 10 % = row 9
    assert top_fraction_iou(a, b) == pytest.approx(0.0)
    b[0, :5] = 2.0  # half of a's top cells: IoU = 5 / 15
    assert top_fraction_iou(a, b) == pytest.approx(5 / 15)


def test_ties_are_deterministic_and_constant_maps_have_no_correlation():
    flat = np.ones((10, 10))
    first_row = np.zeros((10, 10))
    first_row[0, :] = 1.0
    assert top_fraction_iou(flat, first_row) == pytest.approx(1.0)  # ties -> first cells
    assert top_fraction_iou(flat, flat) == pytest.approx(1.0)
    assert spearman(flat, first_row) is None
    assert spearman(np.zeros(5), np.arange(5.0)) is None
    with_nan = np.arange(10.0)
    with_nan[3] = np.nan
    assert spearman(with_nan, np.arange(10.0)) == pytest.approx(1.0)
    with pytest.raises(InputDataError, match="shapes"):
        spearman(np.zeros((2, 2)), np.zeros((3, 3)))


def test_resampling_56_to_112_keeps_the_band_location():
    coarse, fine = _axes(56), _axes(112)
    common = common_axes_for([coarse, fine])
    assert common.shape == (112, 112)
    assert common.frequency_range_hz == pytest.approx((0.0005, 0.1))
    # mass in the ULF band, 4-2 h before the event, on the coarse grid
    heatmap = _box(coarse, 1e-3, 1e-2, 4.0, 2.0)
    resampled = resample_to_common_grid(heatmap, coarse, common)
    fine_box = _box(common, 1e-3, 1e-2, 4.0, 2.0).astype(bool)
    # the resampled map keeps nearly all of its mass inside the same physical box ...
    assert resampled[fine_box].sum() / resampled.sum() > 0.9
    shares = band_shares(resampled, common)
    assert shares["ULF"]["mass_share"] > 0.9 and shares["Pc3"]["mass_share"] < 0.05
    # ... and matches the same box drawn natively on the fine grid
    assert top_fraction_iou(resampled, fine_box.astype(float), fraction=fine_box.mean()) > 0.8
    assert spearman(resampled, fine_box.astype(float)) > 0.7
    # identity resampling is exact
    np.testing.assert_allclose(resample_to_common_grid(fine_box.astype(float), fine, common), fine_box)


def test_common_grid_is_the_intersection_at_the_finer_resolution():
    a = _axes(40, frange=(0.0005, 0.1), window_h=6.0)
    b = _axes(20, frange=(0.001, 0.05), window_h=4.0)
    common = common_axes_for([a, b])
    assert common.frequency_range_hz == pytest.approx((0.001, 0.05))
    assert common.window_s == pytest.approx(4 * HOUR)
    # a has 40 rows over log10(200) decades: the densest; columns: a has 40/6 h, b 20/4 h
    assert common.shape[0] == int(np.ceil(40 / np.log10(200) * np.log10(50) - 1e-9))
    assert common.shape[1] == int(np.ceil(40 / 6 * 4 - 1e-9))
    with pytest.raises(ConfigError, match="overlap"):
        common_axes_for([_axes(8, frange=(0.0005, 0.001)), _axes(8, frange=(0.01, 0.1))])
    with pytest.raises(ConfigError, match="layout"):
        common_axes_for([_axes(9), _axes(9, layout="stacked")])


def test_stacked_resampling_stays_in_its_component_panel():
    coarse, fine = _axes(30, layout="stacked"), _axes(60, layout="stacked")
    heatmap = _box(coarse, 1e-3, 1e-2, 6.0, 0.0, component="D")
    common = common_axes_for([coarse, fine])
    resampled = resample_to_common_grid(heatmap, coarse, common)
    d_rows = common.row_component == common.component_index("D")
    assert resampled[~d_rows].sum() == pytest.approx(0.0)
    similarity = heatmap_similarity(heatmap, coarse, _box(fine, 1e-3, 1e-2, 6.0, 0.0, component="D"), fine)
    assert similarity["spearman"] > 0.8 and similarity["top_iou"] > 0.5
    assert similarity["common_grid"]["rows"] == 60
