"""CDF 3 files opened safely with cdflib: magic numbers, bounded decompression, a structural check, one-line errors.

Record layouts follow NASA GSFC's "CDF Internal Format Description" (CDF 3.x): every internal record starts
with its size (8 bytes) and type (4 bytes); integers are big-endian; offsets are 8 bytes. cdflib (pure Python)
trusts the counts and offsets it reads, so a damaged file can make it loop for hours or allocate gigabytes.
:func:`check_structure` therefore walks the records cdflib will walk (descriptor, variables, attributes,
attribute entries, variable index trees) and bounds every count by the record and file sizes first. A whole-file
compressed CDF (gzip) and a gzip-compressed ``.cdf.gz`` are inflated into a temporary folder with the size limit
of the other readers. Whatever cdflib still raises on a file becomes an :class:`InputDataError`.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from core.errors import InputDataError
from core.text import first_line
from geomag.readers import GZIP_MAGIC, MAX_DECOMPRESSED_BYTES, load_bytes

logger = logging.getLogger(__name__)

CDF3_MAGIC = b"\xcd\xf3\x00\x01"
CDF2_MAGICS = (b"\xcd\xf2\x60\x02", b"\x00\x00\xff\xff")  # CDF 2.6/2.7 and CDF 2.5 and older
UNCOMPRESSED = b"\x00\x00\xff\xff"
COMPRESSED = b"\xcc\xcc\x00\x01"
GZIP_COMPRESSION = 5
MAX_DIMS = 10  # CDF_MAX_DIMS
MAX_INDEX_DEPTH = 8  # nested variable index records (cdflib writes at most 3 levels)
#: Bytes per element of each CDF data type (CDF_CHAR/CDF_UCHAR: per character).
TYPE_SIZES = {
    1: 1,
    2: 2,
    4: 4,
    8: 8,
    11: 1,
    12: 2,
    14: 4,
    21: 4,
    22: 8,
    31: 8,
    32: 16,
    33: 8,
    41: 1,
    44: 4,
    45: 8,
    51: 1,
    52: 1,
}
CHAR_TYPES = (51, 52)
# record types and their smallest sizes (CDF 3)
CDR, GDR, RVDR, ADR, AGREDR, VXR, VVR, ZVDR, AZEDR, CCR, CPR, CVVR = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13
MIN_SIZE = {
    CDR: 312,
    GDR: 84,
    RVDR: 340,
    ADR: 324,
    AGREDR: 56,
    VXR: 28,
    VVR: 12,
    ZVDR: 344,
    AZEDR: 56,
    CCR: 32,
    CPR: 24,
    CVVR: 24,
}

T = TypeVar("T")


def looks_like_cdf(head: bytes) -> bool:
    """True when the first 8 bytes are a CDF magic number pair (any CDF version, compressed or not)."""
    if head[:4] == CDF3_MAGIC or head[:4] == CDF2_MAGICS[0]:
        return head[4:8] in (UNCOMPRESSED, COMPRESSED)
    return head[:8] == CDF2_MAGICS[1] * 2


def _int(buffer: bytes, offset: int, size: int = 4) -> int:
    return int.from_bytes(buffer[offset : offset + size], "big", signed=True)


class _Records:
    """Reads internal records of one CDF 3 file, refusing any that do not fit it."""

    def __init__(self, path: Path, handle: IO[bytes], size: int) -> None:
        self.path, self.handle, self.size = path, handle, size
        self.index_records = 0

    def corrupt(self, problem: str) -> InputDataError:
        return InputDataError(self.path, f"corrupt CDF file: {problem}")

    def read(self, offset: int, kind: int, what: str, length: int | None = None) -> tuple[int, bytes]:
        """``(record size, first bytes)`` of the record of type ``kind`` at ``offset`` (``length`` bytes)."""
        if not 8 <= offset <= self.size - 12:
            raise self.corrupt(f"{what} offset {offset} lies outside the {self.size}-byte file")
        self.handle.seek(offset)
        head = self.handle.read(12)
        size, found = _int(head, 0, 8), _int(head, 8)
        if found != kind:
            raise self.corrupt(f"{what} at byte {offset} has record type {found}, expected {kind}")
        wanted = MIN_SIZE[kind] if length is None else length
        if not max(wanted, MIN_SIZE[kind]) <= size <= self.size - offset:
            raise self.corrupt(f"{what} at byte {offset} has an impossible size {size}")
        return size, head + self.handle.read(wanted - 12)

    def count(self, value: int, per_record: int, what: str) -> int:
        if not 0 <= value <= self.size // per_record:
            raise self.corrupt(f"{value} {what} cannot fit in {self.size} bytes")
        return value


def check_structure(path: Path, handle: IO[bytes], size: int) -> None:
    """Walk an uncompressed CDF 3 file's records; raise :class:`InputDataError` at the first impossible one."""
    records = _Records(path, handle, size)
    _, cdr = records.read(8, CDR, "descriptor record")
    if _int(cdr, 20) != 3:
        raise records.corrupt(f"descriptor says CDF version {_int(cdr, 20)} behind a CDF 3 magic number")
    gdr_size, gdr = records.read(_int(cdr, 12, 8), GDR, "global descriptor record")
    n_rvars = records.count(_int(gdr, 44), MIN_SIZE[RVDR], "rVariables")
    n_attrs = records.count(_int(gdr, 48), MIN_SIZE[ADR], "attributes")
    r_dims = _int(gdr, 56)
    n_zvars = records.count(_int(gdr, 60), MIN_SIZE[ZVDR], "zVariables")
    if not 0 <= r_dims <= MAX_DIMS or gdr_size < MIN_SIZE[GDR] + 4 * r_dims:
        raise records.corrupt(f"rVariables have {r_dims} dimensions")
    _, gdr = records.read(_int(cdr, 12, 8), GDR, "global descriptor record", MIN_SIZE[GDR] + 4 * r_dims)
    r_sizes = [_int(gdr, 84 + 4 * k) for k in range(r_dims)]
    _variables(records, _int(gdr, 12, 8), n_rvars, RVDR, r_sizes)
    _variables(records, _int(gdr, 20, 8), n_zvars, ZVDR, None)
    offset = _int(gdr, 28, 8)
    for _ in range(n_attrs):
        _, adr = records.read(offset, ADR, "attribute descriptor")
        _entries(records, _int(adr, 20, 8), records.count(_int(adr, 36), MIN_SIZE[AGREDR], "entries"), AGREDR)
        _entries(records, _int(adr, 48, 8), records.count(_int(adr, 56), MIN_SIZE[AZEDR], "entries"), AZEDR)
        offset = _int(adr, 12, 8)


