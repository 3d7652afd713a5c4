"""Reader for raw BMKG FRG-604RC fluxgate day files ``SYYMMDD.STN`` (optionally ``.gz``).

Layout (checked by decoding real LUT files; see ``../shared/README.md``):

* a day is 144 blocks (one per 10 minutes); a block is a 30-byte header followed by
  600 records of 17 bytes (one per second); a file may end with a few bytes of no block;
* header bytes 2-4: station code (ASCII), 5/6/7: yy/mm/dd, 8: hour, 9: minute (UTC);
* record bytes 0-2 H, 3-5 D, 6-8 Z: 24-bit little-endian two's complement, 0.01 nT;
  9-10 / 11-12: tilts IX / IY (int16, x0.1); 13-14 / 15-16: sensor / processor
  temperature (int16, x0.01 degC);
* a component whose magnitude exceeds 80,000 nT is invalid (the logger writes 0x7FFFFF).

:func:`read_bmkg_frg604` returns H, D, Z in nT as a :class:`GeomagSeries`; the auxiliary
channels (tilts, temperatures) are summarised in ``metadata["auxiliary"]``; the full arrays
are available from :func:`read_frg604_day`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from core.errors import InputDataError
from geomag.readers import BMKG_NAME_PATTERN, TruncatedFileWarning, load_bytes, warn_data
from geomag.timeseries import GeomagSeries

logger = logging.getLogger(__name__)

HEADER_BYTES = 30
RECORD_BYTES = 17
RECORDS_PER_BLOCK = 600
BLOCK_BYTES = HEADER_BYTES + RECORDS_PER_BLOCK * RECORD_BYTES  # 10,230
BLOCKS_PER_DAY = 144
SAMPLING_INTERVAL_S = 1.0
#: |component| above this (nT) is "no data".
INVALID_ABS_NT = 80_000.0
#: Blocks of one file must lie within this span (a corrupt date would otherwise blow up the grid).
MAX_SPAN_S = 2 * 86_400
AUXILIARY = ("tilt_x", "tilt_y", "temperature_sensor_degC", "temperature_processor_degC")


@dataclass
class Frg604Day:
    """Everything decoded from one FRG-604RC file (1-s grid, NaN where no valid record)."""

    times: np.ndarray  # datetime64[ms] UTC
    h: np.ndarray  # nT
    d: np.ndarray  # nT
    z: np.ndarray  # nT
    tilt_x: np.ndarray  # raw x0.1 units
    tilt_y: np.ndarray
    temperature_sensor_degC: np.ndarray  # noqa: N815 - unit in the name
    temperature_processor_degC: np.ndarray  # noqa: N815
    station: str
    n_blocks: int
    n_invalid: dict[str, int]
    trailing_bytes: int


def decode_int24(raw: np.ndarray, byteorder: str = "little") -> np.ndarray:
    """24-bit two's-complement integers from ``(..., 3)`` uint8 bytes (``byteorder`` for tests)."""
    b = raw.astype(np.int32)
    if byteorder == "little":
        value = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
    elif byteorder == "big":
        value = b[..., 2] | (b[..., 1] << 8) | (b[..., 0] << 16)
    else:
        raise ValueError(f"byteorder must be 'little' or 'big', got {byteorder!r}")
    return np.where(value >= 1 << 23, value - (1 << 24), value)


