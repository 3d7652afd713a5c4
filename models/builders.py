"""Multi-task (magnitude + azimuth) CNN builders, instantiated by Hydra from ``conf/model/*.yaml``.

Both builders produce the same structure, **flat** (the backbone's layers are layers of the
returned model, so ``block5_conv3`` / ``top_activation`` are reachable by name and Grad-CAM never
meets the nested-model "Graph disconnected" trap)::

    Input (H, W, C)
      -> Normalization(name="input_standardization")      per-channel standardisation
      -> backbone (VGG16: Simonyan & Zisserman, 2015; EfficientNet-B0: Tan & Le, 2019)
      -> GlobalAveragePooling2D -> Dense(dense_units, relu) -> Dropout          shared block
      -> Dense(n, name="<head>_logits") -> Activation("softmax", name="<head>")  per head

Outputs are a **list** ``[magnitude, azimuth]`` whose output names are ``"magnitude"`` and
``"azimuth"`` (so ``model.fit(x, {"magnitude": y_m, "azimuth": y_a})`` works and
``models.graph`` finds the ``<head>_logits`` layers for pre-softmax explanations).

EfficientNet preprocessing: ``keras.applications.EfficientNetB0`` starts with its own
``Rescaling(1/255)`` and ``Normalization`` (and, for ImageNet weights, a further per-channel
``Rescaling``) because it expects raw 0-255 RGB pixels.  Our inputs are already standardised by
``input_standardization``, so the backbone is always built with ``weights=None`` (no extra
rescaling layer) and its internal ``Rescaling`` is set to the identity (scale 1, offset 0) and its
internal ``Normalization`` left at mean 0 / variance 1.  Otherwise standardised inputs would be
divided by 255 a second time and the stem BatchNormalization would see activations far below its
epsilon.  Pre-trained weights (``"imagenet"`` or a weights file) are loaded into a stand-alone
backbone and copied layer by layer by name, skipping those preprocessing layers: the ImageNet stem
then receives zero-mean unit-variance inputs, which is what it saw after its own normalisation.
(VGG16's ImageNet weights expect "caffe" inputs of +-128 scale; fine-tuning adapts them.)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from core.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

INPUT_STANDARDIZATION = "input_standardization"
HEAD_NAMES = ("magnitude", "azimuth")
_PREPROCESSING_LAYERS = (keras.layers.Normalization, keras.layers.Rescaling)


@dataclass(frozen=True)
class HeadSpec:
    """The classification top (``model.builder.head``): class count per head, then the shared
    ``Dense(dense_units, relu) -> Dropout(dropout)`` block both heads read."""

    n_magnitude: int = 4
    n_azimuth: int = 9
    dense_units: int = 256
    dropout: float = 0.3


@dataclass(frozen=True)
class NormalizationSpec:
    """Per-channel input standardisation (``model.builder.normalization``): give both ``mean`` and
    ``variance``, or neither (then they are adapted from the training data)."""

    mean: Sequence[float] | None = None
    variance: Sequence[float] | None = None


# --------------------------------------------------------------------------- helpers
def _input_shape(value: Sequence[int], builder: str, min_size: int = 32) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"model.builder.input_shape: expected [height, width, channels], got {value!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"model.builder.input_shape: expected [height, width, channels], got {list(shape)}")
    if shape[0] < min_size or shape[1] < min_size:
        raise ConfigError(
            f"model.builder.input_shape: {builder} needs at least {min_size}x{min_size} pixels, got {list(shape)}"
        )
    return shape  # type: ignore[return-value]


def _positive_int(value: int, key: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ConfigError(f"model.builder.{key}: must be a positive integer, got {value!r}")
    return int(value)


def set_input_standardization(
    model: keras.Model,
    mean: Sequence[float] | np.ndarray,
    variance: Sequence[float] | np.ndarray,
) -> None:
    """Set the per-channel mean/variance of the model's ``input_standardization`` layer.

    Call it (or ``layer.adapt(data)``) *before* compiling/fitting: Keras folds the statistics
    into constants when a predict/train function is traced.
    """
    layer = model.get_layer(INPUT_STANDARDIZATION)
    channels = int(layer.adapt_mean.shape[-1])
    mean_arr = np.asarray(list(mean), dtype="float32").reshape(-1)
    var_arr = np.asarray(list(variance), dtype="float32").reshape(-1)
    if mean_arr.shape != (channels,) or var_arr.shape != (channels,):
        raise ConfigError(
            "model.builder.normalization.mean/variance: need one value per input channel "
            f"({channels}), got {mean_arr.size} and {var_arr.size}"
        )
    if not (np.isfinite(mean_arr).all() and np.isfinite(var_arr).all()) or (var_arr <= 0).any():
        raise ConfigError(
            f"model.builder.normalization.variance: must be finite and > 0, got mean {mean_arr.tolist()} "
            f"variance {var_arr.tolist()}"
        )
    layer.adapt_mean.assign(mean_arr)
    layer.adapt_variance.assign(var_arr)
    layer.finalize_state()


def _check_weights(weights: str | None) -> None:
    if weights is not None and weights != "imagenet" and not Path(str(weights)).expanduser().is_file():
        raise ModelError(weights, "backbone weights file not found (model.builder.weights)")


def _seed(seed: int | None) -> None:
    if seed is not None:
        keras.utils.set_random_seed(int(seed))  # the backbones' initialisers are unseeded


def _load_backbone_weights(
    model: keras.Model,
    backbone_fn: Callable[..., keras.Model],
    weights: str,
    input_shape: tuple[int, int, int],
) -> None:
    """Load ImageNet or file weights into a stand-alone backbone and copy them by layer name."""
    source = "imagenet" if weights == "imagenet" else str(Path(str(weights)).expanduser())
    try:
        reference = backbone_fn(include_top=False, weights=source, input_shape=input_shape)
    except Exception as error:  # Keras raises ValueError/OSError/KeyError with long messages
        raise ModelError(source, f"cannot load backbone weights: {str(error).splitlines()[0]}") from error
    copied = 0
    for layer in reference.layers:
        if not layer.weights or isinstance(layer, _PREPROCESSING_LAYERS):
            continue
        try:
            target = model.get_layer(layer.name)
        except ValueError:
            continue
        target.set_weights(layer.get_weights())
        copied += 1
    if copied == 0:
        raise ModelError(source, "no backbone layer weights matched the model's layers")
    log.info("loaded %s backbone weights into %d layers", source, copied)


def _spec(value: object, spec_class: type, key: str):
    """``value`` as a ``spec_class`` instance: the instance itself, a mapping of its fields, or
    ``None`` (the defaults)."""
    if value is None or isinstance(value, spec_class):
        return spec_class() if value is None else value
    fields = sorted(field.name for field in dataclasses.fields(spec_class))
    if not isinstance(value, Mapping):
        raise ConfigError(f"model.builder.{key}: expected a mapping of {fields}, got {value!r}")
    unknown = sorted(str(k) for k in value if k not in fields and k != "_target_")
    if unknown:
        raise ConfigError(f"model.builder.{key}: unknown key(s) {unknown}; expected {fields}")
    return spec_class(**{k: v for k, v in value.items() if k in fields})


def _checked_head(head: HeadSpec) -> HeadSpec:
    """The head spec with its counts and rate validated (errors name the config key)."""
    n_magnitude = _positive_int(head.n_magnitude, "head.n_magnitude")
    n_azimuth = _positive_int(head.n_azimuth, "head.n_azimuth")
    dense_units = _positive_int(head.dense_units, "head.dense_units")
    if not 0.0 <= float(head.dropout) < 1.0:
        raise ConfigError(f"model.builder.head.dropout: must be in [0, 1), got {head.dropout!r}")
    return HeadSpec(n_magnitude, n_azimuth, dense_units, float(head.dropout))


def _assemble(
    backbone_fn: Callable[..., keras.Model],
    input_shape: tuple[int, int, int],
    head: HeadSpec,
    normalization: NormalizationSpec,
    seed: int | None,
    name: str,
) -> tuple[keras.Model, keras.Model]:
    """Input -> standardisation -> flat backbone -> shared block -> two heads."""
    head = _checked_head(head)
    if (normalization.mean is None) != (normalization.variance is None):
        raise ConfigError("model.builder.normalization: give both or neither of mean and variance")
    _seed(seed)
    base = 0 if seed is None else int(seed)

    inputs = keras.Input(shape=input_shape, name="spectrogram")
    standardization = keras.layers.Normalization(axis=-1, name=INPUT_STANDARDIZATION)
    x = standardization(inputs)
    # input_tensor= makes the backbone's layers part of *this* graph (no nested sub-model).
    backbone = backbone_fn(include_top=False, weights=None, input_tensor=x, input_shape=input_shape)
    x = keras.layers.GlobalAveragePooling2D(name="feature_pool")(backbone.output)
    x = keras.layers.Dense(
        head.dense_units,
        activation="relu",
        kernel_initializer=keras.initializers.HeNormal(seed=base + 101),
        name="shared_dense",
    )(x)
    x = keras.layers.Dropout(head.dropout, seed=base + 102, name="shared_dropout")(x)
    outputs = []
    for offset, (head_name, units) in enumerate(zip(HEAD_NAMES, (head.n_magnitude, head.n_azimuth))):
        logits = keras.layers.Dense(
            units,
            kernel_initializer=keras.initializers.GlorotUniform(seed=base + 103 + offset),
            name=f"{head_name}_logits",
        )(x)
        # float32 softmax keeps probabilities exact under a mixed_float16 policy
        outputs.append(keras.layers.Activation("softmax", dtype="float32", name=head_name)(logits))
    model = keras.Model(inputs, outputs, name=name)
    if normalization.mean is not None:
        set_input_standardization(model, normalization.mean, normalization.variance)
    return model, backbone


# --------------------------------------------------------------------------- builders
def build_vgg16_multitask(
    input_shape: Sequence[int] = (112, 112, 3),
    head: HeadSpec | Mapping | None = None,
    normalization: NormalizationSpec | Mapping | None = None,
    weights: str | None = None,
    kernel_initializer: str | None = "he_normal",
    seed: int | None = 0,
    name: str = "vgg16_multitask",
) -> keras.Model:
    """Two-head VGG16 (Simonyan & Zisserman, 2015) on a flat graph; target layer ``block5_conv3``.

    ``head`` / ``normalization``: :class:`HeadSpec` / :class:`NormalizationSpec` (or a mapping of
    their fields; ``None``: the defaults). ``weights``: ``None`` (random, offline), ``"imagenet"``
    or a backbone weights file. ``kernel_initializer``: with ``weights=None`` every conv kernel is
    re-drawn from this initialiser (``he_normal`` suits ReLU stacks trained from scratch, He et
    al., 2015; Keras' VGG16 uses glorot_uniform); ``None`` keeps Keras' initialisation.
    """
    shape = _input_shape(input_shape, "VGG16")
    _check_weights(weights)
    model, backbone = _assemble(
        keras.applications.VGG16, shape, _spec(head, HeadSpec, "head"),
        _spec(normalization, NormalizationSpec, "normalization"), seed, name,
    )  # fmt: skip
    if weights is not None:
        _load_backbone_weights(model, keras.applications.VGG16, weights, shape)
    elif kernel_initializer:
        _redraw_conv_kernels(backbone, kernel_initializer, 0 if seed is None else int(seed))
    log.debug("built %s: input %s, %d parameters", name, shape, model.count_params())
    return model


def _redraw_conv_kernels(backbone: keras.Model, kernel_initializer: str, base_seed: int) -> None:
    """Re-draw every conv kernel of ``backbone`` from ``kernel_initializer`` (seeded per layer)."""
    try:
        keras.initializers.get(kernel_initializer)
    except ValueError:
        raise ConfigError(f"model.builder.kernel_initializer: unknown initializer {kernel_initializer!r}") from None
    conv_layers = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    for index, layer in enumerate(conv_layers):
        initializer = keras.initializers.get({"class_name": kernel_initializer, "config": {"seed": base_seed + index}})
        layer.kernel.assign(initializer(tuple(layer.kernel.shape)))


def build_efficientnet_multitask(
    input_shape: Sequence[int] = (224, 224, 3),
    head: HeadSpec | Mapping | None = None,
    normalization: NormalizationSpec | Mapping | None = None,
    weights: str | None = None,
    batchnorm_momentum: float | None = 0.9,
    seed: int | None = 0,
    name: str = "efficientnet_multitask",
) -> keras.Model:
    """Two-head EfficientNet-B0 (Tan & Le, 2019) on a flat graph.

    The demo config explains ``block5c_add`` (``model.target_layer``, the last 14x14 map at
    224x224); automatic detection (``model.target_layer=null``) finds ``top_activation``, the last
    feature map (7x7). ``head`` / ``normalization`` / ``weights`` as for
    :func:`build_vgg16_multitask`. ``batchnorm_momentum``: set on every BatchNormalization layer
    (Keras' 0.99 adapts the moving statistics too slowly for short from-scratch trainings:
    validation stayed at chance); ``None`` keeps Keras' value.  The backbone's own 0-255
    preprocessing is neutralised (see the module docstring).
    """
    shape = _input_shape(input_shape, "EfficientNet-B0")
    _check_weights(weights)
    model, backbone = _assemble(
        keras.applications.EfficientNetB0, shape, _spec(head, HeadSpec, "head"),
        _spec(normalization, NormalizationSpec, "normalization"), seed, name,
    )  # fmt: skip
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.Rescaling):
            layer.scale, layer.offset = 1.0, 0.0
        elif isinstance(layer, keras.layers.Normalization) and layer.name != INPUT_STANDARDIZATION:
            channels = int(layer.adapt_mean.shape[-1])
            layer.adapt_mean.assign(np.zeros(channels, "float32"))
            layer.adapt_variance.assign(np.ones(channels, "float32"))
            layer.finalize_state()
    if weights is not None:
        _load_backbone_weights(model, keras.applications.EfficientNetB0, weights, shape)
    if batchnorm_momentum is not None:
        momentum = float(batchnorm_momentum)
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"model.builder.batchnorm_momentum: must be in [0, 1), got {batchnorm_momentum!r}")
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = momentum
    log.debug("built %s: input %s, %d parameters", name, shape, model.count_params())
    return model
