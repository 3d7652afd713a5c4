"""Training settings, stages and the demo-model cache key (models/training.py) on the composed model configs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from core.errors import ConfigError
from geomag.dataset import ClassMappings, SampleRecord
from models.training import (
    TRAINING_KEYS,
    Stage,
    _stages,
    builder_key_fields,
    demo_model_key,
    train_model,
)

CONF = Path(__file__).resolve().parents[1] / "conf"
MAGNITUDES = ["Normal", "Moderate", "Medium", "Large"]
AZIMUTHS = ["Normal", "N", "S"]


def _model(name: str, *overrides: str) -> dict:
    """``cfg.model`` for ``model=<name>``, resolved against the root config (seed 42)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={name}", *overrides])
    return OmegaConf.to_container(cfg.model, resolve=True)


# Keys of the demo models cached under .cache/models/<model>-<key>, pinned: a config change that
# alters them makes every existing demo cache retrain.
PINNED_KEYS = {
    ("vgg16", ()): "bcb886f6068a",
    ("efficientnet", ()): "3251a5e649bc",
    (
        "efficientnet",
        ("model.builder.input_shape=[32,32,3]", "model.training.epochs=1", "model.training.stages=[]"),
    ): "64ae53f162c6",
}


@pytest.mark.parametrize(("name", "overrides"), list(PINNED_KEYS))
def test_demo_model_keys_are_pinned(name, overrides):
    assert demo_model_key(_model(name, *overrides), "abc123", 42) == PINNED_KEYS[(name, overrides)]


def test_cache_key_sees_builder_arguments_not_yaml_grouping():
    builder = _model("vgg16")["builder"]
    flat = builder_key_fields(builder)
    assert flat == {
        "_target_": "models.builders.build_vgg16_multitask", "input_shape": [112, 112, 3], "n_magnitude": 4,
        "n_azimuth": 9, "dense_units": 256, "dropout": 0.3, "weights": None, "normalization_mean": None,
        "normalization_variance": None, "kernel_initializer": "he_normal", "seed": 42,
    }  # fmt: skip
    changed = _model("vgg16", "model.builder.head.dense_units=128")
    assert demo_model_key(changed, "abc123", 42) != PINNED_KEYS[("vgg16", ())]


@pytest.mark.parametrize("name", ["vgg16", "efficientnet"])
def test_every_training_key_is_in_the_yaml(name):
    assert set(TRAINING_KEYS) <= set(_model(name)["training"])


def test_stages_from_the_yaml():
    vgg, efficientnet = _model("vgg16")["training"], _model("efficientnet")["training"]
    assert _stages(vgg, (112, 112)) == [Stage((64, 64), 10, 3e-4, 16), Stage((112, 112), 6, 1.5e-4, 16)]
    assert _stages(efficientnet, (224, 224)) == [Stage((112, 112), 9, 2e-3, 16), Stage((224, 224), 2, 5e-4, 16)]
    # a stage at the final size is the last stage; a stage may set its own batch size
    own = {**vgg, "stages": [{"size": 32, "epochs": 3, "batch_size": 64}, {"size": 112, "epochs": 1}]}
    assert _stages(own, (112, 112)) == [Stage((32, 32), 3, 1.5e-4, 64), Stage((112, 112), 1, 1.5e-4, 16)]
    with pytest.raises(ConfigError, match=r"model.training.stages\[0\].epochs"):
        _stages({**vgg, "stages": [{"size": 32}]}, (112, 112))


@pytest.mark.parametrize("key", TRAINING_KEYS)
def test_missing_training_key_is_a_config_error(key, tmp_path):
    model_cfg = _model("vgg16")
    del model_cfg["training"][key]
    untouched = SimpleNamespace(records=lambda: pytest.fail("data read before the config was checked"))
    with pytest.raises(ConfigError, match=rf"model.training.{key}: missing"):
        train_model(model_cfg, untouched, tmp_path)


