"""The "Can these explanations be trusted?" verdict of every method and head, each check decided from
a bootstrap interval over samples (:mod:`xai.trust.intervals`), never from a point.

Checks (thresholds in ``conf/task/dataset.yaml``, ``thresholds``):

* **localisation** (Arras et al. 2022): per window with a mask, relevance mass minus ``mass_vs_area`` (2)
  times the mask's area share (what a uniform map scores), and relevance mass minus a random map's on the
  same window; both intervals above 0;
* **faithfulness** (Petsiuk et al. 2018): deletion AUC below and insertion AUC above the same procedure
  in random cell order, paired per sample; both gains' intervals above 0;
* **randomisation** (Adebayo et al. 2018): after randomising the model top-down, the interval of the mean
  Spearman ρ with the original map lies below ``max_randomised_spearman`` (0.5) (above −0.5 when the
  mean is negative: an inverted map still depends on the weights);
* **random logit** (Adebayo et al. 2018; Sixt et al. 2020): the map of other classes differs: the interval
  of the mean ρ (per sample, averaged over its other classes) lies below ``max_random_logit_spearman``.

Beside the verdict, when occlusion ran, **reliance agreement** (Samek et al. 2017; Buck et al. 2026): the
interval of the mean Spearman ρ between the method's attention and occlusion's reliance over the regions
lies above ``min_reliance_spearman`` (0.3). It is reported on its own line and does not enter the verdict:
a map may be faithful to the gradient and still point elsewhere than what the prediction depends on.

A check *passes* when its whole interval clears the threshold, *fails* when the whole interval lies on
the wrong side, and is *inconclusive* otherwise, with the samples that would likely decide it; a check
on fewer than ``min_samples`` samples is never decided. The verdict names the checks that ran, those
that did not and why: it reads "passes every check" only when all four ran and passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xai.trust.intervals import DEFAULT_MIN_SAMPLES, Rule, combine, decide

DEFAULT_THRESHOLDS = {
    "mass_vs_area": 2.0,
    "max_randomised_spearman": 0.5,
    "max_random_logit_spearman": 0.5,
    "min_reliance_spearman": 0.3,
}
CHECKS = ("localisation", "faithfulness", "randomisation", "random_logit")


def _ci_text(ci: Mapping, fmt: str = ".2f") -> str:
    if ci.get("mean") is None:
        return "–"
    if ci.get("low") is None:
        return f"{ci['mean']:{fmt}}"
    return f"{ci['mean']:{fmt}} [{ci['low']:{fmt}}, {ci['high']:{fmt}}]"


def _check(decision: Mapping, detail: str, intervals: Mapping) -> dict:
    return {
        "outcome": decision["outcome"],
        "passed": decision["passed"],
        "n": decision["n"],
        "n_needed": decision["n_needed"],
        "reason": decision["reason"],
        "detail": detail,
        "intervals": dict(intervals),
    }


def _localisation(loc: Mapping, method: str, head: str, thresholds: Mapping, min_samples: int) -> dict | None:
    item = loc["methods"][method][head]
    excess, gain = item.get("excess_over_area"), item.get("gain_over_random")
    if not excess or excess.get("mean") is None or not gain:
        return None
    rma, area = item["relevance_mass_accuracy"], loc["mask_area_share"][head]["mean"]
    decision = combine([decide(excess, Rule(0.0, "above", min_samples)), decide(gain, Rule(0.0, "above", min_samples))])
    ratio = f" = {rma['mean'] / area:.1f}×" if area else ""
    detail = (
        f"relevance mass {_ci_text(rma)}{ratio} the mask's area share {area:.2f} (needs ≥ "
        f"{thresholds['mass_vs_area']:g}×); mass − {thresholds['mass_vs_area']:g}×area {_ci_text(excess, '.3f')}, "
        f"mass − random map's {_ci_text(gain, '.3f')}"
    )
    return _check(decision, detail, {"excess_over_area": excess, "gain_over_random": gain})


def _faithfulness(faith: Mapping, method: str, head: str, min_samples: int) -> dict | None:
    item = faith["methods"][method][head]
    deletion, insertion = item["deletion_gain"], item["insertion_gain"]
    if deletion.get("mean") is None or insertion.get("mean") is None:
        return None
    rule = Rule(0.0, "above", min_samples)
    decision = combine([decide(deletion, rule), decide(insertion, rule)])
    random = faith["random"][head]
    detail = (
        f"deletion AUC {item['deletion_auc']['mean']:.3f} vs random {random['deletion_auc']['mean']:.3f} "
        f"(gain {_ci_text(deletion, '.3f')}); insertion {item['insertion_auc']['mean']:.3f} vs "
        f"{random['insertion_auc']['mean']:.3f} (gain {_ci_text(insertion, '.3f')})"
    )
    return _check(decision, detail, {"deletion_gain": deletion, "insertion_gain": insertion})


def _spearman_check(ci: Mapping | None, limit: float, min_samples: int, what: str, two_sided: bool) -> dict | None:
    if not ci or ci.get("mean") is None:
        return None
    if two_sided and ci["mean"] < 0:
        decision = decide(ci, Rule(-limit, "above", min_samples))
        bound = f"> {-limit:g}"
    else:
        decision = decide(ci, Rule(limit, "below", min_samples))
        bound = f"< {limit:g}"
    return _check(decision, f"{what}: {_ci_text(ci)} (needs {bound})", {"spearman": ci})


def reliance_check(reliance: Mapping | None, method: str, head: str, limit: float, min_samples: int) -> dict | None:
    """The reliance-agreement check of ``method``'s attention against the first occlusion-style method's
    reliance on ``head`` (``reliance``: ``dataset_results.json``'s ``reliance``); ``None`` when not measured."""
    for occluder, per_head in (reliance or {}).items():
        item = ((per_head.get(head) or {}).get("agreement") or {}).get(method)
        if occluder == method or not item:
            continue
        ci = item.get("spearman_rho") or {}
        if ci.get("mean") is None:
            return None
        decision = decide(ci, Rule(limit, "above", min_samples))
        detail = f"Spearman of attention with {occluder} reliance over regions: {_ci_text(ci)} (needs > {limit:g})"
        return {**_check(decision, detail, {"spearman": ci}), "against": occluder}
    return None


def _measured_checks(trust: Mapping, method: str, head: str, thresholds: Mapping, min_samples: int):
    """``(checks, not_run)``: the decided checks and, for those that did not run, the reason."""
    checks: dict = {}
    not_run: dict = {}
    loc, faith, rand = trust["localisation"], trust["faithfulness"], trust["randomisation"]
    if not loc.get("measured"):
        not_run["localisation"] = loc.get("reason", "not measured")
    elif method in loc["methods"] and (c := _localisation(loc, method, head, thresholds, min_samples)):
        checks["localisation"] = c
    if not faith.get("measured"):
        not_run["faithfulness"] = faith.get("reason", "not measured")
    elif method in faith["methods"] and (c := _faithfulness(faith, method, head, min_samples)):
        checks["faithfulness"] = c
    if not rand.get("measured"):
        not_run["randomisation"] = not_run["random_logit"] = rand.get("reason", "not measured")
    elif method not in rand.get("methods", {}) or head not in rand["methods"][method]:
        not_run["randomisation"] = not_run["random_logit"] = "method not in task.randomisation_methods"
    else:
        item = rand["methods"][method][head]
        final = _spearman_check(
            item.get("final_spearman"),
            thresholds["max_randomised_spearman"],
            min_samples,
            "Spearman after randomising the model",
            True,
        )
        logit = _spearman_check(
            item.get("random_logit_spearman"),
            thresholds["max_random_logit_spearman"],
            min_samples,
            f"Spearman with another class's map ({item.get('random_logit_draws', 1)} per sample)",
            False,
        )
        checks.update({k: v for k, v in (("randomisation", final), ("random_logit", logit)) if v})
    for name in CHECKS:
        if name not in checks and name not in not_run:
            not_run[name] = "no values"
    return checks, not_run


def verdict_text(checks: Mapping, not_run: Mapping) -> tuple[str, str]:
    """``(outcome, verdict)`` from decided checks: fails if any check fails, passes if all ran and pass."""
    by = {o: [n for n, c in checks.items() if c["outcome"] == o] for o in ("passes", "fails", "inconclusive")}
    missing = f"not run: {', '.join(not_run)}" if not_run else ""
    if not checks:
        return "not measured", "not measured" + (f" ({missing})" if missing else "")
    if by["fails"]:
        extra = [f"inconclusive: {', '.join(by['inconclusive'])}"] if by["inconclusive"] else []
        extra += [missing] if missing else []
        return "fails", "not trustworthy here (fails " + "; ".join([", ".join(by["fails"]), *extra]) + ")"
    if by["inconclusive"]:
        parts = []
        for name in by["inconclusive"]:
            needed = checks[name]["n_needed"]
            parts.append(f"{name}: ≈ {needed} samples would likely decide it" if needed else name)
        extra = [f"passes {', '.join(by['passes'])}"] if by["passes"] else []
        extra += [missing] if missing else []
        return "inconclusive", "inconclusive (" + "; ".join([*parts, *extra]) + ")"
    if not_run:
        return "passes", f"passes the checks that ran ({', '.join(by['passes'])}); {missing}"
    return "passes", "passes every check"


def verdicts(
    trust: Mapping,
    methods: Sequence[str],
    heads: Sequence[str],
    thresholds: Mapping,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    reliance: Mapping | None = None,
) -> dict:
    """Per method and head: ``{'verdict', 'outcome', 'checks': {name: decided check}, 'ran', 'not_run'}``
    and, when occlusion ran (``reliance``), ``'reliance'``: the reliance-agreement check beside the verdict."""
    thresholds = {**DEFAULT_THRESHOLDS, **dict(thresholds)}
    out: dict = {}
    for method in methods:
        out[method] = {}
        for head in heads:
            checks, not_run = _measured_checks(trust, method, head, thresholds, int(min_samples))
            outcome, verdict = verdict_text(checks, not_run)
            out[method][head] = {
                "verdict": verdict,
                "outcome": outcome,
                "checks": checks,
                "ran": [n for n in CHECKS if n in checks],
                "not_run": not_run,
            }
            agreement = reliance_check(reliance, method, head, thresholds["min_reliance_spearman"], min_samples)
            if agreement is not None:
                out[method][head]["reliance"] = agreement
    return out
