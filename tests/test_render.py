"""Tests of the xai.render package: files, physical axes, fonts, atomic writes and input checks."""

from __future__ import annotations

import struct
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after selecting the backend)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from core.errors import InputDataError  # noqa: E402
from geomag.axes import SpectrogramAxes  # noqa: E402
from xai import render  # noqa: E402
from xai.render.checks import as_rgb  # noqa: E402
from xai.render.geometry import column_edges, row_edges  # noqa: E402
from xai.render.planes import background_plane  # noqa: E402
from xai.render.style import save_atomic  # noqa: E402

COMMON = {
    "components": ("H", "D", "Z"),
    "frequency_range_hz": (5e-4, 0.1),
    "frequency_scale": "log",
    "window_s": 6 * 3600.0,
}


@pytest.fixture(scope="module")
def channels_axes() -> SpectrogramAxes:
    return SpectrogramAxes.regular(layout="channels", n_rows=32, n_cols=32, **COMMON)


@pytest.fixture(scope="module")
def stacked_axes() -> SpectrogramAxes:
    return SpectrogramAxes.regular(layout="stacked", n_rows=48, n_cols=24, **COMMON)


def _image(axes: SpectrogramAxes, seed: int = 0, rgb: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if rgb:
        return rng.integers(0, 256, size=(*axes.shape, 3)).astype(np.uint8)
    return rng.normal(size=(*axes.shape, len(axes.components))).astype(np.float32) - 2.0


def _map(axes: SpectrogramAxes, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random(axes.shape).astype(np.float32)


def _heads(axes: SpectrogramAxes, methods=("gradcam", "saliency", "smoothgrad")) -> dict:
    return {
        "magnitude": {
            "prediction": "Large",
            "confidence": 0.93,
            "true": "Large",
            "correct": True,
            "explained_class": "Large",
            "maps": {m: _map(axes, i) for i, m in enumerate(methods)},
        },
        "azimuth": {
            "prediction": "N",
            "confidence": 0.41,
            "true": "SE",
            "correct": False,
            "explained_class": "N",
            "maps": {m: _map(axes, 10 + i) for i, m in enumerate(methods)},
        },
    }


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _is_pdf(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(b"%PDF") and b"%%EOF" in data[-64:]


def _texts(fig: Figure, draw: bool = True) -> list[Text]:
    if draw:
        fig.draw_without_rendering()  # lays out and creates the tick labels
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _image_axes(fig: Figure) -> list:
    """Axes that hold a spectrogram/heatmap mesh."""
    return [ax for ax in fig.findobj(matplotlib.axes.Axes) if ax.collections and ax.get_label() != "<colorbar>"]


@pytest.fixture(autouse=True)
def _no_open_figures():
    yield
    assert plt.get_fignums() == [], "render left pyplot figures open"


def _only(folder: Path, names: set[str]) -> None:
    present = {p.name for p in folder.iterdir()}
    assert present == names, f"unexpected files (temp files left?): {present ^ names}"


# ------------------------------------------------------------------ geometry
def test_cell_edges_are_exact_on_log_and_linear_axes(channels_axes, stacked_axes):
    edges = row_edges(channels_axes, np.arange(32))
    np.testing.assert_allclose(edges, np.geomspace(0.1, 5e-4, 33), rtol=1e-10)
    for k in range(3):
        panel = row_edges(stacked_axes, stacked_axes.panel_rows(k))
        np.testing.assert_allclose(panel, np.geomspace(0.1, 5e-4, 17), rtol=1e-10)
    np.testing.assert_allclose(column_edges(channels_axes), np.linspace(6.0, 0.0, 33), atol=1e-12)
    linear = SpectrogramAxes.regular(layout="channels", n_rows=10, n_cols=4, **{**COMMON, "frequency_scale": "linear"})
    np.testing.assert_allclose(row_edges(linear, np.arange(10)), np.linspace(0.1, 5e-4, 11), atol=1e-12)


def test_single_row_and_column_use_the_axes_range():
    axes = SpectrogramAxes.regular(layout="channels", n_rows=1, n_cols=1, **COMMON)
    assert sorted(row_edges(axes, np.arange(1))) == pytest.approx([5e-4, 0.1])
    assert sorted(column_edges(axes)) == pytest.approx([0.0, 6.0])


def test_overlay_background_of_each_layout(channels_axes, stacked_axes):
    image = _image(channels_axes)
    plane, name = background_plane(image, channels_axes)
    np.testing.assert_array_equal(plane, image[..., 0])
    assert name == "H log-power"
    level = np.random.default_rng(3).random(stacked_axes.shape)
    jet = matplotlib.colormaps["jet"].resampled(256)(np.round(level * 255) / 255)[..., :3]
    plane, name = background_plane(jet, stacked_axes)
    assert name == "jet-decoded input"
    np.testing.assert_allclose(plane, np.round(level * 255) / 255, atol=1.5 / 255)
    rgb = as_rgb(_image(stacked_axes, rgb=True), "x")
    plane, name = background_plane(rgb, stacked_axes)
    assert name == "input luminance"
    np.testing.assert_allclose(plane, rgb @ [0.299, 0.587, 0.114])


# ------------------------------------------------------------------ panel API
def test_plot_spectrogram_channels_has_physical_axes(channels_axes):
    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.add_subplot()
    mesh = render.plot_spectrogram(
        ax, _image(channels_axes)[..., 0], channels_axes, render.SpectrogramOptions(component="H")
    )
    assert mesh.get_array().size == 32 * 32
    assert ax.get_yscale() == "log"
    assert "Hz" in ax.get_ylabel() and "hours" in ax.get_xlabel()
    left, right = ax.get_xlim()
    assert left == pytest.approx(6.0) and right == pytest.approx(0.0)  # time increases to the right
    assert ax.get_ylim() == pytest.approx((5e-4, 0.1))
    fig.draw_without_rendering()
    ticks = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert {"1", "10", "100"} <= set(ticks), ticks  # mHz labels
    ulf = sorted(line.get_ydata()[0] for line in ax.get_lines())
    assert ulf == pytest.approx([1e-3, 1e-2])
    assert any(t.get_text() == render.ULF_LABEL for t in ax.texts)
    assert any(render.POWER_LABEL in a.get_ylabel() for a in fig.axes)  # colour bar label
    assert "H" in ax.get_title()


def test_plot_spectrogram_stacked_component_and_all_panels(stacked_axes):
    fig = Figure(figsize=(5, 6))
    ax = fig.add_subplot()
    plane = _image(stacked_axes)[..., 0]
    mesh = render.plot_spectrogram(
        fig.add_subplot(2, 1, 1), plane, stacked_axes, render.SpectrogramOptions(component="D", colorbar=False)
    )
    assert mesh.get_array().size == 16 * 24  # only the D panel's rows
    mesh = render.plot_spectrogram(
        ax, plane, stacked_axes, render.SpectrogramOptions(title="all panels", ulf_band=False)
    )
    assert len(ax.child_axes) == 3
    tags = [t.get_text() for child in ax.child_axes for t in child.texts]
    assert tags == ["H", "D", "Z"]
    for child in ax.child_axes:
        assert child.get_yscale() == "log" and child.get_ylim() == pytest.approx((5e-4, 0.1))
        assert not child.get_lines()  # ulf_band=False
    assert "hours" in ax.child_axes[-1].get_xlabel() and "Hz" in ax.child_axes[1].get_ylabel()


def test_plot_heatmap_overlay_rgb_background(stacked_axes):
    fig = Figure(figsize=(5, 6), layout="constrained")
    ax = fig.add_subplot()
    mesh = render.plot_heatmap_overlay(
        ax,
        _image(stacked_axes, rgb=True),
        _map(stacked_axes),
        stacked_axes,
        render.OverlayOptions(component="Z", title="overlay"),
    )
    assert mesh.get_alpha() == pytest.approx(0.5)
    assert (mesh.norm.vmin, mesh.norm.vmax) == (0.0, 1.0)
    assert mesh.get_cmap().name == "jet"
    with pytest.raises(InputDataError, match="alpha"):
        render.plot_heatmap_overlay(
            ax, _image(stacked_axes)[..., 0], _map(stacked_axes), stacked_axes, render.OverlayOptions(alpha=2.0)
        )


# ------------------------------------------------------------------ sample figure
@pytest.mark.parametrize("layout", ["channels", "stacked"])
def test_sample_figure_content(layout, channels_axes, stacked_axes):
    axes = channels_axes if layout == "channels" else stacked_axes
    methods = ("gradcam", "saliency", "smoothgrad") if layout == "channels" else ("gradcam", "smoothgrad")
    fig = render.build_sample_figure(
        sample="Large_X",
        model="vgg16",
        grid_image=_image(axes, rgb=layout == "stacked"),
        axes=axes,
        heads=_heads(axes, methods),
    )
    texts = _texts(fig)
    strings = [t.get_text() for t in texts]
    width, _ = fig.get_size_inches()
    assert 16.0 <= width <= 20.0
    assert min(t.get_fontsize() for t in texts) >= 9.0 - 1e-9
    joined = "\n".join(strings)
    for needle in ("Grad-CAM", "SmoothGrad", "hours before event", "frequency (mHz)", render.ULF_LABEL):
        assert needle in joined
    assert "magnitude: predicted Large (p = 0.93) · true Large ✓" in strings
    assert "azimuth: predicted N (p = 0.41) · true SE ✗ wrong" in strings
    if layout == "channels":
        assert any(render.POWER_LABEL in s for s in strings)
        assert any("over H log-power" in s for s in strings)
    image_axes = _image_axes(fig)
    # input: 3 component panels; per head: map, overlay, other methods; slots of 1 or 3 panels
    per_slot = 1 if layout == "channels" else 3
    slots = len(methods) + 1
    assert len(image_axes) == 3 + 2 * slots * per_slot
    for ax in image_axes:
        assert ax.get_yscale() == "log"
        assert ax.get_xlim()[0] > ax.get_xlim()[1]
    colour_bars = [a for a in fig.findobj(matplotlib.axes.Axes) if a.get_label() == "<colorbar>"]
    assert len(colour_bars) == (1 if layout == "channels" else 0) + 2 * slots
    fig.clear()


def test_render_sample_figure_writes_png_atomically(tmp_path, channels_axes):
    out = tmp_path / "figs" / "Large_X_visualization.png"
    written = render.render_sample_figure(
        out,
        sample="Large_X",
        model="vgg16",
        grid_image=_image(channels_axes),
        axes=channels_axes,
        heads={"azimuth": _heads(channels_axes, methods=("gradcam",))["azimuth"]},
    )
    assert written == out
    width, height = _png_size(out)
    assert width >= 16 * render.SCREEN_DPI and height > 600
    _only(out.parent, {out.name})


def test_sample_figure_without_gradcam_and_unknown_truth(channels_axes):
    heads = {
        "magnitude": {
            "prediction": "Large",
            "confidence": 0.5,
            "true": None,
            "correct": None,
            "explained_class": "Medium",
            "maps": {"saliency": _map(channels_axes)},
        }
    }
    fig = render.build_sample_figure(
        sample="s", model="m", grid_image=_image(channels_axes), axes=channels_axes, heads=heads
    )
    strings = [t.get_text() for t in _texts(fig, draw=False)]
    assert any("true class unknown" in s and "maps explain class Medium" in s for s in strings)
    assert "Saliency over H log-power (grey)" in strings


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda h, a: h["magnitude"]["maps"].update(gradcam=np.zeros((5, 5))), "shape"),
        (lambda h, a: h["magnitude"]["maps"].update(gradcam=np.full(a.shape, np.nan)), "NaN"),
        (lambda h, a: h["azimuth"]["maps"].update(saliency=np.full(a.shape, 3.0)), r"\[0, 1\]"),
        (lambda h, a: h["azimuth"].update(confidence=1.7), "probability"),
        (lambda h, a: h["azimuth"].pop("prediction"), "lacks prediction"),
        (lambda h, a: h["azimuth"].update(maps={}), "no maps"),
    ],
)
def test_sample_figure_rejects_bad_input(tmp_path, channels_axes, change, match):
    heads = _heads(channels_axes)
    change(heads, channels_axes)
    out = tmp_path / "bad.png"
    with pytest.raises(InputDataError, match=match) as caught:
        render.render_sample_figure(
            out, sample="s", model="m", grid_image=_image(channels_axes), axes=channels_axes, heads=heads
        )
    assert str(caught.value).startswith(f"{out}: ") and "\n" not in str(caught.value)
    _only(tmp_path, set())


