"""INTERMAGNET ImagCDF reader: values as cdflib reads them, fill values, gaps, cadence, errors, pipeline."""

from __future__ import annotations

import gzip
import shutil
import warnings
from pathlib import Path

import cdflib
import numpy as np
import pytest

from core.errors import InputDataError
from geomag.imagcdf import read_imagcdf
from geomag.pipeline import spectrogram_from_file
from geomag.readers import ReaderWarning, read_timeseries
from geomag.sources import CsvDataSource
from geomag.spectrogram import SpectrogramConfig
from tests.fixtures.imagcdf_writer import write_imagcdf

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXCERPT = FIXTURES / "wic_2024-05-09_excerpt.cdf"  # WIC 2024-05-09 00:00:00-01:59:59, HEZS, S NaN at 00:00:00
REAL = Path("data/imagcdf/wic_2024-05-09_4days_1s.cdf")
START = np.datetime64("2024-05-09T00:00:00", "ms")
# a short window that the 2-hour excerpt covers: 1 h, 1024-s segments, 1-100 mHz
SMALL = SpectrogramConfig(
    window_hours=1.0, nperseg=1024, hop=64, frequency_range_hz=(0.001, 0.1), components=("H", "E", "Z"), grid=(32, 32)
)


def _cdflib_reference(path: Path, first: int = 0, last: int | None = None) -> tuple[np.ndarray, dict]:
    """Times (UTC datetime64[ms]) and HEZS values of records first..last as cdflib reads them."""
    cdf = cdflib.CDF(str(path))
    end = cdf.varinq("DataTimes").Last_Rec if last is None else last
    times = cdflib.cdfepoch.to_datetime(cdf.varget("DataTimes", startrec=first, endrec=end)).astype("datetime64[ms]")
    values = {e: cdf.varget(f"GeomagneticField{e}", startrec=first, endrec=end) for e in "HEZS"}
    return times, values


def _assert_error(excinfo: pytest.ExceptionInfo, path: Path, *fragments: str) -> None:
    message = str(excinfo.value)
    assert isinstance(excinfo.value, InputDataError) and str(path) in message
    assert "\n" not in message and "\r" not in message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message


def _seconds(n: int, start: str = "2024-05-09T00:00:00", step_s: int = 1) -> np.ndarray:
    return np.datetime64(start, "s") + (np.arange(n) * step_s).astype("timedelta64[s]")


def _hdz(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "H": 21000 + rng.normal(size=n).cumsum(),
        "D": 4.2 + 0.001 * rng.normal(size=n),
        "Z": 44000 + rng.normal(size=n).cumsum(),
    }


# ------------------------------------------------------------------ the committed excerpt
def test_excerpt_reads_like_cdflib():
    series = read_timeseries(EXCERPT)
    times, values = _cdflib_reference(EXCERPT)
    assert series.component_names == ("H", "E", "Z", "S")
    np.testing.assert_array_equal(series.times, times)
    assert series.times[0] == START and len(series) == 7200
    for name in "HEZS":
        np.testing.assert_array_equal(series[name], values[name])  # equal, NaN at the same places
    assert np.flatnonzero(np.isnan(series["S"])).tolist() == [0]
    assert not any(np.isnan(series[name]).any() for name in "HEZ")
    assert series.station == "WIC" and series.sampling_interval_s == 1.0
    assert (series.latitude, series.longitude, series.elevation) == (47.928, 15.866, 1087.01)
    meta = series.metadata
    assert meta["format"] == "ImagCDF" and meta["format_version"] == "1.3" and meta["reported"] == "HEZS"
    assert meta["units"] == {"H": "nT", "E": "nT", "Z": "nT", "S": "nT"}
    assert meta["sensor_orientation"] == "hdz" and meta["station_k9"] == 500.0
    assert meta["missing_marker_counts"] == {"H": 0, "E": 0, "Z": 0, "S": 1}
    assert meta["time_variables"]["H"] == "DataTimes" and meta["missing_time_rows"] == 0


