"""Model-parameter randomisation tests (Adebayo et al., 2018, "Sanity Checks for Saliency Maps").

Cascading randomisation re-draws the learned weights from the output towards the input, group
after group, and compares each step's maps with the original maps by Spearman rank correlation:
a method that explains the *model* must change its maps once the weights are gone (correlation
near 0), one that merely reproduces the input (an edge detector) keeps them.  The random-logit
test (Adebayo et al., 2018; Sixt, Granz & Landgraf, 2020, "When Explanations Lie: Why Many
Modified BP Attributions Fail") compares the maps of the explained class with those of another
class: class-insensitive maps correlate highly.

Weights are changed **in place** (``variable.assign``), so compiled explainers that captured the
model's variables (e.g. :class:`xai.explainers.gradcam.GradCAM`) see the randomised model without
retracing, and :func:`randomised_weights` restores the exact original values on exit.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras
import numpy as np

from core.errors import ConfigError, InputDataError, ModelError
from models.graph import is_submodel, resolve_layer_path
from xai.similarity import spearman

log = logging.getLogger(__name__)

__all__ = [
    "cascading_randomisation",
    "learned_variables",
    "random_logit_draws",
    "random_logit_test",
    "randomisation_steps",
    "randomised_weights",
]

Explain = Callable[[np.ndarray, np.ndarray], np.ndarray]
_MOVING_STATISTICS = ("moving_mean", "moving_variance")


def _keras_model(model: Any) -> keras.Model:
    """The ``keras.Model`` of a model or a ``ModelBundle``."""
    if isinstance(model, keras.Model):
        return model
    inner = getattr(model, "model", None)
    if isinstance(inner, keras.Model):
        return inner
    raise ModelError(None, f"expected a keras.Model or a model bundle, got {type(model).__name__}")


def _is_preprocessing(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, (keras.layers.Normalization, keras.layers.Rescaling)) or ".preprocessing." in (
        type(layer).__module__ or ""
    )


def learned_variables(layer: keras.layers.Layer) -> list:
    """The variables of ``layer`` that training learns (what randomisation re-draws).

    The variables Keras marks trainable; for a layer frozen with ``layer.trainable = False``
    (which marks all its variables non-trainable) its floating-point variables.  Never the
    moving statistics of BatchNormalization, nor anything of a preprocessing layer
    (``Normalization``, ``Rescaling``: fixed data statistics, not learned weights).
    """
    if _is_preprocessing(layer) or is_submodel(layer):
        return []
    chosen = []
    for variable in layer.weights:
        name = str(variable.path).rsplit("/", 1)[-1]
        if name in _MOVING_STATISTICS or not keras.backend.is_float_dtype(variable.dtype):
            continue
        if variable.trainable or not layer.trainable:
            chosen.append(variable)
    return chosen


def _ancestors(tensor: Any) -> set[int]:
    """Ids of the operations (layers, sub-models) that ``tensor`` depends on."""
    seen: set[int] = set()
    stack, visited = [tensor], set()
    while stack:
        current = stack.pop()
        if id(current) in visited:
            continue
        visited.add(id(current))
        history = getattr(current, "_keras_history", None)
        if history is None:
            continue
        operation = history.operation
        seen.add(id(operation))
        stack.extend(keras.tree.flatten(operation._inbound_nodes[history.node_index].input_tensors))
    return seen


def _units(model: keras.Model, prefix: str = "") -> list[tuple[str, keras.layers.Layer]]:
    """``(path, layer)`` of every layer with learned weights, output side first (nested models expanded)."""
    units = []
    for layer in reversed(model.layers):  # functional layers are in topological order
        if is_submodel(layer):
            units.extend((path, inner) for path, inner in _units(layer, f"{prefix}{layer.name}/"))
        elif learned_variables(layer):
            units.append((prefix + layer.name, layer))
    return units


def randomisation_steps(model: Any, max_steps: int = 6) -> list[list[str]]:
    """Layers with learned weights, output to input, in at most ``max_steps`` consecutive groups.

    Group 1 holds the heads' own layers (those feeding only some of the model's outputs; with a
    single output, the last layer with weights); the remaining layers, ordered towards the input
    (cascading randomisation, Adebayo et al., 2018), are split into ``max_steps - 1`` groups of
    nearly equal size (one layer per group when there are few enough).  Names are layer paths
    (``"backbone/block5_conv3"`` inside a nested model).  Layers without learned weights
    (pooling, activations, ``Normalization`` preprocessing) are skipped.
    """
    keras_model = _keras_model(model)
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ConfigError(f"randomisation max_steps must be a positive integer, got {max_steps!r}")
    if not hasattr(keras_model, "_nodes_by_depth") and getattr(keras_model, "_functional", None) is None:
        raise ModelError(None, f"model '{keras_model.name}' is subclassed: its layers have no order to randomise")
    per_output = [_ancestors(tensor) for tensor in keras_model.outputs]
    connected = set().union(*per_output)
    shared = set.intersection(*per_output)
    top_level = {}
    for layer in keras_model.layers:
        for path, inner in _units(layer, f"{layer.name}/") if is_submodel(layer) else [(layer.name, layer)]:
            top_level[path] = (layer, inner)
    units = [path for path, _ in _units(keras_model) if id(top_level[path][0]) in connected]
    if not units:
        raise ModelError(None, f"model '{keras_model.name}' has no layers with learned weights to randomise")
    heads = [path for path in units if len(per_output) > 1 and id(top_level[path][0]) not in shared] or units[:1]
    rest = [path for path in units if path not in heads]
    if max_steps == 1 or not rest:
        return [heads + rest]
    groups = np.array_split(np.arange(len(rest)), min(max_steps - 1, len(rest)))
    return [heads] + [[rest[i] for i in group] for group in groups]


def _layer(model: keras.Model, path: str) -> keras.layers.Layer:
    return resolve_layer_path(model, path)[-1]


def _redrawn(variable: Any, original: np.ndarray, seed: int) -> np.ndarray:
    """A random value of the original's scale for one variable (see :func:`randomised_weights`)."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(str(variable.path).encode())])
    if original.ndim >= 2:  # kernels: zero mean, the kernel's spread (Glorot's when it was all equal)
        std = float(original.std())
        if std == 0.0:
            fan_in, fan_out = int(np.prod(original.shape[:-1])), int(original.shape[-1])
            std = float(np.sqrt(2.0 / (fan_in + fan_out)))
        values = rng.normal(0.0, std, size=original.shape)
    else:  # biases, BatchNorm gamma/beta, scalars: the original's mean and spread
        values = rng.normal(float(original.mean()), float(original.std()), size=original.shape)
    return values.astype(original.dtype)


