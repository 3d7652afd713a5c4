"""Deletion / insertion faithfulness: median background, hand-checked curves, and a model that sees one region."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core.errors import ConfigError, InputDataError, ModelError
from xai.explainers.base import to_grid
from xai.explainers.gradcam import GradCAM
from xai.metrics.faithfulness import (
    area_under_curve,
    deletion_insertion,
    importance_order,
    median_background,
    perturbation_curves,
    random_order,
)
from xai.metrics.localisation import random_heatmaps, relevance_mass_accuracy

GRID = np.array([[1.0, 2.0, 9.0], [4.0, 0.0, 5.0]], np.float32)  # rows = frequency, cols = time
HEAT = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]])  # order: (1,1) (1,2) (0,0) (0,2) (0,1) (1,0)


class SumPredict:
    """Fake model: P(class 0) = sum of the grid / 100; records its batch sizes."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, grids: np.ndarray) -> dict[str, np.ndarray]:
        self.batches.append(len(grids))
        s = grids.reshape(len(grids), -1).sum(axis=1) / 100.0
        return {"h": np.stack([s, 1.0 - s], axis=1)}


def test_median_background_per_row_and_channel():
    grids = np.stack([GRID, 10 * GRID], axis=-1)[None]  # (1, 2, 3, 2)
    background = median_background(grids)
    assert background.shape == (1, 2, 1, 2) and background.dtype == np.float32
    np.testing.assert_array_equal(background[0, :, 0, 0], [2.0, 4.0])
    np.testing.assert_array_equal(background[0, :, 0, 1], [20.0, 40.0])
    with pytest.raises(InputDataError):
        median_background(GRID)
    with pytest.raises(InputDataError):
        median_background(np.full((1, 2, 3, 1), np.nan))


def test_orders_are_stable_and_random_orders_permutations():
    np.testing.assert_array_equal(importance_order(HEAT[None]), [[4, 5, 0, 2, 1, 3]])
    np.testing.assert_array_equal(importance_order(np.zeros((1, 2, 2))), [[0, 1, 2, 3]])  # ties: row-major
    orders = random_order((3, 2, 3), seed=1)
    assert orders.shape == (3, 6)
    np.testing.assert_array_equal(np.sort(orders, axis=1), np.tile(np.arange(6), (3, 1)))
    np.testing.assert_array_equal(orders, random_order((3, 2, 3), seed=1))
    assert not np.array_equal(orders, random_order((3, 2, 3), seed=2))


def test_perturbation_curves_hand_computed_and_batched():
    grids = np.stack([GRID, GRID])[..., None]  # (2, 2, 3, 1); background rows: 2 and 4
    orders = np.stack([importance_order(HEAT[None])[0], np.arange(6)])
    predict = SumPredict()
    classes = {"h": np.array([0, 1])}
    deletion = perturbation_curves(predict, grids, orders, classes, "deletion", steps=3, batch_size=5)["h"]
    assert predict.batches == [5, 3]  # 2 samples x 4 steps in batches, not one forward per image
    # sample 0, k = 0, 2, 4, 6 cells: sums 21 -> 24 (0->4, 5->4) -> 18 (1->2, 9->2) -> 18 (all background)
    np.testing.assert_allclose(deletion[0], [0.21, 0.24, 0.18, 0.18], atol=1e-6)
    # sample 1 (class 1 = 1 - sum/100), row-major order: 21 -> 22 (1->2, 2->2) -> 15 (9->2, 4->4) -> 18
    np.testing.assert_allclose(deletion[1], [0.79, 0.78, 0.85, 0.82], atol=1e-6)
    insertion = perturbation_curves(SumPredict(), grids, orders, classes, "insertion", steps=3)["h"]
    # sample 0 from the background (18): restore (1,1) 4->0, (1,2) 4->5 -> 15; then (0,0) 2->1, (0,2) 2->9 -> 21
    np.testing.assert_allclose(insertion[0], [0.18, 0.15, 0.21, 0.21], atol=1e-6)
    np.testing.assert_allclose(area_under_curve(deletion[:1]), [(0.225 + 0.21 + 0.18) / 3])
    zero = perturbation_curves(SumPredict(), grids, orders, classes, "deletion", steps=3, baseline=0.0)["h"]
    np.testing.assert_allclose(zero[0], [0.21, 0.16, 0.06, 0.0], atol=1e-6)


def test_perturbation_curves_reject_bad_input():
    grids = GRID[None, ..., None]
    order = np.arange(6)[None]
    classes = {"h": np.array([0])}
    with pytest.raises(ConfigError, match="mode"):
        perturbation_curves(SumPredict(), grids, order, classes, "blur")
    with pytest.raises(InputDataError, match="permutation"):
        perturbation_curves(SumPredict(), grids, np.zeros((1, 6), int), classes, "deletion")
    with pytest.raises(ModelError, match="head 'x'"):
        perturbation_curves(SumPredict(), grids, order, {"x": np.array([0])}, "deletion")
    with pytest.raises(ConfigError, match="out of range"):
        perturbation_curves(SumPredict(), grids, order, {"h": np.array([2])}, "deletion")
    with pytest.raises(ConfigError, match="steps"):
        perturbation_curves(SumPredict(), grids, order, classes, "deletion", steps=0)
    with pytest.raises(InputDataError, match="to_grid"):
        deletion_insertion(SumPredict(), grids, np.zeros((1, 4, 4)), np.array([0]), "h")


