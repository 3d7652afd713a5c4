"""Paired trust comparisons in real data-set runs: methods against methods in ``dataset_results.json``
and models against models in the comparison (same samples), each difference recomputed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geomag.sources import DemoDataSource
from geomag.spectrogram import SpectrogramConfig
from models.loading import bundle_from_model
from tests.conftest import tiny_model
from xai.dataset import DatasetOptions, explain_dataset, read_journal
from xai.explainers.gradcam import GradCAM
from xai.explainers.saliency import Saliency


def _mass(journal: list[dict], method: str) -> np.ndarray:
    values = [e["heads"]["magnitude"]["localisation"][method]["relevance_mass_accuracy"] for e in journal]
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def test_method_and_model_pairs_in_dataset_results_and_comparison(tmp_path):
    source = DemoDataSource(tmp_path / "cache", {"n_samples": 12}, SpectrogramConfig(grid=(32, 32)))
    mappings = source.class_mappings
    records = source.records()[:8]
    options = DatasetOptions(batch_size=8, faithfulness_samples=0, randomisation_samples=0, bootstrap_resamples=200)
    folders = {}
    for seed, name in ((0, "tiny_a"), (1, "tiny_b")):
        model = tiny_model(len(mappings.magnitude_classes), len(mappings.azimuth_classes), seed=seed)
        bundle = bundle_from_model(model, mappings, name=name, target_layer="feat")
        explainers = {"gradcam": GradCAM(bundle), "saliency": Saliency(bundle)}
        folders[name] = tmp_path / "runs" / name
        results = explain_dataset(bundle, explainers, source, records, folders[name], options)
    # the last run (tiny_b): Grad-CAM minus Saliency relevance mass, per sample, from the journal
    journal = read_journal(folders["tiny_b"])
    mass = {m: _mass(journal, m) for m in ("gradcam", "saliency")}
    row = results["trust"]["paired"]["magnitude"]["relevance_mass_accuracy"][0]
    assert (row["a"], row["b"]) == ("gradcam", "saliency")
    keep = np.isfinite(mass["gradcam"]) & np.isfinite(mass["saliency"])
    assert row["difference"]["n"] == keep.sum()
    assert row["difference"]["mean"] == pytest.approx(float(np.mean(mass["gradcam"][keep] - mass["saliency"][keep])))
    low, high = row["difference"]["low"], row["difference"]["high"]
    expected = "passes" if low > 0 else "fails" if high < 0 else "inconclusive"
    assert row["outcome"] == expected
    report = (folders["tiny_b"] / "report.md").read_text()
    assert "Paired differences on the same samples" in report and "| relevance mass | Grad-CAM − Saliency |" in report
    # faithfulness_samples=0: the verdict says faithfulness did not run
    verdict = results["trust"]["verdicts"]["gradcam"]["magnitude"]
    assert "faithfulness" in verdict["not_run"] and verdict["verdict"] != "passes every check"
    assert "not run: faithfulness" in verdict["verdict"]

    from core.names import COMPARISON_REPORT
    from xai.compare import compare_runs

    comparison = compare_runs([tmp_path / "runs"], tmp_path / "comparison")
    rows = comparison["trust_paired"]["magnitude"]["relevance_mass_accuracy"]
    gradcam = next(r for r in rows if r["method"] == "gradcam")
    assert (gradcam["a"], gradcam["b"]) == ("tiny_a", "tiny_b")
    other = read_journal(folders["tiny_a"])
    a = _mass(other, "gradcam")
    both = np.isfinite(a) & np.isfinite(mass["gradcam"])
    assert gradcam["difference"]["mean"] == pytest.approx(float(np.mean(a[both] - mass["gradcam"][both])), abs=1e-6)
    assert "per_sample" not in comparison["trust"]["tiny_a"]["trust"]
    text = (tmp_path / "comparison" / COMPARISON_REPORT).read_text()
    assert (
        "Models compared on the same samples" in text
        and "| magnitude | Grad-CAM | relevance mass | tiny_a − tiny_b |" in text
    )
    saved = json.loads((folders["tiny_a"] / "dataset_results.json").read_text())
    assert saved["trust"]["per_sample"]["samples"] == [r.name for r in records]
