"""Training the two-head classifiers, and the demo-checkpoint cache.

``python main.py task=train model=vgg16`` trains on the configured data set (demo or the users'
CSV). Splits are stratified by magnitude class and grouped by event (``event_id`` column, else
``date``) so no event leaks across splits; class imbalance is handled with balanced per-head
sample weights; no augmentation (time reversal or frequency flips would be unphysical).
The demo models are trained once per (model config, data set, seed) and cached atomically.
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

import numpy as np
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.io import atomic_path, atomic_write_json, atomic_write_text
from geomag.dataset import HEADS, ClassMappings, SampleRecord

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


# --------------------------------------------------------------------------- splits and weights
def event_key(record: SampleRecord) -> str:
    """Grouping key: samples of the same event stay in the same split."""
    return str(record.extra.get("event_id") or record.date)


def split_by_event(records: Sequence[SampleRecord], validation: float = 0.15, test: float = 0.15,
                   seed: int = 0) -> dict[str, list[int]]:
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
                keys = ("loss", "magnitude_accuracy", "azimuth_accuracy", "val_loss",
                        "val_magnitude_accuracy", "val_azimuth_accuracy")
                text = " ".join(f"{k}={logs[k]:.3f}" for k in keys if k in logs)
                log.info("epoch %d/%d (%.0f s): %s", epoch + 1, self.total, time.perf_counter() - self.start, text)

        return LogEpochs(*args, **kwargs)


def _prepared(bundle, images: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([bundle.prepare(images[i:i + batch]) for i in range(0, len(images), batch)])


def train_model(model_cfg: Mapping, source, out_dir: str | Path, seed: int = 0) -> TrainingResult:
    """Train ``model_cfg`` on every sample of ``source``; write model, mappings, history, evaluation."""
    import hydra
    import keras

    from models.builders import set_input_standardization
    from models.loading import bundle_from_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    training = dict(model_cfg.get("training") or {})
    records = source.records()
    if source.class_mappings is None:
        raise ConfigError("data: training needs the data set's class_mappings.json")
    mappings = model_class_mappings(source.class_mappings, str(training.get("class_order", "natural")))
    splits = split_by_event(records, float(training.get("validation_fraction", 0.15)),
                            float(training.get("test_fraction", 0.15)), seed)
    limit = training.get("max_train_samples")
    if limit:
        splits["train"] = splits["train"][: int(limit)]
    log.info("split by event: %s", {k: len(v) for k, v in splits.items()})
    keras.utils.set_random_seed(int(seed))
    n_classes = {"n_magnitude": len(mappings.magnitude_classes), "n_azimuth": len(mappings.azimuth_classes)}
    model = hydra.utils.instantiate(model_cfg["builder"], **n_classes, _convert_="all")
    bundle = bundle_from_model(model, mappings, name=model_cfg.get("name"),
                               target_layer=model_cfg.get("target_layer"),
                               preprocessing=model_cfg.get("preprocessing", "none"))
    grids = np.stack([source.load(r).image for r in records]).astype(np.float32)
    labels = {head: np.array([mappings.index(head, r.true_class(head)) for r in records]) for head in HEADS}
    train, val, test = (np.asarray(splits[name], dtype=int) for name in SPLITS)
    weights = {h: balanced_weights(labels[h][train], len(mappings.classes(h))) for h in HEADS}
    final_size = tuple(bundle.input_shape[:2])
    stages = _stages(training, final_size)
    started = time.perf_counter()
    histories: dict[str, list[float]] = {}
    x = None
    for stage, (size, epochs, learning_rate, batch_size) in enumerate(stages):
        stage_model = model if size == final_size else hydra.utils.instantiate(
            model_cfg["builder"], **n_classes, input_shape=[*size, bundle.input_shape[2]], _convert_="all")
        if stage_model is not model:
            stage_model.set_weights(model.get_weights())
        stage_bundle = bundle_from_model(stage_model, mappings, name=model_cfg.get("name"),
                                         target_layer=model_cfg.get("target_layer"),
                                         preprocessing=model_cfg.get("preprocessing", "none"))
        x = _prepared(stage_bundle, grids)
        if stage == 0:  # standardisation statistics of the training split, kept for every stage
            mean, variance = x[train].mean(axis=(0, 1, 2)), x[train].var(axis=(0, 1, 2)) + 1e-6
        set_input_standardization(stage_model, mean, variance)
        if training.get("disable_stochastic_depth", True):
            _disable_stochastic_depth(stage_model)
        log.info("stage %d/%d: %dx%d input, %d epoch(s), learning rate %g, batch %d", stage + 1, len(stages), *size,
                 epochs, learning_rate, batch_size)
        history = _fit(stage_model, x, labels, weights, train, val, epochs, learning_rate,
                       {**training, "batch_size": batch_size})
        for key, values in history.items():
            histories.setdefault(key, []).extend(values)
        if stage_model is not model:
            model.set_weights(stage_model.get_weights())
            del stage_model
    if x is None or x.shape[1:3] != final_size:
        x = _prepared(bundle, grids)
    del grids
    train_seconds = time.perf_counter() - started
    evaluation = {"splits": {k: len(v) for k, v in splits.items()}, "train_seconds": round(train_seconds, 1),
                  "epochs_run": len(histories.get("loss", [])), "stages": [list(st) for st in stages],
                  "heads": {}}
    held_out = test if len(test) else val
    if len(held_out):
        probs = bundle.predict_probabilities(x[held_out])
        for head in HEADS:
            truth = labels[head][held_out]
            pred = probs[head].argmax(axis=1)
            classes = mappings.classes(head)
            counts = np.bincount(truth, minlength=len(classes))
            evaluation["heads"][head] = {
                "accuracy": float(np.mean(pred == truth)),
                "majority_class_rate": float(counts.max() / counts.sum()),
                "n": int(len(truth)),
                "confusion": confusion(truth, pred, classes),
            }
            if head == "azimuth":
                evaluation["heads"][head].update(_azimuth_power_groups(truth, pred, classes))
            log.info("held-out %s accuracy %.3f (majority-class rate %.3f, n=%d)", head,
                     evaluation["heads"][head]["accuracy"], evaluation["heads"][head]["majority_class_rate"],
                     len(truth))
    model_file = out_dir / "model.keras"
    with atomic_path(model_file) as tmp:
        model.save(tmp)
    mappings_file = mappings.save(out_dir / "class_mappings.json")
    history_dict = {k: [float(v) for v in values] for k, values in histories.items()}
    atomic_write_json(out_dir / "history.json", history_dict)
    atomic_write_json(out_dir / "evaluation.json", evaluation)
    atomic_write_text(out_dir / "split.csv", "sample,split\n" + "".join(
        f"{records[i].name},{name}\n" for name in SPLITS for i in splits[name]))
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
    return {"power_group_accuracy": float(np.mean(group[truth] == group[pred])),
            "power_bound_accuracy": float(best / len(truth))}


def _stages(training: Mapping, final_size: tuple[int, int]) -> list[tuple[tuple[int, int], int, float, int]]:
    """Progressive resizing (Howard & Gugger 2020; Tan & Le 2021, EfficientNetV2): optional
    low-resolution stages before the final one. The backbones are fully convolutional with global
    pooling, so the weights carry over between input sizes; the last stage always runs at the
    model's own input size. Each stage is ``(size, epochs, learning rate, batch size)``; a stage
    may set its own ``batch_size`` (small inputs use the cores better in larger batches)."""
    learning_rate = float(training.get("learning_rate", 1e-3))
    batch_size = int(training.get("batch_size", 16))
    stages = []
    for item in training.get("stages") or []:
        item = dict(item)
        size = int(item["size"])
        stages.append(((size, size), int(item["epochs"]), float(item.get("learning_rate", learning_rate)),
                       int(item.get("batch_size", batch_size))))
    if not stages or stages[-1][0] != final_size:
        stages.append((final_size, int(training.get("epochs", 10)), learning_rate, batch_size))
    return stages


def _disable_stochastic_depth(model) -> None:
    """Set EfficientNet's stochastic-depth (``block*_drop``) rates to 0: short from-scratch
    trainings converge much faster without them."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout) and layer.name.startswith("block") and layer.name.endswith("_drop"):
            layer.rate = 0.0


