"""Shortcut detection on the synthetic benchmark: does a model exploit a planted cue, and do the maps show it?

A variant of the demo data set plants a spurious cue correlated with the labels: a narrow-band
line (default 30 mHz) present only in Normal windows, mimicking Normal samples drawn from quiet
days with a station artefact. A model trained on it can learn "line => Normal" instead of the
precursor. This module shows whether it did, with counterfactual copies of fresh samples (same
seed, so identical apart from the cue: cue as trained, cue removed, cue in every window), and
whether the explanations reveal it: the share of relevance on the cue's rows (relevance mass
accuracy against a cue mask, Arras et al. 2022) next to the rows' area share. The same numbers
for a model trained without the cue are the control (Geirhos et al. 2020, "Shortcut learning in
deep neural networks").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from core.errors import ConfigError
from core.progress import progress
from geomag.axes import SpectrogramAxes
from xai.explainers.base import to_grid
from xai.pipeline import batches

log = logging.getLogger(__name__)

VARIANTS = ("as_trained", "cue_removed", "cue_everywhere")
MASS_VS_AREA = 2.0  # cue mass / cue area share
MASS_VS_CONTROL = 1.5  # cue mass / cue mass of the model trained without the cue


def cue_mask(axes: SpectrogramAxes, frequency_hz: float, relative_half_width: float = 0.1) -> np.ndarray:
    """Rows within ``frequency_hz * (1 ± relative_half_width)`` at every time: the cue's cells."""
    rows = axes.band_rows(frequency_hz * (1 - relative_half_width), frequency_hz * (1 + relative_half_width))
    if not rows.any():
        raise ConfigError(f"shortcut frequency {frequency_hz * 1e3:g} mHz lies outside the spectrogram's rows")
    return np.repeat(rows[:, None], axes.shape[1], axis=1)


def variant_generators(generator: Mapping, classes: Sequence[str], seed: int, n_samples: int) -> dict[str, dict]:
    """Generator configs of the three counterfactual evaluation sets (same seed: same windows)."""
    if generator.get("shortcut_frequency_hz") is None:
        raise ConfigError("data.generator.shortcut_frequency_hz is not set: use data=demo_shortcut")
    base = {**generator, "seed": int(seed), "n_samples": int(n_samples)}
    return {
        "as_trained": dict(base),
        "cue_removed": {**base, "shortcut_frequency_hz": None},
        "cue_everywhere": {**base, "shortcut_classes": tuple(classes)},
    }


def prediction_effects(bundle: Any, source: Any, records: Sequence, normal: str = "Normal") -> dict:
    """Magnitude accuracy, Normal recall and the share of precursor windows called Normal."""
    grids = np.stack([source.load(r).image for r in records]).astype(np.float32)
    probs = bundle.predict_probabilities(bundle.prepare(grids))["magnitude"]
    classes = bundle.classes("magnitude")
    predicted = np.array([classes[i] for i in probs.argmax(axis=1)])
    truth = np.array([r.magnitude_class for r in records])
    is_normal = truth == normal
    return {
        "n": len(records),
        "magnitude_accuracy": float(np.mean(predicted == truth)),
        "normal_recall": float(np.mean(predicted[is_normal] == normal)) if is_normal.any() else None,
        "precursor_called_normal": float(np.mean(predicted[~is_normal] == normal)) if (~is_normal).any() else None,
    }


def explanation_effects(
    bundle: Any,
    explainers: Mapping[str, Any],
    source: Any,
    records: Sequence,
    frequency_hz: float,
    batch_size: int = 16,
    normal: str = "Normal",
) -> dict:
    """Per method (magnitude head, predicted class): relevance mass on the cue rows for Normal
    windows and on the planted precursor for the others, with the area shares for reference."""
    from xai.metrics.localisation import relevance_mass_accuracy

    first = source.load(records[0])
    for explainer in explainers.values():  # occlusion cuts the grid into its physical regions
        if hasattr(explainer, "use_axes"):
            explainer.use_axes(first.axes)
    cue = cue_mask(first.axes, frequency_hz)
    out: dict = {"cue_area_share": float(cue.mean()), "cue_rows_hz": _rows_hz(first.axes, cue)}
    cue_mass: dict[str, list] = {m: [] for m in explainers}
    precursor_mass: dict[str, list] = {m: [] for m in explainers}
    precursor_area: list[float] = []
    spans = list(batches(len(records), int(batch_size)))
    for begin, end in progress(spans, "shortcut study: explaining", unit="batch", logger=log):
        batch = records[begin:end]
        grids = np.stack([source.load(r).image for r in batch]).astype(np.float32)
        inputs = bundle.prepare(grids)
        normal_rows = np.array([r.magnitude_class == normal for r in batch])
        masks = np.stack([_mask_or_empty(source.mask(r), cue.shape) for r in batch])
        precursor_area.extend(masks[~normal_rows].mean(axis=(1, 2)).tolist())
        for method, explainer in explainers.items():
            maps = to_grid(explainer(inputs, head="magnitude", class_indices=None).maps, grids.shape[1:3])
            cue_masks = np.broadcast_to(cue, maps.shape)
            if normal_rows.any():  # a batch may hold no Normal window, or nothing else
                cue_mass[method].extend(relevance_mass_accuracy(maps[normal_rows], cue_masks[normal_rows]).tolist())
            if (~normal_rows).any():
                precursor_mass[method].extend(relevance_mass_accuracy(maps[~normal_rows], masks[~normal_rows]).tolist())
    out["precursor_area_share"] = _mean(precursor_area)
    out["methods"] = {
        m: {
            "cue_mass_normal": _mean(cue_mass[m]),
            "precursor_mass_other": _mean(precursor_mass[m]),
            "n_normal": int(np.isfinite(cue_mass[m]).sum()),
            "n_other": int(np.isfinite(precursor_mass[m]).sum()),
        }
        for m in explainers
    }
    return out


