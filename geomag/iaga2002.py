"""Reader for IAGA-2002 text files (INTERMAGNET exchange format, 1-second or 1-minute data).

Format reference: IAGA-2002 "Data Exchange Format" (INTERMAGNET Technical Reference Manual,
v5.0, section 4.7). A header of fixed-width ``Key  value |`` lines (comments start with
``#``) is followed by the column line ``DATE TIME DOY <code><element> ... |`` and one row per
sample. The element letters of the columns come from the ``Reported`` header (``HDZF``,
``XYZF``, ``EHZF``, ...). Values >= 88888 mark missing (99999) or unrecorded (88888) data.

The reader never resamples: the sampling interval is taken from the time stamps, and a
file whose interval differs from ``expected_interval_s`` is rejected.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np

from core.errors import InputDataError
from geomag.readers import TruncatedFileWarning, load_bytes, warn_data
from geomag.timeseries import GeomagSeries

logger = logging.getLogger(__name__)

#: Element letters IAGA-2002 allows in ``Reported``.
VALID_ELEMENTS = frozenset("XYZHDEFG")
#: Values at or above this are IAGA-2002 missing (99999) / not-recorded (88888) markers.
MISSING_THRESHOLD = 88888.0
#: Header keys (lower case) -> metadata names.
HEADER_KEYS = {
    "format": "format",
    "source of data": "source_of_data",
    "station name": "station_name",
    "iaga code": "iaga_code",
    "geodetic latitude": "latitude",
    "geodetic longitude": "longitude",
    "elevation": "elevation",
    "reported": "reported",
    "sensor orientation": "sensor_orientation",
    "digital sampling": "digital_sampling",
    "data interval type": "data_interval_type",
    "data type": "data_type",
    "publication date": "publication_date",
}
REQUIRED_HEADER = (("format", "Format"), ("iaga_code", "IAGA Code"), ("reported", "Reported"))
#: A time series may have gaps, but a span this many times longer than its rows is corrupt.
MAX_GRID_EXPANSION = 10

_DATA_ROW = re.compile(r"^\d{4}-\d{2}-\d{2}\s")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)
_TIME = re.compile(r"^\d{2}:\d{2}:\d{2}(\.\d{1,3})?$", re.ASCII)
_INTERVAL = re.compile(r"(\d+(?:\.\d+)?)\s*-?\s*(second|sec|minute|min|hour|day)", re.IGNORECASE)
_UNIT_SECONDS = {"sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


def header_interval_s(text: str | None) -> float | None:
    """Seconds named by a ``Data Interval Type`` value (``"1-second (501-1500)"`` -> 1.0)."""
    if not text:
        return None
    match = _INTERVAL.search(text)
    if not match:
        return None
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]


def _decode(path: Path, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputDataError(path, f"not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    nul = text.find("\x00")
    if nul >= 0:
        raise InputDataError(path, f"binary content (NUL byte) on line {text.count(chr(10), 0, nul) + 1}")
    return text


def _parse_header(path: Path, lines: list[str]) -> tuple[dict, list[str], int]:
    """Header fields, column names and the index of the column line."""
    fields: dict = {"comments": [], "unrecognised_header_lines": []}
    columns: list[str] | None = None
    column_index = -1
    for index, raw in enumerate(lines):
        stripped = raw.strip()
        if not stripped:
            continue
        body = stripped[:-1].rstrip() if stripped.endswith("|") else stripped
        tokens = body.split()
        if tokens[:3] == ["DATE", "TIME", "DOY"] or (tokens and tokens[0].upper() == "DATE"):
            if [t.upper() for t in tokens[:3]] != ["DATE", "TIME", "DOY"]:
                raise InputDataError(
                    path, f"line {index + 1}: column line must start with 'DATE TIME DOY', got {body!r:.60}"
                )
            columns = tokens[3:]
            column_index = index
            break
        if body.startswith("#"):
            fields["comments"].append(body[1:].strip())
            continue
        if _DATA_ROW.match(body):
            raise InputDataError(path, f"line {index + 1}: data row before the 'DATE TIME DOY' column line")
        lowered = body.lower()
        for key, name in HEADER_KEYS.items():
            if lowered.startswith(key) and (len(lowered) == len(key) or lowered[len(key)].isspace()):
                fields[name] = body[len(key) :].strip()
                break
        else:
            fields["unrecognised_header_lines"].append(body[:80])
    for name, label in REQUIRED_HEADER:
        if not fields.get(name):
            raise InputDataError(path, f"missing required IAGA-2002 header field '{label}'")
    if "IAGA-2002" not in fields["format"].upper().replace(" ", ""):
        raise InputDataError(path, f"header 'Format' is {fields['format']!r:.40}, expected IAGA-2002")
    if columns is None:
        raise InputDataError(path, "no 'DATE TIME DOY ...' column line after the header")
    if not columns:
        raise InputDataError(path, f"line {column_index + 1}: column line names no data columns")
    return fields, columns, column_index


def _elements(path: Path, fields: dict, columns: list[str]) -> list[str]:
    """Component names from ``Reported``, checked against the data columns."""
    reported = "".join(fields["reported"].split()).upper()
    bad = [c for c in reported if c not in VALID_ELEMENTS]
    if bad:
        raise InputDataError(path, f"unknown element(s) {''.join(bad)!r} in Reported {reported!r} (allowed: XYZHDEFG)")
    if len(set(reported)) != len(reported):
        raise InputDataError(path, f"Reported {reported!r} repeats an element")
    if len(reported) != len(columns):
        raise InputDataError(
            path,
            f"Reported {reported!r} has {len(reported)} elements but the file has {len(columns)} "
            f"data columns {' '.join(columns)}",
        )
    code = fields["iaga_code"].strip().upper()
    names = [c.upper() for c in columns]
    if all(len(n) == len(code) + 1 and n.startswith(code) for n in names):
        letters = "".join(n[-1] for n in names)
        if letters != reported:
            raise InputDataError(path, f"column names {' '.join(columns)} disagree with Reported {reported!r}")
    return list(reported)


_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True  # what str.split() splits on (ASCII)


def _split_table(
    path: Path, rows: list[str], n_fields: int, line_no: np.ndarray, n_columns: int
) -> list[Sequence[str]]:
    """Columns of the data rows, checking every row has ``n_fields`` tokens.

    Fast path: one ``str.split`` of the whole block plus a vectorised per-line token count on
    the bytes; any disagreement falls back to splitting line by line to name the bad line.
    """
    block = "\n".join(rows)
    tokens = block.split()
    if len(tokens) == len(rows) * n_fields:
        raw = np.frombuffer(block.encode("utf-8"), dtype=np.uint8)
        space = _ASCII_SPACE[raw]
        starts = ~space
        starts[1:] &= space[:-1]
        line_of = np.cumsum(raw == 10)
        counts = np.bincount(line_of[starts], minlength=len(rows))
        if counts.size == len(rows) and np.all(counts == n_fields):
            return [tokens[k::n_fields] for k in range(n_fields)]
    split_rows = [r.split() for r in rows]
    lengths = np.fromiter((len(r) for r in split_rows), dtype=np.int64, count=len(split_rows))
    wrong = np.flatnonzero(lengths != n_fields)
    if wrong.size:
        i = int(wrong[0])
        raise InputDataError(
            path,
            f"line {line_no[i]}: {lengths[i]} fields, expected {n_fields} (DATE TIME DOY + {n_columns} data columns)",
        )
    return list(zip(*split_rows))


def _fast_times(dates: Sequence[str], times: Sequence[str]) -> np.ndarray | None:
    """Vectorised parse of ``YYYY-MM-DD`` + ``HH:MM:SS.fff`` columns; None if not in that form."""
    d = np.array(dates)
    t = np.array(times)
    if d.dtype != np.dtype("<U10") or t.dtype != np.dtype("<U12"):
        return None
    dc = d.view(np.uint32).reshape(-1, 10).astype(np.int64) - 48
    tc = t.view(np.uint32).reshape(-1, 12).astype(np.int64) - 48
    digit_d = [0, 1, 2, 3, 5, 6, 8, 9]
    digit_t = [0, 1, 3, 4, 6, 7, 9, 10, 11]
    if (
        np.any((dc[:, digit_d] < 0) | (dc[:, digit_d] > 9))
        or np.any((tc[:, digit_t] < 0) | (tc[:, digit_t] > 9))
        or np.any(dc[:, [4, 7]] != ord("-") - 48)
        or np.any(tc[:, [2, 5]] != ord(":") - 48)
        or np.any(tc[:, 8] != ord(".") - 48)
    ):
        return None
    hour = tc[:, 0] * 10 + tc[:, 1]
    minute = tc[:, 3] * 10 + tc[:, 4]
    second = tc[:, 6] * 10 + tc[:, 7]
    milli = tc[:, 9] * 100 + tc[:, 10] * 10 + tc[:, 11]
    if np.any(hour > 23) or np.any(minute > 59) or np.any(second > 59):
        return None
    unique_dates, inverse = np.unique(d, return_inverse=True)
    try:
        days = np.array(unique_dates, dtype="datetime64[D]")
    except ValueError:
        return None
    if np.any(np.isnat(days)):
        return None
    tod = ((hour * 60 + minute) * 60 + second) * 1000 + milli
    return days[inverse.ravel()].astype("datetime64[ms]") + tod.astype("timedelta64[ms]")


def _slow_times(path: Path, dates: Sequence[str], times: Sequence[str], line_no: np.ndarray) -> np.ndarray:
    """Generic numpy parse, with the line of the first bad stamp in the error."""
    out = np.empty(len(dates), dtype="datetime64[ms]")
    for i, (d, t) in enumerate(zip(dates, times)):
        value = np.datetime64("NaT")
        if _DATE.match(d) and _TIME.match(t):  # numpy alone would take time zones, 'T', week dates...
            with contextlib.suppress(ValueError, OverflowError):
                value = np.datetime64(f"{d}T{t}", "ms")
        if np.isnat(value):
            raise InputDataError(path, f"line {line_no[i]}: invalid date/time {d} {t!s:.30}")
        out[i] = value
    return out


def _numeric(path: Path, column: Sequence[str], line_no: np.ndarray, label: str) -> np.ndarray:
    try:
        values = np.fromiter(map(float, column), dtype=np.float64, count=len(column))
    except (ValueError, OverflowError):
        values = None
    if values is None or not np.all(np.isfinite(values)):
        for i, token in enumerate(column):
            try:
                ok = np.isfinite(float(token))
            except (ValueError, OverflowError):
                ok = False
            if not ok:
                raise InputDataError(path, f"line {line_no[i]}: non-numeric {label} value {token!r:.30}")
    return values


def _data_rows(path: Path, lines: list[str], column_index: int, complete: bool) -> tuple[list[str], np.ndarray]:
    """The non-blank rows after the column line and their 1-based line numbers.

    A last line cut mid-row (truncated download) would parse as a wrong value: it is dropped with a
    :class:`TruncatedFileWarning`.
    """
    body = lines[column_index + 1 :]
    keep = [j for j, ln in enumerate(body) if ln and not ln.isspace()]
    if not keep:
        raise InputDataError(path, "no data rows after the column line")
    last = keep[-1]
    unterminated = last == len(body) - 1
    if unterminated and len(keep) >= 2:
        short = len(body[last].rstrip("\r")) != len(body[keep[-2]].rstrip("\r"))
        if short or not complete:
            warn_data(
                path,
                f"last line {column_index + 2 + last} is incomplete (truncated file?); ignored",
                TruncatedFileWarning,
            )
            keep.pop()
    elif not complete:
        warn_data(path, "gzip stream ends early (truncated file?); read the complete lines", TruncatedFileWarning)
    line_no = np.asarray(keep, dtype=np.int64) + column_index + 2
    return [body[j] for j in keep], line_no


def _parse_rows(
    path: Path, rows: list[str], line_no: np.ndarray, columns: list[str], elements: list[str]
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, int]]:
    """Time stamps, values per element (missing markers -> NaN) and the marker count per element."""
    table = _split_table(path, rows, 3 + len(columns), line_no, len(columns))
    times = _fast_times(table[0], table[1])
    if times is None:
        times = _slow_times(path, table[0], table[1], line_no)
    _numeric(path, table[2], line_no, "DOY")
    values = {name: _numeric(path, table[3 + k], line_no, columns[k]) for k, name in enumerate(elements)}
    missing_counts = {}
    for name, v in values.items():
        bad = v >= MISSING_THRESHOLD
        missing_counts[name] = int(bad.sum())
        v[bad] = np.nan
    return times, values, missing_counts


def _header_float(fields: dict, name: str) -> float | None:
    try:
        value = float(fields.get(name, ""))
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _metadata(
    fields: dict, elements: list[str], columns: list[str], missing_counts: dict[str, int], n_gap_rows: int
) -> dict:
    """Header facts of the series (JSON-serialisable)."""
    metadata = {
        "format": "IAGA-2002",
        "reported": "".join(elements),
        "column_names": list(columns),
        "units": {name: ("minutes of arc" if name == "D" else "nT") for name in elements},
        "missing_marker_counts": missing_counts,
        "missing_time_rows": int(n_gap_rows),
        "comments": fields["comments"],
    }
    for key in (
        "source_of_data",
        "station_name",
        "sensor_orientation",
        "digital_sampling",
        "data_interval_type",
        "data_type",
        "publication_date",
    ):
        if fields.get(key):
            metadata[key] = fields[key]
    if fields["unrecognised_header_lines"]:
        metadata["unrecognised_header_lines"] = fields["unrecognised_header_lines"]
    return metadata


def read_iaga2002(path: str | PathLike, expected_interval_s: float | None = 1.0) -> GeomagSeries:
    """Read an IAGA-2002 file into a :class:`GeomagSeries` (components named by ``Reported``).

    Args:
        path: the ``.sec``/``.min`` file (plain or gzip-compressed).
        expected_interval_s: required sampling interval; a file with another interval raises
            :class:`InputDataError` (the data are never resampled). ``None`` accepts any.

    Missing-value markers (>= 88888) become NaN. Missing rows inside the file (time-stamp
    gaps that are whole multiples of the interval) are NaN-filled with a warning. ``D`` stays
    in the file's unit (IAGA-2002: minutes of arc); ``metadata["units"]`` says so.
    """
    p = Path(path)
    data, complete = load_bytes(p)
    text = _decode(p, data)
    if not text.strip():
        raise InputDataError(p, "empty file")
    lines = text.split("\n")
    fields, columns, column_index = _parse_header(p, lines)
    elements = _elements(p, fields, columns)
    rows, line_no = _data_rows(p, lines, column_index, complete)
    times, values, missing_counts = _parse_rows(p, rows, line_no, columns, elements)
    times, values, interval_s, n_gap_rows = _regularise(p, times, values, line_no, fields)
    if expected_interval_s is not None and abs(interval_s - float(expected_interval_s)) > 1e-6:
        raise InputDataError(
            p,
            f"sampling interval is {interval_s:g} s but {float(expected_interval_s):g} s is expected "
            "(files are never resampled)",
        )
    metadata = _metadata(fields, elements, columns, missing_counts, n_gap_rows)
    logger.debug("%s: %d samples of %s at %g s", p, len(times), metadata["reported"], interval_s)
    return GeomagSeries(
        times=times,
        components=values,
        station=fields["iaga_code"].strip().upper(),
        sampling_interval_s=interval_s,
        latitude=_header_float(fields, "latitude"),
        longitude=_header_float(fields, "longitude"),
        elevation=_header_float(fields, "elevation"),
        source=str(p),
        metadata=metadata,
    )


def _regularise(
    path: Path, times: np.ndarray, values: dict[str, np.ndarray], line_no: np.ndarray, fields: dict
) -> tuple[np.ndarray, dict[str, np.ndarray], float, int]:
    """Check the time stamps, find the interval, NaN-fill whole missing rows."""
    header_s = header_interval_s(fields.get("data_interval_type"))
    stamps = times.astype(np.int64)
    if stamps.size == 1:
        if header_s is None:
            raise InputDataError(path, "one data row and no usable 'Data Interval Type': interval unknown")
        return times, values, header_s, 0
    diffs = np.diff(stamps)
    back = np.flatnonzero(diffs <= 0)
    if back.size:
        i = int(back[0]) + 1
        raise InputDataError(
            path,
            f"line {line_no[i]}: time {times[i]} is not after {times[i - 1]} (time stamps must increase)",
        )
    steps, counts = np.unique(diffs, return_counts=True)
    step = int(steps[np.argmax(counts)])
    interval_s = step / 1000.0
    odd = np.flatnonzero(diffs % step)
    if odd.size:
        i = int(odd[0]) + 1
        raise InputDataError(path, f"line {line_no[i]}: irregular time stamp {times[i]} (interval {interval_s:g} s)")
    if header_s is not None and abs(header_s - interval_s) > 1e-6:
        raise InputDataError(
            path, f"'Data Interval Type' says {header_s:g} s but the time stamps are {interval_s:g} s apart"
        )
    n_grid = int((stamps[-1] - stamps[0]) // step) + 1
    if n_grid == stamps.size:
        return times, values, interval_s, 0
    if n_grid > MAX_GRID_EXPANSION * stamps.size:
        raise InputDataError(
            path, f"time stamps span {n_grid} intervals for only {stamps.size} rows (corrupt time stamps?)"
        )
    index = (stamps - stamps[0]) // step
    grid_times = times[0] + (np.arange(n_grid, dtype=np.int64) * step).astype("timedelta64[ms]")
    filled = {}
    for name, v in values.items():
        full = np.full(n_grid, np.nan)
        full[index] = v
        filled[name] = full
    n_missing = n_grid - stamps.size
    warn_data(path, f"{n_missing} missing time rows filled with NaN (gaps in the time stamps)")
    return grid_times, filled, interval_s, n_missing
