"""Cost of region occlusion against the same number of compiled forward passes on the same model.

Run ``python -m benchmarks.occlusion_speed --model efficientnet --size 112 --grid 112 --batch 2
--repeats 3``.  For one two-head model (random weights) and a batch of spectrogram grids on the demo
axes (channels layout, 0.5-100 mHz, 6 h), it times, round-robin after one warm-up call each:

* ``occlusion``: :meth:`xai.explainers.occlusion.Occlusion.reliance` of both heads (every sample x
  every region, band, hour and component, plus the original batch), median reference;
* ``forward``: the same number of images through the model's cached compiled forward call
  (:func:`xai.explainers.base.compiled_forward`) in chunks of the same size: the floor.

The ratio ``occlusion / forward`` is the median over rounds of the paired ratio of two timings
taken in the same round (a load change between rounds cancels out); the goal is <= 1.2.  The table
is logged and, with ``--out``, written as JSON and Markdown.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

BUILDERS = {"vgg16": "build_vgg16_multitask", "efficientnet": "build_efficientnet_multitask"}
GOAL = 1.2


def _time_round_robin(jobs: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Warm every job up once, then time them in turns; seconds per job."""
    for name, call in jobs.items():
        log.info("  warm-up %s", name)
        call()
    samples: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, call in jobs.items():
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
            log.info("  %-10s %.3f s", name, samples[name][-1])
    return samples


def benchmark(args: argparse.Namespace) -> dict:
    """Time occlusion and its forward-pass floor; returns the numbers."""
    import tensorflow as tf

    from geomag.axes import SpectrogramAxes
    from models import builders
    from xai.explainers.base import compiled_forward
    from xai.explainers.occlusion import Occlusion
    from xai.reliance.regions import build_regions

    model = getattr(builders, BUILDERS[args.model])(input_shape=(args.size, args.size, 3), weights=None, seed=0)
    axes = SpectrogramAxes.regular(
        layout="channels", components=("H", "D", "Z"), n_rows=args.grid, n_cols=args.grid,
        frequency_range_hz=(0.0005, 0.1), frequency_scale="log", window_s=6 * 3600.0,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    grids = rng.normal(size=(args.batch, args.grid, args.grid, 3)).astype(np.float32)
    occlusion = Occlusion(model, chunk_size=args.chunk)
    regions = build_regions(axes)
    per_sample = len(regions) + len(regions.marginal_boxes())
    n_passes = args.batch * per_sample + args.batch
    forward = compiled_forward(occlusion.graph)
    same = rng.normal(size=(n_passes, args.size, args.size, 3)).astype(np.float32)

    def floor() -> None:
        for start in range(0, n_passes, args.chunk):
            outputs = forward(tf.constant(same[start : start + args.chunk]))
            [value.numpy() for value in outputs.values()]

    log.info(
        "%s %dx%d, grid %dx%d, batch %d: %d regions + %d groups per sample = %d forward passes",
        args.model, args.size, args.size, args.grid, args.grid, args.batch, len(regions),
        per_sample - len(regions), n_passes,
    )  # fmt: skip
    samples = _time_round_robin({"occlusion": lambda: occlusion.reliance(grids, axes), "forward": floor}, args.repeats)
    ratio = statistics.median(o / f for o, f in zip(samples["occlusion"], samples["forward"]))
    return {
        "model": args.model,
        "forward_passes": n_passes,
        "occlusion_s": statistics.median(samples["occlusion"]),
        "forward_s": statistics.median(samples["forward"]),
        "ratio": ratio,
        "goal": GOAL,
        "ok": ratio <= GOAL,
        "samples": samples,
    }


def to_markdown(result: dict, header: str) -> str:
    ok = "yes" if result["ok"] else "NO"
    return (
        f"{header}\n\n| model | forward passes | occlusion s | same forward passes s | ratio | goal | ok |\n"
        "|---|---:|---:|---:|---:|---|---|\n"
        f"| {result['model']} | {result['forward_passes']} | {result['occlusion_s']:.3f} | {result['forward_s']:.3f} "
        f"| {result['ratio']:.3f} | <= {result['goal']} | {ok} |\n"
    )


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet", choices=sorted(BUILDERS))
    parser.add_argument("--size", type=int, default=112, help="model input size")
    parser.add_argument("--grid", type=int, default=112, help="spectrogram grid size (resized to --size)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=64, help="occluded copies per forward call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write <out>.json and <out>.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if min(args.batch, args.chunk, args.repeats) < 1 or min(args.size, args.grid) < 32:
        parser.error("--batch, --chunk and --repeats must be >= 1, --size and --grid >= 32")

    import tensorflow as tf

    result = benchmark(args)
    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU ({platform.processor() or platform.machine()})"
    header = (
        f"Occlusion speed, {args.model} {args.size}x{args.size}, grid {args.grid}x{args.grid}, batch {args.batch}, "
        f"chunk {args.chunk}, median paired ratio of {args.repeats} rounds; tensorflow {tf.__version__}, {device}"
    )
    table = to_markdown(result, header)
    log.info("\n%s", table)
    if args.out is not None:
        from core.io import atomic_write_json, atomic_write_text

        atomic_write_json(args.out.with_suffix(".json"), {"header": header, **result})
        atomic_write_text(args.out.with_suffix(".md"), table)
        log.info("wrote %s and %s", args.out.with_suffix(".json"), args.out.with_suffix(".md"))
    return result


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
