"""Compiled base of the gradient CAM methods: subclasses give only the weighting rule of the features.

In the style of pytorch-grad-cam's ``BaseCAM.get_cam_weights`` (Gildenblat et al.), a CAM is
``ReLU(sum_k w_k ⊙ A_k)`` with ``A`` the target layer's activation ``(B, h, w, K)`` and ``w`` the
weights a subclass derives from ``d score / d A`` in :meth:`CompiledCam.cam_weights` (broadcastable
to ``A``: ``(B, 1, 1, K)`` for one weight per channel, ``(B, h, w, K)`` for one per cell); ``score``
is the explained class's pre-softmax score of one head.

Speed: the model is split at the target layer.  A compiled trunk computes ``A`` without any
gradient tape, and the tape records only the (cheap) head part ``A -> score`` of the explained
head, so the cost is one forward pass plus a tiny backward pass.  This is exact: the gradient
w.r.t. ``A`` only involves layers after the target layer.  Models whose head part also reads
tensors other than ``A`` (a skip connection across the target layer) fall back to one tape over
the whole graph.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from models.graph import FEATURES_KEY
from xai.explainers.base import DEFAULT_HEADS, Explainer, Explanation

log = logging.getLogger(__name__)


class CompiledCam(Explainer):
    """A CAM method compiled as one ``tf.function`` per head, traced once for any batch size.

    Subclasses set ``name`` and implement :meth:`cam_weights`.  ``class_indices`` may contain
    ``-1`` inside the compiled function (= predicted class), so the predicted class costs no extra
    forward pass.  ``jit_compile=True`` compiles the function with XLA.
    """

    needs_features = True
    supports_contrast = True

    def __init__(
        self,
        model: Any,
        target_layer: str | None = None,
        heads: Sequence[str] | None = DEFAULT_HEADS,
        jit_compile: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(model, target_layer=target_layer, heads=heads, **options)
        self.jit_compile = bool(jit_compile)
        self._functions: dict[str, tf.types.experimental.PolymorphicFunction] = {}
        graph = self.graph.model
        self._features = graph.output[FEATURES_KEY]
        try:
            self._trunk = keras.Model(graph.inputs, self._features, name=f"{graph.name}_trunk")
        except ValueError:  # pragma: no cover - the features always come from the inputs
            self._trunk = None

    # ------------------------------------------------------------------ the hook
    @abstractmethod
    def cam_weights(self, grads: tf.Tensor, features: tf.Tensor) -> tf.Tensor:
        """Weights of the features ``(B, h, w, K)`` from ``grads = d score / d features`` (same shape).

        A tensor function traced into the compiled graph; the result must broadcast to ``features``.
        """

    def combine(self, grads: tf.Tensor, features: tf.Tensor) -> tf.Tensor:
        """``ReLU(sum_k w_k ⊙ A_k)``: the ``(B, h, w)`` maps from the gradients and the features."""
        weights = self.cam_weights(grads, features)
        return tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))

    # ------------------------------------------------------------------ compiled function
    def _head_model(self, head: str) -> keras.Model | None:
        """``features -> score`` of one head, or ``None`` when the head needs more than the features."""
        if self._trunk is None:
            return None
        try:
            return keras.Model(self._features, self.graph.model.output[head], name=f"{self.name}_{head}_head")
        except ValueError:
            log.info("head %s reads tensors other than %s: %s tapes the full graph", head, self.target_layer, self.name)
            return None

    def compiled_function(self, head: str, contrast: bool = False) -> tf.types.experimental.PolymorphicFunction:
        """The compiled ``(inputs (B,H,W,C), classes (B,) int32, -1 = predicted) -> (cams, classes)``;
        with ``contrast`` a third argument, the contrast classes ``(B,)``: the score is ``score A - score B``."""
        self.check_head(head)
        key = f"{head}:contrast" if contrast else head
        if key not in self._functions:
            self._functions[key] = self._compile(head, contrast)
        return self._functions[key]

    def _compile(self, head: str, contrast: bool = False) -> tf.types.experimental.PolymorphicFunction:
        trunk, head_model, graph = self._trunk, self._head_model(head), self.graph.model

        def scores_and_features(x: tf.Tensor, tape: tf.GradientTape) -> tuple[tf.Tensor, tf.Tensor]:
            if head_model is not None:
                features = trunk(x, training=False)
                tape.watch(features)
                return head_model(features, training=False), features
            tape.watch(x)
            outputs = graph(x, training=False)
            return outputs[head], outputs[FEATURES_KEY]

        def cam(x: tf.Tensor, classes: tf.Tensor, *others: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                scores, features = scores_and_features(x, tape)
                predicted = tf.argmax(scores, axis=-1, output_type=tf.int32)
                classes = tf.where(classes < 0, predicted, classes)
                score = tf.gather(scores, classes[:, None], batch_dims=1)
                for other in others:  # contrastive target: score A - score B
                    score = score - tf.gather(scores, other[:, None], batch_dims=1)
            grads = tape.gradient(score, features)  # per sample: samples are independent
            return self.combine(grads, features), classes

        class_spec = tf.TensorSpec((None,), tf.int32)
        spec = (tf.TensorSpec((None, *self.input_shape), tf.float32), class_spec, *([class_spec] if contrast else []))
        return tf.function(cam, input_signature=spec, reduce_retracing=True, jit_compile=self.jit_compile)

    def explain(
        self, inputs: np.ndarray, head: str, class_indices: Any = None, contrast_indices: Any = None
    ) -> Explanation:
        self.check_head(head)
        x = self.check_inputs(inputs)
        if class_indices is None:
            classes = np.full(x.shape[0], -1, np.int32)
        else:
            classes = self.check_classes(head, class_indices, x.shape[0])
        contrast = self.check_contrast(head, contrast_indices, x.shape[0])
        extra = () if contrast is None else (tf.constant(contrast),)
        cams, used = self.compiled_function(head, contrast is not None)(tf.constant(x), tf.constant(classes), *extra)
        return self.finish(cams.numpy(), head, used.numpy())
