"""Loading users' models into a :class:`ModelBundle` (model + class mappings + heads + input set-up).

Supported files: Keras 3 ``.keras`` archives (loaded with ``safe_mode`` kept on unless the user
opts out for a trusted file), legacy ``.h5``/``.hdf5`` full models, and TensorFlow SavedModel
folders.  Keras 3 can only run a SavedModel as an opaque ``keras.layers.TFSMLayer``: it is
wrapped in a functional model whose outputs are named after the serving signature's outputs, so
gradient methods (saliency) work, but no convolutional layer is reachable and Grad-CAM raises a
:class:`~core.errors.ModelError`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from core.errors import ConfigError, InputDataError, ModelError
from core.text import first_line
from geomag.dataset import HEADS, ClassMappings
from models.graph import (
    ExplanationGraph,
    explanation_model,
    find_target_layer,
    output_activation,
    output_names,
    resolve_layer_path,
)
from models.identity import file_stem, model_name

log = logging.getLogger(__name__)

PREPROCESSING_MODES = ("none", "imagenet_caffe", "imagenet_torch", "scale_0_1", "scale_minus1_1")
_IMAGENET_MEAN_RGB = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def apply_preprocessing(images: np.ndarray, mode: str, source: str | None = None) -> np.ndarray:
    """The ImageNet-style input scaling a user's model was trained with.

    ``none``: unchanged; the other modes expect 0-255 pixel values (as ``keras.applications``):
    ``scale_0_1`` x/255, ``scale_minus1_1`` x/127.5-1 ("tf" mode), ``imagenet_torch`` x/255 then
    per-channel ImageNet mean/std, ``imagenet_caffe`` RGB->BGR then ImageNet mean subtraction.
    """
    x = np.asarray(images, dtype=np.float32)
    if mode == "none":
        return x
    if mode == "scale_0_1":
        return x / 255.0
    if mode == "scale_minus1_1":
        return x / 127.5 - 1.0
    if mode in ("imagenet_torch", "imagenet_caffe"):
        if x.shape[-1] != 3:
            raise ConfigError(f"model.preprocessing: {mode} needs 3-channel RGB inputs, got {x.shape[-1]} channels")
        if mode == "imagenet_torch":
            return (x / 255.0 - _IMAGENET_MEAN_RGB) / _IMAGENET_STD_RGB
        return x[..., ::-1] - _CAFFE_MEAN_BGR
    raise ConfigError(
        f"model.preprocessing: unknown mode {mode!r}" + (f" for {source}" if source else "")
        + f"; choose one of {', '.join(PREPROCESSING_MODES)}"
    )  # fmt: skip


def _softmax(values: np.ndarray) -> np.ndarray:
    z = values.astype(np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class HeadOutputs:
    """Which model output is which head (``model.heads`` / ``model.head_order``): by output (or
    output layer) name first, else by position in the model's outputs."""

    names: Mapping[str, str] | None = None  # head -> output name; None: the head's own name
    order: Sequence[str] | None = None  # head names in output order, e.g. ["magnitude", "azimuth"]

    @classmethod
    def of(cls, heads: HeadOutputs | Mapping[str, str] | None) -> HeadOutputs:
        """``heads`` as :class:`HeadOutputs`; a plain mapping is ``names`` (head -> output name)."""
        if isinstance(heads, HeadOutputs):
            return heads
        return cls(names=None if heads is None else {str(k): str(v) for k, v in heads.items()})


