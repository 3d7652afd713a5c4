"""Shared plumbing for the tf-keras-vis methods (Kubota, tf-keras-vis 0.8).

tf-keras-vis receives a scores model ``inputs -> [score of each head]`` (the explanation graph's
pre-softmax head outputs, in head order, without the features output) and **one score callable
per output**: ``CategoricalScore`` on the explained head, ``InactiveScore`` on the others.

tf-keras-vis calls its model eagerly, layer by layer, which is slow.  With ``compiled=True`` it
gets a drop-in model object whose call is one ``tf.function`` (traced once for any batch size):
its gradient tape then records a single compiled op whose backward pass is compiled as well.
The algorithms stay tf-keras-vis' own code.  The CAM classes (Grad-CAM++, LayerCAM, Score-CAM)
build a ``[scores..., features]`` model inside every call; for them that step is swapped for a
compiled model split at the target layer (compiled trunk -> features -> compiled head part), so
the tape still sees the features feed the scores.  ``tests/test_explainers_tfkv.py`` checks the
compiled path reproduces plain tf-keras-vis.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tf_keras_vis.gradcam
import tf_keras_vis.gradcam_plus_plus
import tf_keras_vis.scorecam
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.utils import find_layer
from tf_keras_vis.utils.model_modifiers import ExtractIntermediateLayerForGradcam
from tf_keras_vis.utils.scores import CategoricalScore, InactiveScore

from models.graph import FEATURES_KEY, ExplanationGraph
from xai.explainers.base import DEFAULT_HEADS, Explainer, Explanation, graph_cache

log = logging.getLogger(__name__)

# The one place tf-keras-vis is patched.  Its CAM classes build their ``[scores..., features]``
# model inside every call with ``ModelModifier(penultimate_layer, seek_conv_layer[,
# include_model_outputs])(model)``, where each module below imports ``ModelModifier`` as an alias
# of ``ExtractIntermediateLayerForGradcam`` (Layercam inherits Gradcam's call).
# :func:`cam_model_override` rebinds that module attribute to hand over our compiled split model
# instead.  ``tests/test_explainers_tfkv.py`` fails when tf-keras-vis changes the class, its
# constructor signature or the modules that use it (requirements.txt pins the tested minor version).
CAM_PATCH_ATTRIBUTE = "ModelModifier"
CAM_PATCH_ORIGINAL = ExtractIntermediateLayerForGradcam
CAM_PATCH_MODULES = (tf_keras_vis.gradcam, tf_keras_vis.gradcam_plus_plus, tf_keras_vis.scorecam)
_PATCH_LOCK = threading.RLock()


def _input_spec(model: keras.Model) -> tf.TensorSpec:
    return tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)


def _first(inputs: Any) -> Any:
    """tf-keras-vis passes a list of input tensors; our models have one input."""
    return inputs[0] if isinstance(inputs, (list, tuple)) else inputs


def _as_float32(x: Any) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    return x if x.dtype == tf.float32 else tf.cast(x, tf.float32)


# --------------------------------------------------------------------------- compiled models
def _no_variable_grads(variables: Sequence[Any] | None) -> list[None]:
    """tf.custom_gradient: the models' weights are never differentiated here."""
    return [None] * len(variables or ())


