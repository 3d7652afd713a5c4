"""The bad-input matrix of issue 7: one test per malformed input, each raising our documented error.

Every case asserts the error type (``InputDataError`` / ``ModelError`` / ``ConfigError`` from
``geomag/errors.py``, never a raw ``ValueError``/``KeyError``/PIL error), that the one-line message
names the file, a distinctive word of the problem, and that the failure wrote nothing next to the
input. Inputs are tiny: fixture excerpts, hand-built PNG/NPY files and 8x8 two-head Keras models.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from core.errors import ConfigError, InputDataError, ModelError, PrecursorError
from geomag.bmkg import BLOCK_BYTES, HEADER_BYTES, RECORD_BYTES, RECORDS_PER_BLOCK, read_bmkg_frg604
from geomag.dataset import ClassMappings, load_metadata
from geomag.iaga2002 import read_iaga2002
from geomag.images import ImageSpec, load_spectrogram_image
from geomag.readers import ReaderWarning, TruncatedFileWarning, read_timeseries
from geomag.sources import CsvDataSource
from models.loading import bundle_from_model, load_model_bundle
from tests.conftest import ROOT, run_main

FIXTURES = Path(__file__).resolve().parent / "fixtures"
WIC = FIXTURES / "wic_2018-08-29_excerpt.sec"  # 18 header lines, column line, 1,200 rows (CRLF)
LUT_GZ = FIXTURES / "S230101.LUT.gz"  # 3 complete FRG-604RC blocks + 4,000 bytes of block 4
COLUMN_LINE = 18
INVALID_RAW = (0xFF, 0xFF, 0x7F)  # 0x7FFFFF * 0.01 nT = 83,886 nT > 80,000 nT: "no data"


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@contextlib.contextmanager
def refused(error: type[PrecursorError], path: Path | str, *words: str, folder: Path | None = None) -> Iterator:
    """Expect ``error`` whose one-line message names ``path`` and contains ``words``; nothing written."""
    folder = Path(folder if folder is not None else Path(path).parent)
    before = _tree(folder)
    with pytest.raises(error) as info:
        yield info
    assert type(info.value).__module__ == "core.errors", type(info.value)
    message = str(info.value)
    assert str(path) in message, message
    assert "\n" not in message and "\r" not in message
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    assert _tree(folder) == before, "a failed read left files behind"


def _wic_lines() -> list[bytes]:
    return WIC.read_bytes().split(b"\n")


def _write(path: Path, data: bytes | list[bytes]) -> Path:
    path.write_bytes(b"\n".join(data) if isinstance(data, list) else data)
    return path


def _lut_blocks(n: int) -> bytes:
    return gzip.decompress(LUT_GZ.read_bytes())[: n * BLOCK_BYTES]


# ============================================================================ IAGA-2002
@pytest.mark.parametrize(("line", "label"), [(0, "Format"), (3, "IAGA Code"), (7, "Reported")])
def test_iaga_missing_header_field(tmp_path, line, label):
    lines = _wic_lines()
    del lines[line]
    path = _write(tmp_path / "wic.sec", lines)
    with refused(InputDataError, path, "missing required", f"'{label}'"):
        read_iaga2002(path)


@pytest.mark.parametrize(
    ("reported", "word"),
    [
        (b"EHZQ", "unknown element"),  # a letter IAGA-2002 does not define
        (b"HEZF", "disagree"),  # valid letters in another order than the columns WICE WICH WICZ WICF
        (b"EHZ", "3 elements"),  # fewer elements than data columns
        (b"EHZZ", "repeats"),
    ],
)
def test_iaga_unknown_reported_order(tmp_path, reported, word):
    lines = _wic_lines()
    lines[7] = b" Reported               " + reported.ljust(45) + b"|\r"
    path = _write(tmp_path / "wic.sec", lines)
    with refused(InputDataError, path, "Reported", word):
        read_iaga2002(path)


def test_iaga_one_minute_interval_refused(tmp_path):
    """1-minute data cannot give the 1-10 mHz band at 1 s sampling: refused, never resampled."""
    lines = _wic_lines()
    header = lines[: COLUMN_LINE + 1]
    header[10] = b" Data Interval Type     " + b"1-minute (00:15-01:45)".ljust(45) + b"|\r"
    minute_rows = [row for row in lines[COLUMN_LINE + 1 :] if row[17:23] == b"00.000"]  # hh:mm:00 rows
    assert len(minute_rows) == 20
    path = _write(tmp_path / "wic.min", header + minute_rows)
    for reader in (read_iaga2002, read_timeseries):
        with refused(InputDataError, path, "interval is 60 s", "1 s is expected", "never resampled"):
            reader(path)


@pytest.mark.parametrize(("token", "shown"), [(b"2x027.", "2x027"), (b"--", "--"), (b"nan", "nan")])
def test_iaga_non_numeric_value(tmp_path, token, shown):
    lines = _wic_lines()
    row = COLUMN_LINE + 1 + 10
    fields = lines[row].split()
    fields[4] = token  # the H column
    lines[row] = b"  ".join(fields) + b"\r"
    path = _write(tmp_path / "wic.sec", lines)
    with refused(InputDataError, path, "non-numeric", "WICH", shown, f"line {row + 1}"):
        read_iaga2002(path)


@pytest.mark.parametrize("line", [2, COLUMN_LINE + 4])  # the header (Latin-1 station name) and a data row
def test_iaga_non_utf8_bytes(tmp_path, line):
    lines = _wic_lines()
    lines[line] = lines[line].replace(b"Observatory", b"Observat\xf6rium").replace(b"  17.", b"\xe917.")
    assert b"\xf6" in lines[line] or b"\xe9" in lines[line]
    path = _write(tmp_path / "wic.sec", lines)
    with refused(InputDataError, path, "not UTF-8", f"line {line + 1}"):
        read_iaga2002(path)


@pytest.mark.parametrize(
    ("content", "word"),
    [
        (b"", "empty file"),
        (b"  \r\n\n\t\n", "empty file"),
        (gzip.compress(b""), "gzip stream holds no data"),
    ],
)
def test_iaga_empty_file(tmp_path, content, word):
    path = _write(tmp_path / "wic.sec", content)
    with refused(InputDataError, path, word):
        read_iaga2002(path)


# ============================================================================ BMKG FRG-604RC
@pytest.mark.parametrize(
    ("name", "content", "word"),
    [
        ("S230101.LUT", lambda: _lut_blocks(1)[: BLOCK_BYTES - 1], "no complete FRG-604RC block"),
        ("S230101.LUT", lambda: _lut_blocks(1)[:HEADER_BYTES], "no complete FRG-604RC block"),
        ("S230101.LUT.gz", lambda: LUT_GZ.read_bytes()[:12], "gzip"),  # the stream ends inside the gzip header
    ],
)
def test_bmkg_truncated_below_one_block(tmp_path, name, content, word):
    path = _write(tmp_path / name, content())
    with refused(InputDataError, path, word):
        read_timeseries(path)


def test_bmkg_truncated_inside_a_block_keeps_only_complete_blocks(tmp_path):
    """A cut inside block 3 is a (documented) warning: exactly the 2 complete blocks are read."""
    path = _write(tmp_path / "S230101.LUT", _lut_blocks(3)[: 2 * BLOCK_BYTES + HEADER_BYTES + 5 * RECORD_BYTES])
    with pytest.warns(TruncatedFileWarning, match="ends inside block 2"):
        series = read_bmkg_frg604(path)
    assert len(series) == 2 * RECORDS_PER_BLOCK
    assert series.times[-1] == np.datetime64("2023-01-01T00:19:59", "ms")


@pytest.mark.parametrize("name", ["S230101.ABC", "S230101.abc.gz"])
def test_bmkg_wrong_station_in_header(tmp_path, name):
    data = _lut_blocks(2)
    path = _write(tmp_path / name, gzip.compress(data) if name.endswith(".gz") else data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReaderWarning)  # "only 2 of 144 blocks"
        with refused(InputDataError, path, "station ABC", "LUT"):
            read_timeseries(path)


@pytest.mark.parametrize("raw", [INVALID_RAW, (0x00, 0x00, 0x80)])  # +83,886 nT and -83,886 nT
def test_bmkg_all_values_invalid(tmp_path, raw):
    blocks = np.frombuffer(_lut_blocks(2), np.uint8).reshape(2, BLOCK_BYTES).copy()
    records = blocks[:, HEADER_BYTES:].reshape(2, RECORDS_PER_BLOCK, RECORD_BYTES)
    records[..., 0:9] = np.tile(np.array(raw, np.uint8), 3)
    path = _write(tmp_path / "S230101.LUT", blocks.tobytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReaderWarning)
        with refused(InputDataError, path, "all 1200 records are invalid", "80000 nT"):
            read_bmkg_frg604(path)


# ============================================================================ images and arrays
RGB_SPEC = ImageSpec(layout="stacked", components=["H", "D", "Z"], frequency_range_hz=[0.001, 0.1])
GRAY_SPEC = ImageSpec(layout="channels", components=["H"], channels=1)
RNG = np.random.default_rng(7)


def _png(path: Path, pixels: np.ndarray, colour_type: int) -> Path:
    """A PNG written by hand (ISO/IEC 15948): big-endian samples, filter 0, for bit depths pillow cannot write."""
    height, width = pixels.shape[:2]
    depth = pixels.dtype.itemsize * 8
    raw = b"".join(b"\x00" + row.astype(pixels.dtype.newbyteorder(">")).tobytes() for row in pixels)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize("keep", ["half", 20, 8])  # inside IDAT, inside IHDR, only the signature
def test_truncated_png(tmp_path, keep):
    full = tmp_path / "full.png"
    Image.fromarray(RNG.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(full)
    data = full.read_bytes()
    path = _write(tmp_path / "cut.png", data[: len(data) // 2 if keep == "half" else keep])
    with refused(InputDataError, path, "cannot decode image"):
        load_spectrogram_image(path, RGB_SPEC)


def test_grayscale_png_for_rgb_input(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(RNG.integers(0, 256, (12, 12), dtype=np.uint8)).save(path)
    with refused(InputDataError, path, "grayscale image", "3 channels"):
        load_spectrogram_image(path, RGB_SPEC)


def test_rgba_with_real_transparency_refused(tmp_path):
    rgba = np.concatenate([RNG.integers(0, 256, (9, 9, 3), dtype=np.uint8), np.full((9, 9, 1), 255, np.uint8)], 2)
    rgba[4, 4, 3] = 0
    rgba[0, 1, 3] = 254
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba).save(path)
    with refused(InputDataError, path, "2 with alpha < 255", "transparent"):
        load_spectrogram_image(path, RGB_SPEC)


def test_rgba_with_opaque_alpha_is_dropped(tmp_path):
    rgb = RNG.integers(0, 256, (9, 9, 3), dtype=np.uint8)
    path = tmp_path / "opaque.png"
    Image.fromarray(np.concatenate([rgb, np.full((9, 9, 1), 255, np.uint8)], 2)).save(path)
    assert Image.open(path).mode == "RGBA"
    loaded = load_spectrogram_image(path, RGB_SPEC)
    assert loaded.image.shape == (9, 9, 3)
    np.testing.assert_array_equal(loaded.image, rgb.astype(np.float32) / np.float32(255))


def test_16bit_png(tmp_path, caplog):
    """16-bit grey is scaled by 1/65535 (not refused) for one-channel input, refused as grayscale for
    RGB input; 16-bit colour is decoded by pillow at 8-bit precision (high byte) with a warning."""
    grey = np.arange(16, dtype=np.uint16).reshape(4, 4) * 4369  # 0 .. 65535
    path = _png(tmp_path / "grey16.png", grey, colour_type=0)
    loaded = load_spectrogram_image(path, GRAY_SPEC)
    np.testing.assert_allclose(loaded.image[..., 0], grey / 65535.0, atol=1e-7)
    with refused(InputDataError, path, "grayscale image (mode I;16"):
        load_spectrogram_image(path, RGB_SPEC)
    colour = np.arange(4 * 4 * 3, dtype=np.uint16).reshape(4, 4, 3) * 1300
    path = _png(tmp_path / "rgb16.png", colour, colour_type=2)
    with caplog.at_level(logging.WARNING, logger="geomag.images"):
        loaded = load_spectrogram_image(path, RGB_SPEC)
    np.testing.assert_allclose(loaded.image * 255, colour >> 8, atol=1e-4)
    assert "rgb16.png: 16-bit RGB image read at 8-bit precision" in caplog.text
    grey_alpha = np.stack([grey, np.full_like(grey, 65535)], axis=-1)  # pillow makes this RGBA
    loaded = load_spectrogram_image(_png(tmp_path / "la16.png", grey_alpha, colour_type=4), GRAY_SPEC)
    np.testing.assert_allclose(loaded.image[..., 0] * 255, grey >> 8, atol=1e-4)


@pytest.mark.parametrize("suffix", [".png", ".npy"])
def test_wrong_size(tmp_path, suffix):
    pixels = RNG.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    path = tmp_path / f"small{suffix}"
    if suffix == ".png":
        Image.fromarray(pixels).save(path)
    else:
        np.save(path, pixels)
    spec = ImageSpec(layout="stacked", components=["H", "D", "Z"], expected_shape=[224, 224])
    with refused(InputDataError, path, "image is 24x20", "expected_shape is 224x224"):
        load_spectrogram_image(path, spec)


class _CreatesFileWhenUnpickled:
    """Unpickling this object opens (creates) ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_npy_object_array_refused_without_unpickling(tmp_path):
    marker = tmp_path / "unpickled.txt"
    path = tmp_path / "objects.npy"
    np.save(path, np.array([_CreatesFileWhenUnpickled(str(marker)), None], dtype=object), allow_pickle=True)
    with refused(InputDataError, path, "object arrays need pickle, refused"):
        load_spectrogram_image(path, RGB_SPEC)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("value", "dtype", "count"),
    [
        (np.nan, np.float32, 1),
        (np.inf, np.float32, 1),
        (-np.inf, np.float64, 1),
        (1e300, np.float64, 6 * 6 * 3),  # finite in float64, Inf once cast to the float32 input
    ],
)
def test_npy_nan_or_inf(tmp_path, value, dtype, count):
    array = np.zeros((6, 6, 3), dtype)
    if count == 1:
        array[2, 3, 1] = value
    else:
        array[:] = value
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with refused(InputDataError, path, f"{count} NaN/Inf values"):
        load_spectrogram_image(path, RGB_SPEC)


