"""Per-sample figures drawn by a pool of worker processes while the main process explains the next batches.

A per-sample figure costs seconds of matplotlib time, far more than its Grad-CAM, so the data-set
mode with ``task.figures=all`` hands the drawing to ``task.figure_workers`` processes. They start
with ``spawn`` (never ``fork`` a process running TensorFlow) and import only the renderers; the
number of figures waiting is bounded so memory stays flat on long runs.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from xai.render.sample import render_sample_figure

log = logging.getLogger(__name__)

__all__ = ["FigurePool"]


class FigurePool:
    """A figure painter with :func:`render_sample_figure`'s signature that draws in ``workers`` processes.

    ``workers=0`` draws in the calling process. Use as a context manager: leaving the block waits for
    every figure and raises the first drawing error; an error inside the block cancels what is left.
    """

    def __init__(self, workers: int, painter: Callable[..., Any] = render_sample_figure, backlog: int = 4) -> None:
        self.workers = max(0, int(workers))
        self.painter = painter
        self.limit = max(1, self.workers * int(backlog))
        self.pending: deque[Future] = deque()
        self.executor: ProcessPoolExecutor | None = None
        if self.workers:
            context = multiprocessing.get_context("spawn")
            self.executor = ProcessPoolExecutor(self.workers, mp_context=context)
        self.drawn = 0

    def __call__(self, path: Path, **kwargs: Any) -> None:
        if self.executor is None:
            self.painter(path, **kwargs)
            self.drawn += 1
            return
        while len(self.pending) >= self.limit:  # keep the waiting figures (and their arrays) bounded
            self._collect(self.pending.popleft())
        self.pending.append(self.executor.submit(self.painter, path, **kwargs))

    def _collect(self, future: Future) -> None:
        future.result()
        self.drawn += 1

    def close(self) -> int:
        """Wait for every figure; the number drawn. Raises the first error of a worker."""
        try:
            while self.pending:
                self._collect(self.pending.popleft())
        finally:
            self._shutdown(cancel=bool(self.pending))
        return self.drawn

    def _shutdown(self, cancel: bool) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=cancel)
            self.executor = None

    def __enter__(self) -> FigurePool:
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.pending.clear()
            self._shutdown(cancel=True)
