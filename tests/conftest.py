"""Shared fixtures and helpers: tiny end-to-end runs of main.py, tiny two-head models, the location of ../shared,
fake model results folders and a fake renderer for the comparison tests."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

# Tiny but complete: 48-sample demo data set on a 32x32 grid, 32x32 backbones, one epoch.
TINY = [
    "data.generator.n_samples=48",
    "spectrogram.grid=[32,32]",
    "model.builder.input_shape=[32,32,3]",
    "model.training.epochs=1",
    "model.training.stages=[]",
    "model.training.batch_size=8",
]
FEW_SMOOTHGRAD_SAMPLES = "xai.methods.smoothgrad.smooth_samples=2"


def run_main(args: list[str], cwd: Path = ROOT, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run ``python main.py ARGS`` and return the completed process (text output)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"{SHARED}/data is absent (real data files only exist beside the project checkout)")
    return SHARED


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """One demo cache (data set + demo checkpoints) shared by the end-to-end tests."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_demo_run(tmp_path_factory, tiny_cache):
    """``python main.py`` (default model) once on the tiny demo: trains and caches the demo model."""
    run_dir = tmp_path_factory.mktemp("default_run")
    proc = run_main([*TINY, FEW_SMOOTHGRAD_SAMPLES, f"paths.cache_dir={tiny_cache}", f"hydra.run.dir={run_dir}"])
    return proc, run_dir


HEADS = (("magnitude", 4), ("azimuth", 5))


def grid_axes(
    n_rows: int,
    n_cols: int | None = None,
    layout: str = "channels",
    frange: tuple[float, float] = (0.0005, 0.1),
    window_h: float = 6.0,
):
    """Axes of a regular H/D/Z grid on a log frequency scale (the demo's band and window by default)."""
    from geomag.axes import SpectrogramAxes

    return SpectrogramAxes.regular(
        layout=layout,
        components=("H", "D", "Z"),
        n_rows=n_rows,
        n_cols=n_rows if n_cols is None else n_cols,
        frequency_range_hz=frange,
        frequency_scale="log",
        window_s=window_h * 3600.0,
    )


