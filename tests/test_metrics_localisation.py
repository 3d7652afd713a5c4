"""Localisation metrics (relevance mass / rank accuracy, pointing game) and bootstrap intervals, hand-computed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import ConfigError, InputDataError
from xai.metrics.localisation import (
    localisation_scores,
    mask_area_share,
    pointing_game,
    random_heatmaps,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
)
from xai.metrics.statistics import bootstrap_ci


def _mask(cells: list[tuple[int, int]], shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for r, c in cells:
        mask[r, c] = True
    return mask


@pytest.fixture()
def cases() -> tuple[np.ndarray, np.ndarray]:
    """Four 4x4 samples: mixed signs with a tie, tied maximum, all-negative constant, empty mask."""
    a = np.array([[0, 1, 2, 0], [0, 4, -3, 0], [0, 0, 1, 0], [2, 0, 0, 0]], float)
    mask_a = _mask([(0, 1), (0, 2), (1, 1), (1, 2)])  # holds 1, 2, 4, -3
    b = np.zeros((4, 4))
    b[0, 0] = b[3, 3] = 5.0
    mask_b = _mask([(3, 2), (3, 3)])
    c = np.full((4, 4), -1.0)
    mask_c = _mask([(0, 0)])
    d = np.arange(16.0).reshape(4, 4)
    mask_d = np.zeros((4, 4), bool)  # a Normal sample
    return np.stack([a, b, c, d]), np.stack([mask_a, mask_b, mask_c, mask_d])


def test_relevance_mass_accuracy_hand_computed(cases):
    maps, masks = cases
    mass = relevance_mass_accuracy(maps, masks)
    # a: positive total 1+2+4+1+2 = 10, inside 1+2+4 = 7 (the -3 is clipped); b: one of two 5s;
    # c: no positive relevance -> NaN; d: empty mask -> NaN
    np.testing.assert_allclose(mass, [0.7, 0.5, np.nan, np.nan])


def test_relevance_rank_accuracy_hand_computed_with_expected_ties(cases):
    maps, masks = cases
    rank = relevance_rank_accuracy(maps, masks)
    # a: K=4 -> cells 4 (in), 2@(0,2) (in), 2@(3,0) (out) above the 4th value 1; one place left for the
    #    two tied 1s, (0,1) in and (2,2) out -> 0.5 expected hit: (2 + 0.5) / 4
    # b: K=2 -> both 5s: (0,0) out, (3,3) in; c: constant map, K=1 -> 1 of 16 tied cells is in the mask
    np.testing.assert_allclose(rank, [0.625, 0.5, 1 / 16, np.nan])
    swapped = maps.copy()
    swapped[0, 2, 2], swapped[0, 0, 1] = 1.0, 0.0  # the single 1 now lies outside
    assert relevance_rank_accuracy(swapped, masks)[0] == pytest.approx(0.5)


def test_pointing_game_hand_computed_and_tied_maximum(cases):
    maps, masks = cases
    # b: tied maximum, one of two cells inside -> 0.5; c: constant map -> 1/16 (no free hit)
    np.testing.assert_array_equal(pointing_game(maps, masks), [1.0, 0.5, 1 / 16, np.nan])
    only_outside = maps.copy()
    only_outside[1, 3, 3] = 4.0  # the maximum is now only at (0,0), outside the mask
    only_outside[0, 1, 1] = 0.5  # max of a is the 2s at (0,2) (in) and (3,0) (out): half a hit
    np.testing.assert_array_equal(pointing_game(only_outside, masks)[:2], [0.5, 0.0])
    only_outside[0, 0, 2] = 0.0
    assert pointing_game(only_outside, masks)[0] == 0.0  # max 2 now only at (3,0)


def test_mask_area_share_and_scores_dict(cases):
    maps, masks = cases
    np.testing.assert_allclose(mask_area_share(masks), [4 / 16, 2 / 16, 1 / 16, np.nan])
    scores = localisation_scores(maps, masks.astype(np.int64))  # 0/1 integers are accepted
    assert set(scores) == {"relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game", "mask_area_share"}
    np.testing.assert_allclose(scores["relevance_mass_accuracy"], [0.7, 0.5, np.nan, np.nan])
    assert all(values.shape == (4,) for values in scores.values())


def test_uniform_map_scores_area_share_and_random_maps_match_it_on_average():
    masks = np.zeros((300, 8, 8), bool)
    masks[:, 2:6, 1:5] = True  # 16 of 64 cells
    np.testing.assert_allclose(relevance_mass_accuracy(np.ones((300, 8, 8)), masks), 0.25)
    random = random_heatmaps((300, 8, 8), seed=3)
    assert random.dtype == np.float32 and random.min() >= 0.0 and random.max() < 1.0
    np.testing.assert_array_equal(random, random_heatmaps((300, 8, 8), seed=3))
    assert np.mean(relevance_mass_accuracy(random, masks)) == pytest.approx(0.25, abs=0.01)
    assert np.mean(relevance_rank_accuracy(random, masks)) == pytest.approx(0.25, abs=0.03)
    assert np.mean(pointing_game(random, masks)) == pytest.approx(0.25, abs=0.08)


def test_localisation_rejects_bad_input():
    maps, masks = np.zeros((2, 4, 4)), np.zeros((2, 4, 4), bool)
    with pytest.raises(InputDataError, match="shape"):
        relevance_mass_accuracy(maps, masks[:, :3])
    with pytest.raises(InputDataError, match="NaN"):
        relevance_mass_accuracy(np.full((2, 4, 4), np.nan), masks)
    with pytest.raises(InputDataError, match="boolean"):
        pointing_game(maps, np.full((2, 4, 4), 2))
    with pytest.raises(InputDataError):
        relevance_rank_accuracy(np.zeros((4, 4)), masks[0])
    with pytest.raises(ConfigError):
        random_heatmaps((2, 0, 4))


# --------------------------------------------------------------------------- bootstrap
def test_bootstrap_ci_known_sample_contains_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = bootstrap_ci(rng.normal(5.0, 1.0, size=40), seed=1)
    large = bootstrap_ci(rng.normal(5.0, 1.0, size=1000), seed=1)
    for ci in (small, large):
        assert ci["low"] < ci["mean"] < ci["high"]
        assert ci["low"] < 5.0 < ci["high"]
    assert small["n"] == 40 and large["n"] == 1000
    width_small, width_large = small["high"] - small["low"], large["high"] - large["low"]
    # normal theory: 2 * 1.96 / sqrt(n) -> 0.62 and 0.124
    assert width_small == pytest.approx(2 * 1.96 / np.sqrt(40), rel=0.25)
    assert width_large < width_small / 3


def test_bootstrap_ci_nan_degenerate_and_json_safe():
    ci = bootstrap_ci([1.0, np.nan, 3.0, np.inf], seed=0)
    assert ci["n"] == 2 and ci["mean"] == 2.0 and 1.0 <= ci["low"] <= ci["high"] <= 3.0
    assert bootstrap_ci([np.nan, 0.4]) == {"mean": 0.4, "low": 0.4, "high": 0.4, "n": 1}
    assert bootstrap_ci([0.5, 0.5, 0.5]) == {"mean": 0.5, "low": 0.5, "high": 0.5, "n": 3}
    empty = bootstrap_ci([np.nan, np.nan])
    assert empty == {"mean": None, "low": None, "high": None, "n": 0}
    json.dumps([ci, empty])
    assert all(type(v) in (float, int) for v in ci.values())
    with pytest.raises(ConfigError):
        bootstrap_ci([1.0, 2.0], confidence=1.5)
