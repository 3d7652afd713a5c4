"""Attention versus occlusion reliance on hand-made arrays: region mass, Spearman rho, AOPC and the sentence."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError, InputDataError
from geomag.axes import SpectrogramAxes
from xai.reliance.agreement import (
    agreement,
    agreement_sentence,
    aopc,
    cumulative_masks,
    region_attention_mass,
    region_perturbation,
    removal_order,
    spearman,
)
from xai.reliance.regions import build_regions

# rows 0-2: 10-100 mHz, rows 3-4: 1-10 mHz, rows 5-6: other; one 3-hour segment; H, D, Z channels
AXES = SpectrogramAxes(layout="channels", components=("H", "D", "Z"),
                       row_frequency_hz=np.array([0.08, 0.03, 0.015, 0.005, 0.002, 0.0007, 0.0003]),
                       row_component=np.full(7, -1), column_time_s=np.array([9000.0, 7000.0, 5400.0, 3000.0, 1000.0]),
                       frequency_range_hz=(0.0002, 0.1), frequency_scale="log", window_s=10800.0)  # fmt: skip
CONFIG = {"band_edges_hz": [0.001, 0.01, 0.1], "segment_hours": 3}


def _regions():
    regions = build_regions(AXES, CONFIG)
    assert [(r.band, r.component) for r in regions.regions][:4] == [
        ("1-10 mHz", "H"), ("1-10 mHz", "D"), ("1-10 mHz", "Z"), ("10-100 mHz", "H"),
    ]  # fmt: skip
    assert len(regions) == 9
    return regions


def _heatmap() -> np.ndarray:
    heatmap = np.zeros((7, 5))
    heatmap[0:3] = 1.0  # 15 cells x 1 in 10-100 mHz
    heatmap[3:5] = 2.0  # 10 cells x 2 in 1-10 mHz
    return heatmap


def test_region_attention_mass_shares_a_cell_between_channels():
    regions = _regions()
    np.testing.assert_allclose(region_attention_mass(_heatmap(), regions), [20 / 3] * 3 + [5.0] * 3 + [0.0] * 3)
    per_channel = np.zeros((7, 5, 3))
    per_channel[3:5, :, 2] = 1.0  # 10 cells of Z in 1-10 mHz
    per_channel[0, 0, 0] = 4.0
    np.testing.assert_allclose(region_attention_mass(per_channel, regions), [0, 0, 10, 4, 0, 0, 0, 0, 0])
    negative = -_heatmap()
    assert region_attention_mass(negative, regions).sum() == 0.0  # negatives are clipped
    with pytest.raises(InputDataError, match="does not lie on the regions' grid"):
        region_attention_mass(np.zeros((5, 7)), regions)


def test_spearman_by_hand():
    assert spearman([3, 2, 1, 0], [30, 20, 10, 0]) == pytest.approx(1.0)
    assert spearman([3, 2, 1, 0], [0, 10, 20, 30]) == pytest.approx(-1.0)
    # ranks (1, 2, 3, 4) vs (2, 1, 4, 3): d^2 sum = 4, rho = 1 - 6 * 4 / (4 * 15) = 0.6
    assert spearman([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(0.6)
    mass = [20 / 3] * 3 + [5.0] * 3 + [0.0] * 3
    assert spearman(mass, [4, 4, 4, 2, 2, 2, 0, 0, 0]) == pytest.approx(1.0)  # ties on both sides
    assert spearman([1, 1, 1], [1, 2, 3]) is None  # constant attention: undefined, not NaN
    with pytest.raises(InputDataError, match="cannot correlate"):
        spearman([1, 2, 3], [1, 2])


def test_cumulative_masks_and_aopc_by_hand():
    regions = _regions()
    order = removal_order([0.0, 5.0, 1.0, 5.0, 0, 0, 0, 0, 0])
    assert order[:3].tolist() == [1, 3, 2]  # stable: ties keep the region order
    masks = cumulative_masks(regions, order, 2)
    assert masks.shape == (2, 7, 5, 3)
    assert np.array_equal(masks[0], regions.regions[1].mask)
    assert np.array_equal(masks[1], regions.regions[1].mask | regions.regions[3].mask)
    assert aopc([3.0, 4.0]) == pytest.approx(7.0 / 3.0)  # (0 + 3 + 4) / 3
    with pytest.raises(ConfigError, match="steps must be an integer in 1..9"):
        cumulative_masks(regions, order, 10)


def _additive_remover(regions, reliance):
    """drop(mask) = sum of each region's reliance times the share of its cells the mask removes."""
    region_masks = regions.masks()
    sizes = region_masks.reshape(len(regions), -1).sum(axis=1)

    def remove(masks: np.ndarray) -> np.ndarray:
        overlap = np.einsum("kijc,rijc->kr", masks.astype(float), region_masks.astype(float))
        return overlap / sizes @ np.asarray(reliance, dtype=float)

    return remove


def test_region_perturbation_rewards_an_attention_that_follows_reliance():
    regions = _regions()
    reliance = np.array([3.0, 1.0, 0, 0, 0, 0, 0, 0, 0])
    faithful = region_perturbation(_additive_remover(regions, reliance), regions, reliance + 0.1, steps=2, n_random=20)
    assert faithful["curve"] == pytest.approx([3.0, 4.0]) and faithful["aopc"] == pytest.approx(7.0 / 3.0)
    assert faithful["aopc_random"] < faithful["aopc"] and faithful["aopc_random_sd"] > 0
    wrong = region_perturbation(_additive_remover(regions, reliance), regions, reliance[::-1], steps=2, n_random=20)
    assert wrong["aopc"] == 0.0 and wrong["aopc_random"] == pytest.approx(faithful["aopc_random"])
    with pytest.raises(InputDataError, match="returned 1 drops"):
        region_perturbation(lambda masks: np.zeros(1), regions, reliance, steps=2, n_random=1)


def test_agreement_and_its_sentence():
    regions = _regions()
    drops = np.array([0.1, 0.2, 2.5, 0.0, 0.3, 0.0, 0.4, 0.0, 0.1])
    result = agreement("gradcam", _heatmap(), drops, regions)
    assert result.attention_share.sum() == pytest.approx(1.0)
    assert result.top_region == {"band": "1-10 mHz", "segment": "0-3 h", "component": "Z", "drop": 2.5,
                                 "attention_share": pytest.approx(20 / 3 / 35)}  # fmt: skip
    assert result.top_attention_region["band"] == "1-10 mHz"
    summary = result.summary()
    assert summary["spearman_rho"] == pytest.approx(spearman(region_attention_mass(_heatmap(), regions), drops))

    def sentence(rho, perturbation=None):
        result.rho, result.perturbation = rho, perturbation
        return agreement_sentence(result)

    text = sentence(-0.12)
    assert text.startswith("Grad-CAM's attention disagrees with occlusion reliance (ρ = −0.12): ")
    assert "Z 1-10 mHz, 0-3 h before the event" in text and "19 % of its mass" in text and text.endswith(".")
    assert "agrees only partly with" in sentence(0.45) and "attention agrees with" in sentence(0.8)
    assert "cannot be compared with" in sentence(None)
    text = sentence(0.8, {"aopc": 1.5, "aopc_random": 0.4, "aopc_random_sd": 0.2})
    assert "lowers the score by 1.5 on average (AOPC), more than a random order (0.4)." in text
    assert "no more than a random order" in sentence(0.1, {"aopc": 0.5, "aopc_random": 0.4, "aopc_random_sd": 0.2})
    with pytest.raises(InputDataError, match="drops must be 9 finite numbers"):
        agreement("saliency", _heatmap(), drops[:3], regions)
