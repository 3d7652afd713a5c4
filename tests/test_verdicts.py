"""Verdicts from intervals (xai.trust.intervals, xai.trust.verdicts), paired differences (xai.trust.paired),
the random-logit test with several draws and the sample budgets."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from core.errors import ConfigError
from xai.metrics.randomisation import random_logit_draws
from xai.trust.budget import apply_budget
from xai.trust.intervals import Rule, combine, decide, interval, samples_needed
from xai.trust.paired import model_pairs, paired_difference
from xai.trust.verdicts import verdicts

OPTIONS = SimpleNamespace(confidence=0.95, bootstrap_resamples=2000, seed=0, min_samples=3)


def _normal(mean: float, sd: float, n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, sd, n)


@pytest.mark.parametrize(
    ("mean", "direction", "outcome"),
    [
        (0.80, "above", "passes"),  # whole interval (about ±0.02) above 0.5
        (0.51, "above", "inconclusive"),  # interval straddles 0.5
        (0.20, "above", "fails"),  # whole interval below 0.5
        (0.20, "below", "passes"),
        (0.80, "below", "fails"),
        (0.49, "below", "inconclusive"),
    ],
)
def test_interval_clearing_straddling_or_missing_the_threshold(mean, direction, outcome):
    ci = interval(_normal(mean, 0.05, 30), OPTIONS)
    assert ci["n"] == 30 and ci["low"] < mean + 0.01 and ci["high"] > mean - 0.01
    decision = decide(ci, Rule(0.5, direction))
    assert decision["outcome"] == outcome
    assert decision["passed"] is {"passes": True, "fails": False, "inconclusive": None}[outcome]
    assert (decision["n_needed"] is not None) == (outcome == "inconclusive")


def test_two_samples_never_decide():
    for values in ([0.9, 0.95], [0.9, 0.9], [0.01, 0.02]):
        ci = interval(values, OPTIONS)
        assert ci["n"] == 2
        for direction in ("above", "below"):
            decision = decide(ci, Rule(0.5, direction, min_samples=3))
            assert decision["outcome"] == "inconclusive" and decision["passed"] is None
            assert "never decided" in decision["reason"]
            assert decision["n_needed"] >= 3
    # the same values three times over are decided
    assert decide(interval([0.9, 0.95, 0.92], OPTIONS), Rule(0.5, "above"))["outcome"] == "passes"
    assert decide(interval([0.9], OPTIONS), Rule(0.5, "above"))["n_needed"] == 3  # no spread yet: at least 3
    assert decide(interval([], OPTIONS), Rule(0.5))["reason"] == "no values"


def test_samples_needed_against_a_hand_computation():
    # half-width towards the threshold 0.60 - 0.45 = 0.15, distance 0.10: 10 * (0.15 / 0.10)^2 = 22.5 -> 23
    ci = {"mean": 0.60, "low": 0.45, "high": 0.80, "n": 10}
    assert samples_needed(ci, 0.5) == 23
    # the other side of the interval counts when the threshold is above the mean: 10 * (0.20 / 0.25)^2 = 6.4 -> 7,
    # but an undecided interval needs more than the 10 samples it has
    assert samples_needed(ci, 0.85) == 11
    assert samples_needed({"mean": 0.5, "low": 0.4, "high": 0.6, "n": 10}, 0.5) is None  # mean on the threshold
    # the normal approximation behind it: a mean's interval half-width is about 1.96 s / sqrt(n); with n_needed
    # samples from the same distribution the half-width shrinks to the distance, within the bootstrap's noise
    values = _normal(0.56, 0.2, 20, seed=3)
    ci = interval(values, OPTIONS)
    needed = samples_needed(ci, 0.5)
    distance = ci["mean"] - 0.5
    assert needed == math.ceil(20 * ((ci["mean"] - ci["low"]) / distance) ** 2)
    expected = (1.96 * values.std(ddof=1) / distance) ** 2
    assert 0.7 * expected < needed < 1.3 * expected


def test_combine_fails_on_any_failure_and_passes_only_on_all():
    passes = {"outcome": "passes", "n": 30, "n_needed": None}
    fails = {"outcome": "fails", "n": 30, "n_needed": None}
    open_ = {"outcome": "inconclusive", "n": 8, "n_needed": 40, "reason": "the interval contains the threshold"}
    assert combine([passes, passes])["outcome"] == "passes"
    assert combine([passes, fails, open_])["outcome"] == "fails"
    both = combine([passes, open_, {**open_, "n_needed": 90}])
    assert both["outcome"] == "inconclusive" and both["n_needed"] == 90 and both["n"] == 8


def test_paired_difference_on_synthetic_pairs():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.5, 40)  # large spread between samples, small within pairs
    better = base + 0.03 + rng.normal(0, 0.01, 40)
    same = base + rng.normal(0, 0.01, 40)
    result = paired_difference(better, base, OPTIONS)
    assert result["outcome"] == "passes" and result["difference"]["n"] == 40
    assert result["difference"]["mean"] == pytest.approx(float(np.mean(better - base)))
    assert result["difference"]["low"] > 0.02
    # the two separate intervals overlap; the paired one does not contain 0
    a, b = interval(better, OPTIONS), interval(base, OPTIONS)
    assert a["low"] < b["high"]
    assert paired_difference(base, better, OPTIONS)["outcome"] == "fails"
    assert paired_difference(better, base, OPTIONS, higher_is_better=False)["outcome"] == "fails"
    assert paired_difference(same, base, OPTIONS)["outcome"] == "inconclusive"
    # pairs with a missing value are left out; two pairs never decide
    gaps = paired_difference([0.9, None, 0.8, np.nan], [0.1, 0.2, 0.1, 0.3], OPTIONS)
    assert gaps["difference"]["n"] == 2 and gaps["outcome"] == "inconclusive"


def test_model_pairs_match_samples_by_name():
    rng = np.random.default_rng(1)
    names = [f"s{i}" for i in range(30)]
    mass = rng.uniform(0.1, 0.4, 30)
    one = {"samples": names, "magnitude": {"relevance_mass_accuracy": {"gradcam": list(mass + 0.05)}}}
    # the other model saw the same windows in reverse order
    two = {"samples": names[::-1], "magnitude": {"relevance_mass_accuracy": {"gradcam": list(mass[::-1])}}}
    rows = model_pairs({"b_model": two, "a_model": one}, OPTIONS)["magnitude"]["relevance_mass_accuracy"]
    assert len(rows) == 1 and rows[0]["a"] == "a_model" and rows[0]["method"] == "gradcam"
    assert rows[0]["difference"]["mean"] == pytest.approx(0.05) and rows[0]["outcome"] == "passes"


def _trust(n_faith: int = 30, n_rand: int = 8, faithfulness: bool = True) -> dict:
    """A trust dict as xai.trust.aggregate writes it, for one method and head."""

    def ci(mean, half, n):
        return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}

    trust = {
        "localisation": {
            "measured": True,
            "methods": {
                "gradcam": {
                    "magnitude": {
                        "relevance_mass_accuracy": ci(0.27, 0.02, 200),
                        "excess_over_area": ci(0.05, 0.02, 200),
                        "gain_over_random": ci(0.16, 0.02, 200),
                    }
                }
            },
            "mask_area_share": {"magnitude": ci(0.11, 0.0, 200)},
        },
        "faithfulness": {"measured": False, "reason": "faithfulness_samples is 0"},
        "randomisation": {
            "measured": True,
            "methods": {
                "gradcam": {
                    "magnitude": {
                        "final_spearman": ci(0.2, 0.1, n_rand),
                        "random_logit_spearman": ci(0.3, 0.1, n_rand),
                        "random_logit_draws": 3,
                    }
                }
            },
        },
    }
    if faithfulness:
        trust["faithfulness"] = {
            "measured": True,
            "n": n_faith,
            "methods": {
                "gradcam": {
                    "magnitude": {
                        "deletion_auc": ci(0.35, 0.05, n_faith),
                        "insertion_auc": ci(0.79, 0.05, n_faith),
                        "deletion_gain": ci(0.29, 0.05, n_faith),
                        "insertion_gain": ci(0.16, 0.05, n_faith),
                    }
                }
            },
            "random": {
                "magnitude": {"deletion_auc": ci(0.64, 0.05, n_faith), "insertion_auc": ci(0.63, 0.05, n_faith)}
            },
        }
    return trust


def test_verdict_names_the_checks_that_ran_and_those_that_did_not():
    thresholds = {"mass_vs_area": 2.0}
    full = verdicts(_trust(), ["gradcam"], ["magnitude"], thresholds)["gradcam"]["magnitude"]
    assert full["verdict"] == "passes every check" and full["outcome"] == "passes"
    assert full["ran"] == ["localisation", "faithfulness", "randomisation", "random_logit"] and not full["not_run"]

    partial = verdicts(_trust(faithfulness=False), ["gradcam"], ["magnitude"], thresholds)["gradcam"]["magnitude"]
    assert partial["verdict"] != "passes every check"
    assert partial["not_run"] == {"faithfulness": "faithfulness_samples is 0"}
    assert "not run: faithfulness" in partial["verdict"] and "localisation" in partial["verdict"]

    # two randomisation samples: never decided, whatever the values
    two = verdicts(_trust(n_rand=2), ["gradcam"], ["magnitude"], thresholds)["gradcam"]["magnitude"]
    assert two["outcome"] == "inconclusive" and two["checks"]["randomisation"]["outcome"] == "inconclusive"
    assert two["verdict"].startswith("inconclusive (randomisation: ≈ ")

    trust = _trust()
    trust["randomisation"]["methods"]["gradcam"]["magnitude"]["random_logit_spearman"] = {
        "mean": 0.8,
        "low": 0.7,
        "high": 0.9,
        "n": 8,
    }
    failed = verdicts(trust, ["gradcam"], ["magnitude"], thresholds)["gradcam"]["magnitude"]
    assert failed["outcome"] == "fails" and failed["verdict"] == "not trustworthy here (fails random_logit)"
    # a strongly inverted map after randomisation still depends on the weights: fails on the negative side
    trust["randomisation"]["methods"]["gradcam"]["magnitude"]["final_spearman"] = {
        "mean": -0.8,
        "low": -0.9,
        "high": -0.7,
        "n": 8,
    }
    inverted = verdicts(trust, ["gradcam"], ["magnitude"], thresholds)["gradcam"]["magnitude"]
    assert inverted["checks"]["randomisation"]["outcome"] == "fails"
    nothing = {"measured": False, "reason": "x"}
    empty = verdicts(
        {"localisation": nothing, "faithfulness": nothing, "randomisation": nothing}, ["gradcam"], ["magnitude"], {}
    )
    assert empty["gradcam"]["magnitude"]["outcome"] == "not measured"


def test_random_logit_with_several_draws():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(5, 6, 6, 1))
    classes = np.array([0, 1, 2, 3, 1])
    seen = []

    def explain(x, c):
        seen.append(np.array(c))
        return (
            x[..., 0] * (1 + np.asarray(c)[:, None, None])
            + rng.normal(0, 0.5, x.shape[:3]) * np.asarray(c)[:, None, None]
        )

    rho = random_logit_draws(explain, images, classes, n_classes=4, draws=3, seed=0)
    assert rho.shape == (5, 3)
    others = np.stack(seen[1:], axis=1)  # (B, draws): every other class once per sample
    for row, own in zip(others, classes):
        assert sorted(row.tolist()) == sorted(set(range(4)) - {int(own)})
    capped = random_logit_draws(lambda x, c: x[..., 0], images, classes % 3, n_classes=3, draws=5)
    np.testing.assert_allclose(capped, 1.0)  # a class-blind map: ρ = 1 with every other class
    assert capped.shape == (5, 2)
    with pytest.raises(ConfigError):
        random_logit_draws(explain, images, classes, n_classes=4, draws=0)


def test_budget_fills_unset_counts_and_explicit_counts_win():
    budgets = {"quick": {"faithfulness_samples": 16, "randomisation_samples": 6}}
    options, info = apply_budget(
        {"budget": "quick", "budgets": budgets, "faithfulness_samples": None, "randomisation_samples": None}
    )
    assert options == {"faithfulness_samples": 16, "randomisation_samples": 6}
    assert info == {"name": "quick", "settings": options, "set_explicitly": []}
    options, info = apply_budget(
        {"budget": "quick", "budgets": budgets, "faithfulness_samples": 0, "randomisation_samples": None}
    )
    assert options["faithfulness_samples"] == 0 and info["set_explicitly"] == ["faithfulness_samples"]
    with pytest.raises(ConfigError, match="task.budget"):
        apply_budget({"budget": "huge", "budgets": budgets, "faithfulness_samples": None})
    with pytest.raises(ConfigError, match="task.faithfulness_samples"):
        apply_budget({"budget": None, "faithfulness_samples": None})


def _reliance(mean: float, low: float, high: float, n: int = 12) -> dict:
    rho = {"mean": mean, "low": low, "high": high, "n": n}
    return {"occlusion": {"magnitude": {"agreement": {"gradcam": {"spearman_rho": rho}}}}}


@pytest.mark.parametrize(
    ("interval", "outcome", "words"),
    [
        ((0.5, 0.4, 0.6), "passes", "agrees with"),
        ((0.1, 0.0, 0.2), "fails", "does not agree with"),
        ((0.3, 0.1, 0.5), "inconclusive", "inconclusive against"),
    ],
)
def test_reliance_agreement_is_a_line_beside_the_verdict(interval, outcome, words):
    from xai.trust.report import check_lines

    thresholds = {"mass_vs_area": 2.0}
    entry = verdicts(_trust(), ["gradcam", "occlusion"], ["magnitude"], thresholds, reliance=_reliance(*interval))
    verdict = entry["gradcam"]["magnitude"]
    assert verdict["reliance"]["outcome"] == outcome and verdict["reliance"]["against"] == "occlusion"
    assert verdict["verdict"] == "passes every check"  # the agreement does not enter the verdict
    assert "reliance" not in entry["occlusion"]["magnitude"]  # occlusion is not compared with itself
    lines = check_lines(verdict, "Grad-CAM")
    assert len(lines) == 2 and f"**{words}** occlusion's reliance" in lines[1] and "needs > 0.3" in lines[1]
    without = verdicts(_trust(), ["gradcam"], ["magnitude"], thresholds)["gradcam"]["magnitude"]
    assert "reliance" not in without and len(check_lines(without, "Grad-CAM")) == 1
