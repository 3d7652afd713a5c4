"""models.pipeline: Keras' own batches without tf.data autotuning give bit-identical training and
prediction (the change only removes the iterator-teardown stalls)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from models.pipeline import AUTOTUNE_ENV, keras_batches  # noqa: E402


def _two_head_model() -> keras.Model:
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    heads = [
        keras.layers.Dense(3, activation="softmax", name="magnitude")(hidden),
        keras.layers.Dense(2, activation="softmax", name="azimuth")(hidden),
    ]
    model = keras.Model(inputs, heads)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=["sparse_categorical_crossentropy"] * 2)
    return model


def _data(n: int = 45):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = [rng.integers(0, 3, n), rng.integers(0, 2, n)]
    w = [rng.uniform(0.5, 2.0, n), rng.uniform(0.5, 2.0, n)]
    return x, y, w


def _train(use_pipeline: bool):
    x, y, w = _data()
    keras.utils.set_random_seed(0)
    model = _two_head_model()
    validation = (x[:9], [y[0][:9], y[1][:9]])
    if use_pipeline:
        dataset = keras_batches(x, y, w, batch_size=8, shuffle=True)
        assert dataset is not None
        history = model.fit(
            dataset, validation_data=keras_batches(*validation, batch_size=8), epochs=4, shuffle=False, verbose=0
        )
    else:
        history = model.fit(
            x, y, sample_weight=w, batch_size=8, shuffle=True, validation_data=validation, epochs=4, verbose=0
        )
    return model, history.history


def test_training_is_bit_identical_to_numpy_inputs():
    reference, reference_history = _train(use_pipeline=False)
    model, history = _train(use_pipeline=True)
    assert history == reference_history  # per-epoch losses equal to the last bit
    for ours, theirs in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    # and the shuffling really happens (a fixed order would give other weights)
    x, y, w = _data()
    keras.utils.set_random_seed(0)
    unshuffled = _two_head_model()
    unshuffled.fit(x, y, sample_weight=w, batch_size=8, shuffle=False, epochs=4, verbose=0)
    assert not all(np.array_equal(a, b) for a, b in zip(unshuffled.get_weights(), reference.get_weights()))


def test_batches_have_known_length_and_no_autotuning():
    x, y, w = _data(45)
    dataset = keras_batches(x, y, w, batch_size=8)
    assert int(dataset.cardinality()) == 6  # 5 full batches + 5 left over
    assert dataset.options().autotune.enabled is False
    first = next(iter(dataset))
    np.testing.assert_array_equal(first[0].numpy(), x[:8])  # no shuffling unless asked


def test_prediction_is_identical_and_env_switch_falls_back(monkeypatch):
    x, _, _ = _data(70)
    keras.utils.set_random_seed(1)
    model = _two_head_model()
    ours = model.predict(keras_batches(x, batch_size=32), verbose=0)
    theirs = model.predict(x, batch_size=32, verbose=0)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setenv(AUTOTUNE_ENV, "1")
    assert keras_batches(x, batch_size=32) is None
