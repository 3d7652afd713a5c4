"""Target-layer detection and the explanation graph (models/graph.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core.errors import ModelError
from models.graph import (
    DenseLogits,
    explanation_model,
    find_target_layer,
    output_activation,
    output_names,
)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _trunk(inputs):
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(inputs)
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv_b")(x)
    x = keras.layers.BatchNormalization(name="bn_b")(x)
    x = keras.layers.Activation("relu", name="act_b")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Dropout(0.1, name="drop")(x)
    return keras.layers.GlobalAveragePooling2D(name="gap")(x)


def _mixed_heads_model() -> keras.Model:
    """magnitude: Dense(softmax); azimuth: Dense -> Activation(softmax); extra: <head>_logits."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((16, 16, 3))
    x = _trunk(inputs)
    magnitude = keras.layers.Dense(4, activation="softmax", name="magnitude")(x)
    azimuth_logits = keras.layers.Dense(5, name="az_pre")(x)
    azimuth = keras.layers.Activation("softmax", name="azimuth")(azimuth_logits)
    return keras.Model(inputs, [magnitude, azimuth], name="mixed")


def _inputs(n: int = 3, shape=(16, 16, 3)) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, *shape)).astype("float32")


def test_find_target_layer_skips_pooling_and_dropout():
    assert find_target_layer(_mixed_heads_model()) == "act_b"


def test_find_target_layer_real_architectures():
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    assert find_target_layer(vgg) == "block5_conv3"
    eff = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    assert find_target_layer(eff) == "top_activation"


def test_no_feature_map_raises():
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="magnitude")(inputs))
    with pytest.raises(ModelError, match="no 4-D feature map"):
        find_target_layer(model)
    with pytest.raises(ModelError, match="no 4-D feature map"):
        explanation_model(model, heads=("magnitude",))
    graph = explanation_model(model, heads=("magnitude",), with_features=False)
    assert graph.target_layer is None and output_names(graph.model) == ["magnitude"]


def test_explanation_scores_are_logits_for_dense_and_activation_heads():
    model = _mixed_heads_model()
    graph = explanation_model(model)
    assert graph.score_kind == {"magnitude": "logit", "azimuth": "logit"}
    assert graph.target_layer == "act_b" and graph.feature_shape == (16, 16, 6)
    x = _inputs()
    out = graph.model(x)
    magnitude, azimuth = model(x)
    np.testing.assert_allclose(_softmax(np.asarray(out["magnitude"])), np.asarray(magnitude), atol=1e-5)
    np.testing.assert_allclose(_softmax(np.asarray(out["azimuth"])), np.asarray(azimuth), atol=1e-5)
    assert out["features"].shape == (3, 16, 16, 6)
    # the logits are not the probabilities themselves
    assert not np.allclose(np.asarray(out["magnitude"]), np.asarray(magnitude), atol=1e-3)


def test_head_logits_layer_is_used_and_weights_are_shared():
    inputs = keras.Input((16, 16, 3))
    x = _trunk(inputs)
    logits = keras.layers.Dense(3, name="magnitude_logits")(x)
    out = keras.layers.Activation("softmax", name="magnitude")(logits)
    model = keras.Model(inputs, out)
    graph = explanation_model(model, heads=("magnitude",), target_layer="conv_b")
    x_in = _inputs(2)
    before = np.asarray(graph.model(x_in)["magnitude"])
    np.testing.assert_allclose(_softmax(before), np.asarray(model(x_in)), atol=1e-5)
    # changing the original model's weights changes the explanation graph (shared weights)
    dense = model.get_layer("magnitude_logits")
    dense.bias.assign(dense.bias.numpy() + np.array([1.0, 0.0, 0.0], "float32"))
    after = np.asarray(graph.model(x_in)["magnitude"])
    np.testing.assert_allclose(after[:, 0] - before[:, 0], 1.0, atol=1e-5)


def test_dense_logits_layer_matches_dense():
    dense = keras.layers.Dense(3, activation="softmax")
    x = _inputs(4, shape=(5,))
    probabilities = np.asarray(dense(x))
    logits = np.asarray(DenseLogits(dense)(x))
    np.testing.assert_allclose(_softmax(logits), probabilities, atol=1e-6)


def test_unknown_head_falls_back_to_probability():
    inputs = keras.Input((16, 16, 3))
    x = _trunk(inputs)
    out = keras.layers.Dense(3, activation="sigmoid", name="magnitude")(x)
    graph = explanation_model(keras.Model(inputs, out), heads=("magnitude",))
    assert graph.score_kind == {"magnitude": "probability"}