class CompiledScoresModel:
    """A keras-model stand-in for tf-keras-vis whose call is compiled.

    Exposes what tf-keras-vis reads (``inputs``, ``outputs``, ``layers``, ``output_names``,
    ``__call__``, ``predict``); ``training=True`` falls back to the plain eager call.

    The call is a ``tf.custom_gradient`` op whose gradient is a compiled vector-Jacobian product
    w.r.t. the *input only*.  (Differentiating a compiled call through TensorFlow's generic
    function gradient would also compute every weight gradient and keep all intermediates:
    ~2.6x slower than an input gradient on EfficientNet-B0.)  Inside :meth:`expecting` the
    forward call already computes the VJP for the upstream gradient the explainer's scores will
    produce (one-hot rows on the explained head, zeros elsewhere) in the same compiled pass; the
    gradient function returns it only when the upstream tf-keras-vis actually hands over is
    exactly that, and otherwise computes the VJP of the real upstream.
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self.inputs = model.inputs
        self.outputs = model.outputs
        self.layers = model.layers
        self.name = model.name
        self._expected: list[tf.Tensor] | None = None
        spec = _input_spec(model)
        self.function = tf.function(
            lambda x: list(model(x, training=False)), input_signature=[spec], reduce_retracing=True
        )
        upstream_specs = [tf.TensorSpec((None, *t.shape[1:]), tf.float32) for t in model.outputs]

        def forward_and_vjp(x: tf.Tensor, *upstream: tf.Tensor) -> tuple[list[tf.Tensor], tf.Tensor]:
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(x)
                outputs = list(model(x, training=False))
                total = tf.add_n([tf.reduce_sum(o * u) for o, u in zip(outputs, upstream)])
            return outputs, tape.gradient(total, x)

        signature = [spec, *upstream_specs]
        self.forward_and_vjp = tf.function(forward_and_vjp, input_signature=signature, reduce_retracing=True)
        self.vjp = tf.function(
            lambda x, *upstream: forward_and_vjp(x, *upstream)[1],
            input_signature=signature,
            reduce_retracing=True,
        )

    @property
    def output_names(self) -> list[str]:
        return [tensor._keras_history.operation.name for tensor in self.outputs]

    @contextlib.contextmanager
    def expecting(self, upstream: Sequence[np.ndarray]) -> Iterator[None]:
        """Within the block, forward calls precompute the VJP of ``upstream`` (one array per output)."""
        previous = self._expected
        self._expected = [tf.constant(u, tf.float32) for u in upstream]
        try:
            yield
        finally:
            self._expected = previous

    def _differentiable(self, x: tf.Tensor) -> list[tf.Tensor]:
        expected = self._expected
        if expected is not None and expected[0].shape[0] != x.shape[0]:
            expected = None

        @tf.custom_gradient
        def call(inputs: tf.Tensor):
            # stop_gradient: the surrounding tape must not record (and later differentiate) the
            # compiled call itself; this custom op carries the gradient
            frozen = tf.stop_gradient(inputs)
            if expected is None:
                outputs, precomputed = self.function(frozen), None
            else:
                outputs, precomputed = self.forward_and_vjp(frozen, *expected)

            def grad(*upstream: tf.Tensor, variables: Sequence[Any] | None = None):
                filled = [tf.zeros_like(o) if u is None else u for o, u in zip(outputs, upstream)]
                if precomputed is not None and all(
                    u.shape == e.shape and bool(tf.reduce_all(u == e)) for u, e in zip(filled, expected)
                ):
                    return precomputed, _no_variable_grads(variables)
                return self.vjp(frozen, *filled), _no_variable_grads(variables)

            return outputs, grad

        return list(call(x))

    def __call__(self, inputs: Any, training: bool = False) -> list[tf.Tensor]:
        if training:
            return list(self.model(inputs, training=True))
        return self._differentiable(_as_float32(_first(inputs)))

    def predict(self, inputs: Any, batch_size: int = 32, verbose: int = 0) -> list[np.ndarray]:
        x = np.asarray(_first(inputs), dtype=np.float32)
        step = max(1, int(batch_size))
        chunks = [self.function(tf.constant(x[i : i + step])) for i in range(0, len(x), step)]
        return [np.concatenate([np.asarray(c[k]) for c in chunks]) for k in range(len(self.outputs))]


class CompiledCamModel:
    """``inputs -> [scores..., features]`` (or only ``features``) split at the target layer.

    A compiled trunk gives the features and a compiled head part maps features -> scores, so an
    eager tape around the call links the scores to the features (one fused op would not).  The
    trunk is a ``tf.custom_gradient`` op without an input gradient (the CAM methods only ask for
    d score / d features), so the tape never differentiates the trunk.
    """

    def __init__(self, trunk: keras.Model, head: keras.Model, include_model_outputs: bool = True) -> None:
        self.trunk, self.head = trunk, head
        self.include_model_outputs = include_model_outputs
        self.inputs = trunk.inputs
        self.outputs = [*head.outputs, trunk.outputs[0]] if include_model_outputs else trunk.outputs
        self.layers = [*trunk.layers, *head.layers]
        self.trunk_function = tf.function(
            lambda x: trunk(x, training=False), input_signature=[_input_spec(trunk)], reduce_retracing=True
        )
        self.head_function = tf.function(
            lambda a: list(head(a, training=False)),
            input_signature=[_input_spec(head)],
            reduce_retracing=True,
        )

    def view(self, include_model_outputs: bool) -> CompiledCamModel:
        """The same compiled functions, with or without the model outputs."""
        if include_model_outputs == self.include_model_outputs:
            return self
        other = object.__new__(CompiledCamModel)
        other.__dict__.update(self.__dict__)
        other.include_model_outputs = include_model_outputs
        other.outputs = [*self.head.outputs, self.trunk.outputs[0]] if include_model_outputs else self.trunk.outputs
        return other

    def _features(self, x: tf.Tensor) -> tf.Tensor:
        @tf.custom_gradient
        def trunk(inputs: tf.Tensor):
            def grad(upstream: tf.Tensor, variables: Sequence[Any] | None = None):
                return None, _no_variable_grads(variables)

            return self.trunk_function(tf.stop_gradient(inputs)), grad

        return trunk(x)

    def __call__(self, inputs: Any, training: bool = False) -> Any:
        features = self._features(_as_float32(_first(inputs)))
        if not self.include_model_outputs:
            return features
        return [*self.head_function(features), features]


@contextlib.contextmanager
def cam_model_override(provider: Any) -> Iterator[None]:
    """Within the block, tf-keras-vis' CAM classes take their ``[scores..., features]`` model
    from ``provider(include_model_outputs)`` instead of ``ExtractIntermediateLayerForGradcam``."""

    def modifier(penultimate_layer: Any = None, seek_conv_layer: bool = True, include_model_outputs: bool = True):
        return lambda model: provider(include_model_outputs)

    with _PATCH_LOCK:
        saved = [getattr(module, CAM_PATCH_ATTRIBUTE) for module in CAM_PATCH_MODULES]
        for module in CAM_PATCH_MODULES:
            setattr(module, CAM_PATCH_ATTRIBUTE, modifier)
        try:
            yield
        finally:
            for module, original in zip(CAM_PATCH_MODULES, saved):
                setattr(module, CAM_PATCH_ATTRIBUTE, original)


class TfkvModels:
    """The scores model and its compiled / CAM variants for one explanation graph (cached)."""

    def __init__(self, graph: ExplanationGraph, heads: Sequence[str]) -> None:
        self.graph = graph
        self.heads = tuple(heads)
        model = graph.model
        self.scores = keras.Model(model.inputs, [model.output[h] for h in self.heads], name=f"{model.name}_scores")
        self._compiled: CompiledScoresModel | None = None
        self._cam: CompiledCamModel | None | bool = False  # False = not built yet

    @property
    def compiled(self) -> CompiledScoresModel:
        if self._compiled is None:
            self._compiled = CompiledScoresModel(self.scores)
        return self._compiled

    def features(self) -> Any:
        return self.graph.model.output[FEATURES_KEY]

    def plain_cam(self, include_model_outputs: bool) -> keras.Model:
        """What tf-keras-vis builds itself: ``inputs -> [scores..., features]`` (eager)."""
        features = self.features()
        outputs = [*self.scores.outputs, features] if include_model_outputs else features
        return keras.Model(self.scores.inputs, outputs)

    def compiled_cam(self, include_model_outputs: bool) -> CompiledCamModel | keras.Model:
        """The split compiled CAM model, or the plain one when the heads read more than the features."""
        if self._cam is False:
            features = self.features()
            try:
                trunk = keras.Model(self.scores.inputs, features, name=f"{self.scores.name}_trunk")
                head = keras.Model(features, list(self.scores.outputs), name=f"{self.scores.name}_head")
                self._cam = CompiledCamModel(trunk, head)
            except ValueError:
                log.info("heads read tensors other than the target layer: tf-keras-vis CAMs run uncompiled")
                self._cam = None
        if self._cam is None:
            return self.plain_cam(include_model_outputs)
        return self._cam.view(include_model_outputs)

    def penultimate_layer_name(self) -> str | None:
        """The target layer's name when plain tf-keras-vis can find it unambiguously by name."""
        name = self.graph.target_layer
        if not name or "/" in name:
            return None
        layer = find_layer(self.scores, lambda candidate: candidate.name == name)
        try:
            same = layer is not None and layer.output is self.features()
        except (AttributeError, ValueError):
            same = False
        return name if same else None