def test_excerpt_time_range_reads_only_those_records():
    start, end = START + np.timedelta64(1800, "s"), START + np.timedelta64(2400, "s")
    series = read_imagcdf(EXCERPT, time_range=(start, end))
    times, values = _cdflib_reference(EXCERPT, 1800, 2399)
    np.testing.assert_array_equal(series.times, times)
    for name in "HEZS":
        np.testing.assert_array_equal(series[name], values[name])
    assert series.metadata["records"] == {"first": 1800, "last": 2399, "total": 7200}
    with pytest.raises(InputDataError) as excinfo:
        read_imagcdf(EXCERPT, time_range=(np.datetime64("2024-05-10T00:00"), np.datetime64("2024-05-10T06:00")))
    _assert_error(excinfo, EXCERPT, "do not overlap")


def test_dispatch_is_by_content_and_compressed_forms_read_alike(tmp_path):
    reference = read_imagcdf(EXCERPT)
    renamed = tmp_path / "observatory.dat"
    shutil.copy(EXCERPT, renamed)
    gz = tmp_path / "wic.cdf.gz"
    gz.write_bytes(gzip.compress(EXCERPT.read_bytes()))
    for path in (renamed, gz):
        series = read_timeseries(path)
        np.testing.assert_array_equal(series.times, reference.times)
        for name in "HEZS":
            np.testing.assert_array_equal(series[name], reference[name])


# ------------------------------------------------------------------ the shared four days
@pytest.mark.shared
def test_real_file_slice_reads_like_cdflib(shared_dir):
    path = shared_dir / REAL
    start = np.datetime64("2024-05-10T16:00:00", "ms")
    series = read_timeseries(path, time_range=(start, start + np.timedelta64(4, "h")))
    first = 86400 + 16 * 3600
    times, values = _cdflib_reference(path, first, first + 4 * 3600 - 1)
    np.testing.assert_array_equal(series.times, times)
    for name in "HEZS":
        np.testing.assert_array_equal(series[name], values[name])
    assert series.metadata["records"] == {"first": first, "last": first + 14399, "total": 345600}
    whole = read_timeseries(path)
    assert len(whole) == 345600 and np.flatnonzero(np.isnan(whole["S"])).tolist() == [0, 345599]
    # the storm of 2024-05-10: H swings by hundreds of nT on that day
    day = (whole.times >= np.datetime64("2024-05-10")) & (whole.times < np.datetime64("2024-05-11"))
    ranges = {name: float(np.ptp(whole[name][day])) for name in "HEZ"}
    assert ranges["H"] > 300 and ranges["E"] > 300 and ranges["Z"] > 50, ranges


@pytest.mark.shared
def test_real_storm_window_becomes_a_spectrogram(shared_dir):
    config = SpectrogramConfig(components=("H", "E", "Z"))
    result = spectrogram_from_file(shared_dir / REAL, "2024-05-10T20:00:00Z", config)
    assert result.spectrogram.image.shape == (112, 112, 3) and np.isfinite(result.spectrogram.image).all()
    assert result.window.series.times[0] == np.datetime64("2024-05-10T14:00:00", "ms")
    assert result.window.series.metadata["records"]["first"] == 86400 + 14 * 3600 - 1  # one interval of margin
    assert result.quality["components"]["H"]["std_nT"] > 20  # a storm, not a quiet day


