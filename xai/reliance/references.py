"""What an occluded region is replaced by: the per-frequency median background or noisy linear imputation.

* ``median``: each frequency row's median over time per channel (the background power of that
  frequency, as :func:`xai.metrics.faithfulness.median_background` for deletion/insertion), computed
  per sample (``background: sample``), over the whole batch (``background: batch``), over the batch
  and shifted to each sample's own level per component (``background: pooled``), or given per data
  set as an array. A sample's own time median keeps whatever lasts through most of its window (a
  precursor of several hours, a spectral line), so occluding it changes little; the pooled median
  of other windows does not, and the level shift keeps the day-to-day background scatter out of it;
* ``noisy_linear``: ROAD's noisy linear imputation (Rong, Leemann, Borisov, Kasneci & Kasneci, 2022,
  "A Consistent and Efficient Evaluation Strategy for Attribution Methods", ICML): every removed cell
  takes the weighted mean of its eight neighbours (weight 1/6 for the four direct, 1/12 for the four
  diagonal ones), which couples the removed cells into one sparse linear system per channel, solved
  with scipy; Gaussian noise of ``noise`` times the sample's channel standard deviation is added to
  the imputed cells. Neighbours are taken inside one frequency panel only (never across the H/D/Z
  panels of the stacked layout). A connected group of removed cells without any kept neighbour
  (a whole component) has nothing to interpolate from and takes the median background.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import splu

from core.errors import ConfigError, InputDataError
from xai.metrics.faithfulness import median_background

log = logging.getLogger(__name__)

__all__ = ["BACKGROUNDS", "REFERENCES", "NoisyLinearImputer", "median_reference"]

REFERENCES = ("median", "noisy_linear")
BACKGROUNDS = ("sample", "batch", "pooled")
NEIGHBOUR_WEIGHTS: tuple[tuple[int, int, float], ...] = (
    (1, 0, 1 / 6), (-1, 0, 1 / 6), (0, 1, 1 / 6), (0, -1, 1 / 6),
    (1, 1, 1 / 12), (1, -1, 1 / 12), (-1, 1, 1 / 12), (-1, -1, 1 / 12),
)  # fmt: skip


def median_reference(images: np.ndarray, background: str | np.ndarray = "sample") -> np.ndarray:
    """The dense median-background reference ``(B, rows, cols, C)`` float32 of a batch.

    ``background``: ``"sample"`` (each sample's row medians over time), ``"batch"`` (row medians
    over time and all samples of the batch), ``"pooled"`` (the batch's row medians plus each
    sample's median level per channel minus the batch's) or an array broadcastable to the images
    (e.g. a data set's ``(rows, 1, C)`` background).
    """
    x = np.asarray(images, dtype=np.float32)
    if isinstance(background, str):
        if background == "sample":
            return np.broadcast_to(median_background(x), x.shape).copy()
        if background in ("batch", "pooled"):
            row = np.median(x.transpose(1, 3, 0, 2).reshape(x.shape[1], x.shape[3], -1), axis=2)
            reference = np.broadcast_to(row[None, :, None, :], x.shape)
            if background == "pooled":
                level = np.median(x.reshape(x.shape[0], -1, x.shape[3]), axis=1)  # (B, C)
                reference = reference + (level - np.median(level, axis=0))[:, None, None, :]
            return np.ascontiguousarray(reference, dtype=np.float32)
        raise ConfigError(
            f"occlusion background must be one of {', '.join(BACKGROUNDS)} or an array, got {background!r}"
        )
    values = np.asarray(background, dtype=np.float32)
    try:
        values = np.broadcast_to(values, x.shape).copy()
    except ValueError:
        raise InputDataError(
            None, f"occlusion background of shape {values.shape} does not broadcast to the images {x.shape}"
        ) from None
    if not np.isfinite(values).all():
        raise InputDataError(None, "occlusion background contains NaN or infinite values")
    return values


def _neighbour_matrix(rows: int, cols: int, row_groups: np.ndarray) -> sparse.csr_matrix:
    """``W[p, q]``: ROAD weight of neighbour ``q`` of cell ``p`` (same panel, inside the grid)."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    data, src, dst = [], [], []
    for dr, dc, weight in NEIGHBOUR_WEIGHTS:
        rr, cc = r + dr, c + dc
        valid = (rr >= 0) & (rr < rows) & (cc >= 0) & (cc < cols)
        valid[valid] &= row_groups[rr[valid]] == row_groups[r[valid]]
        src.append(np.flatnonzero(valid))
        dst.append(rr[valid] * cols + cc[valid])
        data.append(np.full(int(valid.sum()), weight))
    n = rows * cols
    return sparse.csr_matrix((np.concatenate(data), (np.concatenate(src), np.concatenate(dst))), shape=(n, n))


@dataclass
class NoisyLinearImputer:
    """ROAD noisy linear imputation on one grid shape (``row_groups``: the panel of every row)."""

    shape: tuple[int, int]
    row_groups: np.ndarray
    noise: float = 0.01
    seed: int = 0
    _weights: sparse.csr_matrix | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.noise, bool) or not isinstance(self.noise, (int, float)) or not self.noise >= 0:
            raise ConfigError(f"occlusion noise must be a number >= 0, got {self.noise!r}")
        self.rng = np.random.default_rng(self.seed)

    @property
    def weights(self) -> sparse.csr_matrix:
        if self._weights is None:
            self._weights = _neighbour_matrix(*self.shape, np.asarray(self.row_groups))
        return self._weights

    def impute(self, images: np.ndarray, mask: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        """A copy of ``images`` ``(B, rows, cols, C)`` with the cells of ``mask`` ``(rows, cols, C)``
        imputed; ``fallback`` (same shape as the images) fills groups without kept neighbours."""
        x = np.asarray(images, dtype=np.float64)
        out = x.copy()
        batch, rows, cols, n_channels = x.shape
        scale = x.reshape(batch, -1, n_channels).std(axis=1)  # (B, C)
        plane_masks: dict[bytes, list[int]] = {}
        for k in range(n_channels):
            if mask[..., k].any():
                plane_masks.setdefault(mask[..., k].tobytes(), []).append(k)
        for key, channels in plane_masks.items():
            removed = np.frombuffer(key, dtype=bool)
            plane = x[..., channels].reshape(batch, rows * cols, len(channels))
            filled = self._solve(plane, removed, np.asarray(fallback)[..., channels].reshape(plane.shape))
            noise = self.noise * scale[:, None, channels] * self.rng.standard_normal(filled.shape)
            plane[:, removed] = filled + noise
            out[..., channels] = plane.reshape(batch, rows, cols, len(channels))
        return out.astype(np.float32)

    def _solve(self, values: np.ndarray, removed: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        """Imputed values ``(B, n_removed, C)`` of the removed cells of one channel plane."""
        unknown, known = np.flatnonzero(removed), np.flatnonzero(~removed)
        weights = self.weights
        w_uu = weights[unknown][:, unknown]
        w_uk = weights[unknown][:, known]
        batch, _, n_channels = values.shape
        result = np.empty((batch, unknown.size, n_channels))
        n_groups, labels = connected_components(w_uu, directed=False)
        anchored = np.zeros(n_groups, dtype=bool)
        anchored[labels[np.asarray(w_uk.sum(axis=1)).ravel() > 0]] = True
        free = ~anchored[labels]
        result[:, free] = fallback[:, unknown[free]]
        if (~free).any():
            solve = np.flatnonzero(~free)
            system = sparse.diags(np.asarray(weights[unknown[solve]].sum(axis=1)).ravel()) - w_uu[solve][:, solve]
            known_values = values[:, known].transpose(1, 0, 2).reshape(known.size, -1)
            rhs = np.asarray(w_uk[solve] @ known_values)
            solution = splu(sparse.csc_matrix(system)).solve(rhs)
            result[:, solve] = solution.reshape(solve.size, batch, n_channels).transpose(1, 0, 2)
        if free.any():
            log.debug("noisy linear imputation: %d cells without kept neighbours take the median", int(free.sum()))
        return result
