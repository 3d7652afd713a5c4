"""Does a heatmap's attention agree with occlusion reliance? Region attention mass, Spearman rho, AOPC, one sentence.

* **attention mass** of a region: the heatmap's sum over the region's cells, a ``(rows, cols)`` map
  being shared equally by the channels of a cell (so in the ``channels`` layout the three component
  regions of one band x hour get a third each, tie, and are removed in H, D, Z order: pass a
  per-channel ``(rows, cols, C)`` heatmap to rank components); reported as a share of the total mass;
* **rank agreement**: Spearman's rho over the regions between attention mass and occlusion drop;
* **region perturbation** (Samek, Binder, Montavon, Lapuschkin & Mueller, 2017, "Evaluating the
  Visualization of What a Deep Neural Network Has Learned", IEEE TNNLS): regions are removed
  cumulatively, most attended first (MoRF), and the area over the perturbation curve
  ``AOPC = 1 / (L + 1) * sum_{k=0..L} (f(x) - f(x_MoRF^(k)))`` is compared with the same removal in
  random orders. A heatmap whose ranking matters has an AOPC clearly above the random one.

Everything here is numpy on given arrays; the model enters only through the ``remove`` callable of
:func:`region_perturbation` (e.g. :meth:`xai.explainers.occlusion.Occlusion.drops_for_masks`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from core.errors import ConfigError, InputDataError
from core.names import METHOD_TITLES
from xai.reliance.regions import RegionSet

log = logging.getLogger(__name__)

__all__ = [
    "Agreement",
    "aopc",
    "agreement",
    "agreement_sentence",
    "cumulative_masks",
    "region_attention_mass",
    "region_perturbation",
    "removal_order",
    "spearman",
]

Remove = Callable[[np.ndarray], np.ndarray]
AGREES, PARTLY = 0.6, 0.3  # rho thresholds of the sentence


def region_attention_mass(heatmap: np.ndarray, regions: RegionSet) -> np.ndarray:
    """Attention mass ``(R,)`` of every region for one ``(rows, cols)`` or ``(rows, cols, C)`` heatmap.

    Negative values are clipped to 0 (as in :mod:`xai.attention`); NaN or infinite values are refused.
    """
    h = np.asarray(heatmap, dtype=np.float64)
    if h.shape not in (regions.shape[:2], regions.shape):
        raise InputDataError(None, f"heatmap of shape {h.shape} does not lie on the regions' grid {regions.shape[:2]}")
    if not np.isfinite(h).all():
        raise InputDataError(None, "heatmap contains NaN or infinite values")
    h = np.clip(h, 0.0, None)
    per_channel = np.repeat(h[..., None] / regions.shape[2], regions.shape[2], axis=2) if h.ndim == 2 else h
    return np.array([per_channel[region.box.mask()].sum() for region in regions.regions])


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of two equally long vectors (ties get mean ranks); ``None`` when undefined."""
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InputDataError(None, f"cannot correlate {x.size} attention masses with {y.size} drops")
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def removal_order(values: np.ndarray) -> np.ndarray:
    """Region indices by descending value (stable: ties keep the region order)."""
    return np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")