@dataclass
class ModelBundle:
    """A classifier ready for explanation: model, class names per head and input set-up."""

    model: keras.Model
    name: str
    class_mappings: ClassMappings
    heads: dict[str, str]  # head -> output name
    target_layer: str | None
    input_shape: tuple[int, int, int]
    preprocessing: str = "none"
    source_file: str | None = None
    head_activation: dict[str, str] = field(default_factory=dict)  # "softmax" | "linear" | "unknown"
    _graphs: dict[bool, ExplanationGraph] = field(default_factory=dict, repr=False)
    _logit_heads_reported: set[str] = field(default_factory=set, repr=False)
    _forward: object = field(default=None, repr=False)  # cached tf.function inference call

    # ------------------------------------------------------------------ inputs
    def prepare(self, grid_images: np.ndarray) -> np.ndarray:
        """Spectrogram-grid images ``(B, rows, cols, C)`` (or one ``(rows, cols, C)``) -> model inputs.

        Resizes to ``input_shape`` (bilinear, only when the size differs), checks the channels,
        then applies the configured ``preprocessing``.
        """
        x = np.asarray(grid_images, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4:
            raise InputDataError(None, f"grid images must be (B, rows, cols, C), got shape {x.shape}")
        height, width, channels = self.input_shape
        if x.shape[-1] != channels:
            raise InputDataError(
                None,
                f"grid images have {x.shape[-1]} channels but model '{self.name}' "
                f"({self.source_file or 'demo'}) expects {channels}",
            )
        if not np.isfinite(x).all():
            raise InputDataError(None, "grid images contain NaN or infinite values")
        if x.shape[1:3] != (height, width):
            import tensorflow as tf

            x = tf.image.resize(x, (height, width), method="bilinear").numpy().astype(np.float32)
        return apply_preprocessing(x, self.preprocessing, self.source_file)

    # ------------------------------------------------------------------ prediction
    def _output_index(self, head: str) -> int:
        return output_names(self.model).index(self.heads[head])

    def _compiled_forward(self):
        """The model's inference call as a ``tf.function`` over any batch size, traced on first use."""
        if self._forward is None:
            import tensorflow as tf

            model = self.model
            spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
            self._forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        return self._forward

    def predict_probabilities(self, inputs: np.ndarray, batch_size: int = 32) -> dict[str, np.ndarray]:
        """Class probabilities per head ``{head: (B, n_classes)}`` for prepared inputs.

        One batch goes through a cached ``tf.function`` (traced once for any batch size: about 2x faster
        than an eager call on EfficientNet-B0); more go through ``model.predict`` (compiled, batched).

        A head that outputs logits (linear output layer, or rows that are not probability
        distributions) is passed through a softmax, and this is logged once.
        """
        x = np.asarray(inputs, dtype=np.float32)
        if len(x) <= batch_size:  # one batch: the cached compiled call
            outputs = self._compiled_forward()(x)
        else:  # several batches: Keras' compiled, batched predict loop
            from models.pipeline import keras_batches

            batches = keras_batches(x, batch_size=batch_size)  # no tf.data autotuning: no teardown stall
            if batches is None:
                outputs = self.model.predict(x, batch_size=batch_size, verbose=0)
            else:
                outputs = self.model.predict(batches, verbose=0)
        raw = [np.asarray(values) for values in keras.tree.flatten(outputs)]
        result: dict[str, np.ndarray] = {}
        for head in self.heads:
            values = np.asarray(raw[self._output_index(head)], dtype=np.float32)
            if not np.isfinite(values).all():
                raise ModelError(self.source_file, f"model '{self.name}' produced non-finite outputs for head '{head}'")
            activation = self.head_activation.get(head, "unknown")
            is_distribution = bool((values >= -1e-6).all() and np.allclose(values.sum(axis=-1), 1.0, atol=1e-3))
            if activation == "linear" or (activation == "unknown" and not is_distribution):
                if head not in self._logit_heads_reported:
                    log.info(
                        "model %s head %s outputs logits (%s): applying softmax for probabilities",
                        self.name, head,
                        "linear output layer" if activation == "linear" else "rows are not distributions",
                    )  # fmt: skip
                    self._logit_heads_reported.add(head)
                values = _softmax(values)
            result[head] = values
        return result

    # ------------------------------------------------------------------ explanations
    def explanation_graph(self, with_features: bool = True) -> ExplanationGraph:
        """The (cached) :func:`models.graph.explanation_model` of this bundle.

        ``with_features=False`` builds the score-only graph that gradient methods need; it also
        works for models without a reachable convolutional layer (SavedModel folders).
        """
        if with_features not in self._graphs:
            self._graphs[with_features] = explanation_model(
                self.model,
                heads=tuple(self.heads),
                target_layer=self.target_layer if with_features else None,
                head_outputs=self.heads,
                with_features=with_features,
                source=self.source_file,
            )
        return self._graphs[with_features]

    def classes(self, head: str) -> list[str]:
        return self.class_mappings.classes(head)


# --------------------------------------------------------------------------- reading files
def _load_keras_file(path: Path, safe_mode: bool) -> keras.Model:
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=bool(safe_mode))
    except Exception as error:
        message = str(error)
        if "safe_mode" in message or "unsafe" in message.lower() or "lambda" in message.lower():
            raise ModelError(
                path,
                "the model contains a Lambda layer (Python code) that loads only with unsafe "
                "deserialisation; set model.safe_mode=false only if you trust this file",
            ) from error
        if "Could not locate" in message or "Unknown layer" in message:
            problem = f"the model uses a custom class unknown here: {first_line(error)}"
            raise ModelError(path, problem) from error
        raise ModelError(path, f"not a loadable Keras model: {first_line(error)}") from error
    if not isinstance(model, keras.Model):
        raise ModelError(path, f"does not hold a Keras model (got {type(model).__name__})")
    return model


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _load_saved_model(path: Path, input_shape: Sequence[int] | None) -> keras.Model:
    """Wrap a TensorFlow SavedModel's serving signature as a functional Keras model."""
    try:
        layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
    except Exception as error:
        problem = f"not a loadable SavedModel (serving_default): {first_line(error)}"
        raise ModelError(path, problem) from error
    signature = layer._reloaded_obj.signatures["serving_default"]
    args, kwargs = signature.structured_input_signature
    specs = list(args) + list(kwargs.values())
    if len(specs) != 1:
        raise ModelError(path, f"SavedModel signature has {len(specs)} inputs; one image input is supported")
    spec = specs[0]
    shape = tuple(spec.shape[1:])
    if input_shape is not None:
        shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or any(v is None for v in shape):
        raise ConfigError(
            f"model.input_shape: SavedModel {path} takes input {tuple(spec.shape)}; set [height, width, channels]"
        )
    inputs = keras.Input(shape=shape, dtype=spec.dtype.name, name="spectrogram")
    raw = layer(inputs)
    if not isinstance(raw, Mapping):
        raw = {"output_0": raw}
    keys = sorted(raw, key=_natural_key)
    outputs = [keras.layers.Identity(name=str(key))(raw[key]) for key in keys]
    log.info("SavedModel %s wrapped as TFSMLayer; outputs %s (no convolutional layer reachable)", path, keys)
    return keras.Model(inputs, outputs, name=path.name or "saved_model")


