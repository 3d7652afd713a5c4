"""Device set-up (models/device.py)."""

from __future__ import annotations

import logging

import keras
import pytest
import tensorflow as tf

from models.device import configure_devices


@pytest.fixture(autouse=True)
def _restore_policy():
    policy = keras.mixed_precision.global_policy().name
    yield
    keras.mixed_precision.set_global_policy(policy)


def test_configure_devices_describes_the_device(caplog):
    gpus = tf.config.list_physical_devices("GPU")
    with caplog.at_level(logging.INFO, logger="models.device"):
        description = configure_devices()
    assert isinstance(description, str) and description
    assert (description == "CPU") == (not gpus)
    assert f"device: {description}" in caplog.text
    assert keras.mixed_precision.global_policy().name == "float32"


def test_mixed_precision_only_on_gpu(caplog):
    gpus = tf.config.list_physical_devices("GPU")
    with caplog.at_level(logging.WARNING, logger="models.device"):
        configure_devices(mixed_precision=True)
    if gpus:
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
    else:
        assert keras.mixed_precision.global_policy().name == "float32"
        assert "mixed_precision=true ignored" in caplog.text
