"""Speed of the explainers against their floors, for VGG16 and EfficientNet-B0 two-head models.

Run ``python -m benchmarks.explain_speed --models vgg16 efficientnet --size 224 --batch 8
--repeats 3 --out outputs/bench/explain_speed``.  For each model (random weights) it times, on
the same batch and class indices:

* ``forward``: one compiled inference pass of the model (both heads);
* ``input_gradient``: one compiled ``GradientTape`` gradient of one head score w.r.t. the input;
* ``gradcam``: our compiled Grad-CAM; ``tfkv_gradcam``: tf-keras-vis ``Gradcam``, plain, same
  layer, head and classes;
* ``saliency`` / ``smoothgrad``: tf-keras-vis Saliency / SmoothGrad (``--smooth-samples`` N
  noisy copies) as the project runs them (compiled model call) and ``*_eager``: plain eager
  tf-keras-vis for reference (SmoothGrad with ``--eager-smooth-samples``, default 4: at N=20 the
  eager VGG16 row alone would take minutes per call);
* ``render``: wall time of :func:`xai.render.render_sample_figure` for one sample.

Every compiled function is called once to warm up (tracing) before timing (SmoothGrad reuses
saliency's compiled functions; eager rows have nothing to trace).  Methods are timed round-robin,
so a noisy shared machine slows all of them alike, and the median time is reported:
``--repeats`` timed calls for the fast rows, ``--slow-repeats`` for SmoothGrad and the eager
rows.  Ratios are to the forward pass and to each method's floor (Grad-CAM's floor is the forward
pass, saliency's one input gradient, SmoothGrad's N input gradients), each the median over rounds
of the ratio of two timings taken in the same round (paired, so a load change between rounds
cancels out; rows with fewer timed calls than their floor use the ratio of the medians).  The
table is logged and written as JSON and Markdown next to ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"


def target_layer(kind: str) -> str:
    """The Grad-CAM target layer the project's config uses for this model (``conf/model/<kind>.yaml``)."""
    from omegaconf import OmegaConf

    return str(OmegaConf.load(CONF / f"{kind}.yaml").target_layer)


BUILDERS = {"vgg16": "build_vgg16_multitask", "efficientnet": "build_efficientnet_multitask"}
HEAD = "magnitude"


@dataclass
class Row:
    model: str
    method: str
    seconds: float | None
    repeats: int
    ratio_forward: float | None = None
    floor: str = ""
    ratio_floor: float | None = None
    goal: str = ""
    ok: bool | None = None
    note: str = ""
    samples: list[float] = field(default_factory=list)


@dataclass
class Job:
    name: str
    call: Callable[[], object]
    repeats: int
    warm: bool = True  # False: nothing to trace (eager) or already traced by another job
    samples: list[float] = field(default_factory=list)


def _run_round_robin(jobs: Sequence[Job]) -> None:
    """Warm every job up once, then time them in turns until each has its repeats."""
    for job in jobs:
        if job.warm:
            log.info("  warm-up %s", job.name)
            job.call()
    for round_index in range(max(job.repeats for job in jobs)):
        for job in jobs:
            if round_index < job.repeats:
                start = time.perf_counter()
                job.call()
                job.samples.append(time.perf_counter() - start)
                log.info("  %-18s %.3f s", job.name, job.samples[-1])


def _render_seconds(gradcam, saliency, x: np.ndarray, classes: np.ndarray) -> tuple[float | None, str]:
    """Wall time of rendering one sample's figure (3 methods x 2 heads on a 112x112 grid)."""
    try:
        from xai.render import render_sample_figure
    except ImportError as error:
        return None, f"skipped: xai.render.render_sample_figure not available ({error})"
    from geomag.axes import SpectrogramAxes
    from xai.explainers.base import normalize_for_display, to_grid

    axes = SpectrogramAxes.regular(
        layout="channels", components=("H", "D", "Z"), n_rows=112, n_cols=112,
        frequency_range_hz=(0.0005, 0.1), frequency_scale="log", window_s=6 * 3600.0,
    )  # fmt: skip
    image = np.random.default_rng(0).normal(size=(112, 112, 3)).astype(np.float32)
    heads = {}
    for head in ("magnitude", "azimuth"):
        maps = {
            "gradcam": gradcam(x[:1], head, classes[:1]).maps,
            "saliency": saliency(x[:1], head, classes[:1]).maps,
            "smoothgrad": saliency(x[:1], head, classes[:1]).maps[:, ::-1],
        }
        heads[head] = {
            "prediction": "A", "confidence": 0.5, "true": "A", "correct": True, "explained_class": "A",
            "maps": {m: normalize_for_display(to_grid(v, (112, 112)))[0] for m, v in maps.items()},
        }  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        kwargs = {"sample": "bench", "model": "bench", "grid_image": image, "axes": axes, "heads": heads}
        render_sample_figure(Path(folder) / "warm.png", **kwargs)
        start = time.perf_counter()
        render_sample_figure(Path(folder) / "bench.png", **kwargs)
        return time.perf_counter() - start, "one sample, 2 heads x 3 methods, 112x112 grid"


