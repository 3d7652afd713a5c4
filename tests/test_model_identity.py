"""A model's name: ``model.name``, else the user file's stem, else the architecture; a sweep over two
user model files compares two models."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from core.errors import ConfigError
from models.identity import file_stem, model_name
from models.loading import sibling_class_mappings
from tests.conftest import ROOT, run_main
from tests.lab_files import HEAD_OUTPUTS, SAMPLES, make_lab_files
from tests.test_console import assert_quiet, main_as_users_run_it


@pytest.mark.parametrize(
    "node, expected",
    [
        ({"name": "ours", "file": "/x/our_vgg.keras", "architecture": "vgg16"}, "ours"),
        ({"name": None, "file": "/x/our_vgg.keras", "architecture": "vgg16"}, "our_vgg"),
        ({"name": "", "file": "/x/v2.best.h5", "architecture": "vgg16"}, "v2.best"),
        ({"name": None, "file": "/x/saved/effnet_lab/", "architecture": "efficientnet"}, "effnet_lab"),
        ({"name": None, "file": None, "architecture": "efficientnet"}, "efficientnet"),
        ({}, None),
    ],
)
def test_model_name_rule(node, expected):
    assert model_name(node) == expected
    assert model_name(OmegaConf.create(node)) == expected


def test_file_stem_keeps_dots_inside_the_name():
    assert file_stem("/m/VGG16.KERAS") == "VGG16"
    assert file_stem("a.b.keras") == "a.b"
    assert file_stem(None) is None and file_stem(" ") is None


def test_class_mappings_beside_the_model_file(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"m\.class_mappings\.json.*class_mappings\.json") as raised:
        sibling_class_mappings(tmp_path / "m.keras")
    assert "\n" not in str(raised.value)
    (tmp_path / "class_mappings.json").write_text("{}")
    assert sibling_class_mappings(tmp_path / "m.keras") == tmp_path / "class_mappings.json"
    (tmp_path / "m.class_mappings.json").write_text("{}")  # the file's own mappings win
    assert sibling_class_mappings(tmp_path / "m.keras") == tmp_path / "m.class_mappings.json"


@pytest.mark.slow
def test_sweep_over_two_user_model_files_compares_two_models(tmp_path):
    """The lab's command: two model files, custom head names, each with its own class order; users'
    stacked jet PNGs listed in a metadata CSV."""
    lab = make_lab_files(tmp_path / "lab")
    sweep = tmp_path / "sweep"
    proc = main_as_users_run_it(
        [
            "-m",
            "data=csv",
            f"data.metadata_csv={lab.metadata_csv}",
            f"model.file={lab.models['our_vgg16']},{lab.models['our_efficientnet']}",
            f"model.heads.magnitude={HEAD_OUTPUTS['magnitude']}",
            f"model.heads.azimuth={HEAD_OUTPUTS['azimuth']}",
            "model.target_layer=null",
            "xai=gradcam",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert_quiet(proc)  # no TensorFlow C++ line, no fontTools line (the comparison writes PDFs)
    assert list((sweep / "comparison").glob("*.pdf"))
    comparison = json.loads((sweep / "comparison" / "comparison.json").read_text())
    assert sorted(comparison["models"]) == ["our_efficientnet", "our_vgg16"]
    expected_samples = sorted(f"{m}_{s}_{d}" for m, _, s, d in SAMPLES if m != "Normal")
    for stem, job in (("our_vgg16", "0"), ("our_efficientnet", "1")):
        results = json.loads((sweep / job / stem / "visualization_results.json").read_text())
        assert results["model"] == stem
        assert results["model_file"] == str(lab.models[stem])
        assert results["class_mappings"]["magnitude_classes"] == lab.orders[stem]["magnitude"]
        assert results["class_mappings"]["azimuth_classes"] == lab.orders[stem]["azimuth"]
        assert sorted(s["sample"] for s in results["samples"]) == expected_samples
        for sample in results["samples"]:
            probabilities = sample["heads"]["azimuth"]["probabilities"]
            assert list(probabilities) == lab.orders[stem]["azimuth"]  # each model's own order
            assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert comparison["models"][stem]["model_file"] == str(lab.models[stem])
    report = (sweep / "comparison" / "GRADCAM_COMPARISON_REPORT.md").read_text()
    assert "our_vgg16" in report and "our_efficientnet" in report
    assert "duplicate" not in report.lower()


# ---------------------------------------------------------------------------- lab presets (--config-dir)
LAB_CONF = ROOT / "examples" / "lab_conf"
PRESETS = ("our_vgg16", "our_efficientnet")


@pytest.mark.parametrize("preset", PRESETS)
def test_lab_preset_composes_over_the_projects_architecture(preset, monkeypatch):
    from hydra import compose, initialize_config_dir

    monkeypatch.setenv("LAB_DIR", "/data/lab")
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={preset}", f"hydra.searchpath=[file://{LAB_CONF}]"])
    model = cfg.model
    assert model_name(model) == preset
    assert model.file == f"/data/lab/models/{preset}.keras"
    assert dict(model.heads) == HEAD_OUTPUTS
    assert model.target_layer is None
    assert model.architecture == preset.removeprefix("our_")
    assert OmegaConf.missing_keys(model) == set()  # the architecture and _base fill in the rest


@pytest.mark.slow
def test_lab_preset_runs_with_config_dir(tmp_path, monkeypatch):
    """``python main.py --config-dir <lab conf> model=our_vgg16 ...`` explains with the lab's file."""
    lab = make_lab_files(tmp_path / "lab")
    monkeypatch.setenv("LAB_DIR", str(lab.root))
    run_dir = tmp_path / "run"
    proc = run_main(
        [
            "--config-dir",
            str(LAB_CONF),
            "model=our_vgg16",
            "data=csv",
            f"data.metadata_csv={lab.metadata_csv}",
            "xai=gradcam",
            "sample=Large_MLB_2021-04-16",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((run_dir / "our_vgg16" / "visualization_results.json").read_text())
    assert results["model"] == "our_vgg16"
    assert results["model_file"] == str(lab.models["our_vgg16"])
    assert results["class_mappings"]["magnitude_classes"] == lab.orders["our_vgg16"]["magnitude"]
    assert [s["sample"] for s in results["samples"]] == ["Large_MLB_2021-04-16"]
