"""Occlusion reliance of a pipeline batch per sample, its JSON entry and the attention-versus-reliance agreement.

:func:`measure_batch` runs :meth:`xai.explainers.occlusion.Occlusion.reliance` once for every group
of samples that share a grid (one call for the whole batch in the data-set mode), for every head
at once, on the classes the pipeline explains. :func:`sample_agreements` compares every other
method's heatmap with the sample's region drops (:mod:`xai.reliance.agreement`: Spearman over the
regions and, optionally, region perturbation after Samek et al., 2017), and :func:`reliance_entry`
gathers one head's numbers for ``visualization_results.json`` and the data-set journal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.jsonvalues import json_value
from geomag.axes import SpectrogramAxes
from xai.explainers.occlusion import Occlusion
from xai.reliance.agreement import agreement, agreement_sentence, region_attention_mass, region_perturbation
from xai.reliance.result import RelianceResult

log = logging.getLogger(__name__)

__all__ = ["SampleReliance", "measure_batch", "reliance_entry", "sample_agreements", "top_band_segment"]


@dataclass(frozen=True, eq=False)
class SampleReliance:
    """Row ``row`` of a :class:`RelianceResult`: one sample and head, with the sample's grid and axes."""

    result: RelianceResult
    row: int
    grid: np.ndarray
    axes: SpectrogramAxes

    @property
    def unit(self) -> str:
        """The score unit of the drops (``logit``, or ``probability`` when the logit is unreachable)."""
        return self.result.map_unit("logit")

    def drops(self, unit: str | None = None) -> np.ndarray:
        """``(R,)`` region drops in ``unit`` (default: :attr:`unit`)."""
        return self.result.drops(unit or self.unit)[self.row]

    def reliance_map(self, unit: str | None = None) -> np.ndarray:
        """``(rows, cols)`` reliance map: each cell carries the summed drop of its regions."""
        return self.result.reliance_map(unit or self.unit)[self.row]

    def component_maps(self, unit: str | None = None) -> np.ndarray:
        """``(rows, cols, channels)``: every cell carries its region's drop (per component in the channels layout)."""
        return self.result.reliance_map_channels(unit or self.unit)[self.row]

    def npz_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The region table and per-component map as NPZ arrays named ``<prefix>__...`` (no pickles):
        ``__components`` ``(rows, cols, C)``, ``__region_band`` / ``_segment`` / ``_component`` (strings)
        and ``__region_drop_logit`` / ``_probability`` ``(R,)``."""
        regions = self.result.regions.regions
        return {
            f"{prefix}__components": self.component_maps(),
            f"{prefix}__region_band": np.array([r.band for r in regions]),
            f"{prefix}__region_segment": np.array([r.segment for r in regions]),
            f"{prefix}__region_component": np.array([r.component for r in regions]),
            f"{prefix}__region_drop_logit": self.result.drop_logit[self.row].astype(np.float32),
            f"{prefix}__region_drop_probability": self.result.drop_probability[self.row].astype(np.float32),
        }

    def figure_entry(self, method: str, explained_class: str | None = None) -> dict:
        """What :func:`xai.render.reliance.draw_reliance` draws: maps, unit and marginal drops."""
        unit = self.unit
        marginals: dict[str, dict[str, float]] = {}
        for item in self.result.marginals:
            value = (item.drop_logit if unit == "logit" else item.drop_probability)[self.row]
            marginals.setdefault(item.kind, {})[item.name] = float(value)
        return {
            "method": method,
            "map": self.reliance_map(),
            "components": self.component_maps(),
            "unit": unit,
            "marginals": marginals,
            "explained_class": explained_class,
        }


def _axes_key(axes: SpectrogramAxes) -> str:
    return json.dumps(json_value(axes.to_dict()), sort_keys=True)


def measure_batch(
    explainer: Occlusion,
    grids: np.ndarray,
    axes: Sequence[SpectrogramAxes],
    targets: Mapping[str, np.ndarray],
    contrasts: Mapping[str, np.ndarray | None] | None = None,
) -> dict[str, list[SampleReliance]]:
    """``{head: [SampleReliance per sample]}`` for grids ``(B, rows, cols, C)`` with each sample's axes.

    ``targets``: the explained class per sample ``{head: (B,)}``; ``contrasts``: the contrast class
    per sample ``{head: (B,) | None}`` of a contrastive target (none given: the method's
    ``contrast_class`` option). Samples sharing their axes go through one :meth:`Occlusion.reliance` call.
    """
    given = {head: c for head, c in (contrasts or {}).items() if c is not None}
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(axes):
        groups.setdefault(_axes_key(item), []).append(i)
    out: dict[str, list[SampleReliance | None]] = {head: [None] * len(grids) for head in targets}
    for members in groups.values():
        index = np.asarray(members)
        group_axes = axes[members[0]]
        results = explainer.reliance(
            grids[index],
            group_axes,
            heads=list(targets),
            class_indices={head: np.asarray(t)[index] for head, t in targets.items()},
            contrast_class={head: np.asarray(given[head])[index] if head in given else None for head in targets}
            if given
            else None,
        )
        for head, result in results.items():
            for row, i in enumerate(members):
                out[head][i] = SampleReliance(result, row, grids[i], group_axes)
    return out  # type: ignore[return-value]


def sample_agreements(
    explainer: Occlusion, sample: SampleReliance, heatmaps: Mapping[str, np.ndarray], perturb: bool = True
) -> dict[str, dict]:
    """Attention versus reliance of every method's ``(rows, cols)`` heatmap for one sample and head.

    With ``perturb`` and the method option ``agreement_steps > 0``, regions are also removed in each
    map's order against ``agreement_orders`` random orders (region perturbation, Samek et al., 2017).
    """
    result, regions, options = sample.result, sample.result.regions, explainer.options
    drops = sample.drops()
    contrast = None if result.contrast_classes is None else int(result.contrast_classes[sample.row])
    target = int(result.classes[sample.row])
    unit = sample.unit

    def remove(masks: np.ndarray) -> np.ndarray:
        logit, probability = explainer.drops_for_masks(
            sample.grid[None], masks, result.head, class_indices=target, contrast_class=contrast, axes=sample.axes
        )
        return (logit if unit == "logit" else probability)[0]

    out = {}
    for method, heatmap in heatmaps.items():
        perturbation = None
        if perturb and options.agreement_steps > 0 and len(regions) > 1:
            mass = region_attention_mass(heatmap, regions)
            steps = min(int(options.agreement_steps), len(regions))
            perturbation = region_perturbation(
                remove, regions, mass, steps=steps, n_random=int(options.agreement_orders), seed=int(options.seed)
            )
        found = agreement(method, heatmap, drops, regions, perturbation)
        out[method] = {**found.summary(), "sentence": agreement_sentence(found, unit)}
    return out


def top_band_segment(sample: SampleReliance, unit: str | None = None) -> dict:
    """The band x time segment (drops in ``unit`` summed over its components) with the largest drop."""
    totals: dict[tuple[str, str], float] = {}
    for region, drop in zip(sample.result.regions.regions, sample.drops(unit)):
        key = (region.band, region.segment)
        totals[key] = totals.get(key, 0.0) + float(drop)
    (band, segment), drop = max(totals.items(), key=lambda item: item[1])
    return {"band": band, "segment": segment, "drop": drop}


def reliance_entry(sample: SampleReliance, agreements: Mapping[str, dict] | None = None) -> dict:
    """One head's reliance for the results JSON: score, region table, marginals, the top regions and
    the agreement of every other method (JSON-ready: NaN becomes ``null``)."""
    summary = sample.result.sample_summary(sample.row)
    drops = sample.drops()
    top = int(np.argmax(drops))
    region = sample.result.regions.regions[top]
    summary.update(
        unit=sample.unit,
        top_region={"band": region.band, "segment": region.segment, "component": region.component,
                    "drop": float(drops[top])},
        top_band_segment=top_band_segment(sample),
        agreement=dict(agreements or {}),
    )  # fmt: skip
    return json_value(summary)
