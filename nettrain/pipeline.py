"""tf.data at the edge: inputs Keras's numpy adapter cannot take (string columns) become a
batched, prefetched ``tf.data.Dataset``. Plain arrays go to Keras as they are."""

from __future__ import annotations

from typing import Any

import numpy as np

from nettrain.data import Inputs, size


def needs_dataset(x: Inputs) -> bool:
    """Named inputs (a CSV with categorical columns) go through tf.data."""
    return isinstance(x, dict)


def to_tensors(x: Inputs) -> Any:
    """Inputs as tensors, for calling a model directly."""
    import tensorflow as tf

    if isinstance(x, dict):
        return {k: tf.constant(v) for k, v in x.items()}
    return tf.constant(x)


def dataset(x: Inputs, y: np.ndarray | None = None, w: np.ndarray | None = None,
            batch_size: int | None = None, shuffle: bool = False, seed: int | None = None) -> Any:
    """A batched, prefetched dataset of ``x`` (and ``y``, ``w``).

    Shuffling reshuffles every epoch from the seed; the data is in memory already, so it is
    not cached again.
    """
    import tensorflow as tf

    items: Any = x if y is None else ((x, y) if w is None else (x, y, w))
    ds = tf.data.Dataset.from_tensor_slices(items)
    if shuffle:
        ds = ds.shuffle(size(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size or 32).prefetch(tf.data.AUTOTUNE)
