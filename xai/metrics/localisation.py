"""Localisation of heatmaps against ground-truth masks of the planted precursor.

Relevance mass and relevance rank accuracy follow Arras, Osman & Samek (2022), "CLEVR-XAI: A
benchmark dataset for the ground truth evaluation of neural network explanations"; the pointing
game follows Zhang et al. (2018), "Top-down Neural Attention by Excitation Backprop".

All functions take heatmaps on the spectrogram grid ``(B, rows, cols)`` (resample native maps
with :func:`xai.explainers.base.to_grid` first) and boolean masks of the same shape (``True``
where the precursor is).  A Normal sample has an empty mask: every score is ``NaN`` for it, so
aggregate with ``np.nanmean`` (or :func:`xai.metrics.statistics.bootstrap_ci`).

Baselines: a uniform heatmap scores :func:`mask_area_share` in relevance mass accuracy, and
:func:`random_heatmaps` gives the empirical random baseline of every metric.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from core.errors import ConfigError, InputDataError

log = logging.getLogger(__name__)

__all__ = [
    "check_heatmaps_and_masks",
    "localisation_scores",
    "mask_area_share",
    "pointing_game",
    "random_heatmaps",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
]


def _check_masks(masks: np.ndarray) -> np.ndarray:
    array = np.asarray(masks)
    if array.ndim != 3:
        raise InputDataError(None, f"masks must be (B, rows, cols), got shape {array.shape}")
    if array.dtype == bool:
        return array
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InputDataError(None, f"masks must be boolean (or 0/1 numbers), got dtype {array.dtype}")
    if not np.isin(array, (0, 1)).all():
        raise InputDataError(None, "masks must be boolean (or 0/1 numbers), got other values")
    return array.astype(bool)


def check_heatmaps_and_masks(heatmaps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 ``(B, rows, cols)`` finite heatmaps and boolean masks of the same shape."""
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.ndim != 3 or min(maps.shape, default=0) < 1:
        raise InputDataError(None, f"heatmaps must be (B, rows, cols), got shape {maps.shape}")
    if not np.isfinite(maps).all():
        raise InputDataError(None, "heatmaps contain NaN or infinite values")
    truth = _check_masks(masks)
    if truth.shape != maps.shape:
        raise InputDataError(
            None, f"masks have shape {truth.shape} but heatmaps {maps.shape}: resample the maps to the grid first"
        )
    return maps, truth


def _flat(maps: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened maps, masks and the mask size per sample."""
    flat_maps = maps.reshape(maps.shape[0], -1)
    flat_truth = truth.reshape(truth.shape[0], -1)
    return flat_maps, flat_truth, flat_truth.sum(axis=1)


def relevance_mass_accuracy(heatmaps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of the positive relevance that lies inside the mask, per sample (Arras et al., 2022).

    Negative relevance is clipped to 0.  ``NaN`` for an empty mask or a map without positive
    relevance (its share is undefined).
    """
    maps, truth = check_heatmaps_and_masks(heatmaps, masks)
    flat_maps, flat_truth, size = _flat(maps, truth)
    positive = np.clip(flat_maps, 0.0, None)
    total = positive.sum(axis=1)
    inside = np.where(flat_truth, positive, 0.0).sum(axis=1)
    valid = (size > 0) & (total > 0)
    return np.where(valid, inside / np.where(valid, total, 1.0), np.nan)


def relevance_rank_accuracy(heatmaps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of the ``K`` highest-relevance cells that lie in the mask, ``K`` = mask size (Arras et al., 2022).

    Relevance is ranked as it is (negative values included).  Ties at the ``K``-th value are
    counted by their expectation under random tie-breaking: the cells strictly above it count in
    full, the tied cells fill the remaining places in proportion to how many of them lie in the
    mask.  So a constant map scores the mask's area share, not an artefact of cell order.  ``NaN``
    for an empty mask.
    """
    maps, truth = check_heatmaps_and_masks(heatmaps, masks)
    flat_maps, flat_truth, size = _flat(maps, truth)
    out = np.full(flat_maps.shape[0], np.nan)
    for i, k in enumerate(size):
        if k == 0:
            continue
        values, inside = flat_maps[i], flat_truth[i]
        threshold = np.sort(values)[::-1][k - 1]
        above = values > threshold
        tied = values == threshold
        hits = float((above & inside).sum())
        places = k - int(above.sum())
        hits += places * float((tied & inside).sum()) / float(tied.sum())
        out[i] = hits / k
    return out


def pointing_game(heatmaps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """1.0 when the maximum-relevance cell lies in the mask, else 0.0 (Zhang et al., 2018).

    When several cells share the maximum, the score is the share of them inside the mask (the
    expected hit under random tie-breaking), so a constant map scores the mask's area share rather
    than a free hit.  ``NaN`` for an empty mask.
    """
    maps, truth = check_heatmaps_and_masks(heatmaps, masks)
    flat_maps, flat_truth, size = _flat(maps, truth)
    at_max = flat_maps == flat_maps.max(axis=1, keepdims=True)
    hit = (at_max & flat_truth).sum(axis=1) / at_max.sum(axis=1)
    return np.where(size > 0, hit, np.nan)


def mask_area_share(masks: np.ndarray) -> np.ndarray:
    """Fraction of the grid covered by the mask, per sample (``NaN`` for an empty mask).

    This is the relevance mass accuracy of a uniform heatmap, the chance level of that metric.
    """
    truth = _check_masks(masks)
    share = truth.reshape(truth.shape[0], -1).mean(axis=1)
    return np.where(share > 0, share, np.nan)


def random_heatmaps(shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """I.i.d. uniform [0, 1) random heatmaps of ``shape`` ``(B, rows, cols)`` (float32): the random baseline."""
    try:
        dims = tuple(int(n) for n in shape)
    except (TypeError, ValueError):
        raise ConfigError(f"random heatmap shape must be (B, rows, cols), got {shape!r}") from None
    if len(dims) != 3 or min(dims) < 1:
        raise ConfigError(f"random heatmap shape must be three positive sizes (B, rows, cols), got {dims}")
    return np.random.default_rng(seed).random(dims, dtype=np.float32)


def localisation_scores(heatmaps: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """All localisation metrics per sample: ``{name: (B,) float}`` (``NaN`` where undefined)."""
    maps, truth = check_heatmaps_and_masks(heatmaps, masks)
    return {
        "relevance_mass_accuracy": relevance_mass_accuracy(maps, truth),
        "relevance_rank_accuracy": relevance_rank_accuracy(maps, truth),
        "pointing_game": pointing_game(maps, truth),
        "mask_area_share": mask_area_share(truth),
    }
