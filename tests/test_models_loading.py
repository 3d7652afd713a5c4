"""Loading users' models into a ModelBundle (models/loading.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from hydra import compose, initialize_config_dir

from core.errors import ConfigError, InputDataError, ModelError
from geomag.dataset import ClassMappings
from models.builders import HeadSpec, build_efficientnet_multitask, set_input_standardization
from models.loading import (
    HeadOutputs,
    apply_preprocessing,
    bundle_from_model,
    load_model_bundle,
    load_model_bundle_from_config,
)

MAGNITUDES = ["Normal", "Moderate", "Medium", "Large"]
AZIMUTHS = ["Normal", "N", "NE", "E", "SE", "S", "SW", "W", "NW"]
SHAPE = (16, 16, 3)


@pytest.fixture(scope="module")
def mappings() -> ClassMappings:
    return ClassMappings(magnitude_classes=list(MAGNITUDES), azimuth_classes=list(AZIMUTHS))


def _tiny(
    names: tuple[str, str] = ("magnitude", "azimuth"),
    n: tuple[int, int] = (4, 9),
    logits_azimuth: bool = False,
    seed: int = 0,
) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Normalization(axis=-1, mean=[1.0, 2.0, 3.0], variance=[1.0, 4.0, 9.0])(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(x)
    x = keras.layers.Activation("relu", name="conv_act")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    magnitude = keras.layers.Dense(n[0], activation="softmax", name=names[0])(x)
    azimuth = keras.layers.Dense(n[1], activation=None if logits_azimuth else "softmax", name=names[1])(x)
    return keras.Model(inputs, [magnitude, azimuth], name="tiny")


def _x(n: int = 3, shape=SHAPE) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, *shape)).astype("float32") * 3


def test_keras_round_trip_of_builder_model(tmp_path, mappings):
    """The real EfficientNet builder (neutralised preprocessing, BN momentum) survives .keras."""
    model = build_efficientnet_multitask(input_shape=(32, 32, 3), head=HeadSpec(dense_units=8), seed=1)
    set_input_standardization(model, [1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    x = _x(2, (32, 32, 3)) + 2.0
    expected = [np.asarray(t) for t in model(x)]
    path = tmp_path / "model.keras"
    model.save(path)
    bundle = load_model_bundle(path, mappings, name="eff")
    assert bundle.heads == {"magnitude": "magnitude", "azimuth": "azimuth"}
    assert bundle.target_layer == "top_activation" and bundle.input_shape == (32, 32, 3)
    assert bundle.head_activation == {"magnitude": "softmax", "azimuth": "softmax"}
    assert bundle.source_file == str(path) and bundle.name == "eff"
    probabilities = bundle.predict_probabilities(x)
    np.testing.assert_allclose(probabilities["magnitude"], expected[0], atol=1e-6)
    np.testing.assert_allclose(probabilities["azimuth"], expected[1], atol=1e-6)
    assert bundle.explanation_graph().score_kind == {"magnitude": "logit", "azimuth": "logit"}
    assert bundle.model.get_layer("block1a_bn").momentum == pytest.approx(0.9)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_round_trip_predictions_identical(tmp_path, mappings, suffix):
    model = _tiny(logits_azimuth=True)
    x = _x(5)
    path = tmp_path / f"tiny{suffix}"
    model.save(path)
    bundle = load_model_bundle(path, mappings)
    reloaded = [np.asarray(t) for t in bundle.model(x)]
    for ours, theirs in zip(model(x), reloaded):
        np.testing.assert_array_equal(np.asarray(ours), theirs)
    # the batched predict path (several batches) and the eager path agree
    np.testing.assert_allclose(
        bundle.predict_probabilities(x, batch_size=2)["azimuth"],
        bundle.predict_probabilities(x, batch_size=8)["azimuth"],
        atol=1e-6,
    )


def test_logit_head_gets_softmax(mappings, caplog):
    model = _tiny(logits_azimuth=True)
    bundle = bundle_from_model(model, mappings, name="tiny")
    assert bundle.head_activation["azimuth"] == "linear"
    x = _x()
    raw = np.asarray(model(x)[1], dtype=np.float64)
    with caplog.at_level(logging.INFO, logger="models.loading"):
        probabilities = bundle.predict_probabilities(x, batch_size=2)
    assert "applying softmax" in caplog.text
    expected = np.exp(raw - raw.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(probabilities["azimuth"], expected, atol=1e-6)
    np.testing.assert_allclose(probabilities["magnitude"].sum(-1), 1.0, atol=1e-5)
    assert probabilities["magnitude"].shape == (3, 4) and probabilities["azimuth"].shape == (3, 9)


def test_head_order_fallback(tmp_path, mappings):
    model = _tiny(names=("out_a", "out_b"), n=(9, 4))
    bundle = bundle_from_model(model, mappings, heads=HeadOutputs(order=["azimuth", "magnitude"]))
    assert bundle.heads == {"azimuth": "out_a", "magnitude": "out_b"}
    out = bundle.predict_probabilities(_x(2))
    assert out["magnitude"].shape == (2, 4) and out["azimuth"].shape == (2, 9)
    graph = bundle.explanation_graph()
    assert graph.model(_x(2))["azimuth"].shape == (2, 9)
    with pytest.raises(ModelError, match=r"no output named 'magnitude' \(outputs: out_a, out_b\)"):
        bundle_from_model(model, mappings)
    explicit = bundle_from_model(model, mappings, heads={"magnitude": "out_b", "azimuth": "out_a"})
    assert explicit.heads == bundle.heads


def test_size_mismatch_names_file_head_and_sizes(tmp_path, mappings):
    path = tmp_path / "three_classes.keras"
    _tiny(n=(3, 9)).save(path)
    with pytest.raises(ModelError) as info:
        load_model_bundle(path, mappings)
    message = str(info.value)
    assert str(path) in message and "'magnitude'" in message and "3 units" in message and "4 magnitude" in message


def test_missing_and_invalid_files(tmp_path, mappings):
    missing = tmp_path / "absent.keras"
    with pytest.raises(ModelError, match="not found") as info:
        load_model_bundle(missing, mappings)
    assert str(missing) in str(info.value)
    for name, content in (("garbage.keras", b"not a zip"), ("garbage.h5", b"not hdf5 either")):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ModelError, match="not a loadable Keras model") as info:
            load_model_bundle(path, mappings)
        assert str(path) in str(info.value)
    other = tmp_path / "model.onnx"
    other.write_bytes(b"x")
    with pytest.raises(ModelError, match="unsupported model file type"):
        load_model_bundle(other, mappings)
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(ModelError, match="not a TensorFlow SavedModel"):
        load_model_bundle(folder, mappings)
    weights = tmp_path / "only.weights.h5"
    _tiny().save_weights(weights)
    with pytest.raises(ModelError, match="only weights"):
        load_model_bundle(weights, mappings)
    with pytest.raises(ConfigError, match="model.class_mappings"):
        load_model_bundle(weights, None)


def test_lambda_layer_needs_unsafe_mode(tmp_path, mappings):
    inputs = keras.Input(SHAPE)
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = [
        keras.layers.Dense(4, activation="softmax", name="magnitude")(x),
        keras.layers.Dense(9, activation="softmax", name="azimuth")(x),
    ]
    model = keras.Model(inputs, outputs)
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ModelError, match="model.safe_mode=false only if you trust") as info:
        load_model_bundle(path, mappings)
    assert str(path) in str(info.value)
    bundle = load_model_bundle(path, mappings, safe_mode=False)
    x_in = _x(2)
    np.testing.assert_allclose(bundle.predict_probabilities(x_in)["azimuth"], np.asarray(model(x_in)[1]), atol=1e-6)


def test_saved_model_folder(tmp_path, mappings):
    model = _tiny()
    folder = tmp_path / "exported"
    model.export(folder, verbose=False)
    bundle = load_model_bundle(folder, mappings, heads=HeadOutputs(order=["magnitude", "azimuth"]))
    assert bundle.target_layer is None and bundle.input_shape == SHAPE
    x = _x(2)
    probabilities = bundle.predict_probabilities(x)
    np.testing.assert_allclose(probabilities["magnitude"], np.asarray(model(x)[0]), atol=1e-5)
    np.testing.assert_allclose(probabilities["azimuth"], np.asarray(model(x)[1]), atol=1e-5)
    with pytest.raises(ModelError, match="no 4-D feature map") as info:
        bundle.explanation_graph()
    assert str(folder) in str(info.value)
    graph = bundle.explanation_graph(with_features=False)  # what saliency needs
    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        score = tf.reduce_sum(graph.model(inputs)["azimuth"][:, 1])
    gradient = tape.gradient(score, inputs).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0


def test_target_layer_validation(mappings):
    with pytest.raises(ModelError, match=r"'conv_actt' \(model.target_layer\) not found.*conv_act"):
        bundle_from_model(_tiny(), mappings, target_layer="conv_actt")
    assert bundle_from_model(_tiny(), mappings, target_layer="conv").target_layer == "conv"
    # a bare name inside a nested backbone is found
    backbone_in = keras.Input(SHAPE)
    backbone = keras.Model(backbone_in, keras.layers.Conv2D(4, 3, name="inner_conv")(backbone_in), name="bb")
    inputs = keras.Input(SHAPE)
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    model = keras.Model(
        inputs,
        [keras.layers.Dense(4, name="magnitude")(x), keras.layers.Dense(9, name="azimuth")(x)],
    )
    bundle = bundle_from_model(model, mappings, target_layer="inner_conv")
    assert bundle.target_layer == "bb/inner_conv"
    assert bundle.explanation_graph().feature_shape == (14, 14, 4)


def test_prepare_resizes_checks_and_preprocesses(mappings):
    bundle = bundle_from_model(_tiny(), mappings)
    grid = np.random.default_rng(1).uniform(0, 255, size=(2, 40, 24, 3)).astype("float32")
    prepared = bundle.prepare(grid)
    assert prepared.shape == (2, 16, 16, 3) and prepared.dtype == np.float32
    constant = np.full((20, 30, 3), 7.0, "float32")
    np.testing.assert_allclose(bundle.prepare(constant), 7.0, atol=1e-5)  # single image, bilinear
    same = bundle.prepare(grid[:, :16, :16])
    np.testing.assert_array_equal(same, grid[:, :16, :16])
    with pytest.raises(InputDataError, match="1 channels but model 'tiny'"):
        bundle.prepare(grid[..., :1])
    bad = grid.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(InputDataError, match="NaN"):
        bundle.prepare(bad)
    scaled = bundle_from_model(_tiny(), mappings, preprocessing="scale_0_1").prepare(grid[:, :16, :16])
    np.testing.assert_allclose(scaled, grid[:, :16, :16] / 255.0, rtol=1e-6)
    with pytest.raises(ConfigError, match="model.preprocessing"):
        bundle_from_model(_tiny(), mappings, preprocessing="imagenet")


def test_preprocessing_modes():
    pixel = np.array([[[[255.0, 0.0, 127.5]]]], "float32")
    np.testing.assert_allclose(apply_preprocessing(pixel, "scale_minus1_1")[0, 0, 0], [1.0, -1.0, 0.0], atol=1e-6)
    expected_torch = (np.array([1.0, 0.0, 0.5]) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(apply_preprocessing(pixel, "imagenet_torch")[0, 0, 0], expected_torch, atol=1e-5)
    ours = apply_preprocessing(pixel, "imagenet_caffe")
    reference = keras.applications.imagenet_utils.preprocess_input(pixel.copy(), mode="caffe")
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    with pytest.raises(ConfigError, match="3-channel"):
        apply_preprocessing(np.zeros((1, 2, 2, 1), "float32"), "imagenet_caffe")


def test_load_from_config(tmp_path, mappings):
    path = tmp_path / "user.h5"
    _tiny().save(path)
    mappings_file = tmp_path / "class_mappings.json"
    mappings.save(mappings_file)
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["model=vgg16"]).model  # conf/model/_base.yaml + vgg16.yaml
    cfg.file = str(path)
    cfg.class_mappings = str(mappings_file)
    cfg.target_layer = None
    bundle = load_model_bundle_from_config(cfg)
    assert bundle.name == "user" and bundle.target_layer == "conv_act"  # a user file is named by its stem
    assert bundle.class_mappings.classes("azimuth") == AZIMUTHS
    cfg.file = None
    with pytest.raises(ConfigError, match="model.file"):
        load_model_bundle_from_config(cfg)
