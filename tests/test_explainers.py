"""Explainer base (grid resampling, display scaling, checks) and our compiled CAMs (Grad-CAM, HiResCAM)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from core.errors import ConfigError, InputDataError, ModelError
from tests.conftest import HEADS, tiny_two_head_model
from xai.explainers.base import normalize_for_display, to_grid
from xai.explainers.cam import CompiledCam
from xai.explainers.gradcam import GradCAM
from xai.explainers.hirescam import HiResCAM
from xai.explainers.layercam import Layercam
from xai.explainers.saliency import Saliency
from xai.explainers.tfkv import TfkvGradcam


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return tiny_two_head_model()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32)


def _features_and_gradients(model: keras.Model, x: np.ndarray, head: str, classes: np.ndarray):
    """Per sample ``(A, d score / d A)`` of layer ``feat`` with one full-model tape, as numpy."""
    probe = keras.Model(model.inputs, [model.get_layer("feat").output, model.get_layer(f"{head}_logits").output])
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            features, logits = probe([x[i : i + 1]], training=False)
            score = logits[0, int(classes[i])]
        yield features[0].numpy(), tape.gradient(score, features)[0].numpy()


def reference_gradcam(model: keras.Model, x: np.ndarray, head: str, classes: np.ndarray) -> np.ndarray:
    """Selvaraju et al. (2017) straight from the formula: full-model tape, mean-pooled grads, ReLU."""
    maps = []
    for features, grads in _features_and_gradients(model, x, head, classes):
        weights = grads.mean(axis=(0, 1))
        maps.append(np.maximum((features * weights).sum(axis=-1), 0.0))
    return np.stack(maps)


def reference_hirescam(model: keras.Model, x: np.ndarray, head: str, classes: np.ndarray) -> np.ndarray:
    """Draelos & Carin (2020) straight from the formula: full-model tape, grads * features per cell, ReLU."""
    maps = []
    for features, grads in _features_and_gradients(model, x, head, classes):
        maps.append(np.maximum((grads * features).sum(axis=-1), 0.0))
    return np.stack(maps)


def flatten_head_model(seed: int = 0) -> keras.Model:
    """The tiny model with ``Flatten`` instead of global pooling: d score / d A varies from cell to cell."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(name="p1")(x)
    x = keras.layers.Conv2D(12, 3, strides=2, activation="relu", name="feat")(x)
    x = keras.layers.Dense(16, activation="tanh", name="shared")(keras.layers.Flatten(name="flat")(x))
    outputs = [
        keras.layers.Activation("softmax", name=h)(keras.layers.Dense(n, name=f"{h}_logits")(x)) for h, n in HEADS
    ]
    return keras.Model(inputs, outputs, name="tiny_flatten")


# --------------------------------------------------------------------------- to_grid / display
def test_to_grid_matches_half_pixel_bilinear_resize():
    maps = np.random.default_rng(1).random((2, 7, 7)).astype(np.float32)
    grid = to_grid(maps, (40, 90))
    expected = tf.image.resize(maps[..., None], (40, 90), method="bilinear").numpy()[..., 0]
    assert grid.shape == (2, 40, 90) and grid.dtype == np.float32
    np.testing.assert_allclose(grid, expected, atol=1e-5)


def test_to_grid_alignment_cell_covers_its_own_rows():
    """Cell i of 7 covers grid rows [i*14/7, (i+1)*14/7): its value sits there, not half a cell off."""
    cam = np.zeros((7, 7), np.float32)
    cam[3, :] = 1.0
    grid = to_grid(cam, (14, 14))
    column = grid[:, 0]
    assert np.argmax(column) in (6, 7) and column[6] == column[7] == pytest.approx(0.75)
    assert column[5] == pytest.approx(0.25) and column[4] == 0.0
    np.testing.assert_allclose(to_grid(np.full((1, 3, 5), 2.5), (11, 13)), 2.5)


def test_to_grid_rejects_bad_shapes():
    with pytest.raises(InputDataError):
        to_grid(np.zeros((2, 3, 4, 5)), (10, 10))
    with pytest.raises(ConfigError):
        to_grid(np.zeros((1, 3, 4)), (0, 10))


