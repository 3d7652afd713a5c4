"""Faithfulness of heatmaps by deletion and insertion (Petsiuk, Das & Saenko, 2018, "RISE:
Randomized Input Sampling for Explanation of Black-box Models").

Deletion removes the grid cells in the heatmap's order of importance and follows the explained
class's probability (a faithful map makes it fall fast: low area under the curve); insertion
starts from the baseline and restores cells in that order (the probability should rise fast:
high area).  The same procedure in a random cell order is the reference a map must beat.

"Removing" a cell replaces all channels of that (row, col) cell by a baseline.  The default,
:func:`median_background`, is each frequency row's median over time per channel: the background
power level of that frequency, a physically plausible spectrogram, never black pixels (which are
far outside the data's distribution for log-power values).

``predict`` is any callable ``grids (n, rows, cols, C) -> {head: (n, n_classes) probabilities}``;
for a :class:`models.loading.ModelBundle` use
``lambda g: bundle.predict_probabilities(bundle.prepare(g))``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from core.errors import ConfigError, InputDataError, ModelError

log = logging.getLogger(__name__)

__all__ = [
    "MODES",
    "area_under_curve",
    "deletion_insertion",
    "importance_order",
    "median_background",
    "perturbation_curves",
    "random_order",
]

MODES = ("deletion", "insertion")
Predict = Callable[[np.ndarray], Mapping[str, np.ndarray]]


def _check_grids(grids: np.ndarray) -> np.ndarray:
    x = np.asarray(grids, dtype=np.float32)
    if x.ndim != 4 or min(x.shape, default=0) < 1:
        raise InputDataError(None, f"grids must be (B, rows, cols, C), got shape {np.shape(grids)}")
    if not np.isfinite(x).all():
        raise InputDataError(None, "grids contain NaN or infinite values")
    return x


def _check_heatmaps(heatmaps: np.ndarray) -> np.ndarray:
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.ndim != 3 or min(maps.shape, default=0) < 1:
        raise InputDataError(None, f"heatmaps must be (B, rows, cols), got shape {np.shape(heatmaps)}")
    if not np.isfinite(maps).all():
        raise InputDataError(None, "heatmaps contain NaN or infinite values")
    return maps


def median_background(grids: np.ndarray) -> np.ndarray:
    """Per sample, frequency row and channel: the median over time, ``(B, rows, 1, C)`` float32."""
    x = _check_grids(grids)
    return np.median(x, axis=2, keepdims=True).astype(np.float32)


def importance_order(heatmaps: np.ndarray) -> np.ndarray:
    """Flat cell indices ``(B, rows*cols)`` by descending relevance (stable: ties keep row-major order)."""
    maps = _check_heatmaps(heatmaps)
    return np.argsort(-maps.reshape(maps.shape[0], -1), axis=1, kind="stable")


def random_order(shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """An independent random permutation of the ``rows*cols`` cells per sample, ``(B, rows*cols)``."""
    try:
        dims = tuple(int(n) for n in shape)
    except (TypeError, ValueError):
        raise ConfigError(f"order shape must be (B, rows, cols), got {shape!r}") from None
    if len(dims) != 3 or min(dims) < 1:
        raise ConfigError(f"order shape must be three positive sizes (B, rows, cols), got {dims}")
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(dims[1] * dims[2]) for _ in range(dims[0])])


def _check_orders(orders: np.ndarray, batch: int, n_cells: int) -> np.ndarray:
    array = np.asarray(orders)
    if array.shape != (batch, n_cells) or not np.issubdtype(array.dtype, np.integer):
        raise InputDataError(None, f"orders must be ({batch}, {n_cells}) integers, got {array.dtype} {array.shape}")
    if not (np.sort(array, axis=1) == np.arange(n_cells)).all():
        raise InputDataError(None, f"each order must be a permutation of the {n_cells} grid cells")
    return array.astype(np.int64)


def _check_classes(class_indices: Mapping[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    if not isinstance(class_indices, Mapping) or not class_indices:
        raise ConfigError("class_indices must be a non-empty mapping {head: (B,) class indices}")
    checked = {}
    for head, values in class_indices.items():
        classes = np.asarray(values)
        if classes.ndim == 0:
            classes = np.full(batch, classes)
        if classes.shape != (batch,) or not np.issubdtype(classes.dtype, np.integer) or (classes < 0).any():
            raise ConfigError(f"class indices for head '{head}' must be {batch} non-negative integers, got {values!r}")
        checked[str(head)] = classes.astype(np.int64)
    return checked


def _baseline(baseline: np.ndarray | float | None, grids: np.ndarray) -> np.ndarray:
    if baseline is None:
        return np.broadcast_to(median_background(grids), grids.shape)
    values = np.asarray(baseline, dtype=np.float32)
    try:
        values = np.broadcast_to(values, grids.shape)
    except ValueError:
        raise InputDataError(
            None, f"baseline of shape {values.shape} does not broadcast to the grids' shape {grids.shape}"
        ) from None
    if not np.isfinite(values).all():
        raise InputDataError(None, "baseline contains NaN or infinite values")
    return values


def perturbation_curves(
    predict: Predict,
    grids: np.ndarray,
    orders: np.ndarray,
    class_indices: Mapping[str, np.ndarray],
    mode: str,
    steps: int = 10,
    baseline: np.ndarray | float | None = None,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Deletion or insertion curves (Petsiuk et al., 2018): ``{head: (B, steps+1)}`` class probabilities.

    Step ``i`` changes the first ``k = round(i / steps * rows * cols)`` cells of each sample's
    ``orders`` row (all channels of a cell): ``deletion`` replaces them in the grid by the
    ``baseline``, ``insertion`` restores them from the grid into the baseline.  ``baseline``:
    anything broadcastable to the grids, ``None`` = :func:`median_background`.  All
    ``B * (steps+1)`` perturbed grids are evaluated in batches of ``batch_size``.
    """
    x = _check_grids(grids)
    batch, rows, cols, _ = x.shape
    n_cells = rows * cols
    if mode not in MODES:
        raise ConfigError(f"perturbation mode must be one of {', '.join(MODES)}, got {mode!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"perturbation steps must be a positive integer, got {steps!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    order = _check_orders(orders, batch, n_cells)
    classes = _check_classes(class_indices, batch)
    base = _baseline(baseline, x)

    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(n_cells), order.shape), axis=1)
    n_changed = np.rint(np.arange(steps + 1) * n_cells / steps).astype(np.int64)
    total = batch * (steps + 1)
    curves = {head: np.empty(total, dtype=np.float64) for head in classes}
    for start in range(0, total, int(batch_size)):
        index = np.arange(start, min(start + int(batch_size), total))
        sample, step = np.divmod(index, steps + 1)
        changed = (ranks[sample] < n_changed[step][:, None]).reshape(-1, rows, cols, 1)
        if mode == "deletion":
            images = np.where(changed, base[sample], x[sample])
        else:
            images = np.where(changed, x[sample], base[sample])
        outputs = predict(images.astype(np.float32))
        for head, head_classes in classes.items():
            if head not in outputs:
                raise ModelError(None, f"predict returned no output for head '{head}' (got {', '.join(outputs)})")
            probs = np.asarray(outputs[head], dtype=np.float64)
            if probs.ndim != 2 or probs.shape[0] != index.size:
                raise ModelError(
                    None, f"predict returned shape {probs.shape} for head '{head}', expected ({index.size}, n_classes)"
                )
            wanted = head_classes[sample]
            if wanted.max() >= probs.shape[1]:
                raise ConfigError(
                    f"class index {int(wanted.max())} out of range for head '{head}' ({probs.shape[1]} classes)"
                )
            curves[head][index] = probs[np.arange(index.size), wanted]
    return {head: values.reshape(batch, steps + 1) for head, values in curves.items()}


