"""Comparison of fake model folders (JSON built through xai.results_schema + NPZ per the architecture contract)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from core.errors import ConfigError, InputDataError
from core.io import atomic_write_json
from core.names import COMPARISON_JSON, COMPARISON_REPORT
from tests.conftest import SAMPLES_A, SAMPLES_B, make_job, make_model_folder
from xai.compare import SweepHadFailures, compare_runs, has_failures
from xai.tasks.compare import run as run_compare_task


@pytest.fixture(autouse=True)
def _figures(request):
    """Replace the slow real figures by a :class:`FakeRender` unless the test asks for ``real_figures``."""
    if "real_figures" not in request.fixturenames:
        request.getfixturevalue("fake_render")


@pytest.fixture()
def real_figures():
    """Marker fixture: use the real :mod:`xai.render`."""
    return True


@pytest.fixture()
def sweep(tmp_path: Path) -> Path:
    """A sweep: two model jobs that worked, one failed job and one that left nothing."""
    root = tmp_path / "multirun"
    make_model_folder(make_job(root, 0, ["model=vgg16"]), "vgg16", SAMPLES_A, n=32)
    make_model_folder(
        make_job(root, 1, ["model=efficientnet"]),
        "efficientnet",
        SAMPLES_B,
        n=16,
        class_order=["Large", "Medium", "Moderate", "Normal"],
        store_attention=True,
    )
    failed = make_job(root, 2, ["model=convnext", "sample=Large_MLB_2021-04-16"])
    atomic_write_json(
        failed / "convnext" / "status.json",
        {
            "status": "failed",
            "error": "models/convnext.keras: file not found",
            "model": "convnext",
            "sample": "Large_MLB_2021-04-16",
        },
    )
    make_job(root, 3, ["model=resnet", "sample=Moderate_X_2020-01-01"])
    compare_job = make_job(root, 4, ["task=compare"])  # not an explain job: never "missing"
    (compare_job / ".hydra" / "config.yaml").write_text("task:\n  _target_: xai.tasks.compare.run\n")
    return root


def test_agreed_but_wrong_failed_and_missing_jobs_are_reported(sweep, tmp_path):
    out = tmp_path / "cmp"
    result = compare_runs([sweep], out)
    assert sorted(result["models"]) == ["efficientnet", "vgg16"]
    magnitude = result["agreement"]["magnitude"]["all_models"]
    assert magnitude["agree"] == 2 and magnitude["agree_wrong"] == 1
    assert magnitude["agree_wrong_samples"] == [
        {"sample": "Moderate_X_2020-01-01", "prediction": "Large", "true": "Moderate"}
    ]
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
    assert [(m["job"], m["model"], m["sample"]) for m in missing] == [("multirun/3", "resnet", "Moderate_X_2020-01-01")]
    assert has_failures(result)

    report = (out / COMPARISON_REPORT).read_text(encoding="utf-8")
    sentence = "both models predicted Large for Moderate_X_2020-01-01 (true: Moderate) — agreed, but wrong."
    assert sentence in report
    assert "**Agreed but wrong (magnitude)**: 1 sample(s)." in report
    assert "**Agreed but wrong (azimuth)**: 0 sample(s)." in report
    failed_line = (
        "**failed** `multirun/2` (model convnext, sample Large_MLB_2021-04-16): models/convnext.keras: file not found"
    )
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
    report = (tmp_path / "cmp" / COMPARISON_REPORT).read_text(encoding="utf-8")
    share = ulf["mass_share"]["mean"]
    expected = (
        f"vgg16 Grad-CAM places {100 * share:.0f} % of its mass in the ULF band (1–10 mHz), "
        f"{ulf['enrichment']['mean']:.2f}× its area share"
    )
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
    expected = [
        "Moderate_X_2020-01-01_comparison.png",
        "confidence_comparison.png",
        "paper_confidence_comparison.pdf",
        "paper_confidence_comparison.png",
        "paper_gradcam_azimuth.pdf",
        "paper_gradcam_azimuth.png",
        "paper_gradcam_magnitude.pdf",
        "paper_gradcam_magnitude.png",
    ]
    assert result["figures"] == expected
    for name in expected:
        head = (out / name).read_bytes()[:5]
        assert head == (b"%PDF-" if name.endswith(".pdf") else b"\x89PNG\r"), name
    assert "figure failed" not in (out / COMPARISON_REPORT).read_text(encoding="utf-8")


def test_outputs_written_and_json_deterministic(sweep, tmp_path, fake_render):
    out = tmp_path / "cmp"
    compare_runs([sweep], out)
    first = (out / COMPARISON_JSON).read_bytes()
    names = {p.name for p in out.iterdir()}
    for expected in (
        "Large_MLB_2021-04-16_comparison.png",
        "Moderate_X_2020-01-01_comparison.png",
        "confidence_comparison.png",
        "paper_confidence_comparison.pdf",
        "paper_confidence_comparison.png",
        "paper_gradcam_magnitude.pdf",
        "paper_gradcam_magnitude.png",
        "paper_gradcam_azimuth.pdf",
        "paper_gradcam_azimuth.png",
        COMPARISON_JSON,
        COMPARISON_REPORT,
    ):
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
    report = (out / COMPARISON_REPORT).read_text(encoding="utf-8")
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
    report = (tmp_path / "cmp" / COMPARISON_REPORT).read_text(encoding="utf-8")
    assert "Agreement needs at least 2 models" in report
    assert "vgg16 Grad-CAM places" in report


def test_stacked_layout_and_uncovered_band(tmp_path):
    make_model_folder(tmp_path / "run", "vgg16", SAMPLES_A, n=30, layout="stacked", methods=("gradcam",))
    make_model_folder(
        tmp_path / "run",
        "efficientnet",
        SAMPLES_B,
        n=15,
        layout="stacked",
        methods=("gradcam",),
        frange=(0.0005, 0.005),
    )
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
    report = (tmp_path / "cmp" / COMPARISON_REPORT).read_text(encoding="utf-8")
    uncovered = "efficientnet Grad-CAM: not covered by this model's grid: Pc4 (6.7–22 mHz), Pc3 (22–100 mHz)."
    assert uncovered in report
    assert "| efficientnet | 2 | " in report and "| not covered | not covered |" in report
    assert "vgg16 Grad-CAM mass per component: H " in report


def test_missing_job_reads_its_hydra_config(tmp_path):
    make_model_folder(tmp_path / "sweep" / "0", "vgg16", SAMPLES_A, n=12, methods=("gradcam",))
    job = make_job(tmp_path / "sweep", 1, [])
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
    assert (out / COMPARISON_REPORT).is_file() and (out / COMPARISON_JSON).is_file()
    clean = tmp_path / "clean"
    make_model_folder(clean, "vgg16", SAMPLES_A, n=16, methods=("gradcam",))
    cfg = OmegaConf.create(
        {
            "task": {
                "folders": [str(clean)],
                "out_dir": str(tmp_path / "clean_out"),
                "expected_models": ["vgg16", "efficientnet"],
            }
        }
    )
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
    assert (tmp_path / "out" / COMPARISON_REPORT).is_file()


def test_same_model_name_from_different_model_files_is_refused(tmp_path):
    make_model_folder(
        tmp_path / "run_a", "vgg16", SAMPLES_A[:1], n=12, methods=("gradcam",), model_file="models/vgg16_v1.keras"
    )
    make_model_folder(
        tmp_path / "run_b", "vgg16", SAMPLES_A[1:], n=12, methods=("gradcam",), model_file="models/vgg16_v2.keras"
    )
    with pytest.raises(InputDataError) as raised:
        compare_runs([tmp_path / "run_a", tmp_path / "run_b"], tmp_path / "cmp")
    message = str(raised.value)
    assert "\n" not in message
    assert "models/vgg16_v1.keras" in message and "models/vgg16_v2.keras" in message
    assert "run_a/vgg16/visualization_results.json" in message
    assert "run_b/vgg16/visualization_results.json" in message
    assert not (tmp_path / "cmp" / COMPARISON_JSON).exists()
    # the same model file in both folders is merged as before
    make_model_folder(
        tmp_path / "run_c", "vgg16", SAMPLES_A[1:], n=12, methods=("gradcam",), model_file="models/vgg16_v1.keras"
    )
    result = compare_runs([tmp_path / "run_a", tmp_path / "run_c"], tmp_path / "cmp")
    assert result["models"]["vgg16"]["samples"] == ["Large_MLB_2021-04-16", "Moderate_X_2020-01-01"]
    assert result["models"]["vgg16"]["model_file"] == "models/vgg16_v1.keras"


def test_results_files_without_the_schema_structure_are_listed_as_unreadable(tmp_path):
    make_model_folder(tmp_path / "run", "vgg16", SAMPLES_A, n=12, methods=("gradcam",))
    for model, text in (
        ("nosamples", '{"model": "x"}'),
        ("noname", '{"samples": [{"heads": {}}]}'),
        ("noheads", '{"samples": [{"sample": "S"}]}'),
    ):
        (tmp_path / "run" / model).mkdir()
        (tmp_path / "run" / model / "visualization_results.json").write_text(text)
    result = compare_runs([tmp_path / "run"], tmp_path / "cmp")
    errors = {item["file"]: item["error"] for item in result["jobs"]["unreadable"]}
    assert errors["run/nosamples/visualization_results.json"].endswith("has no 'samples' list")
    assert errors["run/noname/visualization_results.json"].endswith("samples[0] has no 'sample' name")
    assert errors["run/noheads/visualization_results.json"].endswith("samples[0] (S) has no 'heads' object")
    assert sorted(result["models"]) == ["vgg16"]


def _field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


@pytest.mark.slow
def test_the_explain_task_writes_the_schema_the_fakes_use(tiny_demo_run):
    """The real producer's visualization_results.json has exactly the keys (in order) of
    xai.results_schema, which make_model_folder builds its fake results through."""
    from xai.results_schema import HeadResult, SampleFiles, SampleResult, VisualizationResults

    proc, run_dir = tiny_demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = run_dir.glob("*/visualization_results.json")
    data = json.loads(path.read_text())
    assert list(data) == _field_names(VisualizationResults)
    for entry in data["samples"]:
        assert list(entry) == _field_names(SampleResult)
        assert list(entry["files"]) == _field_names(SampleFiles)
        for head in entry["heads"].values():
            assert list(head) == _field_names(HeadResult)
            assert set(head["attention"]) == set(data["methods"])
    assert set(data["native_resolution"]) == set(data["methods"])