def _npy_header(text: str) -> bytes:
    """An .npy version 1.0 header holding ``text`` as written (numpy's own writer would validate it)."""
    body = text.encode("latin1")
    return np.lib.format.magic(1, 0) + struct.pack("<H", len(body)) + body


@pytest.mark.parametrize(
    ("content", "word"),
    [
        (None, "empty array"),
        (
            _npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 3), }".ljust(117) + "\n")
            + bytes(64),
            "not a readable .npy array",
        ),  # claims 112 GiB (np.load alone: MemoryError); holds 64 bytes
        (
            _npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (6, 6, 3}\n") + bytes(432),
            "not a readable .npy array",
        ),  # not a Python literal (np.load alone: tokenize.TokenError)
    ],
)
def test_npy_corrupt_header_or_empty(tmp_path, content, word):
    path = tmp_path / "odd.npy"
    if content is None:
        np.save(path, np.zeros((0, 0, 3), np.float32))
    else:
        path.write_bytes(content)
    with refused(InputDataError, path, word):
        load_spectrogram_image(path, ImageSpec(layout="channels", components=["H", "D", "Z"], channels=3))


# ============================================================================ metadata CSV
HEADER = "magnitude_class,azimuth_class,station,date,path"
MAPPINGS = {"magnitude_classes": ["Normal", "Large"], "azimuth_classes": ["Normal", "N"]}


