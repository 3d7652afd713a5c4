"""The thresholds behind the comparison report's wording, stored under ``"rules"`` in ``comparison.json``.

* **Band claims**: "attention concentrates in band B" only when the mean enrichment (mass share ÷
  area share) is ≥ 1.5; "gets less than its area share" when ≤ 1/1.5; otherwise the report says
  that the band is not preferred. The enrichment is always printed beside the claim.
* **Concentration**: model A is "more concentrated" than B only when its mean normalised entropy
  is lower by ≥ 0.01 *and* its top-10 % mass share is higher by ≥ 0.01 ("more distributed" for
  the reverse); when both differences are < 0.01 they are "similarly concentrated"; otherwise
  the two measures disagree and the report says so.
* **Finer**: only from the native map resolution (hours and frequency decades per native cell).
* **Similarity**: Spearman ρ is labelled negligible (|ρ| < 0.2), weak (< 0.4), moderate (< 0.7)
  or strong (≥ 0.7); top-10 % IoU is printed next to its chance level 0.1/1.9 ≈ 0.053.
* Class agreement is by class *name* (class order differs between models). Confidence spread is
  the population standard deviation over the samples.
"""

from __future__ import annotations

from xai.similarity import CHANCE_TOP10_IOU

# Floats in comparison.json are rounded to this many decimals (same numbers -> same bytes).
DECIMALS = 6

# The method drawn in the comparison figures when every model has it.
PREFERRED_METHOD = "gradcam"

RULES = {
    "enrichment_concentrates": 1.5,
    "enrichment_depleted": round(1 / 1.5, DECIMALS),
    "concentration_min_difference": 0.01,
    "spearman_labels": {"negligible": 0.0, "weak": 0.2, "moderate": 0.4, "strong": 0.7},
    "top_fraction": 0.10,
    "top_iou_chance": round(CHANCE_TOP10_IOU, DECIMALS),
    "confidence_std": "population (ddof=0)",
    "agreement": "by class name",
}
