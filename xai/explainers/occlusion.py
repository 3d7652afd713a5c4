"""Occlusion reliance in physical regions: how much a head's score drops when a band x hour x component is replaced.

Occlusion (Zeiler & Fergus, 2014, "Visualizing and Understanding Convolutional Networks", ECCV)
measures what a prediction *depends on*, where a heatmap only shows where gradients or activations
are large. Here the occluded patches are physical regions of the spectrogram grid
(:mod:`xai.reliance.regions`: frequency band x time segment x component), each replaced by a
reference that stays near the data (:mod:`xai.reliance.references`: the per-frequency median
background, or ROAD's noisy linear imputation, Rong et al., 2022), and the drop
``score(original) - score(occluded)`` of the explained logit and probability is recorded
(:mod:`xai.reliance.result`). Whole bands, hours and components are also occluded at once.

All occluded copies of a batch (every sample x every region and group) run through one compiled
``tf.function`` of the model in chunks of ``chunk_size`` copies; the next chunk is assembled in a
background thread while the current one runs.

Two entry points:

* :meth:`Occlusion.explain` (the :class:`~xai.explainers.base.Explainer` contract): model inputs in,
  an :class:`~xai.explainers.base.Explanation` whose maps are the reliance map on the spectrogram
  grid (``(B, rows, cols)``; needs the grid's axes: ``axes=`` or :meth:`Occlusion.use_axes`); the
  full results stay in ``last_results``;
* :meth:`Occlusion.reliance`: spectrogram-grid images and their axes in (the bundle's resizing and
  preprocessing are applied after occlusion), one :class:`RelianceResult` per head from the same
  forward passes.

Targets: the predicted class (``class_indices=None``), given classes, or a contrast
``logit A - logit B`` with ``contrast_class`` (an index, a class name, or ``{head: ...}``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import tensorflow as tf

from core.errors import ConfigError, InputDataError
from core.text import plain
from geomag.axes import SpectrogramAxes
from models.graph import SCORE_PROBABILITY
from models.loading import apply_preprocessing
from xai.explainers.base import DEFAULT_HEADS, Explainer, Explanation, graph_cache
from xai.reliance.references import BACKGROUNDS, REFERENCES, NoisyLinearImputer, median_reference
from xai.reliance.regions import RegionConfig, RegionSet, build_regions
from xai.reliance.result import SCORE_UNITS, Marginal, RelianceResult, explained_scores

log = logging.getLogger(__name__)

__all__ = ["Occluded", "Occlusion", "OcclusionOptions", "run_occlusions"]

Forward = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass(frozen=True)
class OcclusionOptions:
    """The method's options (``conf/method/occlusion.yaml``)."""

    regions: RegionConfig = RegionConfig()
    reference: str = "median"  # median | noisy_linear
    background: str = "pooled"  # pooled / sample / batch: whose time medians (xai.reliance.references)
    noise: float = 0.01  # noisy_linear: noise std as a fraction of the sample's channel std
    seed: int = 0
    map_score: str = "logit"  # what explain()'s maps carry: logit | probability drops
    contrast_class: Any = None  # None | class index | class name | {head: index or name}
    chunk_size: int = 64  # occluded copies per compiled forward call
    agreement_steps: int = 10  # region perturbation of the other methods' maps: regions removed (0: off)
    agreement_orders: int = 3  # random removal orders the perturbation is compared with

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", RegionConfig.from_config(self.regions))
        checks = (
            (self.reference in REFERENCES, f"reference must be one of {', '.join(REFERENCES)}", self.reference),
            (self.background in BACKGROUNDS, f"background must be one of {', '.join(BACKGROUNDS)}", self.background),
            (self.map_score in SCORE_UNITS, f"map_score must be one of {', '.join(SCORE_UNITS)}", self.map_score),
            (_positive_int(self.chunk_size), "chunk_size must be a positive integer", self.chunk_size),
            (_count(self.agreement_steps), "agreement_steps must be an integer >= 0", self.agreement_steps),
            (_positive_int(self.agreement_orders), "agreement_orders must be >= 1", self.agreement_orders),
            (_number(self.noise) and self.noise >= 0, "noise must be a number >= 0", self.noise),
            (_number(self.seed) and int(self.seed) == self.seed, "seed must be an integer", self.seed),
        )
        for ok, problem, value in checks:
            if not ok:
                raise ConfigError(f"method occlusion: {problem}, got {value!r}")

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> OcclusionOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"method 'occlusion': unknown option(s) {', '.join(unknown)}")
        return cls(**{k: plain(v) if k != "regions" else v for k, v in options.items()})


