"""Checkpoints: the always-on callbacks of a run, and putting a run back where it stopped.

At the end of a completed epoch the model (weights and optimizer state) is saved to
``checkpoints/last.keras`` (at most every ``fit.checkpoint_every_seconds``, and always when the
training ends, stops or is interrupted; see :class:`RunCheckpoint`), and to
``checkpoints/best.keras`` the epoch whose monitored value was the best.
Each file is written whole to a temporary name and moved into place with ``os.replace``, so a
SIGKILL leaves the previous file or the new one, never half of one. ``last.keras`` also holds,
as one more member of its zip archive, what Keras does not save but an exact resume needs: the
epoch, the state of every random seed generator (Dropout's), the state of each callback
(EarlyStopping's patience counter, best value and best weights, ReduceLROnPlateau's counters,
ModelCheckpoint's best...) and whether a callback stopped the training. Plain values go in a
JSON member, arrays (best weights) in an ``.npz`` member read without pickle. Keras's loader
ignores both members, so ``keras.saving.load_model`` reads the file as usual.
"""

from __future__ import annotations

import functools
import inspect
import io
import json
import math
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from nettrain.errors import RunError
from nettrain.run import history
from nettrain.run.directory import replacing
from nettrain.run.portable import any_backend

FOLDER = "checkpoints"
LAST = "last.keras"
BEST = "best.keras"
STATE = "nettrain-state.json"  # the extra members of last.keras
ARRAYS = "nettrain-arrays.npz"
TORCH_RNG = "torch.rng_state"  # in ARRAYS: torch's global generator (see _backend_random)


@dataclass
class State:
    """Where a run stands after a completed epoch."""

    epoch: int                                   # epochs completed
    seed_generators: list[list[int]] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    best: float | None = None                    # best value of the monitor so far
    monitor: str | None = None
    logs: dict[str, float] = field(default_factory=dict)
    stopped: bool = False                        # a callback stopped the training
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # callbacks' arrays, by name

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in self.__dict__.items() if k != "arrays"})


class Damaged(RunError):
    """A checkpoint that cannot be read back (truncated, overwritten, not written by nettrain)."""

    def __init__(self, path: Path, reason: str):
        self.path = path
        super().__init__(f"{path} is damaged: {reason}")


def read_state(path: Path) -> State:
    """The resume state stored inside a ``last.keras`` checkpoint; Damaged if unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read(STATE))
            arrays = {}
            if ARRAYS in archive.namelist():
                with np.load(io.BytesIO(archive.read(ARRAYS)), allow_pickle=False) as npz:
                    arrays = {name: npz[name] for name in npz.files}
        state = State(**data, arrays=arrays)
    except zipfile.BadZipFile:
        raise Damaged(path, "it is not a whole zip archive (a .keras file is one)") from None
    except KeyError:
        raise Damaged(path, f"it has no {STATE} (it was not written by nettrain fit)") from None
    except (ValueError, TypeError, OSError, EOFError, zipfile.LargeZipFile) as exc:
        raise Damaged(path, f"its resume state cannot be read ({_reason(exc)})") from None
    if not isinstance(state.epoch, int) or not isinstance(state.callbacks, list):
        raise Damaged(path, f"its resume state cannot be read ({STATE} has no epoch number)")
    return state


def stopper(state: State) -> int | None:
    """The index (in ``fit.callbacks``) of the callback that stopped the training early, as
    the checkpoint's state recorded it (its ``stopped_epoch``); None when none did."""
    for index, saved in enumerate(state.callbacks):
        if saved.get("state", {}).get("stopped_epoch"):
            return index
    return None


def stopped_by(run_dir: Path, config: Any) -> str | None:
    """The name of the callback that stopped a run's training early (``EarlyStopping``; ``a
    callback`` when the stop is recorded but not whose), read from ``checkpoints/last.keras``;
    None when the training was not stopped or there is no readable checkpoint."""
    from nettrain.config.fields import spec_name

    last = run_dir / FOLDER / LAST
    try:
        state = read_state(last) if last.is_file() else None
    except Damaged:
        return None
    if state is None or not state.stopped:
        return None
    index = stopper(state)
    if index is None or index >= len(config.fit.callbacks):
        return "a callback"
    return spec_name(config.fit.callbacks[index])


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or "unreadable"


