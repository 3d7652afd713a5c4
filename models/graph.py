"""Graph surgery for explanations: target-layer detection and the explanation graph.

``explanation_model`` turns a (multi-head) classifier into a ``keras.Model`` that returns,
for one input batch, the activation of the *target layer* (the last convolutional feature
map, as Grad-CAM needs it: Selvaraju et al., 2017, "Grad-CAM: Visual Explanations from Deep
Networks via Gradient-based Localization") and one pre-softmax score per head.  Explaining
the logit rather than the softmax probability avoids the gradient saturation of a confident
softmax (Simonyan et al., 2014, "Deep Inside Convolutional Networks", section 2).

Works for flat functional models, Sequential models and target layers inside nested
sub-models (``"efficientnetb0/top_activation"``): the outer graph is then re-wired around a
copy of the sub-model that also returns the target activation (weights are shared, nothing
is copied).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import keras
from keras import ops

from core.errors import ModelError

log = logging.getLogger(__name__)

FEATURES_KEY = "features"
SCORE_LOGIT = "logit"
SCORE_PROBABILITY = "probability"

# Layers whose 4-D output is *not* a useful Grad-CAM target: they only move, drop, pad or
# rescale an existing feature map (VGG16's block5_pool follows block5_conv3, the wanted one).
_NOT_FEATURE_LAYERS: tuple[type, ...] = (
    keras.layers.InputLayer,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling3D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
    keras.layers.Reshape,
    keras.layers.Flatten,
    keras.layers.Permute,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
    keras.layers.UpSampling2D,
    keras.layers.Normalization,
    keras.layers.Rescaling,
    keras.layers.Resizing,
    keras.layers.Identity,
)


@dataclass
class ExplanationGraph:
    """A model mapping inputs to ``{"features": (B,h,w,c), <head>: (B, n_classes)}``.

    ``score_kind[head]`` is ``"logit"`` when the pre-softmax value was reachable and
    ``"probability"`` otherwise.  ``target_layer`` / ``feature_shape`` are ``None`` when the
    graph was built without features.
    """

    model: keras.Model
    score_kind: dict[str, str]
    target_layer: str | None
    feature_shape: tuple[int, ...] | None
    heads: tuple[str, ...] = field(default_factory=tuple)

    @property
    def has_features(self) -> bool:
        return self.target_layer is not None


# --------------------------------------------------------------------------- helpers
def is_submodel(layer: object) -> bool:
    """True for a functional or Sequential model used as a layer of another model."""
    return isinstance(layer, keras.Model) and _graph_of(layer) is not None


def _graph_of(model: keras.Model):
    """The object holding the node graph: the model itself, or a Sequential's functional."""
    if hasattr(model, "_nodes_by_depth"):
        return model
    functional = getattr(model, "_functional", None)
    if functional is not None and hasattr(functional, "_nodes_by_depth"):
        return functional
    return None


def _require_graph(model: keras.Model, source: str | None):
    graph = _graph_of(model)
    if graph is None:
        raise ModelError(
            source,
            f"model '{model.name}' is a subclassed (non-functional) model; its layers cannot be "
            "reached for explanations: save it as a functional or Sequential Keras model",
        )
    return graph


def _nodes(graph) -> list:
    """The graph's nodes, nearest to the outputs first (Keras depth 0 = outputs)."""
    result = []
    for depth in sorted(graph._nodes_by_depth):
        result.extend(graph._nodes_by_depth[depth])
    return result


def _single(tensors):
    flat = keras.tree.flatten(tensors)
    return flat[0] if len(flat) == 1 else flat


def output_names(model: keras.Model) -> list[str]:
    """Names of the model's flattened outputs (dict keys, else the producing layers' names)."""
    struct = getattr(model, "_outputs_struct", None)
    if isinstance(struct, dict):
        return [str(path[0]) for path, _ in keras.tree.flatten_with_path(struct)]
    names = getattr(model, "output_names", None)
    if names:
        return [str(name) for name in names]
    return [tensor._keras_history.operation.name for tensor in model.outputs]


def _producer(tensor) -> tuple[object, object]:
    """(operation, node) that produced a KerasTensor."""
    history = tensor._keras_history
    operation = history.operation
    return operation, operation._inbound_nodes[history.node_index]


def _is_rank4(tensor) -> bool:
    return len(tensor.shape) == 4


