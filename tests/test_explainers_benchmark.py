"""The speed benchmark runs end to end on a tiny setting and writes its table."""

from __future__ import annotations

import json

from benchmarks.explain_speed import main


def test_benchmark_smoke(tmp_path):
    out = tmp_path / "bench" / "speed"
    rows = main(
        ["--models", "vgg16", "--size", "32", "--batch", "2", "--repeats", "2", "--smooth-samples", "2",
         "--eager-smooth-samples", "1", "--no-render", "--out", str(out)]
    )  # fmt: skip
    methods = [r.method for r in rows]
    assert methods == [
        "forward", "input_gradient", "gradcam", "tfkv_gradcam", "saliency", "smoothgrad",
        "saliency_eager", "smoothgrad_eager", "gradcam_speedup_vs_tfkv",
    ]  # fmt: skip
    timed = [r for r in rows if r.seconds is not None]
    assert all(r.seconds > 0 and r.ratio_forward > 0 for r in timed)
    by_method = {r.method: r for r in rows}
    assert by_method["gradcam"].repeats == 2 and by_method["smoothgrad"].repeats == 1
    assert by_method["smoothgrad"].floor == "2 input_gradient" and by_method["gradcam"].floor == "forward"
    payload = json.loads(out.with_suffix(".json").read_text())
    assert [r["method"] for r in payload["rows"]] == methods
    table = out.with_suffix(".md").read_text()
    assert "| vgg16 | gradcam |" in table and "x floor" in table