def test_bad_images_are_rejected(channels_axes, stacked_axes):
    with pytest.raises(InputDataError, match="channels"):
        render.build_sample_figure(
            sample="s",
            model="m",
            grid_image=_image(channels_axes)[..., :2],
            axes=channels_axes,
            heads=_heads(channels_axes),
        )
    with pytest.raises(InputDataError, match="RGB values"):
        render.build_sample_figure(
            sample="s",
            model="m",
            grid_image=np.random.default_rng(0).normal(size=(48, 24, 3)) * 500,
            axes=stacked_axes,
            heads=_heads(stacked_axes),
        )
    with pytest.raises(InputDataError, match="unsupported figure format"):
        save_atomic(Figure(), Path("/tmp/x.jpeg"), dpi=50)


def test_failed_save_leaves_no_partial_file(tmp_path, channels_axes, monkeypatch):
    out = tmp_path / "fig.png"
    out.write_bytes(b"old")

    def broken_savefig(self, fname, **kwargs):
        Path(fname).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        render.render_sample_figure(
            out,
            sample="s",
            model="m",
            grid_image=_image(channels_axes),
            axes=channels_axes,
            heads=_heads(channels_axes, methods=("gradcam",)),
        )
    assert out.read_bytes() == b"old"
    _only(tmp_path, {"fig.png"})


