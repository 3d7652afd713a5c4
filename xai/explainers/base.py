"""Common interface of all explainers, plus resampling to the spectrogram grid and display scaling.

Every method explains one head (``magnitude`` or ``azimuth``) of a two-head classifier for one
class per sample, on the pre-softmax score whenever the model exposes it (the explanation graph
of :mod:`models.graph`; ``Explanation.score_kind`` records which score was used).  Maps are
returned raw (un-normalised) at their native resolution; :func:`to_grid` resamples them to the
spectrogram grid and :func:`normalize_for_display` scales copies to [0, 1].
"""

from __future__ import annotations

import logging
import weakref
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from core.errors import ConfigError, InputDataError, ModelError
from models.graph import FEATURES_KEY, ExplanationGraph, explanation_model

log = logging.getLogger(__name__)

DEFAULT_HEADS: tuple[str, ...] = ("magnitude", "azimuth")


@dataclass
class Explanation:
    """Raw maps of one method for one head: ``maps`` float32 ``(B, h, w)``, native resolution."""

    maps: np.ndarray
    native_shape: tuple[int, int]
    head: str
    class_indices: np.ndarray
    score_kind: str
    method: str
    # gradient methods: one map per input channel (B, h, w, C); ``maps`` is their maximum (xai.components)
    channel_maps: np.ndarray | None = None


# --------------------------------------------------------------------------- grid + display
def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of a cell-centre aligned linear resampling of one axis."""
    centres = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    centres = np.clip(centres, 0.0, n_in - 1)
    lower = np.floor(centres).astype(np.int64)
    upper = np.minimum(lower + 1, n_in - 1)
    return lower, upper, (centres - lower).astype(np.float64)


def to_grid(maps: np.ndarray, grid_shape: Sequence[int]) -> np.ndarray:
    """Bilinear resampling of ``(B, h, w)`` (or one ``(h, w)``) maps to ``grid_shape`` ``(n_rows, n_cols)``.

    Alignment is cell-centre to cell-centre (as ``tf.image.resize(..., "bilinear")`` with half-pixel
    centres): map cell ``i`` of ``h`` covers grid rows ``[i * n_rows / h, (i + 1) * n_rows / h)``
    and its value sits at that interval's centre; between two centres values are interpolated
    linearly, outside the outermost centres they are held constant.  So a 7x7 Grad-CAM cell never
    leaks into a wrong time or frequency band by half a cell.
    """
    array = np.asarray(maps, dtype=np.float64)
    single = array.ndim == 2
    if single:
        array = array[None]
    if array.ndim != 3 or min(array.shape[1:], default=0) < 1:
        raise InputDataError(None, f"maps must be (B, h, w) or (h, w), got shape {np.shape(maps)}")
    if len(grid_shape) != 2 or any(int(n) < 1 for n in grid_shape):
        raise ConfigError(f"grid shape must be two positive sizes (n_rows, n_cols), got {tuple(grid_shape)}")
    n_rows, n_cols = (int(n) for n in grid_shape)
    r0, r1, rw = _axis_weights(array.shape[1], n_rows)
    c0, c1, cw = _axis_weights(array.shape[2], n_cols)
    rows = array[:, r0, :] * (1.0 - rw)[None, :, None] + array[:, r1, :] * rw[None, :, None]
    grid = rows[:, :, c0] * (1.0 - cw)[None, None, :] + rows[:, :, c1] * cw[None, None, :]
    grid = grid.astype(np.float32)
    return grid[0] if single else grid


def normalize_for_display(maps: np.ndarray) -> np.ndarray:
    """Per-map min-max scaling to [0, 1] (float32 copies); a constant map gives zeros, never NaN.

    Works on ``(B, h, w)`` or a single ``(h, w)`` map; non-finite cells are shown as 0.
    """
    array = np.asarray(maps, dtype=np.float64)
    single = array.ndim == 2
    if single:
        array = array[None]
    if array.ndim != 3:
        raise InputDataError(None, f"maps must be (B, h, w) or (h, w), got shape {np.shape(maps)}")
    finite = np.isfinite(array)
    axes = (1, 2)
    low = np.where(finite, array, np.inf).min(axis=axes, keepdims=True)
    high = np.where(finite, array, -np.inf).max(axis=axes, keepdims=True)
    span = high - low
    valid = np.isfinite(span) & (span > 0)
    scaled = np.where(valid & finite, (array - np.where(valid, low, 0.0)) / np.where(valid, span, 1.0), 0.0)
    scaled = np.clip(scaled, 0.0, 1.0).astype(np.float32)
    return scaled[0] if single else scaled


# --------------------------------------------------------------------------- model plumbing
_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _is_graph(obj: object) -> bool:
    return isinstance(obj, ExplanationGraph) or (
        not hasattr(obj, "explanation_graph")
        and hasattr(obj, "model")
        and hasattr(obj, "score_kind")
        and hasattr(obj, "target_layer")
    )


def resolve_graph(
    model: Any,
    heads: Sequence[str] | None,
    target_layer: str | None,
    with_features: bool,
) -> ExplanationGraph:
    """The explanation graph for a ``keras.Model``, a ``ModelBundle`` or a ready ``ExplanationGraph``."""
    if _is_graph(model):
        graph = model
        if with_features and not getattr(graph, "has_features", FEATURES_KEY in graph.model.output):
            raise ModelError(None, "the explanation graph has no target-layer features (built with_features=False)")
        if target_layer is not None and graph.target_layer not in (None, target_layer):
            raise ConfigError(
                f"target_layer '{target_layer}' differs from the explanation graph's '{graph.target_layer}'"
            )
        return graph
    if hasattr(model, "explanation_graph") and isinstance(getattr(model, "model", None), keras.Model):
        bundle_target = getattr(model, "target_layer", None)
        if target_layer is None or target_layer == bundle_target:
            return model.explanation_graph(with_features=with_features)
        return explanation_model(
            model.model,
            heads=tuple(model.heads),
            target_layer=target_layer,
            head_outputs=dict(model.heads),
            source=getattr(model, "source_file", None),
        )
    if isinstance(model, keras.Model):
        # cached per model, so that several explainers of one model share compiled functions
        key = (tuple(heads or DEFAULT_HEADS), target_layer, with_features or target_layer is not None)
        per_model = _GRAPHS.setdefault(model, {})
        if key not in per_model:
            per_model[key] = explanation_model(model, heads=key[0], target_layer=key[1], with_features=key[2])
        return per_model[key]
    raise ModelError(None, f"expected a keras.Model or a model bundle to explain, got {type(model).__name__}")


def graph_cache(graph: Any) -> dict:
    """A dict stored on the explanation graph: compiled functions live as long as the graph."""
    cache = graph.__dict__.get("_xai_cache")
    if cache is None:
        cache = graph.__dict__["_xai_cache"] = {}
    return cache


def compiled_forward(graph: Any) -> tf.types.experimental.PolymorphicFunction:
    """The graph's cached ``tf.function`` inference call (any batch size, traced once)."""
    cache = graph_cache(graph)
    if "forward" not in cache:
        model = graph.model
        spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
        cache["forward"] = tf.function(
            lambda x: model(x, training=False), input_signature=[spec], reduce_retracing=True
        )
    return cache["forward"]


