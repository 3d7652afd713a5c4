"""Shortcut detection (xai.shortcut): cue mask, counterfactual generators, verdict wording."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError
from geomag.sources import DemoDataSource
from geomag.spectrogram import SpectrogramConfig
from xai import shortcut

SPEC = SpectrogramConfig(grid=(48, 48))
GEN = {"n_samples": 12, "shortcut_frequency_hz": 0.03, "shortcut_rms_nT": 0.3}


def test_counterfactual_copies_differ_only_by_the_cue_on_its_rows(tmp_path):
    classes = ["Normal", "Moderate", "Medium", "Large"]
    gens = shortcut.variant_generators(GEN, classes, seed=5, n_samples=12)
    sources = {name: DemoDataSource(tmp_path, gen, SPEC) for name, gen in gens.items()}
    records = {name: s.records() for name, s in sources.items()}
    names = [r.name for r in records["as_trained"]]
    assert names == [r.name for r in records["cue_removed"]] == [r.name for r in records["cue_everywhere"]]
    axes = sources["as_trained"].load(records["as_trained"][0]).axes
    cue = shortcut.cue_mask(axes, 0.03)
    assert cue[:, 0].sum() >= 1 and cue.all(axis=1).sum() == cue[:, 0].sum()  # whole rows, every time
    rows = np.flatnonzero(cue[:, 0])
    assert all(0.027 <= axes.row_frequency_hz[r] <= 0.033 for r in rows)
    normal_seen = other_seen = False
    for i, record in enumerate(records["as_trained"]):
        with_cue = sources["as_trained"].load(record).image
        without = sources["cue_removed"].load(records["cue_removed"][i]).image
        everywhere = sources["cue_everywhere"].load(records["cue_everywhere"][i]).image
        if record.magnitude_class == "Normal":
            normal_seen = True
            diff = np.abs(with_cue - without).max(axis=(1, 2))  # per row
            assert diff[rows].max() > 1.0  # the line stands out by > 1 decade of power on its rows
            np.testing.assert_array_equal(with_cue, everywhere)
        else:
            other_seen = True
            np.testing.assert_array_equal(with_cue, without)  # precursor windows never had it
            assert np.abs(everywhere - without).max(axis=(1, 2))[rows].max() > 1.0
    assert normal_seen and other_seen


def test_cue_outside_the_grid_and_missing_cue_are_config_errors(tmp_path):
    source = DemoDataSource(tmp_path, {"n_samples": 4}, SPEC)
    axes = source.load(source.records()[0]).axes
    with pytest.raises(ConfigError, match="outside"):
        shortcut.cue_mask(axes, 5.0)
    with pytest.raises(ConfigError, match="demo_shortcut"):
        shortcut.variant_generators({"n_samples": 4}, ["Normal"], 1, 4)


def _results(recall_with, recall_without, called_normal_with, called_normal_everywhere, cue_mass, control_mass):
    def pred(recall, called):
        return {"n": 10, "magnitude_accuracy": 0.5, "normal_recall": recall, "precursor_called_normal": called}

    return {
        "frequency_hz": 0.03,
        "rms_nT": 0.3,
        "n_samples": 10,
        "seed": 1,
        "models": {
            "shortcut": {
                "predictions": {
                    "as_trained": pred(recall_with, called_normal_with),
                    "cue_removed": pred(recall_without, 0.0),
                    "cue_everywhere": pred(recall_with, called_normal_everywhere),
                },
                "explanations": {
                    "cue_area_share": 0.04,
                    "precursor_area_share": 0.1,
                    "methods": {"gradcam": {"cue_mass_normal": cue_mass, "precursor_mass_other": 0.3}},
                },
            },
            "clean": {
                "predictions": {v: pred(0.9, 0.0) for v in shortcut.VARIANTS},
                "explanations": {
                    "cue_area_share": 0.04,
                    "precursor_area_share": 0.1,
                    "methods": {"gradcam": {"cue_mass_normal": control_mass, "precursor_mass_other": 0.3}},
                },
            },
        },
    }


def test_verdict_names_exploitation_and_whether_the_map_points_at_the_cue():
    lines = shortcut.verdict(_results(0.95, 0.10, 0.0, 0.9, cue_mass=0.40, control_mass=0.04))
    assert "exploits it" in lines[0] and "95 %" in lines[0] and "10 %" in lines[0]
    assert "points at the shortcut" in lines[1] and "10.0×" in lines[1]
    honest = shortcut.verdict(_results(0.9, 0.85, 0.0, 0.05, cue_mass=0.05, control_mass=0.04))
    assert "does not measurably exploit" in honest[0] and "does not reveal" in honest[1]
    # above the area share but no more than for the model that never saw the cue: not evidence
    line_lover = shortcut.verdict(_results(0.95, 0.1, 0.0, 0.9, cue_mass=0.11, control_mass=0.09))
    assert "as much for the model that never saw the cue" in line_lover[1]
    # more than the control but not above the area share: a shift, too small to see
    faint = shortcut.verdict(_results(0.95, 0.1, 0.0, 0.9, cue_mass=0.07, control_mass=0.03))
    assert "shifts towards the cue" in faint[1] and "2.3×" in faint[1]
    assert "| shortcut | cue removed |" in shortcut.report(_results(0.95, 0.1, 0.0, 0.9, 0.4, 0.04))


@pytest.mark.slow
def test_shortcut_task_end_to_end_on_the_tiny_demo(tmp_path, tiny_cache, tiny_demo_run):
    """``python main.py task=shortcut data=demo_shortcut``: both models, three copies, report + JSON."""
    import json

    from tests.conftest import TINY, run_main

    proc = run_main(
        [
            *TINY,
            "task=shortcut",
            "data=demo_shortcut",
            "task.n_samples=12",
            f"paths.cache_dir={tiny_cache}",
            f"hydra.run.dir={tmp_path}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "shortcut" / "shortcut_results.json").read_text())
    assert set(results["models"]) == {"shortcut", "clean"}
    for model in results["models"].values():
        assert set(model["predictions"]) == set(shortcut.VARIANTS)
        assert set(model["explanations"]["methods"]) == {"gradcam", "saliency"}
    assert "| clean | cue removed |" in (tmp_path / "shortcut" / "report.md").read_text()
    refused = run_main([*TINY, "task=shortcut", f"paths.cache_dir={tiny_cache}", f"hydra.run.dir={tmp_path / 'b'}"])
    assert refused.returncode == 2 and "demo_shortcut" in refused.stderr + refused.stdout


def test_explanation_effects_with_batches_of_one_kind(tmp_path):
    """Batches holding only Normal or only precursor windows (batch_size=1) are fine; a map that
    is exactly the cue rows scores cue mass 1 on Normal windows and 0 on the precursor mask."""
    from types import SimpleNamespace

    gen = shortcut.variant_generators(GEN, ["Normal", "Moderate", "Medium", "Large"], seed=5, n_samples=12)
    source = DemoDataSource(tmp_path, gen["as_trained"], SPEC)
    records = source.records()
    cue = shortcut.cue_mask(source.load(records[0]).axes, 0.03)

    class Bundle:
        def prepare(self, grids):
            return grids

    def cue_explainer(inputs, head, class_indices):
        return SimpleNamespace(maps=np.repeat(cue[None].astype(np.float32), len(inputs), axis=0))

    out = shortcut.explanation_effects(Bundle(), {"cue_map": cue_explainer}, source, records, 0.03, batch_size=1)
    kinds = [r.magnitude_class == "Normal" for r in records]
    item = out["methods"]["cue_map"]
    assert item["n_normal"] == sum(kinds) > 0 and item["n_other"] == len(kinds) - sum(kinds) > 0
    assert item["cue_mass_normal"] == pytest.approx(1.0)
    assert out["cue_area_share"] == pytest.approx(cue.mean())
    assert 0 < out["precursor_area_share"] < 1
    assert item["precursor_mass_other"] < 0.5  # the precursor lies in the ULF band, the cue at 30 mHz