def _is_feature_layer(operation: object, node: object) -> bool:
    if not isinstance(operation, keras.layers.Layer) or isinstance(operation, _NOT_FEATURE_LAYERS):
        return False
    if type(operation).__name__.startswith("Random"):  # augmentation layers
        return False
    outputs = keras.tree.flatten(node.outputs)
    return len(outputs) == 1 and _is_rank4(outputs[0])


def _all_layer_paths(model: keras.Model, prefix: str = "") -> list[str]:
    paths = []
    for layer in model.layers:
        paths.append(prefix + layer.name)
        if is_submodel(layer):
            paths.extend(_all_layer_paths(layer, prefix + layer.name + "/"))
    return paths


def _four_d_paths(model: keras.Model, prefix: str = "") -> list[str]:
    graph = _graph_of(model)
    if graph is None:
        return []
    paths = []
    for node in reversed(_nodes(graph)):
        operation = node.operation
        if operation is None or node.is_input:
            continue
        if is_submodel(operation):
            paths.extend(_four_d_paths(operation, prefix + operation.name + "/"))
        elif _is_feature_layer(operation, node):
            paths.append(prefix + operation.name)
    return paths


# --------------------------------------------------------------------------- target layer
def _find_in(model: keras.Model, prefix: str) -> str | None:
    graph = _graph_of(model)
    if graph is None:
        return None
    for node in _nodes(graph):
        operation = node.operation
        if operation is None or node.is_input:
            continue
        if is_submodel(operation):
            found = _find_in(operation, prefix + operation.name + "/")
            if found is not None:
                return found
        elif _is_feature_layer(operation, node):
            return prefix + operation.name
    return None


def find_target_layer(model: keras.Model, source: str | None = None) -> str:
    """Auto-detect the Grad-CAM target: the last 4-D feature map that feeds the heads.

    Walks the graph backwards from the outputs and returns the first layer with a 4-D output
    that is not a pooling, dropout, padding, reshape or preprocessing layer (so
    ``block5_conv3`` in VGG16 and ``top_activation`` in EfficientNet-B0).  Nested sub-models
    are searched too and give a path ``"<sub-model>/<layer>"``.
    """
    found = _find_in(model, "")
    if found is None:
        raise ModelError(
            source,
            f"model '{model.name}' has no 4-D feature map (no reachable convolutional layer) to "
            "use as Grad-CAM target layer; use a gradient method (saliency) instead",
        )
    log.debug("auto-detected target layer %s in model %s", found, model.name)
    return found


def resolve_layer_path(model: keras.Model, path: str, source: str | None = None) -> list[keras.layers.Layer]:
    """The chain of layers ``[sub-model, ..., layer]`` named by ``"a/b/layer"``."""
    chain: list[keras.layers.Layer] = []
    current = model
    parts = [part for part in str(path).split("/") if part]
    if len(parts) == 1 and parts[0] not in {layer.name for layer in model.layers}:
        # a bare name of a layer inside a nested backbone ("block5_conv3" in "vgg16/block5_conv3")
        nested = [p for p in _all_layer_paths(model) if p.rsplit("/", 1)[-1] == parts[0]]
        if len(nested) == 1:
            parts = nested[0].split("/")
    for position, part in enumerate(parts):
        try:
            layer = current.get_layer(part)
        except ValueError:
            layer = None
        is_last = position == len(parts) - 1
        if layer is None or (not is_last and not is_submodel(layer)):
            candidates = _all_layer_paths(model)
            close = difflib.get_close_matches(str(path), candidates, n=5, cutoff=0.5)
            if not close:
                close = _four_d_paths(model)[-5:]
            hint = f"close candidates: {', '.join(close)}" if close else "the model has no 4-D layers"
            raise ModelError(
                source,
                f"target layer '{path}' (model.target_layer) not found in model '{model.name}'; {hint}",
            )
        chain.append(layer)
        current = layer
    if not chain:
        raise ModelError(source, f"empty target layer name '{path}'")
    return chain


# --------------------------------------------------------------------------- re-wiring
def _outputs_of_layer_in(graph, layer: keras.layers.Layer):
    """The output tensor(s) of ``layer``'s call that belongs to ``graph``."""
    for node in _nodes(graph):
        if node.operation is layer:
            return _single(node.outputs)
    return layer.output