# ------------------------------------------------------------------ comparison
def test_comparison_figure_mixed_grids(tmp_path, channels_axes, stacked_axes):
    entries = []
    for model, axes, rgb in (("vgg16", channels_axes, False), ("effnet", stacked_axes, True)):
        heads = {
            h: {
                "prediction": "Large",
                "confidence": 0.8,
                "true": "Medium",
                "correct": False,
                "map": _map(axes),
            }
            for h in ("magnitude", "azimuth")
        }
        entries.append({"model": model, "axes": axes, "grid_image": _image(axes, rgb=rgb), "heads": heads})
    del entries[1]["heads"]["azimuth"]  # a model without that head gets an empty cell
    fig = render.build_comparison_figure(sample="s", entries=entries)
    strings = [t.get_text() for t in _texts(fig)]
    assert "vgg16 · magnitude\npredicted Large (p = 0.80) · true Medium ✗" in strings
    assert "effnet · azimuth: no map" in strings
    assert len(_image_axes(fig)) == 2 + 3  # vgg16: 2 heads × 1 panel; effnet: 1 head × 3 panels
    assert any("Hz" in s for s in strings) and any("hours" in s for s in strings)
    fig.clear()
    out = render.render_comparison_figure(tmp_path / "cmp.png", sample="s", entries=entries[:1])
    _png_size(out)
    _only(tmp_path, {"cmp.png"})
    with pytest.raises(InputDataError, match="no models"):
        render.render_comparison_figure(tmp_path / "none.png", sample="s", entries=[])


