"""The figure worker pool (xai.render.pool): figures drawn in other processes, all waited for, errors raised."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xai.render.pool import FigurePool


def _write_pid(path, *, sample: str, **_) -> Path:
    if sample == "bad":
        raise ValueError(f"cannot draw {sample}")
    Path(path).write_text(f"{sample} {os.getpid()}")
    return Path(path)


def test_pool_draws_every_figure_in_worker_processes(tmp_path):
    with FigurePool(2, painter=_write_pid, backlog=1) as pool:
        for i in range(6):
            pool(tmp_path / f"s{i}.png", sample=f"s{i}", grid_image=None)
    assert pool.drawn == 6
    texts = [(tmp_path / f"s{i}.png").read_text().split() for i in range(6)]
    assert [t[0] for t in texts] == [f"s{i}" for i in range(6)]
    assert {int(t[1]) for t in texts}.isdisjoint({os.getpid()})


def test_pool_without_workers_draws_inline_and_raises_a_workers_error(tmp_path):
    inline = FigurePool(0, painter=_write_pid)
    inline(tmp_path / "a.png", sample="a")
    assert (tmp_path / "a.png").read_text().split()[1] == str(os.getpid()) and inline.close() == 1
    with pytest.raises(ValueError, match="cannot draw bad"), FigurePool(1, painter=_write_pid) as pool:
        pool(tmp_path / "b.png", sample="bad")