def _features_model(model: keras.Model, parts: Sequence[str], source: str | None) -> keras.Model:
    """``model.inputs -> [features, *model.outputs]`` for a (possibly nested) layer path."""
    graph = _require_graph(model, source)
    inputs = _single(model.inputs)
    if len(parts) == 1:
        features = _outputs_of_layer_in(graph, model.get_layer(parts[0]))
        return keras.Model(inputs, [features, *model.outputs], name=f"{model.name}_with_features")
    tensor_of, features = _rewire(model, parts, source)
    return keras.Model(inputs, [features, *[tensor_of(t) for t in model.outputs]], name=f"{model.name}_with_features")


def _rewire(model: keras.Model, parts: Sequence[str], source: str | None):
    """Re-run ``model``'s graph with the sub-model ``parts[0]`` replaced by a copy that also
    returns the activation of ``parts[1:]``; returns (old tensor -> new tensor, features)."""
    graph = _require_graph(model, source)
    sub = model.get_layer(parts[0])
    inner = _features_model(sub, parts[1:], source)
    tensors: dict[int, object] = {id(x): x for x in graph.inputs}
    captured: list[object] = []
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            if not node.operation or node.is_input:
                continue
            if any(id(x) not in tensors for x in node.input_tensors):
                continue
            args, kwargs = node.arguments.fill_in(tensors)
            if node.operation is sub:
                if captured:
                    raise ModelError(
                        source,
                        f"sub-model '{sub.name}' is called more than once in '{model.name}'; "
                        "its inner target layer is ambiguous",
                    )
                produced = keras.tree.flatten(inner(*args, **kwargs))
                captured.append(produced[0])
                outputs = produced[1:]
            else:
                outputs = keras.tree.flatten(node.operation(*args, **kwargs))
            for old, new in zip(keras.tree.flatten(node.outputs), outputs):
                tensors[id(old)] = new
    if not captured:
        raise ModelError(source, f"sub-model '{sub.name}' is not connected to the outputs of '{model.name}'")

    def tensor_of(old):
        try:
            return tensors[id(old)]
        except KeyError:
            raise ModelError(source, f"tensor {old.name} of '{model.name}' is not reachable") from None

    return tensor_of, captured[0]


# --------------------------------------------------------------------------- head scores
class DenseLogits(keras.layers.Layer):
    """The pre-activation ``x @ kernel + bias`` of an existing Dense layer (weights shared)."""

    def __init__(self, dense: keras.layers.Dense, **kwargs) -> None:
        super().__init__(name=kwargs.pop("name", f"{dense.name}_logits_view"), **kwargs)
        self.dense = dense

    def call(self, inputs):
        logits = ops.matmul(inputs, ops.cast(self.dense.kernel, inputs.dtype))
        if self.dense.bias is not None:
            logits = logits + ops.cast(self.dense.bias, inputs.dtype)
        return logits

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.dense.units)


def _activation_name(layer: object) -> str | None:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    return getattr(activation, "__name__", type(activation).__name__).lower()


def output_activation(model: keras.Model, output_name: str) -> str:
    """What a model output is: ``"softmax"``, ``"linear"`` (logits) or ``"unknown"``."""
    names = output_names(model)
    if output_name not in names:
        return "unknown"
    operation, node = _producer(model.outputs[names.index(output_name)])
    while isinstance(operation, keras.layers.Identity) or (
        isinstance(operation, keras.layers.Activation) and _activation_name(operation) == "linear"
    ):
        operation, node = _producer(node.input_tensors[0])
    if isinstance(operation, keras.layers.Softmax):
        return "softmax"
    if isinstance(operation, (keras.layers.Dense, keras.layers.Activation)):
        name = _activation_name(operation)
        if name in ("softmax", "linear"):
            return name
    return "unknown"


def _head_score(
    model: keras.Model,
    head: str,
    output_name: str,
    output_tensor,
    tensor_of: Callable,
) -> tuple[object, str]:
    """(score tensor, kind) for one head, the pre-softmax logit whenever reachable."""
    for logits_name in dict.fromkeys((f"{output_name}_logits", f"{head}_logits")):
        try:
            layer = model.get_layer(logits_name)
        except ValueError:
            continue
        graph = _graph_of(model)
        return tensor_of(_outputs_of_layer_in(graph, layer)), SCORE_LOGIT
    operation, node = _producer(output_tensor)
    if isinstance(operation, keras.layers.Softmax) or (
        isinstance(operation, keras.layers.Activation) and _activation_name(operation) == "softmax"
    ):
        return tensor_of(node.input_tensors[0]), SCORE_LOGIT
    if isinstance(operation, keras.layers.Dense):
        name = _activation_name(operation)
        if name == "softmax":
            return DenseLogits(operation)(tensor_of(node.input_tensors[0])), SCORE_LOGIT
        if name == "linear":
            return tensor_of(output_tensor), SCORE_LOGIT
    log.info("head %s of model %s: pre-softmax score not reachable, explaining the probability", head, model.name)
    return tensor_of(output_tensor), SCORE_PROBABILITY


