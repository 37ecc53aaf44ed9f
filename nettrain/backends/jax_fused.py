"""The fused JAX training path: each epoch's steps compiled as one ``jax.lax.scan``.

``model.fit`` on JAX runs a Python loop over calls of ``steps_per_execution`` batches; here
the epoch's batches go to the device at once and, on an accelerator, an epoch is one call of
one XLA program (a ``lax.scan`` over the batches). On CPU each batch is one call of the
compiled step, which gathers the batch's rows (the epoch's order, given as indices) from the
training arrays put on the device once a fit, with no callback between the steps: XLA:CPU
runs a convolution inside a loop about 10x slower, and unrolling 32 steps took minutes to
compile under load. Each step is
Keras's own ``model.train_step(state, batch)`` (``stateless_call``, the compiled loss,
``optimizer.stateless_apply``, the metric variables), so the weights are those of
``model.fit`` on the same batches, to float tolerance. Callbacks run as under ``model.fit``
with ``steps_per_execution`` equal to the epoch: ``on_train_batch_end`` once per epoch,
``on_epoch_end`` with the epoch's logs and the validation's, after the variables are written
back to the model (checkpoints, EarlyStopping, CSVLogger and the progress display see normal
epochs).

Callers: :mod:`nettrain.engine.train` asks :func:`refusal` whether a fit may take this path,
then calls :func:`fit` instead of ``model.fit``. Under ``keras.distribution.DataParallel``
over several processes (:mod:`nettrain.backends.distributed`) each process feeds its share
of every global batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from nettrain.config.schema import Config

# The epoch's arrays go to the device whole: at most this share of the device's memory (or,
# without a figure, of DEFAULT_LIMIT bytes: CPU memory).
MEMORY_SHARE = 0.5
DEFAULT_LIMIT = 4 * 2**30
SCAN_ON_CPU = False  # the accelerators' lax.scan on CPU too (the tests check both ways)


def refusal(config: Config, model: Any, arrays: tuple[Any, ...] | None) -> str | None:
    """Why the fused path cannot run this fit (None: it can); the reason is said to the user.

    Args:
        config: the run's config (``compile`` and ``fit`` settings).
        model: the compiled Keras model.
        arrays: the training split's ``(x, y, w)`` numpy arrays, or None when the data is
            streamed or has several inputs (a tf.data pipeline).
    """
    import keras

    if keras.backend.backend() != "jax":
        return f"the Keras backend is {keras.backend.backend()}, not jax"
    if arrays is None:
        return "the training data is streamed or has several inputs (it is not one array)"
    if config.compile.steps_per_execution != "auto":
        return (f"compile.steps_per_execution is {config.compile.steps_per_execution} (the "
                "fused path runs an epoch a call; 'auto' allows it)")
    if config.compile.run_eagerly or config.compile.jit_compile is False:
        return "compile.run_eagerly or compile.jit_compile: false asks for no compiled loop"
    if config.fit.class_weight is not None:
        return "fit.class_weight is set (model.fit turns it into sample weights)"
    if config.fit.steps_per_epoch is not None:
        return "fit.steps_per_epoch is set (epochs are not whole passes)"
    size = sum(a.nbytes for a in arrays if a is not None)
    limit = _device_limit()
    if size > limit:
        return (f"the training arrays ({size / 2**20:,.0f} MiB) exceed {MEMORY_SHARE:.0%} of "
                f"the device memory ({limit / 2**20:,.0f} MiB)")
    return None


def _device_limit() -> float:
    import jax

    stats = jax.local_devices()[0].memory_stats() or {}
    return MEMORY_SHARE * stats.get("bytes_limit", DEFAULT_LIMIT / MEMORY_SHARE)


def fit(model: Any, x: Any, y: Any, w: Any = None, *, batch_size: int, epochs: int,
        initial_epoch: int = 0, order: Callable[[int], Any] | None = None,
        callbacks: list[Any] | tuple[Any, ...] = (), validation_data: Any = None,
        validation_freq: int = 1) -> Any:
    """Train ``model`` on the arrays as ``model.fit`` would, an epoch per compiled call.

    Args:
        model: a compiled Keras model on the JAX backend.
        x, y, w: the training inputs, targets and sample weights (numpy; ``w`` optional).
        batch_size: rows per global batch (a multiple of the processes); the last batch of
            an epoch may be short.
        epochs, initial_epoch: as ``model.fit``'s.
        order: the order of the rows in epoch ``e`` (a permutation; None: as stored), so a
            shuffled fit sees the batches ``model.fit`` would have seen from the same order.
        callbacks: Keras callbacks (a list, or a ``CallbackList``).
        validation_data: what ``model.evaluate`` takes as ``x`` (a dataset), run after the
            epochs ``validation_freq`` selects.

    Returns ``model.history``. Example, on the JAX backend::

        jax_fused.fit(model, x, y, batch_size=128, epochs=3)
    """
    import jax
    import numpy as np
    from keras import callbacks as keras_callbacks

    from nettrain.backends.distributed import check_batch_size

    n = len(x)
    processes, index = this_process()
    check_batch_size(batch_size, processes)  # each process's share: no row left out
    steps, rest = divmod(n, batch_size)
    model._symbolic_build(data_batch=_batch((x[:batch_size], y[:batch_size],
                                             None if w is None else w[:batch_size])))
    if not isinstance(callbacks, keras_callbacks.CallbackList):
        callbacks = keras_callbacks.CallbackList(
            list(callbacks), add_history=True, add_progbar=False, verbose=0, epochs=epochs,
            steps=steps + bool(rest), model=model)
    # On CPU in one process the training arrays go to the device once, and each step gathers
    # its batch by the epoch's order there: no copy of the whole set in the epoch's order
    # each epoch (on the MNIST MLP about 0.1-0.2 CPU s an epoch, before any step could run).
    held = _place((x, y, w), 1, stacked=False) if not _scans() and processes == 1 else None
    run_epoch = _compile(model, donate=True, scan="gather" if held is not None else True)
    model.stop_training = False
    several = processes > 1
    callbacks.on_train_begin()
    logs: dict[str, Any] = {}
    # Several processes stop together, at the end of an epoch they all agree on (one stopping
    # while another waits in a step's collective breaks the collectives): a Ctrl-C or SIGTERM
    # is noted for the whole loop, and the processes ask each other at each epoch's end.
    with _whole(at_once=False) if several else contextlib.nullcontext([]) as noted:
        for epoch in range(initial_epoch, epochs):
            model.reset_metrics()
            callbacks.on_epoch_begin(epoch)
            callbacks.on_train_batch_begin(0)
            rows = np.arange(n) if order is None else np.asarray(order(epoch))
            state = _state(model)
            try:  # each step's call donates (deletes) the state it is given: see _whole
                if steps and held is not None:
                    picked = jax.device_put(np.asarray(rows[:steps * batch_size], np.int32)
                                            .reshape(steps, batch_size))
                    for i in range(steps):
                        with _whole():
                            step_logs, state = run_epoch(state, held, picked, i)
                elif steps:
                    batches = _place(tuple(None if a is None else
                                           _steps(a, rows[:steps * batch_size], steps,
                                                  processes, index) for a in (x, y, w)),
                                     processes, stacked=True)
                    if _scans():
                        with _whole():
                            step_logs, state = run_epoch(state, batches)
                    else:
                        for i in range(steps):
                            with _whole():
                                step_logs, state = run_epoch(state, batches, i)
                if rest:  # the short last batch: its own (smaller) program, compiled once
                    last = rows[steps * batch_size:]
                    # Rows that do not split among the processes go whole to each one: the
                    # mean of a batch fed N times over is the batch's own mean.
                    split = rest % processes == 0
                    batch = _place(tuple(None if a is None else
                                         (_share(a[last], processes, index) if split
                                          else a[last]) for a in (x, y, w)),
                                   processes, stacked=False)
                    with _whole():
                        step_logs, state = _compile(model, donate=True, scan=False)(state,
                                                                                    batch)
            finally:  # also on Ctrl-C: the model holds live arrays, and the caller can save
                _write_back(model, state)
            logs = {k: float(v) for k, v in
                    model._get_metrics_result_or_logs(jax.device_get(step_logs)).items()}
            callbacks.on_train_batch_end(steps + bool(rest) - 1, logs)
            epoch_logs = dict(logs)
            if validation_data is not None and (epoch + 1) % validation_freq == 0:
                val = model.evaluate(x=validation_data, verbose=0, return_dict=True,
                                     callbacks=callbacks)
                epoch_logs.update({f"val_{k}": float(v) for k, v in val.items()})
            callbacks.on_epoch_end(epoch, epoch_logs)
            logs = epoch_logs
            if several and _anyone(noted):
                break
            if model.stop_training:
                break
    if noted:  # every process asked, and each one stops here
        raise KeyboardInterrupt
    if epochs > initial_epoch:
        model.optimizer.finalize_variable_values(model.trainable_weights)
    callbacks.on_train_end(logs=logs)
    return model.history


def describe(samples: int, batch_size: int) -> str:
    """One line for the user: what the fused path does with this fit."""
    full, rest = divmod(samples, batch_size)
    parts = [f"{full} step{'s' * (full != 1)} of {batch_size} rows"] if full else []
    if rest:  # the short last batch
        parts.append(f"{'one' if full else 'one step'} of {rest} row{'s' * (rest != 1)}")
    batches = " and ".join(parts)
    how = f"{batches} an epoch, the full ones in one lax.scan" if _scans() else \
        f"{batches} an epoch, compiled, no callback between them (on CPU)"
    return f"Training fused on JAX: the epoch's batches on the device, {how}."


def _scans() -> bool:
    """Whether an epoch is one ``lax.scan``: on an accelerator (or with SCAN_ON_CPU)."""
    import jax

    return SCAN_ON_CPU or jax.default_backend() != "cpu"


def this_process() -> tuple[int, int]:
    """(processes, this one's index) under a distribution over several processes, else (1, 0)."""
    import keras
    from keras import distribution

    if keras.backend.backend() != "jax" or distribution.distribution() is None:
        return 1, 0  # and jax, perhaps not installed, is never imported
    import jax

    return jax.process_count(), jax.process_index()


def _batch(arrays: tuple[Any, ...]) -> Any:
    """Keras's batch structure: x alone, (x, y) or (x, y, w)."""
    present = tuple(a for a in arrays if a is not None)
    return present[0] if len(present) == 1 else present


def _steps(a: Any, rows: Any, steps: int, processes: int, index: int) -> Any:
    """The epoch's full batches of ``a`` as one array (steps, batch, ...): this process's
    share of each global batch."""
    stacked = a[rows].reshape(steps, -1, *a.shape[1:])
    share = stacked.shape[1] // processes
    return stacked[:, index * share:(index + 1) * share] if processes > 1 else stacked


def _share(a: Any, processes: int, index: int) -> Any:
    share = len(a) // processes
    return a[index * share:(index + 1) * share]


def _place(arrays: tuple[Any, ...], processes: int, stacked: bool) -> Any:
    """The arrays on the device: as they are in one process; under a distribution, global
    arrays whose batch axis (1 for an epoch's stacked batches, else 0) spans the processes,
    each process giving its own share."""
    import jax
    from keras import distribution

    dist = distribution.distribution()
    if dist is None:
        return _batch(tuple(None if a is None else jax.device_put(a) for a in arrays))
    mesh = dist.device_mesh.backend_mesh
    axis = 1 if stacked else 0

    def globalise(a: Any) -> Any:
        spec = [None] * a.ndim
        spec[axis] = dist.batch_dim_name
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*spec))
        shape = list(a.shape)
        shape[axis] *= processes
        return jax.make_array_from_process_local_data(sharding, a, tuple(shape))

    return _batch(tuple(None if a is None else globalise(a) for a in arrays))


