"""The multirun-end comparison callback: unit checks and one real Hydra sweep in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from omegaconf import OmegaConf

from core.errors import InputDataError
from core.io import atomic_write_json
from core.names import COMPARISON_JSON, COMPARISON_REPORT
from tests.conftest import SAMPLES_A, SAMPLES_B, make_job, make_model_folder
from xai.callbacks import CompareOnMultirunEnd

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _figures(fake_render):
    """The comparison figures are drawn by the fake renderer (real ones take seconds each)."""
    return fake_render


def _sweep(tmp_path: Path, failed: bool) -> Path:
    root = tmp_path / "multirun"
    make_model_folder(make_job(root, 0, ["model=vgg16"]), "vgg16", SAMPLES_A, n=12, methods=("gradcam",))
    make_model_folder(make_job(root, 1, ["model=efficientnet"]), "efficientnet", SAMPLES_B, n=12, methods=("gradcam",))
    if failed:
        atomic_write_json(
            make_job(root, 2, ["model=broken"]) / "broken" / "status.json",
            {"status": "failed", "error": "models/broken.keras: file not found", "model": "broken", "sample": None},
        )
    return root


def _config(sweep: Path, **job):
    return OmegaConf.create(
        {
            "hydra": {
                "sweep": {"dir": str(sweep)},
                "mode": RunMode.MULTIRUN,
                "runtime": {"output_dir": job.get("output_dir")},
                "job": {"num": job.get("num", 0)},
            },
            "task": {"_target_": job.get("task", "xai.tasks.explain.run")},
            "model": {"name": job.get("model")},
            "sample": job.get("sample"),
        }
    )


def test_multirun_end_writes_comparison_and_exits_on_failure(tmp_path, caplog):
    sweep = _sweep(tmp_path, failed=True)
    with pytest.raises(SystemExit) as raised:
        CompareOnMultirunEnd().on_multirun_end(_config(sweep))
    assert raised.value.code == 1
    assert (sweep / "comparison" / COMPARISON_REPORT).is_file()
    assert (sweep / "comparison" / COMPARISON_JSON).is_file()
    assert "models/broken.keras: file not found" in caplog.text
    assert "GRADCAM_COMPARISON_REPORT.md" in caplog.text


def test_multirun_end_without_failures_returns(tmp_path, caplog):
    sweep = _sweep(tmp_path, failed=False)
    caplog.set_level("INFO")
    CompareOnMultirunEnd().on_multirun_end(_config(sweep))
    data = json.loads((sweep / "comparison" / COMPARISON_JSON).read_text())
    assert sorted(data["models"]) == ["efficientnet", "vgg16"]
    assert "report:" in caplog.text


def test_comparison_error_is_logged_and_exits(tmp_path, caplog):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        CompareOnMultirunEnd().on_multirun_end(_config(tmp_path / "empty"))
    assert "comparison of" in caplog.text and "failed" in caplog.text
    CompareOnMultirunEnd(exit_on_failure=False).on_multirun_end(_config(tmp_path / "empty"))  # logs only


def test_on_job_end_records_failure_and_keeps_the_sweep_going(tmp_path, caplog):
    job_dir = tmp_path / "multirun" / "3"
    job_dir.mkdir(parents=True)
    ret = JobReturn()
    ret.status = JobStatus.FAILED
    ret.return_value = InputDataError("models/x.keras", "file not found")
    callback = CompareOnMultirunEnd()
    callback.on_job_end(_config(tmp_path / "multirun", output_dir=str(job_dir), model="x", sample="S1"), job_return=ret)
    assert ret.status == JobStatus.COMPLETED
    status = json.loads((job_dir / "x" / "status.json").read_text())
    expected = {
        "status": "failed",
        "error": "models/x.keras: file not found",
        "error_type": "InputDataError",
        "model": "x",
        "sample": "S1",
        "overrides": [],
    }
    assert status == expected
    assert callback.failed_jobs[0]["error"] == "models/x.keras: file not found"
    assert "file not found" in caplog.text
    # a job that wrote its own status.json keeps it; a bug is logged with its type
    ret = JobReturn()
    ret.status = JobStatus.FAILED
    ret.return_value = ZeroDivisionError("boom")
    callback.on_job_end(_config(tmp_path / "multirun", output_dir=str(job_dir), model="x"), job_return=ret)
    assert json.loads((job_dir / "x" / "status.json").read_text()) == expected
    assert callback.failed_jobs[1]["error"] == "ZeroDivisionError: boom"
    # a failed compare/train run is logged but gets no model status file
    other = tmp_path / "compare_run"
    other.mkdir()
    ret = JobReturn()
    ret.status = JobStatus.FAILED
    ret.return_value = RuntimeError("compare broke")
    callback.on_job_end(
        _config(tmp_path, output_dir=str(other), model="vgg16", task="xai.tasks.compare.run"), job_return=ret
    )
    assert not list(other.rglob("status.json"))
    assert callback.failed_jobs[2]["error"] == "RuntimeError: compare broke"
    # successful jobs are left alone; keep_going=False leaves Hydra's failure in place
    ok = JobReturn()
    ok.status = JobStatus.COMPLETED
    callback.on_job_end(_config(tmp_path), job_return=ok)
    assert len(callback.failed_jobs) == 3
    ret = JobReturn()
    ret.status = JobStatus.FAILED
    ret.return_value = RuntimeError("x")
    strict = CompareOnMultirunEnd(keep_going=False)
    strict.on_job_end(_config(tmp_path, output_dir=str(job_dir)), job_return=ret)
    assert ret.status == JobStatus.FAILED


APP = """
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig

