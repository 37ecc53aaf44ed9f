"""Training and evaluation: validated config -> data + model -> fit -> run directory."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nettrain import callbacks, lock, progress, record, reports, rundir, runtime, saving
from nettrain.record import now as _now
from nettrain.config import Config, load_config
from nettrain.data import Data, load_data
from nettrain.errors import DataError, RunError, UsageError
from nettrain.model import build_model, resolve_all, resolve_compiled


@dataclass
class Prepared:
    """Everything fit does before training: the data and the compiled model."""

    config: Config
    data: Data
    model: Any
    callbacks: list[Any]
    strategy: Any = None


def prepare(config: Config, echo: Any = lambda text: None) -> Prepared:
    """Construct every Keras object, load and split the data, build and compile the model.

    Seeds, op determinism and the dtype policy are set first (see :mod:`nettrain.runtime`);
    with ``distribute: mirrored`` the model and its optimizer are made in the strategy's scope.
    Raises ConfigError for mistakes in the config, DataError for unreadable data.
    """
    runtime.apply(config, echo)
    strategy = runtime.strategy(config)
    with runtime.scope(strategy):
        resolved = resolve_all(config)  # bad Keras names fail before any data is read
        data = load_data(config)
        model = build_model(config, data, resolved)
    return Prepared(config, data, model, resolved.callbacks, strategy)


def summary_text(model: Any) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda text, line_break=True: lines.append(text))
    return "\n".join(lines).rstrip() + "\n"


def with_seed(config: Config) -> Config:
    """The config with a seed: a run without one gets a random seed, recorded in the run."""
    if config.seed is not None:
        return config
    return config.model_copy(update={"seed": secrets.randbelow(2**31)})


def fit(config: Config, run_dir: str | Path | None = None, echo: Any = print,
        display: progress.Display | None = None,
        extra_callbacks: tuple[Any, ...] = ()) -> Path:
    """Train the config's model and write its run directory; return the directory.

    Args:
        config: a validated config.
        run_dir: an explicit new or empty directory (default ``runs/<name>/<date>-<time>``).
        echo: where warnings go (default ``print``).
        display: where the progress goes (default: plain lines through ``echo``; see
            :mod:`nettrain.progress`).
        extra_callbacks: Keras callbacks of the caller (not the config's), called after the run's
            own each epoch, so the epoch's history row and checkpoint are written when they
            act (``nettrain sweep``'s pruning stops a trial with ``model.stop_training``).
    """
    display = display or progress.Display(echo=echo)
    if run_dir is not None:  # refuse a used --run-dir before any work
        rundir.check_new_dir(Path(run_dir))
    config = with_seed(config)
    prepared = prepare(config, echo)
    path = rundir.create_run_dir(config, run_dir)
    with lock.locked(path, new=True):
        rundir.write_atomic(path / rundir.CONFIG, config.to_yaml())
        rundir.write_json(path / rundir.DATASET, {**prepared.data.describe(),
                                              "classifier": config.is_classifier})
        rundir.write_atomic(path / rundir.SUMMARY, summary_text(prepared.model))
        rundir.write_json(path / rundir.RUN, {**record.start(config),
                                          "replicas": _replicas(prepared)})
        callbacks.place(config, prepared.callbacks, path)  # their files go in the run dir
        display.note(f"Run directory: {path}")
        return _train(prepared, path, echo, display, extra=extra_callbacks)


def resume(run_path: str | Path, config_path: str | Path | None = None,
           overrides: list[str] | None = None, echo: Any = print,
           allow_changed_data: bool = False, display: progress.Display | None = None) -> Path:
    """Continue an interrupted run from its last completed epoch, in the same directory.

    Args:
        run_path: the run directory.
        config_path: a config file for the resume (default: the run's own ``config.yaml``).
        overrides: ``KEY=VALUE`` changes; only keys that keep the run the same run may change
            (``fit.epochs``, a callback's patience, ...; see :mod:`nettrain.resume`).
        allow_changed_data: resume on data files that changed since training (warned).
        echo, display: where warnings and the progress go, as for :func:`fit`.

    With a seed and numpy data on CPU the result is bit-identical to an uninterrupted run.
    A run whose training ended (its epochs done, or a callback stopped it) but that was not
    saved (killed, or the save failed) is finished: evaluated and saved, with no training. A
    completed run is refused unless ``fit.epochs`` is raised; one that a callback stopped
    early, unless one of its callbacks changes (a new patience). A run with no completed
    epoch starts again from the beginning, in its directory. Only one process at a time may
    train a run (see :mod:`nettrain.rundir`).
    """
    run = rundir.open_run(run_path)
    with lock.locked(run.path):
        return _resume(run, config_path, overrides, echo, allow_changed_data,
                       display or progress.Display(echo=echo))


def _resume(run: rundir.Run, config_path: str | Path | None, overrides: list[str] | None,
            echo: Any, allow_changed_data: bool, display: progress.Display) -> Path:
    from nettrain import checkpoints
    from nettrain.resume import check_changes

    path = run.path
    status = rundir.read_json(path / rundir.RUN) if (path / rundir.RUN).is_file() else {}
    new = load_config(Path(config_path) if config_path else path / rundir.CONFIG,
                      overrides or [])
    if new.seed is None:  # "any seed": keep the one the run drew
        new = new.model_copy(update={"seed": run.config.seed})
    changes = check_changes(run.config, new, str(path))
    record.check_data(new, status.get("data_sha256"), allow_changed_data, echo,
                      str(path / rundir.RUN))
    last = path / checkpoints.FOLDER / checkpoints.LAST
    state = _read_checkpoint(path, last) if last.is_file() else None
    epochs = _epochs_to_train(path, run.config, new, state, status.get("status"), changes)
    for key, (was, now) in changes.items():
        display.note(f"Resume changes {key}: {was!r} -> {now!r}")
    prepared = prepare(new, echo)
    if state is not None:
        try:
            with runtime.scope(prepared.strategy):
                checkpoints.restore(prepared.model, last, state)
        except checkpoints.Damaged as exc:
            raise RunError(_damaged_advice(path, exc)) from None
    callbacks.place(new, prepared.callbacks, path)
    _remove_leftovers(path)
    for history in [path / rundir.HISTORY, *checkpoints.continue_logs(prepared.callbacks)]:
        _truncate_history(history, state.epoch if state else 0)
    rundir.write_atomic(path / rundir.CONFIG, new.to_yaml())
    done = state.epoch if state else 0
    resumes = [*status.get("resumed", []), {
        "at": _now(), "from_epoch": done, "command": sys.argv,
        "host": socket.gethostname(), "changes": {k: list(v) for k, v in changes.items()}}]
    rundir.update_json(path / rundir.RUN, status="running", ended=None, resumed=resumes,
                     error=None)
    if epochs == done:
        display.note(f"Finishing {path}: its training ended after epoch {done} (status "
             f"{status.get('status', 'unknown')}) and no epoch is left to train; evaluating "
             "and saving it.")
    elif state is None:
        display.note(f"Starting {path} again from the beginning: no epoch of it was completed.")
    else:
        display.note(f"Resuming {path} after epoch {done} of {epochs}")
    return _train(prepared, path, echo, display, state, epochs)


def _read_checkpoint(path: Path, last: Path) -> Any:
    from nettrain import checkpoints

    try:
        return checkpoints.read_state(last)
    except checkpoints.Damaged as exc:
        raise RunError(_damaged_advice(path, exc)) from None


def _damaged_advice(path: Path, exc: Any) -> str:
    """What to do about a damaged last.keras: resume from best.keras when it is whole."""
    from nettrain import checkpoints

    best = path / checkpoints.FOLDER / checkpoints.BEST
    try:
        best_epoch = checkpoints.read_state(best).epoch if best.is_file() else None
    except checkpoints.Damaged:
        best_epoch = None
    again = f"start the run again as a new run: nettrain fit {path}/{rundir.CONFIG}"
    if best_epoch is None or best.read_bytes() == exc.path.read_bytes():
        return f"{exc}. It cannot be resumed from; {again}"
    return (f"{exc}. The checkpoint of the best epoch ({best_epoch}) is whole: resume from it "
            f"(the epochs after it are trained again) with: cp {best} {exc.path} && "
            f"nettrain fit --resume {path}\nOr {again}")


def _epochs_to_train(path: Path, old: Config, new: Config, state: Any, status: str | None,
                     changes: dict[str, Any]) -> int:
    """The epoch a resume trains to: ``new.fit.epochs``, or the epochs done when the run's
    training ended (all epochs done, or a callback stopped it and no callback's patience,
    min_delta or start_from_epoch changed). UsageError when the run is completed and there
    is nothing to train."""
    if state is None:
        return new.fit.epochs
    decided = any(key.startswith("fit.callbacks") and
                  key.endswith((".patience", ".min_delta", ".start_from_epoch"))
                  for key in changes)
    if state.stopped and not decided:
        epochs = state.epoch
    else:
        epochs = max(new.fit.epochs, state.epoch)
    if epochs > state.epoch or status != "completed":
        return epochs
    if not state.stopped:
        raise UsageError(f"--resume {path}: the run has completed {state.epoch} of "
                         f"{new.fit.epochs} epochs (status completed); it is finished and "
                         "nothing is left to train. To train longer: nettrain fit --resume "
                         f"{path} fit.epochs={state.epoch + 10}")
    index, name, patience = _stopper(old, state)
    who = f"callback {name} (fit.callbacks.{index})" if name else "a callback"
    advice = (f"nettrain fit --resume {path} fit.callbacks.{index}.{name}.patience="
              f"{patience + 10}" if name else "change one of its fit.callbacks")
    raise UsageError(f"--resume {path}: the run stopped early after epoch {state.epoch} of "
                     f"{old.fit.epochs} ({who} stopped it; status completed), so it is "
                     "finished. Raising fit.epochs alone would stop it again at once. To train "
                     f"on, give the callback a new patience: {advice}")


def _stopper(config: Config, state: Any) -> tuple[int, str | None, int]:
    """The callback that stopped a run: its index in fit.callbacks, name and patience."""
    from nettrain.config import spec_kwargs, spec_name

    for index, saved in enumerate(state.callbacks):
        if saved["state"].get("stopped_epoch") and index < len(config.fit.callbacks):
            spec = config.fit.callbacks[index]
            return index, spec_name(spec), int(spec_kwargs(spec).get("patience", 0))
    return 0, None, 0


def _replicas(prepared: Prepared) -> int:
    return prepared.strategy.num_replicas_in_sync if prepared.strategy is not None else 1


def _remove_leftovers(path: Path) -> None:
    """Temporary files a killed process left (never read: only whole files are renamed in)."""
    from nettrain import checkpoints

    for leftover in [*path.glob(".saving-*"), *path.glob(".*.tmp"), *path.glob(".*.old-*"),
                     *(path / checkpoints.FOLDER).glob(".*.keras")]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _truncate_history(path: Path, epochs: int) -> None:
    """Keep the header and the rows of the completed epochs (a killed epoch may have a row).

    Lines end as Keras's CSVLogger ends them (the csv module's ``\\r\\n``), so the rows it
    appends next match the ones kept.
    """
    import csv

    if path.is_file():
        lines = path.read_bytes().splitlines()[: 1 + epochs]
        end = csv.excel.lineterminator.encode()
        with rundir.replacing(path) as tmp:
            tmp.write_bytes(b"".join(line + end for line in lines))


def _fit_arguments(prepared: Prepared, first_epoch: int = 0) -> \
        tuple[dict[str, Any], dict[str, Any]]:
    """The data arguments of ``model.fit`` and the ``fit:`` section as keyword arguments."""
    config, data = prepared.config, prepared.data
    kwargs = config.fit.model_dump(exclude={"checkpoint_every_seconds"})
    kwargs["verbose"] = 0  # nettrain's own display shows the progress (see nettrain.progress)
    if kwargs["class_weight"] == "balanced":
        kwargs["class_weight"] = balanced_class_weight(data.class_counts())
    per_call = getattr(prepared.model, "steps_per_execution", 1) or 1
    args = _arguments(data, "train", config, training=True, first_epoch=first_epoch,
                      repeat=config.fit.steps_per_epoch is None, per_call=per_call)
    del kwargs["batch_size"], kwargs["validation_batch_size"]  # done by the pipelines
    kwargs["shuffle"] = False  # the pipeline shuffles itself, by seed and epoch
    kwargs["steps_per_epoch"] = args.pop("steps", None) or config.fit.steps_per_epoch
    if "validation" in data.splits:
        validation = _arguments(data, "validation", config,
                                repeat=config.fit.validation_steps is None, per_call=per_call)
        kwargs["validation_data"] = validation["x"]
        kwargs["validation_steps"] = validation.get("steps") or config.fit.validation_steps
    return args, kwargs


def _epoch_samples(prepared: Prepared) -> int:
    """The training samples of one epoch (for samples/s): the training split, or
    ``fit.steps_per_epoch`` batches of ``fit.batch_size`` when that is set."""
    fit = prepared.config.fit
    if fit.steps_per_epoch is not None:
        return fit.steps_per_epoch * (fit.batch_size or 32)
    return prepared.data.size("train")


def balanced_class_weight(counts: Any) -> dict[int, float]:
    """scikit-learn's 'balanced' weights: n_samples / (n_classes * count of the class).

    Args:
        counts: the number of training samples of each class (index = class).

    Example: counts [3, 1] -> ``{0: 0.667, 1: 2.0}``.
    """
    import numpy as np

    counts = np.asarray(counts)
    present = np.flatnonzero(counts)
    total = counts.sum()
    return {int(c): float(total / (len(present) * counts[c])) for c in present}


def _train(prepared: Prepared, path: Path, echo: Any, display: progress.Display,
           state: Any = None, epochs: int | None = None, extra: tuple[Any, ...] = ()) -> Path:
    """Fit with the always-on callbacks, then evaluate and save; keep run.json up to date.

    Args:
        display: shows the epochs while they train (its bars end before any message).
        state: the checkpoint state to continue from (default: start at the beginning).
        epochs: the epoch to train to (default ``fit.epochs``); the epochs of ``state`` when
            the training already ended and only the evaluation and the save are left. Keras
            then trains no epoch but still ends the training (EarlyStopping restores its best
            weights).
    """
    import keras

    from nettrain import checkpoints

    config, model, data = prepared.config, prepared.model, prepared.data
    guard = checkpoints.NaNGuard()
    monitor = "val_loss" if "validation" in data.splits else "loss"
    checkpoint = checkpoints.RunCheckpoint(path / checkpoints.FOLDER, monitor,
                                           prepared.callbacks, guard, state,
                                           every=config.fit.checkpoint_every_seconds)
    trained = False
    drawing = None
    stops = StopNotes()
    try:  # from here on a Ctrl-C marks the run and says how to go on
        args, kwargs = _fit_arguments(prepared, state.epoch if state else 0)
        # The run's own callbacks go last: the checkpoint sees the others' state after each
        # epoch; a stop that got lost is honoured at the next batch.
        kwargs["callbacks"] = [*prepared.callbacks, guard,
                               keras.callbacks.CSVLogger(str(path / rundir.HISTORY), append=True),
                               checkpoint, keras.callbacks.LambdaCallback(
                                   on_train_batch_end=lambda batch, logs: stops.check()),
                               *extra]
        kwargs["initial_epoch"] = state.epoch if state else config.fit.initial_epoch
        kwargs["epochs"] = config.fit.epochs if epochs is None else epochs
        left = kwargs["epochs"] - kwargs["initial_epoch"]
        shown = display.callback(config, kwargs["epochs"], kwargs["initial_epoch"],
                                 _epoch_samples(prepared), "validation" in data.splits)
        if shown is not None:
            kwargs["callbacks"].append(shown)
        elif display.mode == "silent" and left > 0:  # nothing per epoch: say that it works
            display.note(f"Training {left} epoch{'s' if left != 1 else ''} on "
                         f"{data.size('train')} samples (fit.verbose: 0, so no progress "
                         "lines)...")
        # Anything printed while training goes to stderr: stdout is kept for the run directory.
        with contextlib.redirect_stdout(sys.stderr), display.training(shown):
            model.fit(**args, **kwargs)
        # history.csv is whole now: draw history.png while the model is evaluated and saved
        # (importing matplotlib and drawing takes about 0.8 s of one core, mostly in Python,
        # while TensorFlow's evaluation runs outside the GIL).
        drawing = threading.Thread(target=_history_png, args=(path, config.name, echo),
                                   name="history.png", daemon=True)
        drawing.start()
        with contextlib.redirect_stdout(sys.stderr):
            stops.check()
            if guard.epoch is not None:
                raise _NaN(guard, checkpoint)
            trained = True
            metrics = {split: _evaluate(model, data, split, config) for split in data.splits}
        stops.check()
        formats = saving.save_model(model, path, config.save.formats,
                                  sample=data.sample(8)[0], info=data.describe())
        stops.check()
    except KeyboardInterrupt:
        _interrupted(prepared, path, checkpoint, echo)
        raise
    except _NaN as exc:
        _mark_failed(path, str(exc), checkpoint.completed)
        kept = (f"the history and the last good checkpoint ({checkpoints.FOLDER}/"
                f"{checkpoints.LAST})" if checkpoint.completed else "the config and the history")
        raise RunError(f"{exc}\nThe run directory {path} keeps {kept}. Lower the learning rate, "
                       "or check the data for NaN or huge values.") from None
    except Exception as exc:
        if stops.noted:  # TensorFlow's C++ code turned the KeyboardInterrupt into this
            _interrupted(prepared, path, checkpoint, echo)
            raise KeyboardInterrupt from None
        with contextlib.suppress(Exception):  # keep the epochs done, if the disk lets us
            checkpoint.flush()
        _mark_failed(path, str(exc), checkpoint.written)
        reason = " ".join(str(exc).split())[:500]
        if trained:  # every epoch is checkpointed: a resume evaluates and saves, no training
            ended = (f"all {checkpoint.completed} epochs are trained"
                     if checkpoint.completed >= config.fit.epochs else
                     f"training stopped early after epoch {checkpoint.completed}")
            raise RunError(f"Evaluating or saving the model failed: {reason}\n{ended} and "
                           f"checkpointed in {path}. Once the cause is fixed (disk space "
                           f"freed, say), finish the run: nettrain fit --resume {path}") from exc
        raise RunError(f"Training failed: {reason}\nThe run directory {path} keeps the config "
                       "and the history so far.") from exc
    finally:
        stops.restore()
        if drawing is not None:  # never leave a half-written picture behind
            drawing.join()
    rundir.write_json(path / rundir.METRICS, metrics)
    rundir.update_json(path / rundir.RUN, status="completed", ended=_now(), saved=formats,
                     epochs_completed=checkpoint.completed)
    return path


def _history_png(path: Path, title: str, echo: Any) -> None:
    """Draw ``history.png`` from the run's ``history.csv``. A picture that cannot be drawn
    never fails a trained run: it is said in one line, and the run goes on."""
    from nettrain import plots  # matplotlib itself is imported only when drawing

    if not (path / rundir.HISTORY).is_file() or not (path / rundir.HISTORY).stat().st_size:
        return  # no epoch was trained (fit.epochs equal to fit.initial_epoch)
    try:
        import pandas as pd

        history = pd.read_csv(path / rundir.HISTORY)
        if len(history):
            plots.history_png({title: history}, path / plots.HISTORY_PNG, title=title)
    except Exception as exc:  # matplotlib, the disk, an odd history.csv: only the picture
        echo(f"Warning: {path / plots.HISTORY_PNG} was not drawn ({type(exc).__name__}: "
             f"{' '.join(str(exc).split())[:200]}); the run is complete without it.")


def _arguments(data: Data, split: str, config: Config, training: bool = False,
               first_epoch: int = 0, repeat: bool = False, per_call: int = 1) -> dict[str, Any]:
    """The x argument of fit or evaluate for one split: a tf.data pipeline (see
    :mod:`nettrain.pipeline`) that shuffles each epoch in an order drawn from the seed and the
    epoch number, so a resumed run sees the same orders.

    With ``repeat``, arrays in memory become one endless pipeline, and ``steps`` (the batches
    of an epoch) comes with it, for fit's ``steps_per_epoch`` or ``validation_steps``; only
    when those batches are a whole number of ``per_call`` (the model's steps_per_execution):
    one call of Keras's compiled step always runs ``per_call`` batches, so on an endless
    pipeline the last call of a pass would run on into the next one (a validation of 3
    batches measured in calls of 5 counted 2 of them twice). A finite pipeline ends the call.
    """
    from nettrain import pipeline

    batch = config.fit.batch_size if training else \
        (config.fit.validation_batch_size or config.fit.batch_size)
    shuffle = training and config.fit.shuffle
    if data.stream:
        return {"x": data.stream.dataset(split, batch, shuffle=shuffle, first_epoch=first_epoch)}
    x, y, w = data.x[split], data.y[split], data.w.get(split)
    repeat = repeat and pipeline.steps(x, batch) % per_call == 0
    if pipeline.needs_dataset(x):
        return {"x": pipeline.dataset(x, y, w, batch, shuffle=shuffle, seed=config.seed,
                                      first_epoch=first_epoch)}
    return {"x": pipeline.arrays(x, y, w, batch, shuffle=shuffle, seed=config.seed,
                                 first_epoch=first_epoch, repeat=repeat),
            **({"steps": pipeline.steps(x, batch)} if repeat else {})}


class _NaN(Exception):
    def __init__(self, guard: Any, checkpoint: Any):
        kept = (f"the last good checkpoint is from epoch {checkpoint.completed}"
                if checkpoint.completed else "no epoch completed, so there is no checkpoint")
        super().__init__(f"Training stopped: the loss became NaN or infinite in epoch "
                         f"{guard.epoch + 1} (by batch {guard.batch + 1}); {kept}.")


class StopNotes:
    """Notes each Ctrl-C or SIGTERM while it lives (until ``restore``), then lets the handler
    in place (the CLI's: raise KeyboardInterrupt) act. The KeyboardInterrupt can get lost:
    raised inside TensorFlow's C++ code it can come out as another error (a SystemError from
    ``listobject.c``), and raised while the garbage collector runs a weakref callback Python
    prints it and goes on. ``noted`` says that it was a stop all the same; ``check`` raises
    the stop that was lost."""

    def __init__(self) -> None:
        import signal

        self.noted: list[int] = []
        self._previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(signum)
            if callable(handler):  # only signals that already stop Python with an exception
                with contextlib.suppress(ValueError):  # ValueError: not the main thread
                    signal.signal(signum, self._note)
                    self._previous[signum] = handler

    def _note(self, signum: int, frame: Any) -> None:
        self.noted.append(signum)
        self._previous[signum](signum, frame)

    def check(self) -> None:
        if self.noted:
            raise KeyboardInterrupt

    def restore(self) -> None:
        import signal

        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _mark_failed(path: Path, error: str, completed: int) -> None:
    """Mark the run failed, if the disk lets us (a full disk leaves it 'running': both resume)."""
    with contextlib.suppress(OSError):
        rundir.update_json(path / rundir.RUN, status="failed", ended=_now(), error=error,
                         epochs_completed=completed)


def _interrupted(prepared: Prepared, path: Path, checkpoint: Any, echo: Any) -> None:
    """Ctrl-C: save the model of the last completed epoch, mark the run interrupted.

    A save that fails (a full disk) is said, not raised: the checkpoint is what a resume needs.
    """
    from nettrain import checkpoints

    model, config = prepared.model, prepared.config
    sample, info = prepared.data.sample(8)[0], prepared.data.describe()
    last = path / checkpoints.FOLDER / checkpoints.LAST
    formats: list[str] = []
    saved = "the model of the last one is saved"
    if checkpoint.completed:
        try:
            checkpoint.flush()  # the last completed epoch, if not yet on the disk
            model.load_weights(last)
            formats = saving.save_model(model, path, config.save.formats, sample=sample,
                                      info=info)
        except (OSError, RunError) as exc:
            saved = (f"the model could not be saved ({' '.join(str(exc).split())[:200]}), "
                     f"its checkpoint is kept ({checkpoints.FOLDER}/{checkpoints.LAST})")
    with contextlib.suppress(OSError):  # a full disk: the run stays 'running', which resumes
        rundir.update_json(path / rundir.RUN, status="interrupted", ended=_now(),
                         epochs_completed=checkpoint.completed, saved=formats)
    if checkpoint.completed:
        echo(f"Interrupted after {checkpoint.completed} completed epoch(s); {saved}. "
             f"Continue with: nettrain fit --resume {path}")
    else:
        echo(f"Interrupted in epoch {checkpoint.completed + 1}; no epoch completed, so no model "
             f"is saved. Start it again, in the same directory: nettrain fit --resume {path}")


def _evaluate(model: Any, data: Data, split: str, config: Config) -> dict[str, float]:
    result = model.evaluate(**_arguments(data, split, config), verbose=0, return_dict=True)
    return {k: float(v) for k, v in result.items()}


@dataclass
class Evaluation:
    """One evaluation of a run's model: what was measured, the numbers, the files written."""

    split: str                  # test, validation, train, or "data:<file>" for --data
    metrics: dict[str, float]   # the model's compiled loss and metrics
    format: str                 # the saved format that was loaded
    report: dict[str, Any]      # per-class or regression report (see nettrain.reports)
    files: list[Path]           # the pictures written (none when drawing failed)
    data: dict[str, Any] | None = None  # --data: the file and its sha256

    def to_json(self) -> dict[str, Any]:
        return {"split": self.split, "format": self.format, "metrics": self.metrics,
                "report": self.report, "files": [str(f) for f in self.files],
                **({"data": self.data} if self.data else {})}


def evaluate(run_path: str | Path, split: str | None = None, fmt: str | None = None,
             allow_changed_data: bool = False, echo: Any = print,
             data_path: str | Path | None = None) -> Evaluation:
    """Reload a run's model and data and evaluate one split; record it in the run directory.

    Args:
        run_path: a run directory made by ``fit``.
        split: test, validation or train (default: test if the run has one, else validation,
            else train).
        fmt: the saved format to load (default: the first of keras, json; a SavedModel only
            when named).
        allow_changed_data: evaluate data files whose sha256 differs from the run's record
            (default: refuse them); the evaluation records what changed.
        echo: where warnings and notes go (default ``print``).
        data_path: new labelled data instead of a split of the run's own (a CSV, an .npz, an
            image folder; see :func:`nettrain.data.load_labelled`). Not checked against the
            run's data hashes: its file and sha256 are recorded instead.

    Returns an :class:`Evaluation`: the metrics, the per-class or regression report
    (:mod:`nettrain.reports`) and its picture (``confusion_matrix-<split>.png`` or
    ``regression-<split>.png``; ``-data-<file stem>`` for ``data_path``) in the run directory.
    The result is always about the run's own data (or says that it is not) and names the
    model it measured: a run that did not complete is evaluated with the model of its last
    save, and the record says so.
    """
    run = rundir.open_run(run_path)
    status = rundir.read_json(run.path / rundir.RUN) if (run.path / rundir.RUN).is_file() else {}
    earlier = rundir.read_json(run.path / rundir.EVALUATION) if \
        (run.path / rundir.EVALUATION).is_file() else {}  # a damaged one fails before the work
    model, used = saving.load_model(run.path, fmt, run.dataset)
    changed: list[str] = []
    source: dict[str, Any] | None = None
    if data_path is not None:
        from nettrain.data import load_labelled

        data = load_labelled(data_path, run.config, run.dataset)
        source = _data_record(Path(data_path))
        split, label = "test", f"data-{Path(data_path).stem}"
        name = f"data:{source['file']}"
    else:
        changed = record.check_data(run.config, status.get("data_sha256"), allow_changed_data,
                                    echo, str(run.path / rundir.RUN))
        edits = record.edited_data_config(run.config, status)
        if edits:
            raise DataError(f"{run.path / rundir.CONFIG} was edited after training: "
                            f"{'; '.join(edits)} (run.json). Its numbers would be about other "
                            "rows; restore the value in config.yaml.")
        data = load_data(run.config)
        if split is None:
            split = next(s for s in ("test", "validation", "train") if s in data.splits)
        if split not in data.splits:
            raise UsageError(f"--split {split}: this run has no {split} part; it has "
                             f"{', '.join(data.splits)}. Set data.{split}_split before "
                             "training to hold one out.")
        _check_dataset(run, data)
        label = name = split
    # Which model: run.json's epochs and save time change with every save (a resume).
    model_id = {"epochs": status.get("epochs_completed"), "saved": status.get("ended")}
    note = _which_model(status, run.config, run.path)
    if note:
        echo(note)
    model.compile(**resolve_compiled(run.config).kwargs(run.config, data.size(split)))
    where = f"--data {data_path}" if data_path is not None else split
    try:
        metrics = _evaluate(model, data, split, run.config)
        result, true, pred = reports.report(
            model, _arguments(data, split, run.config)["x"], run.config.is_classifier,
            run.dataset, _threshold(run.config))
    except Exception as exc:
        raise DataError(f"Evaluating {where} failed: {' '.join(str(exc).split())[:500]}") \
            from None
    files = []
    title = f"{run.config.name}: " + (f"{Path(data_path).name}" if data_path is not None
                                      else f"{split} split")
    try:
        files.append(reports.draw(result, true, pred, run.path, label, title))
    except Exception as exc:  # the numbers stand without their picture
        echo(f"Warning: the {result['kind']} picture was not drawn ({type(exc).__name__}: "
             f"{' '.join(str(exc).split())[:200]}).")
    # Numbers about an earlier model (before a resume saved again) are kept apart, never
    # beside the new ones.
    splits = {k: v for k, v in earlier.items() if k != "earlier" and isinstance(v, dict)}
    current = {k: v for k, v in splits.items()
               if {key: v.get(key) for key in model_id} == model_id}
    older = [*(earlier.get("earlier") if isinstance(earlier.get("earlier"), list) else []),
             *({"split": k, **v} for k, v in splits.items() if k not in current)]
    entry: dict[str, Any] = {"metrics": metrics, "format": used, "evaluated": _now(),
                             "status": status.get("status"), **model_id, "report": result,
                             "plots": [f.name for f in files]}
    if source:
        entry["data"] = source
    if changed:
        entry["data_changed"] = changed
    rundir.write_json(run.path / rundir.EVALUATION,
                    {**current, name: entry, **({"earlier": older} if older else {})})
    return Evaluation(name, metrics, used, result, files, source)


def _threshold(config: Config) -> float:
    """Where one output unit's score turns to class 1: 0.5 for a probability (sigmoid), 0 for
    logits (``from_logits``) and hinge losses (scores around 0)."""
    from nettrain.config import spec_kwargs, spec_name

    loss = config.compile.loss
    logits = bool(spec_kwargs(loss).get("from_logits"))
    return 0.0 if logits or "hinge" in str(spec_name(loss)).lower() else 0.5


def _data_record(path: Path) -> dict[str, Any]:
    """The file --data read and its sha256; for an image folder, the sha256 of the list of
    its files' paths and sha256s (so any added, removed or changed image changes it)."""
    import hashlib

    path = path.resolve()
    if path.is_file():
        return {"file": str(path), "sha256": record.sha256(path)}
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(f"{file.relative_to(path)}\t{record.sha256(file)}\n".encode())
    return {"file": str(path), "files": len(files), "sha256": digest.hexdigest()}


def _which_model(status: dict[str, Any], config: Config, path: Path) -> str | None:
    """A note on which model a run that did not complete holds (None for a completed run).

    An interrupted run saved the model of its last completed epoch. A failed or killed run
    saved nothing since its last save (a run resumed after completing): that older model is
    what is on disk.
    """
    state, epochs = status.get("status"), status.get("epochs_completed")
    if state in (None, "completed"):
        return None
    if state == "interrupted" and isinstance(epochs, int):
        return (f"Note: this run was interrupted: evaluating the model of epoch {epochs} of "
                f"{config.fit.epochs}, its last completed epoch.")
    which = ("the model of its last save, from before it was resumed; its later epochs are "
             "only in its checkpoint" if status.get("resumed") else
             "the model files it left, though it did not finish its save")
    return (f"Note: this run's status is {state} (run.json): evaluating {which}. To finish the "
            f"run: nettrain fit --resume {path}")


def _check_dataset(run: rundir.Run, data: Data) -> None:
    """Refuse data that loads with other columns or classes than the model was trained on."""
    import json

    if not run.dataset:
        return
    now = json.loads(json.dumps({**data.describe(), "classifier": run.config.is_classifier}))
    differ = [key for key in run.dataset if key != "samples" and now.get(key) != run.dataset[key]]
    if differ:
        key = differ[0]
        raise DataError(f"{run.path / rundir.DATASET} does not match the run's data as it loads "
                        f"now ({', '.join(differ)} differ): {key} {run.dataset.get(key)!r} "
                        f"in {rundir.DATASET}, {now.get(key)!r} now. The model would be scored "
                        "against other labels or columns; restore the run's dataset.json or "
                        "data, or train again.")