@contextlib.contextmanager
def randomised_weights(model: Any, layer_names: Sequence[str], seed: int = 0) -> Iterator[list[str]]:
    """Re-draw the learned weights of ``layer_names`` in place; restore the exact originals on exit.

    Kernels (2-D and more) are drawn from ``N(0, s^2)`` with ``s`` the original kernel's standard
    deviation (Glorot's ``sqrt(2 / (fan_in + fan_out))`` for a constant kernel); biases,
    BatchNormalization ``gamma``/``beta`` and other 1-D/scalar variables from ``N(m, s^2)`` with
    the original's mean and standard deviation, so scales stay realistic while the learned pattern
    is gone (a zero-initialised bias stays 0).  BatchNormalization moving statistics are kept: they
    are data statistics, and re-drawing them would mostly rescale activations.  Each variable's
    draw depends only on ``seed`` and its path, so randomising groups one after another gives the
    same weights as randomising their union at once.  Yields the variable paths changed.
    """
    keras_model = _keras_model(model)
    variables = []
    for name in layer_names:
        layer = _layer(keras_model, str(name))
        found = learned_variables(layer)
        if not found:
            raise ConfigError(f"layer '{name}' has no learned weights to randomise")
        variables.extend(found)
    originals = [np.array(variable.numpy(), copy=True) for variable in variables]
    try:
        for variable, original in zip(variables, originals):
            variable.assign(_redrawn(variable, original, seed))
        log.debug("randomised %d variables of %d layers", len(variables), len(layer_names))
        yield [str(variable.path) for variable in variables]
    finally:
        for variable, original in zip(variables, originals):
            variable.assign(original)


