"""Checkpoints: the always-on callbacks of a run, and putting a run back where it stopped.

At the end of every completed epoch the model (weights and optimizer state) is saved to
``checkpoints/last.keras``, and to ``checkpoints/best.keras`` when the monitored value improved.
Each file is written whole to a temporary name and moved into place with ``os.replace``, so a
SIGKILL leaves the previous file or the new one, never half of one. ``last.keras`` also holds,
as one more member of its zip archive, what Keras does not save but an exact resume needs: the
epoch, the state of every random seed generator (Dropout's), and the state of each callback
(EarlyStopping's patience counter, ReduceLROnPlateau's...). Keras's loader ignores that member,
so ``keras.saving.load_model`` reads the file as usual.
"""

from __future__ import annotations

import inspect
import json
import math
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from nettrain.runs import replacing

FOLDER = "checkpoints"
LAST = "last.keras"
BEST = "best.keras"
STATE = "nettrain-state.json"  # the extra member of last.keras


@dataclass
class State:
    """Where a run stands after a completed epoch."""

    epoch: int                                   # epochs completed
    seed_generators: list[list[int]] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    best: float | None = None                    # best value of the monitor so far
    monitor: str | None = None
    logs: dict[str, float] = field(default_factory=dict)


def read_state(path: Path) -> State:
    """The resume state stored inside a ``last.keras`` checkpoint."""
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read(STATE))
    return State(**data)


def _seed_generators(model: Any) -> list[Any]:
    """Every SeedGenerator of the model, in a stable order (layer by layer)."""
    return [sg for layer in model._flatten_layers() for sg in layer._seed_generators]


def restore(model: Any, checkpoint: Path, state: State) -> None:
    """Load weights, optimizer state and random state from ``checkpoint`` into ``model``."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(checkpoint)
    generators = _seed_generators(model)
    if len(generators) != len(state.seed_generators):
        raise ValueError(f"the checkpoint has {len(state.seed_generators)} random seed "
                         f"generators; the model has {len(generators)}")
    for sg, value in zip(generators, state.seed_generators):
        sg.state.assign(np.asarray(value, dtype=sg.state.dtype))


def _callback_state(callback: Any) -> dict[str, Any]:
    """The plain values a callback keeps between epochs (not its constructor arguments)."""
    arguments = set(inspect.signature(type(callback).__init__).parameters)
    state = {}
    for key, value in vars(callback).items():
        if key in arguments or key in ("model", "params", "_model"):
            continue
        if isinstance(value, (np.generic,)):
            value = value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            state[key] = value
    return {"class": type(callback).__name__, "state": state}


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


class NaNGuard(keras.callbacks.Callback):
    """Keras's TerminateOnNaN that also remembers where: the epoch and the batch."""

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
    """Save last.keras (with the resume state) and best.keras after each completed epoch.

    Put it last in the callback list: its ``on_train_begin`` then puts the other callbacks'
    state back after they reset themselves, and its ``on_epoch_end`` records their state after
    they updated it.

    Args:
        folder: the run's ``checkpoints/`` folder.
        monitor: the value that decides "best" (lower is better), e.g. ``val_loss``.
        callbacks: the callbacks whose state travels with the checkpoint.
        guard: the NaNGuard; an epoch whose loss became NaN is not saved.
        resume: the state to put back, when resuming.
    """

    def __init__(self, folder: Path, monitor: str, callbacks: list[Any], guard: NaNGuard,
                 resume: State | None = None) -> None:
        super().__init__()
        self.folder = folder
        self.monitor = monitor
        self.tracked = callbacks
        self.guard = guard
        self.resume = resume
        self.best = resume.best if resume else None
        self.completed = resume.epoch if resume else 0
        folder.mkdir(exist_ok=True)

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.resume is None:
            return
        for callback, saved in zip(self.tracked, self.resume.callbacks):
            if type(callback).__name__ == saved["class"]:
                for key, value in saved["state"].items():
                    setattr(callback, key, value)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self.guard.epoch is not None or not _finite(logs.get("loss")):
            return  # keep the last good checkpoint
        current = logs.get(self.monitor)
        improved = current is not None and _finite(current) and (
            self.best is None or float(current) < self.best)
        if improved:
            self.best = float(current)
        state = State(
            epoch=epoch + 1,
            seed_generators=[np.asarray(sg.state.numpy()).tolist()
                             for sg in _seed_generators(self.model)],
            callbacks=[_callback_state(c) for c in self.tracked],
            best=self.best, monitor=self.monitor,
            logs={k: float(v) for k, v in logs.items() if _finite(v)})
        self._save(state, improved)
        self.completed = epoch + 1

    def _save(self, state: State, improved: bool) -> None:
        last = self.folder / LAST
        with replacing(last, suffix=".keras") as tmp:
            self.model.save(tmp)
            with zipfile.ZipFile(tmp, "a") as archive:
                archive.writestr(STATE, json.dumps(state.__dict__))
        if improved:
            with replacing(self.folder / BEST, suffix=".keras") as tmp:
                shutil.copyfile(last, tmp)
