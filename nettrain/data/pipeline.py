"""tf.data at the edge: every input becomes a batched, prefetched ``tf.data.Dataset``.
Arrays in memory are held as tensors, one copy each (:func:`tensor`), and each batch is sliced
or gathered from them inside TensorFlow (:func:`arrays`); inputs with string columns and
streamed CSVs come from Python generators (:func:`dataset`, :func:`epoch_dataset`).

Each pass over such a dataset is one epoch, and a shuffled epoch's order is drawn from the
seed and the epoch number only, so a resumed run sees the same orders as an uninterrupted one.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from nettrain.data.dataset import Inputs, size, take


def needs_dataset(x: Inputs) -> bool:
    """Named inputs (a CSV with categorical columns) go through tf.data."""
    return isinstance(x, dict)


def to_tensors(x: Inputs) -> Any:
    """Inputs as tensors, for calling a model directly."""
    import tensorflow as tf

    if isinstance(x, dict):
        return {k: tf.constant(v) for k, v in x.items()}
    return tf.constant(x)


def item(x: Inputs, y: np.ndarray | None, w: np.ndarray | None) -> Any:
    """One batch as Keras takes it: x, (x, y) or (x, y, sample_weight)."""
    if y is None:
        return x
    return (x, y) if w is None else (x, y, w)


def shuffled(n: int, seed: int | None, epoch: int) -> np.ndarray:
    """The order of ``n`` rows in one epoch: depends only on the seed and the epoch number."""
    return np.random.default_rng([seed or 0, epoch]).permutation(n)


def epoch_dataset(batches: Callable[[int], Iterator[Any]], steps: int,
                  first_epoch: int = 0) -> Any:
    """A dataset whose n-th pass yields ``batches(first_epoch + n)``.

    Args:
        batches: epoch number -> the batches of that epoch (numpy arrays, or dicts of them).
        steps: batches per epoch (so Keras shows progress and knows where an epoch ends).
        first_epoch: the epoch the first pass is (a resumed run starts later).
    """
    import tensorflow as tf

    epochs = itertools.count(first_epoch)
    sample = next(batches(first_epoch))
    signature = tf.nest.map_structure(
        lambda a: tf.TensorSpec(shape=(None, *a.shape[1:]),
                                dtype=tf.string if a.dtype == object else tf.as_dtype(a.dtype)),
        sample)
    ds = tf.data.Dataset.from_generator(lambda: batches(next(epochs)),
                                        output_signature=signature)
    return ds.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


def arrays(x: np.ndarray, y: np.ndarray | None = None, w: np.ndarray | None = None,
           batch_size: int | None = None, shuffle: bool = False, seed: int | None = None,
           first_epoch: int = 0, repeat: bool = False) -> Any:
    """A batched, prefetched dataset of the arrays ``x`` (and ``y``, ``w``) held in memory.

    The arrays are held as tensors made once per array (:func:`tensor`: fit and evaluate of
    one split share one copy). Unshuffled, each batch is a slice of them. Shuffled, Python
    gives only each epoch's order (one array per epoch, from :func:`shuffled`) and the batches
    are gathered by TensorFlow, overlapped with training by ``prefetch``. The n-th pass over
    the dataset is epoch ``first_epoch + n``, so a resumed run sees the same orders as an
    uninterrupted one. With ``repeat`` the dataset is every epoch after another, endless: fit
    then takes ``steps_per_epoch`` batches (:func:`steps`) an epoch from one iterator, which
    saves making an iterator each epoch (a cost that dominates short epochs).
    """
    import tensorflow as tf

    n, batch = len(x), batch_size or 32
    count = steps(x, batch)
    tensors = tuple(tensor(a) for a in (x, y, w) if a is not None)

    def one(parts: tuple[Any, ...]) -> Any:
        return parts if len(parts) > 1 else parts[0]

    if not shuffle:  # every epoch is the same: slices, no order to draw
        ds = tf.data.Dataset.range(count).map(tf.autograph.experimental.do_not_convert(
            lambda i: one(tuple(t[i * batch:(i + 1) * batch] for t in tensors))),
            num_parallel_calls=tf.data.AUTOTUNE)
        return _in_place((ds.repeat() if repeat else ds).prefetch(tf.data.AUTOTUNE))

    epochs = itertools.count(first_epoch)

    def orders() -> Iterator[np.ndarray]:
        for epoch in (epochs if repeat else [next(epochs)]):
            yield shuffled(n, seed, epoch)

    @tf.autograph.experimental.do_not_convert
    def batches(order: Any) -> Any:
        return tf.data.Dataset.range(count).map(
            tf.autograph.experimental.do_not_convert(
                lambda i: order[i * batch:(i + 1) * batch]))

    @tf.autograph.experimental.do_not_convert
    def gather(rows: Any) -> Any:
        return one(tuple(tf.gather(t, rows) for t in tensors))

    ds = tf.data.Dataset.from_generator(
        orders, output_signature=tf.TensorSpec(shape=(n,), dtype=tf.int64))
    ds = ds.flat_map(batches).map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    if not repeat:
        ds = ds.apply(tf.data.experimental.assert_cardinality(count))
    return _in_place(ds.prefetch(tf.data.AUTOTUNE))


def _in_place(ds: Any) -> Any:
    """The dataset without tf.data's default graph rewrites: to rewrite a pipeline, tf.data
    serializes its graph, and with it every tensor the pipeline holds, into a copy (the whole
    training set again, each time an iterator is made). The pipelines here set their own
    parallelism and prefetch, which is what those rewrites would add."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    return ds.with_options(options)


