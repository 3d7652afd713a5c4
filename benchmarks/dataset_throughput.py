"""Data-set mode throughput (issue 15, point 4): samples/s end to end and per stage, one process vs two shards.

Run ``python -m benchmarks.dataset_throughput --out outputs/bench/dataset_throughput`` (the demo data set
is generated once under ``--cache``). Every measured run is a job of submitit's ``local`` executor, the
engine behind ``hydra/launcher=submitit_local``, so one process and two shards pay the same start-up:

* ``one process``: ``--samples`` demo windows (default 105, the size of the demo test split) through
  :func:`xai.dataset.explain_dataset`, figures off;
* ``2 shards``: the same samples as two concurrent shard jobs (:func:`xai.shards.run_shard`), then the merge;
* ``figures off`` / ``figures=all``: the first ``--figure-samples`` windows without and with every
  per-sample figure (drawn by :class:`xai.render.pool.FigurePool`, ``--figure-workers`` processes);
* the **kernel rate**: the compiled explainer alone on one batch of prepared inputs (both heads, same
  batch size), after warm-up — the floor no data-set run can beat.

The model is an untrained two-head EfficientNet-B0 at ``--input`` pixels with the Grad-CAM target
``block5c_add`` (speed does not depend on the weights; no demo training needed). The trust checks are
off (``faithfulness_samples=0``, ``randomisation_samples=0``): they are timed in the results' ``cost``.

Stages (seconds summed over the run's batches): ``load`` (spectrogram grids), ``predict`` (forward pass,
input resize, resampling to the grid and band shares: :func:`xai.pipeline.explain_batch` minus the
explainers), ``explain <method>`` (the explainer calls), ``metrics`` (localisation and references),
``write`` (heatmap rows and journal lines), ``figures`` (handing figures to the pool and waiting for it),
``finish`` (class means and aggregation), ``start-up`` (imports, data source, model build: what every
job of a sweep pays once, and every job of ``-m sample=a,b,c`` pays per sample). The first explainer call
of a process (tracing) is reported as ``tracing``.

Goals on a 2-core CPU: figures off, data-set Grad-CAM ≥ 50 % of the kernel rate; two shards ≤ 1.15× the
one-process wall time; ``figures=all`` ≤ 2× the figure-free run. The table goes to stdout and
``<out>/dataset_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"kernel_fraction": 0.5, "shard_wall_ratio": 1.15, "figures_ratio": 2.0}


# ----------------------------------------------------------------------------- inside a job process
class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, key: str, seconds: float) -> None:
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds

    def wrap(self, key: str, function: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(key, time.perf_counter() - started)

        return timed


class _TimedExplainer:
    """An explainer whose calls add to ``explain <name>``; the first call per (head, batch shape), which
    traces and compiles the explanation graph, adds to ``tracing``."""

    def __init__(self, name: str, explainer: Any, timer: _Timer) -> None:
        self._name, self._explainer, self._timer = name, explainer, timer
        self._seen: set = set()

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        out = self._explainer(inputs, *args, **kwargs)
        key = (kwargs.get("head"), tuple(getattr(inputs, "shape", ())))
        stage = f"explain {self._name}" if key in self._seen else "tracing"
        self._seen.add(key)
        self._timer.add(stage, time.perf_counter() - started)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._explainer, name)


def _instrument(timer: _Timer) -> None:
    """Time the stages of :mod:`xai.dataset` in this (job) process."""
    import xai.dataset as dataset
    from xai.heatmap_store import HeatmapStore

    dataset.load_grids = timer.wrap("load", dataset.load_grids)
    dataset.explain_batch = timer.wrap("explain_batch", dataset.explain_batch)
    dataset._journal_entries = timer.wrap("journal_entries", dataset._journal_entries)
    dataset._append_journal = timer.wrap("write journal", dataset._append_journal)
    dataset._finish = timer.wrap("finish", dataset._finish)
    HeatmapStore.write = timer.wrap("write heatmaps", HeatmapStore.write)


def _stages(timer: _Timer) -> dict[str, float]:
    """Per-stage seconds from the raw timings (nested timings subtracted)."""
    raw = dict(timer.seconds)
    explain = {k: v for k, v in raw.items() if k.startswith("explain ") and k != "explain_batch"}
    heatmaps = raw.get("write heatmaps", 0.0)
    out = {
        "load": raw.get("load", 0.0),
        "predict": raw.get("explain_batch", 0.0) - sum(explain.values()) - raw.get("tracing", 0.0),
        **explain,
        "tracing": raw.get("tracing", 0.0),
        "metrics": raw.get("journal_entries", 0.0) - heatmaps,
        "write": heatmaps + raw.get("write journal", 0.0),
        "figures": raw.get("figures", 0.0),
        "finish": raw.get("finish", 0.0),
    }
    return {k: round(v, 3) for k, v in out.items()}


def _setup(settings: dict, timer: _Timer) -> tuple:
    """Data source, records, bundle and explainers of a job (timed as ``start-up``)."""
    started = time.perf_counter()
    import hydra
    from hydra import compose, initialize_config_dir

    from models.builders import build_efficientnet_multitask
    from models.device import configure_devices
    from models.loading import bundle_from_model
    from xai.explainers import build_explainers

    configure_devices(False)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.cache_dir={settings['cache']}", "xai=gradcam"])
    source = hydra.utils.instantiate(cfg.data)
    mappings = source.class_mappings
    size = int(settings["input"])
    head = {"n_magnitude": len(mappings.magnitude_classes), "n_azimuth": len(mappings.azimuth_classes)}
    model = build_efficientnet_multitask(input_shape=(size, size, 3), head=head, weights=None, seed=0)
    bundle = bundle_from_model(model, mappings, name="efficientnet", target_layer="block5c_add")
    explainers = build_explainers(cfg.xai.methods, bundle)
    explainers = {name: _TimedExplainer(name, e, timer) for name, e in explainers.items()}
    timer.add("start-up", time.perf_counter() - started + settings.get("import_seconds", 0.0))
    return source, source.records()[: int(settings["samples"])], bundle, explainers


def _options(settings: dict, figures: Any):
    from xai.dataset import DatasetOptions

    return DatasetOptions(
        batch_size=int(settings["batch"]),
        figures=figures,
        faithfulness_samples=0,
        randomisation_samples=0,
        bootstrap_resamples=200,
    )


def job(settings: dict, kind: str, shard: int = 0) -> dict:
    """One measured run in this process: ``single``, ``shard`` (of 2), ``figures`` (all) or ``kernel``."""
    started = time.perf_counter()
    import tensorflow  # noqa: F401 - its import is part of every job's start-up

    settings = {**settings, "import_seconds": time.perf_counter() - started}
    timer = _Timer()
    _instrument(timer)
    source, records, bundle, explainers = _setup(settings, timer)
    if kind == "kernel":
        return _kernel(settings, source, records, bundle, explainers, timer)
    from xai.dataset import DatasetFigures, explain_dataset
    from xai.render import render_class_means
    from xai.render.pool import FigurePool
    from xai.shards import ShardJob, ShardSpec, run_shard

    folder = Path(settings["work"]) / f"{kind}-{shard}"
    if kind in ("figures_off", "figures"):
        records = records[: int(settings["figure_samples"])]
    workers = int(settings["figure_workers"]) if kind == "figures" else 0
    run_started = time.perf_counter()
    with FigurePool(workers) as pool:
        figures = DatasetFigures(sample=timer.wrap("figures", pool), class_means=render_class_means)
        options = _options(settings, "all" if kind == "figures" else 0)
        if kind == "shard":
            spec = ShardSpec(shard, 2)
            run_shard(ShardJob(bundle, explainers, source, records, folder, options, spec, figures=figures))
        else:
            explain_dataset(bundle, explainers, source, records, folder, options, figures=figures)
        wait = time.perf_counter()
    timer.add("figures", time.perf_counter() - wait)
    n = len((folder / "samples.jsonl").read_bytes().splitlines())
    return {
        "kind": kind,
        "shard": shard,
        "samples": n,
        "dataset_seconds": round(time.perf_counter() - run_started, 3),
        "job_seconds": round(time.perf_counter() - started, 3),
        "stages": {"start-up": round(timer.seconds["start-up"], 3), **_stages(timer)},
    }


def _kernel(settings: dict, source: Any, records: Sequence, bundle: Any, explainers: dict, timer: _Timer) -> dict:
    """The explainers alone on one prepared batch (both heads), after a warm-up call: samples/s."""
    import numpy as np

    from xai.pipeline import ExplainContext, GridBatch, predict

    batch = records[: int(settings["batch"])]
    context = ExplainContext(bundle, explainers, ("magnitude", "azimuth"))
    predictions = predict(context, GridBatch.of(batch, [source.load(r) for r in batch]))
    rates = {}
    for name, explainer in explainers.items():
        for head in context.heads:  # warm-up: tracing
            explainer(predictions.inputs, head=head, class_indices=predictions.targets[head])
        repeats, started = int(settings["kernel_repeats"]), time.perf_counter()
        for _ in range(repeats):
            for head in context.heads:
                out = explainer(predictions.inputs, head=head, class_indices=predictions.targets[head])
                np.asarray(out.maps)
        rates[name] = round(repeats * len(batch) / (time.perf_counter() - started), 2)
    return {
        "kind": "kernel",
        "rates": rates,
        "tracing": round(timer.seconds.get("tracing", 0.0), 3),
        "start-up": round(timer.seconds["start-up"], 3),
    }


# ----------------------------------------------------------------------------- the launcher side
def _submit(executor: Any, settings: dict, kinds: Sequence[tuple[str, int]]) -> tuple[list[dict], float]:
    """Run ``kinds`` as concurrent local jobs; their results and the wall time until the last one ended."""
    from benchmarks import dataset_throughput  # by its module name: the job processes import it (not __main__)

    started = time.perf_counter()
    jobs = executor.map_array(
        dataset_throughput.job, [settings] * len(kinds), [k for k, _ in kinds], [s for _, s in kinds]
    )
    results = [j.result() for j in jobs]
    return results, time.perf_counter() - started


def _merge_seconds(work: Path) -> float:
    from xai.dataset import DatasetFigures
    from xai.merge import MergeRequest, merge_shards

    started = time.perf_counter()
    merge_shards(MergeRequest(work, shards=2, out=work / "merged", figures=DatasetFigures()))
    return time.perf_counter() - started


def measure(args: argparse.Namespace) -> dict:
    import os

    import submitit

    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    work = Path(tempfile.mkdtemp(prefix="throughput-", dir=args.out))
    settings = {
        "cache": str(Path(args.cache).resolve()),
        "samples": args.samples,
        "figure_samples": args.figure_samples,
        "figure_workers": args.figure_workers,
        "batch": args.batch,
        "input": args.input,
        "kernel_repeats": args.kernel_repeats,
        "work": str(work),
    }
    executor = submitit.AutoExecutor(folder=str(work / ".submitit"), cluster="local")
    executor.update_parameters(timeout_min=120)
    try:
        (kernel,), _ = _submit(executor, settings, [("kernel", 0)])
        (single,), single_wall = _submit(executor, settings, [("single", 0)])
        shards, shards_wall = _submit(executor, settings, [("shard", 0), ("shard", 1)])
        merge = _merge_seconds(work)
        (off,), off_wall = _submit(executor, settings, [("figures_off", 0)])
        (on,), on_wall = _submit(executor, settings, [("figures", 0)])
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "kernel": kernel,
        "single": {**single, "wall": round(single_wall, 3)},
        "shards": {"jobs": shards, "wall": round(shards_wall, 3), "merge_seconds": round(merge, 3)},
        "figures_off": {**off, "wall": round(off_wall, 3)},
        "figures_all": {**on, "wall": round(on_wall, 3)},
        "settings": {k: v for k, v in settings.items() if k != "work"},
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
    }


def _rate(samples: int, seconds: float) -> str:
    return f"{samples / seconds:.2f}" if seconds > 0 else "–"


def to_markdown(result: dict) -> str:
    """The README table: samples/s per stage for one process and two shards, the ratios and the goals."""
    single, shards = result["single"], result["shards"]
    n = single["samples"]
    kernel = result["kernel"]["rates"]
    stage_names = list(single["stages"])
    lines = [
        "| stage | one process: s | one process: samples/s | 2 shards: s (sum of jobs) | 2 shards: samples/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for stage in stage_names:
        a = single["stages"].get(stage, 0.0)
        b = sum(j["stages"].get(stage, 0.0) for j in shards["jobs"])
        lines.append(f"| {stage} | {a:.2f} | {_rate(n, a)} | {b:.2f} | {_rate(n, b)} |")
    lines.append(
        f"| **end to end (job wall)** | {single['wall']:.1f} | {_rate(n, single['wall'])} | "
        f"{shards['wall'] + shards['merge_seconds']:.1f} (wall + merge) | "
        f"{_rate(n, shards['wall'] + shards['merge_seconds'])} |"
    )
    lines.append(
        f"| data-set mode (no start-up) | {single['dataset_seconds']:.1f} | {_rate(n, single['dataset_seconds'])} | "
        f"{max(j['dataset_seconds'] for j in shards['jobs']):.1f} (slowest shard) | "
        f"{_rate(n, max(j['dataset_seconds'] for j in shards['jobs']))} |"
    )
    off, on = result["figures_off"], result["figures_all"]
    lines.append(
        f"| figures off / `figures=all` ({off['samples']} samples, job wall) | {off['wall']:.1f} | "
        f"{_rate(off['samples'], off['wall'])} | {on['wall']:.1f} (figures stage {on['stages']['figures']:.1f} s) | "
        f"{_rate(on['samples'], on['wall'])} |"
    )
    ratios = ratios_of(result)
    lines += ["", "| ratio | measured | goal | met |", "|---|---:|---:|---|"]
    for key, label in (
        ("kernel_fraction", "data-set Grad-CAM rate / kernel rate (figures off)"),
        ("shard_wall_ratio", "2 shards wall (+ merge) / one process wall"),
        ("figures_ratio", "figures=all wall / figures off wall"),
    ):
        goal = GOALS[key]
        met = ratios[key] >= goal if key == "kernel_fraction" else ratios[key] <= goal
        sign = "≥" if key == "kernel_fraction" else "≤"
        lines.append(f"| {label} | {ratios[key]:.2f} | {sign} {goal} | {'met' if met else 'not met'} |")
    lines += [
        "",
        f"Kernel rate (compiled, batch {result['settings']['batch']}, both heads): "
        + ", ".join(f"{k} {v} samples/s" for k, v in kernel.items())
        + f"; first call (tracing) {result['kernel']['tracing']:.1f} s; job start-up "
        f"(imports, data source, model build) {result['kernel']['start-up']:.1f} s. Steady data-set rate "
        f"(explain + predict + load + metrics + write, no tracing and no aggregation): "
        f"{ratios['steady_rate']:.2f} samples/s = {ratios['steady_fraction']:.2f} of the kernel rate.",
    ]
    return "\n".join(lines)


def ratios_of(result: dict) -> dict:
    single, shards = result["single"], result["shards"]
    n = single["samples"]
    per_method = [single["stages"][k] for k in single["stages"] if k.startswith("explain ")]
    kernel = min(result["kernel"]["rates"].values())
    dataset_rate = n / single["dataset_seconds"]
    steady = sum(v for k, v in single["stages"].items() if k not in ("start-up", "tracing", "finish", "figures"))
    return {
        "steady_rate": round(n / steady, 3) if steady > 0 else float("nan"),
        "steady_fraction": round(n / steady / kernel, 3) if steady > 0 else float("nan"),
        "kernel_fraction": round(dataset_rate / kernel, 3) if per_method else float("nan"),
        "shard_wall_ratio": round((shards["wall"] + shards["merge_seconds"]) / single["wall"], 3),
        "figures_ratio": round(result["figures_all"]["wall"] / result["figures_off"]["wall"], 3),
    }


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/bench/dataset_throughput")
    parser.add_argument("--cache", default=str(ROOT / ".cache"))
    parser.add_argument("--samples", type=int, default=105)
    parser.add_argument("--figure-samples", type=int, default=24)
    parser.add_argument("--figure-workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--input", type=int, default=224)
    parser.add_argument("--kernel-repeats", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the runs' folders under --out")
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    result = measure(args)
    result["ratios"] = ratios_of(result)
    (Path(args.out) / "dataset_throughput.json").write_text(json.dumps(result, indent=2))
    print(to_markdown(result))
    return result


if __name__ == "__main__":
    main()
