"""The "Can these explanations be trusted?" verdict of every method and head, from the aggregated
trust measures of :mod:`xai.trust.aggregate`.

Checks (thresholds in ``conf/task/dataset.yaml``, ``thresholds``):

* **localisation** (Arras et al. 2022): mean relevance mass accuracy at least ``mass_vs_area`` (2) times
  the mask's mean area share — what a uniform map scores — and its CI above the random-map mean;
* **faithfulness** (Petsiuk et al. 2018): deletion AUC below and insertion AUC above the same
  procedure in random order, both paired differences with a CI excluding 0;
* **randomisation** (Adebayo et al. 2018): after randomising the model top-down the mean Spearman
  with the original map falls below ``max_randomised_spearman`` (0.5);
* **random logit**: the map of another class differs, mean Spearman below ``max_random_logit_spearman``.

A method *passes* when every measured check passes, is *not trustworthy here* when any fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

DEFAULT_THRESHOLDS = {"mass_vs_area": 2.0, "max_randomised_spearman": 0.5, "max_random_logit_spearman": 0.5}


def verdicts(trust: Mapping, methods: Sequence[str], heads: Sequence[str], thresholds: Mapping) -> dict:
    """Per method and head: each check's outcome and a plain verdict."""
    out: dict = {}
    for method in methods:
        out[method] = {}
        for head in heads:
            checks: dict = {}
            loc = trust["localisation"]
            if loc.get("measured") and method in loc["methods"]:
                rma = loc["methods"][method][head]["relevance_mass_accuracy"]
                area = loc["mask_area_share"][head]["mean"]
                random_rma = loc["random"][head]["relevance_mass_accuracy"]["mean"]
                if rma["mean"] is not None and area:
                    ratio = rma["mean"] / area
                    ok = ratio >= thresholds["mass_vs_area"] and (rma["low"] or 0) > (random_rma or 0)
                    checks["localisation"] = {
                        "passed": bool(ok),
                        "detail": (
                            f"relevance mass {rma['mean']:.2f} = {ratio:.1f}× the mask's area share {area:.2f} "
                            f"(needs ≥ {thresholds['mass_vs_area']:g}×)"
                        ),
                    }
            faith = trust["faithfulness"]
            if faith.get("measured") and method in faith["methods"]:
                item = faith["methods"][method][head]
                dl, il = item["deletion_gain"]["low"], item["insertion_gain"]["low"]
                if dl is not None and il is not None:
                    checks["faithfulness"] = {
                        "passed": bool(dl > 0 and il > 0),
                        "detail": (
                            f"deletion AUC {item['deletion_auc']['mean']:.3f} vs random "
                            f"{faith['random'][head]['deletion_auc']['mean']:.3f}; insertion "
                            f"{item['insertion_auc']['mean']:.3f} vs "
                            f"{faith['random'][head]['insertion_auc']['mean']:.3f}"
                        ),
                    }
            rand = trust["randomisation"]
            if rand.get("measured") and method in rand["methods"] and head in rand["methods"][method]:
                item = rand["methods"][method][head]
                final = item["final_mean_spearman"]
                if final is not None:
                    checks["randomisation"] = {
                        "passed": bool(abs(final) < thresholds["max_randomised_spearman"]),
                        "detail": f"Spearman after randomising the model: {final:.2f}",
                    }
                logit = item["random_logit_mean_spearman"]
                if logit is not None:
                    checks["random_logit"] = {
                        "passed": bool(logit < thresholds["max_random_logit_spearman"]),
                        "detail": f"Spearman with another class's map: {logit:.2f}",
                    }
            if not checks:
                verdict = "not measured"
            elif all(c["passed"] for c in checks.values()):
                verdict = "passes every check"
            else:
                failed = [name for name, c in checks.items() if not c["passed"]]
                verdict = "not trustworthy here (fails " + ", ".join(failed) + ")"
            out[method][head] = {"verdict": verdict, "checks": checks}
    return out
