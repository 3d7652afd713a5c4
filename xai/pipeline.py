"""The one per-batch explanation pipeline shared by the explain task and the data-set mode.

A batch goes through the same steps wherever it is explained: load and check the spectrogram
grids, turn them into model inputs, predict, choose the explained class of every head
(``predicted``, ``true`` or a class name), run every explainer per head, resample its maps to the
spectrogram grid (:func:`xai.explainers.base.to_grid`) and summarise them in physical bands
(:mod:`xai.attention`). Occlusion (:class:`~xai.explainers.occlusion.Occlusion`) runs once per batch
for every head on the spectrogram grids and their axes (:mod:`xai.reliance.batch`); its reliance map
joins the other maps and :meth:`BatchExplanation.reliance_entry` gives the region table, marginals and
the attention-versus-reliance agreement of every other method. Callers turn the
:class:`BatchExplanation` into their own outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import ConfigError, InputDataError
from core.names import HEADS
from geomag.axes import SpectrogramAxes
from geomag.dataset import ClassMappings, SampleRecord
from xai.attention import BANDS, attention_summary, band_shares
from xai.components import component_entry, grid_channel_maps
from xai.explainers.base import Explanation, to_grid
from xai.explainers.occlusion import Occlusion
from xai.explainers.targets import TargetSpec
from xai.reliance.batch import SampleReliance, measure_batch, reliance_entry, sample_agreements

log = logging.getLogger(__name__)

# What is computed per map after resampling: the full attention summary (explain task), the band
# mass shares only (data-set mode: thousands of maps), or nothing.
ATTENTION_KINDS = ("summary", "bands", "none")


def batches(n: int, size: int, start: int = 0) -> Iterator[tuple[int, int]]:
    """``(begin, end)`` of consecutive batches of at most ``size`` items, from ``start`` up to ``n``."""
    for begin in range(start, n, size):
        yield begin, min(n, begin + size)


def check_heads(bundle: Any, heads: Sequence[str]) -> tuple[str, ...]:
    """The requested head names, refused with a :class:`ConfigError` when the model lacks one."""
    names = tuple(str(h) for h in heads)
    for head in names:
        if head not in bundle.heads:
            raise ConfigError(f"xai.heads: unknown head {head!r}; the model has {sorted(bundle.heads)}")
    return names


def explained_classes(
    spec: object, head: str, mappings: ClassMappings, predicted: np.ndarray, records: Sequence[SampleRecord]
) -> np.ndarray:
    """Class index per sample: ``predicted`` | ``true`` | a class name | ``{head: name}``."""
    if isinstance(spec, Mapping):
        spec = spec.get(head, "predicted")
    spec = str(spec)
    if spec == "predicted":
        return predicted.astype(np.int32)
    if spec == "true":
        return np.array([mappings.index(head, r.true_class(head)) for r in records], dtype=np.int32)
    classes = mappings.classes(head)
    if spec not in classes:
        other = "azimuth" if head == "magnitude" else "magnitude"
        if spec in mappings.classes(other):
            return predicted.astype(np.int32)  # a class of the other head: this head explains its prediction
        raise ConfigError(
            f"xai.explained_class: {spec!r} is neither 'predicted', 'true' nor a class of "
            f"either head ({classes} / {mappings.classes(other)})"
        )
    return np.full(len(records), classes.index(spec), dtype=np.int32)


@dataclass(frozen=True)
class ExplainContext:
    """What every batch is explained with: the model bundle, the explainers (method name ->
    explainer), the heads, the explained-class spec, the grid axes shared by every sample (data-set
    mode; ``None``: each sample's own), the kind of attention summary (``ATTENTION_KINDS``) and the
    target (one class's score, or a contrast with ``xai.contrast_class``)."""

    bundle: Any
    explainers: Mapping[str, Any]
    heads: tuple[str, ...] = HEADS
    explained_class: Any = "predicted"
    axes: SpectrogramAxes | None = None
    attention: str = "summary"
    target: TargetSpec = TargetSpec()

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", check_heads(self.bundle, self.heads))
        self.target.check(self.bundle.class_mappings)
        if self.attention not in ATTENTION_KINDS:
            raise ConfigError(f"attention summary {self.attention!r} is not one of {', '.join(ATTENTION_KINDS)}")
        if self.axes is not None:  # occlusion cuts the shared grid into regions when called as an Explainer
            for explainer in self.explainers.values():
                if isinstance(explainer, Occlusion):
                    explainer.use_axes(self.axes)

    @property
    def methods(self) -> list[str]:
        return list(self.explainers)


@dataclass
class GridBatch:
    """Spectrograms of a few samples on one grid: ``grids`` float32 ``(B, rows, cols, C)`` and
    each sample's physical axes."""

    records: list[SampleRecord]
    grids: np.ndarray
    axes: list[SpectrogramAxes]

    @classmethod
    def of(cls, records: Sequence[SampleRecord], loaded: Sequence[Any]) -> GridBatch:
        """Stack loaded spectrograms of one shape; a NaN or infinite value is refused naming its file."""
        grids = np.stack([item.image for item in loaded]).astype(np.float32)
        if not np.isfinite(grids).all():
            bad = next(r for r, item in zip(records, loaded) if not np.isfinite(item.image).all())
            raise InputDataError(bad.path, "spectrogram contains NaN or infinite values")
        return cls(list(records), grids, [item.axes for item in loaded])

    @property
    def grid_shape(self) -> tuple[int, int]:
        return int(self.grids.shape[1]), int(self.grids.shape[2])


def load_grids(
    source: Any, records: Sequence[SampleRecord], expected_shape: Sequence[int] | None = None
) -> list[GridBatch]:
    """Load ``records`` into batches of one grid each.

    With ``expected_shape`` (the data set's image shape) every sample must have it: one batch.
    Without it, samples of differing shapes are explained one by one.
    """
    loaded = [source.load(r) for r in records]
    if expected_shape is not None:
        expected = tuple(int(v) for v in expected_shape)
        for record, item in zip(records, loaded):
            if item.image.shape[:2] != expected[:2]:
                raise InputDataError(
                    record.path, f"spectrogram grid {item.image.shape[:2]} differs from the data set's {expected[:2]}"
                )
            if item.image.shape != expected:
                raise InputDataError(
                    record.path, f"spectrogram shape {item.image.shape} differs from the data set's {expected}"
                )
        return [GridBatch.of(records, loaded)]
    if len({item.image.shape for item in loaded}) > 1:
        return [GridBatch.of([r], [item]) for r, item in zip(records, loaded)]
    return [GridBatch.of(records, loaded)]


@dataclass
class MethodMaps:
    """One method's maps of one head for a batch: the raw explanation at native resolution, the
    maps resampled to the grid ``(B, rows, cols)``, one attention summary per sample, the
    per-component maps on the grid ``(B, rows, cols, C)`` (gradient methods, channels layout) and one
    ``components`` entry per sample (:mod:`xai.components`)."""

    explanation: Explanation
    on_grid: np.ndarray
    attention: list[dict | None]
    channels: np.ndarray | None = None
    components: list[dict] = field(default_factory=list)


@dataclass
class Predictions:
    """Model inputs, class probabilities ``{head: (B, n_classes)}``, explained class indices ``{head: (B,)}``
    and the contrast classes of a contrastive target ``{head: (B,) | None}``."""

    inputs: np.ndarray
    probabilities: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    contrasts: dict[str, np.ndarray | None] = field(default_factory=dict)


@dataclass
class BatchExplanation:
    """A batch explained: its grids, predictions, ``maps[head][method]`` and the occlusion results
    ``reliance[method][head]`` (one :class:`SampleReliance` per sample)."""

    context: ExplainContext
    batch: GridBatch
    predictions: Predictions
    maps: dict[str, dict[str, MethodMaps]]
    reliance: dict[str, dict[str, list[SampleReliance]]] = field(default_factory=dict)

    def reliance_entry(self, method: str, head: str, i: int, perturb: bool = True) -> dict:
        """Sample ``i``'s occlusion numbers for ``head`` with the agreement of every other method's map
        (region perturbation only with ``perturb``)."""
        sample = self.reliance[method][head][i]
        heatmaps = {  # per-component maps where the method has them (channels layout), so components rank
            m: maps.on_grid[i] if maps.channels is None else maps.channels[i]
            for m, maps in self.maps[head].items()
            if m not in self.reliance
        }
        agreements = sample_agreements(self.context.explainers[method], sample, heatmaps, perturb)
        entry = reliance_entry(sample, agreements)
        classes = self.context.bundle.classes(head)
        for key in ("explained_class", "contrast_class"):
            entry[key] = None if entry[key] is None else classes[int(entry[key])]
        return entry

    def prediction(self, head: str, i: int) -> dict:
        """Sample ``i``'s ``prediction``, ``confidence``, ``probabilities`` (class -> p),
        ``explained_class``, ``true`` and ``correct`` (``None`` when the true class is not the model's)."""
        classes = self.context.bundle.classes(head)
        probs = self.predictions.probabilities[head][i]
        predicted = int(probs.argmax())
        prediction = classes[predicted]
        true = self.batch.records[i].true_class(head)
        explained = classes[int(self.predictions.targets[head][i])]
        return {
            "prediction": prediction,
            "confidence": float(probs[predicted]),
            "probabilities": {c: float(p) for c, p in zip(classes, probs)},
            "explained_class": explained,
            "target": self.context.target.describe(head, self.context.bundle.class_mappings, explained),
            "true": true,
            "correct": (prediction == true) if true in classes else None,
        }


def predict(context: ExplainContext, batch: GridBatch) -> Predictions:
    """Model inputs of the grids, the probabilities of every head and the classes to explain."""
    bundle = context.bundle
    inputs = bundle.prepare(batch.grids)
    probabilities = bundle.predict_probabilities(inputs)
    targets = {
        head: explained_classes(
            context.explained_class, head, bundle.class_mappings, probabilities[head].argmax(axis=1), batch.records
        )
        for head in context.heads
    }
    n = len(batch.records)
    contrasts = {head: context.target.contrast_indices(head, bundle.class_mappings, n) for head in context.heads}
    for head, contrast in contrasts.items():
        if contrast is not None and np.any(contrast == targets[head]):
            log.warning("%s: the explained class equals the contrast class for some samples: their maps are 0", head)
    return Predictions(inputs, probabilities, targets, contrasts)


def explain_batch(context: ExplainContext, batch: GridBatch) -> BatchExplanation:
    """Predict, then run every explainer on every head and resample its maps to the grid."""
    predictions = predict(context, batch)
    reliance = {
        name: measure_batch(
            explainer,
            batch.grids,
            [axes if context.axes is None else context.axes for axes in batch.axes],
            {head: predictions.targets[head] for head in context.heads},
            predictions.contrasts,
        )
        for name, explainer in context.explainers.items()
        if isinstance(explainer, Occlusion)
    }
    maps: dict[str, dict[str, MethodMaps]] = {}
    for head in context.heads:
        maps[head] = {}
        for name, explainer in context.explainers.items():
            if name in reliance:
                explanation = _reliance_explanation(explainer, name, head, reliance[name][head], predictions)
            else:
                explanation = explainer(
                    predictions.inputs,
                    head=head,
                    class_indices=predictions.targets[head],
                    contrast_indices=predictions.contrasts.get(head),
                )
            maps[head][name] = _method_maps(context, batch, explanation, getattr(explainer, "needs_features", False))
    return BatchExplanation(context, batch, predictions, maps, reliance)


def _method_maps(context: ExplainContext, batch: GridBatch, explanation: Explanation, is_cam: bool) -> MethodMaps:
    """One method's maps on the grid with their attention summaries and component entries."""
    on_grid = to_grid(explanation.maps, batch.grid_shape)
    first_axes = context.axes if context.axes is not None else batch.axes[0]
    preprocessing = getattr(context.bundle, "preprocessing", None)
    channels = grid_channel_maps(explanation, batch.grid_shape, first_axes, preprocessing)
    attention = _attention(context, batch, on_grid, explanation.native_shape, channels)
    components = [
        component_entry(
            explanation,
            on_grid[i],
            context.axes if context.axes is not None else batch.axes[i],
            None if channels is None else channels[i],
            is_cam,
        )
        for i in range(len(on_grid))
    ]
    return MethodMaps(explanation, on_grid, attention, channels, components)


def _reliance_explanation(
    explainer: Occlusion, name: str, head: str, samples: Sequence[SampleReliance], predictions: Predictions
) -> Explanation:
    """The occlusion maps of one head (each cell: its region's drop in the method's ``map_score``) as an Explanation."""
    unit = explainer.options.map_score
    maps = np.stack([sample.reliance_map(sample.result.map_unit(unit)) for sample in samples]).astype(np.float32)
    return Explanation(
        maps=maps,
        native_shape=(int(maps.shape[1]), int(maps.shape[2])),
        head=head,
        class_indices=predictions.targets[head],
        score_kind=explainer.score_kind(head),
        method=name,
    )


def _attention(
    context: ExplainContext,
    batch: GridBatch,
    on_grid: np.ndarray,
    native_shape: Sequence[int],
    channels: np.ndarray | None = None,
) -> list[dict | None]:
    """Per sample: the attention summary (with per-component ``channels`` maps when there are),
    the band mass shares, or ``None`` (``context.attention``)."""
    out: list[dict | None] = []
    for i in range(len(on_grid)):
        axes = context.axes if context.axes is not None else batch.axes[i]
        if context.attention == "summary":
            per_channel = None if channels is None else channels[i]
            out.append(attention_summary(on_grid[i], axes, native_shape=native_shape, per_channel=per_channel))
        elif context.attention == "bands":
            shares = band_shares(on_grid[i], axes, BANDS)
            out.append({band: value.get("mass_share") for band, value in shares.items()})
        else:
            out.append(None)
    return out