def _entries(records: _Records, offset: int, count: int, kind: int) -> None:
    """Attribute entries: a known data type and a value that fits in its record."""
    for _ in range(count):
        size, aedr = records.read(offset, kind, "attribute entry")
        data_type, elements = _int(aedr, 24), _int(aedr, 32)
        if data_type not in TYPE_SIZES or elements < 0 or MIN_SIZE[kind] + TYPE_SIZES[data_type] * elements > size:
            raise records.corrupt(
                f"attribute entry at byte {offset}: type {data_type} x {elements} does not fit its {size}-byte record"
            )
        offset = _int(aedr, 12, 8)


def _variables(records: _Records, offset: int, count: int, kind: int, r_sizes: list[int] | None) -> None:
    """Variable descriptors: type, dimensions, record count, compression record and index tree."""
    for _ in range(count):
        size, vdr = records.read(offset, kind, "variable descriptor")
        data_type, max_rec, flags, elements = _int(vdr, 20), _int(vdr, 24), _int(vdr, 44), _int(vdr, 64)
        if r_sizes is None:
            n_dims = _int(vdr, 340)
            if not 0 <= n_dims <= MAX_DIMS or size < MIN_SIZE[ZVDR] + 8 * n_dims:
                raise records.corrupt(f"variable at byte {offset} has {n_dims} dimensions")
            _, vdr = records.read(offset, kind, "variable descriptor", MIN_SIZE[ZVDR] + 8 * n_dims)
            dims = [_int(vdr, 344 + 4 * k) for k in range(n_dims)]
        else:
            _, vdr = records.read(offset, kind, "variable descriptor", MIN_SIZE[RVDR] + 4 * len(r_sizes))
            dims = [dim for k, dim in enumerate(r_sizes) if _int(vdr, 340 + 4 * k)]  # varying dimensions
        if data_type not in TYPE_SIZES or not (elements == 1 or (data_type in CHAR_TYPES and elements > 0)):
            raise records.corrupt(f"variable at byte {offset} has data type {data_type} x {elements}")
        record_bytes = TYPE_SIZES[data_type] * elements
        for dim in dims:
            record_bytes *= dim if dim >= 1 else 0
        if record_bytes < 1 or max_rec < -1 or (max_rec + 1) * record_bytes > MAX_DECOMPRESSED_BYTES:
            raise records.corrupt(f"variable at byte {offset} claims {max_rec + 1} records of {record_bytes} bytes")
        if flags & 4:  # compressed variable: its compression record
            records.read(_int(vdr, 72, 8), CPR, "compression record")
        blocks = _index(records, _int(vdr, 28, 8), record_bytes, 0) if max_rec >= 0 else []
        if _int(vdr, 48) == 0 and max_rec >= 0:  # no sparse records: blocks cover 0..max_rec in order
            ends = [last for _, last in sorted(blocks)]
            starts = sorted(first for first, _ in blocks)
            if (
                not starts
                or starts[0] != 0
                or ends[-1] != max_rec
                or any(s != e + 1 for s, e in zip(starts[1:], ends[:-1]))
            ):
                raise records.corrupt(f"variable at byte {offset}: its data blocks do not cover records 0..{max_rec}")
        offset = _int(vdr, 12, 8)


