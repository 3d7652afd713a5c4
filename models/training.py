"""Training the two-head classifiers, and the demo-checkpoint cache.

:func:`train_model` trains on the configured data set (demo or the users' CSV; the Hydra task
``python main.py task=train model=vgg16`` is :mod:`xai.tasks.train`). Every training setting is
read from ``model.training`` (conf/model/*.yaml) without defaults of its own. Splits are stratified
by magnitude class and grouped by event (``event_id`` column, else ``date``) so no event leaks
across splits; class imbalance is handled with balanced per-head sample weights; no augmentation
(time reversal or frequency flips would be unphysical). The demo models are trained once per
(model config, data set, seed) and cached atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.io import atomic_path, atomic_write_json, atomic_write_text
from geomag.dataset import HEADS, ClassMappings, SampleRecord
from models.identity import model_name

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
# every key of model.training the code reads; their values live only in conf/model/*.yaml
TRAINING_KEYS = (
    "stages",
    "epochs",
    "learning_rate",
    "schedule",
    "batch_size",
    "patience",
    "monitor",
    "disable_stochastic_depth",
    "class_order",
    "validation_fraction",
    "test_fraction",
    "max_train_samples",
    "jit_compile",
)


# --------------------------------------------------------------------------- splits and weights
def event_key(record: SampleRecord) -> str:
    """Grouping key: samples of the same event stay in the same split."""
    return str(record.extra.get("event_id") or record.date)


def split_by_event(
    records: Sequence[SampleRecord], validation: float = 0.15, test: float = 0.15, seed: int = 0
) -> dict[str, list[int]]:
    """Indices per split, stratified by magnitude class, grouped by event."""
    if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
        raise ConfigError(f"model.training: validation ({validation}) + test ({test}) fractions must be < 1")
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault(event_key(record), []).append(index)
    by_class: dict[str, list[str]] = {}
    for key, members in groups.items():
        by_class.setdefault(records[members[0]].magnitude_class, []).append(key)
    out = {name: [] for name in SPLITS}
    for cls in sorted(by_class):
        keys = sorted(by_class[cls])
        rng.shuffle(keys)
        n = len(keys)
        n_test = int(round(n * test))
        n_val = int(round(n * validation))
        for position, key in enumerate(keys):
            split = "test" if position < n_test else "validation" if position < n_test + n_val else "train"
            out[split].extend(groups[key])
    return {name: sorted(indices) for name, indices in out.items()}


def balanced_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-sample weights n / (k * count[class]) (scikit-learn's 'balanced' rule), mean 1."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    per_class = np.zeros(n_classes)
    per_class[present] = len(labels) / (present.sum() * counts[present])
    return per_class[labels].astype(np.float32)


def model_class_mappings(data_mappings: ClassMappings, order: str) -> ClassMappings:
    """The model's class order: the data set's ('natural') or alphabetical ('sorted')."""
    if order == "natural":
        return ClassMappings(list(data_mappings.magnitude_classes), list(data_mappings.azimuth_classes))
    if order == "sorted":
        return ClassMappings(sorted(data_mappings.magnitude_classes), sorted(data_mappings.azimuth_classes))
    raise ConfigError(f"model.training.class_order: {order!r} is not 'natural' or 'sorted'")


def confusion(true: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> dict:
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(matrix, (true, pred), 1)
    return {"classes": list(classes), "matrix": matrix.tolist(), "rows": "true", "columns": "predicted"}


# --------------------------------------------------------------------------- training
@dataclass
class TrainingResult:
    model_file: Path
    class_mappings_file: Path
    evaluation: dict
    history: dict


class Stage(NamedTuple):
    """One progressive-resizing stage: input size ``(rows, cols)``, epochs, learning rate, batch size."""

    size: tuple[int, int]
    epochs: int
    learning_rate: float
    batch_size: int


@dataclass
class FitData:
    """What every stage trains on: inputs (prepared at the stage's size), labels and balanced
    sample weights per head, and the indices of the training and validation samples."""

    x: np.ndarray | None
    labels: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    train: np.ndarray
    val: np.ndarray


def required_key(section: Mapping, key: str, where: str = "model.training"):
    """``section[key]``; a missing key is a :class:`ConfigError` naming it (the YAML holds every default)."""
    if key not in section:
        raise ConfigError(f"{where}.{key}: missing from the configuration (conf/model/*.yaml)")
    return section[key]


class _LogEpochs:
    """Keras callback that sends one line per epoch to the logger (Hydra log file)."""

    def __new__(cls, *args, **kwargs):
        import keras

        class LogEpochs(keras.callbacks.Callback):
            def __init__(self, total: int) -> None:
                super().__init__()
                self.total, self.start = total, time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                keys = (
                    "loss",
                    "magnitude_accuracy",
                    "azimuth_accuracy",
                    "val_loss",
                    "val_magnitude_accuracy",
                    "val_azimuth_accuracy",
                )
                text = " ".join(f"{k}={logs[k]:.3f}" for k in keys if k in logs)
                log.info("epoch %d/%d (%.0f s): %s", epoch + 1, self.total, time.perf_counter() - self.start, text)

        return LogEpochs(*args, **kwargs)


def _prepared(bundle, images: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([bundle.prepare(images[i : i + batch]) for i in range(0, len(images), batch)])


def _build(model_cfg: Mapping, mappings: ClassMappings, input_shape: Sequence[int] | None = None):
    """The model of ``model.builder`` with one output unit per class of ``mappings``."""
    import hydra

    overrides: dict = {
        "head": {"n_magnitude": len(mappings.magnitude_classes), "n_azimuth": len(mappings.azimuth_classes)}
    }
    if input_shape is not None:
        overrides["input_shape"] = [int(v) for v in input_shape]
    return hydra.utils.instantiate(model_cfg["builder"], **overrides)


def _bundle(model, mappings: ClassMappings, model_cfg: Mapping):
    from models.loading import bundle_from_model

    return bundle_from_model(
        model,
        mappings,
        name=model_name(model_cfg),
        target_layer=model_cfg.get("target_layer"),
        preprocessing=required_key(model_cfg, "preprocessing", "model"),
    )


def _training_splits(records: Sequence[SampleRecord], training: Mapping, seed: int) -> dict[str, list[int]]:
    splits = split_by_event(
        records,
        float(required_key(training, "validation_fraction")),
        float(required_key(training, "test_fraction")),
        seed,
    )
    limit = required_key(training, "max_train_samples")
    if limit:
        splits["train"] = splits["train"][: int(limit)]
    log.info("split by event: %s", {k: len(v) for k, v in splits.items()})
    return splits


def train_model(model_cfg: Mapping, source, out_dir: str | Path, seed: int = 0) -> TrainingResult:
    """Train ``model_cfg`` on every sample of ``source``; write model, mappings, history, evaluation."""
    import keras

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    training = dict(required_key(model_cfg, "training", "model"))
    for key in TRAINING_KEYS:  # fail before any data is loaded
        required_key(training, key)
    records = source.records()
    if source.class_mappings is None:
        raise ConfigError("data: training needs the data set's class_mappings.json")
    mappings = model_class_mappings(source.class_mappings, str(required_key(training, "class_order")))
    splits = _training_splits(records, training, seed)
    keras.utils.set_random_seed(int(seed))
    model = _build(model_cfg, mappings)
    bundle = _bundle(model, mappings, model_cfg)
    grids = np.stack([source.load(r).image for r in records]).astype(np.float32)
    labels = {head: np.array([mappings.index(head, r.true_class(head)) for r in records]) for head in HEADS}
    train, val, test = (np.asarray(splits[name], dtype=int) for name in SPLITS)
    weights = {h: balanced_weights(labels[h][train], len(mappings.classes(h))) for h in HEADS}
    final_size = tuple(bundle.input_shape[:2])
    stages = _stages(training, final_size)
    started = time.perf_counter()
    data = FitData(None, labels, weights, train, val)
    histories = _run_stages(model, model_cfg, mappings, grids, data, stages)
    x = data.x
    if x is None or x.shape[1:3] != final_size:
        x = _prepared(bundle, grids)
    del grids
    train_seconds = time.perf_counter() - started
    evaluation = {
        "splits": {k: len(v) for k, v in splits.items()},
        "train_seconds": round(train_seconds, 1),
        "epochs_run": len(histories.get("loss", [])),
        "stages": [list(st) for st in stages],
        "heads": {},
    }
    held_out = test if len(test) else val
    if len(held_out):
        evaluation["heads"] = _evaluate(bundle, x[held_out], {h: labels[h][held_out] for h in HEADS})
    return _write_outputs(
        out_dir,
        model,
        mappings,
        histories,
        evaluation,
        "".join(f"{records[i].name},{name}\n" for name in SPLITS for i in splits[name]),
    )


def _run_stages(
    model, model_cfg: Mapping, mappings: ClassMappings, grids: np.ndarray, data: FitData, stages: Sequence[Stage]
) -> dict[str, list[float]]:
    """Train ``model`` stage by stage (weights carried over between input sizes); ``data.x`` ends
    as the last stage's inputs. Returns the concatenated Keras histories."""
    from models.builders import set_input_standardization

    training = required_key(model_cfg, "training", "model")
    final_size = tuple(int(v) for v in model.inputs[0].shape[1:3])
    channels = int(model.inputs[0].shape[-1])
    histories: dict[str, list[float]] = {}
    for number, stage in enumerate(stages):
        stage_model = model if stage.size == final_size else _build(model_cfg, mappings, [*stage.size, channels])
        if stage_model is not model:
            stage_model.set_weights(model.get_weights())
        data.x = _prepared(_bundle(stage_model, mappings, model_cfg), grids)
        if number == 0:  # standardisation statistics of the training split, kept for every stage
            mean, variance = data.x[data.train].mean(axis=(0, 1, 2)), data.x[data.train].var(axis=(0, 1, 2)) + 1e-6
        set_input_standardization(stage_model, mean, variance)
        if required_key(training, "disable_stochastic_depth"):
            _disable_stochastic_depth(stage_model)
        log.info(
            "stage %d/%d: %dx%d input, %d epoch(s), learning rate %g, batch %d",
            number + 1,
            len(stages),
            *stage.size,
            stage.epochs,
            stage.learning_rate,
            stage.batch_size,
        )
        history = _fit(stage_model, data, stage, training)
        for key, values in history.items():
            histories.setdefault(key, []).extend(values)
        if stage_model is not model:
            model.set_weights(stage_model.get_weights())
            del stage_model
    return histories


def _evaluate(bundle, x: np.ndarray, truth: Mapping[str, np.ndarray]) -> dict:
    """Per-head accuracy, majority-class rate and confusion matrix on the held-out samples."""
    probs = bundle.predict_probabilities(x)
    heads = {}
    for head in HEADS:
        pred = probs[head].argmax(axis=1)
        classes = bundle.classes(head)
        counts = np.bincount(truth[head], minlength=len(classes))
        heads[head] = {
            "accuracy": float(np.mean(pred == truth[head])),
            "majority_class_rate": float(counts.max() / counts.sum()),
            "n": int(len(truth[head])),
            "confusion": confusion(truth[head], pred, classes),
        }
        if head == "azimuth":
            heads[head].update(_azimuth_power_groups(truth[head], pred, classes))
        log.info(
            "held-out %s accuracy %.3f (majority-class rate %.3f, n=%d)",
            head,
            heads[head]["accuracy"],
            heads[head]["majority_class_rate"],
            len(truth[head]),
        )
    return heads


def _write_outputs(
    out_dir: Path, model, mappings: ClassMappings, histories: Mapping[str, list], evaluation: dict, split_rows: str
) -> TrainingResult:
    """``model.keras``, ``class_mappings.json``, ``history.json``, ``evaluation.json`` and
    ``split.csv`` (``split_rows``: one ``sample,split`` line per sample), each written atomically."""
    model_file = out_dir / "model.keras"
    with atomic_path(model_file) as tmp:
        model.save(tmp)
    mappings_file = mappings.save(out_dir / "class_mappings.json")
    history_dict = {k: [float(v) for v in values] for k, values in histories.items()}
    atomic_write_json(out_dir / "history.json", history_dict)
    atomic_write_json(out_dir / "evaluation.json", evaluation)
    atomic_write_text(out_dir / "split.csv", "sample,split\n" + split_rows)
    return TrainingResult(model_file, mappings_file, evaluation, history_dict)


def _azimuth_power_groups(truth: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> dict:
    """Accuracy over the azimuth groups a *power* spectrogram can separate, and the best
    accuracy any power-based classifier can reach on these labels (see geomag.synthetic)."""
    from geomag.synthetic import AZIMUTH_POWER_GROUPS

    if not set(classes) <= set(AZIMUTH_POWER_GROUPS):
        return {}
    group = np.array([AZIMUTH_POWER_GROUPS[c] for c in classes])
    best = 0.0
    for name in set(group):
        members = np.flatnonzero(group == name)
        counts = np.bincount(truth, minlength=len(classes))[members]
        best += counts.max() if len(counts) else 0  # a power classifier can at best pick one class per group
    return {
        "power_group_accuracy": float(np.mean(group[truth] == group[pred])),
        "power_bound_accuracy": float(best / len(truth)),
    }


def _stages(training: Mapping, final_size: tuple[int, int]) -> list[Stage]:
    """Progressive resizing (Howard & Gugger 2020; Tan & Le 2021, EfficientNetV2): optional
    low-resolution stages before the final one. The backbones are fully convolutional with global
    pooling, so the weights carry over between input sizes; the last stage always runs at the
    model's own input size. A stage may set its own ``learning_rate`` and ``batch_size`` (small
    inputs use the cores better in larger batches); otherwise the training-wide values apply."""
    learning_rate = float(required_key(training, "learning_rate"))
    batch_size = int(required_key(training, "batch_size"))
    epochs = int(required_key(training, "epochs"))
    stages = []
    for index, item in enumerate(required_key(training, "stages") or []):
        item = dict(item)
        size = int(required_key(item, "size", f"model.training.stages[{index}]"))
        stages.append(
            Stage(
                (size, size),
                int(required_key(item, "epochs", f"model.training.stages[{index}]")),
                float(item.get("learning_rate", learning_rate)),
                int(item.get("batch_size", batch_size)),
            )
        )
    if not stages or stages[-1].size != final_size:
        stages.append(Stage(final_size, epochs, learning_rate, batch_size))
    return stages


def _disable_stochastic_depth(model) -> None:
    """Set EfficientNet's stochastic-depth (``block*_drop``) rates to 0: short from-scratch
    trainings converge much faster without them."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout) and layer.name.startswith("block") and layer.name.endswith("_drop"):
            layer.rate = 0.0


def _fit(model, data: FitData, stage: Stage, training: Mapping) -> dict:
    """Compile (Adam, cosine or constant schedule) and fit one stage; early stopping on the
    validation split. Returns the Keras history."""
    import keras

    from models.graph import output_names
    from models.pipeline import keras_batches

    order = list(output_names(model))
    epochs, learning_rate, batch_size = stage.epochs, stage.learning_rate, stage.batch_size
    train, val = data.train, data.val
    schedule = str(required_key(training, "schedule"))
    if schedule == "cosine":  # Loshchilov & Hutter 2017 (SGDR), without restarts
        steps = max(1, epochs * int(np.ceil(len(train) / batch_size)))
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.05)
    elif schedule == "constant":
        rate = learning_rate
    else:
        raise ConfigError(f"model.training.schedule: {schedule!r} is not 'cosine' or 'constant'")
    model.compile(
        optimizer=keras.optimizers.Adam(rate),
        loss=["sparse_categorical_crossentropy"] * len(order),
        metrics=[["accuracy"]] * len(order),
        jit_compile=bool(required_key(training, "jit_compile")),
    )
    callbacks = [_LogEpochs(epochs)]
    if len(val):
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=str(required_key(training, "monitor")),
                patience=int(required_key(training, "patience")),
                restore_best_weights=True,
                mode="auto",
            )
        )
    x, labels = data.x, data.labels
    train_x, train_y, train_w = x[train], [labels[h][train] for h in order], [data.weights[h] for h in order]
    # Keras' own shuffled batches without tf.data autotuning (models/pipeline.py): same weights, no stalls
    dataset = keras_batches(train_x, train_y, train_w, batch_size=batch_size, shuffle=True)
    if dataset is not None:
        inputs = {"x": dataset, "shuffle": False}  # already shuffled, per epoch
    else:
        inputs = {"x": train_x, "y": train_y, "sample_weight": train_w, "batch_size": batch_size, "shuffle": True}
    validation = None
    if len(val):
        val_x, val_y = x[val], [labels[h][val] for h in order]
        validation = keras_batches(val_x, val_y, batch_size=batch_size)
        if validation is None:
            validation = (val_x, val_y)
    history = model.fit(
        **inputs,
        validation_data=validation,
        epochs=epochs,
        verbose=1 if sys.stdout.isatty() else 2,
        callbacks=callbacks,
    )
    return history.history


def read_split(model_dir: str | Path) -> dict[str, str]:
    """Sample name -> split, from a training output folder (empty if unknown)."""
    path = Path(model_dir) / "split.csv"
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()[1:]
    return dict(line.rsplit(",", 1) for line in lines if "," in line)


# --------------------------------------------------------------------------- demo cache
def builder_key_fields(builder: Mapping) -> dict:
    """The builder's arguments as one flat mapping, the form the cache key hashes: the fields of
    ``head`` under their own names, those of ``normalization`` as ``normalization_<field>``.
    Hydra's instructions (``_convert_``, the nested ``_target_``) are not arguments and stay out,
    so grouping the YAML differently never changes the key."""
    flat = {}
    for key, value in builder.items():
        if key in ("head", "normalization") and isinstance(value, Mapping):
            prefix = "" if key == "head" else f"{key}_"
            flat.update({prefix + str(k): v for k, v in value.items() if k != "_target_"})
        elif key != "_convert_":
            flat[key] = value
    return flat


def demo_model_key(model_cfg: Mapping, data_hash: str, seed: int) -> str:
    """12 hex digits of the SHA-256 of builder arguments, training settings, preprocessing, data
    set hash and seed (JSON with sorted keys: key order in the YAML does not matter)."""
    payload = {
        "builder": builder_key_fields(model_cfg["builder"]),
        "training": dict(model_cfg.get("training") or {}),
        "preprocessing": model_cfg.get("preprocessing"),
        "data": data_hash,
        "seed": seed,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_demo_model(model_cfg: Mapping, source, cache_dir: str | Path, seed: int = 0) -> Path:
    """Folder of the cached demo model for this config; trains it once if missing.

    The cache key hashes the builder, training settings, data set hash and seed. Training runs
    into a temporary folder that is renamed into place, under a file lock, so concurrent sweep
    jobs neither corrupt nor duplicate it.
    """
    if isinstance(model_cfg, DictConfig):
        model_cfg = OmegaConf.to_container(model_cfg, resolve=True)
    key = demo_model_key(model_cfg, getattr(source, "hash", "csv"), seed)
    root = Path(cache_dir) / "models"
    architecture = model_cfg["architecture"]
    final = root / f"{architecture}-{key}"
    if (final / "model.keras").is_file():
        log.info("using cached demo model %s", final)
        return final
    with _file_lock(root / f".{architecture}-{key}.lock"):
        if (final / "model.keras").is_file():
            return final
        log.info("no cached demo model for %s: training it once (cached in %s)", architecture, final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=root))
        try:
            train_model(model_cfg, source, tmp, seed)
            os.rename(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final
