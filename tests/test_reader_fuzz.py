"""Property-based fuzzing of the raw readers: bad bytes raise InputDataError, nothing else.

Random bytes and mutated copies of the committed fixtures (byte flips, truncation, inserted
garbage lines, corrupted gzip streams; for ImagCDF also flips in the CDF records at the start of
the file and in an uncompressed copy) go through :func:`geomag.readers.read_timeseries`, and
random bytes, a real IAGA-2002 header over random rows, and real FRG-604RC block headers over
random records go straight into each reader (bypassing the format dispatch).
The only acceptable outcomes are a well-formed :class:`GeomagSeries` or an
:class:`InputDataError` with a one-line message naming the file; the readers' own
:class:`~geomag.readers.ReaderWarning` is fine, any other warning fails the test.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InputDataError
from geomag.bmkg import BLOCK_BYTES, HEADER_BYTES, RECORD_BYTES, RECORDS_PER_BLOCK, read_bmkg_frg604
from geomag.iaga2002 import read_iaga2002
from geomag.imagcdf import read_imagcdf
from geomag.readers import ReaderWarning, read_timeseries
from geomag.timeseries import GeomagSeries
from tests.fixtures.imagcdf_writer import write_imagcdf

FIXTURES = Path(__file__).resolve().parent / "fixtures"
IAGA = (FIXTURES / "wic_2018-08-29_Fgap_excerpt.sec").read_bytes()
IAGA_LINES = IAGA.split(b"\n")
IAGA_HEADER = IAGA_LINES[:19]  # the header and the DATE TIME DOY column line
IAGA_ROWS = [line for line in IAGA_LINES[19:] if line.strip()]
BMKG_GZ = (FIXTURES / "S230101.LUT.gz").read_bytes()
BMKG = gzip.decompress(BMKG_GZ)
IMAGCDF = (FIXTURES / "wic_2024-05-09_excerpt.cdf").read_bytes()  # variables gzip-compressed one by one


def _uncompressed_imagcdf() -> bytes:
    """The excerpt's first 300 records of H, E, Z, S as an uncompressed ImagCDF: every byte is structure or data."""
    series = read_imagcdf(
        FIXTURES / "wic_2024-05-09_excerpt.cdf",
        time_range=(np.datetime64("2024-05-09T00:00:00"), np.datetime64("2024-05-09T00:05:00")),
    )
    with tempfile.TemporaryDirectory() as folder:
        path = write_imagcdf(
            Path(folder) / "plain.cdf",
            {"DataTimes": (series.times, series.components)},
            global_attrs={"IagaCode": "WIC"},
        )
        return path.read_bytes()


IMAGCDF_PLAIN = _uncompressed_imagcdf()

# FUZZ_EXAMPLES=2000 for a deeper local run; CI keeps ~100 per test
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
NAMES = st.sampled_from(["data.sec", "wic20180829.sec.gz", "S230101.LUT", "S230101.LUT.gz", "blob.bin", "wic.cdf"])