from core.errors import InputDataError
from tests.conftest import SAMPLES_A, FakeRender, make_model_folder

FakeRender().install()


@hydra.main(version_base="1.3", config_path=".", config_name="cfg")
def main(cfg):
    if cfg.model.name == "broken":
        raise InputDataError("models/broken.keras", "file not found")
    make_model_folder(Path(HydraConfig.get().runtime.output_dir), cfg.model.name, SAMPLES_A, n=12,
                      methods=("gradcam",))


if __name__ == "__main__":
    main()
"""

CFG = """
model:
  name: vgg16
sample: null
hydra:
  job:
    chdir: false
  sweep:
    dir: {sweep}
    subdir: ${{hydra.job.num}}
  callbacks:
    compare_on_multirun_end:
      _target_: xai.callbacks.CompareOnMultirunEnd
"""


def _run_sweep(tmp_path: Path, models: str) -> tuple[subprocess.CompletedProcess, Path]:
    app_dir = tmp_path / "app"
    app_dir.mkdir(exist_ok=True)
    sweep = tmp_path / f"sweep_{models.replace(',', '_')}"
    (app_dir / "app.py").write_text(APP)
    (app_dir / "cfg.yaml").write_text(textwrap.dedent(CFG.format(sweep=sweep)))
    env = dict(os.environ, PYTHONPATH=str(REPO), MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, str(app_dir / "app.py"), "-m", f"model.name={models}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, sweep


def test_real_hydra_sweep_with_a_failedmake_job(tmp_path):
    proc, sweep = _run_sweep(tmp_path, "vgg16,broken,efficientnet")
    assert proc.returncode == 1, proc.stderr[-3000:]
    data = json.loads((sweep / "comparison" / COMPARISON_JSON).read_text())
    assert sorted(data["models"]) == ["efficientnet", "vgg16"]  # the job after the failure ran too
    assert [f["model"] for f in data["jobs"]["failed"]] == ["broken"]
    assert data["jobs"]["failed"][0]["error"] == "models/broken.keras: file not found"
    report = (sweep / "comparison" / COMPARISON_REPORT).read_text(encoding="utf-8")
    assert "**failed** `" in report and "models/broken.keras: file not found" in report
    proc, sweep = _run_sweep(tmp_path, "vgg16,efficientnet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (sweep / "comparison" / COMPARISON_REPORT).is_file()
