"""Sharded data-set runs through Hydra launchers, end to end on the tiny demo: two shards through
``hydra/launcher=submitit_local`` run concurrently and merge into a folder equal to one process; a failed
shard makes the sweep exit non-zero without a merged result; two processes racing for an empty demo cache
train the model once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.names import DATASET_FILE, STATUS_FILE
from tests.conftest import ROOT, TINY, run_main

pytestmark = pytest.mark.slow

# Small and quick: Grad-CAM only, batches of 2 (the tiny demo's test split has 7 windows: 4 batches).
DATASET = [
    "task=dataset",
    "xai=gradcam",
    "task.batch_size=2",
    "task.faithfulness_samples=0",
    "task.randomisation_samples=0",
    "task.bootstrap_resamples=50",
]

RACE = """
import json, logging, sys, time
import hydra
from hydra import compose, initialize_config_dir
from models.training import ensure_demo_model
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
cache = sys.argv[1]
with initialize_config_dir(config_dir=sys.argv[2], version_base="1.3"):
    cfg = compose("config", overrides=[*sys.argv[3:], f"paths.cache_dir={cache}"])
source = hydra.utils.instantiate(cfg.data)
started = time.time()
folder = ensure_demo_model(cfg.model, source, cache, int(cfg.seed))
print(json.dumps({"folder": str(folder), "started": started, "ended": time.time()}))
"""


@pytest.fixture(scope="module")
def race(tmp_path_factory):
    """Two processes started at once on an empty demo cache; returns their outputs and the cache."""
    cache = tmp_path_factory.mktemp("race_cache")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", RACE, str(cache), str(ROOT / "conf"), *TINY]
    procs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    procs.append(
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    )
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    return [(json.loads(out.strip().splitlines()[-1]), err) for out, err in outputs], cache


def test_two_processes_on_an_empty_demo_cache_train_once(race):
    outputs, cache = race
    trained = [i for i, (_, err) in enumerate(outputs) if "training it once" in err]
    assert len(trained) == 1  # one trains ...
    trainer, waiter = outputs[trained[0]][0], outputs[1 - trained[0]][0]
    assert waiter["folder"] == trainer["folder"]  # ... the other reuses its model
    # It asked while training ran and returned only once the model was written (the trainer's own "ended"
    # is taken after it releases the lock, so the waiter may legitimately finish a few ms before it).
    written = (Path(trainer["folder"]) / "model.keras").stat().st_mtime
    assert waiter["started"] < written <= waiter["ended"]
    models = [p.name for p in (cache / "models").iterdir() if not p.name.endswith(".lock")]
    assert models == [Path(trainer["folder"]).name]  # no second copy, no temporary folder left


def test_two_shards_through_submitit_local_equal_one_process(race, tmp_path):
    _, cache = race
    common = [*TINY, *DATASET, f"paths.cache_dir={cache}"]
    single = run_main([*common, f"hydra.run.dir={tmp_path / 'single'}"])
    assert single.returncode == 0, single.stderr[-3000:]
    sweep_dir = tmp_path / "sweep"
    started = time.time()
    sweep = run_main(
        [
            "-m",
            *common,
            "task.shards=2",
            "task.shard=range(0,2)",
            "hydra/launcher=submitit_local",
            f"hydra.sweep.dir={sweep_dir}",
        ]
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    one, merged = tmp_path / "single" / "efficientnet", sweep_dir / "efficientnet"
    for name in sorted(p.name for p in (one / "heatmaps").iterdir()):
        assert (merged / "heatmaps" / name).read_bytes() == (one / "heatmaps" / name).read_bytes(), name
    assert (merged / "samples.jsonl").read_bytes() == (one / "samples.jsonl").read_bytes()
    a, b = (json.loads((folder / DATASET_FILE).read_text()) for folder in (one, merged))
    assert b["n_samples"] == a["n_samples"] == 7
    for results in (a, b):  # run-time fields: timing, memory, the shard list, the measured check costs
        results.pop("run")
        results["trust"].pop("cost", None)
    assert a == b
    assert (merged / "report.html").is_file()
    # the two shards ran at the same time (submitit_local starts one process per job)
    shards = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/efficientnet.shard-*/shard.json"))]
    assert [s["shard"] for s in shards] == [0, 1] and len({s["run"]["pid"] for s in shards}) == 2
    assert sum(s["n_samples"] for s in shards) == 7
    logs = sorted(sweep_dir.glob(".submitit/*/*_log.out"))
    assert len(logs) == 2
    assert time.time() - started < sum(s["run"]["seconds_this_process"] for s in shards) + 300


def test_a_failed_shard_makes_the_sweep_exit_non_zero_without_a_merged_result(race, tmp_path):
    _, cache = race
    sweep_dir = tmp_path / "sweep"
    # job 1 asks for shard 5 of 2: it fails, so shard 1 never runs
    proc = run_main(
        [
            "-m",
            *TINY,
            *DATASET,
            f"paths.cache_dir={cache}",
            "task.shards=2",
            "task.shard=0,5",
            f"hydra.sweep.dir={sweep_dir}",
        ]
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert "shard 1 missing" in output and "task.shard=5 failed" in output
    assert (sweep_dir / "0" / "efficientnet.shard-0-of-2" / "shard.json").is_file()
    assert not (sweep_dir / "efficientnet" / DATASET_FILE).exists()
    assert json.loads((sweep_dir / "efficientnet" / STATUS_FILE).read_text())["status"] == "failed"
    again = run_main(["task=merge", f"task.folder={sweep_dir}", f"hydra.run.dir={tmp_path / 'merge'}"])
    assert again.returncode == 2 and "shard 1 missing" in again.stdout + again.stderr
