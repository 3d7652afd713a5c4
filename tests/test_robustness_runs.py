"""Whole-run robustness (issue 7, points 4-6): deterministic outputs, bounded tf.function tracing,
closed figures, whole-folder replacement on reruns, atomic writers and resuming a killed data-set run.

The library-level tests use a tiny two-head model on a 24-sample demo data set at 32x32 (the
pattern of ``tests/test_dataset_mode.py``); the ``slow`` ones run ``python main.py`` on the TINY
demo configuration.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import tensorflow as tf
from matplotlib.figure import Figure

from core.names import RESULT_FILES
from geomag.sources import DemoDataSource
from geomag.spectrogram import SpectrogramConfig
from models.loading import bundle_from_model
from tests.conftest import FEW_SMOOTHGRAD_SAMPLES, ROOT, TINY, run_main, tiny_model
from xai.dataset import JOURNAL, DatasetFigures, DatasetOptions, explain_dataset, read_journal
from xai.explainers.gradcam import GradCAM
from xai.explainers.gradcam_plus_plus import GradcamPlusPlus
from xai.explainers.saliency import Saliency
from xai.explainers.smoothgrad import SmoothGrad

SPEC = SpectrogramConfig(grid=(32, 32))


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> DemoDataSource:
    return DemoDataSource(tmp_path_factory.mktemp("cache"), {"n_samples": 24}, SPEC)


def _bundle(source, seed: int = 0):
    mappings = source.class_mappings
    model = tiny_model(len(mappings.magnitude_classes), len(mappings.azimuth_classes), seed=seed)
    return bundle_from_model(model, mappings, name="tiny", target_layer="feat")


def _options(**kw) -> DatasetOptions:
    base = dict(batch_size=4, faithfulness_samples=0, randomisation_samples=0, bootstrap_resamples=20)
    return DatasetOptions(**{**base, **kw})


# --------------------------------------------------------------------------- point 6: determinism
def test_dataset_runs_are_byte_identical(source, tmp_path):
    """Same model config, data and options twice (fresh model, fresh explainers, other global RNG
    state in between): identical heatmap files, journal lines and aggregated results."""
    records = source.records()[:6]  # batches of 4 and 2
    options = _options(faithfulness_samples=2, faithfulness_steps=3)

    def run(folder: Path, disturb: bool) -> dict:
        bundle = _bundle(source, seed=0)
        explainers = {
            "gradcam": GradCAM(bundle),
            "saliency": Saliency(bundle),
            "smoothgrad": SmoothGrad(bundle, smooth_samples=2, seed=0),
        }
        if disturb:  # other global random state: an unseeded SmoothGrad would draw other noise
            np.random.seed(123)
            tf.random.uniform((3,))
        return explain_dataset(bundle, explainers, source, records, folder, options)

    first = run(tmp_path / "a", disturb=False)
    second = run(tmp_path / "b", disturb=True)
    files = sorted(p.name for p in (tmp_path / "a" / "heatmaps").glob("*.npy"))
    assert len(files) == 6
    for name in files:
        assert (tmp_path / "a" / "heatmaps" / name).read_bytes() == (tmp_path / "b" / "heatmaps" / name).read_bytes()
    lines_a = (tmp_path / "a" / JOURNAL).read_text().splitlines()
    assert len(lines_a) == 6 and lines_a == (tmp_path / "b" / JOURNAL).read_text().splitlines()
    first.pop("run"), second.pop("run")  # timings and memory
    first["trust"].pop("cost"), second["trust"].pop("cost")  # seconds per check
    assert first == second
    # the comparison can fail: SmoothGrad's noise is really there (differs from plain saliency)
    smooth = np.load(tmp_path / "a" / "heatmaps" / "smoothgrad__magnitude.npy").astype(np.float32)
    plain = np.load(tmp_path / "a" / "heatmaps" / "saliency__magnitude.npy").astype(np.float32)
    assert not np.allclose(smooth, plain)


_VOLATILE_KEYS = {
    "seconds",
    "seconds_this_process",
    "peak_rss_mb",
    "rss_trace_mb",
    "rss_growth_after_warmup",
    "timestamp",
    "created",
    "started",
    "finished",
    "elapsed",
    "wall_seconds",
}


def _scrub(value, run_dir: Path):
    """JSON without timing fields; the run folder's own path replaced by a placeholder."""
    if isinstance(value, dict):
        return {k: _scrub(v, run_dir) for k, v in value.items() if k not in _VOLATILE_KEYS}
    if isinstance(value, list):
        return [_scrub(v, run_dir) for v in value]
    if isinstance(value, str):
        return value.replace(str(run_dir), "<RUN>")
    return value


