"""End-to-end runs of ``python main.py`` on a tiny demo configuration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import FEW_SMOOTHGRAD_SAMPLES, TINY, run_main

pytestmark = pytest.mark.slow


def _explain(tmp_path, cache, *extra):
    run_dir = tmp_path / "run"
    proc = run_main([*TINY, FEW_SMOOTHGRAD_SAMPLES, f"paths.cache_dir={cache}", f"hydra.run.dir={run_dir}", *extra])
    return proc, run_dir


def test_default_run_writes_figures_heatmaps_and_json(tiny_demo_run):
    proc, run_dir = tiny_demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = run_dir / "efficientnet"
    results = json.loads((folder / "visualization_results.json").read_text())
    for key in (
        "model",
        "model_file",
        "target_layer",
        "input_shape",
        "class_mappings",
        "methods",
        "environment",
        "samples",
    ):
        assert key in results
    assert results["target_layer"] == "block5c_add"  # conf/model/efficientnet.yaml (measured choice)
    assert set(results["environment"]) >= {"tensorflow", "keras", "tf_keras_vis", "device"}
    assert results["methods"] == ["gradcam", "saliency", "smoothgrad"]
    native = results["native_resolution"]  # {method: [h, w]} of the maps before resampling to the grid
    assert list(native) == results["methods"] and native["saliency"] == results["input_shape"][:2]
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
                    assert list(npz[f"{method}__{head}__native"].shape) == native[method]
            assert "axes_json" in npz.files
    page = (folder / "report.html").read_text()  # the model's browsable page, with a thumbnail per sample
    assert all(s["sample"] in page for s in results["samples"])
    assert len(list((folder / "thumbs").glob("*.jpg"))) == len(results["samples"])
    assert not [p for p in run_dir.iterdir() if ".staging-" in p.name or ".old-" in p.name]  # no leftovers


def test_second_run_reuses_cached_model(tmp_path, tiny_cache, tiny_demo_run):
    assert tiny_demo_run[0].returncode == 0
    second, run_dir = _explain(tmp_path / "b", tiny_cache, "report.html=false")
    assert second.returncode == 0, second.stderr[-3000:]
    assert not (run_dir / "efficientnet" / "report.html").exists()  # report.html=false: no page
    assert "using cached demo model" in second.stderr + second.stdout
    assert "training it once" not in second.stderr + second.stdout


@pytest.mark.parametrize(
    "override, words",
    [
        ("sample=No_Such_Sample", "No_Such_Sample"),
        ("xai.heads=[magnitude,depth]", "depth"),
        ("xai.explained_class=Gigantic", "Gigantic"),
        ("model.target_layer=no_such_layer", "no_such_layer"),
    ],
)
def test_bad_requests_fail_cleanly(tmp_path, tiny_cache, tiny_demo_run, override, words):
    proc, run_dir = _explain(tmp_path, tiny_cache, override)
    assert proc.returncode == 2, proc.stderr[-2000:]
    error_lines = [line for line in (proc.stderr + proc.stdout).splitlines() if "[ERROR]" in line]
    assert error_lines and words in error_lines[-1]
    results = list(run_dir.rglob("visualization_results.json")) if run_dir.exists() else []
    assert results == []
    if run_dir.exists():
        assert not list(run_dir.rglob("*.png")) and not list(run_dir.rglob("*.npz"))


def test_sweep_over_models_runs_comparison_and_compare_task_reproduces_it(tmp_path, tiny_cache):
    sweep_dir = tmp_path / "sweep"
    proc = run_main(
        [
            "-m",
            *TINY,
            f"paths.cache_dir={tiny_cache}",
            f"hydra.sweep.dir={sweep_dir}",
            "model=vgg16,efficientnet",
            "xai=gradcam",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    comparison = sweep_dir / "comparison"
    for name in ("comparison.json", "GRADCAM_COMPARISON_REPORT.md", "confidence_comparison.png"):
        assert (comparison / name).is_file(), name
    assert list(comparison.glob("*_comparison.png"))
    data = json.loads((comparison / "comparison.json").read_text())
    assert sorted(data["models"]) == ["efficientnet", "vgg16"]
    again = run_main(
        [
            "task=compare",
            f"task.folders=[{sweep_dir}]",
            f"task.out_dir={tmp_path / 'again'}",
            f"hydra.run.dir={tmp_path / 'compare_run'}",
            f"paths.cache_dir={tiny_cache}",
        ]
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "again" / "comparison.json").read_text() == (comparison / "comparison.json").read_text()


def test_sweep_with_a_corrupt_sample_finishes_other_jobs_and_exits_nonzero(tmp_path, tiny_cache, tiny_demo_run):
    import csv
    import shutil

    # a private copy of the demo data set in which one sample's file is corrupt
    demo = next((tiny_cache / "demo").iterdir())
    data = tmp_path / "data"
    shutil.copytree(demo, data)
    with open(data / "metadata.csv") as handle:
        rows = list(csv.DictReader(handle))
    names = [f"{r['magnitude_class']}_{r['station']}_{r['date']}" for r in rows[:3]]
    broken = data / rows[1]["path"]
    broken.write_bytes(broken.read_bytes()[:100])
    sweep_dir = tmp_path / "sweep"
    not_demo = [arg for arg in TINY if not arg.startswith("data.generator")]
    proc = run_main(
        [
            "-m",
            *not_demo,
            f"paths.cache_dir={tiny_cache}",
            f"hydra.sweep.dir={sweep_dir}",
            "xai=gradcam",
            "data=csv",
            f"data.metadata_csv={data / 'metadata.csv'}",
            "data.axes_file=axes.json",
            f"model.file={_demo_model(tiny_cache) / 'model.keras'}",
            f"model.class_mappings={_demo_model(tiny_cache) / 'class_mappings.json'}",
            f"sample={','.join(names)}",
        ]
    )
    assert proc.returncode != 0
    statuses = list(sweep_dir.rglob("status.json"))
    assert statuses, proc.stderr[-4000:]
    assert len(statuses) == 1 and names[1] in statuses[0].read_text()
    assert len(list(sweep_dir.rglob("visualization_results.json"))) == 2
    report = (sweep_dir / "comparison" / "GRADCAM_COMPARISON_REPORT.md").read_text()
    assert "failed" in report.lower() and names[1] in report


def _demo_model(cache):
    return sorted((cache / "models").glob("efficientnet-*"))[0]


def test_missing_model_file_fails_cleanly(tmp_path, tiny_cache, tiny_demo_run):
    mappings = _demo_model(tiny_cache) / "class_mappings.json"
    missing = tmp_path / "no_such_model.keras"
    proc, run_dir = _explain(tmp_path, tiny_cache, f"model.file={missing}", f"model.class_mappings={mappings}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    error_lines = [line for line in (proc.stderr + proc.stdout).splitlines() if "[ERROR]" in line]
    assert error_lines and "no_such_model.keras" in error_lines[-1]
    assert not list(run_dir.rglob("*.png")) if run_dir.exists() else True
