"""Occlusion reliance against hand-computed toy models: only the region a model reads may matter."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from hydra import compose, initialize_config_dir
from keras import ops

from core.errors import ConfigError, InputDataError
from geomag.axes import SpectrogramAxes
from tests.conftest import grid_axes, tiny_two_head_model
from xai.explainers import build_explainers
from xai.explainers.occlusion import Occlusion
from xai.reliance.references import NoisyLinearImputer, median_reference
from xai.reliance.regions import RegionConfig, build_regions

CONF = Path(__file__).resolve().parents[1] / "conf"
HOUR = 3600.0
BAND, SEGMENT = "1-3.3 mHz", "2-3 h"


def _axes(layout: str = "channels", rows: int = 24, cols: int = 24) -> SpectrogramAxes:
    return grid_axes(rows, cols, layout=layout)


def _block(axes: SpectrogramAxes, band: str, segment: str, component: str | None = None) -> tuple[slice, slice]:
    """Row and column slices of a band x segment (inside one panel of a stacked grid)."""
    regions = build_regions(axes)
    rows = regions.group_boxes["band"][band].rows.copy()
    if component is not None:
        rows &= regions.group_boxes["component"][component].rows
    cols = regions.group_boxes["segment"][segment].cols
    r, c = np.flatnonzero(rows), np.flatnonzero(cols)
    assert np.all(np.diff(r) == 1) and np.all(np.diff(c) == 1)
    return slice(r[0], r[-1] + 1), slice(c[0], c[-1] + 1)


def _reader(shape: tuple[int, int, int], rows: slice, cols: slice, channels: slice | int) -> keras.Model:
    """Score s = mean of the input over one block; head 'magnitude' = softmax(s, -s) (logits reachable)."""
    inputs = keras.Input(shape)
    score = keras.layers.Lambda(lambda x: ops.reshape(ops.mean(x[:, rows, cols, channels], axis=(1, 2))
                                                      if isinstance(channels, int)
                                                      else ops.mean(x[:, rows, cols, channels], axis=(1, 2, 3)),
                                                      (-1, 1)))(inputs)  # fmt: skip
    dense = keras.layers.Dense(2, activation="softmax", name="magnitude",
                               kernel_initializer=keras.initializers.Constant([[1.0, -1.0]]))  # fmt: skip
    return keras.Model(inputs, dense(score), name="reader")


def _grids(batch: int, shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, *shape)).astype(np.float32)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _key(region) -> tuple[str, str, str]:
    return region.band, region.segment, region.component


def test_a_model_that_reads_one_region_relies_only_on_it():
    axes = _axes()
    rows, cols = _block(axes, BAND, SEGMENT)
    x = _grids(3, (24, 24, 3))
    occlusion = Occlusion(_reader((24, 24, 3), rows, cols, 2), heads=("magnitude",), background="sample")
    result = occlusion.reliance(x, axes, class_indices={"magnitude": 0})["magnitude"]
    regions = result.regions
    target = [i for i, r in enumerate(regions.regions) if _key(r) == (BAND, SEGMENT, "Z")]
    others = np.setdiff1d(np.arange(len(regions)), target)
    assert np.all(result.drop_logit[:, others] == 0.0) and np.all(result.drop_probability[:, others] == 0.0)
    # by hand: the block is replaced by its rows' median over time
    background = np.median(x, axis=2, keepdims=True)
    s0 = x[:, rows, cols, 2].mean(axis=(1, 2))
    s1 = np.broadcast_to(background, x.shape)[:, rows, cols, 2].mean(axis=(1, 2))
    np.testing.assert_allclose(result.drop_logit[:, target[0]], s0 - s1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.drop_probability[:, target[0]], _sigmoid(2 * s0) - _sigmoid(2 * s1), atol=1e-6)
    np.testing.assert_allclose(result.score_logit, s0, rtol=1e-5, atol=1e-6)
    # marginals: the band, hour and component holding the block lose exactly that; the others nothing
    for marginal in result.marginals:
        holds = (marginal.kind, marginal.name) in {("band", BAND), ("segment", SEGMENT), ("component", "Z")}
        expected = result.drop_logit[:, target[0]] if holds else 0.0
        np.testing.assert_allclose(marginal.drop_logit, expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(marginal.summed_logit, expected, rtol=1e-5, atol=1e-7)
    # the reliance map carries the drop on the region's cells only
    grid_map = result.reliance_map()
    assert grid_map.shape == (3, 24, 24)
    inside = np.zeros((24, 24), dtype=bool)
    inside[rows, cols] = True
    assert np.all(grid_map[:, ~inside] == 0.0)
    np.testing.assert_allclose(grid_map[:, inside], np.repeat(result.drop_logit[:, target], inside.sum(), axis=1))
    per_channel = result.reliance_map_channels("probability")
    assert per_channel.shape == (3, 24, 24, 3) and np.all(per_channel[..., :2] == 0.0)
    table = result.table()
    assert len(table) == 3 * len(regions) and {"band", "segment", "component", "drop_logit"} <= set(table[0])
    summary = result.sample_summary(1)
    assert summary["marginals"]["component"]["Z"]["drop_logit"] == pytest.approx(float(result.drop_logit[1, target[0]]))


def test_component_reliance_of_a_model_that_reads_one_channel():
    axes = _axes()
    x = _grids(2, (24, 24, 3), seed=1)
    model = _reader((24, 24, 3), slice(None), slice(None), 1)  # mean of channel D over the whole grid
    occlusion = Occlusion(model, heads=("magnitude",), background="sample")
    result = occlusion.reliance(x, axes, class_indices={"magnitude": 0})["magnitude"]
    components = np.array([r.component for r in result.regions.regions])
    assert np.all(result.drop_logit[:, components != "D"] == 0.0)
    assert np.any(result.drop_logit[:, components == "D"] != 0.0)
    d, h = result.marginal("component", "D"), result.marginal("component", "H")
    assert np.all(h.drop_logit == 0.0) and np.all(result.marginal("component", "Z").drop_logit == 0.0)
    np.testing.assert_allclose(d.drop_logit, d.summed_logit, atol=1e-5)  # a linear model: regions add up
    expected = x[..., 1].mean(axis=(1, 2)) - np.median(x[..., 1], axis=2).mean(axis=1)
    np.testing.assert_allclose(d.drop_logit, expected, atol=1e-5)


def test_stacked_layout_panels():
    axes = _axes("stacked", rows=36, cols=24)
    rows, cols = _block(axes, BAND, SEGMENT, component="Z")
    x = _grids(2, (36, 24, 3), seed=2)
    model = _reader((36, 24, 3), rows, cols, slice(None))  # all colour channels of the Z panel's block
    occlusion = Occlusion(model, heads=("magnitude",), background="sample")
    result = occlusion.reliance(x, axes, class_indices={"magnitude": 0})["magnitude"]
    nonzero = {_key(result.regions.regions[i]) for i in np.flatnonzero(np.abs(result.drop_logit).max(axis=0))}
    assert nonzero == {(BAND, SEGMENT, "Z")}
    background = np.broadcast_to(np.median(x, axis=2, keepdims=True), x.shape)
    expected = x[:, rows, cols].mean(axis=(1, 2, 3)) - background[:, rows, cols].mean(axis=(1, 2, 3))
    (index,) = [i for i, r in enumerate(result.regions.regions) if _key(r) == (BAND, SEGMENT, "Z")]
    np.testing.assert_allclose(result.drop_logit[:, index], expected, rtol=1e-5, atol=1e-6)
    assert np.all(result.marginal("component", "D").drop_logit == 0.0)


def _logits_model(model: keras.Model, head: str) -> keras.Model:
    return keras.Model(model.inputs, model.get_layer(f"{head}_logits").output)


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_called_like_any_explainer_with_a_contrast_class():
    axes = _axes(rows=32, cols=32)
    x = _grids(2, (32, 32, 3), seed=5)
    model = tiny_two_head_model(seed=5)
    direct = Occlusion(model, axes=axes)(x, "magnitude", [2, 1], contrast_indices=0)
    by_option = Occlusion(model, axes=axes, contrast_class=0)(x, "magnitude", [2, 1])
    plain = Occlusion(model, axes=axes)(x, "magnitude", [2, 1])
    np.testing.assert_allclose(direct.maps, by_option.maps, rtol=1e-5, atol=1e-6)
    assert not np.allclose(direct.maps, plain.maps)  # the contrast changes the explained score


def test_contrastive_target_against_its_formula():
    axes = _axes(rows=32, cols=32)
    model = tiny_two_head_model(seed=3)
    x = _grids(2, (32, 32, 3), seed=3)
    occlusion = Occlusion(model, background="sample")
    results = occlusion.reliance(x, axes, class_indices={"magnitude": [2, 1]}, contrast_class={"magnitude": 0})
    assert set(results) == {"magnitude", "azimuth"}  # both heads from the same forward passes
    result = results["magnitude"]
    assert result.contrast_classes.tolist() == [0, 0] and results["azimuth"].contrast_classes is None
    logits = _logits_model(model, "magnitude")
    background = np.median(x, axis=2, keepdims=True)
    chosen = [0, 17, len(result.regions) - 1]
    occluded = np.stack(
        [np.where(result.regions.regions[r].mask, background[i], x[i]) for i in range(2) for r in chosen]
    )
    before = logits.predict(x, verbose=0).astype(np.float64)
    after = logits.predict(occluded, verbose=0).astype(np.float64).reshape(2, len(chosen), -1)
    a, b = np.array([2, 1]), 0
    score0 = before[np.arange(2), a] - before[:, b]
    score1 = after[np.arange(2), :, a] - after[:, :, b]
    np.testing.assert_allclose(result.score_logit, score0, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.drop_logit[:, chosen], score0[:, None] - score1, rtol=1e-3, atol=1e-5)
    p0, p1 = _softmax(before), _softmax(after)
    prob0 = p0[np.arange(2), a] - p0[:, b]
    prob1 = p1[np.arange(2), :, a] - p1[:, :, b]
    np.testing.assert_allclose(result.drop_probability[:, chosen], prob0[:, None] - prob1, rtol=1e-3, atol=1e-6)


def test_predicted_class_is_the_default_target_and_logit_differs_from_probability():
    axes = _axes(rows=32, cols=32)
    model = tiny_two_head_model(seed=4)
    x = _grids(2, (32, 32, 3), seed=4)
    result = Occlusion(model).reliance(x, axes, heads=["azimuth"])["azimuth"]
    probabilities = model.predict(x, verbose=0)[1]
    assert result.classes.tolist() == probabilities.argmax(axis=1).tolist()
    np.testing.assert_allclose(result.score_probability, probabilities.max(axis=1), rtol=1e-5)
    assert result.score_kind == "logit" and not np.allclose(result.drop_logit, result.drop_probability)


def test_explain_returns_the_reliance_map_on_the_grid_for_resized_inputs():
    axes = _axes()
    rows, cols = _block(axes, BAND, SEGMENT)
    big_rows, big_cols = slice(2 * rows.start, 2 * rows.stop), slice(2 * cols.start, 2 * cols.stop)
    model = _reader((48, 48, 3), big_rows, big_cols, 2)
    grids = _grids(2, (24, 24, 3), seed=5)
    inputs = tf.image.resize(grids, (48, 48), method="bilinear").numpy()
    occlusion = Occlusion(model, heads=("magnitude",))
    with pytest.raises(ConfigError, match="needs the spectrogram axes"):
        occlusion.explain(inputs, "magnitude", np.zeros(2, dtype=np.int32))
    explanation = occlusion.use_axes(axes)(inputs, head="magnitude", class_indices=np.zeros(2, dtype=np.int32))
    assert explanation.maps.shape == (2, 24, 24) and explanation.native_shape == (24, 24)
    assert explanation.method == "occlusion" and explanation.score_kind == "logit"
    inside = np.zeros((24, 24), dtype=bool)
    inside[rows, cols] = True
    assert np.all(explanation.maps[:, ~inside] == 0.0) and np.all(explanation.maps[:, inside] != 0.0)
    assert set(occlusion.last_results) == {"magnitude"}


def test_noisy_linear_reference():
    rows, cols = 10, 12
    plane = (0.3 * np.arange(rows)[:, None] - 0.2 * np.arange(cols)[None, :])[None, :, :, None].astype(np.float32)
    mask = np.zeros((rows, cols, 1), dtype=bool)
    mask[3:6, 4:9] = True
    imputer = NoisyLinearImputer((rows, cols), np.zeros(rows, np.int64), noise=0.0)
    fallback = median_reference(plane)
    np.testing.assert_allclose(imputer.impute(plane, mask, fallback), plane, atol=1e-5)  # a plane is harmonic
    whole = np.ones((rows, cols, 1), dtype=bool)
    np.testing.assert_allclose(imputer.impute(plane, whole, fallback), fallback, atol=1e-6)  # nothing to interpolate
    noisy = NoisyLinearImputer((rows, cols), np.zeros(rows, np.int64), noise=0.1, seed=1)
    once, twice = noisy.impute(plane, mask, fallback), noisy.impute(plane, mask, fallback)
    assert np.array_equal(once[0, ~mask[..., 0]], plane[0, ~mask[..., 0]]) and not np.allclose(once, twice)
    # the occlusion explainer with it: still only the region the model reads
    axes = _axes()
    block_rows, block_cols = _block(axes, BAND, SEGMENT)
    x = _grids(2, (24, 24, 3), seed=6)
    occlusion = Occlusion(
        _reader((24, 24, 3), block_rows, block_cols, 2), heads=("magnitude",), reference="noisy_linear"
    )
    result = occlusion.reliance(x, axes, class_indices={"magnitude": 0})["magnitude"]
    nonzero = {_key(result.regions.regions[i]) for i in np.flatnonzero(np.abs(result.drop_logit).max(axis=0))}
    assert nonzero == {(BAND, SEGMENT, "Z")} and result.reference == "noisy_linear"


def test_given_background_and_masks():
    axes = _axes()
    rows, cols = _block(axes, BAND, SEGMENT)
    x = _grids(2, (24, 24, 3), seed=7)
    occlusion = Occlusion(_reader((24, 24, 3), rows, cols, 2), heads=("magnitude",))
    zeros = occlusion.reliance(x, axes, class_indices={"magnitude": 0}, background=np.zeros((24, 1, 3)))["magnitude"]
    (index,) = [i for i, r in enumerate(zeros.regions.regions) if _key(r) == (BAND, SEGMENT, "Z")]
    np.testing.assert_allclose(zeros.drop_logit[:, index], x[:, rows, cols, 2].mean(axis=(1, 2)), rtol=1e-5)
    batch = occlusion.reliance(x, axes, class_indices={"magnitude": 0}, background="batch")["magnitude"]
    median = np.median(x[..., 2].transpose(1, 0, 2).reshape(24, -1), axis=1)
    expected = x[:, rows, cols, 2].mean(axis=(1, 2)) - median[rows].mean()
    np.testing.assert_allclose(batch.drop_logit[:, index], expected, rtol=1e-5, atol=1e-6)
    masks = build_regions(axes).masks()[[index, 0]]
    drop_logit, drop_probability = occlusion.drops_for_masks(x, masks, "magnitude", 0, axes=axes)
    default = occlusion.reliance(x, axes, class_indices={"magnitude": 0})["magnitude"]
    np.testing.assert_allclose(drop_logit, default.drop_logit[:, [index, 0]], atol=1e-7)
    assert drop_probability.shape == (2, 2)
    with pytest.raises(InputDataError, match="masks must be"):
        occlusion.drops_for_masks(x, masks[:, :5], "magnitude", 0)


def test_pooled_background_is_the_batch_median_at_each_sample_level():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 4, 5, 2)).astype(np.float32) + np.array([0.0, 2.0, -1.0])[:, None, None, None]
    pooled = median_reference(x, "pooled")
    rows = np.median(x.transpose(1, 3, 0, 2).reshape(4, 2, -1), axis=2)  # (rows, C)
    level = np.median(x.reshape(3, -1, 2), axis=1)  # (B, C)
    expected = rows[None, :, None, :] + (level - np.median(level, axis=0))[:, None, None, :]
    np.testing.assert_allclose(pooled, np.broadcast_to(expected, x.shape), rtol=1e-6)
    np.testing.assert_allclose(median_reference(x[:1], "pooled"), median_reference(x[:1], "batch"))


def test_a_signal_lasting_most_of_the_window_is_relied_on_only_with_a_pooled_background():
    """A sample's own time median keeps a cue present in most of its hours: occluding one hour of it
    replaces it by itself; the pooled median of windows without it removes it."""
    axes = _axes()
    rows, cols = _block(axes, BAND, SEGMENT)
    x = _grids(4, (24, 24, 3), seed=8)
    x[0, rows, :, 2] += 3.0  # sample 0 carries the cue at every hour of the band
    occlusion = Occlusion(_reader((24, 24, 3), rows, cols, 2), heads=("magnitude",), background="sample")
    (index,) = [i for i, r in enumerate(build_regions(axes).regions) if _key(r) == (BAND, SEGMENT, "Z")]
    own = occlusion.reliance(x, axes, class_indices={"magnitude": 0})["magnitude"].drop_logit[0, index]
    pooled = occlusion.reliance(x, axes, class_indices={"magnitude": 0}, background="pooled")["magnitude"]
    assert Occlusion(_reader((24, 24, 3), rows, cols, 2), heads=("magnitude",)).options.background == "pooled"
    assert abs(own) < 0.5 and pooled.drop_logit[0, index] > 2.0


def test_hydra_config_and_bad_options():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        method = compose("config", overrides=["+method@probe=occlusion"]).probe
    model = tiny_two_head_model(seed=5)
    occlusion = build_explainers({"occlusion": method}, model, heads=("magnitude", "azimuth"))["occlusion"]
    assert isinstance(occlusion, Occlusion) and occlusion.options.regions == RegionConfig()
    assert occlusion.options.reference == "median" and occlusion.options.chunk_size == 64
    with pytest.raises(ConfigError, match="band_edges_hz must be strictly increasing"):
        Occlusion(model, regions={"band_edges_hz": [0.01, 0.001]})
    with pytest.raises(ConfigError, match="unknown option"):
        Occlusion(model, patch_size=4)
    with pytest.raises(ConfigError, match="reference must be one of median, noisy_linear"):
        Occlusion(model, reference="black")
    with pytest.raises(ConfigError, match="unknown component 'X'"):
        Occlusion(model, regions={"components": ["X"]}).reliance(_grids(1, (32, 32, 3)), _axes(rows=32, cols=32))
    with pytest.raises(ConfigError, match="contrast_class 'Large' is unknown"):
        Occlusion(model, contrast_class="Large").reliance(_grids(1, (32, 32, 3)), _axes(rows=32, cols=32))
    with pytest.raises(InputDataError, match="do not match the axes' grid"):
        Occlusion(model).reliance(_grids(1, (32, 32, 3)), _axes())


def test_bundle_grids_are_resized_and_preprocessed_after_occlusion():
    from geomag.dataset import ClassMappings
    from models.loading import ModelBundle

    model = tiny_two_head_model(seed=6)
    mappings = ClassMappings(["Normal", "Moderate", "Medium", "Large"], ["Normal", "N", "E", "S", "W"])
    heads = {"magnitude": "magnitude", "azimuth": "azimuth"}
    bundle = ModelBundle(model=model, name="tiny", class_mappings=mappings, heads=heads, target_layer=None,
                         input_shape=(32, 32, 3), preprocessing="scale_0_1")  # fmt: skip
    axes = _axes(rows=16, cols=16)
    grids = 100.0 * np.abs(_grids(2, (16, 16, 3), seed=8))
    occlusion = Occlusion(bundle, contrast_class={"magnitude": "Normal"}, background="sample")
    result = occlusion.reliance(grids, axes, heads=["magnitude"], class_indices={"magnitude": 3})["magnitude"]
    assert result.contrast_classes.tolist() == [0, 0] and result.classes.tolist() == [3, 3]
    logits = _logits_model(model, "magnitude")
    background = np.median(grids, axis=2, keepdims=True)
    chosen = [1, 40]
    occluded = np.stack(
        [np.where(result.regions.regions[r].mask, background[i], grids[i]) for i in range(2) for r in chosen]
    )
    before = logits.predict(bundle.prepare(grids), verbose=0).astype(np.float64)
    after = logits.predict(bundle.prepare(occluded), verbose=0).astype(np.float64).reshape(2, len(chosen), -1)
    expected = (before[:, 3] - before[:, 0])[:, None] - (after[:, :, 3] - after[:, :, 0])
    np.testing.assert_allclose(result.drop_logit[:, chosen], expected, rtol=1e-3, atol=1e-4)


def test_attention_on_the_read_block_beats_random_region_perturbation():
    from xai.reliance.agreement import agreement, agreement_sentence, region_attention_mass, region_perturbation

    axes = _axes()
    rows, cols = _block(axes, BAND, SEGMENT)
    x = _grids(1, (24, 24, 3), seed=9)
    occlusion = Occlusion(_reader((24, 24, 3), rows, cols, 2), heads=("magnitude",))
    result = occlusion.reliance(x, axes, class_indices={"magnitude": 0})["magnitude"]
    heatmap = np.zeros((24, 24))
    heatmap[rows, cols] = 1.0
    heatmap[0, 0] = 0.1  # a little attention elsewhere
    mass = region_attention_mass(heatmap, result.regions)

    def remove(masks):
        return occlusion.drops_for_masks(x, masks, "magnitude", 0, axes=axes)[0][0]

    perturbation = region_perturbation(remove, result.regions, mass, steps=3, n_random=2)
    drop = float(result.drop_logit[0][np.abs(result.drop_logit[0]).argmax()])
    # a (rows, cols) map cannot tell H, D, Z apart: the block's three component regions tie, H and D go first
    np.testing.assert_allclose(perturbation["curve"], [0.0, 0.0, drop], rtol=1e-5, atol=1e-6)
    assert perturbation["aopc"] == pytest.approx(drop / 4, rel=1e-5, abs=1e-6)
    summary = agreement("saliency", heatmap, result.drop_logit[0], result.regions, perturbation)
    assert summary.top_region["component"] == "Z" and summary.top_attention_region["band"] == BAND
    assert agreement_sentence(summary).startswith("Saliency's attention")