@pytest.mark.slow
def test_same_config_twice_gives_identical_json_and_npz(tmp_path, tiny_cache, tiny_demo_run):
    """``python main.py`` twice (the first run also trained the cached demo model)."""
    proc, first_dir = tiny_demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    second_dir = tmp_path / "second"
    again = run_main([*TINY, FEW_SMOOTHGRAD_SAMPLES, f"paths.cache_dir={tiny_cache}", f"hydra.run.dir={second_dir}"])
    assert again.returncode == 0, again.stderr[-3000:]
    a, b = first_dir / "efficientnet", second_dir / "efficientnet"
    json_a = json.loads((a / "visualization_results.json").read_text())
    json_b = json.loads((b / "visualization_results.json").read_text())
    assert _scrub(json_a, first_dir) == _scrub(json_b, second_dir)
    npz = sorted(p.name for p in a.glob("*.npz"))
    assert len(npz) == 3 and npz == sorted(p.name for p in b.glob("*.npz"))
    for name in npz:
        with np.load(a / name, allow_pickle=False) as x, np.load(b / name, allow_pickle=False) as y:
            assert x.files == y.files and "smoothgrad__magnitude" in x.files
            for key in x.files:
                np.testing.assert_array_equal(x[key], y[key], err_msg=f"{name}: {key}")


# --------------------------------------------------------------------------- point 5: tracing, figures
def test_compiled_functions_trace_once_over_batches_and_a_short_last_batch(source, tmp_path):
    bundle = _bundle(source, seed=1)  # a fresh graph: its compiled functions start untraced
    explainers = {
        "gradcam": GradCAM(bundle),
        "saliency": Saliency(bundle),
        "smoothgrad": SmoothGrad(bundle, smooth_samples=2),
        "gradcam_plus_plus": GradcamPlusPlus(bundle),
    }
    records = source.records()[:10]
    explain_dataset(bundle, explainers, source, records, tmp_path / "a", _options(batch_size=4))  # 4, 4, 2

    def counts() -> dict[str, int]:
        scores = explainers["saliency"].models.compiled  # shared by saliency and SmoothGrad
        assert scores is explainers["smoothgrad"].models.compiled
        cam = explainers["gradcam_plus_plus"].models.compiled_cam(True)
        functions = {
            f"gradcam.{head}": explainers["gradcam"].compiled_function(head) for head in ("magnitude", "azimuth")
        }
        functions.update(
            {
                "scores.function": scores.function,
                "scores.forward_and_vjp": scores.forward_and_vjp,
                "scores.vjp": scores.vjp,
                "cam.trunk": cam.trunk_function,
                "cam.head": cam.head_function,
            }
        )
        return {name: fn.experimental_get_tracing_count() for name, fn in functions.items()}

    expected = {
        "gradcam.magnitude": 1,
        "gradcam.azimuth": 1,
        "scores.function": 0,
        "scores.forward_and_vjp": 1,
        "scores.vjp": 0,
        "cam.trunk": 1,
        "cam.head": 1,
    }
    assert counts() == expected
    # other batch sizes (3, 3, 3, 1) in a second run: nothing traces again
    explain_dataset(bundle, explainers, source, records, tmp_path / "b", _options(batch_size=3))
    assert counts() == expected


