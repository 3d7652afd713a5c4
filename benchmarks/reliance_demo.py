"""Does occlusion reliance find what the demo model uses? The acceptance numbers of physical occlusion.

Run ``python -m benchmarks.reliance_demo --model efficientnet --n 120 --out /tmp/notes/reliance.json``.
On fresh demo windows (a new generator seed, never trained on; the cached demo model of
``--cache``, trained once if missing), every window is explained for its **true** class of both
heads with Grad-CAM, Saliency, SmoothGrad and occlusion (``xai=reliance`` regions: 5 bands x 6
hours x H/D/Z, median reference) through the same pipeline as ``python main.py``. Reported, with
95 % bootstrap CIs over windows:

* precursor: on correctly classified precursor windows, the band x hour region (drops summed over
  H, D, Z) with the largest drop lies in the planted precursor (>= half of its cells inside the
  ground-truth mask; ``any`` overlap also given): goal >= 80 %;
* Pc3: removing the whole 22-100 mHz band changes the true-class probability by < 0.05 (median
  of the absolute change);
* azimuth: on correctly classified N/S windows removing H lowers the azimuth logit more than
  removing D, on E/W windows the reverse: goal >= 80 % each;
* agreement: mean Spearman rho (regions) of each gradient method's attention with the drops.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CONF = Path(__file__).resolve().parents[1] / "conf"
PC3_BAND = "22-100 mHz"
GOAL_RATE, GOAL_PC3 = 0.8, 0.05


def _compose(model: str, seed: int, cache: Path, overrides: Sequence[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            "config",
            overrides=[f"model={model}", f"seed={seed}", f"paths.cache_dir={cache}", "xai=reliance", *overrides],
        )


def _setup(args: argparse.Namespace):
    """The demo model bundle, the fresh-window source and the explainers."""
    import hydra
    from omegaconf import OmegaConf

    from geomag.sources import DemoDataSource
    from models.loading import load_model_bundle_from_config
    from models.training import ensure_demo_model
    from xai.explainers import build_explainers

    cfg = _compose(args.model, args.seed, args.cache, args.override)
    source = hydra.utils.instantiate(cfg.data)
    model_dir = ensure_demo_model(cfg.model, source, args.cache, int(cfg.seed))
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    bundle = load_model_bundle_from_config(
        model_cfg, file=model_dir / "model.keras", class_mappings=model_dir / "class_mappings.json"
    )
    generator = {
        **OmegaConf.to_container(cfg.data.generator, resolve=True),
        "n_samples": args.n,
        "seed": args.data_seed,
    }
    fresh = DemoDataSource(args.cache, generator=generator, spectrogram=OmegaConf.to_container(cfg.spectrogram))
    reliance = cfg.xai.methods
    smoothgrad = _compose(args.model, args.seed, args.cache, ["xai=default"]).xai.methods.smoothgrad
    smoothgrad.smooth_samples = args.smooth_samples
    methods = {"gradcam": reliance.gradcam, "saliency": reliance.saliency, "smoothgrad": smoothgrad,
               "occlusion": reliance.occlusion}  # fmt: skip
    return bundle, fresh, build_explainers(methods, bundle), model_dir


def _window_rows(result, source, axes, regions_cells) -> list[dict]:
    """Per window of a batch: what the acceptance checks need."""
    from xai.reliance.batch import top_band_segment

    rows = []
    for i, record in enumerate(result.batch.records):
        mag = result.prediction("magnitude", i)
        azi = result.prediction("azimuth", i)
        sample = result.reliance["occlusion"]["magnitude"][i]
        az_sample = result.reliance["occlusion"]["azimuth"][i]
        entry = result.reliance_entry("occlusion", "magnitude", i, perturb=False)
        az_entry = result.reliance_entry("occlusion", "azimuth", i, perturb=False)
        mask = source.mask(record)
        top = entry["top_band_segment"]
        inside = _inside(mask, regions_cells[(top["band"], top["segment"])])
        top_p = top_band_segment(sample, "probability")
        inside_p = _inside(mask, regions_cells[(top_p["band"], top_p["segment"])])
        rows.append({
            "sample": record.name, "true_magnitude": mag["true"], "true_azimuth": azi["true"],
            "magnitude_correct": mag["correct"], "azimuth_correct": azi["correct"],
            "top_band_segment": top, "top_inside_share": inside,
            "top_band_segment_probability": top_p, "top_inside_share_probability": inside_p,
            "pc3_drop_probability": entry["marginals"]["band"].get(PC3_BAND, {}).get("drop_probability"),
            "azimuth_drop_logit": {c: v["drop_logit"] for c, v in az_entry["marginals"]["component"].items()},
            "rho": {h: {m: a["spearman_rho"] for m, a in e["agreement"].items()}
                    for h, e in (("magnitude", entry), ("azimuth", az_entry))},
            "unit": (sample.unit, az_sample.unit),
        })  # fmt: skip
    return rows


def _inside(mask: np.ndarray | None, cells: np.ndarray) -> float | None:
    """Share of a region's cells inside the planted precursor (``None`` without a precursor)."""
    return float(mask[cells].mean()) if mask is not None else None


def _cells(regions) -> dict:
    """(band, segment) -> boolean (rows, cols) cells of that band x hour."""
    out: dict = {}
    for region in regions.regions:
        key = (region.band, region.segment)
        out[key] = out.get(key, False) | region.box.cell_mask()
    return out


