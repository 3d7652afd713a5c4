"""Comparison of fake model folders (JSON + NPZ per the architecture contract)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from core.errors import ConfigError, InputDataError
from core.io import atomic_savez, atomic_write_json
from geomag.axes import SpectrogramAxes
from xai.compare import (
    COMPARISON_JSON,
    REPORT_FILE,
    SweepHadFailures,
    compare_runs,
    has_failures,
    run_compare_task,
)

HOUR = 3600.0
MAGNITUDE_CLASSES = ["Normal", "Moderate", "Medium", "Large"]
AZIMUTH_CLASSES = ["N", "E", "S", "W"]
BAND_OF_MODEL = {"vgg16": (1e-3, 1e-2), "efficientnet": (1e-3, 1e-2), "convnext": (2.2e-2, 0.1)}


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
) -> Path:
    """Write ``<run_dir>/<model>/visualization_results.json`` and one ``<sample>_heatmaps.npz`` each.

    ``samples``: ``{"sample", "true": (magnitude, azimuth), "pred": (magnitude, azimuth),
    "conf": (p_mag, p_az)}``. Grad-CAM maps put their mass in ``BAND_OF_MODEL[model]``.
    """
    from xai.attention import attention_summary

    folder = run_dir / model
    axes = SpectrogramAxes.regular(layout=layout, components=("H", "D", "Z"), n_rows=n, n_cols=n,
                                   frequency_range_hz=frange, frequency_scale="log",
                                   window_s=6 * HOUR)
    order = class_order or MAGNITUDE_CLASSES
    rng = np.random.default_rng(zlib.crc32(model.encode()))
    entries = []
    for i, spec in enumerate(samples):
        name = spec["sample"]
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
            probabilities = {pred: spec["conf"][h], **{c: rest for c in others}}
            heads[head] = {
                "prediction": pred, "confidence": spec["conf"][h], "probabilities": probabilities,
                "explained_class": pred, "correct": pred == spec["true"][h],
                "files": {"figure": f"{name}_visualization.png", "heatmaps": f"{name}_heatmaps.npz"},
            }
            if store_attention:
                heads[head]["attention"] = head_attention
        atomic_savez(folder / f"{name}_heatmaps.npz", **arrays)
        entries.append({
            "sample": name, "source": f"data/{name}.png",
            "true": {"magnitude": spec["true"][0], "azimuth": spec["true"][1]}, "heads": heads,
            "files": {"figure": f"{name}_visualization.png", "heatmaps": f"{name}_heatmaps.npz"},
        })
    results = {
        "model": model, "model_file": f"models/{model}.keras", "target_layer": "top_conv",
        "input_shape": [n, n, 3],
        "class_mappings": {"magnitude_classes": order, "azimuth_classes": AZIMUTH_CLASSES,
                           "magnitude_to_idx": {c: i for i, c in enumerate(order)},
                           "azimuth_to_idx": {c: i for i, c in enumerate(AZIMUTH_CLASSES)}},
        "methods": list(methods), "score": {"magnitude": "logit", "azimuth": "logit"},
        "native_resolution": {m: list(native) for m in methods},
        "environment": {"tensorflow": "2.21", "keras": "3.15", "tf_keras_vis": "0.8.7", "device": "CPU"},
        "axes": axes.to_dict(), "samples": entries, "status": "ok",
    }
    atomic_write_json(folder / "visualization_results.json", results)
    return folder


SAMPLES_A = [  # vgg16
    {"sample": "Large_MLB_2021-04-16", "true": ("Large", "N"), "pred": ("Large", "N"), "conf": (0.9, 0.8)},
    {"sample": "Moderate_X_2020-01-01", "true": ("Moderate", "E"), "pred": ("Large", "S"),
     "conf": (0.7, 0.6)},
]
SAMPLES_B = [  # efficientnet: also predicts Large for the Moderate sample -> agreed, but wrong
    {"sample": "Large_MLB_2021-04-16", "true": ("Large", "N"), "pred": ("Large", "W"), "conf": (0.6, 0.5)},
    {"sample": "Moderate_X_2020-01-01", "true": ("Moderate", "E"), "pred": ("Large", "E"),
     "conf": (0.8, 0.9)},
]


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

    def render_comparison_figure(self, path, *, sample, entries, head_order=("magnitude", "azimuth"),
                                 method="gradcam"):
        self.calls.append(("comparison", {"sample": sample, "entries": entries, "method": method}))
        for entry in entries:
            for cell in entry["heads"].values():
                self._check_map(dict(cell, axes=entry["axes"], grid_image=entry["grid_image"]))
        Path(path).write_bytes(b"png")
        return Path(path)

    def render_confidence_chart(self, path, *, samples, models, heads, confidence, correct, paper=False):
        self.calls.append(("confidence", {"samples": samples, "models": models, "confidence": confidence,
                                          "correct": correct, "paper": paper}))
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


@pytest.fixture(autouse=True)
def fake_render(request, monkeypatch):
    """Replace the slow real figures unless the test asks for ``real_figures``."""
    if "real_figures" in request.fixturenames:
        return None
    import xai.render

    fake = FakeRender()
    for name in ("render_comparison_figure", "render_confidence_chart", "render_paper_grid"):
        monkeypatch.setattr(xai.render, name, getattr(fake, name))
    return fake


@pytest.fixture()
def real_figures():
    """Marker fixture: use the real :mod:`xai.render`."""
    return True


def _job(sweep: Path, num: int, overrides: list[str]) -> Path:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    return job


@pytest.fixture()
def sweep(tmp_path: Path) -> Path:
    """A sweep: two model jobs that worked, one failed job and one that left nothing."""
    root = tmp_path / "multirun"
    make_model_folder(_job(root, 0, ["model=vgg16"]), "vgg16", SAMPLES_A, n=32)
    make_model_folder(_job(root, 1, ["model=efficientnet"]), "efficientnet", SAMPLES_B, n=16,
                      class_order=["Large", "Medium", "Moderate", "Normal"], store_attention=True)
    failed = _job(root, 2, ["model=convnext", "sample=Large_MLB_2021-04-16"])
    atomic_write_json(failed / "convnext" / "status.json", {
        "status": "failed", "error": "models/convnext.keras: file not found", "model": "convnext",
        "sample": "Large_MLB_2021-04-16"})
    _job(root, 3, ["model=resnet", "sample=Moderate_X_2020-01-01"])
    compare_job = _job(root, 4, ["task=compare"])  # not an explain job: never "missing"
    (compare_job / ".hydra" / "config.yaml").write_text("task:\n  _target_: xai.compare.run_compare_task\n")
    return root


def test_agreed_but_wrong_failed_and_missing_jobs_are_reported(sweep, tmp_path):
    out = tmp_path / "cmp"
    result = compare_runs([sweep], out)
    assert sorted(result["models"]) == ["efficientnet", "vgg16"]
    magnitude = result["agreement"]["magnitude"]["all_models"]
    assert magnitude["agree"] == 2 and magnitude["agree_wrong"] == 1
    assert magnitude["agree_wrong_samples"] == [
        {"sample": "Moderate_X_2020-01-01", "prediction": "Large", "true": "Moderate"}]
    assert result["agreement"]["magnitude"]["pairs"][0]["agree_wrong_samples"] == ["Moderate_X_2020-01-01"]
    azimuth = result["agreement"]["azimuth"]["all_models"]
    assert azimuth["agree"] == 0 and azimuth["agree_wrong"] == 0
    expected_accuracy = {"correct": 1, "n": 2, "accuracy": 0.5, "unknown_truth": 0}
    assert result["accuracy"]["magnitude"]["vgg16"] == expected_accuracy
    assert result["accuracy"]["azimuth"]["efficientnet"]["correct"] == 1
    conf = result["confidence"]["magnitude"]["efficientnet"]
    assert conf["mean"] == pytest.approx(0.7) and conf["std"] == pytest.approx(0.1) and conf["n"] == 2

    failed = result["jobs"]["failed"]
    assert len(failed) == 1 and failed[0]["model"] == "convnext"
    assert failed[0]["error"] == "models/convnext.keras: file not found"
    assert failed[0]["job"] == "multirun/2"
    missing = result["jobs"]["missing"]
    assert [(m["job"], m["model"], m["sample"]) for m in missing] == [
        ("multirun/3", "resnet", "Moderate_X_2020-01-01")]
    assert has_failures(result)

    report = (out / REPORT_FILE).read_text(encoding="utf-8")
    sentence = "both models predicted Large for Moderate_X_2020-01-01 (true: Moderate) — agreed, but wrong."
    assert sentence in report
    assert "**Agreed but wrong (magnitude)**: 1 sample(s)." in report
    assert "**Agreed but wrong (azimuth)**: 0 sample(s)." in report
    failed_line = ("**failed** `multirun/2` (model convnext, sample Large_MLB_2021-04-16): "
                   "models/convnext.keras: file not found")
    assert failed_line in report
    assert "**missing** `multirun/3` (model resnet, sample Moderate_X_2020-01-01)" in report
    assert "vgg16: 1/2 correct (50 %)" in report.replace("**", "")


def test_similarity_and_attention_numbers(sweep, tmp_path):
    result = compare_runs([sweep], tmp_path / "cmp")
    pair = result["similarity"]["magnitude"]["gradcam"]["efficientnet vs vgg16"]
    # both models put Grad-CAM mass in the same ULF box (different grids): high agreement
    for values in pair["per_sample"].values():
        assert values["spearman"] > 0.3 and values["top_iou"] > 0.3
        assert values["common_grid"]["rows"] == 32
    saliency = result["similarity"]["magnitude"]["saliency"]["efficientnet vs vgg16"]
    assert abs(saliency["spearman"]["mean"]) < 0.3  # independent random maps
    vgg = result["attention"]["vgg16"]["magnitude"]["gradcam"]
    ulf = vgg["summary"]["bands"]["ULF"]
    assert ulf["enrichment"]["mean"] > 1.5 and ulf["samples_enriched"] == 2
    assert vgg["per_sample"]["Large_MLB_2021-04-16"]["source"] == "computed from npz"
    eff = result["attention"]["efficientnet"]["magnitude"]["gradcam"]
    assert eff["per_sample"]["Large_MLB_2021-04-16"]["source"] == "results json"
    assert vgg["summary"]["native_resolution"]["time_cells"] == 4
    report = (tmp_path / "cmp" / REPORT_FILE).read_text(encoding="utf-8")
    share = ulf["mass_share"]["mean"]
    expected = (f"vgg16 Grad-CAM places {100 * share:.0f} % of its mass in the ULF band (1–10 mHz), "
                f"{ulf['enrichment']['mean']:.2f}× its area share")
    assert expected in report
    assert "attention concentrates in the ULF band" in report
    # saliency maps are uniform noise: the report must not claim a band preference for them
    sal_ulf = result["attention"]["vgg16"]["magnitude"]["saliency"]["summary"]["bands"]["ULF"]
    assert sal_ulf["enrichment"]["mean"] < 1.5
    assert "vgg16 Saliency places" in report and "attention does not concentrate in the ULF band" in report


def test_real_figures_are_written(tmp_path, real_figures):
    make_model_folder(tmp_path / "run", "vgg16", SAMPLES_A[1:], n=16, methods=("gradcam",))
    make_model_folder(tmp_path / "run", "efficientnet", SAMPLES_B[1:], n=12, methods=("gradcam",))
    out = tmp_path / "cmp"
    result = compare_runs([tmp_path / "run"], out)
    expected = ["Moderate_X_2020-01-01_comparison.png", "confidence_comparison.png",
                "paper_confidence_comparison.pdf", "paper_confidence_comparison.png",
                "paper_gradcam_azimuth.pdf", "paper_gradcam_azimuth.png",
                "paper_gradcam_magnitude.pdf", "paper_gradcam_magnitude.png"]
    assert result["figures"] == expected
    for name in expected:
        head = (out / name).read_bytes()[:5]
        assert head == (b"%PDF-" if name.endswith(".pdf") else b"\x89PNG\r"), name
    assert "figure failed" not in (out / REPORT_FILE).read_text(encoding="utf-8")


def test_outputs_written_and_json_deterministic(sweep, tmp_path, fake_render):
    out = tmp_path / "cmp"
    compare_runs([sweep], out)
    first = (out / COMPARISON_JSON).read_bytes()
    names = {p.name for p in out.iterdir()}
    for expected in ("Large_MLB_2021-04-16_comparison.png", "Moderate_X_2020-01-01_comparison.png",
                     "confidence_comparison.png", "paper_confidence_comparison.pdf",
                     "paper_confidence_comparison.png", "paper_gradcam_magnitude.pdf",
                     "paper_gradcam_magnitude.png",
                     "paper_gradcam_azimuth.pdf", "paper_gradcam_azimuth.png", COMPARISON_JSON, REPORT_FILE):
        assert expected in names, expected
        assert (out / expected).stat().st_size > 0
    assert not [n for n in names if n.startswith(".")], "temporary files left behind"
    data = json.loads(first)
    assert "paper_gradcam_azimuth.png" in data["figures"]
    assert list(data) == sorted(data)
    kinds = [kind for kind, _ in fake_render.calls]
    assert kinds.count("comparison") == 2 and kinds.count("paper") == 2 and kinds.count("confidence") == 2
    comparison_call = next(kw for kind, kw in fake_render.calls if kind == "comparison")
    assert [e["model"] for e in comparison_call["entries"]] == ["efficientnet", "vgg16"]
    assert comparison_call["method"] == "gradcam"
    paper = next(kw for kind, kw in fake_render.calls if kind == "paper" and kw["head"] == "magnitude")
    cell = paper["cells"][("Moderate_X_2020-01-01", "vgg16")]
    assert (cell["prediction"], cell["true"], cell["correct"]) == ("Large", "Moderate", False)
    compare_runs([sweep], tmp_path / "other_out")
    assert (tmp_path / "other_out" / COMPARISON_JSON).read_bytes() == first
    compare_runs([sweep], out)  # comparison/ of an earlier run under the folders is not picked up
    assert (out / COMPARISON_JSON).read_bytes() == first


def test_three_models_and_runs_merged_across_folders(tmp_path):
    run_a, run_b = tmp_path / "run_a", tmp_path / "run_b"
    make_model_folder(run_a, "vgg16", SAMPLES_A[:1], n=32)
    make_model_folder(run_b, "vgg16", SAMPLES_A[1:], n=32)  # same model, other sample: merged
    make_model_folder(run_a, "efficientnet", SAMPLES_B, n=16)
    third = [dict(s, pred=("Large", "N")) for s in SAMPLES_B]
    make_model_folder(run_b, "convnext", third, n=24, layout="channels")
    out = tmp_path / "cmp"
    result = compare_runs([run_a, run_b], out)
    assert sorted(result["models"]) == ["convnext", "efficientnet", "vgg16"]
    assert result["models"]["vgg16"]["samples"] == ["Large_MLB_2021-04-16", "Moderate_X_2020-01-01"]
    assert len(result["agreement"]["magnitude"]["pairs"]) == 3
    assert result["agreement"]["magnitude"]["all_models"]["agree_wrong"] == 1
    assert len(result["similarity"]["azimuth"]["gradcam"]) == 3
    assert not has_failures(result)
    report = (out / REPORT_FILE).read_text(encoding="utf-8")
    sentence = "all 3 models predicted Large for Moderate_X_2020-01-01 (true: Moderate) — agreed, but wrong."
    assert sentence in report
    # convnext puts Grad-CAM mass in Pc3, not ULF
    conv = result["attention"]["convnext"]["magnitude"]["gradcam"]["summary"]["bands"]
    assert conv["Pc3"]["enrichment"]["mean"] > 1.5 and conv["ULF"]["enrichment"]["mean"] < 0.67
    assert "convnext Grad-CAM places" in report and "the ULF band gets less than its area share" in report
    assert (out / "Large_MLB_2021-04-16_comparison.png").is_file()
    # convnext's Pc3 box covers fewer cells than the others' ULF box: more concentrated, by both measures
    conc = result["similarity"]["magnitude"]["gradcam"]["convnext vs vgg16"]["concentration_on_common_grid"]
    assert conc["convnext"]["normalized_entropy"]["mean"] < conc["vgg16"]["normalized_entropy"]["mean"] - 0.01
    assert conc["convnext"]["top_mass_share"]["mean"] > conc["vgg16"]["top_mass_share"]["mean"] + 0.01
    assert "Grad-CAM, magnitude: convnext is more concentrated than vgg16 (on the common 32×32 grid" in report
    assert "vgg16 is finer in time" not in report  # all native maps are 4x4
    assert "the same in time (1.5 h per cell)" in report


def test_single_model_writes_facts_with_a_note(tmp_path):
    make_model_folder(tmp_path / "run", "vgg16", SAMPLES_A, n=16, methods=("gradcam",))
    result = compare_runs([tmp_path / "run"], tmp_path / "cmp")
    assert result["agreement"]["magnitude"]["pairs"] == []
    assert any("at least 2 models" in note for note in result["notes"])
    report = (tmp_path / "cmp" / REPORT_FILE).read_text(encoding="utf-8")
    assert "Agreement needs at least 2 models" in report
    assert "vgg16 Grad-CAM places" in report


def test_stacked_layout_and_uncovered_band(tmp_path):
    make_model_folder(tmp_path / "run", "vgg16", SAMPLES_A, n=30, layout="stacked", methods=("gradcam",))
    make_model_folder(tmp_path / "run", "efficientnet", SAMPLES_B, n=15, layout="stacked",
                      methods=("gradcam",), frange=(0.0005, 0.005))
    result = compare_runs([tmp_path / "run"], tmp_path / "cmp")
    comps = result["attention"]["vgg16"]["magnitude"]["gradcam"]["summary"]["components"]
    assert set(comps) == {"H", "D", "Z"}
    assert sum(v["mean"] for v in comps.values()) == pytest.approx(1.0, abs=1e-5)
    pair = result["similarity"]["magnitude"]["gradcam"]["efficientnet vs vgg16"]
    assert pair["spearman"]["mean"] > 0.3 and pair["top_iou"]["mean"] > 0.3
    grid = pair["per_sample"]["Large_MLB_2021-04-16"]["common_grid"]
    assert grid["frequency_range_hz"] == [0.0005, 0.005]
    eff = result["attention"]["efficientnet"]["magnitude"]["gradcam"]["summary"]["bands"]
    assert eff["Pc3"] == {"covered": False, "frequency_range_hz": [0.022, 0.1], "label": "Pc3 pulsations"}
    assert eff["ULF"]["covered"] is True
    report = (tmp_path / "cmp" / REPORT_FILE).read_text(encoding="utf-8")
    uncovered = "efficientnet Grad-CAM: not covered by this model's grid: Pc4 (6.7–22 mHz), Pc3 (22–100 mHz)."
    assert uncovered in report
    assert "| efficientnet | 2 | " in report and "| not covered | not covered |" in report
    assert "vgg16 Grad-CAM mass per component: H " in report


def test_missing_job_reads_its_hydra_config(tmp_path):
    make_model_folder(tmp_path / "sweep" / "0", "vgg16", SAMPLES_A, n=12, methods=("gradcam",))
    job = _job(tmp_path / "sweep", 1, [])
    (job / ".hydra" / "config.yaml").write_text(
        "task:\n  _target_: xai.tasks.explain.run\nmodel:\n  name: efficientnet\nsample: Large_X\n"
    )
    missing = compare_runs([tmp_path / "sweep"], tmp_path / "cmp")["jobs"]["missing"]
    assert [(m["job"], m["model"], m["sample"]) for m in missing] == [("sweep/1", "efficientnet", "Large_X")]


def test_bad_inputs(tmp_path):
    with pytest.raises(ConfigError, match="task.folders"):
        compare_runs([], tmp_path / "cmp")
    with pytest.raises(InputDataError, match="does not exist"):
        compare_runs([tmp_path / "nope"], tmp_path / "cmp")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no visualization_results.json"):
        compare_runs([tmp_path / "empty"], tmp_path / "cmp")
    broken = tmp_path / "broken" / "vgg16"
    broken.mkdir(parents=True)
    (broken / "visualization_results.json").write_text("{not json")
    make_model_folder(tmp_path / "broken", "efficientnet", SAMPLES_B, n=16, methods=("gradcam",))
    result = compare_runs([tmp_path / "broken"], tmp_path / "cmp")
    assert result["jobs"]["unreadable"][0]["file"] == "broken/vgg16/visualization_results.json"
    assert has_failures(result)


def test_run_compare_task_raises_after_writing(sweep, tmp_path):
    out = tmp_path / "task_out"
    cfg = OmegaConf.create({"task": {"folders": [str(sweep)], "out_dir": str(out)}})
    with pytest.raises(SweepHadFailures, match="1 failed, 1 missing"):
        run_compare_task(cfg)
    assert (out / REPORT_FILE).is_file() and (out / COMPARISON_JSON).is_file()
    clean = tmp_path / "clean"
    make_model_folder(clean, "vgg16", SAMPLES_A, n=16, methods=("gradcam",))
    cfg = OmegaConf.create({"task": {"folders": [str(clean)], "out_dir": str(tmp_path / "clean_out"),
                                     "expected_models": ["vgg16", "efficientnet"]}})
    with pytest.raises(SweepHadFailures, match="1 missing"):
        run_compare_task(cfg)
    cfg = OmegaConf.create({"task": {"folders": [str(clean)], "out_dir": str(tmp_path / "clean_out")}})
    samples = run_compare_task(cfg)["models"]["vgg16"]["samples"]
    assert samples == ["Large_MLB_2021-04-16", "Moderate_X_2020-01-01"]
    with pytest.raises(ConfigError, match="task.folders"):
        run_compare_task(OmegaConf.create({"task": {"folders": [], "out_dir": str(out)}}))


def test_task_config_is_instantiated_like_main_does(tmp_path):
    """conf/task/compare.yaml is a partial: its keys arrive as keyword arguments (as in main.py)."""
    import hydra

    make_model_folder(tmp_path / "run", "vgg16", SAMPLES_A, n=12, methods=("gradcam",))
    task_yaml = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "task" / "compare.yaml")
    cfg = OmegaConf.create({"task": task_yaml})
    cfg.task.folders = [str(tmp_path / "run")]
    cfg.task.out_dir = str(tmp_path / "out")
    task = hydra.utils.instantiate(cfg.task)
    assert sorted(task(cfg)["models"]) == ["vgg16"]
    assert (tmp_path / "out" / REPORT_FILE).is_file()