def tiny_two_head_model(
    seed: int = 0, size: int = 32, zero_features: bool = False, n_magnitude: int = 4, n_azimuth: int = 5
):
    """Conv stack -> target ``feat`` (7x7 at 32x32) -> pool -> shared dense -> two logit/softmax heads."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(name="p1")(x)
    init = "zeros" if zero_features else "glorot_uniform"
    x = keras.layers.Conv2D(12, 3, strides=2, activation="relu", kernel_initializer=init, name="feat")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(16, activation="tanh", name="shared")(x)
    outputs = []
    for head, n in (("magnitude", n_magnitude), ("azimuth", n_azimuth)):
        logits = keras.layers.Dense(n, name=f"{head}_logits")(x)
        outputs.append(keras.layers.Activation("softmax", name=head)(logits))
    return keras.Model(inputs, outputs, name="tiny")


def tiny_model(n_magnitude: int, n_azimuth: int, seed: int = 0):
    """The tiny two-head model with the given head sizes (32x32 input)."""
    return tiny_two_head_model(seed=seed, n_magnitude=n_magnitude, n_azimuth=n_azimuth)


# ---------------------------------------------------------------------------- comparison: fake results folders
HOUR = 3600.0
MAGNITUDE_CLASSES = ["Normal", "Moderate", "Medium", "Large"]
AZIMUTH_CLASSES = ["N", "E", "S", "W"]
BAND_OF_MODEL = {"vgg16": (1e-3, 1e-2), "efficientnet": (1e-3, 1e-2), "convnext": (2.2e-2, 0.1)}


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """``(source, bundle, explainers, records)``: 24 demo windows on a 32x32 grid, a tiny untrained
    two-head model, Grad-CAM + Saliency, and the first 10 records (data-set mode and shard tests)."""
    from geomag.sources import DemoDataSource
    from geomag.spectrogram import SpectrogramConfig
    from models.loading import bundle_from_model
    from xai.explainers.gradcam import GradCAM
    from xai.explainers.saliency import Saliency

    source = DemoDataSource(tmp_path_factory.mktemp("cache"), {"n_samples": 24}, SpectrogramConfig(grid=(32, 32)))
    mappings = source.class_mappings
    model = tiny_model(len(mappings.magnitude_classes), len(mappings.azimuth_classes))
    bundle = bundle_from_model(model, mappings, name="tiny", target_layer="feat")
    explainers = {"gradcam": GradCAM(bundle), "saliency": Saliency(bundle)}
    return source, bundle, explainers, source.records()[:10]


def make_model_folder(
    run_dir: Path,
    model: str,
    samples: list[dict],
    *,
    n: int = 32,
    class_order: list[str] | None = None,
    methods: tuple[str, ...] = ("gradcam", "saliency"),
    layout: str = "channels",
    native: tuple[int, int] = (4, 4),
    frange: tuple[float, float] = (0.0005, 0.1),
    store_attention: bool = False,
    model_file: str | None = None,
) -> Path:
    """Write ``<run_dir>/<model>/visualization_results.json`` (built through :mod:`xai.results_schema`,
    the schema the explain task writes) and one ``<sample>_heatmaps.npz`` each.

    ``samples``: ``{"sample", "true": (magnitude, azimuth), "pred": (magnitude, azimuth),
    "conf": (p_mag, p_az)}``. Grad-CAM maps put their mass in ``BAND_OF_MODEL[model]``.
    ``model_file`` defaults to ``models/<model>.keras``.
    """
    from core.io import atomic_savez, atomic_write_json
    from core.names import RESULTS_FILE
    from xai.attention import attention_summary
    from xai.results_schema import HeadResult, SampleFiles, SampleResult, VisualizationResults

    folder = run_dir / model
    axes = grid_axes(n, layout=layout, frange=frange)
    order = class_order or MAGNITUDE_CLASSES
    rng = np.random.default_rng(zlib.crc32(model.encode()))
    entries = []
    for i, spec in enumerate(samples):
        name = spec["sample"]
        files = SampleFiles.for_sample(name)
        arrays = {"input": rng.random((n, n, 3)).astype(np.float32), **axes.to_npz_arrays()}
        heads = {}
        for h, head in enumerate(("magnitude", "azimuth")):
            head_attention = {}
            for method in methods:
                if method == "gradcam":
                    box = axes.cell_mask(*BAND_OF_MODEL[model], (5 - i) * HOUR, (3 - i) * HOUR)
                    raw = box.astype(np.float32)
                    raw = raw * (2.0 + h) + 0.01 * rng.random((n, n)).astype(np.float32)
                else:
                    raw = rng.random((n, n)).astype(np.float32)
                arrays[f"{method}__{head}"] = raw
                arrays[f"{method}__{head}__display"] = raw / raw.max()
                arrays[f"{method}__{head}__native"] = np.ones(native, np.float32)
                if store_attention:
                    head_attention[method] = attention_summary(raw, axes, native_shape=native)
            classes = order if head == "magnitude" else AZIMUTH_CLASSES
            pred = spec["pred"][h]
            others = [c for c in classes if c != pred]
            rest = (1 - spec["conf"][h]) / len(others)
            heads[head] = HeadResult(
                prediction=pred,
                confidence=spec["conf"][h],
                probabilities={pred: spec["conf"][h], **{c: rest for c in others}},
                explained_class=pred,
                true=spec["true"][h],
                correct=pred == spec["true"][h],
                score="logit",
                method_scores={m: "logit" for m in methods},
                attention=head_attention,
                files=files,
            )
        atomic_savez(folder / files.heatmaps, **arrays)
        entries.append(
            SampleResult(
                sample=name,
                source=f"data/{name}.png",
                split=None,
                event_time=None,
                true={"magnitude": spec["true"][0], "azimuth": spec["true"][1]},
                heads=heads,
                files=files,
            )
        )
    results = VisualizationResults(
        model=model,
        model_file=model_file or f"models/{model}.keras",
        target_layer="top_conv",
        input_shape=[n, n, 3],
        class_mappings={
            "magnitude_classes": order,
            "azimuth_classes": AZIMUTH_CLASSES,
            "magnitude_to_idx": {c: i for i, c in enumerate(order)},
            "azimuth_to_idx": {c: i for i, c in enumerate(AZIMUTH_CLASSES)},
        },
        methods=list(methods),
        heads=["magnitude", "azimuth"],
        score={"magnitude": "logit", "azimuth": "logit"},
        native_resolution={m: list(native) for m in methods},
        preprocessing="none",
        data={"kind": "fake"},
        environment={"tensorflow": "2.21", "keras": "3.15", "tf_keras_vis": "0.8.7", "device": "CPU"},
        axes=axes.to_dict(),
        samples=entries,
        status="ok",
    )
    atomic_write_json(folder / RESULTS_FILE, results.to_json())
    return folder


SAMPLES_A = [  # vgg16
    {"sample": "Large_MLB_2021-04-16", "true": ("Large", "N"), "pred": ("Large", "N"), "conf": (0.9, 0.8)},
    {"sample": "Moderate_X_2020-01-01", "true": ("Moderate", "E"), "pred": ("Large", "S"), "conf": (0.7, 0.6)},
]
SAMPLES_B = [  # efficientnet: also predicts Large for the Moderate sample -> agreed, but wrong
    {"sample": "Large_MLB_2021-04-16", "true": ("Large", "N"), "pred": ("Large", "W"), "conf": (0.6, 0.5)},
    {"sample": "Moderate_X_2020-01-01", "true": ("Moderate", "E"), "pred": ("Large", "E"), "conf": (0.8, 0.9)},
]


def make_job(sweep: Path, num: int, overrides: list[str]) -> Path:
    """A Hydra sweep job folder ``<sweep>/<num>`` with ``.hydra/overrides.yaml``."""
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    return job


class FakeRender:
    """Stands in for :mod:`xai.render` (real figures take seconds each): checks the arguments
    against the render contract, records the calls and writes placeholder files."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    @staticmethod
    def _check_map(cell: dict) -> None:
        axes = cell["axes"]
        heat = np.asarray(cell["map"])
        assert heat.shape == axes.shape and heat.min() >= 0 and heat.max() <= 1
        assert np.asarray(cell["grid_image"]).shape[:2] == axes.shape
        assert {"prediction", "confidence", "true", "correct"} <= set(cell)

    def render_comparison_figure(self, path, *, sample, entries, head_order=("magnitude", "azimuth"), method="gradcam"):
        self.calls.append(("comparison", {"sample": sample, "entries": entries, "method": method}))
        for entry in entries:
            for cell in entry["heads"].values():
                self._check_map(dict(cell, axes=entry["axes"], grid_image=entry["grid_image"]))
        Path(path).write_bytes(b"png")
        return Path(path)

    def render_confidence_chart(self, path, *, samples, models, heads, confidence, correct, paper=False):
        self.calls.append(
            (
                "confidence",
                {"samples": samples, "models": models, "confidence": confidence, "correct": correct, "paper": paper},
            )
        )
        for head in heads:
            for model in models:
                for sample in samples:
                    value = confidence[head][model].get(sample)
                    assert value is None or 0 <= value <= 1
        path = Path(path)
        paper_files = [path.with_suffix(".pdf"), path.with_suffix(".png")]
        outputs = [path] if path.suffix and not paper else paper_files
        for out in outputs:
            out.write_bytes(b"x")
        return outputs

    def render_paper_grid(self, path_stem, *, samples, models, cells, head, method):
        self.calls.append(("paper", {"samples": samples, "models": models, "cells": cells, "head": head}))
        for (sample, model), cell in cells.items():
            assert sample in samples and model in models
            self._check_map(cell)
        stem = Path(path_stem)
        outputs = [stem.with_name(stem.name + ".pdf"), stem.with_name(stem.name + ".png")]
        for out in outputs:
            out.write_bytes(b"x")
        return outputs

    def install(self, setattr_=setattr) -> FakeRender:
        """Put the fake's functions in place of :mod:`xai.render`'s (``setattr_``: e.g. ``monkeypatch.setattr``)."""
        import xai.render

        for name in ("render_comparison_figure", "render_confidence_chart", "render_paper_grid"):
            setattr_(xai.render, name, getattr(self, name))
        return self


@pytest.fixture()
def fake_render(monkeypatch) -> FakeRender:
    """The comparison figures drawn by a :class:`FakeRender` for this test."""
    return FakeRender().install(monkeypatch.setattr)
