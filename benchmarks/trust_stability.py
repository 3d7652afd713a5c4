"""Do the data-set trust claims hold across training seeds? (issue 18, item 4)

Run ``python -m benchmarks.trust_stability --models efficientnet vgg16 --seeds 42 1 2 --budget quick``.
For each demo architecture and training seed (the top-level ``seed=``) it loads the cached demo model
(it never trains one: a seed without a cached model is reported as missing; ``--cache`` is the shared demo
cache), explains the same fresh windows (``task.split=fresh``: ``--fresh-samples`` windows generated
with ``--fresh-seed``, never trained on) with the data-set mode and the budget's sample counts, and
prints, per model, method, head and claim, the value of every seed and its min–max, and whether the
decided outcome (passes / fails / inconclusive) is the same on every seed. A claim goes into the README
only if it holds on all seeds. ``--out`` writes the rows as JSON.

Seeds may run as separate processes (``--seeds 1 --out a.json`` ...) and be merged with
``--combine a.json b.json c.json`` (same table as one run over all seeds).

Claims: relevance mass and its multiple of the mask's area share, deletion / insertion AUC, ρ after
randomising the model, ρ with another class's map, each check's outcome, the verdict, and the paired
method differences (:mod:`xai.trust.paired`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CONF = Path(__file__).resolve().parents[1] / "conf"
CHECKS = ("localisation", "faithfulness", "randomisation", "random_logit")


def _mean(ci: Mapping | None) -> float | None:
    return None if not ci else ci.get("mean")


def claims(results: Mapping) -> dict[str, dict]:
    """``{"<method> / <head> / <claim>": {'value': number or None, 'outcome': str or None}}`` of one run."""
    trust = results["trust"]
    loc, faith, rand = trust["localisation"], trust["faithfulness"], trust["randomisation"]
    out: dict[str, dict] = {}
    for method in results["methods"]:
        for head in results["heads"]:
            key = f"{method} / {head} / "
            verdict = trust["verdicts"][method][head]
            if loc.get("measured"):
                mass = _mean(loc["methods"][method][head]["relevance_mass_accuracy"])
                area = _mean(loc["mask_area_share"][head])
                out[key + "relevance mass"] = {"value": mass, "outcome": None}
                out[key + "mass / area share"] = {"value": mass / area if mass is not None and area else None}
            if faith.get("measured"):
                item = faith["methods"][method][head]
                out[key + "deletion AUC"] = {"value": _mean(item["deletion_auc"])}
                out[key + "insertion AUC"] = {"value": _mean(item["insertion_auc"])}
            if rand.get("measured") and head in rand["methods"].get(method, {}):
                item = rand["methods"][method][head]
                out[key + "ρ randomised"] = {"value": _mean(item.get("final_spearman"))}
                out[key + "ρ other class"] = {"value": _mean(item.get("random_logit_spearman"))}
            for check in CHECKS:
                if check in verdict["checks"]:
                    out[key + f"check {check}"] = {"value": None, "outcome": verdict["checks"][check]["outcome"]}
            out[key + "verdict"] = {"value": None, "outcome": verdict["outcome"]}
    for head, per_measure in (trust.get("paired") or {}).items():
        for measure, rows in per_measure.items():
            for row in rows:
                name = f"{row['a']} − {row['b']} / {head} / paired {measure}"
                out[name] = {"value": _mean(row["difference"]), "outcome": row["outcome"]}
    return out


def stability_rows(per_seed: Mapping[int, Mapping[str, dict]]) -> list[dict]:
    """One row per claim: the seeds' values and outcomes, min–max, and whether the outcome is the same
    on every seed that measured it (``holds``; ``None`` for a claim without an outcome)."""
    seeds = list(per_seed)
    names = list(dict.fromkeys(name for claims_ in per_seed.values() for name in claims_))
    rows = []
    for name in names:
        values = [per_seed[s].get(name, {}).get("value") for s in seeds]
        outcomes = [per_seed[s].get(name, {}).get("outcome") for s in seeds]
        numbers = [v for v in values if v is not None]
        decided = [o for o in outcomes if o is not None]
        rows.append(
            {
                "claim": name,
                "seeds": seeds,
                "values": values,
                "outcomes": outcomes,
                "min": min(numbers) if numbers else None,
                "max": max(numbers) if numbers else None,
                "holds": (len(decided) == len(seeds) and len(set(decided)) == 1) if decided else None,
            }
        )
    return rows


def markdown(model: str, rows: Sequence[dict]) -> str:
    """The rows of one model as a Markdown table."""
    lines = [
        f"### {model}",
        "",
        "| claim | " + " | ".join(f"seed {s}" for s in rows[0]["seeds"]) + " | min–max | same outcome on every seed |",
        "|---|" + "---|" * (len(rows[0]["seeds"]) + 2),
    ]
    for row in rows:
        cells = []
        for value, outcome in zip(row["values"], row["outcomes"]):
            text = "–" if value is None else f"{value:.3f}"
            cells.append(outcome if value is None and outcome else (f"{text} ({outcome})" if outcome else text))
        span = "–" if row["min"] is None else f"{row['min']:.3f} – {row['max']:.3f}"
        holds = {True: "yes", False: "**no**", None: "–"}[row["holds"]]
        lines.append(f"| {row['claim']} | " + " | ".join(cells) + f" | {span} | {holds} |")
    return "\n".join(lines) + "\n"


def claims_from_rows(rows: Sequence[dict]) -> dict[int, dict[str, dict]]:
    """Per-seed claims back from written rows (the inverse of :func:`stability_rows`)."""
    per_seed: dict[int, dict[str, dict]] = {}
    for row in rows:
        for seed, value, outcome in zip(row["seeds"], row["values"], row["outcomes"]):
            per_seed.setdefault(int(seed), {})[row["claim"]] = {"value": value, "outcome": outcome}
    return per_seed


def combine(paths: Sequence[Path]) -> dict:
    """One payload from several ``--out`` files (seeds run as separate processes), seeds in file order."""
    payload: dict = {"settings": {"combined": [str(p) for p in paths]}}
    for path in paths:
        for model, part in json.loads(path.read_text()).items():
            if model == "settings":
                continue
            entry = payload.setdefault(model, {"per_seed": {}, "missing_seeds": [], "runs": {}})
            entry["per_seed"].update(claims_from_rows(part["rows"]))
            entry["missing_seeds"] += part["missing_seeds"]
            entry["runs"].update(part["runs"])
    for model, entry in list(payload.items()):
        if model != "settings":
            per_seed = entry.pop("per_seed")
            entry["rows"] = stability_rows(per_seed) if per_seed else []
    return payload


def run_seed(bundle: Any, explainers: Mapping, source: Any, records: Sequence, options: Any) -> dict:
    """The data-set results of one model on ``records`` (into a temporary folder)."""
    from xai.dataset import explain_dataset

    with tempfile.TemporaryDirectory(prefix="trust_stability-") as folder:
        return explain_dataset(bundle, explainers, source, records, Path(folder), options)


def _compose(model: str, seed: int, cache: Path, overrides: Sequence[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            "config",
            overrides=[f"model={model}", f"seed={seed}", f"paths.cache_dir={cache}", "task=dataset", *overrides],
        )


def cached_model_dir(cfg: Any, source: Any) -> Path | None:
    """The cached demo model's folder for ``cfg`` (model, seed), or ``None``: never trains."""
    from omegaconf import OmegaConf

    from models.training import demo_model_key

    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    key = demo_model_key(model_cfg, source.hash, int(cfg.seed))
    folder = Path(cfg.paths.cache_dir) / "models" / f"{model_cfg['architecture']}-{key}"
    return folder if (folder / "model.keras").is_file() else None


