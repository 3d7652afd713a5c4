"""Raw readers: IAGA-2002 text and BMKG FRG-604RC binary day files, and the dispatcher."""

from __future__ import annotations

import gzip
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputDataError
from geomag.bmkg import BLOCK_BYTES, read_bmkg_frg604, read_frg604_day
from geomag.iaga2002 import header_interval_s, read_iaga2002
from geomag.readers import ReaderWarning, TruncatedFileWarning, read_timeseries

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WIC_DAY = SHARED / "data" / "iaga2002" / "wic_2018-08-29_1s.sec"
LUT_DAY1 = SHARED / "data" / "bmkg" / "S230101.LUT.gz"
LUT_DAY2 = SHARED / "data" / "bmkg" / "S230102.LUT.gz"
WIC_EXCERPT = FIXTURES / "wic_2018-08-29_excerpt.sec"
WIC_F_EXCERPT = FIXTURES / "wic_2018-08-29_Fgap_excerpt.sec"
LUT_TRUNCATED = FIXTURES / "S230101.LUT.gz"
HEADER_LINES = 18  # header lines before the DATE TIME DOY line in the WIC files


def _shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not available (../shared/data is absent)")
    return path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


def _write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines))
    return path


def _assert_error(excinfo: pytest.ExceptionInfo, path: Path, *fragments: str) -> str:
    """The documented error contract: InputDataError, names the file, one line."""
    assert isinstance(excinfo.value, InputDataError)
    message = str(excinfo.value)
    assert str(path) in message
    assert "\n" not in message and "\r" not in message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    return message