# TensorFlow keeps a tensor's memory aligned to this many bytes (Eigen's widest vectors).
_ALIGN = 64
_tensors: dict[int, Any] = {}  # id of an array -> its tensor, while the array lives


def tensor(a: np.ndarray) -> Any:
    """The array ``a`` as a tensor, made once while ``a`` lives, in one copy.

    ``tf.constant`` would copy a large array twice (a transient copy on top of the tensor's),
    and each pipeline of the same split would hold a copy of its own. Here the array is copied
    once into memory aligned as TensorFlow needs it, which the tensor then uses in place
    (DLPack); later calls with the same array return the same tensor. The arrays of a run are
    never changed after loading, so the copy stays true to them.
    """
    import tensorflow as tf

    key = id(a)
    if key in _tensors:
        return _tensors[key]
    if a.dtype.kind not in "biuf" or a.size == 0:  # strings, objects: TensorFlow converts
        made = tf.constant(a)
    else:
        buffer = np.empty(a.nbytes + _ALIGN, dtype=np.uint8)
        start = -buffer.ctypes.data % _ALIGN
        aligned = buffer[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
        np.copyto(aligned, a)
        made = tf.experimental.dlpack.from_dlpack(aligned.__dlpack__())
    _tensors[key] = made
    weakref.finalize(a, _tensors.pop, key, None)
    return made


def steps(x: Inputs, batch_size: int | None) -> int:
    """Batches in one pass over ``x``."""
    return -(-size(x) // (batch_size or 32))


def dataset(x: Inputs, y: np.ndarray | None = None, w: np.ndarray | None = None,
            batch_size: int | None = None, shuffle: bool = False, seed: int | None = None,
            first_epoch: int = 0) -> Any:
    """A batched dataset of in-memory ``x`` (and ``y``, ``w``), shuffled per epoch if asked."""
    n, batch = size(x), batch_size or 32

    def batches(epoch: int) -> Iterator[Any]:
        order = shuffled(n, seed, epoch) if shuffle else np.arange(n)
        for start in range(0, n, batch):
            rows = order[start:start + batch]
            yield item(take(x, rows), None if y is None else y[rows],
                       None if w is None else w[rows])

    return epoch_dataset(batches, -(-n // batch), first_epoch)