def _index(records: _Records, offset: int, record_bytes: int, depth: int) -> list[tuple[int, int]]:
    """``(first, last)`` record of every data block under the index record chain starting at ``offset``."""
    if depth > MAX_INDEX_DEPTH:
        raise records.corrupt("variable index records nest too deep (a loop?)")
    blocks: list[tuple[int, int]] = []
    while offset != 0:
        records.index_records += 1
        if records.index_records > records.size // MIN_SIZE[VXR]:
            raise records.corrupt("variable index records form a loop")
        size, vxr = records.read(offset, VXR, "variable index record")
        n, used = _int(vxr, 20), _int(vxr, 24)
        if not 0 <= used <= n or MIN_SIZE[VXR] + 16 * n > size:
            raise records.corrupt(f"variable index record at byte {offset} has {used} of {n} entries")
        _, vxr = records.read(offset, VXR, "variable index record", MIN_SIZE[VXR] + 16 * n)
        for k in range(used):
            first, last, child = _int(vxr, 28 + 4 * k), _int(vxr, 28 + 4 * n + 4 * k), _int(vxr, 28 + 8 * n + 8 * k, 8)
            if not 0 <= first <= last:
                raise records.corrupt(f"variable index record at byte {offset} lists records {first}..{last}")
            records.handle.seek(min(max(child, 0), records.size) + 8)
            kind = _int(records.handle.read(4), 0)
            if kind == VXR:
                blocks += _index(records, child, record_bytes, depth + 1)
                continue
            block_size, _ = records.read(child, kind if kind in (VVR, CVVR) else VVR, "data block")
            if kind == VVR and block_size - MIN_SIZE[VVR] < (last - first + 1) * record_bytes:
                raise records.corrupt(f"data block at byte {child} is shorter than records {first}..{last}")
            blocks.append((first, last))
        offset = _int(vxr, 12, 8)
    return blocks