class _RandomSource:
    """A data set of random 32x32 grids with every magnitude and azimuth class present."""

    def __init__(self, n: int = 24) -> None:
        self.class_mappings = ClassMappings(list(MAGNITUDES), list(AZIMUTHS))
        self._records = [
            SampleRecord(f"s{i}", MAGNITUDES[i % 4], AZIMUTHS[i % 3], "LUT", f"2020-01-{i + 1:02d}", Path(f"s{i}.npy"))
            for i in range(n)
        ]
        self._images = np.random.default_rng(0).normal(size=(n, 32, 32, 3)).astype(np.float32)

    def records(self) -> list[SampleRecord]:
        return list(self._records)

    def load(self, record: SampleRecord) -> SimpleNamespace:
        return SimpleNamespace(image=self._images[self._records.index(record)])


@pytest.mark.slow
def test_train_model_runs_stages_and_writes_outputs(tmp_path):
    """Two stages (32x32 then the 48x48 input) on random data: files, split and evaluation layout."""
    model_cfg = _model(
        "vgg16", "model.builder.input_shape=[48,48,3]", "model.builder.head.dense_units=8",
        "model.training.stages=[{size: 32, epochs: 1}]", "model.training.epochs=1", "model.training.batch_size=8",
    )  # fmt: skip
    result = train_model(model_cfg, _RandomSource(), tmp_path, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "class_mappings.json", "evaluation.json", "history.json", "model.keras", "split.csv",
    ]  # fmt: skip
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    assert list(evaluation) == ["splits", "train_seconds", "epochs_run", "stages", "heads"]
    assert evaluation["stages"] == [[[32, 32], 1, 1.5e-4, 8], [[48, 48], 1, 1.5e-4, 8]]  # training-wide rate
    assert evaluation["epochs_run"] == 2 == len(result.history["loss"])
    assert sum(evaluation["splits"].values()) == 24
    assert list(evaluation["heads"]) == ["magnitude", "azimuth"]
    assert evaluation["heads"]["magnitude"]["confusion"]["classes"] == MAGNITUDES  # class_order: natural
    rows = (tmp_path / "split.csv").read_text().splitlines()
    assert rows[0] == "sample,split" and len(rows) == 25


def _evaluation(magnitude: float, azimuth: float, seconds: float) -> dict:
    heads = {
        "magnitude": {"accuracy": magnitude, "majority_class_rate": 0.4},
        "azimuth": {"accuracy": azimuth, "majority_class_rate": 0.16, "power_bound_accuracy": 0.5},
    }
    return {"splits": {"train": 7, "validation": 2, "test": 2}, "train_seconds": seconds, "epochs_run": 3,
            "heads": heads}  # fmt: skip


def test_demo_accuracy_benchmark_rows_and_goals(tmp_path):
    """benchmarks/demo_accuracy.py: one row per trained model folder, min / median over seeds, goals."""
    from benchmarks.demo_accuracy import read_row, summary

    rows = []
    measured = [(0.95, 0.44, 100.0), (0.93, 0.42, 300.0), (0.97, 0.48, 200.0)]
    for seed, (magnitude, azimuth, seconds) in enumerate(measured):
        folder = tmp_path / str(seed)
        folder.mkdir()
        (folder / "evaluation.json").write_text(json.dumps(_evaluation(magnitude, azimuth, seconds)))
        rows.append(read_row("vgg16", seed, folder))
    assert rows[1]["azimuth_ratio"] == pytest.approx(2.625)  # 0.42 / 0.16
    stats = summary(rows)
    assert stats["magnitude_accuracy"] == {"min": 0.93, "median": 0.95, "max": 0.97}
    assert stats["azimuth_ratio"]["min"] == pytest.approx(2.625)
    assert stats["azimuth_ratio"]["median"] == pytest.approx(2.75)
    assert stats["train_seconds"]["median"] == 200.0
    assert stats["goals_met"] is True
    rows[2]["magnitude_accuracy"] = 0.919  # one seed below 0.92 fails the goal
    assert summary(rows)["goals_met"] is False
    rows[2]["magnitude_accuracy"], rows[0]["azimuth_ratio"] = 0.97, 2.49
    assert summary(rows)["goals_met"] is False