# ------------------------------------------------------------------ values, gaps, cadence
def test_fill_values_nan_and_out_of_range_become_missing(tmp_path):
    values = _hdz(120)
    values["H"][[3, 50]] = 99999.0  # FILLVAL
    values["D"][7] = np.nan
    values["Z"][[9, 10]] = [-90000.0, np.inf]  # below VALIDMIN, not finite
    path = write_imagcdf(tmp_path / "fill.cdf", {"GeomagneticVectorTimes": (_seconds(120), values)})
    series = read_imagcdf(path)
    assert np.flatnonzero(np.isnan(series["H"])).tolist() == [3, 50]
    assert np.flatnonzero(np.isnan(series["D"])).tolist() == [7]
    assert np.flatnonzero(np.isnan(series["Z"])).tolist() == [9, 10]
    assert series.metadata["missing_marker_counts"] == {"H": 2, "D": 1, "Z": 2}
    assert series.metadata["units"]["D"] == "Degrees of arc"
    # without FILLVAL/VALIDMIN/VALIDMAX the IAGA markers (>= 88888) still mean missing
    bare = {e: {"FILLVAL": None, "VALIDMIN": None, "VALIDMAX": None} for e in "HDZ"}
    path = write_imagcdf(tmp_path / "bare.cdf", {"DataTimes": (_seconds(120), values)}, var_attrs=bare)
    assert np.flatnonzero(np.isnan(read_imagcdf(path)["H"])).tolist() == [3, 50]


def test_missing_time_stamps_become_nan_rows(tmp_path):
    keep = np.ones(600, dtype=bool)
    keep[100:110] = False
    values = {k: v[keep] for k, v in _hdz(600).items()}
    path = write_imagcdf(tmp_path / "gap.cdf", {"DataTimes": (_seconds(600)[keep], values)})
    with pytest.warns(ReaderWarning, match="10 missing time rows"):
        series = read_imagcdf(path)
    assert len(series) == 600 and np.all(np.diff(series.times.astype(np.int64)) == 1000)
    assert np.flatnonzero(np.isnan(series["H"])).tolist() == list(range(100, 110))
    np.testing.assert_array_equal(series["Z"][keep], values["Z"])
    assert series.metadata["missing_time_rows"] == 10


def test_one_minute_cadence_is_checked_never_resampled(tmp_path):
    path = write_imagcdf(tmp_path / "min.cdf", {"DataTimes": (_seconds(1440, step_s=60), _hdz(1440))})
    series = read_imagcdf(path, expected_interval_s=60.0)
    assert series.sampling_interval_s == 60.0 and len(series) == 1440
    assert series.times[-1] == np.datetime64("2024-05-09T23:59:00", "ms")
    for reader in (read_imagcdf, read_timeseries):
        with pytest.raises(InputDataError) as excinfo:
            reader(path)
        _assert_error(excinfo, path, "sampling interval is 60 s but 1 s is expected")


def test_vector_and_scalar_time_variables(tmp_path):
    vector = (_seconds(600), _hdz(600))
    scalar_1s = (_seconds(590, start="2024-05-09T00:00:05"), {"S": np.full(590, 48900.0)})
    path = write_imagcdf(
        tmp_path / "vs.cdf", {"GeomagneticVectorTimes": vector, "GeomagneticScalarTimes": scalar_1s}, depend=False
    )
    series = read_imagcdf(path)
    assert series.component_names == ("H", "D", "Z", "S")
    assert series.metadata["time_variables"] == {
        "H": "GeomagneticVectorTimes",
        "D": "GeomagneticVectorTimes",
        "Z": "GeomagneticVectorTimes",
        "S": "GeomagneticScalarTimes",
    }
    assert np.isnan(series["S"][:5]).all() and np.isnan(series["S"][595:]).all()
    assert np.all(series["S"][5:595] == 48900.0)
    scalar_1min = (_seconds(10, step_s=60), {"S": np.full(10, 48900.0)})
    path = write_imagcdf(
        tmp_path / "vs60.cdf", {"GeomagneticVectorTimes": vector, "GeomagneticScalarTimes": scalar_1min}
    )
    with pytest.warns(ReaderWarning, match="element S left out: 60-s cadence"):
        series = read_imagcdf(path)
    assert series.component_names == ("H", "D", "Z")