def _inflate(path: Path, data: bytes) -> bytes:
    """The uncompressed CDF (magic numbers + records) of a whole-file compressed CDF 3."""
    records_size = len(data)
    if records_size < 8 + MIN_SIZE[CCR]:
        raise InputDataError(path, "corrupt CDF file: compressed file ends inside its first record")
    ccr_size, cpr_offset = _int(data, 8, 8), _int(data, 20, 8)
    if _int(data, 16) != CCR or not MIN_SIZE[CCR] <= ccr_size <= records_size - 8:
        raise InputDataError(path, "corrupt CDF file: bad compressed-file record (truncated file?)")
    if not 8 <= cpr_offset <= records_size - MIN_SIZE[CPR] or _int(data, cpr_offset + 8) != CPR:
        raise InputDataError(path, "corrupt CDF file: bad compression parameter record")
    if _int(data, cpr_offset + 12) != GZIP_COMPRESSION:
        raise InputDataError(path, f"CDF compression type {_int(data, cpr_offset + 12)} is not supported (only gzip)")
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = decoder.decompress(data[8 + MIN_SIZE[CCR] : 8 + ccr_size], MAX_DECOMPRESSED_BYTES)
    except zlib.error as exc:
        raise InputDataError(path, f"corrupt CDF file: compressed data do not inflate ({exc})") from None
    if decoder.unconsumed_tail:
        raise InputDataError(path, f"CDF file inflates to more than {MAX_DECOMPRESSED_BYTES} bytes")
    if not decoder.eof:
        raise InputDataError(path, "corrupt CDF file: compressed data end early (truncated file?)")
    return CDF3_MAGIC + UNCOMPRESSED + body


def _plain_file(path: Path, scratch: contextlib.ExitStack) -> Path:
    """``path`` itself when it is an uncompressed CDF 3, else an inflated copy in a temporary folder."""
    with path.open("rb") as handle:
        head = handle.read(8)
    data = None
    if head.startswith(GZIP_MAGIC):
        data, complete = load_bytes(path)
        if not complete:
            raise InputDataError(path, "gzip stream ends early (truncated file?)")
        head = data[:8]
    if head[:4] in CDF2_MAGICS:
        raise InputDataError(path, "CDF version 2 file; ImagCDF is CDF 3 (CDF_TIME_TT2000 time stamps)")
    if head[:4] != CDF3_MAGIC or head[4:8] not in (UNCOMPRESSED, COMPRESSED):
        raise InputDataError(path, f"not a CDF file (starts with {head[:8].hex()})")
    if head[4:8] == UNCOMPRESSED and data is None:
        return path
    if head[4:8] == COMPRESSED:
        data = _inflate(path, data if data is not None else path.read_bytes())
    folder = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="cdf-")))
    plain = folder / "inflated.cdf"
    plain.write_bytes(data)
    return plain


def cdf_call(path: Path, what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` (a cdflib call); any error becomes a one-line :class:`InputDataError`."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = function(*args, **kwargs)
    except InputDataError:
        raise
    except Exception as exc:  # cdflib on untrusted bytes raises many types
        raise InputDataError(path, f"cannot read {what} ({type(exc).__name__}: {first_line(exc, 160)})") from None
    for item in caught:
        logger.debug("%s: cdflib: %s", path, item.message)
    return result


@contextlib.contextmanager
def open_cdf(path: Path) -> Iterator[Any]:
    """A cdflib reader (``cdflib.CDF``) on ``path`` once its structure passed :func:`check_structure`."""
    import cdflib

    with contextlib.ExitStack() as scratch:
        plain = _plain_file(path, scratch)
        with plain.open("rb") as handle:
            check_structure(path, handle, plain.stat().st_size)
        cdf = cdf_call(path, "CDF file", cdflib.CDF, str(plain))
        try:
            yield cdf
        finally:
            handle = getattr(cdf, "_f", None)
            if handle is not None and hasattr(handle, "close"):
                handle.close()
