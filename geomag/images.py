"""Existing spectrogram images and arrays as model input, and the users' PNG format.

Supported files: ``.png``, ``.jpg``/``.jpeg`` (pillow) and ``.npy`` (``np.load`` with
``allow_pickle=False``). The physical axes of a file cannot be read from its pixels, so they
come from an :class:`ImageSpec` (config group ``data``) through
:meth:`geomag.axes.SpectrogramAxes.regular`.

Value conventions of :func:`load_spectrogram_image` (``LoadedSpectrogram.image`` is float32
``(rows, cols, channels)``):

* 8-bit images and ``uint8`` arrays are scaled to ``[0, 1]`` (``/255``);
* 16-bit grayscale images (pillow modes ``I;16*``) and ``uint16`` arrays are **scaled** to
  ``[0, 1]`` (``/65535``), not refused; 16-bit colour PNGs are decoded by pillow at 8-bit
  precision (high byte; a warning is logged); 32-bit integer or float images (modes ``I``/``F``)
  are refused (save them as ``.npy`` instead);
* ``.npy`` files are memory-mapped before they are copied, so a header that claims more data than
  the file holds, an object (pickle) array or an empty array is refused without allocating it;
* float arrays are kept as they are unless ``value_range: [lo, hi]`` is set, which maps
  ``lo -> 0`` and ``hi -> 1`` (values outside are clipped with a warning); other integer arrays
  need a ``value_range``;
* an alpha channel is dropped when it is fully opaque (matplotlib writes one); any
  transparent pixel is refused;
* with ``colormap: jet`` and ``invert_colormap: true`` every RGB pixel is mapped back to the
  scalar in ``[0, 1]`` whose jet colour is nearest (``LoadedSpectrogram.scalar``, ``(rows, cols)``),
  i.e. the normalised log power of each panel. Colour ``i`` of the 256-entry LUT decodes to the
  centre ``(i + 0.5) / 256`` of the values matplotlib draws with it, so the error is at most
  ``0.5/256`` (``2/256`` in jet's four-entry flat blue run) for lossless files.

:func:`render_jet_stacked` and :func:`save_spectrogram_png` write the users' format: three
jet-coloured panels H, D, Z stacked from top to bottom, no axes, 224x224 RGB PNG.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import ConfigError, InputDataError
from core.io import atomic_path
from core.text import first_line, plain
from geomag.axes import LAYOUTS, SCALES, SpectrogramAxes

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy",)
SUPPORTED_SUFFIXES = IMAGE_SUFFIXES + ARRAY_SUFFIXES
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# a pixel whose colour is farther than this (0..255 RGB units) from every LUT colour is "off-colormap"
_OFF_COLORMAP_DISTANCE = 48.0
_MAX_OFF_COLORMAP_FRACTION = 0.2


@dataclass
class ImageSpec:
    """How to read an existing spectrogram file and which physical axes it has.

    Attributes:
        layout: ``stacked`` (RGB panels H, D, Z top to bottom) or ``channels``
            (one channel per component).
        components: component names, top panel first (stacked) or channel order (channels).
        frequency_range_hz: ``(fmin, fmax)`` covered by every panel.
        frequency_scale: ``log`` or ``linear`` spacing of the rows.
        window_s: time span of the columns (seconds before the event, default 6 h).
        expected_shape: ``(rows, cols)`` every file must have, or ``None`` to accept any.
        channels: channels the file must have (3 for RGB; 1 for single-channel data).
        colormap: ``None`` or the matplotlib colormap the image was drawn with (``"jet"``).
        invert_colormap: map colours back to scalars in ``[0, 1]`` (needs ``colormap``).
        value_range: ``(lo, hi)`` mapped to ``[0, 1]`` for ``.npy`` arrays, or ``None``.
    """

    layout: str = "stacked"
    components: tuple[str, ...] = ("H", "D", "Z")
    frequency_range_hz: tuple[float, float] = (0.0005, 0.1)
    frequency_scale: str = "log"
    window_s: float = 21600.0
    expected_shape: tuple[int, int] | None = None
    channels: int = 3
    colormap: str | None = None
    invert_colormap: bool = False
    value_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        self.components = tuple(str(c) for c in plain(self.components))
        self.frequency_range_hz = tuple(float(v) for v in plain(self.frequency_range_hz))
        self.window_s = float(self.window_s)
        self.channels = int(self.channels)
        if self.layout not in LAYOUTS:
            raise ConfigError(f"data.image.layout: {self.layout!r} is not one of {LAYOUTS}")
        if self.frequency_scale not in SCALES:
            raise ConfigError(f"data.image.frequency_scale: {self.frequency_scale!r} is not one of {SCALES}")
        franges = self.frequency_range_hz
        if len(franges) != 2 or not 0 < franges[0] < franges[1]:
            raise ConfigError(
                f"data.image.frequency_range_hz: need [fmin, fmax] with 0 < fmin < fmax, "
                f"got {list(self.frequency_range_hz)}"
            )
        if not self.components:
            raise ConfigError("data.image.components: empty list")
        if self.window_s <= 0:
            raise ConfigError(f"data.image.window_s: must be positive, got {self.window_s}")
        if self.channels not in (1, 3):
            raise ConfigError(f"data.image.channels: must be 1 or 3, got {self.channels}")
        if self.layout == "stacked" and self.channels != 3:
            raise ConfigError("data.image.channels: the stacked layout is an RGB image, channels must be 3")
        if self.layout == "channels" and self.channels != len(self.components):
            raise ConfigError(
                f"data.image.channels: the channels layout needs one channel per component "
                f"({len(self.components)} for {list(self.components)}), got {self.channels}"
            )
        if self.expected_shape is not None:
            shape = tuple(int(v) for v in plain(self.expected_shape))
            if len(shape) != 2 or min(shape) < 1:
                raise ConfigError(f"data.image.expected_shape: need [rows, cols] or null, got {list(shape)}")
            self.expected_shape = shape
        if self.colormap is not None:
            if self.layout != "stacked":
                raise ConfigError("data.image.colormap: colour-mapped images must use the stacked layout")
            colormap_lut(self.colormap)  # validates the name
        if self.invert_colormap and self.colormap is None:
            raise ConfigError("data.image.invert_colormap: needs data.image.colormap (e.g. jet)")
        if self.value_range is not None:
            lo, hi = (float(v) for v in plain(self.value_range))
            if not np.isfinite([lo, hi]).all() or not lo < hi:
                raise ConfigError(f"data.image.value_range: need [lo, hi] with lo < hi, got {[lo, hi]}")
            self.value_range = (lo, hi)

    def axes(self, n_rows: int, n_cols: int, event_time: str | None = None) -> SpectrogramAxes:
        """Physical axes of a ``(n_rows, n_cols)`` image in this spec."""
        return SpectrogramAxes.regular(
            layout=self.layout,
            components=self.components,
            n_rows=n_rows,
            n_cols=n_cols,
            frequency_range_hz=self.frequency_range_hz,
            frequency_scale=self.frequency_scale,
            window_s=self.window_s,
            event_time=event_time,
        )


@dataclass
class LoadedSpectrogram:
    """A spectrogram read from a file.

    ``image``: float32 ``(rows, cols, channels)`` (see the module docstring for the scaling);
    ``axes``: its physical axes; ``scalar``: float32 ``(rows, cols)`` in ``[0, 1]`` recovered from
    the colormap when the spec asks for the inversion, else ``None``; ``source``: the file.
    """

    image: np.ndarray
    axes: SpectrogramAxes
    scalar: np.ndarray | None = None
    source: Path | None = None


# ---------------------------------------------------------------------------- colormaps
@lru_cache(maxsize=8)
def colormap_lut(name: str) -> np.ndarray:
    """The 256-entry uint8 RGB table of a matplotlib colormap, as matplotlib writes it to PNG."""
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name].resampled(256)
    except KeyError:
        raise ConfigError(f"data.image.colormap: unknown matplotlib colormap {name!r}") from None
    lut = np.asarray(cmap(np.arange(256), bytes=True))[:, :3]
    lut.setflags(write=False)
    return lut


@lru_cache(maxsize=8)
def _colormap_tree(name: str):
    """KD-tree over the distinct LUT colours and the scalar each stands for (repeats averaged)."""
    from scipy.spatial import cKDTree

    lut = colormap_lut(name).astype(np.float64)
    colours, inverse = np.unique(lut, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    # LUT entry i is drawn for x in [i/256, (i+1)/256) (matplotlib's quantisation): use the centre
    scalars = (np.bincount(inverse, weights=np.arange(256)) / np.bincount(inverse) + 0.5) / 256.0
    return cKDTree(colours), scalars


def invert_colormap(rgb: np.ndarray, name: str = "jet", source: str | os.PathLike | None = None) -> np.ndarray:
    """Scalar ``(rows, cols)`` float32 in ``[0, 1]`` whose colour is nearest each RGB pixel.

    ``rgb`` is uint8 ``(rows, cols, 3)``. Only the distinct colours of the image are looked up.
    Raises :class:`InputDataError` when many pixels are far from every colormap colour (the
    image was not drawn with this colormap, or it has axes/labels).
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputDataError(source, f"colormap inversion needs uint8 (rows, cols, 3) RGB, got {rgb.dtype} {rgb.shape}")
    tree, scalars = _colormap_tree(name)
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    unique, inverse = np.unique(packed.ravel(), return_inverse=True)
    colours = np.stack([(unique >> 16) & 255, (unique >> 8) & 255, unique & 255], axis=1).astype(np.float64)
    distance, nearest = tree.query(colours)
    pixel_distance = distance[inverse.ravel()]
    off = float(np.mean(pixel_distance > _OFF_COLORMAP_DISTANCE))
    if off > _MAX_OFF_COLORMAP_FRACTION:
        raise InputDataError(
            source,
            f"{off:.0%} of the pixels are not {name} colours; the image does "
            f"not look like a {name}-coloured spectrogram without axes",
        )
    if off > 0:
        log.warning("%s: %.1f%% of the pixels are far from every %s colour", source, 100 * off, name)
    return scalars[nearest][inverse.ravel()].reshape(rgb.shape[:2]).astype(np.float32)