def _fit(model, x, labels, weights, train, val, epochs, learning_rate, training) -> dict:
    import keras

    from models.graph import output_names
    from models.pipeline import keras_batches

    order = list(output_names(model))
    batch_size = int(training.get("batch_size", 16))
    schedule = str(training.get("schedule", "cosine"))
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
        jit_compile=bool(training.get("jit_compile", False)),
    )
    callbacks = [_LogEpochs(epochs)]
    if len(val):
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=str(training.get("monitor", "val_loss")), patience=int(training.get("patience", 3)),
            restore_best_weights=True, mode="auto"))
    train_x, train_y, train_w = x[train], [labels[h][train] for h in order], [weights[h] for h in order]
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
    history = model.fit(**inputs, validation_data=validation, epochs=epochs,
                        verbose=1 if sys.stdout.isatty() else 2, callbacks=callbacks)
    return history.history


def read_split(model_dir: str | Path) -> dict[str, str]:
    """Sample name -> split, from a training output folder (empty if unknown)."""
    path = Path(model_dir) / "split.csv"
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()[1:]
    return dict(line.rsplit(",", 1) for line in lines if "," in line)


# --------------------------------------------------------------------------- demo cache
def demo_model_key(model_cfg: Mapping, data_hash: str, seed: int) -> str:
    payload = {"builder": dict(model_cfg["builder"]), "training": dict(model_cfg.get("training") or {}),
               "preprocessing": model_cfg.get("preprocessing"), "data": data_hash, "seed": seed}
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
    final = root / f"{model_cfg['name']}-{key}"
    if (final / "model.keras").is_file():
        log.info("using cached demo model %s", final)
        return final
    with _file_lock(root / f".{model_cfg['name']}-{key}.lock"):
        if (final / "model.keras").is_file():
            return final
        log.info("no cached demo model for %s: training it once (cached in %s)", model_cfg["name"], final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=root))
        try:
            train_model(model_cfg, source, tmp, seed)
            os.rename(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


# --------------------------------------------------------------------------- Hydra task
def run_training_task(cfg: DictConfig) -> TrainingResult:
    """``python main.py task=train model=...``: train on ``cfg.data`` into the run folder."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from models.device import configure_devices

    configure_devices(bool(cfg.runtime.mixed_precision))
    source = hydra.utils.instantiate(cfg.data)
    out_dir = Path(HydraConfig.get().runtime.output_dir) / str(cfg.model.name)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    result = train_model(model_cfg, source, out_dir, int(cfg.seed))
    log.info("trained model written to %s", result.model_file)
    return result
