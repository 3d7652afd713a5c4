"""Sharded data-set mode (xai.shards) and the merge (xai.merge): the merged run equals one process, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import ConfigError, InputDataError
from core.names import DATASET_FILE, STATUS_FILE
from geomag.spectrogram import SpectrogramConfig
from xai.dataset import JOURNAL, DatasetFigures, DatasetOptions, explain_dataset
from xai.merge import MergeRequest, merge_shards
from xai.shards import SHARD_FILE, ShardJob, ShardSpec, assign_batches, run_shard, shard_spec

SPEC = SpectrogramConfig(grid=(32, 32))
N = 10


def _painter(path, **_):
    Path(path).write_bytes(b"figure")


FIGURES = DatasetFigures(sample=_painter, class_means=_painter)


@pytest.fixture(scope="module")
def setup(tiny_dataset):
    """The shared tiny data set (tests/conftest.py): source, bundle, explainers, the first N records."""
    return tiny_dataset


def _options(**kw) -> DatasetOptions:
    base = dict(
        batch_size=4,
        figures=[],
        faithfulness_samples=6,  # spans the first two batches
        faithfulness_steps=3,
        randomisation_samples=2,
        randomisation_steps=2,
        bootstrap_resamples=50,
    )
    return DatasetOptions(**{**base, **kw})


def _run_shards(setup, sweep: Path, count: int, options: DatasetOptions, skip: tuple[int, ...] = ()) -> None:
    source, bundle, explainers, records = setup
    for i in range(count):
        if i in skip:
            continue
        folder = sweep / str(i) / f"tiny.shard-{i}-of-{count}"
        run_shard(ShardJob(bundle, explainers, source, records, folder, options, ShardSpec(i, count), figures=FIGURES))


def _without_run_time(results: dict) -> dict:
    out = {k: v for k, v in results.items() if k != "run"}
    out["trust"] = {k: v for k, v in results["trust"].items() if k != "cost"}
    return out


def test_assign_batches_is_stratified_and_balanced():
    # batches of one sample alternating a, b: round robin would give shard 0 only "a" and shard 1 only "b"
    labels = [("a",), ("b",), ("a",), ("b",)]
    assert assign_batches(labels, 1, 2) == [[(0, 1), (3, 4)], [(1, 2), (2, 3)]]
    labels = [("a",)] * 4 + [("b",)] * 4 + [("c",)]
    assert assign_batches(labels, 2, 2) == [[(0, 2), (4, 6), (8, 9)], [(2, 4), (6, 8)]]
    assert assign_batches(labels, 2, 1) == [[(0, 2), (2, 4), (4, 6), (6, 8), (8, 9)]]


@pytest.mark.parametrize(
    ("shards", "shard", "message"),
    [(2, None, "needs task.shard"), (2, 2, "between 0 and 1"), (0, None, "at least 1"), (1, 1, "task.shards is 1")],
)
def test_shard_spec_refuses_wrong_settings(shards, shard, message):
    with pytest.raises(ConfigError, match=message):
        shard_spec(shards, shard)


def test_shard_spec():
    assert shard_spec(1, None) is None and shard_spec(3, 2) == ShardSpec(2, 3)


def test_merged_shards_equal_one_process_byte_for_byte(setup, tmp_path):
    source, bundle, explainers, records = setup
    options = _options(figures=[records[1].name, records[6].name])
    single = explain_dataset(bundle, explainers, source, records, tmp_path / "single", options, figures=FIGURES)
    one = tmp_path / "single"
    for count in (2, 3):
        sweep = tmp_path / f"sweep{count}"
        _run_shards(setup, sweep, count, options)
        (merged,) = merge_shards(MergeRequest(sweep, shards=count, figures=FIGURES))
        assert merged == sweep / "tiny"
        for name in sorted(p.name for p in (one / "heatmaps").iterdir()):
            assert (merged / "heatmaps" / name).read_bytes() == (one / "heatmaps" / name).read_bytes(), name
        assert (merged / JOURNAL).read_bytes() == (one / JOURNAL).read_bytes()
        a, b = np.load(one / "class_means.npz"), np.load(merged / "class_means.npz")
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
        results = json.loads((merged / DATASET_FILE).read_text())
        assert _without_run_time(results) == _without_run_time(json.loads(json.dumps(single)))
        assert results["n_samples"] == N and len(results["run"]["shards"]) == count
        assert sorted(p.name for p in (merged / "figures").iterdir()) == sorted(
            p.name for p in (one / "figures").iterdir()
        )
        assert results["trust"]["randomisation"] == single["trust"]["randomisation"]


def test_missing_or_failed_shard_refuses_the_merge(setup, tmp_path):
    options = _options(randomisation_samples=0, faithfulness_samples=0)
    _run_shards(setup, tmp_path, 3, options, skip=(1, 2))
    (tmp_path / "1" / "tiny.shard-1-of-3").mkdir(parents=True)  # started, never finished
    failed = {"status": "failed", "error": "boom", "model": "tiny", "overrides": ["task.shards=3", "task.shard=2"]}
    (tmp_path / "2" / "tiny").mkdir(parents=True)
    (tmp_path / "2" / "tiny" / STATUS_FILE).write_text(json.dumps(failed))
    with pytest.raises(
        InputDataError, match=r"shard 1 missing.*shard 2 failed: boom.*tiny.shard-1-of-3 has no shard.json"
    ):
        merge_shards(MergeRequest(tmp_path, shards=3))
    assert not (tmp_path / "tiny" / DATASET_FILE).exists()
    status = json.loads((tmp_path / "tiny" / STATUS_FILE).read_text())
    assert status["status"] == "failed" and "shard 1 missing" in status["error"]
    assert (tmp_path / "0" / "tiny.shard-0-of-3" / SHARD_FILE).exists()


def test_memory_growth_is_asked_for_before_tensorflow_starts():
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = (
        "import os, sys; os.environ.pop('TF_FORCE_GPU_ALLOW_GROWTH', None)\n"
        "from models.device import allow_memory_growth_before_start\n"
        "allow_memory_growth_before_start()\n"
        "print('tensorflow' in sys.modules, os.environ['TF_FORCE_GPU_ALLOW_GROWTH'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "true"]


def test_a_shard_resumes_after_a_torn_journal_and_still_merges_exactly(setup, tmp_path):
    source, bundle, explainers, records = setup
    options = _options(randomisation_samples=0)
    explain_dataset(bundle, explainers, source, records, tmp_path / "single", options)
    _run_shards(setup, tmp_path / "sweep", 2, options)
    # 3 batches of 4, 4, 2 samples: one shard holds two of them
    (index, shard), *_ = [
        (i, tmp_path / "sweep" / str(i) / f"tiny.shard-{i}-of-2")
        for i in range(2)
        if len(json.loads((tmp_path / "sweep" / str(i) / f"tiny.shard-{i}-of-2" / SHARD_FILE).read_text())["batches"])
        == 2
    ]
    lines = (shard / JOURNAL).read_bytes().splitlines(keepends=True)
    (shard / JOURNAL).write_bytes(b"".join(lines[:5]) + lines[5][:7])  # killed in the second batch's journal
    (shard / SHARD_FILE).unlink()
    resumed = run_shard(ShardJob(bundle, explainers, source, records, shard, options, ShardSpec(0, 2), figures=FIGURES))
    assert resumed["run"]["resumed_from"] == 4  # the first batch kept, the second redone whole
    (merged,) = merge_shards(MergeRequest(tmp_path / "sweep"))
    for name in ("gradcam__magnitude.npy", "saliency__azimuth.npy"):
        one = (tmp_path / "single" / "heatmaps" / name).read_bytes()
        assert (merged / "heatmaps" / name).read_bytes() == one
    assert (merged / JOURNAL).read_bytes() == (tmp_path / "single" / JOURNAL).read_bytes()