# --------------------------------------------------------------------------- a model that sees one region
SIZE = 16
REGION = (slice(4, 9), slice(2, 7))  # 5 x 5 cells: the only cells the model reads


def region_model() -> keras.Model:
    """Input x fixed region mask -> 1x1 conv ``feat`` (weights 1, ReLU) -> GAP -> two softmax heads.

    Class 0 of each head rises with the power inside the region; nothing else matters.
    """
    mask = np.zeros((1, SIZE, SIZE, 1), np.float32)
    mask[0][REGION] = 1.0
    inputs = keras.Input((SIZE, SIZE, 1), name="spectrogram")
    x = keras.ops.multiply(inputs, keras.ops.convert_to_tensor(mask))
    x = keras.layers.Conv2D(2, 1, use_bias=False, activation="relu", kernel_initializer="ones", name="feat")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = []
    for head, n in (("magnitude", 2), ("azimuth", 3)):
        kernel = np.zeros((2, n), np.float32)
        kernel[:, 0] = 40.0
        bias = np.zeros(n, np.float32)
        bias[0] = -12.0
        dense = keras.layers.Dense(n, name=f"{head}_logits")
        logits = dense(x)
        dense.set_weights([kernel, bias])
        outputs.append(keras.layers.Activation("softmax", name=head)(logits))
    return keras.Model(inputs, outputs, name="region")


@pytest.fixture(scope="module")
def region_setup() -> tuple[keras.Model, np.ndarray, np.ndarray]:
    model = region_model()
    rng = np.random.default_rng(0)
    grids = rng.uniform(0.0, 0.2, size=(6, SIZE, SIZE, 1)).astype(np.float32)
    grids[:, 4:9, 2:7] += 3.0  # the planted precursor
    grids[:, 10:14, 9:15] += 3.0  # a bright distractor the model ignores
    masks = np.zeros((6, SIZE, SIZE), bool)
    masks[(slice(None), *REGION)] = True
    return model, grids, masks


def _predict(model: keras.Model):
    def predict(grids: np.ndarray) -> dict[str, np.ndarray]:
        outputs = model(grids, training=False)
        return {"magnitude": np.asarray(outputs[0]), "azimuth": np.asarray(outputs[1])}

    return predict


def test_gradcam_on_region_model_is_localised_and_faithful(region_setup):
    model, grids, masks = region_setup
    predict = _predict(model)
    probs = predict(grids)
    assert (probs["magnitude"][:, 0] > 0.95).all() and (probs["azimuth"][:, 0] > 0.9).all()
    explainer = GradCAM(model, target_layer="feat")
    chance = relevance_mass_accuracy(random_heatmaps(masks.shape, seed=0), masks)
    assert np.mean(chance) == pytest.approx(25 / 256, abs=0.03)
    for head in ("magnitude", "azimuth"):
        classes = np.zeros(len(grids), int)
        heatmaps = to_grid(explainer(grids, head, classes).maps, (SIZE, SIZE))
        assert (relevance_mass_accuracy(heatmaps, masks) > 0.99).all()
        scores = deletion_insertion(predict, grids, heatmaps, classes, head, steps=10, seed=0)
        assert set(scores) == {"deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc"}
        assert all(values.shape == (len(grids),) for values in scores.values())
        # the first 10 % of cells hold the whole region: the class probability collapses / appears at once
        assert (scores["deletion_auc"] < 0.25).all() and (scores["insertion_auc"] > 0.85).all()
        assert (scores["deletion_auc"] < scores["random_deletion_auc"] - 0.2).all()
        assert (scores["insertion_auc"] > scores["random_insertion_auc"] + 0.2).all()
        # a map on the ignored distractor is no better than chance: the metric can fail a map
        distractor = np.zeros(masks.shape)
        distractor[:, 10:14, 9:15] = 1.0
        wrong = deletion_insertion(predict, grids, distractor, classes, head, steps=10, seed=0)
        assert (wrong["deletion_auc"] > 0.35).all() and (wrong["insertion_auc"] < 0.65).all()


def test_both_heads_in_one_pass_and_median_baseline_removes_the_signal(region_setup):
    model, grids, masks = region_setup
    flat_mask = masks.reshape(len(grids), -1)
    orders = np.argsort(~flat_mask, axis=1, kind="stable")  # region cells first
    classes = {"magnitude": np.zeros(len(grids), int), "azimuth": np.zeros(len(grids), int)}
    curves = perturbation_curves(_predict(model), grids, orders, classes, "deletion", steps=4)
    assert set(curves) == {"magnitude", "azimuth"} and curves["azimuth"].shape == (len(grids), 5)
    for head in curves:
        # step 1 (64 cells) removes the region: the median background (~0.1) is far below the precursor
        assert (curves[head][:, 0] > 0.9).all() and (curves[head][:, 1:] < 0.2).all()
