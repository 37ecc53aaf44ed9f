"""The data at the edge: every input becomes a batched pipeline that Keras's ``fit``,
``evaluate`` and ``predict`` take.

On TensorFlow, a prefetched ``tf.data.Dataset``: arrays in
memory are held as tensors, one copy each (:func:`tensor`), and each batch is sliced or
gathered from them inside TensorFlow (:func:`arrays`); inputs with string columns and streamed
CSVs come from Python generators (:func:`dataset`, :func:`epoch_dataset`). On JAX and PyTorch,
a ``keras.utils.PyDataset`` of numpy batches (:func:`numpy_batches`): no TensorFlow import.

Each pipeline runs the batches a :class:`~nettrain.data.steps.Schedule` gives each epoch
(default: one whole pass), and a shuffled pass's order is drawn from the seed and the pass
number only, so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from nettrain.data import steps as planner
from nettrain.data.dataset import Inputs, size, take
from nettrain.data.steps import Schedule, Segment


def needs_dataset(x: Inputs) -> bool:
    """Named inputs (a CSV with categorical columns) go through tf.data."""
    return isinstance(x, dict)


def on_tensorflow() -> bool:
    """Whether Keras runs on TensorFlow in this process (else no tf.data, no TensorFlow)."""
    import keras

    return keras.backend.backend() == "tensorflow"


def to_tensors(x: Inputs) -> Any:
    """Inputs as tensors of the backend, for calling a model directly."""
    if not on_tensorflow():
        import keras

        if isinstance(x, dict):
            return {k: keras.ops.convert_to_tensor(v) for k, v in x.items()}
        return keras.ops.convert_to_tensor(x)
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
    """The order of ``n`` rows in one pass: depends only on the seed and the pass number
    (the epoch number, when an epoch is one pass)."""
    return np.random.default_rng([seed or 0, epoch]).permutation(n)


def _segments(schedule: Schedule, first_epoch: int) -> Callable[[], Iterator[Segment]]:
    """What each iterator over a pipeline runs: every epoch from ``first_epoch`` on, when the
    schedule is endless; otherwise the n-th iterator is epoch ``first_epoch + n`` alone."""
    if schedule.endless:
        return lambda: schedule.following(first_epoch)
    epochs = itertools.count(first_epoch)
    return lambda: iter(schedule.segments(next(epochs)))


def _counted(ds: Any, schedule: Schedule) -> Any:
    """An epoch's pipeline says its batches (Keras's steps and progress); an endless one
    runs on."""
    import tensorflow as tf

    return ds if schedule.endless else \
        ds.apply(tf.data.experimental.assert_cardinality(schedule.per_epoch))


def epoch_dataset(batches: Callable[[int], Iterator[Any]], schedule: Schedule,
                  first_epoch: int = 0) -> Any:
    """A dataset of the batches ``schedule`` gives each epoch, from Python.

    Args:
        batches: pass number -> the batches of that pass (numpy arrays, or dicts of them).
        schedule: which batches of which pass each epoch runs (see :mod:`nettrain.data.steps`).
        first_epoch: the epoch the first pass is (a resumed run starts later).

    A pass read part-way is kept and read on when the next epoch starts where it stopped
    (a streamed CSV is not read again from its start for each epoch). Off TensorFlow, the
    same batches as a :func:`numpy_batches`.
    """
    segments = _segments(schedule, first_epoch)
    reading: dict[str, Any] = {"at": None}  # (pass, next batch) of the pass being read

    def run() -> Iterator[Any]:
        for number, first, end in segments():
            if reading["at"] != (number, first):
                reading["rows"] = itertools.islice(batches(number), first, None)
            for index in range(first, end):
                reading["at"] = None  # while a batch is read, nothing is known
                batch = next(reading["rows"])
                reading["at"] = (number, index + 1)
                yield batch

    if not on_tensorflow():
        return numpy_batches(run, None if schedule.endless else schedule.per_epoch)
    import tensorflow as tf

    signature = tf.nest.map_structure(
        lambda a: tf.TensorSpec(shape=(None, *a.shape[1:]),
                                dtype=tf.string if a.dtype == object else tf.as_dtype(a.dtype)),
        next(batches(0)))
    ds = tf.data.Dataset.from_generator(run, output_signature=signature)
    return _counted(ds, schedule).prefetch(2)


def numpy_batches(run: Callable[[], Iterator[Any]], count: int | None) -> Any:
    """A ``keras.utils.PyDataset`` of the batches ``run()`` yields: ``count`` a pass (None:
    endless). Keras asks a PyDataset for batches 0, 1, 2... in order, from 0 again for each
    iterator it makes (each epoch, unless endless), as tf.data calls a generator again; so
    batch 0 starts ``run()`` anew. Made in a function: ``keras`` is imported only here."""
    import keras

    class _Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.reading: Iterator[Any] = iter(())

        @property
        def num_batches(self) -> int | None:
            return count

        def __len__(self) -> int:
            return count if count is not None else 2**62

        def __getitem__(self, index: int) -> Any:
            if index == 0:
                self.reading = run()
            return next(self.reading)

    return _Batches()


def arrays(x: np.ndarray, y: np.ndarray | None = None, w: np.ndarray | None = None,
           batch_size: int | None = None, shuffle: bool = False, seed: int | None = None,
           first_epoch: int = 0, schedule: Schedule | None = None) -> Any:
    """A batched, prefetched dataset of the arrays ``x`` (and ``y``, ``w``) held in memory.

    The arrays are held as tensors made once per array (:func:`tensor`: fit and evaluate of
    one split share one copy). Unshuffled, each batch is a slice of them. Shuffled, Python
    gives only each pass's order (one array per pass, from :func:`shuffled`) and which of its
    batches to run; the batches are gathered by TensorFlow, overlapped with training by
    ``prefetch``. ``schedule`` says which batches of which pass each epoch runs (default: one
    whole pass of ``batch_size``); an endless one makes one pipeline of every epoch after
    another, which saves making an iterator each epoch (a cost that dominates short epochs).
    Off TensorFlow, numpy batches of the same rows (:func:`dataset`).
    """
    if not on_tensorflow():
        return dataset(x, y, w, batch_size, shuffle, seed, first_epoch, schedule)
    import tensorflow as tf

    schedule = schedule or planner.whole(len(x), batch_size)
    n, batch = len(x), schedule.batch_size
    tensors = tuple(tensor(a) for a in (x, y, w) if a is not None)

    def one(parts: tuple[Any, ...]) -> Any:
        return parts if len(parts) > 1 else parts[0]

    @tf.autograph.experimental.do_not_convert
    def sliced(i: Any) -> Any:
        return one(tuple(t[i * batch:(i + 1) * batch] for t in tensors))

    # In order, the batches are tf.data's own slices of the tensors (no function of ours):
    # making an iterator over a pipeline with a mapped function costs about 6 ms of CPU (the
    # function is instantiated), without one 0.3 ms, and Keras makes two iterators for each
    # validation pass (the digits job: 120 of them, 0.7 CPU seconds).
    in_order = tf.data.Dataset.from_tensor_slices(one(tensors)).batch(batch)
    if not shuffle and schedule.same_every_epoch:  # every epoch the same: no Python at all
        ds = in_order.take(schedule.per_epoch) if schedule.per_epoch < schedule.per_pass \
            else in_order
        return _in_place((ds.repeat() if schedule.endless else ds).prefetch(tf.data.AUTOTUNE))
    segments = _segments(schedule, first_epoch)
    if not shuffle and schedule.endless:  # the passes one after another, from the first batch
        _, first, _ = next(segments())
        return _in_place(in_order.repeat().skip(first).prefetch(tf.data.AUTOTUNE))
    if not shuffle:
        ds = tf.data.Dataset.from_generator(
            lambda: ((first, end) for _, first, end in segments()),
            output_signature=(tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.int64)))
        ds = ds.flat_map(tf.autograph.experimental.do_not_convert(
            lambda first, end: tf.data.Dataset.range(first, end))).map(
            sliced, num_parallel_calls=tf.data.AUTOTUNE)
        return _in_place(_counted(ds, schedule).prefetch(tf.data.AUTOTUNE))

    drawn: dict[int, np.ndarray] = {}  # the order of the pass being run

    def orders() -> Iterator[tuple[np.ndarray, int, int]]:
        for number, first, end in segments():
            if number not in drawn:
                drawn.clear()
                drawn[number] = shuffled(n, seed, number)
            yield drawn[number], first, end

    @tf.autograph.experimental.do_not_convert
    def rows(order: Any, first: Any, end: Any) -> Any:  # a pass's batches first..end-1
        return tf.data.Dataset.from_tensor_slices(order[first * batch:end * batch]).batch(batch)

    @tf.autograph.experimental.do_not_convert
    def gather(picked: Any) -> Any:
        return one(tuple(tf.gather(t, picked) for t in tensors))

    ds = tf.data.Dataset.from_generator(orders, output_signature=(
        tf.TensorSpec(shape=(n,), dtype=tf.int64), tf.TensorSpec((), tf.int64),
        tf.TensorSpec((), tf.int64)))
    ds = ds.flat_map(rows).map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    return _in_place(_counted(ds, schedule).prefetch(tf.data.AUTOTUNE))


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


def dataset(x: Inputs, y: np.ndarray | None = None, w: np.ndarray | None = None,
            batch_size: int | None = None, shuffle: bool = False, seed: int | None = None,
            first_epoch: int = 0, schedule: Schedule | None = None) -> Any:
    """A batched dataset of in-memory ``x`` (and ``y``, ``w``), each pass shuffled if asked;
    ``schedule`` as for :func:`arrays`."""
    n = size(x)
    schedule = schedule or planner.whole(n, batch_size)
    batch = schedule.batch_size

    def batches(number: int) -> Iterator[Any]:
        order = shuffled(n, seed, number) if shuffle else None
        for start in range(0, n, batch):
            rows = slice(start, start + batch) if order is None else order[start:start + batch]
            yield item(take(x, rows), None if y is None else y[rows],
                       None if w is None else w[rows])

    return epoch_dataset(batches, schedule, first_epoch)