def cumulative_masks(regions: RegionSet, order: np.ndarray, steps: int) -> np.ndarray:
    """Boolean ``(steps, rows, cols, C)``: step ``k`` removes the first ``k + 1`` regions of ``order``."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= len(regions):
        raise ConfigError(f"region perturbation steps must be an integer in 1..{len(regions)}, got {steps!r}")
    masks = np.empty((steps, *regions.shape), dtype=bool)
    current = np.zeros(regions.shape, dtype=bool)
    for k in range(steps):
        current |= regions.regions[int(order[k])].box.mask()
        masks[k] = current
    return masks


def aopc(drops: np.ndarray) -> float:
    """Area over the perturbation curve of drops ``(L,)`` after 1..L removals (the k = 0 drop is 0)."""
    values = np.asarray(drops, dtype=np.float64).ravel()
    return float(values.sum() / (values.size + 1))


def region_perturbation(
    remove: Remove,
    regions: RegionSet,
    attention_mass: np.ndarray,
    steps: int = 10,
    n_random: int = 5,
    seed: int = 0,
) -> dict:
    """MoRF region perturbation of one sample (Samek et al., 2017) against ``n_random`` random orders.

    ``remove(masks (K, rows, cols, C)) -> drops (K,)`` returns the score drop after occluding each
    mask; it is called once with the attention-ordered and the random-ordered cumulative masks.
    Returns ``aopc``, ``aopc_random`` (mean over random orders), ``aopc_random_sd``, the ``curve``
    (drops after 1..steps removals) and ``random_curve`` (mean random drops).
    """
    mass = np.asarray(attention_mass, dtype=np.float64)
    if mass.shape != (len(regions),):
        raise InputDataError(None, f"attention mass has shape {mass.shape}, expected ({len(regions)},)")
    if isinstance(n_random, bool) or not isinstance(n_random, (int, np.integer)) or n_random < 1:
        raise ConfigError(f"region perturbation needs n_random >= 1 random orders, got {n_random!r}")
    rng = np.random.default_rng(seed)
    orders = [removal_order(mass)] + [rng.permutation(len(regions)) for _ in range(n_random)]
    masks = np.concatenate([cumulative_masks(regions, order, steps) for order in orders])
    drops = np.asarray(remove(masks), dtype=np.float64).reshape(-1)
    if drops.size != masks.shape[0]:
        raise InputDataError(None, f"remove() returned {drops.size} drops for {masks.shape[0]} masks")
    curves = drops.reshape(len(orders), steps)
    random_aopc = np.array([aopc(curve) for curve in curves[1:]])
    return {
        "steps": int(steps),
        "aopc": aopc(curves[0]),
        "aopc_random": float(random_aopc.mean()),
        "aopc_random_sd": float(random_aopc.std(ddof=1)) if n_random > 1 else None,
        "curve": curves[0].tolist(),
        "random_curve": curves[1:].mean(axis=0).tolist(),
    }


@dataclass
class Agreement:
    """Attention versus reliance for one sample and method: shares, rho and the most relied-on region."""

    method: str
    attention_share: np.ndarray  # (R,) share of the heatmap's mass per region
    drops: np.ndarray  # (R,) occlusion drop per region
    rho: float | None
    top_region: dict  # band, segment, component, drop and attention share of the largest drop
    top_attention_region: dict
    perturbation: dict | None = None

    def summary(self) -> dict:
        return {
            "method": self.method,
            "spearman_rho": self.rho,
            "top_reliance_region": self.top_region,
            "top_attention_region": self.top_attention_region,
            "region_perturbation": self.perturbation,
        }


def _region_entry(regions: RegionSet, index: int, drops: np.ndarray, share: np.ndarray) -> dict:
    region = regions.regions[index]
    return {
        "band": region.band,
        "segment": region.segment,
        "component": region.component,
        "drop": float(drops[index]),
        "attention_share": float(share[index]),
    }


def agreement(
    method: str, heatmap: np.ndarray, drops: np.ndarray, regions: RegionSet, perturbation: Mapping | None = None
) -> Agreement:
    """Attention mass of ``heatmap`` per region against the occlusion ``drops`` ``(R,)`` of one sample."""
    values = np.asarray(drops, dtype=np.float64)
    if values.shape != (len(regions),) or not np.isfinite(values).all():
        raise InputDataError(None, f"drops must be {len(regions)} finite numbers, got shape {values.shape}")
    mass = region_attention_mass(heatmap, regions)
    total = mass.sum()
    share = mass / total if total > 0 else np.zeros_like(mass)
    return Agreement(
        method=method,
        attention_share=share,
        drops=values,
        rho=spearman(mass, values),
        top_region=_region_entry(regions, int(np.argmax(values)), values, share),
        top_attention_region=_region_entry(regions, int(np.argmax(mass)), values, share),
        perturbation=None if perturbation is None else dict(perturbation),
    )


def _place(entry: Mapping) -> str:
    return f"{entry['component']} {entry['band']}, {entry['segment']} before the event"


def agreement_sentence(result: Agreement, unit: str = "logit") -> str:
    """One plain sentence from the numbers, e.g. "Grad-CAM's attention disagrees with occlusion
    reliance (ρ = −0.12): ..."."""
    title = METHOD_TITLES.get(result.method, result.method)
    if result.rho is None:
        verdict, rho = "cannot be compared with", "ρ undefined: a constant attention or reliance"
    else:
        verdict = (
            "agrees with"
            if result.rho >= AGREES
            else "agrees only partly with"
            if result.rho >= PARTLY
            else "disagrees with"
        )
        rho = f"ρ = {result.rho:.2f}".replace("-", "−")
    top = result.top_region
    text = (
        f"{title}'s attention {verdict} occlusion reliance ({rho}): the model relies most on "
        f"{_place(top)} (a drop of {top['drop']:.3g} {unit}), where {title} puts "
        f"{100 * top['attention_share']:.0f} % of its mass"
    )
    p = result.perturbation
    if p:
        better = "more" if p["aopc"] > p["aopc_random"] + (p.get("aopc_random_sd") or 0.0) else "no more"
        text += (
            f"; removing regions in its order lowers the score by {p['aopc']:.3g} on average (AOPC), "
            f"{better} than a random order ({p['aopc_random']:.3g})"
        )
    return text + "."