def benchmark_model(kind: str, args: argparse.Namespace) -> list[Row]:
    """Time every method for one architecture (settings from the command line); returns the rows."""
    import tensorflow as tf

    from models import builders
    from models.graph import explanation_model
    from xai.explainers.gradcam import GradCAM
    from xai.explainers.saliency import Saliency
    from xai.explainers.smoothgrad import SmoothGrad
    from xai.explainers.tfkv import TfkvGradcam

    size, batch, repeats, slow_repeats = args.size, args.batch, args.repeats, args.slow_repeats
    smooth_samples, eager_smooth_samples = args.smooth_samples, args.eager_smooth_samples
    model = getattr(builders, BUILDERS[kind])(input_shape=(size, size, 3), weights=None, seed=0)
    graph = explanation_model(model, target_layer=target_layer(kind))
    x = np.random.default_rng(1).normal(size=(batch, size, size, 3)).astype(np.float32)
    classes = (np.arange(batch) % int(graph.model.output[HEAD].shape[-1])).astype(np.int32)
    x_tensor, c_tensor = tf.constant(x), tf.constant(classes)
    spec = tf.TensorSpec((None, size, size, 3), tf.float32)

    forward = tf.function(lambda inputs: model(inputs, training=False), input_signature=[spec])

    @tf.function(input_signature=[spec, tf.TensorSpec((None,), tf.int32)])
    def input_gradient(inputs: tf.Tensor, indices: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(inputs)
            score = tf.gather(graph.model(inputs, training=False)[HEAD], indices[:, None], batch_dims=1)
        return tape.gradient(score, inputs)

    ours, theirs = GradCAM(graph), TfkvGradcam(graph)
    saliency, saliency_eager = Saliency(graph), Saliency(graph, compiled=False)
    smooth = SmoothGrad(graph, smooth_samples=smooth_samples)
    smooth_eager = SmoothGrad(graph, smooth_samples=eager_smooth_samples, compiled=False)

    jobs = [
        Job("forward", lambda: [t.numpy() for t in forward(x_tensor)], repeats),
        Job("input_gradient", lambda: input_gradient(x_tensor, c_tensor).numpy(), repeats),
        Job("gradcam", lambda: ours(x, HEAD, classes), repeats),
        Job("tfkv_gradcam", lambda: theirs(x, HEAD, classes), repeats),
        Job("saliency", lambda: saliency(x, HEAD, classes), repeats),
        # SmoothGrad shares saliency's compiled functions (same graph): already traced
        Job("smoothgrad", lambda: smooth(x, HEAD, classes), slow_repeats, warm=False),
    ]
    if not args.no_eager:
        jobs += [
            Job("saliency_eager", lambda: saliency_eager(x, HEAD, classes), slow_repeats, warm=False),
            Job("smoothgrad_eager", lambda: smooth_eager(x, HEAD, classes), slow_repeats, warm=False),
        ]
    log.info("%s %dx%d batch %d: timing %s", kind, size, size, batch, ", ".join(j.name for j in jobs))
    _run_round_robin(jobs)
    median = {job.name: statistics.median(job.samples) for job in jobs}
    samples = {job.name: job.samples for job in jobs}

    def paired_ratio(name: str, floor_name: str, multiplier: int = 1) -> float:
        """Median over rounds of (time / floor time of the same round): robust to load changes.

        Rows timed fewer times than their floor (the slow rows) use the ratio of the medians.
        """
        if len(samples[name]) < len(samples[floor_name]):
            return median[name] / (multiplier * median[floor_name])
        pairs = zip(samples[name], samples[floor_name])
        return statistics.median(t / (multiplier * f) for t, f in pairs)

    floors = {
        "gradcam": ("forward", "forward", 1, 1.3),
        "tfkv_gradcam": ("forward", "forward", 1, None),
        "saliency": ("1 input_gradient", "input_gradient", 1, 1.5),
        "saliency_eager": ("1 input_gradient", "input_gradient", 1, None),
        "smoothgrad": (f"{smooth_samples} input_gradient", "input_gradient", smooth_samples, 1.5),
        "smoothgrad_eager": (f"{eager_smooth_samples} input_gradient", "input_gradient", eager_smooth_samples, None),
    }
    rows = []
    for job in jobs:
        row = Row(kind, job.name, median[job.name], len(job.samples), paired_ratio(job.name, "forward"))
        row.samples = job.samples
        if job.name in floors:
            label, floor_name, multiplier, limit = floors[job.name]
            row.floor, row.ratio_floor = label, paired_ratio(job.name, floor_name, multiplier)
            if limit is not None:
                row.goal, row.ok = f"<= {limit}x floor", row.ratio_floor <= limit
        rows.append(row)
    speedup = 1.0 / paired_ratio("gradcam", "tfkv_gradcam")
    rows.append(
        Row(kind, "gradcam_speedup_vs_tfkv", None, 0, note=f"{speedup:.1f}x faster than tf-keras-vis Gradcam",
            goal=">= 5x (EfficientNet-B0)" if kind == "efficientnet" else "",
            ok=(speedup >= 5.0) if kind == "efficientnet" else None)
    )  # fmt: skip
    if not args.no_render:
        seconds, note = _render_seconds(ours, saliency, x, classes)
        rows.append(Row(kind, "render", seconds, 1 if seconds is not None else 0, note=note))
    return rows


def _fmt(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def to_markdown(rows: Sequence[Row], header: str) -> str:
    lines = [
        header,
        "",
        "| model | method | median s | n | x forward | floor | x floor | goal | ok | note |",
        "|---|---|---:|---:|---:|---|---:|---|---|---|",
    ]
    for r in rows:
        ok = "" if r.ok is None else ("yes" if r.ok else "NO")
        lines.append(
            f"| {r.model} | {r.method} | {_fmt(r.seconds)} | {r.repeats} | {_fmt(r.ratio_forward, 2)} "
            f"| {r.floor} | {_fmt(r.ratio_floor, 2)} | {r.goal} | {ok} | {r.note} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg16", "efficientnet"], choices=sorted(BUILDERS))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of the fast methods")
    parser.add_argument(
        "--slow-repeats",
        type=int,
        default=1,
        help="timed calls of SmoothGrad and the eager tf-keras-vis rows",
    )
    parser.add_argument("--smooth-samples", type=int, default=20, help="N of the project's SmoothGrad")
    parser.add_argument(
        "--eager-smooth-samples", type=int, default=4, help="N of the (slow) plain eager SmoothGrad reference row"
    )
    parser.add_argument("--no-eager", action="store_true", help="skip the plain eager saliency/SmoothGrad rows")
    parser.add_argument("--no-render", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write <out>.json and <out>.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    counts = (args.repeats, args.slow_repeats, args.batch, args.smooth_samples, args.eager_smooth_samples)
    if min(counts) < 1 or args.size < 32:
        parser.error("--repeats, --slow-repeats, --batch and the smooth samples must be >= 1, --size >= 32")

    import tensorflow as tf

    rows: list[Row] = []
    for kind in args.models:
        rows += benchmark_model(kind, args)
    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU ({platform.processor() or platform.machine()})"
    header = (
        f"Explainer speed, {args.size}x{args.size}, batch {args.batch}, SmoothGrad N={args.smooth_samples} "
        f"(eager reference N={args.eager_smooth_samples}), "
        f"median of {args.repeats} (fast) / {args.slow_repeats} (slow) timed calls; "
        f"tensorflow {tf.__version__}, {device}"
    )
    table = to_markdown(rows, header)
    log.info("\n%s", table)
    if args.out is not None:
        from core.io import atomic_write_json, atomic_write_text

        payload = {
            "header": header,
            "args": {k: str(v) for k, v in vars(args).items()},
            "rows": [asdict(r) for r in rows],
        }
        atomic_write_json(args.out.with_suffix(".json"), payload)
        atomic_write_text(args.out.with_suffix(".md"), table)
        log.info("wrote %s and %s", args.out.with_suffix(".json"), args.out.with_suffix(".md"))
    return rows


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