def measure(args: argparse.Namespace) -> dict:
    from xai.metrics.statistics import bootstrap_ci
    from xai.pipeline import ExplainContext, batches, explain_batch, load_grids

    bundle, source, explainers, model_dir = _setup(args)
    records = source.records()
    first = source.load(records[0])
    context = ExplainContext(bundle, explainers, explained_class="true", axes=first.axes, attention="bands")
    rows: list[dict] = []
    cells = None
    started = time.perf_counter()
    for begin, end in batches(len(records), args.batch):
        (batch,) = load_grids(source, records[begin:end], expected_shape=first.image.shape)
        result = explain_batch(context, batch)
        if cells is None:
            cells = _cells(result.reliance["occlusion"]["magnitude"][0].result.regions)
        rows += _window_rows(result, source, first.axes, cells)
        log.info("%d/%d windows (%.0f s)", len(rows), len(records), time.perf_counter() - started)
    return {"model": args.model, "model_dir": str(model_dir), "n": len(rows), "rows": rows,
            "summary": summarise(rows, bootstrap_ci)}  # fmt: skip


def _rate(values: Sequence[bool], ci) -> dict:
    return ci(np.asarray(values, dtype=float), n_resamples=2000)


def summarise(rows: Sequence[dict], ci) -> dict:
    """Rates with CIs of the acceptance checks and the mean agreement per method."""
    precursor = [r for r in rows if r["true_magnitude"] != "Normal" and r["magnitude_correct"]]
    shares = [r["top_inside_share"] for r in precursor if r["top_inside_share"] is not None]
    shares_p = [r["top_inside_share_probability"] for r in precursor if r["top_inside_share_probability"] is not None]
    pc3 = np.abs([r["pc3_drop_probability"] for r in precursor if r["pc3_drop_probability"] is not None])
    ns = [r for r in rows if r["true_azimuth"] in ("N", "S") and r["azimuth_correct"]]
    ew = [r for r in rows if r["true_azimuth"] in ("E", "W") and r["azimuth_correct"]]
    agreement = {}
    for head in ("magnitude", "azimuth"):
        for method in rows[0]["rho"][head] if rows else []:
            values = np.array([np.nan if r["rho"][head][method] is None else r["rho"][head][method] for r in rows])
            agreement[f"{head}/{method}"] = ci(values)
    return {
        "n_precursor_correct": len(precursor),
        "precursor_top_region_majority_inside": _rate([s >= 0.5 for s in shares], ci),
        "precursor_top_region_any_overlap": _rate([s > 0 for s in shares], ci),
        "precursor_top_region_any_overlap_probability": _rate([s > 0 for s in shares_p], ci),
        "precursor_top_region_by_class": _by_class(precursor, ci),
        "pc3_abs_probability_change_median": float(np.median(pc3)) if pc3.size else None,
        "pc3_abs_probability_change_p90": float(np.percentile(pc3, 90)) if pc3.size else None,
        "n_ns_correct": len(ns),
        "ns_h_over_d": _rate([r["azimuth_drop_logit"]["H"] > r["azimuth_drop_logit"]["D"] for r in ns], ci),
        "n_ew_correct": len(ew),
        "ew_d_over_h": _rate([r["azimuth_drop_logit"]["D"] > r["azimuth_drop_logit"]["H"] for r in ew], ci),
        "agreement_rho": agreement,
    }


def _by_class(precursor: Sequence[dict], ci) -> dict:
    """The top region's overlap with the precursor per true magnitude class."""
    classes = sorted({r["true_magnitude"] for r in precursor})
    return {c: _rate([r["top_inside_share"] > 0 for r in precursor if r["true_magnitude"] == c], ci) for c in classes}


def _fmt(item: dict) -> str:
    if item.get("mean") is None:
        return "–"
    return f"{item['mean']:.2f} [{item['low']:.2f}, {item['high']:.2f}] (n {item['n']})"


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("vgg16", "efficientnet"), default="efficientnet")
    parser.add_argument("--seed", type=int, default=42, help="the demo model's seed (split and initialisation)")
    parser.add_argument("--cache", type=Path, default=Path(__file__).resolve().parents[1] / ".cache")
    parser.add_argument("--n", type=int, default=120, help="fresh demo windows")
    parser.add_argument("--data-seed", type=int, default=7, help="generator seed of the fresh windows")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--smooth-samples", type=int, default=10, help="SmoothGrad's noisy copies")
    parser.add_argument("--override", nargs="*", default=[], help="Hydra overrides")
    parser.add_argument("--out", type=Path, default=None, help="write rows and summary as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    from core.quiet import start_tensorflow

    start_tensorflow(3)
    payload = measure(args)
    s = payload["summary"]
    log.info("%s, %d fresh windows (%d correctly classified precursor windows):", args.model, payload["n"],
             s["n_precursor_correct"])  # fmt: skip
    log.info(
        "  top band x hour region >= half inside the precursor: %s", _fmt(s["precursor_top_region_majority_inside"])
    )
    log.info("  top band x hour region overlaps the precursor:       %s", _fmt(s["precursor_top_region_any_overlap"]))
    log.info(
        "  ... by probability drop:                            %s",
        _fmt(s["precursor_top_region_any_overlap_probability"]),
    )
    for name, item in s["precursor_top_region_by_class"].items():
        log.info("  ... %-10s %s", name, _fmt(item))
    median, p90 = s["pc3_abs_probability_change_median"], s["pc3_abs_probability_change_p90"]
    log.info("  |true-class probability change| removing Pc3: median %s, 90th percentile %s", median, p90)
    log.info("  N/S windows, H removal > D removal: %s", _fmt(s["ns_h_over_d"]))
    log.info("  E/W windows, D removal > H removal: %s", _fmt(s["ew_d_over_h"]))
    for key, item in s["agreement_rho"].items():
        log.info("  agreement rho %-22s %s", key, _fmt(item))
    if args.out is not None:
        from core.io import atomic_write_json

        atomic_write_json(args.out, payload)
    return payload


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