@contextlib.contextmanager
def _whole(at_once: bool = True) -> Iterator[list[tuple[int, Any]]]:
    """Ctrl-C or SIGTERM waits for the step in hand to end, then acts (KeyboardInterrupt);
    ``at_once=False``: only noted, in the list it gives, for the caller to act on.

    A step's call donates the state it is given, so a stop raised between the call's return
    and the assignment of the new state left the model holding deleted arrays: the run's
    save then failed ("Array has been deleted") and run.json stayed ``running``."""
    import signal

    noted: list[tuple[int, Any]] = []
    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if callable(handler):  # only the signals that stop Python with an exception
            with contextlib.suppress(ValueError):  # not the main thread: as it was
                signal.signal(signum, lambda number, frame: noted.append((number, frame)))
                previous[signum] = handler
    try:
        yield noted
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if noted and at_once and noted[0][0] in previous:
            previous[noted[0][0]](*noted[0])  # the CLI's raises; a deferring one notes
            raise KeyboardInterrupt


def _anyone(noted: list[Any]) -> bool:
    """Whether any of the run's processes was told to stop (a collective: all ask)."""
    import numpy as np
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.int32(bool(noted)))))


def _state(model: Any) -> tuple[list[Any], ...]:
    """The model's training state as Keras's JAX trainer passes it to ``train_step``."""
    return ([v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.optimizer.variables],
            [v.value for v in model.metrics_variables])