def test_xyz_elements_keep_their_names(tmp_path):
    xyz = dict(zip("XYZ", _hdz(60).values()))
    path = write_imagcdf(
        tmp_path / "xyz.cdf",
        {"DataTimes": (_seconds(60), xyz)},
        global_attrs={"Elevation": [99999.0, "CDF_DOUBLE"], "VectorSensOrient": None},
    )
    series = read_imagcdf(path)
    assert series.component_names == ("X", "Y", "Z") and series.elevation is None
    assert "sensor_orientation" not in series.metadata


def test_whole_file_compression(tmp_path):
    values = _hdz(300)
    plain = write_imagcdf(tmp_path / "plain.cdf", {"DataTimes": (_seconds(300), values)})
    packed = write_imagcdf(tmp_path / "packed.cdf", {"DataTimes": (_seconds(300), values)}, whole_file=True)
    assert packed.read_bytes()[4:8] == b"\xcc\xcc\x00\x01"
    a, b = read_timeseries(plain), read_timeseries(packed)
    np.testing.assert_array_equal(a.times, b.times)
    for name in "HDZ":
        np.testing.assert_array_equal(a[name], b[name])


def test_leap_second_record_is_dropped(tmp_path):
    before = cdflib.cdfepoch.compute_tt2000([2016, 12, 31, 23, 59, 58, 0, 0, 0])
    stamps = before + np.arange(4, dtype=np.int64) * 10**9  # 23:59:58, 23:59:59, 23:59:60, 00:00:00
    path = write_imagcdf(tmp_path / "leap.cdf", {"DataTimes": (stamps, {"H": [1.0, 2.0, 3.0, 4.0]})})
    with pytest.warns(ReaderWarning, match="leap-second"):
        series = read_imagcdf(path)
    assert series.times.tolist() == [
        np.datetime64("2016-12-31T23:59:58", "ms").item(),
        np.datetime64("2016-12-31T23:59:59", "ms").item(),
        np.datetime64("2017-01-01T00:00:00", "ms").item(),
    ]
    np.testing.assert_array_equal(series["H"], [1.0, 2.0, 4.0])


