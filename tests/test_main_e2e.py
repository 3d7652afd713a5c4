"""End-to-end runs of ``python main.py`` on a tiny demo configuration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import TINY, run_main

pytestmark = pytest.mark.slow


def _explain(tmp_path, cache, *extra):
    run_dir = tmp_path / "run"
    proc = run_main([*TINY, f"paths.cache_dir={cache}", f"hydra.run.dir={run_dir}", *extra])
    return proc, run_dir


def test_default_run_writes_figures_heatmaps_and_json(tmp_path, tiny_cache):
    proc, run_dir = _explain(tmp_path, tiny_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = run_dir / "efficientnet"
    results = json.loads((folder / "visualization_results.json").read_text())
    for key in ("model", "model_file", "target_layer", "input_shape", "class_mappings", "methods", "environment",
                "samples"):
        assert key in results
    assert results["target_layer"] == "top_activation"
    assert set(results["environment"]) >= {"tensorflow", "keras", "tf_keras_vis", "device"}
    assert results["methods"] == ["gradcam", "saliency", "smoothgrad"]
    # default selection: one sample per non-Normal magnitude class
    assert sorted(s["true"]["magnitude"] for s in results["samples"]) == ["Large", "Medium", "Moderate"]
    for sample in results["samples"]:
        assert set(sample["heads"]) == {"magnitude", "azimuth"}
        for head, entry in sample["heads"].items():
            probabilities = entry["probabilities"]
            assert abs(sum(probabilities.values()) - 1) < 1e-4
            assert entry["prediction"] == max(probabilities, key=probabilities.get)
            assert entry["correct"] == (entry["prediction"] == sample["true"][head])
            assert entry["score"] == "logit"
            assert set(entry["attention"]) == {"gradcam", "saliency", "smoothgrad"}
        assert (folder / sample["files"]["figure"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with np.load(folder / sample["files"]["heatmaps"], allow_pickle=False) as npz:
            for method in results["methods"]:
                for head in ("magnitude", "azimuth"):
                    grid = npz[f"{method}__{head}"]
                    assert grid.shape == npz["input"].shape[:2]
                    assert np.isfinite(grid).all()
                    display = npz[f"{method}__{head}__display"]
                    assert display.min() >= 0 and display.max() <= 1
            assert "axes_json" in npz.files
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]  # no staging leftovers


def test_second_run_reuses_cached_model(tmp_path, tiny_cache):
    first, _ = _explain(tmp_path / "a", tiny_cache)
    assert first.returncode == 0, first.stderr[-3000:]
    second, _ = _explain(tmp_path / "b", tiny_cache)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "using cached demo model" in second.stderr + second.stdout
    assert "training it once" not in second.stderr + second.stdout


@pytest.mark.parametrize("override, words", [
    ("sample=No_Such_Sample", "No_Such_Sample"),
    ("xai.heads=[magnitude,depth]", "depth"),
    ("xai.explained_class=Gigantic", "Gigantic"),
    ("model.target_layer=no_such_layer", "no_such_layer"),
])
def test_bad_requests_fail_cleanly(tmp_path, tiny_cache, override, words):
    proc, run_dir = _explain(tmp_path, tiny_cache, override)
    assert proc.returncode == 2, proc.stderr[-2000:]
    error_lines = [line for line in (proc.stderr + proc.stdout).splitlines() if "[ERROR]" in line]
    assert error_lines and words in error_lines[-1]
    results = list(run_dir.rglob("visualization_results.json")) if run_dir.exists() else []
    assert results == []
    if run_dir.exists():
        assert not list(run_dir.rglob("*.png")) and not list(run_dir.rglob("*.npz"))
