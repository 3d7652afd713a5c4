"""Data-set mode (xai.dataset): compact heatmap files, aggregates, trust section, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geomag.spectrogram import SpectrogramConfig
from xai.dataset import JOURNAL, DatasetFigures, DatasetOptions, explain_dataset, read_journal
from xai.heatmap_store import HeatmapStore

SPEC = SpectrogramConfig(grid=(32, 32))
N = 10


@pytest.fixture(scope="module")
def setup(tiny_dataset):
    """The shared tiny data set (tests/conftest.py): source, bundle, explainers, the first N records."""
    return tiny_dataset


def _options(**kw) -> DatasetOptions:
    base = dict(
        batch_size=4,
        faithfulness_samples=3,
        faithfulness_steps=4,
        randomisation_samples=2,
        randomisation_steps=2,
        bootstrap_resamples=50,
    )
    return DatasetOptions(**{**base, **kw})


def test_dataset_run_writes_compact_files_aggregates_and_trust_section(setup, tmp_path):
    source, bundle, explainers, records = setup
    from xai.render import render_class_means, render_sample_figure

    chosen = records[5].name
    figures = DatasetFigures(sample=render_sample_figure, class_means=render_class_means)
    results = explain_dataset(
        bundle, explainers, source, records, tmp_path, _options(figures=[chosen]), figures=figures
    )
    assert [p.name for p in (tmp_path / "figures").iterdir()] == [f"{chosen}_visualization.png"]
    for method in explainers:
        for head in ("magnitude", "azimuth"):
            maps = np.load(tmp_path / "heatmaps" / f"{method}__{head}.npy")
            assert maps.shape == (N, 32, 32) and maps.dtype == np.float16 and np.isfinite(maps).all()
            assert maps.reshape(N, -1).max(axis=1).min() > 0  # every row was written
    index = json.loads((tmp_path / "heatmaps" / "index.json").read_text())
    assert index["samples"] == [r.name for r in records]
    journal = read_journal(tmp_path)
    assert [e["sample"] for e in journal] == index["samples"]
    # accuracy in the summary equals the journal's predictions
    mag = results["heads_summary"]["magnitude"]
    expected = np.mean([e["heads"]["magnitude"]["prediction"] == e["heads"]["magnitude"]["true"] for e in journal])
    assert mag["accuracy"] == pytest.approx(expected) and mag["n"] == N
    assert np.asarray(mag["confusion"]["matrix"]).sum() == N
    # class means: unit mass per sample -> each class mean sums to 1
    means = np.load(tmp_path / "class_means.npz")
    keys = [k for k in means.files if k.startswith("gradcam__magnitude__")]
    assert keys and all(means[k].sum() == pytest.approx(1.0, abs=1e-3) for k in keys)
    assert (tmp_path / "class_means_gradcam.png").stat().st_size > 0
    trust = results["trust"]
    assert trust["localisation"]["measured"] and trust["faithfulness"]["n"] == 3
    assert set(trust["randomisation"]["methods"]) == set(explainers)
    assert trust["verdicts"]["gradcam"]["magnitude"]["verdict"]
    # relevance mass per true class = the mean over that class's journal lines
    by_class = trust["localisation"]["by_class"]["magnitude"]
    assert by_class and "Normal" not in by_class  # Normal windows have no precursor mask
    for cls, item in by_class.items():
        values = [
            e["heads"]["magnitude"]["localisation"]["gradcam"]["relevance_mass_accuracy"]
            for e in journal
            if e["true"]["magnitude"] == cls and e["heads"]["magnitude"].get("mask_area_share")
        ]
        assert item["n"] == len(values) > 0
        assert item["relevance_mass_accuracy"]["gradcam"]["mean"] == pytest.approx(np.mean(values))
    report = (tmp_path / "report.md").read_text()
    assert "Can these explanations be trusted?" in report and "| Grad-CAM |" in report
    assert "Relevance mass by true class" in report and f"| {next(iter(by_class))} | " in report
    saved = json.loads((tmp_path / "dataset_results.json").read_text())
    assert saved["run"]["peak_rss_mb"] > 0 and saved["n_samples"] == N
    # the comparison step picks the data-set results up and writes the trust section
    from core.names import COMPARISON_REPORT
    from xai.compare import compare_runs

    comparison = compare_runs([tmp_path], tmp_path / "comparison")
    assert comparison["trust"]["tiny"]["n_samples"] == N
    compared = (tmp_path / "comparison" / COMPARISON_REPORT).read_text()
    assert "Can these explanations be trusted? — tiny" in compared and "| Grad-CAM |" in compared


class _Interrupting:
    """A data source that raises KeyboardInterrupt on the n-th load (simulates Ctrl-C)."""

    def __init__(self, source, fail_at: int) -> None:
        self.source, self.fail_at, self.calls = source, fail_at, 0

    def load(self, record):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return self.source.load(record)

    def mask(self, record):
        return self.source.mask(record)


def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(setup, tmp_path):
    source, bundle, explainers, records = setup
    options = _options(randomisation_samples=0)
    with pytest.raises(KeyboardInterrupt):
        explain_dataset(bundle, explainers, _Interrupting(source, fail_at=7), records, tmp_path / "a", options)
    assert len(read_journal(tmp_path / "a")) == 4  # first batch of 4 finished, the second was interrupted
    resumed = explain_dataset(bundle, explainers, source, records, tmp_path / "a", options)
    assert resumed["run"]["resumed_from"] == 4
    straight = explain_dataset(bundle, explainers, source, records, tmp_path / "b", options)
    for name in ("gradcam__magnitude.npy", "saliency__azimuth.npy"):
        np.testing.assert_array_equal(
            np.load(tmp_path / "a" / "heatmaps" / name), np.load(tmp_path / "b" / "heatmaps" / name)
        )
    assert resumed["heads_summary"] == straight["heads_summary"]
    assert resumed["trust"]["faithfulness"] == straight["trust"]["faithfulness"]


def test_torn_journal_line_is_cut_and_other_config_starts_afresh(setup, tmp_path):
    source, bundle, explainers, records = setup
    options = _options(randomisation_samples=0, faithfulness_samples=0)
    explain_dataset(bundle, explainers, source, records, tmp_path, options)
    path = tmp_path / JOURNAL
    text = path.read_text().splitlines(keepends=True)
    path.write_text("".join(text[:5]) + text[5][:20])  # killed in the middle of a line
    assert len(read_journal(tmp_path)) == 5 and path.read_text().endswith("\n")
    again = explain_dataset(bundle, explainers, source, records, tmp_path, options)
    assert again["run"]["resumed_from"] == 5
    changed = explain_dataset(
        bundle,
        explainers,
        source,
        records,
        tmp_path,
        _options(randomisation_samples=0, faithfulness_samples=0, explained_class="true"),
    )
    assert changed["run"]["resumed_from"] == 0


def test_heatmap_store_refuses_a_mismatched_file_on_resume(tmp_path):
    HeatmapStore(tmp_path, [("gradcam", "magnitude")], 4, (8, 8))
    from core.errors import InputDataError

    with pytest.raises(InputDataError, match="shape"):
        HeatmapStore(tmp_path, [("gradcam", "magnitude")], 5, (8, 8), create=False)


def test_dataset_run_with_occlusion_reports_reliance_agreement_beside_each_verdict(setup, tmp_path):
    from xai.explainers.occlusion import Occlusion

    source, bundle, explainers, records = setup
    occlusion = Occlusion(bundle)
    methods = {"gradcam": explainers["gradcam"], "occlusion": occlusion}
    results = explain_dataset(
        bundle, methods, source, records, tmp_path, _options(randomisation_samples=0, faithfulness_samples=0)
    )
    assert set(results["reliance"]) == {"occlusion"}
    agreement = results["reliance"]["occlusion"]["magnitude"]["agreement"]["gradcam"]["spearman_rho"]
    line = results["trust"]["verdicts"]["gradcam"]["magnitude"]["reliance"]
    assert line["intervals"]["spearman"] == agreement and line["n"] == agreement["n"] == N
    assert "reliance" not in results["trust"]["verdicts"]["occlusion"]["magnitude"]
    assert "against what the prediction depends on" in (tmp_path / "report.md").read_text()
