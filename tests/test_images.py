"""Existing spectrogram images/arrays as input, jet inversion and the users' PNG writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from core.errors import ConfigError, InputDataError
from geomag.images import (
    ImageSpec,
    apply_colormap,
    colormap_lut,
    invert_colormap,
    load_spectrogram_image,
    render_jet_stacked,
    save_spectrogram_png,
)

RNG = np.random.default_rng(0)


def _rgb(rows: int = 24, cols: int = 20) -> np.ndarray:
    return RNG.integers(0, 256, size=(rows, cols, 3), dtype=np.uint8)


def _stacked_spec(**kwargs) -> ImageSpec:
    return ImageSpec(
        layout="stacked",
        components=["H", "D", "Z"],
        frequency_range_hz=[0.001, 0.1],
        frequency_scale="log",
        window_s=21600,
        **kwargs,
    )


# ---------------------------------------------------------------------------- reading
def test_png_stacked_shape_values_axes(tmp_path: Path) -> None:
    pixels = _rgb(24, 20)
    path = save_spectrogram_png(tmp_path / "a.png", pixels)
    spec = _stacked_spec(expected_shape=[24, 20])
    loaded = load_spectrogram_image(path, spec, event_time="2021-04-16T10:00")
    assert loaded.image.dtype == np.float32 and loaded.image.shape == (24, 20, 3)
    np.testing.assert_allclose(loaded.image, pixels / 255.0, atol=1e-7)
    assert loaded.scalar is None and loaded.source == path
    axes = loaded.axes
    assert axes.layout == "stacked" and axes.shape == (24, 20)
    assert list(axes.row_component) == [0] * 8 + [1] * 8 + [2] * 8
    assert axes.row_frequency_hz[0] > axes.row_frequency_hz[7]  # top row = highest frequency of panel H
    assert 0.001 < axes.row_frequency_hz[7] < axes.row_frequency_hz[0] < 0.1
    assert axes.column_time_s[0] == pytest.approx(21600 * (1 - 0.5 / 20))
    assert axes.event_time == "2021-04-16T10:00"


def test_jpg_and_opaque_alpha(tmp_path: Path) -> None:
    pixels = np.full((16, 12, 3), (200, 40, 90), dtype=np.uint8)  # flat colour survives JPEG well
    Image.fromarray(pixels).save(tmp_path / "a.jpg", quality=95)
    loaded = load_spectrogram_image(tmp_path / "a.jpg", _stacked_spec())
    assert loaded.image.shape == (16, 12, 3)
    np.testing.assert_allclose(loaded.image, pixels / 255.0, atol=4 / 255)
    rgba = np.concatenate([pixels, np.full((16, 12, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "opaque.png")  # matplotlib writes an opaque alpha channel
    loaded = load_spectrogram_image(tmp_path / "opaque.png", _stacked_spec())
    np.testing.assert_array_equal(loaded.image, pixels / np.float32(255))


def test_channels_layout_npy(tmp_path: Path) -> None:
    array = RNG.normal(size=(10, 8, 3)).astype(np.float64)
    np.save(tmp_path / "a.npy", array)
    spec = ImageSpec(
        layout="channels",
        components=("H", "D", "Z"),
        frequency_range_hz=(0.001, 0.1),
        frequency_scale="linear",
        window_s=3600,
    )
    loaded = load_spectrogram_image(tmp_path / "a.npy", spec)
    np.testing.assert_allclose(loaded.image, array.astype(np.float32))  # float kept as it is
    assert loaded.axes.layout == "channels" and list(loaded.axes.row_component) == [-1] * 10
    assert np.allclose(np.diff(loaded.axes.row_frequency_hz), np.diff(loaded.axes.row_frequency_hz)[0])

    ranged = ImageSpec(layout="channels", value_range=(-2.0, 2.0))
    scaled = load_spectrogram_image(tmp_path / "a.npy", ranged).image
    np.testing.assert_allclose(scaled, np.clip((array + 2) / 4, 0, 1), atol=1e-6)

    np.save(tmp_path / "u8.npy", (array > 0).astype(np.uint8) * 255)
    assert set(np.unique(load_spectrogram_image(tmp_path / "u8.npy", spec).image)) == {0.0, 1.0}
    np.save(tmp_path / "u16.npy", np.full((4, 4, 3), 65535, np.uint16))
    assert np.all(load_spectrogram_image(tmp_path / "u16.npy", spec).image == 1.0)
    np.save(tmp_path / "i32.npy", np.ones((4, 4, 3), np.int32))
    with pytest.raises(InputDataError, match="i32.npy.*int32 array needs data.image.value_range"):
        load_spectrogram_image(tmp_path / "i32.npy", spec)


def test_single_channel_and_16bit(tmp_path: Path) -> None:
    spec = ImageSpec(layout="channels", components=["H"], channels=1)
    values = np.arange(0, 65536, 4096, dtype=np.uint16).reshape(4, 4)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I;16")
    loaded = load_spectrogram_image(tmp_path / "g16.png", spec)
    assert loaded.image.shape == (4, 4, 1)
    np.testing.assert_allclose(loaded.image[..., 0], values / 65535.0, atol=1e-6)  # scaled, not refused
    Image.fromarray(values.astype(np.uint8)).save(tmp_path / "g8.png")
    assert load_spectrogram_image(tmp_path / "g8.png", spec).image.shape == (4, 4, 1)
    np.save(tmp_path / "flat.npy", np.ones((4, 5)))
    assert load_spectrogram_image(tmp_path / "flat.npy", spec).image.shape == (4, 5, 1)
    with pytest.raises(InputDataError, match="g16.png.*grayscale image.*3 channels"):
        load_spectrogram_image(tmp_path / "g16.png", _stacked_spec())
    with pytest.raises(InputDataError, match="RGB image but data.image.channels is 1"):
        load_spectrogram_image(save_spectrogram_png(tmp_path / "rgb.png", _rgb()), spec)


# ---------------------------------------------------------------------------- image errors
def test_missing_and_unsupported(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="nope.png: spectrogram file not found"):
        load_spectrogram_image(tmp_path / "nope.png", _stacked_spec())
    (tmp_path / "a.gif").write_bytes(b"GIF89a")
    with pytest.raises(InputDataError, match="a.gif: unsupported file type"):
        load_spectrogram_image(tmp_path / "a.gif", _stacked_spec())


def test_truncated_and_corrupt_png(tmp_path: Path) -> None:
    full = save_spectrogram_png(tmp_path / "full.png", _rgb(64, 64)).read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(InputDataError, match="cut.png: cannot decode image"):
        load_spectrogram_image(cut, _stacked_spec())
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not a png at all")
    with pytest.raises(InputDataError, match="junk.png: cannot decode image"):
        load_spectrogram_image(junk, _stacked_spec())


def test_grayscale_refused_for_rgb(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "gray.png")
    with pytest.raises(InputDataError, match=r"gray.png: grayscale image \(mode L\)"):
        load_spectrogram_image(tmp_path / "gray.png", _stacked_spec())
    np.save(tmp_path / "gray.npy", np.zeros((8, 8), np.float32))
    with pytest.raises(InputDataError, match=r"gray.npy: array must be \(rows, cols, 3\)"):
        load_spectrogram_image(tmp_path / "gray.npy", _stacked_spec())


def test_transparency_refused(tmp_path: Path) -> None:
    rgba = np.concatenate([_rgb(8, 8), np.full((8, 8, 1), 255, np.uint8)], axis=2)
    rgba[3, 4, 3] = 254
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    with pytest.raises(InputDataError, match="alpha.png: image has transparent pixels"):
        load_spectrogram_image(tmp_path / "alpha.png", _stacked_spec())


def test_wrong_size(tmp_path: Path) -> None:
    path = save_spectrogram_png(tmp_path / "a.png", _rgb(24, 20))
    with pytest.raises(InputDataError, match="a.png: image is 24x20 but .*expected_shape is 224x224"):
        load_spectrogram_image(path, _stacked_spec(expected_shape=(224, 224)))
    np.save(tmp_path / "a.npy", np.zeros((24, 20, 3), np.float32))
    with pytest.raises(InputDataError, match="a.npy: image is 24x20"):
        load_spectrogram_image(tmp_path / "a.npy", _stacked_spec(expected_shape=(20, 24)))


def test_npy_errors(tmp_path: Path) -> None:
    spec = _stacked_spec()
    bad = np.zeros((6, 6, 3), np.float32)
    bad[1, 2, 0] = np.nan
    bad[0, 0, 1] = np.inf
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(InputDataError, match="nan.npy: array holds 2 NaN/Inf values"):
        load_spectrogram_image(tmp_path / "nan.npy", spec)
    np.save(tmp_path / "big.npy", np.full((6, 6, 3), 1e300))
    with pytest.raises(InputDataError, match="big.npy: array holds 108 NaN/Inf"):
        load_spectrogram_image(tmp_path / "big.npy", spec)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(InputDataError, match="obj.npy: object arrays need pickle, refused"):
        load_spectrogram_image(tmp_path / "obj.npy", spec)
    np.save(tmp_path / "ndim.npy", np.zeros((2, 6, 6, 3), np.float32))
    with pytest.raises(InputDataError, match=r"ndim.npy: array must be \(rows, cols, 3\)"):
        load_spectrogram_image(tmp_path / "ndim.npy", spec)
    np.save(tmp_path / "chw.npy", np.zeros((3, 6, 6), np.float32))
    with pytest.raises(InputDataError, match="chw.npy: array has 6 channels.*channels-first"):
        load_spectrogram_image(tmp_path / "chw.npy", spec)
    np.save(tmp_path / "cplx.npy", np.zeros((6, 6, 3), np.complex64))
    with pytest.raises(InputDataError, match="cplx.npy: unsupported array dtype complex64"):
        load_spectrogram_image(tmp_path / "cplx.npy", spec)
    (tmp_path / "trunc.npy").write_bytes((tmp_path / "nan.npy").read_bytes()[:100])
    with pytest.raises(InputDataError, match="trunc.npy: not a readable .npy array"):
        load_spectrogram_image(tmp_path / "trunc.npy", spec)


# ---------------------------------------------------------------------------- spec
def test_spec_from_omegaconf_and_errors() -> None:
    cfg = OmegaConf.create(
        {
            "layout": "stacked",
            "components": ["H", "D", "Z"],
            "frequency_range_hz": [0.001, 0.1],
            "expected_shape": [224, 224],
            "colormap": "jet",
            "invert_colormap": True,
        }
    )
    spec = ImageSpec(**cfg)
    assert spec.components == ("H", "D", "Z") and spec.expected_shape == (224, 224)
    assert spec.axes(9, 4).shape == (9, 4)
    for kwargs, message in [
        ({"layout": "rows"}, "layout"),
        ({"frequency_scale": "mel"}, "frequency_scale"),
        ({"frequency_range_hz": (0.1, 0.01)}, "frequency_range_hz"),
        ({"channels": 1}, "stacked layout is an RGB image"),
        ({"layout": "channels", "components": ["H", "D"]}, "one channel per component"),
        ({"invert_colormap": True}, "needs data.image.colormap"),
        ({"colormap": "no_such_map"}, "unknown matplotlib colormap"),
        ({"layout": "channels", "colormap": "jet"}, "stacked layout"),
        ({"expected_shape": [224]}, "expected_shape"),
        ({"value_range": [1, 1]}, "value_range"),
        ({"window_s": 0}, "window_s"),
    ]:
        with pytest.raises(ConfigError, match=message):
            ImageSpec(**kwargs)


# ---------------------------------------------------------------------------- jet
def test_jet_lut_matches_matplotlib() -> None:
    import matplotlib

    lut = colormap_lut("jet")
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    np.testing.assert_array_equal(lut[0], np.asarray(matplotlib.colormaps["jet"](0.0, bytes=True))[:3])
    np.testing.assert_array_equal(lut[-1], np.asarray(matplotlib.colormaps["jet"](1.0, bytes=True))[:3])


def test_jet_inversion_round_trip(tmp_path: Path) -> None:
    rows, cols = 30, 40
    panels = [RNG.uniform(-3, 2, size=(rows // 3, cols)) for _ in range(3)]
    rgb = render_jet_stacked(panels, shape=(rows, cols), vmin=-3, vmax=2)
    assert rgb.dtype == np.uint8 and rgb.shape == (rows, cols, 3)
    path = save_spectrogram_png(tmp_path / "jet.png", rgb)
    loaded = load_spectrogram_image(path, _stacked_spec(colormap="jet", invert_colormap=True))
    expected = (np.concatenate(panels, axis=0) + 3) / 5
    assert loaded.scalar.shape == (rows, cols) and loaded.scalar.dtype == np.float32
    assert np.abs(loaded.scalar - expected).max() <= 2 / 255
    np.testing.assert_array_equal(loaded.image, rgb / np.float32(255))
    # panel order H, D, Z from top to bottom
    assert np.abs(loaded.scalar[: rows // 3] - (panels[0] + 3) / 5).max() <= 2 / 255


def test_jet_inversion_matplotlib_written_png(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    scalar = np.linspace(0, 1, 64 * 48).reshape(64, 48)
    plt.imsave(tmp_path / "mpl.png", scalar, cmap="jet", vmin=0, vmax=1)  # RGBA with opaque alpha
    loaded = load_spectrogram_image(tmp_path / "mpl.png", _stacked_spec(colormap="jet", invert_colormap=True))
    assert np.abs(loaded.scalar - scalar).max() <= 2 / 255


def test_jet_inversion_jpeg_and_off_colormap(tmp_path: Path) -> None:
    scalar = np.tile(np.linspace(0, 1, 64), (48, 1))
    Image.fromarray(apply_colormap(scalar)).save(tmp_path / "jet.jpg", quality=95)
    loaded = load_spectrogram_image(tmp_path / "jet.jpg", _stacked_spec(colormap="jet", invert_colormap=True))
    assert np.median(np.abs(loaded.scalar - scalar)) < 0.02  # JPEG artefacts cost a little
    gray = np.full((20, 20, 3), 128, np.uint8)
    with pytest.raises(InputDataError, match="g.png: 100% of the pixels are not jet colours"):
        invert_colormap(gray, "jet", source="g.png")


def test_render_jet_stacked_resamples_and_validates() -> None:
    panels = [np.full((5, 7), v) for v in (0.0, 0.5, 1.0)]
    rgb = render_jet_stacked(panels, shape=(224, 224))
    assert rgb.shape == (224, 224, 3)
    lut = colormap_lut("jet")
    np.testing.assert_array_equal(rgb[0, 0], lut[0])  # H panel on top: vmin colour
    np.testing.assert_array_equal(rgb[100, 100], lut[128])  # D in the middle (75..149)
    np.testing.assert_array_equal(rgb[-1, -1], lut[255])  # Z at the bottom: vmax colour
    with pytest.raises(InputDataError, match="panel 1 holds NaN"):
        render_jet_stacked([panels[0], np.full((5, 7), np.nan), panels[2]])
    with pytest.raises(InputDataError, match="panel 0 must be a non-empty 2-D"):
        render_jet_stacked([np.zeros(5)])
    with pytest.raises(ConfigError, match="no panels"):
        render_jet_stacked([])


def test_save_png_atomic_and_validates(tmp_path: Path) -> None:
    path = save_spectrogram_png(tmp_path / "out" / "x.png", _rgb(6, 6))
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]
    with pytest.raises(InputDataError, match="uint8"):
        save_spectrogram_png(tmp_path / "y.png", np.zeros((6, 6, 3), np.float32))
    assert not (tmp_path / "y.png").exists()
