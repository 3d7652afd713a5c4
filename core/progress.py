"""Progress of long steps: a tqdm bar on a terminal, plain periodic log lines otherwise (files, CI, pipes)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class Progress:
    """Count ``total`` items of one step.

    On a terminal (``sys.stderr`` is a TTY) a tqdm bar is drawn (tqdm's ``disable=None``); otherwise
    ``logger`` gets one INFO line ``"<desc>: <done>/<total> <unit>"`` each time another ``every``
    share of the total is done, and at the end. ``total=0`` logs nothing. Use as a context manager,
    or call :meth:`close`.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "item",
        logger: logging.Logger | None = None,
        every: float = 0.1,
        initial: int = 0,
    ) -> None:
        self.total, self.done, self.desc, self.unit = int(total), int(initial), desc, unit
        self.logger = logger or log
        self.steps = max(1, round(1.0 / float(every)))  # log lines per run (every 10 %: 10)
        self.logged = self._step()
        self.bar: Any = None
        self._redirect: Any = None
        if self.total > 0 and _on_terminal():
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total, initial=self.done, desc=desc, unit=unit, disable=None, file=sys.stderr, leave=False
            )
            if self.bar.disable:
                self.bar = None
            else:  # console log lines are written above the bar instead of through it
                from tqdm.contrib.logging import logging_redirect_tqdm

                self._redirect = logging_redirect_tqdm()
                self._redirect.__enter__()

    def update(self, n: int = 1) -> None:
        """``n`` more items are done."""
        self.done += int(n)
        if self.bar is not None:
            self.bar.update(n)
            return
        step = self._step()
        if step > self.logged:
            self.logger.info("%s: %d/%d %s", self.desc, self.done, self.total, self.unit)
            self.logged = step

    def _step(self) -> int:
        """How many ``every`` shares of the total are done (integers: no rounding drift)."""
        return min(self.done, self.total) * self.steps // self.total if self.total > 0 else 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(
    items: Iterable[T], desc: str, total: int | None = None, unit: str = "item", logger: logging.Logger | None = None
) -> Iterator[T]:
    """Iterate ``items`` while counting them with :class:`Progress` (``total``: ``len(items)`` if omitted)."""
    if total is None:
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit, logger) as bar:
        for item in items:
            yield item
            bar.update(1)


def _on_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stream
        return False
