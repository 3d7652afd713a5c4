"""Shared fixtures and helpers: tiny end-to-end runs of main.py, tiny two-head models, the location of ../shared."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

# Tiny but complete: 48-sample demo data set on a 32x32 grid, 32x32 backbones, one epoch.
TINY = [
    "data.generator.n_samples=48",
    "spectrogram.grid=[32,32]",
    "model.builder.input_shape=[32,32,3]",
    "model.training.epochs=1",
    "model.training.stages=[]",
    "model.training.batch_size=8",
]
FEW_SMOOTHGRAD_SAMPLES = "xai.methods.smoothgrad.smooth_samples=2"


def run_main(args: list[str], cwd: Path = ROOT, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run ``python main.py ARGS`` and return the completed process (text output)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"{SHARED}/data is absent (real data files only exist beside the project checkout)")
    return SHARED


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """One demo cache (data set + demo checkpoints) shared by the end-to-end tests."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_demo_run(tmp_path_factory, tiny_cache):
    """``python main.py`` (default model) once on the tiny demo: trains and caches the demo model."""
    run_dir = tmp_path_factory.mktemp("default_run")
    proc = run_main([*TINY, FEW_SMOOTHGRAD_SAMPLES, f"paths.cache_dir={tiny_cache}", f"hydra.run.dir={run_dir}"])
    return proc, run_dir


HEADS = (("magnitude", 4), ("azimuth", 5))


def tiny_two_head_model(
    seed: int = 0, size: int = 32, zero_features: bool = False, n_magnitude: int = 4, n_azimuth: int = 5
):
    """Conv stack -> target ``feat`` (7x7 at 32x32) -> pool -> shared dense -> two logit/softmax heads."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(name="p1")(x)
    init = "zeros" if zero_features else "glorot_uniform"
    x = keras.layers.Conv2D(12, 3, strides=2, activation="relu", kernel_initializer=init, name="feat")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(16, activation="tanh", name="shared")(x)
    outputs = []
    for head, n in (("magnitude", n_magnitude), ("azimuth", n_azimuth)):
        logits = keras.layers.Dense(n, name=f"{head}_logits")(x)
        outputs.append(keras.layers.Activation("softmax", name=head)(logits))
    return keras.Model(inputs, outputs, name="tiny")


def tiny_model(n_magnitude: int, n_azimuth: int, seed: int = 0):
    """The tiny two-head model with the given head sizes (32x32 input)."""
    return tiny_two_head_model(seed=seed, n_magnitude=n_magnitude, n_azimuth=n_azimuth)