def _read_model(path: Path, safe_mode: bool, input_shape: Sequence[int] | None) -> keras.Model:
    if not path.exists():
        raise ModelError(path, "model file not found (model.file)")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return _load_saved_model(path, input_shape)
        raise ModelError(path, "folder is not a TensorFlow SavedModel (no saved_model.pb)")
    name = path.name.lower()
    if name.endswith(".weights.h5"):
        raise ModelError(path, "holds only weights; give a full model (.keras, .h5 or SavedModel folder)")
    if path.suffix.lower() in (".keras", ".h5", ".hdf5"):
        return _load_keras_file(path, safe_mode)
    raise ModelError(path, "unsupported model file type; use .keras, .h5 or a SavedModel folder")


# --------------------------------------------------------------------------- bundles
def _as_mappings(class_mappings: ClassMappings | Mapping | str | os.PathLike | None) -> ClassMappings:
    if isinstance(class_mappings, ClassMappings):
        return class_mappings
    if class_mappings is None:
        raise ConfigError("model.class_mappings: the class mappings (class_mappings.json) are required")
    if isinstance(class_mappings, Mapping):
        return ClassMappings.from_dict(class_mappings)
    return ClassMappings.load(class_mappings)


def _resolve_heads(model: keras.Model, heads: HeadOutputs, source: str | None) -> dict[str, str]:
    """head -> canonical output name: by output (or output layer) name, else by ``heads.order``."""
    names = output_names(model)
    aliases = {name: index for index, name in enumerate(names)}
    for index, tensor in enumerate(model.outputs):
        aliases.setdefault(tensor._keras_history.operation.name, index)
    wanted = dict(heads.names) if heads.names else {head: head for head in HEADS}
    order = [str(h) for h in heads.order] if heads.order else None
    if order is not None:
        unknown = [h for h in order if h not in HEADS]
        if unknown or len(set(order)) != len(order):
            raise ConfigError(f"model.head_order: expected distinct head names from {list(HEADS)}, got {order}")
        if len(order) > len(names):
            raise ModelError(
                source, f"model.head_order lists {len(order)} heads but the model has {len(names)} outputs"
            )
    resolved: dict[str, str] = {}
    for head in HEADS:
        output = wanted.get(head, head)
        if output is not None and str(output) in aliases:
            resolved[head] = names[aliases[str(output)]]
        elif order is not None and head in order:
            resolved[head] = names[order.index(head)]
        else:
            raise ModelError(
                source,
                f"head '{head}': no output named '{output}' (outputs: {', '.join(names)}); "
                "set model.heads or model.head_order",
            )
    if len(set(resolved.values())) != len(resolved):
        raise ModelError(source, f"heads map to the same output: {resolved}")
    return resolved


