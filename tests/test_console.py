"""A quiet console: TensorFlow's C++ start-up lines and third-party INFO chatter stay out of the output."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import ROOT

# absl/TensorFlow C++ log lines: "I0000 00:00:1796182867.838008   12815 port.cc:153] ...", "E1202 ...", "W..."
CPP_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\]|absl::InitializeLog|cuInit", re.M)
FONTTOOLS_LINE = re.compile(r"subsetting|glyf pruned|fontTools", re.M)


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