def test_normalize_for_display_range_constant_and_nan():
    rng = np.random.default_rng(2)
    maps = np.stack([rng.normal(size=(5, 6)), np.zeros((5, 6)), np.full((5, 6), 3.0)])
    shown = normalize_for_display(maps)
    assert shown.dtype == np.float32 and np.isfinite(shown).all()
    assert shown[0].min() == 0.0 and shown[0].max() == pytest.approx(1.0)
    assert (shown[1] == 0).all() and (shown[2] == 0).all()
    with_nan = maps[0].copy()
    with_nan[0, 0] = np.nan
    single = normalize_for_display(with_nan)
    assert single.shape == (5, 6) and np.isfinite(single).all() and single[0, 0] == 0.0


# --------------------------------------------------------------------------- Grad-CAM
def test_gradcam_matches_reference_formula(model, images):
    explainer = GradCAM(model, target_layer="feat")
    for head, n in HEADS:
        classes = np.arange(len(images)) % n
        result = explainer(images, head, classes)
        expected = reference_gradcam(model, images, head, classes)
        assert result.maps.shape == (4, 7, 7) and result.native_shape == (7, 7)
        assert result.score_kind == "logit" and result.method == "gradcam" and result.head == head
        assert expected.max() > 0, "degenerate test: all reference CAMs are zero"
        np.testing.assert_allclose(result.maps, expected, rtol=1e-4, atol=1e-6 * expected.max())
        np.testing.assert_array_equal(result.class_indices, classes)


def test_gradcam_predicted_class_is_argmax(model, images):
    result = GradCAM(model)(images, "azimuth")  # auto-detected target layer = feat
    predicted = np.argmax(model.predict(images, verbose=0)[1], axis=-1)
    np.testing.assert_array_equal(result.class_indices, predicted)
    np.testing.assert_allclose(result.maps, reference_gradcam(model, images, "azimuth", predicted), atol=1e-6)


@pytest.mark.parametrize("explainer_class", [GradCAM, HiResCAM])
def test_compiled_cams_trace_once_for_all_batch_sizes(model, images, explainer_class):
    explainer = explainer_class(model)
    for batch in (1, 3, 4, 2):
        explainer(images[:batch], "magnitude", np.zeros(batch, int))
    explainer(images[:2], "magnitude")
    fn = explainer.compiled_function("magnitude")
    assert fn.experimental_get_tracing_count() == 1
    explainer(images, "azimuth")
    assert explainer.compiled_function("azimuth").experimental_get_tracing_count() == 1


@pytest.mark.parametrize("explainer_class", [GradCAM, HiResCAM, Saliency, TfkvGradcam])
def test_each_head_uses_only_its_own_head(images, explainer_class):
    """Re-drawing the other head's Dense weights leaves a head's maps unchanged (and its own changes them)."""
    model = tiny_two_head_model(seed=3)
    before = {head: explainer_class(model)(images, head, np.ones(len(images), int)).maps for head, _ in HEADS}
    rng = np.random.default_rng(4)
    for head, _ in HEADS:
        other = "azimuth" if head == "magnitude" else "magnitude"
        dense = model.get_layer(f"{other}_logits")
        dense.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in dense.get_weights()])
        after = explainer_class(model)(images, head, np.ones(len(images), int)).maps
        np.testing.assert_allclose(after, before[head], rtol=1e-6, atol=1e-9)
        changed = explainer_class(model)(images, other, np.ones(len(images), int)).maps
        assert not np.allclose(changed, before[other]), "the changed head must change its own maps"
        before[other] = changed