def _backend_random(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` with the random state of the backend's own generator, where a layer draws
    from it: on torch, Dropout without a ``seed`` takes torch's fast path, which draws from
    torch's global generator (not from its SeedGenerator), so a resume puts that back too,
    at its first batch (:meth:`RunCheckpoint.on_train_batch_begin`)."""
    if keras.backend.backend() != "torch":
        return arrays
    import torch

    return {**arrays, TORCH_RNG: torch.get_rng_state().numpy().copy()}


def _seed_generators(model: Any) -> list[Any]:
    """Every SeedGenerator of the model, in a stable order (layer by layer)."""
    return [sg for layer in model._flatten_layers() for sg in layer._seed_generators]


def restore(model: Any, checkpoint: Path, state: State) -> None:
    """Load weights, optimizer state and random state from ``checkpoint`` into ``model``.

    Raises Damaged when the file's weights cannot be read.
    """
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    try:
        model.load_weights(checkpoint)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError) as exc:
        raise Damaged(checkpoint, f"its weights cannot be read ({_reason(exc)})") from None
    generators = _seed_generators(model)
    if len(generators) != len(state.seed_generators):
        raise ValueError(f"the checkpoint has {len(state.seed_generators)} random seed "
                         f"generators; the model has {len(generators)}")
    for sg, value in zip(generators, state.seed_generators):
        sg.state.assign(np.asarray(value, dtype=sg.state.dtype))


def _callback_state(callback: Any, index: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """What a callback keeps between epochs (not its constructor arguments): plain values for
    JSON, and arrays or lists of arrays (EarlyStopping's ``best_weights``) named
    ``<index>.<attribute>.<item>``. Returns ``({'class', 'state', 'arrays'}, arrays)``.

    Constructor arguments of the class and its bases are settings, not state (a resume may
    change some, and Keras derives values from them, e.g. the sign of ``min_delta``). A
    CSVLogger's state is its file, which a resume continues (see :func:`continue_logs`).
    """
    state: dict[str, Any] = {}
    lists: dict[str, int | None] = {}  # attribute -> number of arrays (None: one array)
    arrays: dict[str, np.ndarray] = {}
    if isinstance(callback, keras.callbacks.CSVLogger):
        return {"class": type(callback).__name__, "state": state, "arrays": lists}, arrays
    arguments = _arguments(type(callback))
    for key, value in vars(callback).items():
        if key in arguments or key in ("model", "params", "_model"):
            continue
        if isinstance(value, (np.generic,)):
            value = value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            state[key] = value
        elif isinstance(value, np.ndarray):
            lists[key] = None
            arrays[f"{index}.{key}.0"] = value
        elif isinstance(value, (list, tuple)) and value and \
                all(isinstance(v, np.ndarray) for v in value):
            lists[key] = len(value)
            arrays.update({f"{index}.{key}.{i}": v for i, v in enumerate(value)})
    return {"class": type(callback).__name__, "state": state, "arrays": lists}, arrays


def _values(variables: list[Any]) -> list[np.ndarray]:
    """A copy of each variable's value, as a snapshot keeps it: ``Variable.numpy()`` copies
    on every backend, and on TensorFlow reads once (``np.array(variable)`` went through
    ``__array__`` and copied twice); ``np.asarray`` copies nothing more, and makes a scalar
    variable's value (TensorFlow gives a NumPy scalar) an array, as ``_Snapshot`` says."""
    return [np.asarray(variable.numpy()) for variable in variables]


@functools.cache
def _arguments(cls: type) -> frozenset[str]:
    """The constructor arguments of ``cls`` and its bases (read once a class: a checkpoint
    reads them at each epoch's end)."""
    return frozenset(name for base in cls.__mro__ if "__init__" in vars(base)
                     for name in inspect.signature(base.__init__).parameters)


def continue_logs(callbacks: list[Any]) -> list[Path]:
    """Make the CSVLoggers among ``callbacks`` append to their files (``append: false`` would
    empty them on a resume); return the files, for the resume to cut to the epochs kept."""
    logs = [c for c in callbacks if isinstance(c, keras.callbacks.CSVLogger)]
    for log in logs:
        log.append = True
    return [Path(log.filename) for log in logs]


class HistoryLog(keras.callbacks.CSVLogger):
    """The run's ``history.csv``: Keras's CSVLogger, appending, with the columns the run logs.

    Keras's logger adds a ``val_`` column of NA for each name when the first epoch logged no
    ``val_`` name; a run without validation data has none, so it gets no ``val_`` columns. A
    file that already has a header (a resumed run, also an older one with NA columns) keeps
    its columns, so the rows appended match it.
    """

    def __init__(self, path: Path, validation: bool, columns: Any = None):
        super().__init__(str(path), append=True)
        self.validation = validation
        self.columns = columns  # epoch -> more cells of its row (fit.fine_tune's phase)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.columns is not None:  # a copy: the other callbacks' logs stay as they are
            logs = {**(logs or {}), **self.columns(epoch)}
        if self.keys is None:
            header = self._header()
            if header:
                self.keys = header
            elif not self.validation:
                self.keys = sorted(logs or {})
        super().on_epoch_end(epoch, logs)

    def _header(self) -> list[str]:
        """The names of the file's header after ``epoch`` (none for a new or empty file)."""
        if self.append_header:
            return []
        names = history.header(Path(self.filename), self.sep)
        return names[1:] if names[:1] == ["epoch"] else []


def _put_back(callback: Any, index: int, saved: dict[str, Any],
              arrays: dict[str, np.ndarray]) -> None:
    """Set a callback's attributes from what :func:`_callback_state` recorded."""
    for key, value in saved["state"].items():
        setattr(callback, key, value)
    for key, count in saved.get("arrays", {}).items():
        if count is None:
            setattr(callback, key, arrays[f"{index}.{key}.0"])
        else:
            setattr(callback, key, [arrays[f"{index}.{key}.{i}"] for i in range(count)])


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


class NaNGuard(keras.callbacks.Callback):
    """Keras's TerminateOnNaN that also remembers where: the epoch and the batch (with
    several steps per execution, the last batch of the call in which the loss went bad)."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch: int | None = None   # the epoch (0-based) whose loss became NaN or inf
        self.batch: int | None = None
        self._current = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._current = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if self.epoch is None and loss is not None and not _finite(loss):
            self.epoch, self.batch = self._current, batch
            self.model.stop_training = True


class RunCheckpoint(keras.callbacks.Callback):
    """Save last.keras (with the resume state) and best.keras at the end of epochs.

    At the end of every completed epoch it takes a snapshot, in memory, of the model's and
    the optimizer's variables and of the resume state. The snapshot is written to last.keras
    when ``every`` seconds passed since the last write (0: every epoch), when a callback
    stopped the training and when the last epoch ends; :meth:`flush` writes one still in
    memory (the end of training, Ctrl-C, SIGTERM, a NaN, a failure). So a SIGKILL loses at
    most the epochs of the last ``every`` seconds and the epoch in progress; anything else
    loses only the epoch in progress. best.keras is the snapshot of the best epoch so far,
    written with the next write of last.keras.

    Put it last in the callback list: its ``on_train_begin`` then puts the other callbacks'
    state back after they reset themselves, and its ``on_epoch_end`` records their state after
    they updated it.

    Args:
        folder: the run's ``checkpoints/`` folder.
        watched: the value that decides "best" (its ``name``, e.g. ``val_loss``, and
            ``better(value, than)``): the run's best-epoch rule and its tie rule
            (:func:`nettrain.engine.best.monitor`), so best.keras is the epoch fit names.
        callbacks: the callbacks whose state travels with the checkpoint.
        guard: the NaNGuard; an epoch whose loss became NaN is not saved.
        resume: the state to put back, when resuming.
        every: the fewest seconds between two writes at the end of an epoch.
    """

    def __init__(self, folder: Path, watched: Any, callbacks: list[Any], guard: NaNGuard,
                 resume: State | None = None, every: float = 0.0) -> None:
        super().__init__()
        self.folder = folder
        self.watched, self.monitor = watched, watched.name
        self.tracked = callbacks
        self.guard = guard
        self.resume = resume
        self.every = every
        # a best value of another monitor (a run resumed under another rule) is not compared
        self.best = resume.best if resume and resume.monitor in (None, self.monitor) else None
        self.completed = resume.epoch if resume else 0  # epochs in last.keras once flushed
        self.written = self.completed                   # epochs in last.keras on the disk
        self._last: _Snapshot | None = None             # not yet written
        self._best: _Snapshot | None = None
        self._since = time.monotonic()
        self._generator = resume.arrays.get(TORCH_RNG) if resume and \
            keras.backend.backend() == "torch" else None
        folder.mkdir(exist_ok=True)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._since = time.monotonic()
        if self.resume is None:
            return
        for index, (callback, saved) in enumerate(zip(self.tracked, self.resume.callbacks)):
            if type(callback).__name__ == saved["class"]:
                _put_back(callback, index, saved, self.resume.arrays)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        # torch's generator as the checkpoint left it, once the fit's data loader drew its
        # seed from it (once a fit, before the first batch: an uninterrupted run does not)
        if self._generator is not None:
            import torch

            torch.set_rng_state(torch.from_numpy(self._generator.copy()))
            self._generator = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self.guard.epoch is not None or not _finite(logs.get("loss")):
            return  # keep the last good checkpoint
        current = logs.get(self.monitor)
        improved = current is not None and _finite(current) and \
            self.watched.better(float(current), self.best)
        if improved:
            self.best = float(current)
        callbacks, arrays = [], {}
        for index, callback in enumerate(self.tracked):
            saved, its_arrays = _callback_state(callback, index)
            callbacks.append(saved)
            arrays.update(its_arrays)
        state = State(
            epoch=epoch + 1,
            seed_generators=[np.asarray(sg.state.numpy()).tolist()
                             for sg in _seed_generators(self.model)],
            callbacks=callbacks,
            best=self.best, monitor=self.monitor,
            logs={k: float(v) for k, v in logs.items() if _finite(v)},
            stopped=bool(self.model.stop_training), arrays=_backend_random(arrays))
        self._last = _Snapshot(state, _values(self._variables()))
        if improved:
            self._best = self._last
        self.completed = epoch + 1
        if self.model.stop_training or epoch + 1 >= self.params.get("epochs", 0) or \
                time.monotonic() - self._since >= self.every:
            self.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        self.flush()

    def flush(self) -> None:
        """Write the snapshot not yet written (and the best one), whatever the model's
        variables hold now (they are put back as they were)."""
        if self._last is None:
            return
        variables = self._variables()
        now = _values(variables)
        try:
            self._write(self._last, variables, self.folder / LAST)
            if self._best is self._last:
                with replacing(self.folder / BEST, suffix=".keras") as tmp:
                    shutil.copyfile(self.folder / LAST, tmp)
            elif self._best is not None:
                self._write(self._best, variables, self.folder / BEST)
        finally:
            for variable, value in zip(variables, now):
                variable.assign(value)
        self.written = self._last.state.epoch
        self._last = self._best = None
        self._since = time.monotonic()

    def _variables(self) -> list[Any]:
        """What a .keras file holds that changes while training: the model's variables
        (weights, seed generators, metrics) and the optimizer's."""
        optimizer = self.model.optimizer
        return [*self.model.variables, *(optimizer.variables if optimizer is not None else [])]

    def _write(self, snapshot: _Snapshot, variables: list[Any], path: Path) -> None:
        for variable, value in zip(variables, snapshot.values):
            variable.assign(value)
        state = snapshot.state
        with replacing(path, suffix=".keras") as tmp:
            with any_backend(self.model):  # loads under every Keras backend
                self.model.save(tmp)
            with zipfile.ZipFile(tmp, "a") as archive:
                archive.writestr(STATE, state.to_json())
                if state.arrays:
                    buffer = io.BytesIO()
                    np.savez(buffer, **state.arrays)
                    archive.writestr(ARRAYS, buffer.getvalue())


@dataclass
class _Snapshot:
    """A completed epoch held in memory: its resume state and its variables' values."""

    state: State
    values: list[np.ndarray]
