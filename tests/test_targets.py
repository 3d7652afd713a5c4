"""Contrastive targets (score A - score B) against their formula, and the xai.target / xai.contrast_class keys."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from core.errors import ConfigError
from geomag.dataset import ClassMappings
from tests.conftest import tiny_two_head_model
from xai.explainers.gradcam import GradCAM
from xai.explainers.saliency import Saliency
from xai.explainers.smoothgrad import SmoothGrad
from xai.explainers.targets import TargetSpec

SIZE, CHANNELS = 6, 3
MAPPINGS = ClassMappings(["Normal", "Moderate", "Medium", "Large"], ["N", "E", "S", "W"])


def shared_evidence_weights() -> np.ndarray:
    """Dense weights (cells, 4 classes) where Medium (2) and Large (3) read the same left half of the image
    with the same weight; only the right half tells them apart (Large: channel 0, Medium: channel 2)."""
    rng = np.random.default_rng(3)
    w = np.zeros((SIZE, SIZE, CHANNELS, 4), np.float32)
    shared = rng.uniform(0.5, 1.0, size=(SIZE, SIZE // 2, CHANNELS)).astype(np.float32)
    w[:, : SIZE // 2, :, 2] = shared
    w[:, : SIZE // 2, :, 3] = shared
    w[:, SIZE // 2 :, 0, 3] = 2.0
    w[:, SIZE // 2 :, 2, 2] = 0.5
    w[..., :2] = rng.normal(size=(SIZE, SIZE, CHANNELS, 2))
    return w


def linear_model(weights: np.ndarray) -> keras.Model:
    """Two softmax heads on the flattened input; magnitude's logits are ``x . w`` exactly."""
    inputs = keras.Input((SIZE, SIZE, CHANNELS), name="image")
    flat = keras.layers.Flatten(name="flat")(inputs)
    magnitude = keras.layers.Dense(4, use_bias=False, name="magnitude_logits")
    azimuth = keras.layers.Dense(4, name="azimuth_logits")
    outputs = [
        keras.layers.Activation("softmax", name="magnitude")(magnitude(flat)),
        keras.layers.Activation("softmax", name="azimuth")(azimuth(flat)),
    ]
    model = keras.Model(inputs, outputs, name="linear")
    magnitude.set_weights([weights.reshape(-1, 4)])
    return model


@pytest.fixture(scope="module")
def linear():
    weights = shared_evidence_weights()
    x = np.random.default_rng(0).normal(size=(3, SIZE, SIZE, CHANNELS)).astype(np.float32)
    return linear_model(weights), weights, x