def _write_back(model: Any, state: tuple[list[Any], ...]) -> None:
    """Assign the state to the model's variables (what ``model.jax_state_sync`` does)."""
    owners = (model.trainable_variables, model.non_trainable_variables,
              model.optimizer.variables, model.metrics_variables)
    for variables, values in zip(owners, state):
        for variable, value in zip(variables, values):
            variable.assign(value)


def _compile(model: Any, donate: bool, scan: bool | str = True) -> Any:
    """The jit-compiled ``model.train_step`` over the epoch's stacked batches: a ``lax.scan``
    on an accelerator; on CPU one step on batch ``i`` of them. With ``scan`` false: one step on
    one batch (the short last one); ``"gather"``: one step on the rows ``picked[i]`` of the
    whole arrays. Cached on the model, so each compiles once a fit."""
    import jax

    cache = model.__dict__.setdefault("_nettrain_fused", {})
    if scan in cache:
        return cache[scan]

    def step(state: Any, batch: Any) -> Any:
        logs, state = model.train_step(state, batch)
        return state, logs

    def epoch(state: Any, batches: Any) -> Any:
        state, logs = jax.lax.scan(step, state, batches)
        return jax.tree_util.tree_map(lambda v: v[-1], logs), state

    def indexed(state: Any, batches: Any, i: Any) -> Any:  # batch i of the epoch's
        batch = jax.tree_util.tree_map(
            lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=False), batches)
        state, logs = step(state, batch)
        return logs, state

    def one(state: Any, batch: Any) -> Any:
        state, logs = step(state, batch)
        return logs, state

    def gathered(state: Any, arrays: Any, picked: Any, i: Any) -> Any:  # rows picked[i]
        rows = jax.lax.dynamic_index_in_dim(picked, i, keepdims=False)
        return one(state, jax.tree_util.tree_map(lambda a: a[rows], arrays))

    out_shardings = None
    from keras import distribution

    if distribution.distribution() is not None:
        out_shardings = (None, model._get_state_sharding_spec())
    run = gathered if scan == "gather" else (epoch if _scans() else indexed) if scan else one
    cache[scan] = jax.jit(run, donate_argnums=0 if donate else (),
                          out_shardings=out_shardings)
    return cache[scan]