def _int16(raw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(raw).view("<i2")[..., 0].astype(np.float64)


def _station_from_name(path: Path) -> str | None:
    match = BMKG_NAME_PATTERN.match(path.name)
    return match.group(4).upper() if match else None


def looks_like_frg604(head: bytes) -> bool:
    """True when ``head`` starts with a plausible FRG-604RC block header."""
    if len(head) < HEADER_BYTES:
        return False
    code = head[2:5]
    yy, mm, dd, hh, mi = head[5:10]
    return code.isalpha() and code.isascii() and 1 <= mm <= 12 and 1 <= dd <= 31 and hh < 24 and mi < 60


def _block_starts(path: Path, headers: np.ndarray) -> np.ndarray:
    """Block start times (datetime64[s]) from the yy/mm/dd/hour/minute header bytes."""
    yy, mm, dd, hh, mi = (headers[:, k].astype(np.int64) for k in range(5, 10))
    bad = np.flatnonzero((mm < 1) | (mm > 12) | (dd < 1) | (dd > 31) | (hh > 23) | (mi > 59))
    if bad.size:
        b = int(bad[0])
        raise InputDataError(
            path,
            f"block {b} has an invalid time 20{yy[b]:02d}-{mm[b]:02d}-{dd[b]:02d} "
            f"{hh[b]:02d}:{mi[b]:02d} (corrupt block header)",
        )
    months = (yy * 12 + (mm - 1)).astype("datetime64[M]") + np.timedelta64(30 * 12, "M")  # 1970 + 30 y
    days = months.astype("datetime64[D]") + (dd - 1).astype("timedelta64[D]")
    overflow = np.flatnonzero(days.astype("datetime64[M]") != months)
    if overflow.size:
        b = int(overflow[0])
        raise InputDataError(path, f"block {b} has the invalid date 20{yy[b]:02d}-{mm[b]:02d}-{dd[b]:02d}")
    return days.astype("datetime64[s]") + (hh * 3600 + mi * 60).astype("timedelta64[s]")


def read_frg604_day(path: str | PathLike) -> Frg604Day:
    """Decode every complete block of an FRG-604RC file onto a regular 1-s grid.

    Vectorised: the blocks are viewed as a ``(n_blocks, 10230)`` byte array and the records
    as ``(n_blocks, 600, 17)``; no Python loop over records.
    """
    p = Path(path)
    data, complete = load_bytes(p)
    n_blocks, trailing = divmod(len(data), BLOCK_BYTES)
    if n_blocks == 0:
        raise InputDataError(p, f"no complete FRG-604RC block ({len(data)} bytes; one block is {BLOCK_BYTES} bytes)")
    if not complete:
        warn_data(p, f"gzip stream ends early; read {n_blocks} complete blocks", TruncatedFileWarning)
    elif trailing >= HEADER_BYTES:
        warn_data(
            p,
            f"file ends inside block {n_blocks} ({trailing} extra bytes; truncated?); read {n_blocks} complete blocks",
            TruncatedFileWarning,
        )
    elif n_blocks < BLOCKS_PER_DAY:
        warn_data(p, f"only {n_blocks} of {BLOCKS_PER_DAY} blocks (incomplete day)", TruncatedFileWarning)
    if trailing:
        logger.debug("%s: ignoring %d trailing bytes", p, trailing)

    blocks = np.frombuffer(data, dtype=np.uint8, count=n_blocks * BLOCK_BYTES).reshape(n_blocks, BLOCK_BYTES)
    headers = blocks[:, :HEADER_BYTES]
    records = blocks[:, HEADER_BYTES:].reshape(n_blocks, RECORDS_PER_BLOCK, RECORD_BYTES)

    codes = np.unique(headers[:, 2:5], axis=0)
    if codes.shape[0] != 1:
        raise InputDataError(p, f"blocks name {codes.shape[0]} different station codes (corrupt file)")
    code_bytes = bytes(codes[0])
    if not (code_bytes.isascii() and code_bytes.isalpha()):
        raise InputDataError(p, f"station code bytes {code_bytes!r} are not ASCII letters (not an FRG-604RC file?)")
    station = code_bytes.decode("ascii").upper()
    named = _station_from_name(p)
    if named is not None and named != station:
        raise InputDataError(p, f"file name says station {named} but the block headers say {station}")

    starts = _block_starts(p, headers)
    match = BMKG_NAME_PATTERN.match(p.name)
    if match:
        named_day = f"20{match.group(1)}-{match.group(2)}-{match.group(3)}"
        if str(starts[0].astype("datetime64[D]")) != named_day:
            warn_data(p, f"file name says {named_day} but the first block starts {starts[0]}")
    step = np.diff(starts.astype(np.int64))
    overlap = np.flatnonzero(step < RECORDS_PER_BLOCK)
    if overlap.size:
        b = int(overlap[0]) + 1
        raise InputDataError(
            p,
            f"block {b} starts at {starts[b]}, before block {b - 1} ({starts[b - 1]}) ends "
            "(blocks out of order or overlapping)",
        )
    span = int(starts[-1].astype(np.int64) - starts[0].astype(np.int64)) + RECORDS_PER_BLOCK
    if span > MAX_SPAN_S:
        raise InputDataError(p, f"blocks span {span / 86400:.1f} days (corrupt block dates?)")

    h = decode_int24(records[..., 0:3]).ravel() * 0.01
    d = decode_int24(records[..., 3:6]).ravel() * 0.01
    z = decode_int24(records[..., 6:9]).ravel() * 0.01
    aux = {
        "tilt_x": _int16(records[..., 9:11]).ravel() * 0.1,
        "tilt_y": _int16(records[..., 11:13]).ravel() * 0.1,
        "temperature_sensor_degC": _int16(records[..., 13:15]).ravel() * 0.01,
        "temperature_processor_degC": _int16(records[..., 15:17]).ravel() * 0.01,
    }
    n_invalid = {}
    for name, v in (("H", h), ("D", d), ("Z", z)):
        bad = np.abs(v) > INVALID_ABS_NT
        n_invalid[name] = int(bad.sum())
        v[bad] = np.nan
    no_record = np.isnan(h) & np.isnan(d) & np.isnan(z)
    if no_record.all():
        raise InputDataError(p, f"all {no_record.size} records are invalid (|value| > {INVALID_ABS_NT:g} nT)")
    for v in aux.values():
        v[no_record] = np.nan

    # place the blocks on a regular 1-s grid (missing blocks -> NaN)
    offsets = (starts.astype(np.int64) - starts[0].astype(np.int64))[:, None] + np.arange(RECORDS_PER_BLOCK)
    index = offsets.ravel()
    times = starts[0].astype("datetime64[ms]") + (np.arange(span) * 1000).astype("timedelta64[ms]")
    if span != index.size:
        warn_data(p, f"{(span - index.size) // RECORDS_PER_BLOCK} missing blocks filled with NaN")

    def grid(v: np.ndarray) -> np.ndarray:
        if span == index.size:
            return v
        out = np.full(span, np.nan)
        out[index] = v
        return out

    return Frg604Day(
        times=times,
        h=grid(h),
        d=grid(d),
        z=grid(z),
        tilt_x=grid(aux["tilt_x"]),
        tilt_y=grid(aux["tilt_y"]),
        temperature_sensor_degC=grid(aux["temperature_sensor_degC"]),
        temperature_processor_degC=grid(aux["temperature_processor_degC"]),
        station=station,
        n_blocks=n_blocks,
        n_invalid=n_invalid,
        trailing_bytes=trailing,
    )


def read_bmkg_frg604(path: str | PathLike, expected_interval_s: float | None = 1.0) -> GeomagSeries:
    """Read a BMKG FRG-604RC day file as H, D, Z in nT (1-s, UTC, NaN = invalid).

    ``metadata`` holds the block count, invalid-sample counts per component and mean/std/min/max
    of the tilt and temperature channels (``metadata["auxiliary"]``); use
    :func:`read_frg604_day` for the full auxiliary arrays.
    """
    p = Path(path)
    if expected_interval_s is not None and abs(float(expected_interval_s) - SAMPLING_INTERVAL_S) > 1e-6:
        raise InputDataError(
            p,
            f"FRG-604RC files are sampled every {SAMPLING_INTERVAL_S:g} s but "
            f"{float(expected_interval_s):g} s is expected (files are never resampled)",
        )
    day = read_frg604_day(p)
    auxiliary = {}
    for name in AUXILIARY:
        v = getattr(day, name)
        finite = v[np.isfinite(v)]
        auxiliary[name] = (
            {
                "mean": float(finite.mean()),
                "std": float(finite.std()),
                "min": float(finite.min()),
                "max": float(finite.max()),
            }
            if finite.size
            else None
        )
    return GeomagSeries(
        times=day.times,
        components={"H": day.h, "D": day.d, "Z": day.z},
        station=day.station,
        sampling_interval_s=SAMPLING_INTERVAL_S,
        source=str(p),
        metadata={
            "format": "BMKG FRG-604RC",
            "units": {"H": "nT", "D": "nT", "Z": "nT"},
            "n_blocks": day.n_blocks,
            "invalid_counts": day.n_invalid,
            "trailing_bytes": day.trailing_bytes,
            "auxiliary": auxiliary,
            "auxiliary_units": {
                "tilt_x": "raw x0.1",
                "tilt_y": "raw x0.1",
                "temperature_sensor_degC": "degC",
                "temperature_processor_degC": "degC",
            },
        },
    )
