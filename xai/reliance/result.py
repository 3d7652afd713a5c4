"""Occlusion reliance of one head for a batch: score drops per region, whole-group marginals, maps and tables.

``drop = score(original) - score(occluded)`` in two units: the explained **logit** (or, for a
contrastive target, the logit difference ``logit A - logit B``) and the softmax **probability**
(``p A - p B`` for a contrast). A positive drop means the prediction relied on the region's content.
Marginals answer a different question than region drops: occluding a whole band, hour or component
at once (``drop``) versus the sum of its regions' separate drops (``summed``); the two differ when
the model combines regions non-additively.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.errors import ConfigError
from models.graph import SCORE_LOGIT, SCORE_PROBABILITY
from xai.reliance.regions import KINDS, RegionSet

__all__ = ["SCORE_UNITS", "Marginal", "RelianceResult", "explained_scores"]

SCORE_UNITS = ("logit", "probability")


def _softmax(values: np.ndarray) -> np.ndarray:
    z = values - values.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def explained_scores(
    raw: np.ndarray, score_kind: str, classes: np.ndarray, contrast: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(logit, probability)`` of the explained target for every row of ``raw`` ``(..., n_classes)``.

    ``raw`` holds the head's graph scores (logits when ``score_kind == "logit"``, else
    probabilities, and then the logit is NaN); ``classes`` / ``contrast`` broadcast to ``raw[..., 0]``.
    """
    values = np.asarray(raw, dtype=np.float64)
    probabilities = _softmax(values) if score_kind == SCORE_LOGIT else values
    logits = values if score_kind == SCORE_LOGIT else np.full_like(values, np.nan)
    target = np.broadcast_to(np.asarray(classes), values.shape[:-1])[..., None]
    logit = np.take_along_axis(logits, target, axis=-1)[..., 0]
    probability = np.take_along_axis(probabilities, target, axis=-1)[..., 0]
    if contrast is not None:
        other = np.broadcast_to(np.asarray(contrast), values.shape[:-1])[..., None]
        logit = logit - np.take_along_axis(logits, other, axis=-1)[..., 0]
        probability = probability - np.take_along_axis(probabilities, other, axis=-1)[..., 0]
    return logit, probability


@dataclass
class Marginal:
    """One whole band, segment or component occluded at once, and the sum of its regions' drops, ``(B,)`` each."""

    kind: str
    name: str
    drop_logit: np.ndarray
    drop_probability: np.ndarray
    summed_logit: np.ndarray
    summed_probability: np.ndarray

    def sample(self, i: int) -> dict:
        return {
            "drop_logit": float(self.drop_logit[i]),
            "drop_probability": float(self.drop_probability[i]),
            "summed_drop_logit": float(self.summed_logit[i]),
            "summed_drop_probability": float(self.summed_probability[i]),
        }


@dataclass
class RelianceResult:
    """Occlusion drops of one head for a batch: ``drop_*`` ``(B, R)`` over ``regions`` and the marginals."""

    head: str
    regions: RegionSet
    score_kind: str
    reference: str
    classes: np.ndarray
    contrast_classes: np.ndarray | None
    score_logit: np.ndarray
    score_probability: np.ndarray
    drop_logit: np.ndarray
    drop_probability: np.ndarray
    marginals: list[Marginal] = field(default_factory=list)

    @property
    def batch(self) -> int:
        return int(self.drop_logit.shape[0])

    def drops(self, unit: str = "logit") -> np.ndarray:
        """``(B, R)`` drops in ``unit`` (``logit`` or ``probability``)."""
        if unit not in SCORE_UNITS:
            raise ConfigError(f"occlusion score unit must be one of {', '.join(SCORE_UNITS)}, got {unit!r}")
        return self.drop_logit if unit == "logit" else self.drop_probability

    def map_unit(self, unit: str = "logit") -> str:
        """The unit a map in ``unit`` really carries (``probability`` when the logit is unreachable)."""
        return SCORE_PROBABILITY if unit == "probability" or self.score_kind != SCORE_LOGIT else SCORE_LOGIT

    def reliance_map_channels(self, unit: str = "logit") -> np.ndarray:
        """``(B, rows, cols, channels)`` float32: every cell carries its region's drop."""
        drops = self.drops(self.map_unit(unit))
        out = np.zeros((self.batch, *self.regions.shape), dtype=np.float64)
        for r, region in enumerate(self.regions.regions):
            out[:, region.box.mask()] = drops[:, r, None]
        return out.astype(np.float32)

    def reliance_map(self, unit: str = "logit") -> np.ndarray:
        """``(B, rows, cols)`` float32 on the grid: each cell carries the summed drop of the regions that
        contain it (its region's drop; one region per component in the ``channels`` layout)."""
        drops = self.drops(self.map_unit(unit))
        out = np.zeros((self.batch, *self.regions.shape[:2]), dtype=np.float64)
        for r, region in enumerate(self.regions.regions):
            out[:, region.box.cell_mask()] += drops[:, r, None]
        return out.astype(np.float32)

    def marginal(self, kind: str, name: str) -> Marginal:
        for item in self.marginals:
            if item.kind == kind and item.name == name:
                return item
        raise ConfigError(f"no {kind} named {name!r} in the occlusion marginals")

    def region_rows(self, i: int) -> list[dict]:
        """Sample ``i``'s regions: band, segment, component and both drops."""
        return [
            {"band": region.band, "segment": region.segment, "component": region.component,
             "drop_logit": float(self.drop_logit[i, r]), "drop_probability": float(self.drop_probability[i, r])}
            for r, region in enumerate(self.regions.regions)
        ]  # fmt: skip

    def table(self) -> list[dict]:
        """One row per sample and region: sample index, band, segment, component and both drops."""
        return [{"sample": i, **row} for i in range(self.batch) for row in self.region_rows(i)]

    def sample_summary(self, i: int) -> dict:
        """Sample ``i``'s numbers as plain data (NaN where the logit is unreachable; use
        :func:`core.jsonvalues.json_value` before writing JSON)."""
        marginals: dict[str, dict] = {kind: {} for kind in KINDS}
        for item in self.marginals:
            marginals[item.kind][item.name] = item.sample(i)
        return {
            "head": self.head,
            "explained_class": int(self.classes[i]),
            "contrast_class": None if self.contrast_classes is None else int(self.contrast_classes[i]),
            "score_kind": self.score_kind,
            "reference": self.reference,
            "score": {"logit": float(self.score_logit[i]), "probability": float(self.score_probability[i])},
            "regions": self.region_rows(i),
            "marginals": marginals,
        }