def _dataset(root: Path, rows: list[str], header: str = HEADER, files: tuple[str, ...] = ("a.npy",)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in files:
        np.save(root / name, np.zeros((4, 4, 3), np.float32))
    csv_path = root / "metadata.csv"
    csv_path.write_text("\n".join([header, *rows]) + "\n")
    return csv_path


def test_csv_missing_columns(tmp_path):
    csv_path = _dataset(tmp_path, ["Large,N,2021-04-16,a.npy"], header="magnitude_class,azimuth_class,date,path")
    with refused(InputDataError, csv_path, "missing columns ['station']"):
        load_metadata(csv_path, None)


@pytest.mark.parametrize(
    ("row", "word"),
    [
        ("Huge,N,MLB,2021-04-16,a.npy", "magnitude class 'Huge'"),
        ("Large,NNE,MLB,2021-04-16,a.npy", "azimuth class 'NNE'"),
    ],
)
def test_csv_unknown_class(tmp_path, row, word):
    csv_path = _dataset(tmp_path, ["Normal,Normal,MLB,2021-04-15,a.npy", row])
    with refused(InputDataError, csv_path, "row 3", word, "not in the class mappings"):
        load_metadata(csv_path, ClassMappings.from_dict(MAPPINGS))


def test_csv_path_does_not_exist(tmp_path):
    csv_path = _dataset(tmp_path, ["Large,N,MLB,2021-04-16,a.npy", "Large,N,MLB,2021-04-17,sub/gone.npy"])
    with refused(InputDataError, csv_path, "row 3", "'sub/gone.npy' not found"):
        load_metadata(csv_path, None)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "home"])