# --------------------------------------------------------------------------- HiResCAM
def test_hirescam_matches_reference_formula_and_differs_from_gradcam(images):
    """Behind a Flatten the gradient varies per cell: HiResCAM keeps that, Grad-CAM averages it away."""
    model = flatten_head_model(seed=1)
    hires, gradcam = HiResCAM(model, target_layer="feat"), GradCAM(model, target_layer="feat")
    for head, n in HEADS:
        classes = np.arange(len(images)) % n
        result = hires(images, head, classes)
        expected = reference_hirescam(model, images, head, classes)
        assert result.maps.shape == (4, 7, 7) and result.method == "hirescam" and result.score_kind == "logit"
        assert expected.max() > 0, "degenerate test: all reference CAMs are zero"
        np.testing.assert_allclose(result.maps, expected, rtol=1e-4, atol=1e-6 * expected.max())
        np.testing.assert_array_equal(result.class_indices, classes)
        averaged = gradcam(images, head, classes).maps
        np.testing.assert_allclose(averaged, reference_gradcam(model, images, head, classes), rtol=1e-4, atol=1e-6)
        difference = np.abs(result.maps - averaged).max(axis=(1, 2)) / np.abs(expected).max(axis=(1, 2)).clip(1e-12)
        assert (difference > 0.05).all(), f"HiResCAM should differ from Grad-CAM on every sample: {difference}"


def test_hirescam_equals_gradcam_after_global_average_pooling(model, images):
    """GAP -> dense: d score / d A_k is the same in every cell, so both rules give the same map."""
    classes = np.array([3, 0, 1, 2])
    for head, _ in HEADS:
        hires = HiResCAM(model)(images, head, classes).maps
        gradcam = GradCAM(model)(images, head, classes).maps
        assert hires.max() > 0, "degenerate test: all CAMs are zero"
        np.testing.assert_allclose(hires, gradcam, rtol=1e-4, atol=1e-6 * gradcam.max())


def test_hirescam_predicted_class_and_skip_connection_fallback(images):
    """Class -1 = predicted inside the graph; a head reading around the target layer tapes the full graph."""
    model = flatten_head_model(seed=2)
    result = HiResCAM(model)(images, "azimuth")
    predicted = np.argmax(model.predict(images, verbose=0)[1], axis=-1)
    np.testing.assert_array_equal(result.class_indices, predicted)
    np.testing.assert_allclose(result.maps, reference_hirescam(model, images, "azimuth", predicted), atol=1e-6)
    skip = _skip_connection_model()
    classes = np.array([0, 1, 2, 3])
    explainer = HiResCAM(skip, target_layer="feat")
    assert explainer._head_model("magnitude") is None, "the skip connection must force the full-graph tape"
    expected = reference_hirescam(skip, images, "magnitude", classes)
    np.testing.assert_allclose(explainer(images, "magnitude", classes).maps, expected, atol=1e-6)


def test_cam_base_needs_only_the_weights_hook(model, images):
    """A three-line subclass (LayerCAM's rule, Jiang et al. 2021) reproduces tf-keras-vis' Layercam."""

    class PositiveGradientCam(CompiledCam):
        name = "layercam"

        def cam_weights(self, grads: tf.Tensor, features: tf.Tensor) -> tf.Tensor:
            return tf.nn.relu(grads)

    classes = np.array([1, 0, 3, 2])
    ours = PositiveGradientCam(model)(images, "magnitude", classes).maps
    theirs = Layercam(model)(images, "magnitude", classes).maps
    assert ours.max() > 0
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6 * theirs.max())


def test_all_zero_cam_stays_finite(images):
    model = tiny_two_head_model(zero_features=True)
    result = GradCAM(model)(images, "magnitude", np.zeros(len(images), int))
    assert np.isfinite(result.maps).all() and (result.maps == 0).all()
    shown = normalize_for_display(to_grid(result.maps, (20, 30)))
    assert shown.shape == (4, 20, 30) and np.isfinite(shown).all() and (shown == 0).all()


def test_errors_name_the_problem(model, images):
    explainer = GradCAM(model)
    with pytest.raises(ConfigError, match="heads: magnitude, azimuth"):
        explainer(images, "depth")
    with pytest.raises(ConfigError, match="out of range"):
        explainer(images, "magnitude", [0, 1, 2, 4])
    with pytest.raises(ConfigError, match="out of range"):
        explainer(images, "magnitude", -1)
    with pytest.raises(ConfigError):
        explainer(images, "magnitude", [0, 1])
    with pytest.raises(InputDataError, match="model inputs"):
        explainer(images[:, :16], "magnitude")
    bad = images.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(InputDataError, match="NaN"):
        explainer(bad, "magnitude")
    with pytest.raises(ModelError, match="not found"):
        GradCAM(model, target_layer="block5_conv3")
    with pytest.raises(ModelError):
        GradCAM(object())
    with pytest.raises(ConfigError, match="unknown option"):
        Saliency(model, smooth_samples=3)


