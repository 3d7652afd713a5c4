"""Storms are not precursors: activity summaries, the confound test and its sentences, and their wiring into the
explain results, the sample figure, the data-set run and the comparison."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf

from geomag.activity import WindowActivity
from geomag.activity_summary import activity_summary, activity_text, record_activity, source_label
from xai.trust.confound import (
    ConfoundOptions,
    activity_index,
    confound_sentences,
    confound_test,
    drop_disturbed,
    spearman_ci,
)
from xai.trust.confound_report import confound_section

ROOT = Path(__file__).resolve().parents[1]
CLASSES = {"magnitude": ["Normal", "Moderate", "Medium", "Large"]}
FAST = ConfoundOptions(bootstrap_resamples=200)


def _row(flag: str, k: int, true: str, pred: str, ulf: float = 0.2) -> dict:
    probs = [0.7 if c == pred else 0.1 for c in CLASSES["magnitude"]]
    return {
        "sample": f"{true}_{flag}_{k}_{pred}",
        "activity": {"flag": flag, "k": k, "source": "local K index (metadata column)"},
        "true": {"magnitude": true},
        "heads": {"magnitude": {"prediction": pred, "probabilities": probs, "bands": {"gradcam": {"ULF": ulf}}}},
    }


def _storm_rows(storm_pred: str = "Large", quiet_false_alarms: int = 1) -> list[dict]:
    """6 disturbed Normal windows, 6 quiet Normal windows (``quiet_false_alarms`` called Large), 6 quiet Large."""
    rows = [_row("disturbed", 5 + i % 3, "Normal", storm_pred, ulf=0.6) for i in range(6)]
    rows += [_row("quiet", i % 3, "Normal", "Large" if i < quiet_false_alarms else "Normal") for i in range(6)]
    rows += [_row("quiet", i % 3, "Large", "Large") for i in range(6)]
    return rows


# ------------------------------------------------------------------ numbers
def test_spearman_against_the_hand_computed_value():
    # d = rank differences (-1, 1, -1, 1, 0): rho = 1 - 6 * 4 / (5 * 24) = 0.8
    result = spearman_ci([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], FAST)
    assert result["rho"] == pytest.approx(0.8) and result["n"] == 5
    assert result["low"] <= 0.8 <= result["high"]
    assert spearman_ci([1, 1, 1, 1], [1, 2, 3, 4], FAST)["rho"] is None  # no spread in the index
    assert spearman_ci([1, np.nan, 3, 4], [1, 2, 3, 5], FAST)["n"] == 3  # unknown activity left out


def test_activity_index_prefers_local_k_then_kp_then_dst():
    k_rows = [{"activity": {"k": k, "kp": 9}} for k in (1, 2, 3, 4)]
    assert activity_index(k_rows)[0]["name"] == "K"
    dst_rows = [{"activity": {"dst_nT": d}} for d in (-10, -60, -100)]
    info, values = activity_index(dst_rows)
    assert info["name"] == "-Dst" and list(values) == [10, 60, 100]  # larger = more disturbed
    assert activity_index([{"activity": {"flag": "quiet"}}] * 3)[0] == {}


def test_precursor_rates_and_correlations_follow_the_windows():
    result = confound_test(_storm_rows(), CLASSES, FAST)
    assert result["flags"] == {"quiet": 12, "active": 0, "disturbed": 6, "unknown": 0}
    pre = result["precursor"]
    assert pre["all"]["disturbed"] == {"rate": 1.0, "k": 6, "n": 6}
    assert pre["all"]["quiet"] == {"rate": 7 / 12, "k": 7, "n": 12}
    assert pre["true_normal"]["quiet"] == {"rate": 1 / 6, "k": 1, "n": 6}
    # windows labelled Normal: K ranks (ties averaged) against Large-score ranks (seven 0.7 -> 9, five 0.1 -> 3)
    k_ranks = [7.5, 9.5, 11.5, 7.5, 9.5, 11.5, 1.5, 3.5, 5.5, 1.5, 3.5, 5.5]
    score_ranks = [9] * 7 + [3] * 5
    expected = np.corrcoef(k_ranks, score_ranks)[0, 1]
    assert result["correlation_true_normal"]["magnitude"]["Large"]["rho"] == pytest.approx(expected)
    assert result["correlation_true_normal"]["magnitude"]["Normal"]["rho"] == pytest.approx(-expected)
    attention = result["attention"]["gradcam"]["magnitude"]
    assert attention["quiet"]["ULF"]["mean"] == pytest.approx(0.2) and attention["disturbed"]["ULF"]["mean"] == 0.6
    assert attention["all"]["ULF"]["mean"] == pytest.approx((6 * 0.6 + 12 * 0.2) / 18)
    assert [w["flag"] for w in result["windows"]].count("disturbed") == 6


# ------------------------------------------------------------------ sentences follow the numbers
def test_sentence_says_the_large_class_follows_activity_when_storms_are_called_precursors():
    sentences = confound_test(_storm_rows(), CLASSES, FAST)["sentences"]
    assert sentences[1].startswith(
        "On disturbed windows labelled Normal the model predicts a precursor in 100 % (6/6) against "
        "17 % (1/6) on quiet windows labelled Normal: its Large class follows geomagnetic activity"
    )


def test_sentence_finds_no_sign_when_storm_windows_are_called_normal():
    sentences = confound_test(_storm_rows(storm_pred="Normal", quiet_false_alarms=0), CLASSES, FAST)["sentences"]
    assert "0 % (0/6) against 0 % (0/6)" in sentences[1]
    assert "no sign that storms drive its precursor calls" in sentences[1]
    assert "follows geomagnetic activity" not in " ".join(sentences)


def test_too_few_disturbed_windows_are_said_to_be_too_few():
    rows = _storm_rows()[3:]  # 3 disturbed windows left
    sentence = confound_test(rows, CLASSES, FAST)["sentences"][1]
    assert sentence.startswith("Only 3 disturbed and 12 quiet window(s): too few (< 5)")


def test_no_activity_means_no_test():
    rows = [{**r, "activity": None} for r in _storm_rows()]
    result = confound_test(rows, CLASSES, FAST)
    assert result == {"measured": False, "reason": "no window carries geomagnetic activity"}
    assert confound_sentences(result) == ["No confound test: no window carries geomagnetic activity."]


def test_markdown_section_shows_the_rates_and_the_exclusions():
    results = {"model": "m", "confound": confound_test(_storm_rows(), CLASSES, FAST), "excluded_disturbed": ["a"]}
    text = "\n".join(confound_section(results))
    assert "## Storms are not precursors: confound test — m" in text
    assert "1 disturbed window(s) left out" in text
    assert "| all | 58 % (7/12) | – | 100 % (6/6) |" in text
    assert "| true class Normal | 17 % (1/6) | – | 100 % (6/6) |" in text
    assert "| Grad-CAM | magnitude | ULF | 0.33" in text and "| 0.20 [0.20, 0.20] | 0.60 [0.60, 0.60] |" in text
    assert confound_section({"model": "m"}) == []


def test_drop_disturbed_keeps_the_other_windows():
    records = [SimpleNamespace(name=n) for n in ("a", "b", "c", "d")]
    activities = {"a": {"flag": "disturbed"}, "b": {"flag": "quiet"}, "c": None}
    kept, dropped = drop_disturbed(records, activities)
    assert [r.name for r in kept] == ["b", "c", "d"] and dropped == ["a"]


# ------------------------------------------------------------------ labelled summaries
def test_summary_names_the_source_of_its_numbers():
    local = WindowActivity(flag="disturbed", basis=["K"], reasons=["K 8 >= 5"], k=8, k9_nT=500.0, k9_source="file")
    summary = activity_summary(local)
    assert summary["source"] == "local K index (K9 500 nT from the file)"
    assert activity_text(summary) == "activity: disturbed (K=8; local K index (K9 500 nT from the file))"
    user = WindowActivity(flag="disturbed", basis=["Kp", "Dst"], kp=9.0, dst_nT=-300.0, indices_source="idx.csv")
    assert activity_text(activity_summary(user)) == "activity: disturbed (Kp=9, Dst=-300 nT; user Kp/Dst (idx.csv))"
    proxy = WindowActivity(flag="quiet", basis=["proxy"], proxy={"z": 0.4, "limits": "proxy, not a K index"})
    assert activity_text(activity_summary(proxy)) == (
        "activity: quiet (proxy z=0.4; grid proxy, not a K index (z against this data set))"
    )
    assert activity_summary(proxy)["proxy_limits"] == "proxy, not a K index"
    assert source_label({"basis": []}) == "no activity numbers" and activity_text(None) is None


def test_record_activity_turns_a_bad_index_into_an_unknown_flag():
    from core.errors import InputDataError

    class Source:
        def activity(self, record, config=None):
            raise InputDataError("meta.csv", "row 2: kp '12' is not a Kp value")

    summary = record_activity(Source(), SimpleNamespace(name="s"))
    assert summary["flag"] == "unknown" and "kp '12'" in summary["reasons"][0]
    assert record_activity(object(), SimpleNamespace(name="s")) is None


# ------------------------------------------------------------------ wiring (tiny demo data set with storms)
@pytest.fixture(scope="module")
def storm_source(tmp_path_factory):
    from geomag.sources import DemoDataSource
    from geomag.spectrogram import SpectrogramConfig

    generator = {
        "n_samples": 16,
        "storm_fraction": 1.0,
        "magnitude_fractions": {"Normal": 0.5, "Moderate": 0.2, "Medium": 0.15, "Large": 0.15},
    }
    return DemoDataSource(tmp_path_factory.mktemp("storms"), generator, SpectrogramConfig(grid=(32, 32)))


def test_explain_activity_per_sample_from_the_config(storm_source):
    from xai.tasks.explain import sample_activities

    cfg = OmegaConf.create({"activity": {"thresholds": {"disturbed_k": 9}}})  # nothing is disturbed at K < 9
    records = storm_source.records()
    strict = sample_activities(cfg, storm_source, records)
    default = sample_activities(OmegaConf.create({}), storm_source, records)
    for record in records:
        k = int(record.extra["activity_k"])
        assert default[record.name]["k"] == strict[record.name]["k"] == k
        assert default[record.name]["flag"] == record.extra["activity_flag"]
        assert strict[record.name]["flag"] != "disturbed"
        assert default[record.name]["source"] == "local K index (metadata column)"


def test_sample_figure_shows_the_activity_line():
    from geomag.axes import SpectrogramAxes
    from xai.render import build_sample_figure

    axes = SpectrogramAxes.regular(
        layout="channels",
        components=("H", "D", "Z"),
        n_rows=8,
        n_cols=8,
        frequency_range_hz=(1e-3, 0.1),
        frequency_scale="log",
        window_s=21600.0,
    )
    maps = {"gradcam": np.linspace(0, 1, 64).reshape(8, 8)}
    head = {"prediction": "Large", "confidence": 0.9, "true": "Normal", "correct": False, "maps": maps}
    fig = build_sample_figure(
        sample="s",
        model="m",
        grid_image=np.ones((8, 8, 3)),
        axes=axes,
        heads={"magnitude": head},
        activity="activity: disturbed (K=7; local K index (metadata column))",
    )
    assert fig._suptitle.get_text().endswith("\nactivity: disturbed (K=7; local K index (metadata column))")


@pytest.mark.slow
def test_dataset_run_and_comparison_carry_the_confound_test(storm_source, tmp_path):
    from core.names import COMPARISON_REPORT
    from models.loading import bundle_from_model
    from tests.conftest import tiny_model
    from xai.compare import compare_runs
    from xai.dataset import DatasetFigures, DatasetOptions, RunInfo, explain_dataset, read_journal
    from xai.explainers.gradcam import GradCAM
    from xai.tasks.explain import sample_activities

    mappings = storm_source.class_mappings
    model = tiny_model(len(mappings.magnitude_classes), len(mappings.azimuth_classes))
    bundle = bundle_from_model(model, mappings, name="tiny", target_layer="feat")
    records = storm_source.records()
    activities = sample_activities(OmegaConf.create({}), storm_source, records)
    storm = next(r.name for r in records if activities[r.name]["flag"] == "disturbed")
    options = DatasetOptions(
        batch_size=8,
        faithfulness_samples=0,
        randomisation_samples=0,
        bootstrap_resamples=50,
        localisation=False,
        figures=[storm],
    )
    drawn = {}
    folder = tmp_path / "tiny"
    results = explain_dataset(
        bundle,
        {"gradcam": GradCAM(bundle)},
        storm_source,
        records,
        folder,
        options,
        info=RunInfo(activity=activities),
        figures=DatasetFigures(sample=lambda path, **kw: drawn.update({kw["sample"]: kw["activity"]})),
    )
    k = activities[storm]["k"]
    assert drawn == {storm: f"activity: disturbed (K={k}; local K index (metadata column))"}
    journal = read_journal(folder)
    assert all(e["activity"] == activities[e["sample"]] for e in journal)
    confound = results["confound"]
    flags = [activities[r.name]["flag"] for r in records]
    assert confound["flags"]["disturbed"] == flags.count("disturbed") > 0
    disturbed = [e for e in journal if e["activity"]["flag"] == "disturbed"]
    calls = sum(e["heads"]["magnitude"]["prediction"] != "Normal" for e in disturbed)
    assert confound["precursor"]["all"]["disturbed"] == {
        "rate": calls / len(disturbed),
        "k": calls,
        "n": len(disturbed),
    }
    saved = json.loads((folder / "dataset_results.json").read_text())
    assert saved["confound"]["windows"][0]["flag"] == flags[0]
    report = (folder / "report.md").read_text()
    assert "Storms are not precursors: confound test — tiny" in report and confound["sentences"][1] in report
    compare_runs([tmp_path], tmp_path / "comparison")
    compared = (tmp_path / "comparison" / COMPARISON_REPORT).read_text()
    assert "Storms are not precursors: confound test — tiny" in compared


@pytest.mark.shared
def test_real_storm_windows_are_flagged_in_the_explain_results(tmp_path, shared_dir):
    """The samples of a metadata CSV over the real files get their flag, K and its source (explain task wiring)."""
    import shutil

    from geomag.sources import CsvDataSource
    from geomag.spectrogram import SpectrogramConfig
    from xai.tasks.explain import sample_activities

    shutil.copy(shared_dir / "data/imagcdf/wic_2024-05-09_4days_1s.cdf", tmp_path / "wic.cdf")
    shutil.copy(shared_dir / "data/bmkg/S230101.LUT.gz", tmp_path / "S230101.LUT.gz")
    (tmp_path / "meta.csv").write_text(
        "magnitude_class,azimuth_class,station,date,path,event_time\n"
        "Normal,Normal,WIC,2024-05-10,wic.cdf,2024-05-10T23:59:00Z\n"
        "Normal,Normal,WIC,2024-05-11,wic.cdf,2024-05-11T06:00:00Z\n"
        "Normal,Normal,LUT,2023-01-01,S230101.LUT.gz,2023-01-01T12:00:00Z\n"
    )
    source = CsvDataSource(tmp_path / "meta.csv", spectrogram=SpectrogramConfig())
    cfg = OmegaConf.create({"activity": OmegaConf.load(ROOT / "conf/activity/default.yaml")})
    first, second, lut = sample_activities(cfg, source, source.records()).values()
    assert (first["flag"], first["k"], second["flag"], second["k"]) == ("disturbed", 8, "disturbed", 7)
    assert activity_text(first) == "activity: disturbed (K=8; local K index (K9 500 nT from the file))"
    assert [i["k"] for i in first["k_intervals"]] == [7, 7, 8]
    assert lut["flag"] != "disturbed" and lut["k"] == 2 and lut["k9_nT"] == 500.0
    assert lut["source"] == "local K index (K9 500 nT from the default)"


def test_comparison_lists_the_samples_activity_and_each_models_rates(tmp_path, fake_render):
    from core.names import COMPARISON_REPORT, RESULTS_FILE
    from tests.conftest import SAMPLES_A, SAMPLES_B, make_model_folder
    from xai.compare import compare_runs

    activity = {
        "Large_MLB_2021-04-16": {"flag": "disturbed", "k": 7, "source": "local K index (K9 500 nT from the file)"},
        "Moderate_X_2020-01-01": {"flag": "quiet", "k": 1, "source": "local K index (K9 500 nT from the file)"},
    }
    for model, samples in (("vgg16", SAMPLES_A), ("efficientnet", SAMPLES_B)):
        folder = make_model_folder(tmp_path / "run", model, samples)
        results = json.loads((folder / RESULTS_FILE).read_text())
        for entry in results["samples"]:
            entry["activity"] = activity[entry["sample"]]
        (folder / RESULTS_FILE).write_text(json.dumps(results))
    comparison = compare_runs([tmp_path / "run"], tmp_path / "cmp")
    assert comparison["activity"]["samples"] == activity
    vgg = comparison["activity"]["models"]["vgg16"]
    assert vgg["precursor"]["all"]["disturbed"] == {"rate": 1.0, "k": 1, "n": 1}  # Large called on the storm
    report = (tmp_path / "cmp" / COMPARISON_REPORT).read_text()
    assert "## Geomagnetic activity of the compared samples" in report
    assert "| Large_MLB_2021-04-16 | disturbed | K=7 | local K index (K9 500 nT from the file) |" in report
    assert "- **vgg16**: Only 1 disturbed and 1 quiet window(s): too few (< 5)" in report


def test_exclude_disturbed_drops_exactly_the_disturbed_windows(storm_source):
    from core.errors import ConfigError
    from xai.tasks.dataset import with_activity

    records = storm_source.records()
    disturbed = [r.name for r in records if r.extra["activity_flag"] == "disturbed"]
    kept, activities, dropped = with_activity(OmegaConf.create({}), storm_source, records, exclude=True)
    assert dropped == disturbed and len(kept) == len(records) - len(disturbed) and set(activities) >= set(dropped)
    assert with_activity(OmegaConf.create({}), storm_source, records, exclude=False)[2] == []
    with pytest.raises(ConfigError, match="task.exclude_disturbed: every selected window is disturbed"):
        storms = [r for r in records if r.name in disturbed]
        with_activity(OmegaConf.create({}), storm_source, storms, exclude=True)