def test_csv_path_outside_the_data_root(tmp_path, kind, monkeypatch):
    """Refused by default (``allow_outside_root: false`` in conf/data/csv.yaml), accepted when allowed."""
    monkeypatch.setenv("HOME", str(tmp_path))
    outside = tmp_path / "outside.npy"
    np.save(outside, np.ones((4, 4, 3), np.float32))
    raw = {"dotdot": "../outside.npy", "absolute": str(outside), "home": "~/outside.npy"}[kind]
    root = tmp_path / "data"
    csv_path = _dataset(root, [f"Large,N,MLB,2021-04-16,{raw}"])
    config = OmegaConf.load(ROOT / "conf" / "data" / "csv.yaml")
    assert config.allow_outside_root is False
    source = CsvDataSource(csv_path, allow_outside_root=config.allow_outside_root)
    with refused(InputDataError, csv_path, "row 2", raw, "outside the data root", "allow_outside_root"):
        source.records()
    allowed = CsvDataSource(csv_path, allow_outside_root=True)
    assert allowed.records()[0].path == outside.resolve()


@pytest.mark.parametrize(
    ("raw", "word"),
    [
        ("~no_such_user_0123/a.npy", "unknown user"),  # Path.expanduser raises RuntimeError
        ("a\x00.npy", "NUL"),  # os.stat raises ValueError
    ],
)
def test_csv_path_that_cannot_be_a_file_name(tmp_path, raw, word):
    csv_path = _dataset(tmp_path, [f"Large,N,MLB,2021-04-16,{raw}"])
    with refused(InputDataError, csv_path, "row 2", word):
        load_metadata(csv_path, None)