def _model_input_shape(
    model: keras.Model, input_shape: Sequence[int] | None, source: str | None
) -> tuple[int, int, int]:
    if len(model.inputs) != 1:
        raise ModelError(source, f"model has {len(model.inputs)} inputs; one image input is supported")
    native = tuple(model.inputs[0].shape[1:])
    if len(native) != 3:
        raise ModelError(source, f"model input has shape {tuple(model.inputs[0].shape)}, expected (B, H, W, C)")
    if input_shape is None:
        if any(v is None for v in native):
            raise ConfigError(
                f"model.input_shape: the model {source} accepts variable sizes {native}; set [height, width, channels]"
            )
        return tuple(int(v) for v in native)  # type: ignore[return-value]
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or any(n is not None and n != s for n, s in zip(native, shape)):
        raise ModelError(source, f"configured input_shape {list(shape)} does not fit the model input {native}")
    return shape  # type: ignore[return-value]


def bundle_from_model(
    model: keras.Model,
    class_mappings: ClassMappings | Mapping | str | os.PathLike,
    name: str | None = None,
    heads: HeadOutputs | Mapping[str, str] | None = None,
    target_layer: str | None = None,
    input_shape: Sequence[int] | None = None,
    preprocessing: str = "none",
    source_file: str | os.PathLike | None = None,
) -> ModelBundle:
    """Validate an in-memory model against its class mappings and wrap it as a bundle.

    ``heads``: :class:`HeadOutputs`, or a mapping head -> output name; ``None``: outputs named
    after the heads."""
    source = None if source_file is None else str(source_file)
    mappings = _as_mappings(class_mappings)
    preprocessing = str(preprocessing or "none")
    if preprocessing not in PREPROCESSING_MODES:
        raise ConfigError(
            f"model.preprocessing: unknown mode {preprocessing!r}; choose one of {', '.join(PREPROCESSING_MODES)}"
        )
    shape = _model_input_shape(model, input_shape, source)
    resolved = _resolve_heads(model, HeadOutputs.of(heads), source)
    names = output_names(model)
    for head, output in resolved.items():
        tensor = model.outputs[names.index(output)]
        n_classes = len(mappings.classes(head))
        if len(tensor.shape) != 2:
            raise ModelError(
                source,
                f"head '{head}' (output '{output}') has shape {tuple(tensor.shape)}, expected (B, n)",
            )
        if tensor.shape[-1] != n_classes:
            raise ModelError(
                source,
                f"head '{head}' (output '{output}') has {tensor.shape[-1]} units but the class mappings "
                f"list {n_classes} {head} classes",
            )
    if target_layer:
        target = "/".join(layer.name for layer in resolve_layer_path(model, str(target_layer), source))
    else:
        try:
            target = find_target_layer(model, source)
        except ModelError as error:
            log.warning("%s; Grad-CAM is unavailable for this model", error)
            target = None
    bundle = ModelBundle(
        model=model,
        name=str(name or model.name),
        class_mappings=mappings,
        heads=resolved,
        target_layer=target,
        input_shape=shape,
        preprocessing=preprocessing,
        source_file=source,
        head_activation={head: output_activation(model, output) for head, output in resolved.items()},
    )
    log.info(
        "model %s (%s): input %s, heads %s, target layer %s, preprocessing %s",
        bundle.name, source or "in memory", shape, resolved, target, preprocessing,
    )  # fmt: skip
    return bundle