# ------------------------------------------------------------------ confidence chart
def _confidence_inputs():
    samples, models, heads = ["Large_A", "Medium_B"], ["vgg16", "effnet"], ["magnitude", "azimuth"]
    conf = {h: {m: {s: 0.3 + 0.1 * i for i, s in enumerate(samples)} for m in models} for h in heads}
    corr = {h: {m: {s: True for s in samples} for m in models} for h in heads}
    corr["magnitude"]["effnet"]["Medium_B"] = False
    corr["azimuth"]["vgg16"]["Large_A"] = False
    corr["azimuth"]["vgg16"]["Medium_B"] = None
    return samples, models, heads, conf, corr


def test_confidence_chart_marks_wrong_predictions():
    samples, models, heads, conf, corr = _confidence_inputs()
    with render.paper_style():
        fig = render.build_confidence_figure(samples=samples, models=models, heads=heads, confidence=conf, correct=corr)
        strings = [t.get_text() for t in _texts(fig)]
    bars = [p for ax in fig.axes for p in ax.patches]
    assert len(bars) == len(samples) * len(models) * len(heads)
    assert sum(bool(b.get_hatch()) for b in bars) == 2
    assert sorted(round(b.get_height(), 6) for b in bars) == sorted([0.3, 0.4] * 4)
    assert "wrong prediction (hatched)" in strings and "true class unknown" in strings
    assert {"magnitude", "azimuth", "Large_A", "Medium_B", "vgg16", "effnet"} <= set(strings)
    fig.clear()