def test_csv_symlink_inside_root_is_followed_but_mask_outside_is_refused(tmp_path):
    """The root check is on the path as written: links the data's owner made inside the root work."""
    store = tmp_path / "store"
    store.mkdir()
    np.save(store / "b.npy", np.full((4, 4, 3), 0.5, np.float32))
    root = tmp_path / "data"
    csv_path = _dataset(root, ["Large,N,MLB,2021-04-16,images/b.npy,../store/b.npy"], header=HEADER + ",mask_path")
    (root / "images").symlink_to(store, target_is_directory=True)
    source = CsvDataSource(csv_path, image={"layout": "channels", "channels": 3})
    record = source.records()[0]
    assert source.load(record).image[0, 0, 0] == np.float32(0.5)
    with refused(InputDataError, csv_path, "mask_path", "outside the data root"):
        source.mask(record)


# ============================================================================ models
MODEL_MAPPINGS = ClassMappings(magnitude_classes=["Normal", "Large"], azimuth_classes=["Normal", "N", "S"])


def _two_head(sizes: tuple[int, int] = (2, 3), double_in_lambda: bool = False) -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs) if double_in_lambda else inputs
    x = keras.layers.Conv2D(2, 3, name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(
        inputs,
        [
            keras.layers.Dense(sizes[0], activation="softmax", name="magnitude")(x),
            keras.layers.Dense(sizes[1], activation="softmax", name="azimuth")(x),
        ],
    )


def _zip_without_config(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a model")


def _weights_only_named_h5(path: Path) -> None:
    weights = path.with_name("w.weights.h5")
    _two_head().save_weights(weights)
    path.write_bytes(weights.read_bytes())  # HDF5, but no model config inside


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("bytes.keras", lambda p: p.write_bytes(b"definitely not a zip archive")),
        ("archive.keras", _zip_without_config),
        ("text.h5", lambda p: p.write_text("not HDF5")),
        ("weights.h5", _weights_only_named_h5),
    ],
)
def test_model_file_that_is_not_a_model(tmp_path, name, make):
    path = tmp_path / name
    make(path)
    with refused(ModelError, path, "not a loadable Keras model"):
        load_model_bundle(path, MODEL_MAPPINGS)


