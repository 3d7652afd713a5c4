"""Occlusion wired into the batch pipeline: reliance next to attention, the JSON entry, data-set aggregation, figure."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from geomag.axes import SpectrogramAxes
from geomag.dataset import ClassMappings, SampleRecord
from models.loading import bundle_from_model
from xai.explainers.occlusion import Occlusion
from xai.explainers.saliency import Saliency
from xai.pipeline import ExplainContext, GridBatch, explain_batch
from xai.reliance.regions import build_regions
from xai.reliance.summary import aggregate_reliance, journal_entry, reliance_report

HOUR = 3600.0
MAG_BLOCK = ("3.3-10 mHz", "2-3 h", "H")  # the magnitude head reads this band x hour of H
AZ_BLOCK = ("1-3.3 mHz", "4-5 h", "D")  # the azimuth head reads this one of D


def _slices(axes, band: str, segment: str) -> tuple[slice, slice]:
    regions = build_regions(axes)
    rows = np.flatnonzero(regions.group_boxes["band"][band].rows)
    cols = np.flatnonzero(regions.group_boxes["segment"][segment].cols)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _reader_model(axes, n_magnitude: int, n_azimuth: int) -> keras.Model:
    """Two heads, each the softmax of ``(s, -s, 0, ...)`` with ``s`` the mean of one block of one channel."""
    mag_rows, mag_cols = _slices(axes, *MAG_BLOCK[:2])
    az_rows, az_cols = _slices(axes, *AZ_BLOCK[:2])
    inputs = keras.Input((32, 32, 3))

    def block_means(x):
        m = ops.mean(x[:, mag_rows, mag_cols, 0], axis=(1, 2))
        a = ops.mean(x[:, az_rows, az_cols, 1], axis=(1, 2))
        return ops.stack([m, a], axis=1)

    scores = keras.layers.Lambda(block_means)(inputs)
    outputs = []
    for head, n, k in (("magnitude", n_magnitude, 0), ("azimuth", n_azimuth, 1)):
        kernel = np.zeros((2, n), np.float32)
        kernel[k, 0], kernel[k, 1] = 1.0, -1.0
        dense = keras.layers.Dense(n, kernel_initializer=keras.initializers.Constant(kernel), name=f"{head}_logits")
        outputs.append(keras.layers.Activation("softmax", name=head)(dense(scores)))
    return keras.Model(inputs, outputs, name="reader")


@pytest.fixture(scope="module")
def explained():
    axes = SpectrogramAxes.regular(
        layout="channels", components=("H", "D", "Z"), n_rows=32, n_cols=32,
        frequency_range_hz=(0.0005, 0.1), frequency_scale="log", window_s=6 * HOUR,
    )  # fmt: skip
    mappings = ClassMappings(["Normal", "Moderate", "Medium", "Large"], ["Normal", "N", "E", "S", "W"])
    records = [SampleRecord(f"s{i}", "Normal", "Normal", "X", "2020-01-01", Path(f"s{i}.npy")) for i in range(3)]
    grids = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
    for block, channel in ((MAG_BLOCK, 0), (AZ_BLOCK, 1)):  # the read blocks stand out: their drops are > 0
        rows, cols = _slices(axes, *block[:2])
        grids[:, rows, cols, channel] += 5.0
    batch = GridBatch(records, grids, [axes] * 3)
    model = _reader_model(axes, len(mappings.magnitude_classes), len(mappings.azimuth_classes))
    bundle = bundle_from_model(model, mappings, name="reader")
    occlusion = Occlusion(bundle, agreement_steps=6, agreement_orders=3, background="sample")
    explainers = {"saliency": Saliency(bundle), "occlusion": occlusion}
    context = ExplainContext(bundle, explainers, explained_class={"magnitude": "Normal", "azimuth": "Normal"})
    return explain_batch(context, batch), axes


def test_occlusion_runs_in_the_pipeline_for_both_heads_on_the_read_block_only(explained):
    result, axes = explained
    for head, block, channel in (("magnitude", MAG_BLOCK, 0), ("azimuth", AZ_BLOCK, 1)):
        rows, cols = _slices(axes, *block[:2])
        for i in range(3):
            sample = result.reliance["occlusion"][head][i]
            regions = sample.result.regions.regions
            read = [k for k, r in enumerate(regions) if (r.band, r.segment, r.component) == block]
            drops = sample.drops()
            assert np.count_nonzero(drops) == 1 and drops[read[0]] > 0
            # by hand: the block is replaced by its rows' median over time; the logit falls by the mean's change
            grid = result.batch.grids[i]
            median = np.median(grid[..., channel], axis=1, keepdims=True)
            expected = grid[rows, cols, channel].mean() - np.broadcast_to(median, grid.shape[:2])[rows, cols].mean()
            assert drops[read[0]] == pytest.approx(expected, rel=1e-4)
            # the pipeline's occlusion map is the reliance map: the drop on the block's cells, 0 elsewhere
            on_grid = result.maps[head]["occlusion"].on_grid[i]
            inside = np.zeros(on_grid.shape, bool)
            inside[rows, cols] = True
            np.testing.assert_allclose(on_grid[inside], expected, rtol=1e-4)
            assert np.all(on_grid[~inside] == 0.0)
            channels = sample.component_maps()
            assert np.all(channels[..., [c for c in range(3) if c != channel]] == 0.0)


def test_reliance_entry_names_the_region_and_agreement_of_the_other_method(explained):
    result, _ = explained
    entry = result.reliance_entry("occlusion", "azimuth", 0)
    json.dumps(entry, allow_nan=False)  # JSON-ready
    assert entry["explained_class"] == "Normal" and entry["unit"] == "logit"
    band, segment, component = AZ_BLOCK
    assert entry["top_region"]["band"] == band and entry["top_region"]["component"] == component
    assert entry["top_band_segment"] == {"band": band, "segment": segment, "drop": entry["top_region"]["drop"]}
    assert entry["marginals"]["component"]["D"]["drop_logit"] == pytest.approx(entry["top_region"]["drop"], rel=1e-4)
    assert entry["marginals"]["component"]["H"]["drop_logit"] == 0.0
    assert len(entry["regions"]) == len(result.reliance["occlusion"]["azimuth"][0].result.regions)
    saliency = entry["agreement"]["saliency"]
    assert set(entry["agreement"]) == {"saliency"}  # occlusion is not compared with itself
    # saliency's gradient lies in the read block of D only (its per-component maps are compared): its
    # mass is there, and removing in its order takes the whole drop at the first step
    top = saliency["top_attention_region"]
    assert (top["band"], top["segment"], top["component"]) == AZ_BLOCK and top["attention_share"] == pytest.approx(1)
    assert saliency["spearman_rho"] > 0
    curve = saliency["region_perturbation"]["curve"]
    assert curve[0] == pytest.approx(entry["top_region"]["drop"], rel=1e-4)
    assert saliency["region_perturbation"]["aopc"] > saliency["region_perturbation"]["aopc_random"]
    assert "Saliency's attention" in saliency["sentence"]
    without = result.reliance_entry("occlusion", "azimuth", 0, perturb=False)
    assert without["agreement"]["saliency"]["region_perturbation"] is None


def test_dataset_aggregation_of_journal_entries_against_hand_computed_means(explained):
    result, _ = explained
    journal = []
    for i, true in enumerate(("Large", "Large", "Medium")):
        heads = {h: {"reliance": {"occlusion": journal_entry(result.reliance_entry("occlusion", h, i, perturb=i == 0))}}
                 for h in ("magnitude", "azimuth")}  # fmt: skip
        journal.append({"sample": f"s{i}", "true": {"magnitude": true, "azimuth": "N"}, "heads": heads})
    summary = aggregate_reliance(journal, ("magnitude", "azimuth"), resamples=200)
    large = summary["occlusion"]["magnitude"]["per_class"]["Large"]
    assert large["n"] == 2
    h_drops = [journal[i]["heads"]["magnitude"]["reliance"]["occlusion"]["marginals"]["component"]["H"] for i in (0, 1)]
    assert large["marginals"]["component"]["H"]["mean"] == pytest.approx(np.mean(h_drops))
    assert large["marginals"]["component"]["D"]["mean"] == 0.0
    agreement = summary["occlusion"]["azimuth"]["agreement"]["saliency"]
    assert agreement["aopc"]["n"] == 1 and agreement["aopc_above_random_rate"] == 1.0
    assert agreement["spearman_rho"]["n"] == 3
    text = reliance_report(summary)
    assert "## Reliance" in text and "| Large | 2 |" in text and "Saliency's attention" in text
    assert reliance_report({}) == ""


def test_sample_figure_draws_the_reliance_on_a_diverging_scale_centred_at_zero(explained):
    from xai.render import build_sample_figure

    result, axes = explained
    heads = {}
    for head in ("magnitude", "azimuth"):
        sample = result.reliance["occlusion"][head][0]
        saliency = result.maps[head]["saliency"].on_grid[0]
        entry = sample.figure_entry("occlusion", "Normal")
        entry["components"][..., 2] = -0.5 * entry["components"].max()  # a negative drop somewhere
        heads[head] = {
            "prediction": "Normal", "confidence": 0.5, "true": "Normal", "correct": True, "explained_class": "Normal",
            "maps": {"saliency": saliency / saliency.max()}, "reliance": entry,
        }  # fmt: skip
    fig = build_sample_figure(sample="s0", model="reader", grid_image=result.batch.grids[0], axes=axes, heads=heads)
    meshes = [c for ax in fig.axes for c in ax.collections if getattr(c, "cmap", None) is not None]
    diverging = [m for m in meshes if m.cmap.name == "RdBu_r"]
    assert len(diverging) == 2 * (3 + 1)  # H, D, Z panels and the colour bar per head
    for mesh in diverging:
        assert mesh.norm.vmin == pytest.approx(-mesh.norm.vmax) and mesh.norm.vmax > 0
    titles = [ax.get_title() for ax in fig.axes]
    assert any("occlusion" in t.lower() and "drop" in t for t in titles)
    assert any(t == "whole band / hour / component removed" for t in titles)


def test_comparison_reliance_means_per_model_from_sample_entries():
    from xai.compare.discover import Found
    from xai.compare.discover import SampleRecord as FoundRecord
    from xai.compare.reliance import reliance_section, reliance_summary

    def entry(h: float, d: float, rho: float) -> dict:
        marginals = {"component": {"H": {"drop_logit": h, "drop_probability": h / 10},
                                   "D": {"drop_logit": d, "drop_probability": d / 10}}}  # fmt: skip
        return {"unit": "logit", "marginals": marginals, "agreement": {"gradcam": {"spearman_rho": rho}}}

    found = Found()
    for model, values in (("vgg16", [(1.0, 0.0, 0.5), (3.0, 1.0, 0.1)]), ("efficientnet", [(0.0, 2.0, -0.2)])):
        found.records[model] = {
            f"s{i}": FoundRecord(model, f"s{i}", Path(model), Path(model) / "r.json",
                                 {"heads": {"azimuth": {"reliance": {"occlusion": entry(*v)}}}}, {})
            for i, v in enumerate(values)
        }  # fmt: skip
    found.trust["vgg16"] = {"reliance": {"occlusion": {}}}
    summary = reliance_summary(found)
    vgg = summary["vgg16"]["samples"]["occlusion"]["azimuth"]
    assert vgg["n"] == 2 and vgg["marginals"]["component"] == {"H": 2.0, "D": 0.5}
    assert vgg["agreement_rho"]["gradcam"] == pytest.approx(0.3)
    assert summary["efficientnet"]["dataset"] is None and summary["vgg16"]["dataset"] == {"occlusion": {}}
    text = "\n".join(reliance_section({"reliance": summary}))
    assert "| vgg16 | 2 | 2 | 0.5 |" in text and "| efficientnet | 1 | 0 | 2 |" in text
    assert "Grad-CAM ρ = 0.3" in text and "`vgg16`" in text
    assert reliance_section({"reliance": {}}) == []


def test_agreement_options_are_checked():
    from core.errors import ConfigError
    from xai.explainers.occlusion import OcclusionOptions

    assert OcclusionOptions.of({"agreement_steps": 0}).agreement_steps == 0  # 0: no region perturbation
    for bad in ({"agreement_steps": -1}, {"agreement_orders": 0}, {"agreement_steps": 2.5}):
        with pytest.raises(ConfigError, match="agreement_"):
            OcclusionOptions.of(bad)
