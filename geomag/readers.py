"""Format dispatch for raw time-series files, plus the file-loading helpers every reader shares.

``read_timeseries(path)`` picks the reader from the file name (BMKG ``SYYMMDD.STN[.gz]``)
or from the content (a CDF file starts with a CDF magic number such as ``0xCDF30001``; an
IAGA-2002 header starts with `` Format``; an FRG-604RC block header carries a station code and a
valid date), and raises :class:`InputDataError` ("unknown file format") otherwise.
"""

from __future__ import annotations

import gzip
import logging
import re
import warnings
import zlib
from os import PathLike
from pathlib import Path

from core.errors import InputDataError
from geomag.timeseries import GeomagSeries

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
#: BMKG FRG-604RC day files: ``S`` + yymmdd + ``.`` + 3-letter station code, optionally gzipped.
BMKG_NAME_PATTERN = re.compile(r"^S(\d{2})(\d{2})(\d{2})\.([A-Za-z]{3})(\.gz)?$", re.IGNORECASE)
#: Upper bound on what one raw file may hold once decompressed (a 1-s day is ~6 MB of text).
MAX_DECOMPRESSED_BYTES = 512 * 1024 * 1024


class ReaderWarning(UserWarning):
    """A raw file was readable but not clean (time gaps filled with NaN, ignored trailing data)."""


class TruncatedFileWarning(ReaderWarning):
    """A raw file ends early; only its complete part was read."""


def warn_data(path: str | PathLike, message: str, category: type[Warning] = ReaderWarning) -> None:
    """Log a data problem and emit it as a Python warning (one line naming the file)."""
    text = f"{path}: {message}"
    logger.warning("%s", text)
    warnings.warn(text, category, stacklevel=3)


def check_file(path: str | PathLike) -> Path:
    """Return ``path`` as a :class:`Path` after checking that it is an existing, non-empty file."""
    p = Path(path)
    if not p.exists():
        raise InputDataError(p, "file not found")
    if not p.is_file():
        raise InputDataError(p, "not a regular file")
    if p.stat().st_size == 0:
        raise InputDataError(p, "empty file")
    return p


def load_bytes(path: str | PathLike) -> tuple[bytes, bool]:
    """Read a file, transparently gunzipping it (detected by its magic bytes, not its name).

    Returns ``(data, complete)``; ``complete`` is False when a gzip stream ended early
    (the readers then keep what was decoded and warn). A corrupt gzip stream raises
    :class:`InputDataError`.
    """
    p = check_file(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputDataError(p, f"cannot read file ({exc.strerror or exc})") from None
    if not raw.startswith(GZIP_MAGIC):
        return raw, True
    try:
        data = gzip.decompress(raw)
        complete = True
    except (EOFError, OSError, zlib.error):
        # Truncated or damaged stream: keep the part that decodes (a truncated download).
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = decoder.decompress(raw, MAX_DECOMPRESSED_BYTES)
        except zlib.error as exc:
            raise InputDataError(p, f"corrupt gzip stream ({exc})") from None
        complete = False
    if len(data) >= MAX_DECOMPRESSED_BYTES:
        raise InputDataError(p, f"decompressed data exceed {MAX_DECOMPRESSED_BYTES} bytes")
    if not data:
        raise InputDataError(p, "empty file (gzip stream holds no data)")
    return data, complete


def _head(path: Path, size: int = 4096) -> bytes:
    """The first ``size`` (decompressed) bytes, without reading the whole file."""
    try:
        with path.open("rb") as handle:
            head = handle.read(size)
        if head.startswith(GZIP_MAGIC):
            with gzip.open(path, "rb") as handle:
                head = handle.read(size)
    except (EOFError, OSError, zlib.error):
        head, _ = load_bytes(path)  # raises the documented error, or returns the readable part
    return head[:size]


def _looks_like_iaga2002(head: bytes) -> bool:
    if head.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte-order mark
        head = head[3:]
    return head.lstrip(b" \t").startswith(b"Format")


def read_timeseries(
    path: str | PathLike, expected_interval_s: float | None = 1.0, time_range: tuple | None = None
) -> GeomagSeries:
    """Read any supported raw time-series file into a :class:`GeomagSeries`.

    Dispatch: a name like ``S230101.LUT`` / ``S230101.LUT.gz`` -> BMKG FRG-604RC reader;
    content starting with a CDF magic number -> ImagCDF reader; content starting with the
    IAGA-2002 `` Format`` header -> IAGA-2002 reader; content whose first 30 bytes form a valid
    FRG-604RC block header -> BMKG reader; else :class:`InputDataError` ("unknown file format").

    ``time_range=(start, end)`` names the samples the caller needs (``start <= t < end``): the
    ImagCDF reader, whose files may hold many days, reads only those records; the day-file readers
    return the whole file and the caller cuts its window (:func:`geomag.preprocess.cut_window`).
    """
    from geomag.bmkg import looks_like_frg604, read_bmkg_frg604
    from geomag.cdf import looks_like_cdf
    from geomag.iaga2002 import read_iaga2002

    p = check_file(path)
    if BMKG_NAME_PATTERN.match(p.name):
        return read_bmkg_frg604(p, expected_interval_s=expected_interval_s)
    head = _head(p)
    if looks_like_cdf(head):
        from geomag.imagcdf import read_imagcdf

        return read_imagcdf(p, expected_interval_s=expected_interval_s, time_range=time_range)
    if _looks_like_iaga2002(head):
        return read_iaga2002(p, expected_interval_s=expected_interval_s)
    if looks_like_frg604(head):
        logger.info("%s: name is not SYYMMDD.STN but content is an FRG-604RC block", p)
        return read_bmkg_frg604(p, expected_interval_s=expected_interval_s)
    raise InputDataError(
        p, "unknown file format (expected IAGA-2002 text, INTERMAGNET ImagCDF or a BMKG FRG-604RC SYYMMDD.STN file)"
    )