# ------------------------------------------------------------------ malformed files
def _bad_files(tmp_path: Path) -> list[tuple[Path, str]]:
    t, v = _seconds(60), _hdz(60)
    backwards = t.copy()
    backwards[30] = backwards[10]
    irregular = t.astype("datetime64[ms]")
    irregular[20:] += np.timedelta64(500, "ms")
    short = {**v, "Z": v["Z"][:50]}
    cases = [
        (write_imagcdf(tmp_path / "no_code.cdf", {"DataTimes": (t, v)}, global_attrs={"IagaCode": None}), "IagaCode"),
        (
            write_imagcdf(tmp_path / "no_elements.cdf", {"DataTimes": (t, v)}, global_attrs={"ElementsRecorded": None}),
            "ElementsRecorded",
        ),
        (
            write_imagcdf(tmp_path / "no_var.cdf", {"DataTimes": (t, v)}, global_attrs={"ElementsRecorded": "HDZF"}),
            "no variable GeomagneticFieldF",
        ),
        (
            write_imagcdf(tmp_path / "depend.cdf", {"DataTimes": (t, v)}, var_attrs={"D": {"DEPEND_0": "Nowhere"}}),
            "DEPEND_0 names 'Nowhere'",
        ),
        (write_imagcdf(tmp_path / "no_time.cdf", {"Epoch": (t, v)}, depend=False), "no time variable"),
        (write_imagcdf(tmp_path / "back.cdf", {"DataTimes": (backwards, v)}), "must increase"),
        (write_imagcdf(tmp_path / "odd.cdf", {"DataTimes": (irregular, v)}), "irregular time stamp"),
        (write_imagcdf(tmp_path / "short.cdf", {"DataTimes": (t, short)}), "has 50 records but"),
    ]
    v2 = tmp_path / "v2.cdf"
    v2.write_bytes(b"\xcd\xf2\x60\x02\x00\x00\xff\xff" + bytes(400))
    truncated = tmp_path / "truncated.cdf"
    truncated.write_bytes(EXCERPT.read_bytes()[:100_000])
    cut_packed = tmp_path / "cut_packed.cdf"
    packed = write_imagcdf(tmp_path / "packed.cdf", {"DataTimes": (t, v)}, whole_file=True).read_bytes()
    cut_packed.write_bytes(packed[: len(packed) // 2])
    return cases + [(v2, "CDF version 2"), (truncated, "corrupt CDF file"), (cut_packed, "corrupt CDF file")]


def test_malformed_files_raise_one_line_input_errors(tmp_path):
    for path, fragment in _bad_files(tmp_path):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(InputDataError) as excinfo:
                read_timeseries(path)
        _assert_error(excinfo, path, fragment)


def test_wrong_time_type_is_refused(tmp_path):
    path = write_imagcdf(tmp_path / "epoch.cdf", {"DataTimes": (_seconds(60), _hdz(60))})
    data = bytearray(path.read_bytes())
    cdf = cdflib.CDF(str(path))
    assert cdf.varinq("DataTimes").Data_Type == 33
    offset = data.find(b"DataTimes".ljust(256, b"\x00")) - 84  # the zVDR holding the name
    assert int.from_bytes(data[offset + 20 : offset + 24], "big") == 33
    data[offset + 20 : offset + 24] = (45).to_bytes(4, "big")  # CDF_DOUBLE
    path.write_bytes(bytes(data))
    with pytest.raises(InputDataError) as excinfo:
        read_imagcdf(path)
    _assert_error(excinfo, path, "DataTimes is CDF_DOUBLE, expected CDF_TIME_TT2000")


# ------------------------------------------------------------------ pipeline and data source
def test_raw_imagcdf_window_becomes_a_spectrogram_with_axes():
    result = spectrogram_from_file(EXCERPT, "2024-05-09T01:30:00Z", SMALL)
    spectrogram = result.spectrogram
    assert spectrogram.image.shape == (32, 32, 3) and np.isfinite(spectrogram.image).all()
    axes = spectrogram.axes
    assert axes.components == ("H", "E", "Z") and axes.event_time.startswith("2024-05-09T01:30")
    assert axes.shape == (32, 32)
    assert result.window.start_time == np.datetime64("2024-05-09T00:30:00", "ms")
    assert result.window.series.metadata["records"] == {"first": 1799, "last": 5399, "total": 7200}
    assert set(axes.extra["quality"]["components"]) == {"H", "E", "Z", "S"}


def test_csv_row_with_a_cdf_file(tmp_path):
    shutil.copy(EXCERPT, tmp_path / "wic.cdf")
    (tmp_path / "class_mappings.json").write_text(
        '{"magnitude_classes": ["Normal", "Large"], "azimuth_classes": ["Normal", "N"]}'
    )
    (tmp_path / "meta.csv").write_text(
        "magnitude_class,azimuth_class,station,date,path,event_time\n"
        "Large,N,WIC,2024-05-09,wic.cdf,2024-05-09T01:45:00Z\n"
    )
    config = {
        "window_hours": 1.0,
        "nperseg": 1024,
        "hop": 64,
        "frequency_range_hz": [0.001, 0.1],
        "components": ["H", "E", "Z"],
        "grid": [32, 32],
        "gaps": {"max_interpolate_s": 30},
    }
    source = CsvDataSource(tmp_path / "meta.csv", spectrogram=config)
    assert source.gaps == {"max_interpolate_s": 30} and source.detrend == "linear"
    loaded = source.load(source.records()[0])
    assert loaded.image.shape == (32, 32, 3) and loaded.axes.components == ("H", "E", "Z")
    assert loaded.axes.extra["quality"]["station"] == "WIC"