def tfkv_models(graph: ExplanationGraph, heads: Sequence[str]) -> TfkvModels:
    """Cached :class:`TfkvModels` per explanation graph (so methods share compiled functions)."""
    cache = graph_cache(graph)
    key = ("tfkv", tuple(heads))
    if key not in cache:
        cache[key] = TfkvModels(graph, key[1])
    return cache[key]


# --------------------------------------------------------------------------- explainers
class ContrastScore:
    """A tf-keras-vis score callable: ``output[i, A_i] - output[i, B_i]`` per sample (a contrastive target)."""

    def __init__(self, classes: np.ndarray, contrast: np.ndarray) -> None:
        self.name = "ContrastScore"
        self.classes = tf.constant(np.asarray(classes, np.int32)[:, None])
        self.contrast = tf.constant(np.asarray(contrast, np.int32)[:, None])

    def __call__(self, output: tf.Tensor) -> tf.Tensor:
        first = tf.gather(output, self.classes, batch_dims=1)[:, 0]
        return first - tf.gather(output, self.contrast, batch_dims=1)[:, 0]


class TfkvExplainer(Explainer):
    """Base of the tf-keras-vis methods: scores, compiled model and result checks.

    ``run`` returns ``(B, h, w)`` maps, or ``(B, h, w, C)`` per-input-channel maps whose maximum over
    the channels is the map (kept as ``Explanation.channel_maps``).
    """

    supports_contrast = True

    def __init__(
        self,
        model: Any,
        target_layer: str | None = None,
        heads: Sequence[str] | None = DEFAULT_HEADS,
        compiled: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(model, target_layer=target_layer, heads=heads, **options)
        self.compiled = bool(compiled)
        self.models = tfkv_models(self.graph, self.heads)

    def vis_model(self) -> Any:
        """The model handed to tf-keras-vis: compiled stand-in or the plain scores model."""
        return self.models.compiled if self.compiled else self.models.scores

    def expected_upstream(self, head: str, classes: np.ndarray, contrast: np.ndarray | None = None) -> list[np.ndarray]:
        """d(sum of tf-keras-vis scores)/d outputs: one-hot rows on ``head`` (minus the contrast
        class's one-hot row for a contrastive target), zeros on the others."""
        upstream = []
        for h in self.heads:
            rows = np.zeros((len(classes), self.n_classes(h)), np.float32)
            if h == head:
                rows[np.arange(len(classes)), classes] = 1.0
                if contrast is not None:
                    rows[np.arange(len(classes)), contrast] -= 1.0
            upstream.append(rows)
        return upstream

    def scores(self, head: str, classes: np.ndarray, contrast: np.ndarray | None = None) -> list[Any]:
        """One tf-keras-vis score per model output, in output order."""
        if contrast is not None:
            explained: Any = ContrastScore(classes, contrast)
        else:
            explained = CategoricalScore([int(c) for c in classes])
        return [explained if h == head else InactiveScore() for h in self.heads]

    @staticmethod
    def to_numpy(result: Any) -> np.ndarray:
        return np.asarray(result[0] if isinstance(result, list) else result, dtype=np.float32)

    def explain(
        self, inputs: np.ndarray, head: str, class_indices: Any = None, contrast_indices: Any = None
    ) -> Explanation:
        x, classes = self.prepare(inputs, head, class_indices)
        maps = self.run(x, head, classes, self.check_contrast(head, contrast_indices, x.shape[0]))
        if maps.ndim == 4:
            explanation = self.finish(maps.max(axis=-1), head, classes)
            explanation.channel_maps = maps
            return explanation
        return self.finish(maps, head, classes)

    def run(
        self, x: np.ndarray, head: str, classes: np.ndarray, contrast: np.ndarray | None = None
    ) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class TfkvCamExplainer(TfkvExplainer):
    """tf-keras-vis CAM classes on the explanation graph's target layer (native ``(h, w)`` maps)."""

    needs_features = True
    visualizer_class: type = Gradcam

    def call_options(self) -> dict[str, Any]:
        return {}

    def run(self, x: np.ndarray, head: str, classes: np.ndarray, contrast: np.ndarray | None = None) -> np.ndarray:
        visualizer = self.visualizer_class(self.vis_model())
        options = {"expand_cam": False, "normalize_cam": False, **self.call_options()}
        scores = self.scores(head, classes, contrast)
        if self.compiled:
            with cam_model_override(self.models.compiled_cam):
                return self.to_numpy(visualizer(scores, x, **options))
        name = self.models.penultimate_layer_name()
        if name is not None:  # genuinely plain tf-keras-vis
            cams = visualizer(scores, x, penultimate_layer=name, seek_penultimate_conv_layer=False, **options)
            return self.to_numpy(cams)
        with cam_model_override(self.models.plain_cam):  # nested target layer: same model, built per call
            return self.to_numpy(visualizer(scores, x, **options))


class TfkvGradcam(TfkvCamExplainer):
    """tf-keras-vis' own ``Gradcam`` (Selvaraju et al., 2017), plain and eager by default.

    Kept as the reference for our compiled :class:`xai.explainers.gradcam.GradCAM` (agreement
    test, speed benchmark).
    """

    name = "tfkv_gradcam"
    visualizer_class = Gradcam

    def __init__(
        self,
        model: Any,
        target_layer: str | None = None,
        heads: Sequence[str] | None = DEFAULT_HEADS,
        compiled: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(model, target_layer=target_layer, heads=heads, compiled=compiled, **options)
