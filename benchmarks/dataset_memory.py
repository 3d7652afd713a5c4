"""Resident memory of a long data-set run (issue 7, point 5): does RSS stay flat after warm-up?

Run ``python -m benchmarks.dataset_memory --samples 520 --out outputs/bench/dataset_memory``.  It
generates (or reuses, under ``--cache``) the demo data set with ``--samples`` samples on a small
``--grid``, builds an untrained two-head model (EfficientNet-B0 at ``--input`` pixels with random
weights, or ``--model tiny``: a few-layer CNN), and runs :func:`xai.dataset.explain_dataset` with
``--methods`` (default Grad-CAM + saliency) in batches of ``--batch``, with the faithfulness and
randomisation tests off, in this one process.  The grid differs from the model input on purpose,
so every batch goes through the resize in ``ModelBundle.prepare``.

``explain_dataset`` samples RSS after every batch; the growth after warm-up is
``(max RSS after warm-up - RSS at the end of warm-up) / RSS at the end of warm-up``, warm-up being
a tenth of the batches (at least 2).  The goal is growth <= 10 %.  ``<out>/dataset_memory.json``
holds the RSS trace, peak RSS, the growth and the timings; one summary line is logged.
"""

from __future__ import annotations

import argparse
import logging
import platform
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

GOAL_GROWTH = 0.10


def tiny_two_head_model(input_shape: Sequence[int], n_magnitude: int, n_azimuth: int, seed: int = 0):
    """A small two-head CNN (target layer ``feat``) for quick runs of this benchmark."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(tuple(input_shape), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(name="p1")(x)
    x = keras.layers.Conv2D(12, 3, strides=2, activation="relu", name="feat")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(16, activation="tanh", name="shared")(x)
    outputs = [
        keras.layers.Activation("softmax", name=head)(keras.layers.Dense(n, name=f"{head}_logits")(x))
        for head, n in (("magnitude", n_magnitude), ("azimuth", n_azimuth))
    ]
    return keras.Model(inputs, outputs, name="tiny")


def _bundle(kind: str, size: int, mappings):
    from models.builders import build_efficientnet_multitask
    from models.loading import bundle_from_model

    n = {"n_magnitude": len(mappings.magnitude_classes), "n_azimuth": len(mappings.azimuth_classes)}
    if kind == "efficientnet":
        model = build_efficientnet_multitask(input_shape=(size, size, 3), head=n, weights=None, seed=0)
        return bundle_from_model(model, mappings, name="efficientnet", target_layer="top_activation")
    model = tiny_two_head_model((size, size, 3), **n)
    return bundle_from_model(model, mappings, name="tiny", target_layer="feat")


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=520)
    parser.add_argument("--grid", type=int, default=48, help="spectrogram grid (square)")
    parser.add_argument("--input", type=int, default=64, help="model input size (square)")
    parser.add_argument("--model", choices=("efficientnet", "tiny"), default="efficientnet")
    parser.add_argument("--methods", nargs="+", default=["gradcam", "saliency"], choices=("gradcam", "saliency"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--cache", type=Path, default=None, help="demo data cache (default: a temporary folder)")
    parser.add_argument("--out", type=Path, required=True, help="folder for dataset_memory.json and the run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import tensorflow as tf

    from core.io import atomic_write_json
    from geomag.sources import DemoDataSource
    from geomag.spectrogram import SpectrogramConfig
    from xai.dataset import DatasetOptions, explain_dataset, peak_rss_mb, rss_mb
    from xai.explainers.gradcam import GradCAM
    from xai.explainers.saliency import Saliency

    started = time.perf_counter()
    temporary = None if args.cache is not None else tempfile.mkdtemp(prefix="dataset_memory-")
    try:
        cache = args.cache or Path(temporary)
        source = DemoDataSource(cache, {"n_samples": args.samples}, SpectrogramConfig(grid=(args.grid, args.grid)))
        records = source.records()
        generated = time.perf_counter()
        bundle = _bundle(args.model, args.input, source.class_mappings)
        factories = {"gradcam": GradCAM, "saliency": Saliency}
        explainers = {name: factories[name](bundle) for name in args.methods}
        run_dir = args.out / "run"
        shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, never a resume
        rss_before = rss_mb()
        options = DatasetOptions(
            batch_size=args.batch, faithfulness_samples=0, randomisation_samples=0, bootstrap_resamples=200
        )
        explained = time.perf_counter()
        results = explain_dataset(bundle, explainers, source, records, run_dir, options)
        finished = time.perf_counter()
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    run = results["run"]
    growth = run["rss_growth_after_warmup"]
    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU ({platform.processor() or platform.machine()})"
    payload = {
        "samples": len(records),
        "grid": [args.grid, args.grid],
        "model": args.model,
        "input_shape": [args.input, args.input, 3],
        "methods": list(args.methods),
        "batch_size": args.batch,
        "rss_before_run_mb": round(rss_before, 1),
        "rss_trace_mb": run["rss_trace_mb"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_growth_after_warmup": growth,
        "goal_growth": GOAL_GROWTH,
        "ok": None if growth is None else bool(growth <= GOAL_GROWTH),
        "seconds": {
            "data": round(generated - started, 1),
            "explain_loop": run["seconds_this_process"],
            "explain_dataset": round(finished - explained, 1),
            "total": round(finished - started, 1),
        },
        "environment": {"tensorflow": tf.__version__, "device": device},
    }
    path = atomic_write_json(args.out / "dataset_memory.json", payload)
    trace = run["rss_trace_mb"]
    log.info(
        "data-set memory: %d samples, %s %dx%d, %s, batch %d: RSS %.0f -> %.0f MiB (peak %.0f), growth after "
        "warm-up %s (goal <= %d %%), %.0f s explaining; wrote %s",
        len(records),
        args.model,
        args.input,
        args.input,
        "+".join(args.methods),
        args.batch,
        trace[0][1],
        trace[-1][1],
        payload["peak_rss_mb"],
        "n/a" if growth is None else f"{growth:.1%}",
        round(GOAL_GROWTH * 100),
        run["seconds_this_process"],
        path,
    )
    return payload


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