def apply_colormap(scalar: np.ndarray, name: str = "jet") -> np.ndarray:
    """uint8 RGB of scalars in ``[0, 1]``, quantised as matplotlib does (``floor(x * 256)``, 1 -> 255)."""
    index = np.clip(np.floor(np.asarray(scalar, dtype=np.float64) * 256.0), 0, 255).astype(np.intp)
    return colormap_lut(name)[index]


# ---------------------------------------------------------------------------- reading
def _check_finite(array: np.ndarray, path: Path) -> None:
    if not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise InputDataError(path, f"array holds {bad} NaN/Inf values")


def _tile_rawmode(handle: Image.Image) -> str:
    """The raw pixel layout pillow will decode (``"RGB;16B"`` for 48-bit PNGs), or ``""``."""
    try:
        args = handle.tile[0][3]
    except (AttributeError, IndexError, TypeError):
        return ""
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def _read_image_file(path: Path, spec: ImageSpec) -> tuple[np.ndarray, np.ndarray | None]:
    """float32 image and (for RGB files) the uint8 RGB pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as handle:
                rawmode = _tile_rawmode(handle)
                handle.load()
                img = handle.copy()
    except Exception as exc:  # decoders of untrusted bytes raise OSError, SyntaxError, struct.error...
        raise InputDataError(path, f"cannot decode image (truncated or corrupt file?): {first_line(exc)}") from None
    mode = img.mode
    if ";16" in rawmode and mode not in _SIXTEEN_BIT_MODES:
        # pillow keeps the high byte of 16-bit colour (and grey + alpha) PNGs
        log.warning("%s: 16-bit %s image read at 8-bit precision", path, rawmode.split(";")[0])
    if rawmode.startswith("LA") and mode == "RGBA":
        mode = "LA"  # pillow decodes 16-bit grey + alpha as RGBA with R = G = B
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.asarray(img.getchannel("A"))
        if alpha.min() < 255:
            raise InputDataError(
                path,
                f"image has transparent pixels ({int(np.sum(alpha < 255))} with "
                "alpha < 255); save it without transparency",
            )
        img = img.convert("L" if mode in ("LA", "La") else "RGB")
        mode = img.mode
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
        mode = "RGB"
    if mode == "1":
        img = img.convert("L")
        mode = "L"

    if mode == "RGB":
        rgb = np.asarray(img, dtype=np.uint8)
        if spec.channels != 3:
            raise InputDataError(path, f"RGB image but data.image.channels is {spec.channels}")
        return rgb.astype(np.float32) / 255.0, rgb
    if mode in ("L", *_SIXTEEN_BIT_MODES):
        if spec.channels == 3:
            raise InputDataError(path, f"grayscale image (mode {mode}) but 3 channels (RGB) are expected")
        pixels = np.asarray(img)
        scale = 255.0 if mode == "L" else 65535.0
        return (pixels.astype(np.float32) / np.float32(scale))[..., None], None
    raise InputDataError(
        path, f"unsupported image mode {mode!r}; use 8-bit RGB/grayscale, 16-bit grayscale, or a .npy array"
    )


def _read_array_file(path: Path, spec: ImageSpec) -> np.ndarray:
    # Memory-mapped first: a header that claims more data than the file holds fails here instead of
    # allocating it, and object (pickled) arrays cannot be mapped at all.
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # np.load on untrusted bytes raises many types (TokenError, ...)
        message = first_line(exc)
        if "pickle" in message.lower() or "python objects" in message.lower():
            raise InputDataError(path, "object arrays need pickle, refused") from None
        raise InputDataError(path, f"not a readable .npy array ({message})") from None
    if not isinstance(loaded, np.ndarray):
        if hasattr(loaded, "close"):
            loaded.close()  # an .npz archive
        raise InputDataError(path, "expected a single .npy array")
    if loaded.dtype.hasobject:
        raise InputDataError(path, "object arrays need pickle, refused")
    array = np.array(loaded)  # copy out of the memory map
    del loaded
    if array.size == 0:
        raise InputDataError(path, f"empty array of shape {array.shape}")
    if array.ndim == 2 and spec.channels == 1:
        array = array[..., None]
    if array.ndim != 3:
        raise InputDataError(path, f"array must be (rows, cols, {spec.channels}), got shape {array.shape}")
    if array.shape[2] != spec.channels:
        hint = " (channels-first? move the channel axis last)" if array.shape[0] == spec.channels else ""
        raise InputDataError(
            path, f"array has {array.shape[2]} channels in shape {array.shape}, expected {spec.channels}{hint}"
        )
    kind = array.dtype.kind
    if kind not in "uif":
        raise InputDataError(path, f"unsupported array dtype {array.dtype}; use uint8, uint16 or float")
    if kind == "f":
        _check_finite(array, path)
    if spec.value_range is not None:
        lo, hi = spec.value_range
        scaled = (array.astype(np.float64) - lo) / (hi - lo)
        outside = float(np.mean((scaled < 0) | (scaled > 1)))
        if outside > 0:
            log.warning(
                "%s: %.2f%% of the values lie outside value_range %s and are clipped",
                path,
                100 * outside,
                list(spec.value_range),
            )
        result = np.clip(scaled, 0.0, 1.0).astype(np.float32)
    elif array.dtype == np.uint8:
        result = array.astype(np.float32) / np.float32(255.0)
    elif array.dtype == np.uint16:
        result = array.astype(np.float32) / np.float32(65535.0)
    elif kind == "f":
        with np.errstate(over="ignore"):
            result = array.astype(np.float32)
    else:
        raise InputDataError(path, f"{array.dtype} array needs data.image.value_range to be scaled")
    _check_finite(result, path)  # float64 beyond the float32 range
    return result


def load_spectrogram_image(
    path: str | os.PathLike, spec: ImageSpec, event_time: str | None = None
) -> LoadedSpectrogram:
    """Read a spectrogram image (PNG/JPG) or array (``.npy``) and attach its physical axes."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputDataError(path, f"unsupported file type {path.suffix!r}; expected one of {list(SUPPORTED_SUFFIXES)}")
    if not path.is_file():
        raise InputDataError(path, "spectrogram file not found")
    rgb = None
    if suffix in IMAGE_SUFFIXES:
        image, rgb = _read_image_file(path, spec)
    else:
        image = _read_array_file(path, spec)
    rows, cols = int(image.shape[0]), int(image.shape[1])
    if spec.expected_shape is not None and (rows, cols) != tuple(spec.expected_shape):
        raise InputDataError(
            path,
            f"image is {rows}x{cols} but data.image.expected_shape is "
            f"{spec.expected_shape[0]}x{spec.expected_shape[1]}",
        )
    if spec.layout == "stacked" and rows < len(spec.components):
        raise InputDataError(path, f"{rows} rows cannot hold {len(spec.components)} stacked panels")
    scalar = None
    if spec.invert_colormap:
        if rgb is None:  # a .npy RGB array in [0, 1] or uint8
            rgb = np.clip(np.rint(image.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
        scalar = invert_colormap(rgb, spec.colormap, source=path)
    axes = spec.axes(rows, cols, event_time=event_time)
    return LoadedSpectrogram(image=np.ascontiguousarray(image, dtype=np.float32), axes=axes, scalar=scalar, source=path)


# ---------------------------------------------------------------------------- writing
def _resize_float(panel: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Bilinear resampling of a float panel to ``(rows, cols)`` (identity when already that size)."""
    if panel.shape == (rows, cols):
        return panel.astype(np.float64)
    img = Image.fromarray(panel.astype(np.float32))
    return np.asarray(img.resize((cols, rows), resample=Image.Resampling.BILINEAR), dtype=np.float64)


def render_jet_stacked(
    panels: Sequence[np.ndarray],
    shape: tuple[int, int] = (224, 224),
    vmin: float | None = None,
    vmax: float | None = None,
    colormap: str = "jet",
) -> np.ndarray:
    """The users' image format: jet-coloured panels stacked top to bottom, no axes.

    ``panels`` are scalar (log-power) arrays ``(rows_i, cols_i)`` in image orientation (row 0 =
    highest frequency, column 0 = earliest time), H first. Each is resampled bilinearly to its
    share of ``shape`` (rows split as :meth:`SpectrogramAxes.regular` splits them), normalised
    with ``(x - vmin) / (vmax - vmin)`` clipped to ``[0, 1]`` (defaults: min/max over all panels)
    and coloured. Returns uint8 ``(rows, cols, 3)``.
    """
    rows, cols = (int(v) for v in shape)
    if not panels:
        raise ConfigError("render_jet_stacked: no panels given")
    if rows < len(panels) or cols < 1:
        raise ConfigError(f"render_jet_stacked: shape {shape} cannot hold {len(panels)} panels")
    arrays = [np.asarray(p, dtype=np.float64) for p in panels]
    for i, panel in enumerate(arrays):
        if panel.ndim != 2 or min(panel.shape) < 1:
            raise InputDataError(
                None, f"render_jet_stacked: panel {i} must be a non-empty 2-D array, got shape {panel.shape}"
            )
        if not np.isfinite(panel).all():
            raise InputDataError(None, f"render_jet_stacked: panel {i} holds NaN/Inf values")
    lo = min(float(p.min()) for p in arrays) if vmin is None else float(vmin)
    hi = max(float(p.max()) for p in arrays) if vmax is None else float(vmax)
    if not hi > lo:
        hi = lo + 1.0  # constant input: everything maps to the bottom colour
    splits = np.array_split(np.arange(rows), len(arrays))
    out = np.empty((rows, cols, 3), dtype=np.uint8)
    for panel, panel_rows in zip(arrays, splits):
        resized = _resize_float(panel, len(panel_rows), cols)
        scaled = np.clip((resized - lo) / (hi - lo), 0.0, 1.0)
        out[panel_rows[0] : panel_rows[-1] + 1] = apply_colormap(scaled, colormap)
    return out


def save_spectrogram_png(path: str | os.PathLike, image_rgb_uint8: np.ndarray) -> Path:
    """Write a uint8 ``(rows, cols, 3)`` RGB image as PNG atomically (:func:`core.io.atomic_path`)."""
    path = Path(path)
    image = np.asarray(image_rgb_uint8)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputDataError(path, f"PNG writer needs uint8 (rows, cols, 3), got {image.dtype} {image.shape}")
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        Image.fromarray(np.ascontiguousarray(image)).save(handle, format="PNG")
    return path
