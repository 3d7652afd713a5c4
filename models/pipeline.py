"""In-memory arrays as Keras' own ``tf.data`` batches, with tf.data autotuning switched off.

Why: on the 2-core CI-class machine, ``fit``/``predict`` on NumPy arrays stalled for 20-40 s in
about half of the epochs. A native stack (``py-spy dump --native``) showed the main thread in
``RootDataset::Iterator::~Iterator`` waiting on an ``UnboundedThreadPool`` thread, i.e. the
autotuning thread of the epoch's finished iterator. Autotuning only sizes buffers and
parallelism; the batches, their order and therefore the trained weights are unchanged
(``tests/test_models_pipeline.py`` checks bit-identical weights against ``fit(x, y)``).
"""

from __future__ import annotations

import logging
import os

import numpy as np

log = logging.getLogger(__name__)

# set to "1" to hand NumPy arrays to Keras unchanged (tf.data autotuning on)
AUTOTUNE_ENV = "PRECURSOR_XAI_TFDATA_AUTOTUNE"


def keras_batches(x: np.ndarray, y=None, sample_weight=None, *, batch_size: int, shuffle: bool = False):
    """``tf.data.Dataset`` of the batches ``fit``/``predict`` would make from these arrays (same
    order, same shuffling), without autotuning; ``None`` when that is not possible (then pass
    the arrays to Keras as usual)."""
    if os.environ.get(AUTOTUNE_ENV) == "1":
        return None
    try:
        import tensorflow as tf
        from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

        adapter = ArrayDataAdapter(x, y, sample_weight=sample_weight, batch_size=int(batch_size), shuffle=shuffle)
        # a known length makes Keras renew the iterator at the same moments as for arrays
        dataset = adapter.get_tf_dataset().apply(tf.data.experimental.assert_cardinality(adapter.num_batches))
    except (ImportError, TypeError, AttributeError) as exc:  # a Keras without this private adapter
        log.debug("keras_batches: falling back to NumPy inputs (%s)", exc)
        return None
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
