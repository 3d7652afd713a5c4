"""Compact, resumable storage of data-set heatmaps: one ``.npy`` file per (method, head).

Each file holds ``(n_samples, rows, cols)`` maps on the spectrogram grid (float16 by default, the
row order given by ``index.json``). Rows are written in place with plain file writes (no memory
map), so a run over thousands of samples keeps a flat resident memory, and a run that was
interrupted can continue writing where it stopped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from core.errors import InputDataError


def heatmap_file(folder: Path, method: str, head: str) -> Path:
    return Path(folder) / f"{method}__{head}.npy"


def _data_offset(handle) -> int:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        np.lib.format.read_array_header_1_0(handle)
    else:
        np.lib.format.read_array_header_2_0(handle)
    return handle.tell()


class HeatmapStore:
    """Fixed-size ``.npy`` files written row block by row block (``write``) and read in chunks."""

    def __init__(
        self,
        folder: str | os.PathLike,
        keys: Sequence[tuple[str, str]],
        n_samples: int,
        grid_shape: Sequence[int],
        dtype: str = "float16",
        create: bool = True,
    ) -> None:
        self.folder = Path(folder)
        self.keys = [tuple(k) for k in keys]
        self.shape = (int(n_samples), int(grid_shape[0]), int(grid_shape[1]))
        self.dtype = np.dtype(dtype)
        self.folder.mkdir(parents=True, exist_ok=True)
        for method, head in self.keys:
            path = heatmap_file(self.folder, method, head)
            if create or not path.exists():
                array = np.lib.format.open_memmap(path, mode="w+", dtype=self.dtype, shape=self.shape)
                del array  # a sparse file of the final size; rows are filled by write()
            else:
                self._check(path)

    def _check(self, path: Path) -> None:
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputDataError(path, f"cannot reopen heatmap file to resume ({exc})") from None
        if array.shape != self.shape or array.dtype != self.dtype:
            raise InputDataError(
                path,
                f"heatmap file has shape {array.shape} {array.dtype}, expected "
                f"{self.shape} {self.dtype}; delete the partial run to start again",
            )

    def write(self, method: str, head: str, start: int, maps: np.ndarray) -> None:
        """Write ``maps`` (B, rows, cols) at rows ``start .. start + B``."""
        values = np.ascontiguousarray(maps, dtype=self.dtype)
        if values.ndim != 3 or values.shape[1:] != self.shape[1:] or start + len(values) > self.shape[0]:
            raise InputDataError(
                heatmap_file(self.folder, method, head),
                f"cannot store maps of shape {maps.shape} at row {start} of {self.shape}",
            )
        row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        with open(heatmap_file(self.folder, method, head), "r+b") as handle:
            offset = _data_offset(handle)
            handle.seek(offset + start * row_bytes)
            handle.write(values.tobytes())

    def chunks(self, method: str, head: str, size: int = 64) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, float32 maps)`` blocks of at most ``size`` rows, read with plain file reads."""
        row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        with open(heatmap_file(self.folder, method, head), "rb") as handle:
            offset = _data_offset(handle)
            for start in range(0, self.shape[0], size):
                n = min(size, self.shape[0] - start)
                handle.seek(offset + start * row_bytes)
                block = np.frombuffer(handle.read(n * row_bytes), dtype=self.dtype)
                yield start, block.reshape((n, *self.shape[1:])).astype(np.float32)
