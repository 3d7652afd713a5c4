"""Atomic writers: content round-trips, no temp files left, failures leave the old file intact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import InputDataError
from core.io import atomic_path, atomic_savez, atomic_write_bytes, atomic_write_json, atomic_write_text


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_write_text_bytes_and_json_round_trip(tmp_path):
    atomic_write_text(tmp_path / "a" / "b.txt", "héllo\n")
    assert (tmp_path / "a" / "b.txt").read_text(encoding="utf-8") == "héllo\n"
    atomic_write_bytes(tmp_path / "c.bin", b"\x00\x01")
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\x01"
    payload = {"b": np.float32(0.5), "a": np.arange(3), "c": None}
    atomic_write_json(tmp_path / "d.json", payload, sort_keys=True)
    text = (tmp_path / "d.json").read_text()
    assert json.loads(text) == {"a": [0, 1, 2], "b": 0.5, "c": None}
    assert text.index('"a"') < text.index('"b"')
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "a") == []


def test_output_permissions_are_not_private(tmp_path):
    path = atomic_write_text(tmp_path / "x.txt", "x")
    assert path.stat().st_mode & 0o044, "file should be readable by group/others as with open()"


def test_json_refuses_nan_and_keeps_old_file(tmp_path):
    target = tmp_path / "r.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(InputDataError, match="r.json"):
        atomic_write_json(target, {"bad": float("nan")})
    with pytest.raises(InputDataError, match="r.json"):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert _leftovers(tmp_path) == []


def test_atomic_path_replaces_on_success_and_cleans_on_error(tmp_path):
    target = tmp_path / "fig.png"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png"
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert _leftovers(tmp_path) == []


def test_atomic_path_requires_the_temp_file(tmp_path):
    target = tmp_path / "x.txt"
    with pytest.raises(InputDataError, match="x.txt"), atomic_path(target) as tmp:
        tmp.unlink()
    assert not target.exists()


def test_savez_round_trip_without_pickles(tmp_path):
    target = tmp_path / "s_heatmaps.npz"
    atomic_savez(target, input=np.ones((2, 3), np.float32), name=np.array("text"))
    with np.load(target, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["input", "name"]
        np.testing.assert_array_equal(npz["input"], np.ones((2, 3), np.float32))
        assert str(npz["name"]) == "text"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s_heatmaps.npz"]
    with pytest.raises(InputDataError, match="pickles"):
        atomic_savez(tmp_path / "o.npz", bad=np.array([{"a": 1}], dtype=object))
    assert not (tmp_path / "o.npz").exists()