def _read(data: bytes, name: str, reader=read_timeseries) -> None:
    """Read ``data`` saved as ``name``; assert the outcome honours the error contract."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # e.g. numpy parsing a time zone it then ignores
                warnings.simplefilter("ignore", ReaderWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                series = reader(path)
        except InputDataError as exc:
            message = str(exc)
            assert str(path) in message
            assert "\n" not in message and "\r" not in message
            return
    assert isinstance(series, GeomagSeries)
    assert len(series) > 0
    stamps = series.times.astype(np.int64)
    assert np.all(np.diff(stamps) > 0)
    assert np.all(np.diff(stamps) == int(round(series.sampling_interval_s * 1000)))
    for values in series.components.values():
        assert values.dtype == np.float64 and values.shape == (len(series),)
        assert not np.isinf(values).any()


def _flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, value in flips:
        out[position % len(out)] = value
    return bytes(out)


FLIPS = st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 255)), min_size=1, max_size=8)
GARBAGE = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=80).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from(
        [
            b"2018-08-29 12:15:41.000 241 1 2 3 4",
            b"DATE TIME DOY A B",
            b"# comment |",
            b" Reported  HDZF |",
            b"\t",
            b"99999.00 " * 7,
        ]
    ),
)


@FUZZ
@given(data=st.binary(max_size=3000), name=NAMES, compress=st.booleans())
def test_random_bytes(data: bytes, name: str, compress: bool):
    _read(gzip.compress(data) if compress else data, name)


@FUZZ
@given(
    mutation=st.one_of(
        FLIPS.map(lambda f: ("flip", f)),
        st.integers(0, len(IAGA)).map(lambda n: ("cut", n)),
        st.tuples(st.integers(0, len(IAGA_LINES)), GARBAGE).map(lambda g: ("insert", g)),
    ),
    name=st.sampled_from(["wic.sec", "wic.sec.gz", "blob.bin"]),
)
def test_mutated_iaga(mutation, name: str):
    kind, arg = mutation
    if kind == "flip":
        data = _flip(IAGA, arg)
    elif kind == "cut":
        data = IAGA[:arg]
    else:
        index, garbage = arg
        data = b"\n".join(IAGA_LINES[:index] + [garbage] + IAGA_LINES[index:])
    _read(gzip.compress(data) if name.endswith(".gz") else data, name)


HEADER_FLIPS = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, HEADER_BYTES - 1), st.integers(0, 255)),
    min_size=1,
    max_size=4,
)


@FUZZ
@given(
    mutation=st.one_of(
        FLIPS.map(lambda f: ("flip", f)),
        HEADER_FLIPS.map(lambda f: ("header", f)),
        st.integers(0, len(BMKG)).map(lambda n: ("cut", n)),
        FLIPS.map(lambda f: ("gzflip", f)),
        st.integers(0, len(BMKG_GZ)).map(lambda n: ("gzcut", n)),
    ),
    name=st.sampled_from(["S230101.LUT", "S230101.LUT.gz", "blob.bin"]),
)
def test_mutated_bmkg(mutation, name: str):
    kind, arg = mutation
    if kind == "flip":
        data = _flip(BMKG, arg)
    elif kind == "header":
        data = _flip(BMKG, [(block * BLOCK_BYTES + offset, value) for block, offset, value in arg])
    elif kind == "cut":
        data = BMKG[:arg]
    elif kind == "gzflip":
        data = _flip(BMKG_GZ, arg)
    else:
        data = BMKG_GZ[:arg]
    if kind in ("flip", "header", "cut") and name.endswith(".gz"):
        data = gzip.compress(data)
    _read(data, name)


@FUZZ
@given(data=st.binary(max_size=3000), reader=st.sampled_from([read_iaga2002, read_bmkg_frg604, read_imagcdf]))
def test_random_bytes_into_each_reader(data: bytes, reader):
    _read(data, "S230101.LUT" if reader is read_bmkg_frg604 else "data.sec", reader)


CDF_HEADS = st.sampled_from(
    [
        b"\xcd\xf3\x00\x01\x00\x00\xff\xff",
        b"\xcd\xf3\x00\x01\xcc\xcc\x00\x01",
        b"\xcd\xf2\x60\x02\x00\x00\xff\xff",
        IMAGCDF_PLAIN[:400],
    ]
)


@FUZZ
@given(head=CDF_HEADS, data=st.binary(max_size=3000), compress=st.booleans())
def test_random_bytes_behind_a_cdf_header(head: bytes, data: bytes, compress: bool):
    """A CDF magic number (or a real descriptor) in front of random bytes: dispatched to the ImagCDF reader."""
    payload = head + data
    _read(gzip.compress(payload) if compress else payload, "blob.cdf")


# flips anywhere, flips in the first 2,000 bytes (descriptor, variable and attribute records), cuts
CDF_MUTATIONS = st.one_of(
    FLIPS.map(lambda f: ("flip", f)),
    st.lists(st.tuples(st.integers(0, 1999), st.integers(0, 255)), min_size=1, max_size=4).map(lambda f: ("flip", f)),
    st.integers(0, 10**6).map(lambda n: ("cut", n)),
)


@FUZZ
@given(mutation=CDF_MUTATIONS, plain=st.booleans(), name=st.sampled_from(["wic.cdf", "wic.cdf.gz", "blob.bin"]))
def test_mutated_imagcdf(mutation, plain: bool, name: str):
    kind, arg = mutation
    original = IMAGCDF_PLAIN if plain else IMAGCDF
    data = _flip(original, arg) if kind == "flip" else original[: arg % (len(original) + 1)]
    _read(gzip.compress(data, mtime=0) if name.endswith(".gz") else data, name)


TOKENS = st.one_of(
    st.sampled_from(
        [
            "2018-08-29",
            "2018-02-30",
            "2018-W35-3",
            "12:15:41.000",
            "24:00:00.000",
            "12:15:41+01:00",
            "12:15:41Z",
            "2018-08-29T12:15:41",
            "241",
            "99999.00",
            "88888",
            "nan",
            "inf",
            "-0",
            "1e308",
            "|",
            "0x10",
            "1_000",
        ]
    ),
    st.text(max_size=12),
)
RANDOM_ROW = st.lists(TOKENS, max_size=9).map(lambda t: " ".join(t).encode("utf-8", "surrogatepass"))


@FUZZ
@given(
    n_rows=st.integers(1, 30),
    edits=st.lists(st.tuples(st.integers(0, 29), st.one_of(st.integers(0, 2), st.integers(3, 6)), TOKENS), max_size=3),
    insert=st.one_of(st.none(), st.tuples(st.integers(0, 30), RANDOM_ROW)),
)
def test_iaga_header_over_odd_rows(n_rows: int, edits, insert):
    """A valid header over real rows in which a few fields (date, time, DOY, values) are replaced
    by odd tokens (time zones, week dates, markers, text), optionally plus one random row."""
    rows = [line.split() for line in IAGA_ROWS[:n_rows]]
    for row, field, token in edits:
        rows[row % n_rows][field] = token.encode("utf-8", "surrogatepass")
    lines = [b" ".join(fields) for fields in rows]
    if insert is not None:
        lines.insert(insert[0] % (n_rows + 1), insert[1])
    _read(b"\n".join(IAGA_HEADER + lines), "wic.sec", read_iaga2002)


@FUZZ
@given(
    n_blocks=st.integers(1, 3),
    header_flips=st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, HEADER_BYTES - 1), st.integers(0, 255)), max_size=4
    ),
    seed=st.integers(0, 2**32 - 1),
    cut=st.integers(0, 100),
)
def test_bmkg_real_headers_over_random_records(n_blocks: int, header_flips, seed: int, cut: int):
    """Real block headers (optionally flipped) in front of random records, full-size blocks."""
    data = bytearray(BMKG[: n_blocks * BLOCK_BYTES])
    records = np.random.default_rng(seed).integers(0, 256, (n_blocks, RECORDS_PER_BLOCK * RECORD_BYTES), np.uint8)
    for block in range(n_blocks):
        start = block * BLOCK_BYTES + HEADER_BYTES
        data[start : start + records.shape[1]] = records[block].tobytes()
    for block, offset, value in header_flips:
        data[(block % n_blocks) * BLOCK_BYTES + offset] = value
    _read(bytes(data[: len(data) - cut]), "S230101.LUT", read_bmkg_frg604)
