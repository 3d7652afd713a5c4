"""A quiet console: TensorFlow's C++ start-up lines and third-party INFO chatter stay out of the output."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import FEW_SMOOTHGRAD_SAMPLES, ROOT, TINY

# absl/TensorFlow C++ log lines: "I0000 00:00:1796182867.838008   12815 port.cc:153] ...", "E1202 ...", "W..."
CPP_LOG_LINE = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]|absl::InitializeLog|cuInit|oneDNN custom operations|"
    r"Could not find cuda drivers",
    re.M,
)
FONTTOOLS_LINE = re.compile(r"subsetting|glyf pruned|fontTools", re.M)


def main_as_users_run_it(args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    """``python main.py ARGS`` as a user starts it: no ``TF_CPP_MIN_LOG_LEVEL`` in the environment."""
    clean = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_quiet(proc: subprocess.CompletedProcess) -> None:
    """No TensorFlow C++ line and no fontTools line in the captured stdout + stderr."""
    output = proc.stdout + proc.stderr
    assert not CPP_LOG_LINE.search(output), CPP_LOG_LINE.search(output).group(0)
    assert not FONTTOOLS_LINE.search(output), FONTTOOLS_LINE.search(output).group(0)


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=300
    )


def test_tensorflow_starts_without_cpp_lines():
    proc = _python(
        "from core.quiet import start_tensorflow; start_tensorflow(3)\n"
        "import tensorflow as tf; print(tf.reduce_sum(tf.ones(3)).numpy())"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3.0"
    assert not CPP_LOG_LINE.search(proc.stderr), proc.stderr


def test_quiet_start_keeps_python_errors_visible():
    proc = _python(
        "import sys\nfrom core.quiet import start_tensorflow; start_tensorflow(3)\n"
        "print('after', file=sys.stderr); raise SystemExit('visible')"
    )
    assert "after" in proc.stderr and "visible" in proc.stderr


def test_pdf_fonts_are_subset_quietly(tmp_path):
    """Saving a PDF under the project's logging config writes no fontTools INFO lines."""
    code = (
        "import logging.config, yaml, matplotlib; matplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt; matplotlib.rcParams['pdf.fonttype'] = 42\n"
        "cfg = yaml.safe_load(open('conf/hydra/hydra_logging/quiet.yaml'))\n"
        "logging.config.dictConfig(cfg)\n"
        "fig = plt.figure(); fig.text(0.5, 0.5, 'Pc5 ULF 1-10 mHz'); "
        f"fig.savefig(r'{tmp_path / 'f.pdf'}')\n"
        "logging.getLogger('check').info('done')\n"
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert "done" in proc.stdout + proc.stderr  # INFO of our own loggers still shows
    assert not FONTTOOLS_LINE.search(proc.stdout + proc.stderr), proc.stdout


def test_the_patterns_catch_the_lines_they_are_for():
    assert CPP_LOG_LINE.search("I0000 00:00:1796182867.838008   12815 port.cc:153] oneDNN custom operations are on.")
    assert CPP_LOG_LINE.search("E0000 00:00:1796204989.681268   18511 cuda_platform.cc:52] failed call to cuInit: ...")
    assert FONTTOOLS_LINE.search("[2026-12-02 09:00:00,000][fontTools.subset][INFO] - glyf pruned")
    assert not CPP_LOG_LINE.search("[2026-12-02 09:00:00,000][xai.tasks.explain][INFO] - explaining 3 sample(s)")


@pytest.mark.slow
def test_warm_main_run_prints_no_tensorflow_or_fonttools_lines(tmp_path, tiny_cache, tiny_demo_run):
    """A warm ``python main.py`` (demo model cached) as a user starts it: one line per step, none of TensorFlow's."""
    assert tiny_demo_run[0].returncode == 0, tiny_demo_run[0].stderr[-3000:]
    proc = main_as_users_run_it(
        [*TINY, FEW_SMOOTHGRAD_SAMPLES, f"paths.cache_dir={tiny_cache}", f"hydra.run.dir={tmp_path / 'run'}"]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_quiet(proc)
    output = proc.stdout + proc.stderr
    assert "using cached demo model" in output
    assert "explaining: " in output  # the progress of explaining the samples, as log lines off a terminal


def test_progress_logs_every_tenth_off_a_terminal(caplog):
    from core.progress import Progress, progress

    logger = logging.getLogger("test.progress")
    with caplog.at_level(logging.INFO, logger="test.progress"):
        with Progress(30, "explaining", unit="sample", logger=logger) as bar:
            for _ in range(30):
                bar.update()
        assert list(progress(["a", "b", "c"], "figures", logger=logger)) == ["a", "b", "c"]
        with Progress(0, "nothing", logger=logger) as bar:
            bar.update(0)
    lines = [r.getMessage() for r in caplog.records if r.name == "test.progress"]
    assert lines == [f"explaining: {n}/30 sample" for n in range(3, 31, 3)] + [
        f"figures: {n}/3 item" for n in (1, 2, 3)
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_bar_on_a_terminal_and_logs_nothing(monkeypatch, caplog):
    from core.progress import Progress

    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    logger = logging.getLogger("test.progress.tty")
    with (
        caplog.at_level(logging.INFO, logger="test.progress.tty"),
        Progress(4, "comparison figures", "sample", logger) as bar,
    ):
        assert bar.bar is not None
        bar.update(4)
        assert bar.bar.n == 4
    assert "comparison figures:" in terminal.getvalue() and "sample/s" in terminal.getvalue()
    assert not [r for r in caplog.records if r.name == "test.progress.tty"]