# --------------------------------------------------------------------------- explainer
class Explainer(ABC):
    """One explanation method for a (multi-head) classifier.

    ``model``: a ``keras.Model``, a ``ModelBundle`` (``.model`` + ``.explanation_graph()``) or an
    ``ExplanationGraph``.  ``target_layer``: the feature layer for CAM methods (``None``: the
    bundle's or the auto-detected one).  ``heads``: the head names of a bare ``keras.Model``.
    """

    name: ClassVar[str] = ""
    needs_features: ClassVar[bool] = False
    # explain(..., contrast_indices=) explains score A - score B (xai.explainers.targets)
    supports_contrast: ClassVar[bool] = False

    def __init__(
        self,
        model: Any,
        target_layer: str | None = None,
        heads: Sequence[str] | None = DEFAULT_HEADS,
        **options: Any,
    ) -> None:
        if options:
            raise ConfigError(f"method '{self.name}': unknown option(s) {', '.join(sorted(options))}")
        # gradient-only methods do not need (and ignore) the target layer
        layer = target_layer if self.needs_features else None
        self.graph = resolve_graph(model, heads, layer, self.needs_features)
        self.heads: tuple[str, ...] = tuple(self.graph.heads or self.graph.score_kind)
        self.target_layer = self.graph.target_layer
        self.input_shape: tuple[int, ...] = tuple(int(d) for d in self.graph.model.inputs[0].shape[1:])
        if len(self.graph.model.inputs) != 1 or len(self.input_shape) != 3:
            raise ModelError(
                None,
                f"method '{self.name}' needs one image input (B, H, W, C), got {self.graph.model.inputs}",
            )

    # ------------------------------------------------------------------ checks
    def n_classes(self, head: str) -> int:
        return int(self.graph.model.output[head].shape[-1])

    def check_head(self, head: str) -> str:
        if head not in self.heads:
            raise ConfigError(f"unknown head '{head}' for method '{self.name}'; heads: {', '.join(self.heads)}")
        return head

    def check_inputs(self, inputs: np.ndarray) -> np.ndarray:
        x = np.asarray(inputs, dtype=np.float32)
        if x.ndim == len(self.input_shape):
            x = x[None]
        if x.ndim != 4 or x.shape[1:] != self.input_shape or x.shape[0] < 1:
            raise InputDataError(
                None,
                f"model inputs must be (B, {', '.join(map(str, self.input_shape))}), got {np.shape(inputs)}",
            )
        if not np.isfinite(x).all():
            raise InputDataError(None, "model inputs contain NaN or infinite values")
        return x

    def check_classes(self, head: str, class_indices: Any, batch: int) -> np.ndarray:
        n = self.n_classes(head)
        classes = np.asarray(class_indices)
        if classes.ndim == 0:
            classes = np.full(batch, classes)
        if classes.shape != (batch,) or (classes.size and not np.issubdtype(classes.dtype, np.integer)):
            raise ConfigError(f"class indices for head '{head}' must be {batch} integers, got {class_indices!r}")
        bad = classes[(classes < 0) | (classes >= n)]
        if bad.size:
            raise ConfigError(f"class index {int(bad[0])} out of range for head '{head}' ({n} classes: 0..{n - 1})")
        return classes.astype(np.int32)

    def predicted_classes(self, inputs: np.ndarray, head: str) -> np.ndarray:
        """Argmax of the head's score (logit argmax = probability argmax)."""
        scores = compiled_forward(self.graph)(tf.constant(inputs))[head]
        return np.asarray(tf.argmax(scores, axis=-1, output_type=tf.int32))

    def prepare(self, inputs: np.ndarray, head: str, class_indices: Any) -> tuple[np.ndarray, np.ndarray]:
        """Checked float32 inputs and int32 class indices (``None``: the predicted classes)."""
        self.check_head(head)
        x = self.check_inputs(inputs)
        if class_indices is None:
            return x, self.predicted_classes(x, head)
        return x, self.check_classes(head, class_indices, x.shape[0])

    def finish(self, maps: Any, head: str, classes: np.ndarray) -> Explanation:
        """Wrap raw maps, refusing non-finite values or a wrong shape."""
        array = np.asarray(maps, dtype=np.float32)
        if array.ndim != 3 or array.shape[0] != classes.shape[0]:
            raise ModelError(None, f"method '{self.name}' produced maps of shape {array.shape}, expected (B, h, w)")
        if not np.isfinite(array).all():
            raise ModelError(None, f"method '{self.name}' produced non-finite values for head '{head}'")
        return Explanation(
            maps=array,
            native_shape=(int(array.shape[1]), int(array.shape[2])),
            head=head,
            class_indices=classes,
            score_kind=self.score_kind(head),
            method=self.name,
        )

    def score_kind(self, head: str) -> str:
        return self.graph.score_kind[head]

    # ------------------------------------------------------------------ API
    @abstractmethod
    def explain(self, inputs: np.ndarray, head: str, class_indices: np.ndarray | None) -> Explanation:
        """Maps of ``head``'s score for ``class_indices`` (one per sample; ``None`` = predicted)."""

    def __call__(
        self,
        inputs: np.ndarray,
        head: str = "magnitude",
        class_indices: np.ndarray | int | None = None,
        contrast_indices: np.ndarray | int | None = None,
    ) -> Explanation:
        """Maps of class ``class_indices``' score, or of ``score A - score B`` with ``contrast_indices`` (B)."""
        if contrast_indices is None:
            return self.explain(inputs, head, class_indices)
        if not self.supports_contrast:
            raise ConfigError(f"xai.target=contrast: method '{self.name}' cannot explain a contrast of two classes")
        return self.explain(inputs, head, class_indices, contrast_indices=contrast_indices)

    def check_contrast(self, head: str, contrast_indices: Any, batch: int) -> np.ndarray | None:
        """Checked int32 contrast classes ``(B,)`` (``None``: a single-class target)."""
        return None if contrast_indices is None else self.check_classes(head, contrast_indices, batch)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target_layer={self.target_layer!r}, heads={self.heads})"
