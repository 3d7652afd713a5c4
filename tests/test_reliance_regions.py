"""The region partition (band x segment x component) on hand-made axes of both layouts, and its config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from core.errors import ConfigError, InputDataError
from geomag.axes import SpectrogramAxes
from xai.reliance.regions import OTHER_BAND, RegionConfig, build_regions

CONF = Path(__file__).resolve().parents[1] / "conf"
# one row per default band, top = highest frequency, plus one row below 0.5 mHz ("other")
FREQUENCIES = np.array([0.08, 0.03, 0.015, 0.005, 0.002, 0.0007, 0.0003])
TIMES = np.array([9000.0, 7000.0, 5400.0, 3000.0, 1000.0])  # s before the event: 2-3 h | 1-2 h x2 | 0-1 h x2


def _channels_axes() -> SpectrogramAxes:
    return SpectrogramAxes(layout="channels", components=("H", "D", "Z"), row_frequency_hz=FREQUENCIES,
                           row_component=np.full(7, -1), column_time_s=TIMES, frequency_range_hz=(0.0002, 0.1),
                           frequency_scale="log", window_s=10800.0)  # fmt: skip


def _stacked_axes() -> SpectrogramAxes:
    panel = np.array([0.05, 0.005, 0.002])
    return SpectrogramAxes(layout="stacked", components=("H", "D", "Z"), row_frequency_hz=np.tile(panel, 3),
                           row_component=np.repeat([0, 1, 2], 3), column_time_s=TIMES,
                           frequency_range_hz=(0.0005, 0.1), frequency_scale="log", window_s=10800.0)  # fmt: skip


def _region(regions, band, segment, component):
    (match,) = [r for r in regions.regions if (r.band, r.segment, r.component) == (band, segment, component)]
    return match


def test_channels_layout_partition_by_hand():
    regions = build_regions(_channels_axes())
    assert [g.name for g in regions.groups["band"]] == [
        "0.5-1 mHz", "1-3.3 mHz", "3.3-10 mHz", "10-22 mHz", "22-100 mHz", OTHER_BAND,
    ]  # fmt: skip
    assert all(g.covered for g in regions.groups["band"])
    assert [g.name for g in regions.groups["segment"]] == ["2-3 h", "1-2 h", "0-1 h"]
    assert [g.size for g in regions.groups["segment"]] == [1, 2, 2]
    assert len(regions) == 6 * 3 * 3 and regions.shape == (7, 5, 3)
    masks = regions.masks()
    assert np.array_equal(masks.sum(axis=0), np.ones((7, 5, 3)))  # a complete partition without overlap
    expected = np.zeros((7, 5, 3), dtype=bool)
    expected[4, 1:3, 2] = True  # 2 mHz row, 1-2 h columns, Z channel
    assert np.array_equal(_region(regions, "1-3.3 mHz", "1-2 h", "Z").mask, expected)
    assert np.array_equal(_region(regions, "22-100 mHz", "2-3 h", "H").box.cell_mask()[:, 0], [1, 1, 0, 0, 0, 0, 0])
    assert _region(regions, OTHER_BAND, "0-1 h", "D").box.rows.tolist() == [0, 0, 0, 0, 0, 0, 1]


def test_stacked_layout_components_are_panels():
    regions = build_regions(_stacked_axes())
    assert regions.shape == (9, 5, 3)
    assert [g.name for g in regions.groups["band"] if g.covered] == ["1-3.3 mHz", "3.3-10 mHz", "22-100 mHz"]
    assert {g.name: g.covered for g in regions.groups["band"]}["0.5-1 mHz"] is False  # not reached: no regions
    assert OTHER_BAND not in regions.names("band")  # every row lies in a band
    assert np.array_equal(regions.masks().sum(axis=0), np.ones((9, 5, 3)))
    expected = np.zeros((9, 5, 3), dtype=bool)
    expected[4, 3:, :] = True  # D panel's 5 mHz row, 0-1 h, every colour channel
    assert np.array_equal(_region(regions, "3.3-10 mHz", "0-1 h", "D").mask, expected)
    band = regions.group_boxes["band"]["3.3-10 mHz"]
    assert band.rows.tolist() == [0, 1, 0] * 3 and band.channels.all()  # the band in every panel
    component = regions.group_boxes["component"]["Z"]
    assert component.rows.tolist() == [0] * 6 + [1] * 3 and component.cols.all()
    assert regions.row_groups.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_members_marginals_and_description():
    regions = build_regions(_channels_axes())
    members = regions.members("component", "D")
    assert len(members) == 6 * 3 and all(regions.regions[i].component == "D" for i in members)
    kinds = [(kind, name) for kind, name, _ in regions.marginal_boxes()]
    assert kinds[:2] == [("band", "0.5-1 mHz"), ("band", "1-3.3 mHz")] and ("segment", "0-1 h") in kinds
    assert kinds[-3:] == [("component", "H"), ("component", "D"), ("component", "Z")]
    description = regions.describe()
    assert description["n_regions"] == 54 and description["bands"][1]["range_hz"] == [0.001, 0.0033]
    assert description["segments"][0] == {"name": "2-3 h", "covered": True, "range_hours_before_event": [2.0, 3.0]}


def test_resampled_regions_follow_the_cell_centres():
    regions = build_regions(_channels_axes())
    bigger = regions.resampled((14, 10))
    assert bigger.shape == (14, 10, 3)
    for small, large in zip(regions.regions, bigger.regions):
        assert np.array_equal(large.mask, np.repeat(np.repeat(small.mask, 2, axis=0), 2, axis=1))
    flipped = regions.resampled((7, 5), flip_channels=True)
    assert np.array_equal(_region(flipped, "1-3.3 mHz", "1-2 h", "Z").box.channels, [True, False, False])


def test_custom_config_segments_and_components():
    config = RegionConfig.from_config({"band_edges_hz": [0.001, 0.01, 0.2], "band_names": ["ULF", "high"],
                                       "segment_hours": 2, "components": ["Z"]})  # fmt: skip
    regions = build_regions(_channels_axes(), config)
    assert [(g.name, g.covered) for g in regions.groups["band"]] == [("ULF", True), ("high", True), (OTHER_BAND, True)]
    assert [g.name for g in regions.groups["segment"]] == ["2-4 h", "0-2 h"]
    assert {r.component for r in regions.regions} == {"Z"} and len(regions) == 3 * 2


def test_the_shipped_config_is_the_default():
    config = RegionConfig.from_config(OmegaConf.load(CONF / "reliance" / "default.yaml"))
    assert config == RegionConfig()
    assert [name for name, _, _ in config.bands()] == [
        "0.5-1 mHz",
        "1-3.3 mHz",
        "3.3-10 mHz",
        "10-22 mHz",
        "22-100 mHz",
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"band_edges_hz": [0.001, 0.01, 0.005]}, "band_edges_hz must be strictly increasing"),
        ({"band_edges_hz": [0.001, 0.001]}, "band_edges_hz must be strictly increasing"),
        ({"band_edges_hz": [0.01]}, "at least two positive finite edges"),
        ({"band_edges_hz": [0.0, 0.01]}, "at least two positive finite edges"),
        ({"band_edges_hz": "0.001"}, "must be a list"),
        ({"band_names": ["a"]}, "5 bands need 5 names"),
        ({"band_names": ["a", "b", "c", "d", "other"]}, "unique and not 'other'"),
        ({"segment_hours": 0}, "segment_hours must be a positive number"),
        ({"segment_hours": "1"}, "segment_hours must be a positive number"),
        ({"band_edge_hz": [0.001, 0.01]}, "unknown key"),
    ],
)
def test_bad_config_is_a_config_error(config, message):
    with pytest.raises(ConfigError, match=message):
        RegionConfig.from_config(config)


def test_unknown_component_and_wrong_channels():
    with pytest.raises(ConfigError, match="reliance.components: unknown component 'X'; the axes have H, D, Z"):
        build_regions(_channels_axes(), {"components": ["H", "X"]})
    with pytest.raises(InputDataError, match="needs 3 channels, got 1"):
        build_regions(_channels_axes(), n_channels=1)
