"""User-supplied geomagnetic indices (Kp, Dst) for a data window, from metadata-CSV columns or an index CSV file.

A metadata CSV may carry, per sample:

* ``kp`` and/or ``dst``: the window's planetary Kp (0..9; ``5``, ``5.33``, ``5+``, ``5-`` and ``5o`` are
  accepted, ``+``/``-`` meaning +-1/3 as in the GFZ tables) and Dst in nT, used as they are;
* ``index_csv``: the path (relative to the data root) of a CSV with the columns ``time, kp, dst``
  (ISO 8601 UTC times; either value may be blank). Each row holds from its time until the next row that
  has the same index (the last row for the median step of that index), so 3-hourly Kp and hourly Dst
  can share one file. The window's value is the **largest Kp** and the **lowest Dst** of the rows that
  overlap the window. Per-row ``kp``/``dst`` columns win over the file.

Kp and Dst are the indices of GFZ Potsdam (Matzka et al. 2021, Space Weather 19) and WDC Kyoto
(Sugiura 1964); the thresholds that turn them into a flag are in :class:`geomag.activity.ActivityThresholds`.
A bad value raises :class:`InputDataError` naming the file and the row.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.errors import InputDataError, PrecursorError
from geomag.dataset import resolve_data_path
from geomag.preprocess import as_datetime64

logger = logging.getLogger(__name__)

INDEX_COLUMNS = ("kp", "dst", "index_csv")
#: Plausible Dst range (nT); the strongest storm on record (1989) reached about -590 nT.
DST_RANGE_NT = (-2000.0, 500.0)
_KP_SUFFIX = {"+": 1.0 / 3.0, "-": -1.0 / 3.0, "o": 0.0}


@dataclass(frozen=True)
class IndexValues:
    """The user's Kp (max over the window) and Dst (min over the window, nT) and where they came from."""

    kp: float | None = None
    dst_nT: float | None = None
    source: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return self.kp is None and self.dst_nT is None


@dataclass(frozen=True)
class IndexTable:
    """One index CSV: UTC times (ms since 1970) of the rows holding each index, and the values."""

    path: str
    kp_times: np.ndarray
    kp: np.ndarray
    dst_times: np.ndarray
    dst: np.ndarray


def parse_kp(text: str) -> float:
    """Kp from ``"5"``, ``"5.33"``, ``"5+"``, ``"5-"`` or ``"5o"``; ValueError unless 0 <= Kp <= 9."""
    raw = str(text).strip().lower()
    offset = 0.0
    if raw and raw[-1] in _KP_SUFFIX and raw[:-1].strip():
        offset, raw = _KP_SUFFIX[raw[-1]], raw[:-1].strip()
    value = float(raw) + offset
    if not (math.isfinite(value) and -1e-9 <= value <= 9.0 + 1e-9):
        raise ValueError(text)
    return round(min(max(value, 0.0), 9.0), 4)


def parse_dst(text: str) -> float:
    """Dst in nT; ValueError unless finite and inside :data:`DST_RANGE_NT`."""
    value = float(str(text).strip())
    if not (math.isfinite(value) and DST_RANGE_NT[0] <= value <= DST_RANGE_NT[1]):
        raise ValueError(text)
    return value


def _value(parse, text: str, path: object, row: int, name: str):
    try:
        return parse(text)
    except ValueError:
        expected = "a Kp value 0..9 (e.g. 5, 5.33, 5+)" if name == "kp" else f"Dst in nT within {list(DST_RANGE_NT)}"
        raise InputDataError(path, f"row {row}: {name} {text!r} is not {expected}") from None