def _per_sample_spearman(reference: np.ndarray, maps: np.ndarray) -> np.ndarray:
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(maps, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ModelError(None, f"explain returned maps of shapes {a.shape} and {b.shape}, expected equal (B, h, w)")
    return np.array([np.nan if (rho := spearman(x, y)) is None else rho for x, y in zip(a, b)], dtype=np.float64)


def cascading_randomisation(
    model: Any,
    explain: Explain,
    inputs: np.ndarray,
    class_indices: np.ndarray,
    max_steps: int = 6,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Cascading model-parameter randomisation (Adebayo et al., 2018).

    ``explain(inputs, class_indices) -> (B, h, w)`` maps of the model (it must use ``model``'s
    variables, e.g. a closure over an explainer of it).  For ``k = 1..n`` groups of
    :func:`randomisation_steps` the groups ``1..k`` are randomised together and the maps compared
    with the original maps.  Returns per step ``{'layers': cumulative layer paths, 'label': 'up to
    <layer>', 'spearman': (B,) float, NaN where undefined (a constant map)}``.  The weights are
    restored afterwards, also after an error.  ``class_indices`` are fixed (the classes explained
    on the original model), so every step explains the same class.
    """
    keras_model = _keras_model(model)
    classes = np.asarray(class_indices)
    reference = np.asarray(explain(inputs, classes))
    steps = []
    cumulative: list[str] = []
    with contextlib.ExitStack() as stack:
        for group in randomisation_steps(keras_model, max_steps):
            stack.enter_context(randomised_weights(keras_model, group, seed))
            cumulative = cumulative + list(group)
            rho = _per_sample_spearman(reference, explain(inputs, classes))
            steps.append({"layers": cumulative, "label": f"up to {cumulative[-1]}", "spearman": rho})
            finite = rho[np.isfinite(rho)]
            log.debug("randomised up to %s: mean Spearman %s", cumulative[-1], finite.mean() if finite.size else "n/a")
    return steps


def random_logit_test(
    explain: Explain,
    inputs: np.ndarray,
    class_indices: np.ndarray,
    n_classes: int,
    seed: int = 0,
) -> np.ndarray:
    """Spearman between the maps of the explained class and of a random other class, ``(B,)`` (NaN if undefined).

    (Adebayo et al., 2018; Sixt et al., 2020.)  The other class is drawn uniformly among the
    ``n_classes - 1`` classes that differ from each sample's ``class_indices``.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise ConfigError(f"the random-logit test needs at least 2 classes, got n_classes={n_classes!r}")
    classes = np.asarray(class_indices)
    if classes.ndim != 1 or not np.issubdtype(classes.dtype, np.integer):
        raise InputDataError(None, f"class_indices must be (B,) integers, got {classes.dtype} {classes.shape}")
    if ((classes < 0) | (classes >= n_classes)).any():
        raise ConfigError(f"class indices must lie in 0..{n_classes - 1}, got {classes.tolist()}")
    draw = np.random.default_rng(seed).integers(0, n_classes - 1, size=classes.shape)
    others = (draw + (draw >= classes)).astype(classes.dtype)
    return _per_sample_spearman(explain(inputs, classes), explain(inputs, others))


def random_logit_draws(
    explain: Explain,
    inputs: np.ndarray,
    class_indices: np.ndarray,
    n_classes: int,
    draws: int = 3,
    seed: int = 0,
) -> np.ndarray:
    """Spearman between the maps of the explained class and of ``k`` different other classes, ``(B, k)``.

    The random-logit test of :func:`random_logit_test` with ``k = min(draws, n_classes - 1)`` draws
    per sample, each a different class (without replacement, uniformly among the classes that differ
    from the sample's ``class_indices``): averaging over draws removes the luck of which other class
    was drawn, at one more explanation of the batch per draw.  ``draws >= n_classes - 1`` compares
    with every other class.  NaN where a correlation is undefined.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise ConfigError(f"the random-logit test needs at least 2 classes, got n_classes={n_classes!r}")
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ConfigError(f"random-logit draws must be a positive integer, got {draws!r}")
    classes = np.asarray(class_indices)
    if classes.ndim != 1 or not np.issubdtype(classes.dtype, np.integer):
        raise InputDataError(None, f"class_indices must be (B,) integers, got {classes.dtype} {classes.shape}")
    if ((classes < 0) | (classes >= n_classes)).any():
        raise ConfigError(f"class indices must lie in 0..{n_classes - 1}, got {classes.tolist()}")
    k = min(int(draws), n_classes - 1)
    rng = np.random.default_rng(seed)
    # per sample a random permutation of 0..n-2, mapped past the sample's own class
    order = np.argsort(rng.random((len(classes), n_classes - 1)), axis=1)[:, :k]
    others = (order + (order >= classes[:, None])).astype(classes.dtype)
    reference = explain(inputs, classes)
    return np.stack([_per_sample_spearman(reference, explain(inputs, others[:, d])) for d in range(k)], axis=1)