def _raw_day(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


# ------------------------------------------------------------------ IAGA-2002: fixtures
def test_iaga_excerpt_maps_ehzf_columns_and_values():
    series = read_iaga2002(WIC_EXCERPT)
    assert series.component_names == ("E", "H", "Z", "F")
    assert series.station == "WIC"
    assert series.sampling_interval_s == 1.0
    assert len(series) == 1200
    assert series.times[0] == np.datetime64("2018-08-29T01:46:32", "ms")
    assert np.all(np.diff(series.times.astype(np.int64)) == 1000)
    assert series.latitude == pytest.approx(47.92838619394309)
    assert series.longitude == pytest.approx(15.86203084811201)
    assert series.elevation == pytest.approx(1087.01)
    assert series.metadata["reported"] == "EHZF"
    assert series.metadata["data_type"] == "variation"
    assert "File created by      MagPy 0.9.1" in series.metadata["comments"]
    # first row: 2018-08-29 01:46:32.000 241  E H Z F (from the file)
    first = _lines(WIC_EXCERPT)[HEADER_LINES + 1].split()
    for k, name in enumerate("EHZF"):
        assert series[name][0] == pytest.approx(float(first[3 + k]))


def test_iaga_missing_markers_become_nan():
    series = read_iaga2002(WIC_EXCERPT)
    gap = series.times == np.datetime64("2018-08-29T01:56:32", "ms")
    for name in "EHZ":
        assert np.isnan(series[name]).sum() == 1
        assert np.isnan(series[name][gap]).all()
    assert np.isnan(series["F"]).sum() == 0
    assert series["F"][gap][0] == pytest.approx(48632.09)
    f_series = read_iaga2002(WIC_F_EXCERPT)
    assert len(f_series) == 120
    assert np.isnan(f_series["F"]).sum() == 8
    assert f_series.metadata["missing_marker_counts"] == {"E": 0, "H": 0, "Z": 0, "F": 8}
    assert all(np.isfinite(f_series[name]).all() for name in "EHZ")


def test_iaga_gzip_and_dispatch(tmp_path):
    gz = tmp_path / "wic.sec.gz"
    gz.write_bytes(gzip.compress(WIC_EXCERPT.read_bytes()))
    a = read_iaga2002(WIC_EXCERPT)
    b = read_timeseries(gz)
    assert np.array_equal(a.times, b.times)
    for name in a.component_names:
        np.testing.assert_array_equal(a[name], b[name])
    renamed = tmp_path / "anything.txt"
    renamed.write_bytes(WIC_EXCERPT.read_bytes())
    assert read_timeseries(renamed).station == "WIC"


def test_iaga_lf_line_ends_and_xyzf(tmp_path):
    lines = [ln.replace(b"\r", b"") for ln in _lines(WIC_EXCERPT)]
    lines[7] = b" Reported               XYZF                                         |"
    lines[HEADER_LINES] = b"DATE       TIME         DOY     WICX      WICY      WICZ      WICF   |"
    series = read_iaga2002(_write_lines(tmp_path / "xyz.sec", lines))
    assert series.component_names == ("X", "Y", "Z", "F")
    assert len(series) == 1200


def test_iaga_time_gap_rows_are_nan_filled_with_warning(tmp_path):
    lines = _lines(WIC_EXCERPT)
    del lines[HEADER_LINES + 101 : HEADER_LINES + 111]  # 10 rows removed
    path = _write_lines(tmp_path / "gap.sec", lines)
    with pytest.warns(ReaderWarning, match="10 missing time rows"):
        series = read_iaga2002(path)
    assert len(series) == 1200
    assert np.isnan(series["F"]).sum() == 10
    assert np.all(np.diff(series.times.astype(np.int64)) == 1000)


def test_iaga_header_interval_parsing():
    assert header_interval_s("1-second (501-1500)") == 1.0
    assert header_interval_s("Filtered 1-minute (00:15-01:45)") == 60.0
    assert header_interval_s("Average 1-Hour") == 3600.0
    assert header_interval_s("irregular") is None


# ------------------------------------------------------------------ IAGA-2002: errors
def test_iaga_missing_and_empty_file(tmp_path):
    missing = tmp_path / "nope.sec"
    with pytest.raises(InputDataError) as excinfo:
        read_iaga2002(missing)
    _assert_error(excinfo, missing, "not found")
    empty = tmp_path / "empty.sec"
    empty.write_bytes(b"")
    with pytest.raises(InputDataError) as excinfo:
        read_iaga2002(empty)
    _assert_error(excinfo, empty, "empty")
    blank = tmp_path / "blank.sec"
    blank.write_bytes(b"  \r\n\n")
    with pytest.raises(InputDataError) as excinfo:
        read_iaga2002(blank)
    _assert_error(excinfo, blank, "empty")


@pytest.mark.parametrize(
    ("line_index", "label"),
    [(0, "Format"), (3, "IAGA Code"), (7, "Reported")],
)
def test_iaga_missing_required_header(tmp_path, line_index, label):
    lines = _lines(WIC_EXCERPT)
    del lines[line_index]
    path = _write_lines(tmp_path / "nohdr.sec", lines)
    with pytest.raises(InputDataError) as excinfo:
        read_iaga2002(path)
    _assert_error(excinfo, path, f"'{label}'")


@pytest.mark.parametrize(
    ("reported", "fragment"),
    [(b"EHZQ", "unknown element"), (b"EHZ ", "3 elements"), (b"EHZFF", "repeats"), (b"HDZF", "disagree")],
)
def test_iaga_bad_reported(tmp_path, reported, fragment):
    lines = _lines(WIC_EXCERPT)
    lines[7] = b" Reported               " + reported + b"                                |\r"
    path = _write_lines(tmp_path / "rep.sec", lines)
    with pytest.raises(InputDataError) as excinfo:
        read_iaga2002(path)
    _assert_error(excinfo, path, fragment)


def test_iaga_non_numeric_value_names_the_line(tmp_path):
    lines = _lines(WIC_EXCERPT)
    row = HEADER_LINES + 1 + 50
    lines[row] = (
        lines[row].replace(b"21027.", b"2x027.", 1)
        if b"21027." in lines[row]
        else (lines[row][:45] + b"x" + lines[row][46:])
    )
    path = _write_lines(tmp_path / "nan.sec", lines)
    with pytest.raises(InputDataError) as excinfo:
        read_iaga2002(path)
    _assert_error(excinfo, path, f"line {row + 1}", "non-numeric")


def test_iaga_non_utf8_bytes(tmp_path):
    lines = _lines(WIC_EXCERPT)
    lines[HEADER_LINES + 5] = lines[HEADER_LINES + 5] + b"\xff\xfe"
    path = _write_lines(tmp_path / "bin.sec", lines)
    with pytest.raises(InputDataError) as excinfo:
        read_iaga2002(path)
    _assert_error(excinfo, path, "UTF-8", f"line {HEADER_LINES + 6}")


def test_iaga_inconsistent_column_count(tmp_path):
    lines = _lines(WIC_EXCERPT)
    row = HEADER_LINES + 1 + 300
    lines[row] = lines[row].rstrip(b"\r") + b"   12.34\r"
    path = _write_lines(tmp_path / "cols.sec", lines)
    with pytest.raises(InputDataError) as excinfo:
        read_iaga2002(path)
    _assert_error(excinfo, path, f"line {row + 1}", "8 fields")


@pytest.mark.parametrize("kind", ["swap", "duplicate"])
def test_iaga_non_monotonic_time(tmp_path, kind):
    lines = _lines(WIC_EXCERPT)
    row = HEADER_LINES + 1 + 200
    if kind == "swap":
        lines[row], lines[row + 1] = lines[row + 1], lines[row]
    else:
        lines[row + 1] = lines[row]
    path = _write_lines(tmp_path / "order.sec", lines)
    with pytest.raises(InputDataError) as excinfo:
        read_iaga2002(path)
    _assert_error(excinfo, path, f"line {row + 2}", "must increase")


def _minute_file(tmp_path: Path, header_interval: bytes = b"1-minute (00:15-01:45)") -> Path:
    lines = _lines(WIC_EXCERPT)
    head = lines[: HEADER_LINES + 1]
    head[10] = b" Data Interval Type     " + header_interval + b"                       |\r"
    rows = [ln for ln in lines[HEADER_LINES + 1 :] if ln.strip()]
    minute_rows = [r for r in rows if r[17:23] == b"00.000"]  # rows at hh:mm:00
    return _write_lines(tmp_path / "wic.min", head + minute_rows + [b""])


def test_iaga_one_minute_file_is_rejected_never_resampled(tmp_path):
    path = _minute_file(tmp_path)
    with pytest.raises(InputDataError) as excinfo:
        read_iaga2002(path, expected_interval_s=1.0)
    _assert_error(excinfo, path, "60 s", "1 s", "never resampled")
    with pytest.raises(InputDataError):
        read_timeseries(path)
    series = read_iaga2002(path, expected_interval_s=60.0)
    assert series.sampling_interval_s == 60.0 and len(series) == 20


def test_iaga_header_interval_must_match_time_stamps(tmp_path):
    path = _minute_file(tmp_path, header_interval=b"1-second (501-1500)  ")
    with pytest.raises(InputDataError) as excinfo:
        read_iaga2002(path, expected_interval_s=None)
    _assert_error(excinfo, path, "Data Interval Type")


def test_iaga_no_column_line_and_no_rows(tmp_path):
    lines = _lines(WIC_EXCERPT)
    path = _write_lines(tmp_path / "nocol.sec", lines[:HEADER_LINES])
    with pytest.raises(InputDataError) as excinfo:
        read_iaga2002(path)
    _assert_error(excinfo, path, "DATE TIME DOY")
    path = _write_lines(tmp_path / "norows.sec", lines[: HEADER_LINES + 1] + [b""])
    with pytest.raises(InputDataError) as excinfo:
        read_iaga2002(path)
    _assert_error(excinfo, path, "no data rows")


def test_iaga_cut_last_line_is_dropped_with_warning(tmp_path):
    data = WIC_EXCERPT.read_bytes().rstrip(b"\r\n")
    path = tmp_path / "cut.sec"
    path.write_bytes(data[:-4])  # "48632.86" -> "4863": would be a wrong value
    with pytest.warns(TruncatedFileWarning):
        series = read_iaga2002(path)
    assert len(series) == 1199
    assert np.nanmin(series["F"]) > 48000


# ------------------------------------------------------------------ IAGA-2002: the real day
@pytest.mark.shared
def test_iaga_full_day_counts_values_and_speed():
    path = _shared(WIC_DAY)
    start = time.process_time()  # CPU time: robust to other processes sharing the cores
    series = read_iaga2002(path)
    elapsed = time.process_time() - start
    assert elapsed < 2.0, f"86,400 rows took {elapsed:.2f} s of CPU"
    assert len(series) == 86400
    assert series.component_names == ("E", "H", "Z", "F")
    assert series.times[-1] == np.datetime64("2018-08-29T23:59:59", "ms")
    counts = {name: int(np.isnan(series[name]).sum()) for name in series.component_names}
    assert counts == {"E": 1, "H": 1, "Z": 1, "F": 13}
    assert (series["E"][0], series["H"][0], series["Z"][0], series["F"][0]) == (16.56, 21027.32, 43859.29, 48632.86)
    excerpt = read_iaga2002(WIC_EXCERPT)
    offset = int((excerpt.times[0] - series.times[0]) / np.timedelta64(1, "s"))
    for name in series.component_names:
        np.testing.assert_array_equal(series[name][offset : offset + 1200], excerpt[name])


# ------------------------------------------------------------------ BMKG FRG-604RC
@pytest.mark.shared
@pytest.mark.parametrize(("path", "h_mean", "n_invalid"), [(LUT_DAY1, 38385.1, 60), (LUT_DAY2, 38392.3, 0)])
def test_bmkg_full_days(path, h_mean, n_invalid):
    path = _shared(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReaderWarning)  # a clean day warns about nothing
        series = read_timeseries(path)
    assert series.station == "LUT"
    assert series.component_names == ("H", "D", "Z")
    assert len(series) == 86400
    assert series.times[0] == np.datetime64(f"2023-01-0{path.name[6]}T00:00:00", "ms")
    assert np.all(np.diff(series.times.astype(np.int64)) == 1000)
    h, d, z = series["H"], series["D"], series["Z"]
    assert abs(np.nanmean(h) - h_mean) < 5
    assert 2 < np.nanstd(h) < 30
    assert abs(np.nanmean(d) + 50) < 5 and 2 < np.nanstd(d) < 30
    assert abs(np.nanmean(z) + 23465) < 5 and 2 < np.nanstd(z) < 30
    for values in (h, d, z):
        assert int(np.isnan(values).sum()) == n_invalid
    assert series.metadata["invalid_counts"] == {"H": n_invalid, "D": n_invalid, "Z": n_invalid}
    assert series.metadata["trailing_bytes"] == 3


@pytest.mark.shared
def test_bmkg_day1_invalid_seconds_and_auxiliary():
    day = read_frg604_day(_shared(LUT_DAY1))
    bad = np.flatnonzero(np.isnan(day.h))
    assert bad.size == 60 and np.all(np.diff(bad) == 1)  # one contiguous minute
    assert np.array_equal(bad, np.flatnonzero(np.isnan(day.z)))
    assert np.isnan(day.temperature_sensor_degC[bad]).all()
    assert 25 < np.nanmean(day.temperature_sensor_degC) < 40


def test_bmkg_truncated_fixture_reads_complete_blocks_with_warning():
    with pytest.warns(TruncatedFileWarning, match="3 complete blocks"):
        series = read_bmkg_frg604(LUT_TRUNCATED)
    assert len(series) == 1800
    assert series.times[0] == np.datetime64("2023-01-01T00:00:00", "ms")
    assert series.times[-1] == np.datetime64("2023-01-01T00:29:59", "ms")
    assert abs(np.nanmean(series["H"]) - 38385) < 50
    assert all(np.isfinite(series[c]).all() for c in "HDZ")
    if LUT_DAY1.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = read_bmkg_frg604(LUT_DAY1)
        np.testing.assert_array_equal(full["H"][:1800], series["H"])


def test_bmkg_truncated_gzip_stream_and_plain_file(tmp_path):
    cut = tmp_path / "S230101.LUT.gz"
    cut.write_bytes(LUT_TRUNCATED.read_bytes()[:-200])
    with pytest.warns(TruncatedFileWarning):
        series = read_timeseries(cut)
    assert len(series) % 600 == 0 and len(series) >= 600
    plain = tmp_path / "S230101.LUT"
    plain.write_bytes(_raw_day(LUT_TRUNCATED)[: 2 * BLOCK_BYTES])
    with pytest.warns(TruncatedFileWarning, match="2 of 144"):
        assert len(read_timeseries(plain)) == 1200
    renamed = tmp_path / "lut_day.bin"  # no BMKG name: detected by content
    renamed.write_bytes(plain.read_bytes())
    with pytest.warns(TruncatedFileWarning):
        assert read_timeseries(renamed).station == "LUT"


def test_bmkg_station_mismatch(tmp_path):
    path = tmp_path / "S230101.ABC.gz"
    path.write_bytes(LUT_TRUNCATED.read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedFileWarning)
        with pytest.raises(InputDataError) as excinfo:
            read_timeseries(path)
    _assert_error(excinfo, path, "ABC", "LUT")


def test_bmkg_no_complete_block_and_empty(tmp_path):
    short = tmp_path / "S230101.LUT"
    short.write_bytes(_raw_day(LUT_TRUNCATED)[: BLOCK_BYTES - 1])
    with pytest.raises(InputDataError) as excinfo:
        read_bmkg_frg604(short)
    _assert_error(excinfo, short, "no complete")
    empty = tmp_path / "S230102.LUT"
    empty.write_bytes(b"")
    with pytest.raises(InputDataError) as excinfo:
        read_timeseries(empty)
    _assert_error(excinfo, empty, "empty")
    missing = tmp_path / "S230103.LUT.gz"
    with pytest.raises(InputDataError) as excinfo:
        read_timeseries(missing)
    _assert_error(excinfo, missing, "not found")


def test_bmkg_all_values_invalid(tmp_path):
    raw = bytearray(_raw_day(LUT_TRUNCATED)[: 3 * BLOCK_BYTES])
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(3, BLOCK_BYTES).copy()
    records = blocks[:, 30:].reshape(3, 600, 17)
    records[..., 0:9] = np.tile(np.array([0xFF, 0xFF, 0x7F], dtype=np.uint8), 3)
    blocks[:, 30:] = records.reshape(3, -1)
    path = tmp_path / "S230101.LUT"
    path.write_bytes(blocks.tobytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReaderWarning)
        with pytest.raises(InputDataError) as excinfo:
            read_bmkg_frg604(path)
    _assert_error(excinfo, path, "invalid")


def test_bmkg_corrupt_block_header(tmp_path):
    raw = bytearray(_raw_day(LUT_TRUNCATED)[: 3 * BLOCK_BYTES])
    raw[BLOCK_BYTES + 6] = 13  # month 13 in block 1
    path = tmp_path / "S230101.LUT"
    path.write_bytes(bytes(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReaderWarning)
        with pytest.raises(InputDataError) as excinfo:
            read_bmkg_frg604(path)
    _assert_error(excinfo, path, "block 1")
    raw[BLOCK_BYTES + 6] = 1
    raw[BLOCK_BYTES + 9] = 0  # block 1 starts at 00:00 again: overlaps block 0
    path.write_bytes(bytes(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReaderWarning)
        with pytest.raises(InputDataError) as excinfo:
            read_bmkg_frg604(path)
    _assert_error(excinfo, path, "overlapping")


def test_bmkg_missing_block_is_nan_filled(tmp_path):
    raw = _raw_day(LUT_TRUNCATED)
    path = tmp_path / "S230101.LUT"
    path.write_bytes(raw[:BLOCK_BYTES] + raw[2 * BLOCK_BYTES : 3 * BLOCK_BYTES])  # block 1 missing
    with pytest.warns(ReaderWarning) as record:
        series = read_bmkg_frg604(path)
    assert any("1 missing blocks" in str(w.message) for w in record)
    assert len(series) == 1800
    assert np.isnan(series["H"][600:1200]).all()
    assert np.isfinite(series["H"][:600]).all() and np.isfinite(series["H"][1200:]).all()


def test_bmkg_interval_other_than_one_second_is_rejected():
    with pytest.raises(InputDataError) as excinfo:
        read_bmkg_frg604(LUT_TRUNCATED, expected_interval_s=60.0)
    _assert_error(excinfo, LUT_TRUNCATED, "60 s")


# ------------------------------------------------------------------ dispatcher
def test_unknown_format(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello world\n")
    with pytest.raises(InputDataError) as excinfo:
        read_timeseries(path)
    _assert_error(excinfo, path, "unknown file format")
    folder = tmp_path / "S230101.LUT"
    folder.mkdir()
    with pytest.raises(InputDataError) as excinfo:
        read_timeseries(folder)
    _assert_error(excinfo, folder, "not a regular file")