def _read_rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
            if "time" not in header or not ({"kp", "dst"} & set(header)):
                raise InputDataError(path, f"index CSV needs the columns time and kp and/or dst; found {header}")
            reader.fieldnames = header
            return list(reader)
    except OSError as exc:
        raise InputDataError(path, f"cannot read index CSV ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise InputDataError(path, f"not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise InputDataError(path, f"malformed CSV ({exc})") from None


@lru_cache(maxsize=16)
def _load_cached(path: str, _mtime_ns: int, _size: int) -> IndexTable:
    rows = _read_rows(Path(path))
    series: dict[str, list[tuple[int, float]]] = {"kp": [], "dst": []}
    for offset, row in enumerate(rows):
        number = offset + 2  # the header is row 1
        if None in row:
            raise InputDataError(path, f"row {number}: more fields than columns")
        try:
            stamp = int(as_datetime64((row.get("time") or "").strip(), "time").astype(np.int64))
        except PrecursorError:
            raise InputDataError(path, f"row {number}: time {row.get('time')!r} is not an ISO 8601 time") from None
        for name, parse in (("kp", parse_kp), ("dst", parse_dst)):
            text = (row.get(name) or "").strip()
            if text and text.lower() not in ("nan", "na", "null"):
                series[name].append((stamp, _value(parse, text, path, number, name)))
    arrays = {}
    for name, pairs in series.items():
        pairs.sort()
        times = np.array([t for t, _ in pairs], dtype=np.int64)
        if times.size > 1 and np.any(np.diff(times) == 0):
            raise InputDataError(path, f"{name}: two rows with the same time")
        arrays[name] = (times, np.array([v for _, v in pairs], dtype=np.float64))
    if not arrays["kp"][0].size and not arrays["dst"][0].size:
        raise InputDataError(path, "index CSV holds no Kp or Dst value")
    return IndexTable(path, arrays["kp"][0], arrays["kp"][1], arrays["dst"][0], arrays["dst"][1])


def load_index_table(path: str | os.PathLike) -> IndexTable:
    """Read (and cache, keyed by modification time) an index CSV with columns ``time, kp, dst``."""
    p = Path(path)
    try:
        stat = p.stat()
    except OSError:
        raise InputDataError(p, "index CSV not found") from None
    return _load_cached(str(p), stat.st_mtime_ns, stat.st_size)


def _overlapping(times: np.ndarray, values: np.ndarray, start_ms: int, end_ms: int) -> np.ndarray:
    """Values of the rows whose validity (until the next row) overlaps ``[start_ms, end_ms)``."""
    if not times.size:
        return values[:0]
    step = int(np.median(np.diff(times))) if times.size > 1 else 3 * 3600 * 1000
    ends = np.append(times[1:], times[-1] + step)
    return values[(times < end_ms) & (ends > start_ms)]


def table_values(table: IndexTable, start: object, end: object) -> tuple[float | None, float | None]:
    """``(max Kp, min Dst)`` of the rows overlapping ``start <= t < end`` (None where none overlaps)."""
    t0 = int(as_datetime64(start, "window start").astype(np.int64))
    t1 = int(as_datetime64(end, "window end").astype(np.int64))
    kp = _overlapping(table.kp_times, table.kp, t0, t1)
    dst = _overlapping(table.dst_times, table.dst, t0, t1)
    return (float(kp.max()) if kp.size else None), (float(dst.min()) if dst.size else None)


@dataclass(frozen=True)
class IndexRequest:
    """Where a record's index columns come from: the metadata CSV, its row, the data root and the window."""

    csv_path: Path
    row: int
    root: Path
    window: tuple[object, object] | None = None
    allow_outside_root: bool = False


def record_indices(extra: Mapping[str, str], request: IndexRequest) -> IndexValues | None:
    """The user's Kp/Dst for one metadata-CSV row (``extra``: its further columns); None without them."""
    texts = {k: (str(extra.get(k) or "")).strip() for k in INDEX_COLUMNS}
    if not any(texts.values()):
        return None
    where = f"row {request.row}"
    kp = _value(parse_kp, texts["kp"], request.csv_path, request.row, "kp") if texts["kp"] else None
    dst = _value(parse_dst, texts["dst"], request.csv_path, request.row, "dst") if texts["dst"] else None
    sources, notes = ([f"{request.csv_path.name} {where}"] if kp is not None or dst is not None else []), []
    if texts["index_csv"] and (kp is None or dst is None):
        if request.window is None:
            raise InputDataError(request.csv_path, f"{where}: index_csv needs the sample's event_time")
        path = resolve_data_path(
            texts["index_csv"], request.root, request.csv_path, f"{where}: index_csv", request.allow_outside_root
        )
        table_kp, table_dst = table_values(load_index_table(path), *request.window)
        kp = kp if kp is not None else table_kp
        dst = dst if dst is not None else table_dst
        sources.append(path.name)
        if table_kp is None and table_dst is None:
            notes.append(f"{path.name} holds no Kp or Dst row overlapping the window")
    return IndexValues(kp=kp, dst_nT=dst, source=" + ".join(sources) or None, notes=tuple(notes))