def _positive_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def _count(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _as_axes(axes: Any) -> SpectrogramAxes | None:
    if axes is None or isinstance(axes, SpectrogramAxes):
        return axes
    data = plain(axes)
    if isinstance(data, Mapping):
        return SpectrogramAxes.from_dict(dict(data))
    raise ConfigError(
        f"method occlusion: axes must be SpectrogramAxes or their to_dict() form, got {type(axes).__name__}"
    )


# --------------------------------------------------------------------------- engine
@dataclass(frozen=True, eq=False)
class Occluded:
    """One occluded copy: sample ``sample`` with the flat cells ``cells`` set to ``values``."""

    sample: int
    cells: np.ndarray
    values: np.ndarray


def run_occlusions(
    images: np.ndarray, jobs: Sequence[Occluded], forward: Forward, chunk_size: int = 64
) -> dict[str, np.ndarray]:
    """Scores ``{head: (len(jobs), n_classes)}`` of every occluded copy, ``chunk_size`` copies per forward call.

    The next chunk is assembled in a background thread while the model runs on the current one.
    """
    x = np.ascontiguousarray(images, dtype=np.float32)
    flat = x.reshape(x.shape[0], -1)
    starts = list(range(0, len(jobs), int(chunk_size)))

    def build(start: int) -> np.ndarray:
        part = jobs[start : start + int(chunk_size)]
        out = flat[[job.sample for job in part]]
        for row, job in enumerate(part):
            out[row, job.cells] = job.values
        return out.reshape(len(part), *x.shape[1:])

    collected: dict[str, list[np.ndarray]] = {}
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(build, starts[0]) if starts else None
        for k in range(len(starts)):
            chunk = pending.result()
            pending = pool.submit(build, starts[k + 1]) if k + 1 < len(starts) else None
            for head, scores in forward(chunk).items():
                collected.setdefault(head, []).append(np.asarray(scores))
    return {head: np.concatenate(parts) for head, parts in collected.items()}


@dataclass
class _Request:
    """One measurement: images in the space the forward call takes, the regions on the grid and in
    that space, the preprocessing still to apply, the targets ``{head: (classes | None, contrast | None)}``
    and the median background."""

    images: np.ndarray
    grid_regions: RegionSet
    regions: RegionSet
    preprocessing: str
    targets: dict[str, tuple[np.ndarray | None, np.ndarray | None]]
    background: str | np.ndarray


# --------------------------------------------------------------------------- explainer
class Occlusion(Explainer):
    """Region occlusion of every head's explained score; see the module docstring."""

    name = "occlusion"
    needs_features = False
    supports_contrast = True

    def __init__(
        self,
        model: Any,
        target_layer: str | None = None,
        heads: Sequence[str] | None = DEFAULT_HEADS,
        axes: SpectrogramAxes | Mapping | None = None,
        **options: Any,
    ) -> None:
        self.options = OcclusionOptions.of(options)
        super().__init__(model, target_layer=target_layer, heads=heads)
        self.bundle = model if hasattr(model, "class_mappings") and hasattr(model, "prepare") else None
        self.preprocessing = str(getattr(self.bundle, "preprocessing", None) or "none")
        self.axes = _as_axes(axes)
        self.last_results: dict[str, RelianceResult] = {}

    def use_axes(self, axes: SpectrogramAxes | Mapping) -> Occlusion:
        """Set the spectrogram grid's axes that :meth:`explain` cuts into regions; returns ``self``."""
        self.axes = _as_axes(axes)
        return self

    def score_kind(self, head: str) -> str:
        if self.options.map_score == SCORE_PROBABILITY:
            return SCORE_PROBABILITY
        return self.graph.score_kind[head]

    # ------------------------------------------------------------------ Explainer contract
    def explain(
        self, inputs: np.ndarray, head: str, class_indices: np.ndarray | None, contrast_indices: Any = None
    ) -> Explanation:
        """Reliance map ``(B, rows, cols)`` on the grid of ``self.axes`` for prepared model ``inputs``.

        ``contrast_indices`` (class B per sample, or one index) explains ``score A - score B``;
        ``None`` uses the ``contrast_class`` option. Regions are carried to the input resolution by
        nearest cell centre (and to BGR order for ``imagenet_caffe`` channel grids); the reference is
        computed on the inputs themselves.
        """
        if self.axes is None:
            raise ConfigError(
                "method occlusion needs the spectrogram axes: pass axes=... or call use_axes(axes) before explain()"
            )
        x, classes = self.prepare(inputs, head, class_indices)
        grid_regions = build_regions(self.axes, self.options.regions, x.shape[-1])
        flip = self.preprocessing == "imagenet_caffe" and self.axes.layout == "channels"
        same = x.shape[1:3] == self.axes.shape and not flip
        regions = grid_regions if same else grid_regions.resampled(x.shape[1:3], flip_channels=flip)
        spec = self.options.contrast_class if contrast_indices is None else contrast_indices
        contrast = self._contrast(head, spec, x.shape[0])
        request = _Request(x, grid_regions, regions, "none", {head: (classes, contrast)}, self.options.background)
        self.last_results = self._measure(request)
        return self.finish(self.last_results[head].reliance_map(self.options.map_score), head, classes)

    # ------------------------------------------------------------------ richer API
    def reliance(
        self,
        grids: np.ndarray,
        axes: SpectrogramAxes,
        heads: Sequence[str] | None = None,
        class_indices: Mapping[str, Any] | None = None,
        contrast_class: Any = None,
        background: str | np.ndarray | None = None,
    ) -> dict[str, RelianceResult]:
        """Occlusion results ``{head: RelianceResult}`` for spectrogram-grid images ``(B, rows, cols, C)``.

        ``class_indices``: ``{head: (B,) indices | index | None}`` (missing/``None``: the predicted
        class); ``contrast_class``: as the option (``None``: the option's); ``background``:
        ``sample`` | ``batch`` | an array broadcastable to the grids (e.g. a data set's median
        background), ``None``: the option's.
        """
        x = self._check_grids(grids, axes)
        heads = tuple(self.heads if heads is None else (self.check_head(h) for h in heads))
        given = dict(class_indices or {})
        spec = self.options.contrast_class if contrast_class is None else contrast_class
        targets = {}
        for head in heads:
            chosen = given.get(head)
            classes = None if chosen is None else self.check_classes(head, chosen, x.shape[0])
            targets[head] = (classes, self._contrast(head, spec, x.shape[0]))
        regions = build_regions(axes, self.options.regions, x.shape[-1])
        reference = self.options.background if background is None else background
        return self._measure(_Request(x, regions, regions, self.preprocessing, targets, reference))

    def drops_for_masks(
        self,
        grids: np.ndarray,
        masks: np.ndarray,
        head: str,
        class_indices: Any = None,
        contrast_class: Any = None,
        axes: SpectrogramAxes | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(drop_logit, drop_probability)``, each ``(B, K)``, of occluding arbitrary cell masks.

        ``masks``: boolean ``(K, rows, cols, C)`` shared by the batch or ``(B, K, rows, cols, C)`` per
        sample (e.g. cumulative region removals for :func:`xai.reliance.agreement.region_perturbation`).
        ``axes`` keeps noisy linear imputation inside each panel of a stacked grid.
        """
        x = self._check_grids(grids, axes)
        m = np.asarray(masks, dtype=bool)
        m = m[None] if m.ndim == 4 else m
        if m.ndim != 5 or m.shape[2:] != x.shape[1:] or m.shape[0] not in (1, x.shape[0]):
            raise InputDataError(
                None, f"masks must be (K, {', '.join(map(str, x.shape[1:]))}) or (B, K, ...), got {np.shape(masks)}"
            )
        self.check_head(head)
        forward = self._forward(self.preprocessing, x.shape[1:])
        original = forward(x)
        classes = (
            original[head].argmax(axis=1)
            if class_indices is None
            else self.check_classes(head, class_indices, x.shape[0])
        )
        contrast = self._contrast(
            head, self.options.contrast_class if contrast_class is None else contrast_class, x.shape[0]
        )
        groups = np.zeros(x.shape[1], np.int64) if axes is None or axes.layout == "channels" else axes.row_component
        jobs = self._jobs(x, m, groups, self.options.background)
        raw = run_occlusions(x, jobs, forward, self.options.chunk_size)[head].reshape(x.shape[0], m.shape[1], -1)
        return self._drops(head, original[head], raw, classes, contrast)

    # ------------------------------------------------------------------ internals
    def _check_grids(self, grids: np.ndarray, axes: SpectrogramAxes | None) -> np.ndarray:
        x = np.asarray(grids, dtype=np.float32)
        x = x[None] if x.ndim == 3 else x
        if x.ndim != 4 or min(x.shape, default=0) < 1 or x.shape[-1] != self.input_shape[-1]:
            raise InputDataError(
                None, f"grids must be (B, rows, cols, {self.input_shape[-1]}), got shape {np.shape(grids)}"
            )
        if not np.isfinite(x).all():
            raise InputDataError(None, "grids contain NaN or infinite values")
        if axes is not None and tuple(axes.shape) != x.shape[1:3]:
            raise InputDataError(None, f"grids of {x.shape[1:3]} cells do not match the axes' grid {axes.shape}")
        return x

    def _contrast(self, head: str, spec: Any, batch: int) -> np.ndarray | None:
        """The contrast class per sample (``None``: no contrast) from an index, a class name or ``{head: ...}``."""
        spec = plain(spec)
        if isinstance(spec, Mapping):
            spec = spec.get(head)
        if spec is None:
            return None
        if isinstance(spec, str):
            names = self.bundle.class_mappings.classes(head) if self.bundle is not None else None
            if names is None or spec not in names:
                known = (
                    f"classes of head '{head}': {', '.join(names)}"
                    if names
                    else "no class names without a model bundle"
                )
                raise ConfigError(f"method occlusion: contrast_class {spec!r} is unknown ({known})")
            spec = names.index(spec)
        return self.check_classes(head, spec, batch)

    def _forward(self, preprocessing: str, image_shape: Sequence[int]) -> Forward:
        """numpy images -> ``{head: scores}``: preprocessing, then one compiled resize + model call."""
        cache = graph_cache(self.graph).setdefault("occlusion_forward", {})
        key = tuple(int(v) for v in image_shape)
        if key not in cache:
            model, heads, size = self.graph.model, self.heads, tuple(self.input_shape[:2])
            resize = key[:2] != size

            def call(images: tf.Tensor) -> dict[str, tf.Tensor]:
                inputs = tf.image.resize(images, size, method="bilinear") if resize else images
                outputs = model(inputs, training=False)
                return {head: outputs[head] for head in heads}

            spec = tf.TensorSpec((None, *key), tf.float32)
            cache[key] = tf.function(call, input_signature=[spec], reduce_retracing=True)
        compiled = cache[key]

        def forward(images: np.ndarray) -> dict[str, np.ndarray]:
            prepared = apply_preprocessing(images, preprocessing) if preprocessing != "none" else images
            return {head: value.numpy() for head, value in compiled(tf.constant(prepared, tf.float32)).items()}

        return forward

    def _jobs(self, images: np.ndarray, masks: np.ndarray, row_groups: np.ndarray, background: Any) -> list[Occluded]:
        """One occluded copy per sample and mask (``masks``: ``(1 | B, J, rows, cols, C)``), sample-major."""
        batch, n_masks = images.shape[0], masks.shape[1]
        reference = median_reference(images, background)
        flat_reference = reference.reshape(batch, -1)
        imputer = None
        if self.options.reference == "noisy_linear":
            imputer = NoisyLinearImputer(images.shape[1:3], row_groups, self.options.noise, int(self.options.seed))
        jobs: list[list[Occluded | None]] = [[None] * n_masks for _ in range(batch)]
        for owner in range(masks.shape[0]):
            rows = np.arange(batch) if masks.shape[0] == 1 else np.array([owner])
            for j in range(n_masks):
                mask = masks[owner, j]
                cells = np.flatnonzero(mask.ravel())
                if imputer is None:
                    filled = flat_reference[np.ix_(rows, cells)]
                else:
                    filled = imputer.impute(images[rows], mask, reference[rows]).reshape(rows.size, -1)[:, cells]
                for position, s in enumerate(rows):
                    jobs[s][j] = Occluded(int(s), cells, filled[position])
        return [job for per_sample in jobs for job in per_sample]

    def _drops(
        self, head: str, original: np.ndarray, occluded: np.ndarray, classes: np.ndarray, contrast: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        kind = self.graph.score_kind[head]
        logit0, prob0 = explained_scores(original, kind, classes, contrast)
        c = None if contrast is None else contrast[:, None]
        logit, prob = explained_scores(occluded, kind, classes[:, None], c)
        return logit0[:, None] - logit, prob0[:, None] - prob

    def _measure(self, request: _Request) -> dict[str, RelianceResult]:
        x, regions, grid_regions = request.images, request.regions, request.grid_regions
        forward = self._forward(request.preprocessing, x.shape[1:])
        original = forward(x)
        boxes = [r.box for r in regions.regions] + [box for _, _, box in regions.marginal_boxes()]
        masks = np.stack([box.mask() for box in boxes])[None]
        jobs = self._jobs(x, masks, regions.row_groups, request.background)
        log.debug("occlusion: %d samples x %d regions/groups = %d forward passes", x.shape[0], len(boxes), len(jobs))
        occluded = run_occlusions(x, jobs, forward, self.options.chunk_size)
        results = {}
        n_regions = len(regions)
        for head, (classes, contrast) in request.targets.items():
            classes = original[head].argmax(axis=1).astype(np.int32) if classes is None else classes
            raw = occluded[head].reshape(x.shape[0], len(boxes), -1)
            drop_logit, drop_prob = self._drops(head, original[head], raw, classes, contrast)
            marginals = []
            for j, (kind, name, _) in enumerate(grid_regions.marginal_boxes()):
                members = grid_regions.members(kind, name)
                marginals.append(Marginal(
                    kind, name, drop_logit[:, n_regions + j], drop_prob[:, n_regions + j],
                    drop_logit[:, members].sum(axis=1), drop_prob[:, members].sum(axis=1),
                ))  # fmt: skip
            score_logit, score_prob = explained_scores(original[head], self.graph.score_kind[head], classes, contrast)
            results[head] = RelianceResult(
                head=head, regions=grid_regions, score_kind=self.graph.score_kind[head],
                reference=self.options.reference, classes=classes, contrast_classes=contrast,
                score_logit=score_logit, score_probability=score_prob,
                drop_logit=drop_logit[:, :n_regions], drop_probability=drop_prob[:, :n_regions], marginals=marginals,
            )  # fmt: skip
        return results