def measure(model: str, seed: int, args: argparse.Namespace) -> dict | None:
    """Claims of one cached demo model on the fresh windows; ``None`` when the model is not cached."""
    import hydra
    import keras
    from omegaconf import OmegaConf

    from core.text import plain
    from geomag.sources import DemoDataSource
    from models.loading import load_model_bundle_from_config
    from xai.dataset import DatasetOptions
    from xai.explainers import build_explainers
    from xai.trust.budget import apply_budget

    cfg = _compose(model, seed, args.cache, args.override)
    source = hydra.utils.instantiate(cfg.data)
    model_dir = cached_model_dir(cfg, source)
    if model_dir is None:
        log.warning("%s seed %d: no cached demo model in %s (not trained here)", model, seed, args.cache)
        return None
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    bundle = load_model_bundle_from_config(
        model_cfg, file=model_dir / "model.keras", class_mappings=model_dir / "class_mappings.json"
    )
    generator = {**OmegaConf.to_container(cfg.data.generator, resolve=True)}
    generator.update(n_samples=args.fresh_samples, seed=args.fresh_seed)
    fresh = DemoDataSource(
        cfg.paths.cache_dir, generator=generator, spectrogram=OmegaConf.to_container(cfg.spectrogram, resolve=True)
    )
    task = {k: plain(v) for k, v in cfg.task.items() if k in DatasetOptions.__dataclass_fields__ or "budget" in k}
    task["budget"] = args.budget
    settings, budget = apply_budget(task)
    options = DatasetOptions(
        heads=[str(h) for h in cfg.xai.heads], seed=int(cfg.seed), explained_class="predicted", **settings
    )
    explainers = build_explainers(cfg.xai.methods, bundle)
    started = time.perf_counter()
    results = run_seed(bundle, explainers, fresh, fresh.records(), options)
    seconds = time.perf_counter() - started
    keras.backend.clear_session()
    log.info("%s seed %d: %d fresh windows in %.0f s (budget %s)", model, seed, len(fresh.records()), seconds, budget)
    return {"model_dir": str(model_dir), "seconds": round(seconds, 1), "budget": budget, "claims": claims(results)}


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=("vgg16", "efficientnet"), default=["efficientnet", "vgg16"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--cache", type=Path, default=Path(__file__).resolve().parents[1] / ".cache")
    parser.add_argument("--fresh-samples", type=int, default=120)
    parser.add_argument("--fresh-seed", type=int, default=7)
    parser.add_argument("--budget", default="quick", help="task.budgets entry: quick | standard | thorough")
    parser.add_argument("--override", nargs="*", default=[], help="Hydra overrides, e.g. task.faithfulness_samples=8")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON")
    parser.add_argument("--combine", type=Path, nargs="+", default=None, help="merge earlier --out files instead")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    if args.combine:
        payload = combine(args.combine)
        for model, entry in payload.items():
            if model != "settings" and entry["rows"]:
                print(markdown(f"{model} (seeds {', '.join(map(str, entry['rows'][0]['seeds']))})", entry["rows"]))
        if args.out is not None:
            from core.io import atomic_write_text

            atomic_write_text(args.out, json.dumps(payload, indent=1, default=str))
        return payload

    from core.quiet import start_tensorflow

    start_tensorflow(3)
    payload: dict = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    for model in args.models:
        per_seed, missing, runs = {}, [], {}
        for seed in args.seeds:
            found = measure(model, seed, args)
            if found is None:
                missing.append(seed)
                continue
            per_seed[seed] = found.pop("claims")
            runs[seed] = found
        rows = stability_rows(per_seed) if per_seed else []
        payload[model] = {"rows": rows, "missing_seeds": missing, "runs": runs}
        if rows:
            print(markdown(f"{model} (seeds {', '.join(map(str, per_seed))})", rows))
        if missing:
            print(f"{model}: no cached model for seeds {missing}; train them with `python main.py task=train "
                  f"model={model} seed=<seed>` first")  # fmt: skip
    if args.out is not None:
        from core.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(payload, indent=1, default=str))
    return payload


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
