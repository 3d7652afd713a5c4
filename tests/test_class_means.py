"""Class-mean maps (xai.trust.aggregate.class_means) and their figure: attention is clipped and scaled to
unit mass per sample; occlusion's signed score drops are averaged as they are and drawn on a diverging scale."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from matplotlib.collections import QuadMesh

from tests.conftest import grid_axes
from xai.render import render_class_means
from xai.render.reliance import RELIANCE_CMAP
from xai.trust.aggregate import class_means

MAPS = np.array(
    [
        [[1.0, -1.0], [0.0, 1.0]],  # class A
        [[-2.0, 0.0], [0.0, 0.0]],  # class A: all negative (no attention mass)
        [[3.0, 1.0], [0.0, 0.0]],  # class B
    ],
    dtype=np.float32,
)


class _Store:
    shape = MAPS.shape

    def chunks(self, method, head, size=64):
        yield 0, MAPS


def _means(method: str):
    context = SimpleNamespace(
        methods=[method], heads=["magnitude"], bundle=SimpleNamespace(classes=lambda head: ["A", "B", "C"])
    )
    journal = [{"heads": {"magnitude": {"true": c}}} for c in ("A", "A", "B")]
    return class_means(_Store(), journal, context)


def test_attention_is_clipped_and_scaled_to_unit_mass_per_sample():
    result = _means("gradcam")
    means = result.means["gradcam"]["magnitude"]
    np.testing.assert_allclose(means["A"], [[0.5, 0.0], [0.0, 0.5]])  # the all-negative map is skipped
    np.testing.assert_allclose(means["B"], [[0.75, 0.25], [0.0, 0.0]])
    assert result.counts["gradcam"]["magnitude"] == {"A": 1, "B": 1, "C": 0} and "C" not in means


def test_signed_drops_are_averaged_as_they_are():
    result = _means("occlusion")
    means = result.means["occlusion"]["magnitude"]
    np.testing.assert_allclose(means["A"], [[-0.5, -0.5], [0.0, 0.5]])
    np.testing.assert_allclose(means["B"], MAPS[2])
    assert result.counts["occlusion"]["magnitude"]["A"] == 2
    assert "signed" in result.summary([])["normalisation"]


def _meshes(fig) -> list:
    return [c for ax in fig.axes for c in ax.collections if isinstance(c, QuadMesh) and c.get_array() is not None]


def test_occlusion_figure_uses_a_symmetric_diverging_scale(tmp_path, monkeypatch):
    axes = grid_axes(2, frange=(0.001, 0.1), window_h=1.0)
    drawn = {}
    import xai.render.class_means as module

    real_release = module.release
    monkeypatch.setattr(module, "release", lambda fig: (drawn.setdefault("meshes", _meshes(fig)), real_release(fig)))
    for method in ("occlusion", "gradcam"):
        result = _means(method)
        path = render_class_means(
            tmp_path / f"{method}.png",
            model="m",
            method=method,
            means=result.means[method],
            counts=result.counts[method],
            axes=axes,
        )
        assert path.stat().st_size > 0
        meshes = drawn.pop("meshes")
        limits = {(m.norm.vmin, m.norm.vmax) for m in meshes}
        if method == "occlusion":
            assert {m.cmap.name for m in meshes} == {RELIANCE_CMAP} and limits == {(-3.0, 3.0)}
        else:
            assert {m.cmap.name for m in meshes} == {"inferno"} and limits == {(0.0, 0.75)}