def area_under_curve(curves: np.ndarray) -> np.ndarray:
    """Trapezoidal area of ``(B, steps+1)`` curves over the perturbed fraction ``[0, 1]``, ``(B,)``."""
    values = np.asarray(curves, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 2:
        raise InputDataError(None, f"curves must be (B, steps+1) with steps >= 1, got shape {values.shape}")
    return np.trapezoid(values, x=np.linspace(0.0, 1.0, values.shape[1]), axis=1)


def deletion_insertion(
    predict: Predict,
    grids: np.ndarray,
    heatmaps: np.ndarray,
    class_indices: np.ndarray,
    head: str,
    steps: int = 10,
    seed: int = 0,
    baseline: np.ndarray | float | None = None,
) -> dict[str, np.ndarray]:
    """Deletion and insertion AUC of one head's grid heatmaps, and of a random cell order (Petsiuk et al., 2018).

    ``heatmaps``: ``(B, rows, cols)`` on the grids' grid; ``class_indices``: ``(B,)`` explained
    classes of ``head``.  Returns ``{'deletion_auc', 'insertion_auc', 'random_deletion_auc',
    'random_insertion_auc'}``, each ``(B,)``; a faithful map has deletion below and insertion above
    the random values.  The perturbed grids are evaluated in :func:`perturbation_curves`' default
    batches; call it directly for another batch size.
    """
    x = _check_grids(grids)
    maps = _check_heatmaps(heatmaps)
    if maps.shape != x.shape[:3]:
        raise InputDataError(
            None, f"heatmaps of shape {maps.shape} do not match the grids {x.shape[:3]}: resample them with to_grid"
        )
    classes = {str(head): np.asarray(class_indices)}
    orders = {"": importance_order(maps), "random_": random_order(maps.shape, seed)}
    base = _baseline(baseline, x)
    result: dict[str, np.ndarray] = {}
    for prefix, order in orders.items():
        for mode in MODES:
            curves = perturbation_curves(predict, x, order, classes, mode, steps, base)
            result[f"{prefix}{mode}_auc"] = area_under_curve(curves[str(head)])
    return result