@pytest.mark.parametrize(
    ("sizes", "words"),
    [
        ((3, 3), ("head 'magnitude'", "3 units", "2 magnitude classes")),
        ((2, 9), ("head 'azimuth'", "9 units", "3 azimuth classes")),
    ],
)
def test_model_head_sizes_do_not_match_class_mappings(tmp_path, sizes, words):
    path = tmp_path / "model.keras"
    _two_head(sizes).save(path)
    with refused(ModelError, path, *words):
        load_model_bundle(path, MODEL_MAPPINGS)


def test_model_lambda_layer_needs_unsafe_loading(tmp_path):
    model = _two_head(double_in_lambda=True)
    path = tmp_path / "lambda.keras"
    model.save(path)
    with refused(ModelError, path, "Lambda layer", "model.safe_mode=false"):
        load_model_bundle(path, MODEL_MAPPINGS)
    bundle = load_model_bundle(path, MODEL_MAPPINGS, safe_mode=False)  # the user trusts the file
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(bundle.predict_probabilities(x)["azimuth"], np.asarray(model(x)[1]), atol=1e-6)


# ============================================================================ config
def test_config_unknown_head_and_target_layer():
    """Unit level; the end-to-end runs of ``xai.heads=[magnitude,depth]`` and ``model.target_layer=...``
    are in tests/test_main_e2e.py, unknown ``_target_`` methods in tests/test_explainers_config.py."""
    with pytest.raises(ConfigError, match="unknown head 'depth'"):
        MODEL_MAPPINGS.classes("depth")
    with pytest.raises(ModelError, match="head 'azimuth': no output named 'direction'"):
        bundle_from_model(_two_head(), MODEL_MAPPINGS, heads={"magnitude": "magnitude", "azimuth": "direction"})
    with pytest.raises(ModelError, match=r"'no_such_layer' \(model.target_layer\) not found"):
        bundle_from_model(_two_head(), MODEL_MAPPINGS, target_layer="no_such_layer")


def test_config_unknown_image_option_is_a_config_error(tmp_path):
    csv_path = _dataset(tmp_path, ["Large,N,MLB,2021-04-16,a.npy"])
    with pytest.raises(ConfigError, match="data.image.*colour_map"):
        CsvDataSource(csv_path, image={"layout": "stacked", "colour_map": "jet"})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "group"),
    [
        ("model=no_such_model", "model"),
        ("xai=no_such_xai", "xai"),
        ("+method@xai.methods.extra=no_such_method", "method"),
    ],
)
def test_config_unknown_model_or_method_end_to_end(tmp_path, tiny_cache, override, group):
    """Hydra refuses an unknown config group option before any model is built (well under a second)."""
    run_dir = tmp_path / "run"
    proc = run_main([override, f"paths.cache_dir={tiny_cache}", f"hydra.run.dir={run_dir}"], timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"Could not find '{group}/{override.split('=')[1]}'" in output
    assert f"Available options in '{group}'" in output
    assert "Traceback" not in output
    assert not run_dir.exists()
