"""Quiet TensorFlow start-up: its C++ start-up lines (oneDNN, CUDA probing) are dropped unless asked for."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

# TF_CPP_MIN_LOG_LEVEL: 0 shows everything, 3 hides INFO, WARNING and ERROR lines.
SHOW_ALL = 0


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null (C++ code writes there, below Python's sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def start_tensorflow(log_level: int | None) -> None:
    """Import TensorFlow and probe its devices with C++ logging filtered at ``log_level``.

    TensorFlow ≥ 2.19 writes some start-up lines through absl before it reads
    ``TF_CPP_MIN_LOG_LEVEL``, so a level above 0 also silences file descriptor 2 while TensorFlow
    loads and probes devices; Python errors are still raised. A no-op when TensorFlow is loaded.
    """
    if "tensorflow" in sys.modules:
        return
    if log_level is None:
        import tensorflow  # noqa: F401

        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = str(int(log_level))
    quiet = _stderr_to_devnull() if int(log_level) > SHOW_ALL else contextlib.nullcontext()
    with quiet:
        import tensorflow as tf

        tf.config.list_physical_devices()
