"""Geomagnetic activity per window: K index, hourly ranges, Pc band power, user indices, the grid proxy, flags."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from core.errors import ConfigError, InputDataError
from geomag.activity import (
    ActivityConfig,
    ActivityThresholds,
    WindowActivity,
    band_power,
    classify,
    field_components,
    k_from_range,
    k_intervals,
    k_lower_limits,
    station_k9,
    window_activity,
)
from geomag.axes import SpectrogramAxes
from geomag.disturbance_proxy import LIMITS, DisturbanceProxy, grid_level
from geomag.indices import IndexRequest, load_index_table, parse_kp, record_indices, table_values
from geomag.sources import CsvDataSource
from geomag.spectrogram import SpectrogramConfig
from geomag.timeseries import GeomagSeries
from tests.conftest import grid_axes

ROOT = Path(__file__).resolve().parents[1]
DAY = np.datetime64("2024-03-01T00:00:00", "ms")
N_DAY = 86400
T = np.arange(N_DAY)


def _series(h: np.ndarray, d: np.ndarray | None = None, units: dict | None = None, **kwargs) -> GeomagSeries:
    n = h.size
    components = {"H": 20000.0 + h, "D": np.zeros(n) if d is None else d, "Z": np.full(n, 44000.0)}
    return GeomagSeries(
        times=DAY + np.arange(n) * np.timedelta64(1000, "ms"),
        components=components,
        station=kwargs.pop("station", "TST"),
        longitude=kwargs.pop("longitude", 15.0),
        metadata={"units": units or {"H": "nT", "D": "nT", "Z": "nT"}, **kwargs.pop("metadata", {})},
        **kwargs,
    )


def _quiet(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.1, N_DAY)


# ------------------------------------------------------------------ K scale
def test_k_scale_is_the_standard_quasi_logarithmic_one():
    assert list(k_lower_limits(500)) == [0, 5, 10, 20, 40, 70, 120, 200, 330, 500]
    assert list(k_lower_limits(300)) == pytest.approx([0, 3, 6, 12, 24, 42, 72, 120, 198, 300])
    assert [k_from_range(r, 500) for r in (0, 4.9, 5, 19.9, 20, 69, 70, 499, 500, 2000)] == [
        0,
        0,
        1,
        2,
        3,
        4,
        5,
        8,
        9,
        9,
    ]
    assert k_from_range(50, 300) == 5 and k_from_range(50, 500) == 4


# ------------------------------------------------------------------ K index on series with known ranges
@pytest.mark.parametrize(
    ("amplitude", "expected"),
    [(1.5, 0), (4, 1), (7.5, 2), (15, 3), (25, 4), (45, 5), (80, 6), (130, 7), (200, 8), (300, 9)],
)
def test_sine_of_known_amplitude_in_one_interval_gives_its_k(amplitude, expected):
    """A 30-min sine of amplitude a in 09-12 UT has range 2a: K from the K9 = 500 nT scale, K 0 elsewhere."""
    h = _quiet()
    block = (T >= 9 * 3600) & (T < 12 * 3600)
    h[block] += amplitude * np.sin(2 * np.pi * T[block] / 1800.0)
    intervals, notes = k_intervals(_series(h), 500.0)
    assert [r["k"] for r in intervals] == [0, 0, 0, expected, 0, 0, 0, 0]
    assert intervals[3]["start"] == "2024-03-01T09:00:00" and intervals[3]["end"] == "2024-03-01T12:00:00"
    assert intervals[3]["range_nT"]["H"] == pytest.approx(2 * amplitude, rel=0.05, abs=1.5)
    assert notes == []


@pytest.mark.parametrize(("step", "expected"), [(15, 2), (30, 3), (90, 5), (160, 6), (260, 7)])
def test_step_of_known_size_gives_its_k(step, expected):
    """A step inside 12-15 UT: the smoothed regular variation follows it slowly, the range is the step."""
    h = _quiet(1)
    h[T >= 13.5 * 3600] += step
    intervals, _ = k_intervals(_series(h), 500.0)
    assert intervals[4]["k"] == expected
    assert intervals[4]["range_nT"]["H"] == pytest.approx(step, rel=0.03)
    assert max(r["k"] for r in intervals[:3] + intervals[6:]) == 0


def test_regular_daily_variation_is_removed():
    """A quiet-day variation of 60 nT range (smooth, 24 h and 12 h terms) is not activity: K stays 0-1."""
    hours = T / 3600.0
    h = _quiet(2) + 22 * np.cos(2 * np.pi * (hours - 11) / 24) + 8 * np.cos(4 * np.pi * (hours - 11) / 24)
    intervals, _ = k_intervals(_series(h), 500.0)
    assert max(r["k"] for r in intervals) <= 1
    assert max(r["range_nT"]["H"] for r in intervals) < 10  # the raw 3-hour ranges reach ~30 nT


def test_declination_in_minutes_of_arc_is_converted_with_h():
    """D in minutes of arc: a sine of 25 nT equivalent (at H = 20,000 nT) gives K 4, as the same sine in H."""
    d = np.zeros(N_DAY)
    block = (T >= 9 * 3600) & (T < 12 * 3600)
    d[block] = (25.0 / (20000.0 * math.pi / 10800.0)) * np.sin(2 * np.pi * T[block] / 1800.0)
    series = _series(_quiet(3), d, units={"H": "nT", "D": "minutes of arc", "Z": "nT"})
    components, notes = field_components(series)
    assert any("D converted from minutes of arc" in n for n in notes)
    assert np.ptp(components["D"][block]) == pytest.approx(50.0, rel=0.01)
    intervals, _ = k_intervals(series, 500.0)
    assert intervals[3]["k"] == 4 and intervals[3]["range_nT"]["D"] == pytest.approx(50.0, rel=0.05)
    degrees = _series(_quiet(3), d / 60.0, units={"H": "nT", "D": "Degrees of arc", "Z": "nT"})
    assert k_intervals(degrees, 500.0)[0][3]["k"] == 4


def test_horizontal_components_as_the_file_reports_them():
    for names in (("X", "Y", "Z"), ("H", "E", "Z"), ("E", "H", "Z", "F")):
        values = {n: _quiet(4) for n in names}
        block = (T >= 9 * 3600) & (T < 12 * 3600)
        values[names[1]][block] += 45 * np.sin(2 * np.pi * T[block] / 1800.0)
        series = GeomagSeries(DAY + T * np.timedelta64(1000, "ms"), values, "TST")
        intervals, _ = k_intervals(series, 500.0)
        assert intervals[3]["k"] == 5 and "Z" not in intervals[3]["range_nT"], names
    only_z = GeomagSeries(DAY + T * np.timedelta64(1000, "ms"), {"Z": _quiet()}, "TST")
    intervals, notes = k_intervals(only_z, 500.0)
    assert intervals == [] and "no horizontal component" in notes[0]


def test_k9_from_the_file_then_config_then_default():
    config = ActivityConfig(station_k9_nT={"TST": 300.0})
    h = _quiet()
    assert station_k9(_series(h, metadata={"station_k9": 750.0}), config) == (750.0, "file")
    iaga = _series(h, metadata={"comments": ["gaussian filter", "K9-limit             500"]})
    assert station_k9(iaga, config) == (500.0, "file")
    assert station_k9(_series(h), config) == (300.0, "config")
    assert station_k9(_series(h), ActivityConfig()) == (500.0, "default")
    assert station_k9(_series(h, metadata={"station_k9": "unknown"}), ActivityConfig()) == (500.0, "default")


# ------------------------------------------------------------------ flags
def test_classify_thresholds_of_common_practice():
    assert classify(k=5)[0] == "disturbed" and classify(k=4)[0] == "active" and classify(k=2)[0] == "quiet"
    assert classify(kp=5.0)[0] == "disturbed" and classify(kp=2.67)[0] == "quiet" and classify(kp=3)[0] == "active"
    assert classify(dst_nT=-50)[0] == "disturbed" and classify(dst_nT=-30)[0] == "active"
    assert classify(dst_nT=-19)[0] == "quiet"
    flag, basis, reasons = classify(k=2, kp=1, dst_nT=-60)
    assert flag == "disturbed" and basis == ["K", "Kp", "Dst"] and reasons == ["Dst -60 <= -50 nT"]
    assert classify(k=2, dst_nT=-25)[0] == "active"  # quiet needs every number quiet
    assert classify()[0] == "unknown"
    assert classify(proxy_z=4.0)[0] == "disturbed" and classify(proxy_z=0.2)[0] == "quiet"
    assert classify(k=1, proxy_z=9.0)[:2] == ("quiet", ["K"])  # the proxy counts only without real indices
    strict = ActivityThresholds(disturbed_k=4)
    assert classify(k=4, thresholds=strict)[0] == "disturbed"


def test_activity_config_from_the_yaml_file():
    data = yaml.safe_load((ROOT / "conf" / "activity" / "default.yaml").read_text())
    config = ActivityConfig.from_config(data)
    assert config.default_k9_nT == 500.0 and config.thresholds == ActivityThresholds()
    assert config.station_longitude["LUT"] == pytest.approx(122.79)
    with pytest.raises(ConfigError, match="unknown"):
        ActivityConfig.from_config({"k9": 300})
    with pytest.raises(ConfigError, match="thresholds.quiet"):
        ActivityConfig.from_config({"thresholds": {"quiet": 2}})
    with pytest.raises(ConfigError, match="positive"):
        ActivityConfig.from_config({"default_k9_nT": 0})


# ------------------------------------------------------------------ a window
def test_window_k_is_the_largest_of_the_overlapping_intervals():
    h = _quiet(5)
    block = (T >= 9 * 3600) & (T < 12 * 3600)
    h[block] += 45 * np.sin(2 * np.pi * T[block] / 1800.0)  # K 5 in 09-12
    series = _series(h)
    touching = window_activity(series, "2024-03-01T11:59:00", "2024-03-01T17:59:00")
    assert touching.k == 5 and touching.flag == "disturbed" and touching.basis == ["K"]
    assert [r["start"][11:16] for r in touching.k_intervals] == ["09:00", "12:00", "15:00"]
    after = window_activity(series, "2024-03-01T12:00:00", "2024-03-01T18:00:00")
    assert after.k == 0 and after.flag == "quiet" and after.reasons == ["K 0 < 3"]
    assert any("K9 500 nT is the default" in n for n in after.notes)
    assert after.window_start == "2024-03-01T12:00:00.000" and len(after.hour_starts) == 6
    assert after.hour_starts[1] == "2024-03-01T13:00:00.000"


def test_hourly_ranges_and_pc_band_power_of_known_signals():
    h = _quiet(6)
    h[(T >= 14 * 3600) & (T < 15 * 3600)] += np.linspace(0, 40, 3600)  # a 40 nT ramp in one hour
    h[T >= 15 * 3600] += 40
    d = _quiet(7) + 3.0 * np.sin(2 * np.pi * 0.004 * T)  # Pc5, RMS 2.12 nT
    activity = window_activity(_series(h, d), "2024-03-01T12:00:00", "2024-03-01T18:00:00")
    ranges = activity.hourly_range_nT["H"]
    assert ranges[2] == pytest.approx(40, abs=1.0) and ranges[0] < 1.0
    assert 6.0 < activity.hourly_range_nT["D"][0] < 7.0  # 2 x 3 nT plus the noise
    rms = activity.band_rms_nT["D"]
    assert rms["Pc5"] == pytest.approx(3 / math.sqrt(2), rel=0.1) and rms["Pc3"] < 0.1
    assert activity.band_power_nT2["D"]["Pc5"] == pytest.approx(rms["Pc5"] ** 2)
    assert set(activity.band_rms_nT) == {"H", "D", "Z"}
    assert band_power(np.zeros(1000), 1.0) == {"Pc5": None, "Pc4": None, "Pc3": None}
    minute = band_power(np.random.default_rng(0).normal(size=4096), 60.0)
    assert minute["Pc3"] is None and minute["Pc5"] is not None  # Pc3 is above the 1-min Nyquist (8.3 mHz)


def test_window_activity_to_dict_is_plain_json():
    activity = window_activity(_series(_quiet()), "2024-03-01T06:00:00", "2024-03-01T12:00:00")
    data = activity.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) >= {
        "flag",
        "basis",
        "reasons",
        "k",
        "k9_nT",
        "k_intervals",
        "kp",
        "dst_nT",
        "hourly_range_nT",
        "band_rms_nT",
        "band_power_nT2",
        "proxy",
        "notes",
    }
    assert isinstance(data["k"], int) and data["proxy"] is None


# ------------------------------------------------------------------ user indices
INDEX_CSV = """time,kp,dst
2024-05-10T12:00:00Z,4+,-30
2024-05-10T13:00:00Z,,-45
2024-05-10T15:00:00Z,8-,-120
2024-05-10T18:00:00Z,9o,
2024-05-10T21:00:00Z,7,-300
"""


def test_kp_notation():
    assert parse_kp("5") == 5 and parse_kp("5+") == pytest.approx(5.3333) and parse_kp("5-") == pytest.approx(4.6667)
    assert parse_kp("5o") == 5 and parse_kp(" 2.67 ") == 2.67 and parse_kp("0") == 0
    for bad in ("10", "-1", "x", "9+", "nan", ""):
        with pytest.raises(ValueError):
            parse_kp(bad)


def test_index_csv_gives_max_kp_and_min_dst_over_the_window(tmp_path):
    path = tmp_path / "indices.csv"
    path.write_text(INDEX_CSV)
    table = load_index_table(path)
    assert table_values(table, "2024-05-10T12:30:00", "2024-05-10T14:30:00") == (pytest.approx(4.3333), -45.0)
    # each row holds until the next one of the same index: 16:00-17:00 lies in the Kp 8- row
    kp, dst = table_values(table, "2024-05-10T16:00:00", "2024-05-10T17:00:00")
    assert kp == pytest.approx(7.6667) and dst == -120.0
    assert table_values(table, "2024-05-10T17:00:00", "2024-05-10T23:00:00") == (9.0, -300.0)
    assert table_values(table, "2024-05-01T00:00:00", "2024-05-02T00:00:00") == (None, None)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("time,kp\n2024-05-10T12:00:00,4\n2024-05-10T15:00:00,12\n", "row 3: kp '12'"),
        ("time,dst\n2024-05-10T12:00:00,abc\n", "row 2: dst 'abc'"),
        ("time,kp\nyesterday,4\n", "row 2: time 'yesterday'"),
        ("when,kp\n2024-05-10T12:00:00,4\n", "needs the columns time"),
        ("time,kp\n2024-05-10T12:00:00,\n", "no Kp or Dst"),
    ],
)
def test_bad_index_csv_names_the_file_and_row(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputDataError, match=match) as info:
        load_index_table(path)
    assert str(path) in str(info.value)


def test_metadata_columns_kp_dst_and_index_csv(tmp_path):
    (tmp_path / "idx.csv").write_text(INDEX_CSV)
    window = (np.datetime64("2024-05-10T18:00", "ms"), np.datetime64("2024-05-11T00:00", "ms"))
    request = IndexRequest(tmp_path / "meta.csv", 4, tmp_path, window)
    assert record_indices({"station_note": "x"}, request) is None
    direct = record_indices({"kp": "3-", "dst": "-12"}, request)
    assert direct.kp == pytest.approx(2.6667) and direct.dst_nT == -12 and direct.source == "meta.csv row 4"
    table = record_indices({"index_csv": "idx.csv"}, request)
    assert (table.kp, table.dst_nT, table.source) == (9.0, -300.0, "idx.csv")
    mixed = record_indices({"kp": "1", "index_csv": "idx.csv"}, request)
    assert (mixed.kp, mixed.dst_nT) == (1.0, -300.0)  # the row's own kp wins over the file
    with pytest.raises(InputDataError, match=r"meta.csv: row 4: dst '-5000'"):
        record_indices({"dst": "-5000"}, request)
    with pytest.raises(InputDataError, match="row 4: index_csv needs the sample's event_time"):
        record_indices({"index_csv": "idx.csv"}, IndexRequest(tmp_path / "meta.csv", 4, tmp_path, None))
    with pytest.raises(InputDataError, match="outside the data root"):
        record_indices({"index_csv": "../elsewhere.csv"}, request)


# ------------------------------------------------------------------ the proxy for image/array inputs
def _axes(layout: str = "channels") -> SpectrogramAxes:
    return grid_axes(48, 32, layout=layout)


def test_grid_proxy_flags_a_broadband_enhancement_against_the_data_set():
    axes = _axes()
    rng = np.random.default_rng(0)
    quiet = [rng.normal(0.0, 0.3, (48, 32, 3)) + rng.normal(0.0, 0.1) for _ in range(40)]
    storm = rng.normal(0.0, 0.3, (48, 32, 3)) + 1.2  # ten- to twentyfold power in every band and component
    emission = rng.normal(0.0, 0.3, (48, 32, 3))
    emission[axes.band_rows(0.002, 0.006), 10:25, :2] += 2.0  # a strong narrow-band emission: few cells
    levels = [grid_level(image, axes) for image in [*quiet, storm, emission]]
    proxy = DisturbanceProxy.fit([level.level for level in levels])
    assert proxy.n_samples == 42 and proxy.scale > 0
    flags = [proxy.activity(level).flag for level in levels]
    assert flags[40] == "disturbed" and flags[41] != "disturbed"
    assert flags[:40].count("disturbed") == 0 and flags[:40].count("quiet") > 25
    data = proxy.activity(levels[40]).to_dict()
    assert data["basis"] == ["proxy"] and data["proxy"]["kind"] == "proxy" and data["proxy"]["limits"] == LIMITS
    assert set(data["proxy"]["band_levels"]["H"]) == {"Pc5", "Pc4", "Pc3"} and data["k"] is None


def test_grid_proxy_needs_values_not_colours():
    axes = _axes("stacked")
    rgb = np.zeros((48, 32, 3))
    colours = grid_level(rgb, axes)
    assert colours.level is None and "invert_colormap" in colours.note
    scalar = grid_level(rgb, axes, scalar=np.full((48, 32), 0.4))
    assert scalar.level == pytest.approx(0.4) and scalar.value_kind == "colour scalar"
    activity = DisturbanceProxy.fit([None]).activity(colours)
    assert activity.flag == "unknown" and activity.notes == [colours.note]


# ------------------------------------------------------------------ through the data source
def test_source_activity_of_array_samples_uses_columns_else_the_proxy(tmp_path):
    rng = np.random.default_rng(1)
    rows = []
    for i in range(12):
        image = rng.normal(0.0, 0.3, (48, 32, 3)) + (1.5 if i == 0 else 0.0)
        np.save(tmp_path / f"s{i}.npy", image.astype(np.float32))
        extra = {1: "3,,", 2: ",,", 3: ",-80,"}.get(i, ",,")
        rows.append(f"Normal,Normal,ST{i},2024-05-10,s{i}.npy,2024-05-10T12:00:00Z,{extra}\n")
    csv_path = tmp_path / "meta.csv"
    csv_path.write_text(
        "magnitude_class,azimuth_class,station,date,path,event_time,kp,dst,activity_k\n" + "".join(rows)
    )
    image = {"layout": "channels", "frequency_range_hz": [0.0005, 0.1], "frequency_scale": "log", "channels": 3}
    source = CsvDataSource(csv_path, image=image)
    records = source.records()
    storm = source.activity(records[0])
    assert storm.flag == "disturbed" and storm.basis == ["proxy"] and storm.station == "ST0"
    assert storm.window_start == "2024-05-10T06:00:00.000"
    assert source.activity(records[1]).basis == ["Kp"] and source.activity(records[1]).flag == "active"
    assert source.activity(records[3]).flag == "disturbed" and source.activity(records[3]).dst_nT == -80
    assert source.activity(records[2]).basis == ["proxy"]
    bad = tmp_path / "bad.csv"
    bad.write_text(
        csv_path.read_text().replace(
            "ST1,2024-05-10,s1.npy,2024-05-10T12:00:00Z,3,,", "ST1,2024-05-10,s1.npy,2024-05-10T12:00:00Z,3,,12"
        )
    )
    bad_source = CsvDataSource(bad, image=image)
    with pytest.raises(InputDataError, match=r"row 3: activity_k '12'"):
        bad_source.activity(bad_source.records()[1])


# ------------------------------------------------------------------ real files (../shared)
def _read(path: Path, **kwargs) -> GeomagSeries:
    from geomag.readers import read_timeseries

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_timeseries(path, **kwargs)


@pytest.mark.shared
@pytest.mark.parametrize(("event", "expected_k"), [("2024-05-10T23:59:00", 8), ("2024-05-11T06:00:00", 7)])
def test_may_2024_storm_windows_are_disturbed(shared_dir, event, expected_k):
    """The great storm of 10-11 May 2024 at Conrad Observatory (WIC; StationK9 500 nT in the file)."""
    series = _read(shared_dir / "data/imagcdf/wic_2024-05-09_4days_1s.cdf")
    end = np.datetime64(event, "ms")
    activity = window_activity(series, end - np.timedelta64(6, "h"), end)
    assert activity.flag == "disturbed" and activity.k == expected_k
    assert activity.k9_nT == 500.0 and activity.k9_source == "file"
    assert activity.basis == ["K"] and activity.reasons == [f"K {expected_k} >= 5"]
    assert max(max(r for r in ranges if r is not None) for ranges in activity.hourly_range_nT.values()) > 100


@pytest.mark.shared
def test_may_2024_storm_through_the_data_source_with_indices(tmp_path, shared_dir):
    shutil.copy(shared_dir / "data/imagcdf/wic_2024-05-09_4days_1s.cdf", tmp_path / "wic.cdf")
    (tmp_path / "idx.csv").write_text(INDEX_CSV)
    (tmp_path / "meta.csv").write_text(
        "magnitude_class,azimuth_class,station,date,path,event_time,index_csv\n"
        "Normal,Normal,WIC,2024-05-10,wic.cdf,2024-05-10T23:59:00Z,idx.csv\n"
        "Normal,Normal,WIC,2024-05-09,wic.cdf,2024-05-09T12:00:00Z,\n"
    )
    source = CsvDataSource(tmp_path / "meta.csv", spectrogram=SpectrogramConfig())
    storm, quiet = (source.activity(r) for r in source.records())
    assert storm.flag == "disturbed" and storm.k == 8 and storm.kp == 9.0 and storm.dst_nT == -300.0
    assert storm.basis == ["K", "Kp", "Dst"] and storm.indices_source == "idx.csv"
    assert quiet.flag != "disturbed" and quiet.k <= 3 and quiet.kp is None


@pytest.mark.shared
@pytest.mark.parametrize("name", ["S230101.LUT.gz", "S230102.LUT.gz"])
def test_lut_days_are_not_disturbed(shared_dir, name):
    series = _read(shared_dir / "data/bmkg" / name)
    config = ActivityConfig.from_config(yaml.safe_load((ROOT / "conf/activity/default.yaml").read_text()))
    for start_hour in (0, 6, 12, 18):
        start = series.times[0] + np.timedelta64(start_hour, "h")
        activity = window_activity(series, start, start + np.timedelta64(6, "h"), config)
        assert activity.flag != "disturbed" and activity.k <= 3, (start_hour, activity.k)
        assert activity.k9_source == "default"


@pytest.mark.shared
def test_iaga_wic_2018_08_29_is_quiet(shared_dir):
    series = _read(shared_dir / "data/iaga2002/wic_2018-08-29_1s.sec")
    activity = window_activity(series, series.times[0], series.times[-1] + np.timedelta64(1, "s"))
    assert activity.k == 2 and activity.flag == "quiet"
    assert activity.k9_nT == 500.0 and activity.k9_source == "file"  # the "K9-limit 500" comment
    assert [r["k"] for r in activity.k_intervals] == [2, 1, 0, 0, 1, 2, 1, 1]


def test_window_activity_is_a_dataclass_with_documented_fields():
    fields = WindowActivity.__dataclass_fields__
    assert {"flag", "k", "kp", "dst_nT", "proxy", "to_dict"} - set(fields) == {"to_dict"}