def test_output_activation():
    model = _mixed_heads_model()
    assert output_activation(model, "magnitude") == "softmax"
    assert output_activation(model, "azimuth") == "softmax"
    inputs = keras.Input((4,))
    linear = keras.Model(inputs, keras.layers.Dense(2, name="magnitude")(inputs))
    assert output_activation(linear, "magnitude") == "linear"


def test_missing_target_layer_names_layer_and_candidates():
    with pytest.raises(ModelError, match=r"'conv_bb' \(model.target_layer\) not found.*conv_b") as info:
        explanation_model(_mixed_heads_model(), target_layer="conv_bb", source="user.keras")
    assert str(info.value).startswith("user.keras:")


def test_non_4d_target_layer_rejected():
    with pytest.raises(ModelError, match="not a 4-D feature map"):
        explanation_model(_mixed_heads_model(), target_layer="gap")


def test_unknown_head_output_rejected():
    with pytest.raises(ModelError, match="no output named 'depth'"):
        explanation_model(_mixed_heads_model(), heads=("magnitude", "depth"))


def test_head_outputs_by_index_and_name():
    model = _mixed_heads_model()
    graph = explanation_model(model, heads=("a", "b"), head_outputs={"a": 1, "b": "magnitude"})
    out = graph.model(_inputs(2))
    assert out["a"].shape == (2, 5) and out["b"].shape == (2, 4)


def _nested_model() -> tuple[keras.Model, keras.Model]:
    keras.utils.set_random_seed(2)
    backbone_in = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="b_conv1")(backbone_in)
    y = keras.layers.Conv2D(5, 3, padding="same", name="b_conv2")(y)
    y = keras.layers.Activation("relu", name="b_act")(y)
    y = keras.layers.MaxPooling2D(name="b_pool")(y)
    backbone = keras.Model(backbone_in, y, name="backbone")
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(0.5, name="scale")(inputs)
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(8, activation="relu", name="shared")(x)
    magnitude = keras.layers.Dense(3, activation="softmax", name="magnitude")(x)
    azimuth = keras.layers.Activation("softmax", name="azimuth")(keras.layers.Dense(4, name="az")(x))
    return keras.Model(inputs, [magnitude, azimuth], name="outer"), backbone


def test_nested_backbone_detection_and_features():
    model, backbone = _nested_model()
    assert find_target_layer(model) == "backbone/b_act"
    graph = explanation_model(model)
    assert graph.target_layer == "backbone/b_act" and graph.feature_shape == (16, 16, 5)
    x = _inputs(2)
    out = graph.model(x)
    expected_features = keras.Model(backbone.input, backbone.get_layer("b_act").output)(x * 0.5)
    np.testing.assert_allclose(np.asarray(out["features"]), np.asarray(expected_features), atol=1e-5)
    magnitude, azimuth = model(x)
    np.testing.assert_allclose(_softmax(np.asarray(out["magnitude"])), np.asarray(magnitude), atol=1e-5)
    np.testing.assert_allclose(_softmax(np.asarray(out["azimuth"])), np.asarray(azimuth), atol=1e-5)
    # the original model still works and an explicit inner target is accepted
    explicit = explanation_model(model, target_layer="backbone/b_conv1")
    assert explicit.feature_shape == (16, 16, 4)
    np.testing.assert_allclose(np.asarray(model(x)[0]), np.asarray(magnitude), atol=1e-6)


def test_gradients_flow_from_scores_to_features():
    import tensorflow as tf

    graph = explanation_model(_nested_model()[0])
    x = tf.constant(_inputs(2))
    with tf.GradientTape() as tape:
        out = graph.model(x)
        score = tf.reduce_sum(out["magnitude"][:, 0])
    grads = tape.gradient(score, out["features"])
    assert grads is not None and np.isfinite(grads.numpy()).all() and np.abs(grads.numpy()).sum() > 0


def test_sequential_model():
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(3, 3, activation="relu", name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax", name="magnitude"),
        ]
    )
    graph = explanation_model(model, heads=("magnitude",))
    assert graph.target_layer == "conv" and graph.score_kind["magnitude"] == "logit"
    x = _inputs(2)
    np.testing.assert_allclose(_softmax(np.asarray(graph.model(x)["magnitude"])), np.asarray(model(x)), atol=1e-5)