def _mask_or_empty(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """The record's precursor mask (read once), or an empty one for windows without a precursor."""
    return np.zeros(shape, bool) if mask is None else mask


def _mean(values: Sequence[float]) -> float | None:
    array = np.asarray(values, dtype=float)
    array = array[np.isfinite(array)]
    return float(array.mean()) if array.size else None


def _rows_hz(axes: SpectrogramAxes, mask: np.ndarray) -> list[float]:
    rows = np.flatnonzero(mask[:, 0])
    freqs = axes.row_frequency_hz[rows]
    return [float(freqs.min()), float(freqs.max())]


def verdict(results: Mapping) -> list[str]:
    """Plain-language conclusions from the study's numbers (the ``shortcut_results.json`` of ``task=shortcut``)."""
    lines = []
    sc = results["models"].get("shortcut")
    if not sc:
        return lines
    p = sc["predictions"]
    removed, everywhere = p["cue_removed"], p["cue_everywhere"]
    trained = p["as_trained"]
    exploits = (trained["normal_recall"] or 0) - (removed["normal_recall"] or 0) >= 0.3 or (
        everywhere["precursor_called_normal"] or 0
    ) - (trained["precursor_called_normal"] or 0) >= 0.3
    lines.append(
        f"The model trained with the cue {'exploits' if exploits else 'does not measurably exploit'} it: Normal "
        f"recall {_pct(trained['normal_recall'])} with the cue, {_pct(removed['normal_recall'])} with it removed; "
        f"precursor windows called Normal {_pct(trained['precursor_called_normal'])} → "
        f"{_pct(everywhere['precursor_called_normal'])} when every window carries the cue."
    )
    explained = sc["explanations"]
    area = explained["cue_area_share"]
    control = results["models"].get("clean", {}).get("explanations", {}).get("methods", {})
    for method, item in explained["methods"].items():
        mass = item["cue_mass_normal"]
        if mass is None:
            continue
        ratio = mass / area if area else float("nan")
        ctrl = control.get(method, {}).get("cue_mass_normal")
        vs_control = mass / ctrl if ctrl else float("inf")
        lines.append(
            f"{method}: {mass:.2f} of the relevance of Normal windows lies on the cue rows ({ratio:.1f}× their "
            f"area share {area:.3f}"
            + (f"; model trained without the cue: {ctrl:.2f}, {vs_control:.1f}×" if ctrl else "")
            + f") — {_explanation_verdict(ratio, vs_control)}."
        )
    return lines


def _explanation_verdict(vs_area: float, vs_control: float) -> str:
    """A method reveals the shortcut only if its cue mass stands out against the area share
    (``MASS_VS_AREA``) *and* against the same map of the model trained without the cue
    (``MASS_VS_CONTROL``): a method drawn to bright lines whatever the model uses fails the second."""
    if vs_area >= MASS_VS_AREA and vs_control >= MASS_VS_CONTROL:
        return "the explanation points at the shortcut"
    if vs_control >= MASS_VS_CONTROL:
        return "the explanation shifts towards the cue compared with the control model, but too little to see"
    if vs_area >= MASS_VS_AREA:
        return (
            "the map favours the cue rows, but as much for the model that never saw the cue: "
            "it does not reveal the shortcut"
        )
    return "the explanation does not reveal the shortcut"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def report(results: Mapping) -> str:
    lines = [
        "# Shortcut detection",
        "",
        f"Cue: a {results['frequency_hz'] * 1e3:g} mHz line of {results['rms_nT']:g} nT RMS in every component "
        f"of Normal windows only. Evaluation: {results['n_samples']} fresh samples (seed {results['seed']}), "
        "each in three counterfactual copies.",
        "",
    ]
    lines.append("| model | variant | magnitude accuracy | Normal recall | precursor windows called Normal |")
    lines.append("|---|---|---|---|---|")
    for name, model in results["models"].items():
        for variant in VARIANTS:
            p = model["predictions"][variant]
            lines.append(
                f"| {name} | {variant.replace('_', ' ')} | {_pct(p['magnitude_accuracy'])} | "
                f"{_pct(p['normal_recall'])} | {_pct(p['precursor_called_normal'])} |"
            )
    lines.append("")
    lines.append(
        "| model | method | relevance on cue rows (Normal windows) | cue area share | "
        "relevance on precursor (other windows) | precursor area share |"
    )
    lines.append("|---|---|---|---|---|---|")
    for name, model in results["models"].items():
        e = model["explanations"]
        for method, item in e["methods"].items():
            lines.append(
                f"| {name} | {method} | {_fmt(item['cue_mass_normal'])} | {e['cue_area_share']:.3f} | "
                f"{_fmt(item['precursor_mass_other'])} | {_fmt(e['precursor_area_share'])} |"
            )
    lines.append("")
    lines.extend(f"- {line}" for line in verdict(results))
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