@pytest.mark.slow
def test_rss_stays_flat_over_520_samples(tmp_path):
    """The acceptance measurement: ``python -m benchmarks.dataset_memory --samples 520`` (EfficientNet-B0
    at 64x64, Grad-CAM + saliency, batches of 16 in one process) grows <= 10 % after warm-up."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.dataset_memory", "--samples", "520", "--out", str(tmp_path / "bench")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "bench" / "dataset_memory.json").read_text())
    trace = report["rss_trace_mb"]
    assert report["samples"] == 520 and len(trace) == 33 and trace[-1][0] == 520
    assert report["rss_growth_after_warmup"] <= 0.10, trace
    assert report["ok"] is True


def test_rendered_figures_are_closed_and_freed(source, tmp_path, monkeypatch):
    """Per-sample and class-mean figures of a data-set run: none left in pyplot, none referenced."""
    from xai.render import render_class_means, render_sample_figure

    created: list[weakref.ref] = []
    original_init = Figure.__init__

    def tracking_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        created.append(weakref.ref(self))

    monkeypatch.setattr(Figure, "__init__", tracking_init)
    bundle = _bundle(source)
    records = source.records()[:3]
    explain_dataset(
        bundle,
        {"gradcam": GradCAM(bundle)},
        source,
        records,
        tmp_path,
        _options(figures=2),
        figures=DatasetFigures(sample=render_sample_figure, class_means=render_class_means),
    )
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(
        f"{r.name}_visualization.png" for r in records[:2]
    )
    assert (tmp_path / "class_means_gradcam.png").is_file()
    assert len(created) >= 3  # two sample figures and the class means
    gc.collect()
    assert plt.get_fignums() == []
    alive = [ref() for ref in created if ref() is not None]
    assert not alive, f"{len(alive)} figure(s) still referenced"


# --------------------------------------------------------------------------- point 4: reruns, atomic writes
def test_staged_folder_replaces_the_whole_folder_or_nothing(tmp_path):
    from xai.runtime import staged_folder

    final = tmp_path / "model"
    final.mkdir()
    (final / "old_a.png").write_text("a")
    (final / "old_b.npz").write_text("b")
    with staged_folder(final) as folder:
        (folder / "new.png").write_text("new")
        assert not (final / "new.png").exists()  # nothing visible before the end
    assert sorted(p.name for p in final.iterdir()) == ["new.png"]
    with pytest.raises(RuntimeError), staged_folder(final) as folder:
        (folder / "half.png").write_text("half")
        raise RuntimeError("killed midway")
    assert sorted(p.name for p in final.iterdir()) == ["new.png"] and (final / "new.png").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging or old folders left


def test_failure_record_never_joins_an_earlier_runs_results(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    import xai.runtime as runtime

    monkeypatch.setattr(runtime, "output_dir", lambda: tmp_path)
    cfg = OmegaConf.create({"task": {"_target_": "xai.tasks.explain.run"}, "model": {"name": "m"}, "sample": "S"})
    written = runtime.record_failure(cfg, ValueError("boom"))
    assert written == tmp_path / "m" / "status.json" and json.loads(written.read_text())["error"] == "boom"
    for name in RESULT_FILES:
        folder = tmp_path / name.split("_")[0]
        folder.mkdir()
        (folder / name).write_text("{}")
        cfg.model.name = folder.name
        assert runtime.record_failure(cfg, ValueError("boom")) is None
        assert sorted(p.name for p in folder.iterdir()) == [name]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_rerun_into_the_same_folder_replaces_it_and_a_failed_rerun_keeps_it(tmp_path, tiny_cache, tiny_demo_run):
    import shutil

    proc, demo_dir = tiny_demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "run"
    shutil.copytree(demo_dir, run_dir)  # the first run: three samples
    folder = run_dir / "efficientnet"
    first = json.loads((folder / "visualization_results.json").read_text())
    names = [s["sample"] for s in first["samples"]]
    assert len(names) == 3
    common = [*TINY, f"paths.cache_dir={tiny_cache}", f"hydra.run.dir={run_dir}", "xai=gradcam"]
    second = run_main([*common, f"sample={names[2]}"])
    assert second.returncode == 0, second.stderr[-3000:]
    page = ["report.html", "thumbs"]  # the model's report page and its gallery thumbnail
    expected = sorted(
        [f"{names[2]}_heatmaps.npz", f"{names[2]}_visualization.png", "visualization_results.json", *page]
    )
    assert sorted(p.name for p in folder.iterdir()) == expected  # nothing of the first run is left
    results = json.loads((folder / "visualization_results.json").read_text())
    assert [s["sample"] for s in results["samples"]] == [names[2]] and results["methods"] == ["gradcam"]
    before = _snapshot(folder)
    failed = run_main([*common, "sample=No_Such_Sample"])
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert _snapshot(folder) == before  # intact: no failure record mixed into the earlier results
    assert not [p for p in run_dir.iterdir() if ".staging-" in p.name or ".old-" in p.name]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_savez_that_fails_midway_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    from core.io import atomic_savez

    target = tmp_path / "s_heatmaps.npz"
    atomic_savez(target, input=np.zeros(3))
    before = target.read_bytes()

    def broken(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        atomic_savez(target, input=np.ones(3))
    assert target.read_bytes() == before and _leftovers(tmp_path) == []
    with pytest.raises(OSError, match="disk full"):
        atomic_savez(tmp_path / "new.npz", input=np.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s_heatmaps.npz"]


def test_json_write_that_fails_after_writing_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    from core.io import atomic_write_json

    target = tmp_path / "visualization_results.json"
    atomic_write_json(target, {"run": 1})

    def broken_fsync(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", broken_fsync)  # the temp file is fully written at this point
    with pytest.raises(OSError, match="I/O error"):
        atomic_write_json(target, {"run": 2})
    assert json.loads(target.read_text()) == {"run": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["visualization_results.json"]


def test_checkpoint_that_fails_midway_leaves_no_model_in_the_cache(source, tmp_path, monkeypatch):
    """A model save that dies half-way: no ``model.keras``, no temp file, no cached model folder
    (a later run would otherwise load a broken checkpoint)."""
    import hydra
    import keras
    from omegaconf import OmegaConf

    import models.training as training

    with hydra.initialize_config_dir(str(ROOT / "conf"), version_base=None):  # conf/model/_base.yaml + efficientnet
        model_cfg = OmegaConf.to_container(hydra.compose("config", overrides=["model=efficientnet"]).model)
    model_cfg["builder"].update(input_shape=[32, 32, 3], seed=0)
    model_cfg["training"].update(stages=[], epochs=1)
    monkeypatch.setattr(training, "_fit", lambda *args, **kwargs: {"loss": [1.0]})  # no real training
    saved: list[Path] = []

    def broken_save(self, filepath, *args, **kwargs):
        saved.append(Path(filepath))
        Path(filepath).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", broken_save)
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match="disk full"):
        training.ensure_demo_model(model_cfg, source, cache, seed=0)
    assert len(saved) == 1 and saved[0].name != "model.keras"  # written under a temporary name
    assert not saved[0].exists()
    assert [p.name for p in (cache / "models").iterdir() if not p.name.endswith(".lock")] == []
    assert not list(cache.rglob("model.keras"))


# --------------------------------------------------------------------------- point 4: kill and resume
@pytest.mark.slow
def test_killed_dataset_run_resumes_and_skips_finished_samples(tmp_path, tiny_cache, tiny_demo_run):
    assert tiny_demo_run[0].returncode == 0, tiny_demo_run[0].stderr[-3000:]
    run_dir = tmp_path / "run"
    args = [
        *TINY,
        f"paths.cache_dir={tiny_cache}",
        f"hydra.run.dir={run_dir}",
        "task=dataset",
        "task.split=all",
        "task.batch_size=1",
        "task.faithfulness_samples=0",
        "task.randomisation_samples=0",
        "task.bootstrap_resamples=50",
        "xai=gradcam",
    ]
    journal = run_dir / "efficientnet.partial" / JOURNAL
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    with open(tmp_path / "killed.log", "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and proc.poll() is None:
                if journal.is_file() and journal.read_bytes().count(b"\n") >= 1:
                    break
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-3000:]
    done = len(read_journal(journal.parent))
    assert 1 <= done < 48
    assert not (run_dir / "efficientnet").exists()
    resumed = run_main(args)
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output[-3000:]
    assert f"resuming: {done} of 48 samples" in output
    final = run_dir / "efficientnet"
    assert not (run_dir / "efficientnet.partial").exists()
    results = json.loads((final / "dataset_results.json").read_text())
    assert results["n_samples"] == 48 and results["run"]["resumed_from"] == done
    entries = read_journal(final)
    index = json.loads((final / "heatmaps" / "index.json").read_text())
    assert [e["sample"] for e in entries] == index["samples"] and len(set(index["samples"])) == 48
    assert [e["index"] for e in entries] == list(range(48))
    maps = np.load(final / "heatmaps" / "gradcam__magnitude.npy")
    assert maps.shape == (48, 32, 32) and np.isfinite(maps).all()