def test_confidence_chart_outputs(tmp_path):
    samples, models, heads, conf, corr = _confidence_inputs()
    kwargs = {"samples": samples, "models": models, "heads": heads[1:], "confidence": conf, "correct": corr}
    png = render.render_confidence_chart(tmp_path / "conf.png", **kwargs)
    assert png == [tmp_path / "conf.png"]
    _png_size(png[0])
    both = render.render_confidence_chart(tmp_path / "paper_conf", **kwargs)
    assert [p.name for p in both] == ["paper_conf.pdf", "paper_conf.png"]
    assert _is_pdf(both[0])
    assert _png_size(both[1])[0] == round(render.PAPER_WIDTH_IN * 300)
    again = render.render_confidence_chart(tmp_path / "p2.png", paper=True, **kwargs)
    assert [p.name for p in again] == ["p2.pdf", "p2.png"]
    _only(tmp_path, {"conf.png", "paper_conf.pdf", "paper_conf.png", "p2.pdf", "p2.png"})
    conf["azimuth"]["vgg16"]["Large_A"] = float("nan")
    with pytest.raises(InputDataError, match="probability"):
        render.render_confidence_chart(tmp_path / "nan.png", **kwargs)


# ------------------------------------------------------------------ paper grid
def _cells(samples, models, axes_by_model):
    cells = {}
    for i, s in enumerate(samples):
        for j, m in enumerate(models):
            axes = axes_by_model[m]
            cells[(s, m)] = {
                "axes": axes,
                "grid_image": _image(axes, i, rgb=axes.layout == "stacked"),
                "map": _map(axes, 10 * i + j),
                "prediction": "Large",
                "true": s.split("_")[0],
                "correct": s.startswith("Large"),
                "confidence": 0.75,
            }
    return cells


def test_paper_grid_fonts_and_axes(channels_axes, stacked_axes):
    samples, models = ["Large_A", "Medium_B"], ["vgg16", "effnet"]
    cells = _cells(samples, models, {"vgg16": channels_axes, "effnet": stacked_axes})
    with render.paper_style():
        fig = render.build_paper_grid_figure(
            samples=samples, models=models, cells=cells, head="magnitude", method="gradcam"
        )
        texts = _texts(fig)
    sizes = {t.get_fontsize() for t in texts}
    assert min(sizes) >= 7.0 and max(sizes) <= 9.0, sizes
    assert fig.get_size_inches()[0] == pytest.approx(render.PAPER_WIDTH_IN)
    strings = [t.get_text() for t in texts]
    assert "vgg16: Large (0.75) ✓" in strings and "effnet: Large (0.75) ✗" in strings
    assert "Large_A (true: Large)" in strings
    assert any(s.startswith("Grad-CAM (magnitude head, normalised)") for s in strings)
    assert any("Hz" in s for s in strings) and any("hours" in s for s in strings)
    assert len(_image_axes(fig)) == 2 * (1 + 3)
    fig.clear()


def test_render_paper_grid_writes_pdf_and_300dpi_png(tmp_path, channels_axes):
    samples, models = ["Large_A"], ["vgg16", "effnet"]
    cells = _cells(samples, models, {"vgg16": channels_axes, "effnet": channels_axes})
    del cells[("Large_A", "effnet")]  # a missing cell is drawn as n/a
    paths = render.render_paper_grid(
        tmp_path / "grid.pdf", samples=samples, models=models, cells=cells, head="magnitude", method="gradcam"
    )
    assert [p.name for p in paths] == ["grid.pdf", "grid.png"]
    assert _is_pdf(paths[0])
    assert b"/FontFile2" in paths[0].read_bytes()  # TrueType (fonttype 42), not Type 3
    width, height = _png_size(paths[1])
    assert width == round(render.PAPER_WIDTH_IN * 300) and height > 300
    _only(tmp_path, {"grid.pdf", "grid.png"})
    with pytest.raises(InputDataError, match="no cells"):
        render.render_paper_grid(tmp_path / "g", samples=["x"], models=["y"], cells={}, head="h", method="m")
    _only(tmp_path, {"grid.pdf", "grid.png"})