def load_model_bundle(
    file: str | os.PathLike,
    class_mappings: ClassMappings | Mapping | str | os.PathLike,
    name: str | None = None,
    heads: HeadOutputs | Mapping[str, str] | None = None,
    target_layer: str | None = None,
    input_shape: Sequence[int] | None = None,
    preprocessing: str = "none",
    safe_mode: bool = True,
) -> ModelBundle:
    """Load a ``.keras`` / ``.h5`` model or SavedModel folder and validate it (see module doc)."""
    if file is None or str(file).strip() == "":
        raise ConfigError("model.file: no model file given")
    path = Path(str(file)).expanduser()
    mappings = _as_mappings(class_mappings)
    model = _read_model(path, safe_mode, input_shape)
    return bundle_from_model(
        model,
        mappings,
        name=name or path.stem,
        heads=heads,
        target_layer=target_layer,
        input_shape=input_shape,
        preprocessing=preprocessing,
        source_file=path,
    )


def sibling_class_mappings(model_file: str | os.PathLike) -> Path:
    """``<stem>.class_mappings.json`` beside the model file, else ``class_mappings.json`` there
    (what ``task=train`` writes next to ``model.keras``); a :class:`ConfigError` naming both if neither exists."""
    path = Path(str(model_file)).expanduser()
    candidates = [path.parent / f"{file_stem(path)}.class_mappings.json", path.parent / "class_mappings.json"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"model.class_mappings: not set, and neither {candidates[0]} nor {candidates[1]} exists "
        f"beside model file {path}; set model.class_mappings=/path/class_mappings.json"
    )


def load_model_bundle_from_config(
    model_cfg: Mapping,
    file: str | os.PathLike | None = None,
    class_mappings: ClassMappings | Mapping | str | os.PathLike | None = None,
) -> ModelBundle:
    """:func:`load_model_bundle` from a ``cfg.model`` node; ``file``/``class_mappings`` fill in
    the config's ``null`` values (e.g. the demo checkpoint and its mappings).

    The bundle is named by :func:`models.identity.model_name` (``model.name``, else the file's
    stem, else the architecture). Without ``model.class_mappings`` the mappings beside the model
    file are used (:func:`sibling_class_mappings`), so a sweep over ``model.file=a.keras,b.keras``
    pairs each file with its own class order."""
    model_file = model_cfg.get("file") or file
    if model_file is None:
        raise ConfigError("model.file: no model file configured")
    mappings = model_cfg.get("class_mappings") or class_mappings or sibling_class_mappings(model_file)
    heads = model_cfg.get("heads")
    head_order = model_cfg.get("head_order")
    input_shape = model_cfg.get("input_shape")
    return load_model_bundle(
        model_file,
        mappings,
        name=model_name(model_cfg),
        heads=HeadOutputs(
            names=None if heads is None else {str(k): str(v) for k, v in dict(heads).items()},
            order=None if head_order is None else [str(h) for h in head_order],
        ),
        target_layer=model_cfg.get("target_layer"),
        input_shape=None if input_shape is None else [int(v) for v in input_shape],
        preprocessing=model_cfg.get("preprocessing", "none"),
        safe_mode=bool(model_cfg.get("safe_mode", True)),
    )
