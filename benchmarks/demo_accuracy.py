"""Held-out accuracy of the demo models over several training seeds: does the recipe hold on any seed?

Run ``python benchmarks/demo_accuracy.py --model vgg16 --seeds 42 1 2`` (and ``--model efficientnet``).
For each seed (the top-level ``seed=``: train/validation/test split and initialisation) it trains the
demo model through :func:`models.training.ensure_demo_model` in a cache folder (``--cache``, default
the project's ``.cache``, the one ``python main.py`` uses: the demo data set is generated once there,
and a model trained before with the same recipe and seed is reused), then reads the model folder's
``evaluation.json``: held-out (test split, grouped by event) accuracy and majority-class rate per
head, and the training time. One line per seed, then min / median. Goals: magnitude accuracy >= 0.92
and azimuth accuracy >= 2.5x the test split's majority-class rate. ``--override`` passes Hydra
overrides (e.g. ``model.training.epochs=3``) to try a recipe without editing the YAML; ``--out``
writes the table as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

CONF = Path(__file__).resolve().parents[1] / "conf"
GOAL_MAGNITUDE = 0.92
GOAL_AZIMUTH_RATIO = 2.5


def _compose(model: str, seed: int, cache: Path, overrides: Sequence[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[f"model={model}", f"seed={seed}", f"paths.cache_dir={cache}", *overrides])


def measure(model: str, seed: int, cache: Path, overrides: Sequence[str] = ()) -> dict:
    """Train (or reuse) the demo model for ``seed``; its held-out numbers from ``evaluation.json``."""
    import hydra
    import keras

    from models.training import ensure_demo_model

    cfg = _compose(model, seed, cache, overrides)
    source = hydra.utils.instantiate(cfg.data)
    started = time.perf_counter()
    model_dir = ensure_demo_model(cfg.model, source, cache, int(cfg.seed))
    wall = time.perf_counter() - started
    keras.backend.clear_session()
    return {**read_row(model, seed, model_dir), "wall_seconds_this_call": round(wall, 1)}


def read_row(model: str, seed: int, model_dir: Path) -> dict:
    """One table row from a trained model folder's ``evaluation.json``."""
    evaluation = json.loads((Path(model_dir) / "evaluation.json").read_text())
    heads = evaluation["heads"]
    magnitude, azimuth = heads["magnitude"], heads["azimuth"]
    return {
        "model": model,
        "seed": seed,
        "model_dir": str(model_dir),
        "splits": evaluation["splits"],
        "epochs_run": evaluation["epochs_run"],
        "magnitude_accuracy": magnitude["accuracy"],
        "magnitude_majority": magnitude["majority_class_rate"],
        "azimuth_accuracy": azimuth["accuracy"],
        "azimuth_majority": azimuth["majority_class_rate"],
        "azimuth_ratio": azimuth["accuracy"] / azimuth["majority_class_rate"],
        "power_bound_accuracy": azimuth.get("power_bound_accuracy"),
        "train_seconds": evaluation["train_seconds"],
    }


def _row(r: dict) -> str:
    return (
        f"{r['model']:<12} seed {r['seed']:>4}: magnitude {r['magnitude_accuracy']:.3f} "
        f"(majority {r['magnitude_majority']:.3f}), azimuth {r['azimuth_accuracy']:.3f} "
        f"(majority {r['azimuth_majority']:.3f}, ratio {r['azimuth_ratio']:.2f}x), "
        f"{r['epochs_run']} epochs, training {r['train_seconds']:.0f} s, n_test {r['splits']['test']}"
    )


def summary(rows: Sequence[dict]) -> dict:
    """Min and median of magnitude accuracy, azimuth accuracy and ratio, and whether the goals hold."""
    out = {}
    for key in ("magnitude_accuracy", "azimuth_accuracy", "azimuth_ratio", "train_seconds"):
        values = [r[key] for r in rows]
        out[key] = {"min": min(values), "median": statistics.median(values), "max": max(values)}
    out["goals_met"] = bool(
        out["magnitude_accuracy"]["min"] >= GOAL_MAGNITUDE and out["azimuth_ratio"]["min"] >= GOAL_AZIMUTH_RATIO
    )
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("vgg16", "efficientnet"), default="vgg16")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--cache", type=Path, default=Path(__file__).resolve().parents[1] / ".cache")
    parser.add_argument("--override", nargs="*", default=[], help="Hydra overrides, e.g. model.training.epochs=3")
    parser.add_argument("--out", type=Path, default=None, help="write the rows and summary as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    from core.quiet import start_tensorflow

    start_tensorflow(3)
    rows = []
    for seed in args.seeds:
        rows.append(measure(args.model, seed, args.cache, args.override))
        log.info("RESULT %s", _row(rows[-1]))
    stats = summary(rows)
    log.info("%s over seeds %s%s:", args.model, args.seeds, f" with {args.override}" if args.override else "")
    for key in ("magnitude_accuracy", "azimuth_accuracy", "azimuth_ratio", "train_seconds"):
        log.info("  %-19s min %.3f  median %.3f  max %.3f", key, stats[key]["min"], stats[key]["median"],
                 stats[key]["max"])  # fmt: skip
    log.info(
        "  goals (magnitude >= %.2f, azimuth >= %.1fx majority) met on every seed: %s",
        GOAL_MAGNITUDE,
        GOAL_AZIMUTH_RATIO,
        stats["goals_met"],
    )
    payload = {"model": args.model, "seeds": args.seeds, "overrides": args.override, "rows": rows, "summary": stats}
    if args.out is not None:
        from core.io import atomic_write_json

        atomic_write_json(args.out, payload)
    return payload


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
