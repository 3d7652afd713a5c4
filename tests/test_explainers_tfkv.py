"""tf-keras-vis methods: the compiled model call reproduces plain tf-keras-vis, seeds, scores."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras_vis.gradcam as tfkv_gradcam_module
from tf_keras_vis.saliency import Saliency as PlainSaliency
from tf_keras_vis.utils.scores import CategoricalScore, InactiveScore

from core.errors import ConfigError
from models.graph import explanation_model
from tests.conftest import HEADS, tiny_two_head_model
from xai.explainers.gradcam import GradCAM
from xai.explainers.gradcam_plus_plus import GradcamPlusPlus
from xai.explainers.layercam import Layercam
from xai.explainers.saliency import Saliency
from xai.explainers.scorecam import Scorecam
from xai.explainers.smoothgrad import SmoothGrad
from xai.explainers.tfkv import (
    CAM_PATCH_ATTRIBUTE,
    CAM_PATCH_MODULES,
    CAM_PATCH_ORIGINAL,
    CompiledScoresModel,
    TfkvGradcam,
    cam_model_override,
)


@pytest.fixture(scope="module")
def model():
    return tiny_two_head_model(seed=7)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(8).normal(size=(3, 32, 32, 3)).astype(np.float32)


@pytest.mark.parametrize(
    ("explainer_class", "options", "native"),
    [
        (Saliency, {}, (32, 32)),
        (SmoothGrad, {"smooth_samples": 4, "smooth_noise": 0.3, "seed": 11}, (32, 32)),
        (TfkvGradcam, {}, (7, 7)),
        (GradcamPlusPlus, {}, (7, 7)),
        (Layercam, {}, (7, 7)),
        (Scorecam, {"max_N": 4, "batch_size": 5}, (7, 7)),
    ],
)
def test_compiled_model_call_reproduces_plain_tf_keras_vis(model, images, explainer_class, options, native):
    classes = np.array([1, 3, 0])
    for head, _ in HEADS:
        fast = explainer_class(model, compiled=True, **options)(images, head, classes)
        plain = explainer_class(model, compiled=False, **options)(images, head, classes)
        assert fast.maps.shape == (3, *native) and fast.maps.dtype == np.float32
        assert np.abs(plain.maps).max() > 0, "degenerate test: plain maps are all zero"
        np.testing.assert_allclose(fast.maps, plain.maps, rtol=1e-4, atol=1e-6 * np.abs(plain.maps).max())
        np.testing.assert_array_equal(fast.class_indices, classes)
    assert tfkv_gradcam_module.ModelModifier.__name__ == "ExtractIntermediateLayerForGradcam", "patch not undone"


def test_saliency_equals_tf_keras_vis_called_directly(model, images):
    """Our wrapper feeds tf-keras-vis the logits with one score per output head, in output order."""
    graph = explanation_model(model, with_features=False)
    import keras

    scores_model = keras.Model(graph.model.inputs, [graph.model.output[h] for h, _ in HEADS])
    expected = PlainSaliency(scores_model)([InactiveScore(), CategoricalScore([2, 2, 4])], images, normalize_map=False)
    result = Saliency(model)(images, "azimuth", [2, 2, 4])
    assert result.score_kind == "logit"
    np.testing.assert_allclose(result.maps, expected, rtol=1e-4, atol=1e-7)


def test_smoothgrad_is_deterministic_with_its_seed(model, images):
    first = SmoothGrad(model, smooth_samples=3, seed=5)(images, "magnitude", 0).maps
    np.random.default_rng().normal(size=10)  # unrelated random use in between
    np.random.seed(123)
    again = SmoothGrad(model, smooth_samples=3, seed=5)(images, "magnitude", 0).maps
    other = SmoothGrad(model, smooth_samples=3, seed=6)(images, "magnitude", 0).maps
    vanilla = Saliency(model)(images, "magnitude", 0).maps
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other) and not np.allclose(first, vanilla)


def test_compiled_scores_model_traces_once(model, images):
    explainer = Saliency(model)
    for batch in (1, 2, 3):
        explainer(images[:batch], "magnitude", np.zeros(batch, int))
    SmoothGrad(model, smooth_samples=2)(images[:2], "azimuth", 1)
    compiled = explainer.vis_model()
    assert isinstance(compiled, CompiledScoresModel)
    assert compiled.forward_and_vjp.experimental_get_tracing_count() == 1
    assert compiled.vjp.experimental_get_tracing_count() == 0, "the precomputed VJP should have been used"


def test_unexpected_upstream_gets_its_own_vjp(model, images):
    """The precomputed VJP is used only for the exact expected upstream; anything else is recomputed."""
    import keras
    import tensorflow as tf

    explainer = Saliency(model)
    compiled, plain = explainer.vis_model(), explainer.models.scores
    x = tf.constant(images)
    expected = explainer.expected_upstream("magnitude", np.array([0, 1, 2]))
    weights = [tf.constant(np.random.default_rng(3).normal(size=u.shape), tf.float32) for u in expected]

    def gradient(call):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.add_n([tf.reduce_sum(o * w) for o, w in zip(call(x), weights)])
        return tape.gradient(total, x).numpy()

    with compiled.expecting(expected):
        fast = gradient(compiled)
    np.testing.assert_allclose(fast, gradient(lambda t: keras.tree.flatten(plain(t))), rtol=1e-4, atol=1e-7)
    assert compiled.vjp.experimental_get_tracing_count() == 1


def test_scores_one_per_output_in_order(model):
    scores = Saliency(model).scores("azimuth", np.array([4, 1]))
    assert [type(s).__name__ for s in scores] == ["InactiveScore", "CategoricalScore"]
    assert scores[1].indices == [4, 1]


def test_option_checks(model):
    with pytest.raises(ConfigError, match="smooth_samples"):
        SmoothGrad(model, smooth_samples=0)
    with pytest.raises(ConfigError, match="smooth_noise"):
        SmoothGrad(model, smooth_noise=0.0)
    with pytest.raises(ConfigError, match="max_N"):
        Scorecam(model, max_N=13)  # the target layer has 12 channels
    assert Scorecam(model, max_N=None).score_kind("magnitude") == "probability"


def test_nested_target_layer_all_gradcams_agree(images):
    """A target inside a nested sub-model ("backbone/feat"): ours, plain and compiled tf-keras-vis agree."""
    import keras

    keras.utils.set_random_seed(12)
    inner_in = keras.Input((32, 32, 3))
    y = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="c1")(inner_in)
    y = keras.layers.Conv2D(12, 3, strides=2, activation="relu", name="feat")(y)
    backbone = keras.Model(inner_in, y, name="backbone")
    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    outputs = [
        keras.layers.Activation("softmax", name=h)(keras.layers.Dense(n, name=f"{h}_logits")(pooled)) for h, n in HEADS
    ]
    model = keras.Model(inputs, outputs)
    classes = np.array([0, 2, 3])
    ours = GradCAM(model, target_layer="backbone/feat")(images, "magnitude", classes).maps
    plain = TfkvGradcam(model, target_layer="backbone/feat")(images, "magnitude", classes).maps
    fast = TfkvGradcam(model, target_layer="backbone/feat", compiled=True)(images, "magnitude", classes).maps
    assert ours.shape == (3, 7, 7) and ours.max() > 0
    np.testing.assert_allclose(plain, ours, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(fast, ours, rtol=1e-4, atol=1e-7)


# --------------------------------------------------------------------------- the tf-keras-vis patch
def test_patched_tf_keras_vis_modules_still_build_their_cam_model_with_the_expected_class():
    """Fails when tf-keras-vis renames/replaces ``ExtractIntermediateLayerForGradcam``, changes its
    constructor, or a CAM module stops (or starts) building its model through ``ModelModifier``."""
    import importlib
    import inspect
    import pkgutil

    import tf_keras_vis
    from tf_keras_vis.utils import model_modifiers

    assert CAM_PATCH_ORIGINAL is getattr(model_modifiers, "ExtractIntermediateLayerForGradcam", None)
    parameters = list(inspect.signature(CAM_PATCH_ORIGINAL.__init__).parameters)
    assert parameters == ["self", "penultimate_layer", "seek_conv_layer", "include_model_outputs"]
    assert list(inspect.signature(CAM_PATCH_ORIGINAL.__call__).parameters) == ["self", "model"]
    for module in CAM_PATCH_MODULES:
        assert getattr(module, CAM_PATCH_ATTRIBUTE, None) is CAM_PATCH_ORIGINAL, module.__name__
        assert f"{CAM_PATCH_ATTRIBUTE}(penultimate_layer, seek_penultimate_conv_layer" in inspect.getsource(module)
    users = set()
    for info in pkgutil.walk_packages(tf_keras_vis.__path__, "tf_keras_vis."):
        module = importlib.import_module(info.name)
        if any(value is CAM_PATCH_ORIGINAL for value in vars(module).values()):
            users.add(info.name)
    users.discard("tf_keras_vis.utils.model_modifiers")  # where the class is defined
    assert users == {module.__name__ for module in CAM_PATCH_MODULES}, "a tf-keras-vis module uses the class unpatched"


def test_cam_patch_keeps_the_call_signature_and_is_undone():
    """Inside the override every listed module's ``ModelModifier`` takes the original's arguments."""
    import inspect

    expected = list(inspect.signature(CAM_PATCH_ORIGINAL.__init__).parameters)[1:]
    marker = object()
    with cam_model_override(lambda include_model_outputs: (marker, include_model_outputs)):
        for module in CAM_PATCH_MODULES:
            patched = getattr(module, CAM_PATCH_ATTRIBUTE)
            assert patched is not CAM_PATCH_ORIGINAL
            assert list(inspect.signature(patched).parameters) == expected
            assert patched("feat", True)(None) == (marker, True)
            assert patched("feat", True, False)(None) == (marker, False)
    for module in CAM_PATCH_MODULES:
        assert getattr(module, CAM_PATCH_ATTRIBUTE) is CAM_PATCH_ORIGINAL, "patch not undone"