def test_saliency_contrast_is_the_difference_of_the_two_class_gradients(linear):
    model, w, x = linear
    explainer = Saliency(model)
    large, medium = np.full(3, 3), np.full(3, 2)
    result = explainer(x, "magnitude", large, contrast_indices=medium)
    # d(logit Large - logit Medium)/dx = w_Large - w_Medium for a linear model
    expected_channels = np.abs(w[..., 3] - w[..., 2])
    np.testing.assert_allclose(result.channel_maps, np.broadcast_to(expected_channels, (3, *expected_channels.shape)))
    np.testing.assert_allclose(result.maps[0], expected_channels.max(axis=-1))
    # the shared evidence cancels: zero on the left half, where both classes' own maps are not
    assert np.all(result.maps[:, :, : SIZE // 2] == 0.0)
    alone = explainer(x, "magnitude", large)
    assert np.all(alone.maps[:, :, : SIZE // 2] > 0.4)
    np.testing.assert_allclose(alone.maps[0], np.abs(w[..., 3]).max(axis=-1))
    # the contrast of a class with itself has no gradient
    assert np.all(explainer(x, "magnitude", large, contrast_indices=large).maps == 0.0)


def test_smoothgrad_contrast_of_a_linear_model_is_noise_free(linear):
    model, w, x = linear
    result = SmoothGrad(model, smooth_samples=3)(x, "magnitude", 3, contrast_indices=2)
    np.testing.assert_allclose(result.maps[1], np.abs(w[..., 3] - w[..., 2]).max(axis=-1), rtol=1e-6)


def test_gradcam_contrast_matches_the_formula():
    model = tiny_two_head_model(seed=1)
    x = np.random.default_rng(1).normal(size=(3, 32, 32, 3)).astype(np.float32)
    classes, contrast = np.array([0, 1, 3]), np.array([2, 2, 0])
    probe = keras.Model(model.inputs, [model.get_layer("feat").output, model.get_layer("magnitude_logits").output])
    expected = []
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            features, logits = probe([x[i : i + 1]], training=False)
            score = logits[0, classes[i]] - logits[0, contrast[i]]
        grads = tape.gradient(score, features)[0].numpy()
        expected.append(np.maximum((features[0].numpy() * grads.mean(axis=(0, 1))).sum(axis=-1), 0.0))
    expected = np.stack(expected)
    result = GradCAM(model, target_layer="feat")(x, "magnitude", classes, contrast_indices=contrast)
    assert expected.max() > 0
    np.testing.assert_allclose(result.maps, expected, rtol=1e-4, atol=1e-6 * expected.max())
    np.testing.assert_array_equal(result.class_indices, classes)


def test_contrast_needs_a_method_that_supports_it(linear):
    from xai.explainers.base import Explainer

    class Plain(Saliency):
        name = "plain"
        supports_contrast = False

    assert Explainer.supports_contrast is False
    with pytest.raises(ConfigError, match="xai.target=contrast: method 'plain'"):
        Plain(linear[0])(linear[2], "magnitude", 3, contrast_indices=2)
    with pytest.raises(ConfigError, match="class index 9 out of range"):
        Saliency(linear[0])(linear[2], "magnitude", 3, contrast_indices=9)


def test_target_spec_keys_are_validated():
    spec = TargetSpec.of("contrast", "Moderate").check(MAPPINGS)
    np.testing.assert_array_equal(spec.contrast_indices("magnitude", MAPPINGS, 2), [1, 1])
    assert spec.contrast_indices("azimuth", MAPPINGS, 2) is None  # Moderate is no azimuth class
    assert spec.describe("magnitude", MAPPINGS, "Large") == {
        "kind": "contrast",
        "contrast_class": "Moderate",
        "score": "score Large - score Moderate",
        "same_class": False,
    }
    assert spec.describe("azimuth", MAPPINGS, "N") == {"kind": "class", "contrast_class": None}
    per_head = TargetSpec.of("contrast", {"azimuth": "E"}).check(MAPPINGS)
    assert per_head.contrast_name("azimuth", MAPPINGS) == "E" and per_head.contrast_name("magnitude", MAPPINGS) is None
    assert TargetSpec.of(None, None).contrast_indices("magnitude", MAPPINGS, 2) is None
    with pytest.raises(ConfigError, match=r"xai.contrast_class: 'Huge' is not a class of either head"):
        TargetSpec.of("contrast", "Huge").check(MAPPINGS)
    with pytest.raises(ConfigError, match=r"xai.contrast_class.azimuth: 'Large' is unknown"):
        TargetSpec.of("contrast", {"azimuth": "Large"}).check(MAPPINGS)
    with pytest.raises(ConfigError, match="xai.contrast_class: xai.target=contrast needs"):
        TargetSpec.of("contrast", None)
    with pytest.raises(ConfigError, match="xai.target: 'versus' is not one of class, contrast"):
        TargetSpec.of("versus", "Large")
    with pytest.raises(ConfigError, match="xai.target is 'class'"):
        TargetSpec.of("class", "Large")


@pytest.mark.slow
def test_pipeline_explains_the_contrast_for_every_method_and_records_it(tmp_path):
    from geomag.sources import DemoDataSource
    from geomag.spectrogram import SpectrogramConfig
    from models.loading import bundle_from_model
    from tests.conftest import tiny_model
    from xai.explainers.occlusion import Occlusion
    from xai.pipeline import ExplainContext, explain_batch, load_grids

    source = DemoDataSource(tmp_path, {"n_samples": 8}, SpectrogramConfig(grid=(32, 32)))
    mappings = source.class_mappings
    bundle = bundle_from_model(
        tiny_model(len(mappings.magnitude_classes), len(mappings.azimuth_classes)), mappings, name="tiny"
    )
    explainers = {"gradcam": GradCAM(bundle), "saliency": Saliency(bundle), "occlusion": Occlusion(bundle)}
    (batch,) = load_grids(source, source.records()[:3])
    target = TargetSpec.of("contrast", "Moderate")
    result = explain_batch(ExplainContext(bundle, explainers, explained_class="Large", target=target), batch)
    large, moderate = mappings.index("magnitude", "Large"), mappings.index("magnitude", "Moderate")
    np.testing.assert_array_equal(result.predictions.contrasts["magnitude"], [moderate] * 3)
    assert result.predictions.contrasts["azimuth"] is None
    direct = Saliency(bundle)(result.predictions.inputs, "magnitude", large, contrast_indices=moderate)
    np.testing.assert_allclose(result.maps["magnitude"]["saliency"].explanation.maps, direct.maps)
    alone = Saliency(bundle)(result.predictions.inputs, "magnitude", large)
    assert not np.allclose(direct.maps, alone.maps)
    for sample in result.reliance["occlusion"]["magnitude"]:  # occlusion drops of logit Large - logit Moderate
        assert sample.result.contrast_classes[sample.row] == moderate
        assert sample.result.classes[sample.row] == large
    assert result.reliance["occlusion"]["azimuth"][0].result.contrast_classes is None
    entry = result.prediction("magnitude", 0)
    assert entry["explained_class"] == "Large"
    assert entry["target"] == {
        "kind": "contrast",
        "contrast_class": "Moderate",
        "score": "score Large - score Moderate",
        "same_class": False,
    }
    assert result.prediction("azimuth", 0)["target"] == {"kind": "class", "contrast_class": None}
    with pytest.raises(ConfigError, match="xai.contrast_class: 'Huge'"):
        ExplainContext(bundle, explainers, target=TargetSpec.of("contrast", "Huge"))