def _as_float32(tensor):
    return tensor if tensor.dtype == "float32" else ops.cast(tensor, "float32")


def resolve_head_outputs(
    model: keras.Model,
    heads: Sequence[str],
    head_outputs: Mapping[str, str | int] | None,
    source: str | None = None,
) -> dict[str, int]:
    """head -> index of the model's flattened outputs (by output name, or an explicit index)."""
    names = output_names(model)
    mapping = dict(head_outputs) if head_outputs else {head: head for head in heads}
    resolved: dict[str, int] = {}
    for head in heads:
        if head not in mapping:
            raise ModelError(source, f"no output configured for head '{head}' (model.heads)")
        target = mapping[head]
        if isinstance(target, int) and not isinstance(target, bool):
            if not 0 <= target < len(names):
                raise ModelError(
                    source,
                    f"head '{head}': output index {target} out of range (the model has {len(names)} outputs)",
                )
            resolved[head] = target
        elif str(target) in names:
            resolved[head] = names.index(str(target))
        else:
            raise ModelError(
                source,
                f"head '{head}': model '{model.name}' has no output named '{target}' (outputs: "
                f"{', '.join(names)}); set model.heads or model.head_order",
            )
    return resolved


def explanation_model(
    model: keras.Model,
    heads: Sequence[str] = ("magnitude", "azimuth"),
    target_layer: str | None = None,
    head_outputs: Mapping[str, str | int] | None = None,
    with_features: bool = True,
    source: str | None = None,
) -> ExplanationGraph:
    """Build the explanation graph ``inputs -> {"features", <head>: score}``.

    ``target_layer``: a layer name or nested path (``"backbone/top_activation"``); ``None``
    auto-detects it with :func:`find_target_layer` unless ``with_features=False``.
    ``head_outputs``: head -> output name or output index (default: the head's own name).
    Scores are logits when reachable (a ``<head>_logits`` layer, the input of a softmax
    ``Activation``/``Softmax`` layer, or a softmax ``Dense`` re-evaluated without its
    activation), else the probabilities; ``score_kind`` says which.
    """
    heads = tuple(heads)
    graph = _require_graph(model, source)
    indices = resolve_head_outputs(model, heads, head_outputs, source)
    names = output_names(model)

    features = None
    path: str | None = None

    def tensor_of(tensor):
        return tensor

    if with_features or target_layer is not None:
        path = find_target_layer(model, source) if target_layer is None else str(target_layer)
        chain = resolve_layer_path(model, path, source)
        path = "/".join(layer.name for layer in chain)
        if len(chain) == 1:
            features = _outputs_of_layer_in(graph, chain[0])
        else:
            tensor_of, features = _rewire(model, [layer.name for layer in chain], source)
        if isinstance(features, (list, tuple)) or not _is_rank4(features):
            shape = [tuple(t.shape) for t in features] if isinstance(features, (list, tuple)) else tuple(features.shape)
            raise ModelError(source, f"target layer '{path}' output has shape {shape}, not a 4-D feature map (B,h,w,c)")

    outputs: dict[str, object] = {}
    score_kind: dict[str, str] = {}
    if features is not None:
        outputs[FEATURES_KEY] = _as_float32(features)
    for head in heads:
        index = indices[head]
        score, kind = _head_score(model, head, names[index], model.outputs[index], tensor_of)
        if len(score.shape) != 2:
            raise ModelError(source, f"head '{head}' output has shape {tuple(score.shape)}, expected (B, n)")
        outputs[head] = _as_float32(score)
        score_kind[head] = kind

    inputs = _single(model.inputs)
    explanation = keras.Model(inputs, outputs, name=f"{model.name}_explanation")
    feature_shape = (
        tuple(int(d) if d is not None else None for d in features.shape[1:]) if features is not None else None
    )
    log.debug("explanation graph for %s: target=%s scores=%s", model.name, path, score_kind)
    return ExplanationGraph(
        model=explanation,
        score_kind=score_kind,
        target_layer=path if features is not None else None,
        feature_shape=feature_shape,
        heads=heads,
    )
