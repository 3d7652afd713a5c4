"""Device set-up: GPU memory growth, optional mixed precision, and a device description."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

GROWTH_VARIABLE = "TF_FORCE_GPU_ALLOW_GROWTH"


def allow_memory_growth_before_start() -> None:
    """Ask TensorFlow, before it starts, to grow GPU memory on demand instead of reserving all of it.

    ``main.py`` calls this before importing TensorFlow, so every GPU of the process (one per job under
    ``hydra/launcher=slurm``) gets memory growth even when TensorFlow initialises it before
    :func:`configure_devices` runs. A value the user set is kept.
    """
    os.environ.setdefault(GROWTH_VARIABLE, "true")


def _gpu_name(gpu: object) -> str:
    import tensorflow as tf

    try:
        details = tf.config.experimental.get_device_details(gpu)
    except (RuntimeError, ValueError):
        details = {}
    return str(details.get("device_name") or getattr(gpu, "name", "GPU"))


def configure_devices(mixed_precision: bool = False) -> str:
    """Enable memory growth on every GPU, set the precision policy, and describe the device.

    ``mixed_precision=True`` sets Keras' ``mixed_float16`` policy (Micikevicius et al., 2018,
    "Mixed Precision Training") only when a GPU exists; on CPU it is ignored with a warning.
    Otherwise the policy is (re)set to ``float32``.  Returns ``"CPU"`` or the GPU name
    (``"2 x <name>"`` for several), which is also logged.
    """
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError) as error:  # already initialised in this process
            log.debug("memory growth not changed for %s: %s", gpu.name, error)
    if mixed_precision and gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        if mixed_precision:
            log.warning("runtime.mixed_precision=true ignored: no GPU found, running in float32 on CPU")
        keras.mixed_precision.set_global_policy("float32")
    if gpus:
        names = [_gpu_name(gpu) for gpu in gpus]
        description = names[0] if len(set(names)) == 1 else ", ".join(names)
        if len(gpus) > 1 and len(set(names)) == 1:
            description = f"{len(gpus)} x {description}"
    else:
        description = "CPU"
    log.info("device: %s (precision policy %s)", description, keras.mixed_precision.global_policy().name)
    return description
