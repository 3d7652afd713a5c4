"""Component maps and shares (xai.components) against a model that reads one input channel only."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from geomag.axes import SpectrogramAxes
from geomag.sources import DemoDataSource
from geomag.spectrogram import SpectrogramConfig
from models.loading import bundle_from_model
from tests.conftest import grid_axes
from xai.components import CAM_REASON, component_entry, component_shares, grid_channel_maps
from xai.explainers.base import Explanation
from xai.explainers.gradcam import GradCAM
from xai.explainers.saliency import Saliency
from xai.explainers.smoothgrad import SmoothGrad
from xai.pipeline import ExplainContext, explain_batch, load_grids


def one_channel_model(channel: int, n_magnitude: int, n_azimuth: int, size: int = 32) -> keras.Model:
    """A 1x1 convolution with fixed weights keeps only input channel ``channel``; the rest is a tiny CNN."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3), name="image")
    pick = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False, name="pick")
    x = keras.layers.Conv2D(8, 3, activation="tanh", name="feat")(pick(inputs))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = [
        keras.layers.Activation("softmax", name=head)(keras.layers.Dense(n, name=f"{head}_logits")(x))
        for head, n in (("magnitude", n_magnitude), ("azimuth", n_azimuth))
    ]
    model = keras.Model(inputs, outputs, name=f"reads_channel_{channel}")
    kernel = np.zeros((1, 1, 3, 1), np.float32)
    kernel[0, 0, channel, 0] = 1.0
    pick.set_weights([kernel])
    return model


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    source = DemoDataSource(tmp_path_factory.mktemp("cache"), {"n_samples": 8}, SpectrogramConfig(grid=(32, 32)))
    return source, source.records()[:3]


def _axes(layout: str, n_rows: int = 12, n_cols: int = 4) -> SpectrogramAxes:
    return grid_axes(n_rows, n_cols, layout=layout)


def test_saliency_shares_of_a_model_reading_only_h(demo):
    source, records = demo
    mappings = source.class_mappings
    model = one_channel_model(0, len(mappings.magnitude_classes), len(mappings.azimuth_classes))
    bundle = bundle_from_model(model, mappings, name="h_only", target_layer="feat")
    explainers = {"gradcam": GradCAM(bundle), "saliency": Saliency(bundle), "smoothgrad": SmoothGrad(bundle)}
    (batch,) = load_grids(source, records)
    assert batch.axes[0].layout == "channels" and batch.axes[0].components == ("H", "D", "Z")
    result = explain_batch(ExplainContext(bundle, explainers), batch)
    for head in ("magnitude", "azimuth"):
        for method in ("saliency", "smoothgrad"):
            maps = result.maps[head][method]
            assert maps.channels.shape == (3, 32, 32, 3)
            assert np.all(maps.channels[..., 1:] == 0.0) and maps.channels[..., 0].max() > 0
            np.testing.assert_allclose(maps.on_grid, maps.channels.max(axis=-1), rtol=1e-6)
            for i in range(3):
                entry = maps.components[i]
                assert entry["available"] and entry["layout"] == "channels"
                assert entry["shares"] == {"H": 1.0, "D": 0.0, "Z": 0.0}
                assert maps.attention[i]["components"] == pytest.approx({"H": 1.0, "D": 0.0, "Z": 0.0})
        cam = result.maps[head]["gradcam"]
        assert cam.channels is None
        assert cam.components[0] == {"available": False, "layout": "channels", "reason": CAM_REASON}


def test_caffe_preprocessing_feeds_the_components_in_reverse_order():
    axes = _axes("channels", 8, 8)
    channel_maps = np.zeros((1, 4, 4, 3), np.float32)
    channel_maps[..., 0] = 1.0  # model input channel 0 = Z after the BGR flip
    explanation = Explanation(channel_maps.max(-1), (4, 4), "magnitude", np.zeros(1, np.int32), "logit", "saliency")
    explanation.channel_maps = channel_maps
    planes = grid_channel_maps(explanation, (8, 8), axes, "imagenet_caffe")
    assert planes.shape == (1, 8, 8, 3)
    assert component_shares(planes[0].max(-1), axes, planes[0]) == {"H": 0.0, "D": 0.0, "Z": 1.0}
    plain = grid_channel_maps(explanation, (8, 8), axes, "none")
    assert component_shares(plain[0].max(-1), axes, plain[0]) == {"H": 1.0, "D": 0.0, "Z": 0.0}
    assert grid_channel_maps(explanation, (12, 4), _axes("stacked"), "none") is None  # colours, not components


def test_stacked_shares_split_the_map_by_panel():
    axes = _axes("stacked")  # 12 rows: 4 per panel H, D, Z from the top
    heatmap = np.zeros((12, 4))
    heatmap[0:4] = 1.0  # H panel: 16 cells of mass 1
    heatmap[8:12, :2] = 2.0  # Z panel: 8 cells of mass 2
    heatmap[4:8] = -5.0  # negative values carry no mass
    shares = component_shares(heatmap, axes)
    assert shares == {"H": 0.5, "D": 0.0, "Z": 0.5}
    explanation = Explanation(heatmap[None], (7, 7), "magnitude", np.zeros(1, np.int32), "logit", "gradcam")
    entry = component_entry(explanation, heatmap, axes, is_cam=True)
    assert entry["available"] and entry["unit"] == "panel rows of the map" and "7x7" in entry["note"]
    assert component_shares(np.zeros((12, 4)), axes) == {"H": None, "D": None, "Z": None}
    occlusion = Explanation(heatmap[None], (12, 4), "magnitude", np.zeros(1, np.int32), "logit", "occlusion")
    assert "component marginals" in component_entry(occlusion, heatmap, _axes("channels"))["reason"]