def test_accepts_bundle_like_and_graph(model, images):
    from models.graph import explanation_model

    graph = explanation_model(model, target_layer="feat")

    class Bundle:  # the ModelBundle interface the explainers rely on
        heads = {"magnitude": "magnitude", "azimuth": "azimuth"}
        target_layer, source_file = "feat", None

        def __init__(self) -> None:
            self.model = model

        def explanation_graph(self, with_features: bool = True):
            layer = self.target_layer if with_features else None
            return explanation_model(self.model, tuple(self.heads), layer, with_features=with_features)

    reference = GradCAM(model)(images, "magnitude", 1).maps
    np.testing.assert_array_equal(GradCAM(graph)(images, "magnitude", 1).maps, reference)
    np.testing.assert_array_equal(GradCAM(Bundle())(images, "magnitude", 1).maps, reference)
    assert Saliency(Bundle())(images[:1], "azimuth").maps.shape == (1, 32, 32)


def _skip_connection_model() -> keras.Model:
    """A head that also reads ``early``, a tensor before the target layer ``feat``."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((32, 32, 3))
    early = keras.layers.Conv2D(6, 3, strides=4, activation="relu", name="early")(inputs)
    feat = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="feat")(early)
    merged = keras.layers.Add()([early, feat])
    pooled = keras.layers.GlobalAveragePooling2D()(merged)
    outputs = [keras.layers.Dense(n, name=f"{h}_logits")(pooled) for h, n in HEADS]
    return keras.Model(inputs, [keras.layers.Activation("softmax", name=h)(o) for (h, _), o in zip(HEADS, outputs)])


def test_skip_connection_across_target_layer_falls_back_to_full_tape(images):
    """A head that also reads a tensor before the target layer cannot be split; results stay exact."""
    model = _skip_connection_model()
    classes = np.array([0, 1, 2, 3])
    result = GradCAM(model, target_layer="feat")(images, "magnitude", classes)
    np.testing.assert_allclose(result.maps, reference_gradcam(model, images, "magnitude", classes), atol=1e-6)
    tfkv = TfkvGradcam(model, target_layer="feat")(images, "magnitude", classes)
    np.testing.assert_allclose(result.maps, tfkv.maps, atol=1e-6)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    assert a.std() > 0 and b.std() > 0, "degenerate maps: nothing to correlate"
    return float(np.corrcoef(a, b)[0, 1])


@pytest.mark.parametrize(
    ("builder", "size", "target", "native"),
    [
        ("build_vgg16_multitask", 64, "block5_conv3", (4, 4)),
        ("build_efficientnet_multitask", 96, "top_activation", (3, 3)),
    ],
)
def test_gradcam_agrees_with_tf_keras_vis_on_real_architectures(builder, size, target, native):
    from models import builders

    model = getattr(builders, builder)(input_shape=(size, size, 3), weights=None, seed=0)
    x = np.random.default_rng(6).normal(size=(2, size, size, 3)).astype(np.float32)
    ours, theirs = GradCAM(model, target_layer=target), TfkvGradcam(model, target_layer=target)
    assert ours.target_layer == target
    for head, n in (("magnitude", 4), ("azimuth", 9)):
        classes = np.arange(n)  # every class in one call: sample i % 2 explained for class i
        batch = x[classes % 2]
        mine, reference = ours(batch, head, classes).maps, theirs(batch, head, classes).maps
        assert mine.shape == (n, *native)
        assert _pearson(mine, reference) >= 0.99
        np.testing.assert_allclose(mine, reference, rtol=1e-3, atol=1e-5 * np.abs(reference).max())
