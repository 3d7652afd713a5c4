"""The notebook API (``from xai import explain, explain_dataset, compare_models``) and the README block that uses it."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from core.errors import ConfigError, InputDataError
from tests.conftest import ROOT
from tests.lab_files import HEAD_OUTPUTS, make_lab_files

RESULT_KEYS = {
    "model", "model_file", "target_layer", "input_shape", "class_mappings", "methods", "heads", "score", "target",
    "native_resolution", "preprocessing", "data", "environment", "axes", "samples", "status",
}  # fmt: skip


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return make_lab_files(tmp_path_factory.mktemp("api") / "lab")


def readme_notebook_block() -> str:
    """The first ``python`` block of the README section "As a library (notebooks)"."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## As a library (notebooks)", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README's notebook section has no python block"
    return blocks[0]


def test_import_xai_is_light_and_exports_the_three_functions():
    code = (
        "import sys, xai\n"
        "light = not any(m in sys.modules for m in ('tensorflow', 'keras', 'matplotlib'))\n"
        "print(light, sorted(xai.__all__), xai.explain.__module__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "['compare_models',", "'explain',", "'explain_dataset']", "xai.api"]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import xai

        xai.nothing  # noqa: B018


def test_explain_returns_the_results_structure_with_the_models_own_numbers(lab, tmp_path, monkeypatch):
    import keras
    import tensorflow as tf
    from PIL import Image

    from xai import explain

    monkeypatch.chdir(tmp_path)
    png = lab.root / "spectrograms" / "Large_MLB_2021-04-16.png"
    inputs = {"Large_MLB_2021-04-16": {"path": png, "magnitude_class": "Large", "azimuth_class": "N"}}
    results = explain(lab.models["our_efficientnet"], None, inputs, heads=HEAD_OUTPUTS, methods=["gradcam"])
    assert set(results) == RESULT_KEYS
    assert list(tmp_path.iterdir()) == []  # no figures_dir: nothing written
    assert results["model"] == "our_efficientnet" and results["methods"] == ["gradcam"]
    assert results["class_mappings"]["azimuth_classes"] == lab.orders["our_efficientnet"]["azimuth"]
    (sample,) = results["samples"]
    assert sample["files"] is None and sample["true"] == {"magnitude": "Large", "azimuth": "N"}
    # the probabilities are the model's own on the PNG scaled to [0, 1] and resized (bilinear) to its input
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.float32) / 255.0
    x = tf.image.resize(pixels[None], (32, 32), method="bilinear").numpy()
    model = keras.saving.load_model(lab.models["our_efficientnet"], compile=False)
    magnitude, azimuth = (np.asarray(v)[0] for v in model(x, training=False))
    for head, expected in (("magnitude", magnitude), ("azimuth", azimuth)):
        entry = sample["heads"][head]
        classes = lab.orders["our_efficientnet"][head]
        assert list(entry["probabilities"]) == classes
        np.testing.assert_allclose(list(entry["probabilities"].values()), expected, atol=1e-5)
        assert entry["prediction"] == classes[int(expected.argmax())]
        assert entry["correct"] == (entry["prediction"] == sample["true"][head])
        assert 0.0 <= entry["attention"]["gradcam"]["bands"]["ULF"]["mass_share"] <= 1.0


def test_explain_writes_the_tasks_files_only_with_a_figures_dir(lab, tmp_path):
    from xai import explain

    grid = np.full((224, 224, 3), 0.5, dtype=np.float32)
    results = explain(
        lab.models["our_vgg16"],
        lab.mappings["our_vgg16"],
        {"flat": grid},
        heads=HEAD_OUTPUTS,
        methods=["gradcam"],
        figures_dir=tmp_path / "out",
    )
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["flat_heatmaps.npz", "flat_visualization.png", "visualization_results.json"]
    assert json.loads((tmp_path / "out" / "visualization_results.json").read_text()) == json.loads(json.dumps(results))
    entry = results["samples"][0]
    assert entry["true"] == {"magnitude": None, "azimuth": None} and entry["heads"]["magnitude"]["correct"] is None
    with np.load(tmp_path / "out" / "flat_heatmaps.npz") as npz:
        np.testing.assert_array_equal(npz["input"], grid)
        assert npz["gradcam__magnitude"].shape == (224, 224)


def test_explain_refuses_bad_requests_with_one_line(lab):
    from xai import explain

    model = lab.models["our_vgg16"]
    cases = [
        (ConfigError, "unknown method 'nope'", dict(methods=["nope"])),
        (ConfigError, "sample names repeat", dict(inputs=[lab.root / "a" / "x.png", lab.root / "b" / "x.png"])),
        (InputDataError, "needs its event time", dict(inputs=[lab.root / "metadata.csv"])),
        (ConfigError, "unknown keys", dict(inputs={"s": {"file": "x.png"}})),
    ]
    for error, words, kwargs in cases:
        arguments = {"heads": HEAD_OUTPUTS, "methods": ["gradcam"], "inputs": [np.zeros((8, 8, 3))], **kwargs}
        with pytest.raises(error, match=words) as raised:
            explain(model, **arguments)
        assert "\n" not in str(raised.value)


@pytest.mark.slow
def test_readme_notebook_block_runs(lab, tmp_path, monkeypatch):
    """The README's "As a library (notebooks)" block, executed as written next to the lab's files."""
    import shutil

    shutil.copytree(lab.root, tmp_path / "lab")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_notebook_block(), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert set(namespace["results"]) == RESULT_KEYS
    assert [s["sample"] for s in namespace["results"]["samples"]] == ["Large_MLB_2021-04-16", "Medium_SCN_2020-11-02"]
    assert sorted(namespace["comparison"]["models"]) == ["our_efficientnet", "our_vgg16"]
    for name in ("our_vgg16", "our_efficientnet"):
        assert (tmp_path / "xai_out" / name / "visualization_results.json").is_file()
        assert (tmp_path / "xai_out" / name / "Large_MLB_2021-04-16_visualization.png").is_file()
    assert (tmp_path / "xai_out" / "comparison" / "comparison.json").is_file()
    assert (tmp_path / "xai_out" / "dataset" / "our_vgg16" / "dataset_results.json").is_file()
    assert namespace["trust"]["model"] == "our_vgg16"


def test_the_comparison_package_never_shadows_the_notebook_function():
    import xai.compare  # noqa: F401 - the package is imported by the tasks and the explain path
    from xai import compare_models

    assert callable(compare_models) and compare_models.__module__ == "xai.api"
