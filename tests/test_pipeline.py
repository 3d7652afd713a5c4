"""The per-batch explanation pipeline (xai.pipeline) and the one cached build_explainers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from omegaconf import OmegaConf

from core.errors import ConfigError, InputDataError
from geomag.sources import DemoDataSource
from geomag.spectrogram import SpectrogramConfig
from models.loading import bundle_from_model
from tests.conftest import tiny_model
from xai.explainers import build_explainers
from xai.explainers.gradcam import GradCAM
from xai.explainers.saliency import Saliency
from xai.pipeline import ExplainContext, GridBatch, batches, explain_batch, explained_classes, load_grids
from xai.trust import confusion_by_name

SPEC = SpectrogramConfig(grid=(32, 32))
METHODS = {
    "gradcam": {"_target_": "xai.explainers.gradcam.GradCAM"},
    "saliency": {"_target_": "xai.explainers.saliency.Saliency", "compiled": True},
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    source = DemoDataSource(tmp_path_factory.mktemp("cache"), {"n_samples": 24}, SPEC)
    mappings = source.class_mappings
    model = tiny_model(len(mappings.magnitude_classes), len(mappings.azimuth_classes))
    bundle = bundle_from_model(model, mappings, name="tiny", target_layer="feat")
    return source, bundle, source.records()[:5]


def test_batches_cover_every_item_once_from_the_start():
    assert list(batches(10, 4)) == [(0, 4), (4, 8), (8, 10)]
    assert list(batches(10, 4, start=6)) == [(6, 10)]
    assert list(batches(0, 4)) == []


def test_explained_classes_predicted_true_named_and_per_head(setup):
    source, bundle, records = setup
    mappings = bundle.class_mappings
    predicted = np.arange(len(records)) % 2
    np.testing.assert_array_equal(explained_classes("predicted", "magnitude", mappings, predicted, records), predicted)
    true = [mappings.index("azimuth", r.azimuth_class) for r in records]
    np.testing.assert_array_equal(explained_classes("true", "azimuth", mappings, predicted, records), true)
    large = mappings.index("magnitude", "Large")
    assert (explained_classes("Large", "magnitude", mappings, predicted, records) == large).all()
    # a class of the other head: this head explains its prediction
    np.testing.assert_array_equal(explained_classes("Large", "azimuth", mappings, predicted, records), predicted)
    per_head = {"magnitude": "Large"}
    np.testing.assert_array_equal(explained_classes(per_head, "azimuth", mappings, predicted, records), predicted)
    with pytest.raises(ConfigError, match="Gigantic"):
        explained_classes("Gigantic", "magnitude", mappings, predicted, records)


def test_context_refuses_an_unknown_head_or_attention_kind(setup):
    _, bundle, _ = setup
    with pytest.raises(ConfigError, match="unknown head 'depth'"):
        ExplainContext(bundle, {}, ("magnitude", "depth"))
    with pytest.raises(ConfigError, match="attention"):
        ExplainContext(bundle, {}, attention="everything")


def test_explain_batch_maps_on_the_grid_with_summaries_and_bands(setup):
    source, bundle, records = setup
    explainers = {"gradcam": GradCAM(bundle), "saliency": Saliency(bundle)}
    (batch,) = load_grids(source, records)
    full = explain_batch(ExplainContext(bundle, explainers, explained_class="true"), batch)
    bands = explain_batch(
        ExplainContext(bundle, explainers, explained_class="true", axes=batch.axes[0], attention="bands"), batch
    )
    for head in ("magnitude", "azimuth"):
        true = [bundle.class_mappings.index(head, r.true_class(head)) for r in records]
        np.testing.assert_array_equal(full.predictions.targets[head], true)
        for method in explainers:
            maps = full.maps[head][method]
            assert maps.on_grid.shape == (len(records), 32, 32)
            np.testing.assert_array_equal(maps.on_grid, bands.maps[head][method].on_grid)
            summary, shares = maps.attention[0], bands.maps[head][method].attention[0]
            assert summary["native_resolution"]["time_cells"] == maps.explanation.native_shape[1]
            assert set(shares) == set(summary["bands"])  # the same bands, mass shares only
            for band, share in shares.items():
                assert share == summary["bands"][band].get("mass_share")
        entry = full.prediction(head, 0)
        assert entry["prediction"] == max(entry["probabilities"], key=entry["probabilities"].get)
        assert entry["explained_class"] == records[0].true_class(head)
    assert full.maps["magnitude"]["gradcam"].explanation.native_shape == (7, 7)


def test_grids_with_nan_or_another_shape_are_refused_naming_the_file(setup):
    source, _, records = setup

    class Broken:
        def load(self, record):
            item = source.load(record)
            if record is records[1]:
                image = item.image.copy()
                image[0, 0, 0] = np.nan
                item = dataclasses.replace(item, image=image)
            return item

    with pytest.raises(InputDataError, match="NaN") as info:
        load_grids(Broken(), records[:3])
    assert str(records[1].path) in str(info.value)
    first = source.load(records[0])
    with pytest.raises(InputDataError, match="differs from the data set's"):
        load_grids(source, records[:2], expected_shape=(16, 16, first.image.shape[2]))
    assert isinstance(GridBatch.of(records[:1], [first]), GridBatch)


def test_build_explainers_is_cached_per_model_and_method_config(setup):
    _, bundle, _ = setup
    methods = OmegaConf.create(METHODS)
    first = build_explainers(methods, bundle)
    again = build_explainers(OmegaConf.create(METHODS), bundle)
    assert list(first) == ["gradcam", "saliency"]
    assert all(again[name] is first[name] for name in first)  # compiled explainers reused
    other = build_explainers(OmegaConf.create({"saliency": {**METHODS["saliency"], "compiled": False}}), bundle)
    assert other["saliency"] is not first["saliency"]
    second_model = bundle_from_model(
        tiny_model(len(bundle.classes("magnitude")), len(bundle.classes("azimuth")), seed=1),
        bundle.class_mappings,
        name="tiny",
        target_layer="feat",
    )
    assert build_explainers(methods, second_model)["gradcam"] is not first["gradcam"]


def test_confusion_by_name_skips_unknown_true_classes():
    matrix = confusion_by_name(["a", "b", "x", "b"], ["a", "a", "b", "b"], ["a", "b"])
    assert matrix == {"classes": ["a", "b"], "rows": "true", "columns": "predicted", "matrix": [[1, 0], [1, 1]]}
    assert confusion_by_name([], [], ["a"])["matrix"] == [[0]]
