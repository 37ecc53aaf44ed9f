"""Training: validated config -> data + model -> fit (or resume) -> run directory."""

from __future__ import annotations

import contextlib
import secrets
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nettrain.config.load import load_config
from nettrain.config.schema import Config
from nettrain.data import fingerprint, steps
from nettrain.data.dataset import Data
from nettrain.data.loading import load_data
from nettrain.engine import phases, progress, runtime
from nettrain.engine import resume as resume_policy
from nettrain.engine.best import monitor as best_monitor
from nettrain.model import direction
from nettrain.engine.signals import StopNotes, _NaN
from nettrain.errors import RunError
from nettrain.model import callbacks, saving
from nettrain.model.builder import build_model, resolve_all
from nettrain.run import directory as rundir
from nettrain.run import history, lock
from nettrain.run.record import RunRecord
from nettrain.text import command


@dataclass
class Prepared:
    """Everything fit does before training: the data and the compiled model."""

    config: Config
    data: Data
    model: Any
    callbacks: list[Any]
    strategy: Any = None


def prepare(config: Config, echo: Any = lambda text: None,
            recorded: dict[str, Any] | None = None) -> Prepared:
    """Construct every Keras object, load and split the data, build and compile the model.

    ``recorded``: a resumed run's dataset.json (its CSV reading rule). Seeds, op determinism
    and the dtype policy are set first (see :mod:`nettrain.engine.runtime`); with
    ``distribute: mirrored`` the model and its optimizer are made in the strategy's scope.
    Raises ConfigError for mistakes in the config, DataError for unreadable data.
    """
    runtime.apply(config, echo)
    strategy = runtime.strategy(config)
    with runtime.scope(strategy):
        resolved = resolve_all(config)  # bad Keras names fail before any data is read
        data = load_data(config, recorded)
        for note in data.notes:  # rows dropped for a missing target or data.missing: drop
            echo(note)
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
        extra_callbacks: tuple[Any, ...] = (), started: Any = None) -> Path:
    """Train the config's model and write its run directory; return the directory.

    Args:
        config: a validated config.
        run_dir: an explicit new or empty directory (default ``runs/<name>/<date>-<time>``).
        echo: where warnings go (default ``print``).
        display: where the progress goes (default: plain lines through ``echo``; see
            :mod:`nettrain.engine.progress`).
        extra_callbacks: Keras callbacks of the caller (not the config's), called after the run's
            own each epoch, so the epoch's history row and checkpoint are written when they
            act (``nettrain sweep``'s pruning stops a trial with ``model.stop_training``).
        started: called as ``started(path, data)`` once the run directory and its run.json
            exist, before training (``nettrain.tracking`` opens its MLflow run there).
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
        if prepared.data.rows is not None:
            prepared.data.rows.write(path / rundir.SPLIT)
        rundir.write_atomic(path / rundir.SUMMARY, summary_text(prepared.model))
        RunRecord(path).started(config, fingerprint.data_files(config), _replicas(prepared))
        RunRecord(path).decided(direction.of_model(prepared.model))  # read back, never redone
        callbacks.place(config, prepared.callbacks, path)  # their files go in the run dir
        display.note(f"Run directory: {path}")
        if started is not None:
            started(path, prepared.data)
        return _train(prepared, path, echo, display, extra=extra_callbacks)


def resume(run_path: str | Path, config_path: str | Path | None = None,
           overrides: list[str] | None = None, echo: Any = print,
           allow_changed_data: bool = False, display: progress.Display | None = None,
           extra_callbacks: tuple[Any, ...] = (), started: Any = None) -> Path:
    """Continue an interrupted run from its last completed epoch, in the same directory.

    Args:
        run_path: the run directory.
        config_path: a config file for the resume (default: the run's own ``config.yaml``).
        overrides: ``KEY=VALUE`` changes; only keys that keep the run the same run may change
            (``fit.epochs``, a callback's patience, ...; see :mod:`nettrain.engine.resume`).
        allow_changed_data: resume on data files that changed since training (warned).
        echo, display, extra_callbacks, started: as for :func:`fit` (``started`` is called
            once run.json says the run is running again).

    With a seed and numpy data on CPU the result is bit-identical to an uninterrupted run.
    A run whose training ended (its epochs done, or a callback stopped it) but that was not
    saved (killed, or the save failed) is finished: evaluated and saved, with no training. A
    completed run is refused unless ``fit.epochs`` is raised; one that a callback stopped
    early, unless one of its callbacks changes (a new patience). A run with no completed
    epoch starts again from the beginning, in its directory. Only one process at a time may
    train a run (see :mod:`nettrain.run.directory`).
    """
    run = rundir.open_run(run_path)
    with lock.locked(run.path):
        return _resume(run, config_path, overrides, echo, allow_changed_data,
                       display or progress.Display(echo=echo), extra_callbacks, started)


def _resume(run: rundir.Run, config_path: str | Path | None, overrides: list[str] | None,
            echo: Any, allow_changed_data: bool, display: progress.Display,
            extra: tuple[Any, ...] = (), started: Any = None) -> Path:
    from nettrain.engine.resume import check_changes, check_epochs
    from nettrain.run import checkpoints

    path = run.path
    status = RunRecord(path).read()
    new = load_config(Path(config_path) if config_path else path / rundir.CONFIG,
                      overrides or [])
    if new.seed is None:  # "any seed": keep the one the run drew
        new = new.model_copy(update={"seed": run.config.seed})
    changes = check_changes(run.config, new, str(path))
    fingerprint.check_data(new, status.get("data_sha256"), allow_changed_data, echo,
                      str(path / rundir.RUN))
    last = resume_policy.last_checkpoint(path)
    state = resume_policy.read_checkpoint(path, last) if last is not None else None
    check_epochs(new, state.epoch if state else 0, str(path))
    epochs = resume_policy.epochs_to_train(path, run.config, new, state, status.get("status"),
                                           changes)
    for key, (was, now) in changes.items():
        display.note(f"Resume changes {key}: {was!r} -> {now!r}")
    prepared = prepare(new, echo, run.dataset)
    if state is not None:
        try:
            with runtime.scope(prepared.strategy):
                phases.restore_phase(prepared, state.epoch)
                checkpoints.restore(prepared.model, last, state)
        except checkpoints.Damaged as exc:
            raise RunError(resume_policy.damaged_advice(path, exc)) from None
    callbacks.place(new, prepared.callbacks, path)
    resume_policy.remove_leftovers(path)
    for log in [path / rundir.HISTORY, *checkpoints.continue_logs(prepared.callbacks)]:
        history.keep_epochs(log, state.epoch if state else 0)
    rundir.write_atomic(path / rundir.CONFIG, new.to_yaml())
    done = state.epoch if state else 0
    RunRecord(path).resumed(done, changes)
    if "directions" not in status:  # a run of an older nettrain: recorded now, once
        RunRecord(path).decided(direction.of_model(prepared.model))
    if started is not None:
        started(path, prepared.data)
    if epochs == done:
        display.note(f"Finishing {path}: its training ended after epoch {done} (status "
             f"{status.get('status', 'unknown')}) and no epoch is left to train; evaluating "
             "and saving it.")
    elif state is None:
        display.note(f"Starting {path} again from the beginning: no epoch of it was completed.")
    else:
        display.note(f"Resuming {path} after epoch {done} of {epochs}")
    return _train(prepared, path, echo, display, state, epochs, extra)


def _replicas(prepared: Prepared) -> int:
    return prepared.strategy.num_replicas_in_sync if prepared.strategy is not None else 1


def _fit_arguments(prepared: Prepared, first_epoch: int = 0, train: bool = True) -> \
        tuple[dict[str, Any], dict[str, Any]]:
    """The data arguments of ``model.fit`` (none without ``train``: each phase makes its own)
    and the ``fit:`` section as keyword arguments.

    The pipelines and fit's step arguments follow one plan (:func:`nettrain.data.steps.plan`):
    the batches each epoch, each call and each validation pass run.
    """
    config, data = prepared.config, prepared.data
    kwargs = config.fit.model_dump(exclude={"checkpoint_every_seconds", "batch_size",
                                            "validation_batch_size",  # in the pipelines
                                            "fine_tune"})  # nettrain's (engine.phases)
    kwargs["verbose"] = 0  # nettrain's own display shows the progress (see nettrain.engine.progress)
    if kwargs["class_weight"] == "balanced":
        kwargs["class_weight"] = balanced_class_weight(data.class_counts())
    plan = _plan(prepared)
    args = _arguments(data, "train", config, training=True, first_epoch=first_epoch,
                      schedule=plan.train) if train else {}
    kwargs["shuffle"] = False  # the pipeline shuffles itself, by seed and pass
    kwargs.update(plan.fit_arguments())
    if plan.validation is not None:
        kwargs["validation_data"] = _arguments(data, "validation", config,
                                               schedule=plan.validation)["x"]
    return args, kwargs


def _plan(prepared: Prepared) -> steps.Plan:
    """The step plan of the prepared fit (see :mod:`nettrain.data.steps`)."""
    data = prepared.data
    return steps.plan(prepared.config, {split: data.size(split) for split in data.splits})


def _epoch_samples(prepared: Prepared) -> int:
    """The training samples of one epoch (for samples/s): a pass over the training split, or
    ``fit.steps_per_epoch`` batches of it (on average over the epochs)."""
    return _plan(prepared).epoch_samples


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

    from nettrain.run import checkpoints

    config, model, data = prepared.config, prepared.model, prepared.data
    guard = checkpoints.NaNGuard()
    # fit's best-epoch rule chooses best.keras and the live "* best" marker too, by the
    # directions fit recorded (Keras's, for this model)
    watched = best_monitor(config, ["loss", "val_loss"] if "validation" in data.splits
                           else ["loss"], direction.of_run(path, config))
    checkpoint = checkpoints.RunCheckpoint(path / checkpoints.FOLDER, watched,
                                           prepared.callbacks, guard, state,
                                           every=config.fit.checkpoint_every_seconds)
    trained = False
    drawing = None
    stops = StopNotes()
    try:  # from here on a Ctrl-C marks the run and says how to go on
        # The pipelines count epochs as Keras does (from fit.initial_epoch), so a resume
        # picks up the batches of its first epoch.
        first = state.epoch if state else config.fit.initial_epoch
        _, kwargs = _fit_arguments(prepared, first, train=False)  # each phase makes its own
        # The run's own callbacks go last: the checkpoint sees the others' state after each
        # epoch; a stop (noted while the loop runs: StopNotes.deferred) is raised after the
        # batch or the epoch it came in.
        checks = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: stops.check(),
            on_test_batch_end=lambda batch, logs: stops.check(),
            on_epoch_end=lambda epoch, logs: stops.check())
        kwargs["callbacks"] = [*prepared.callbacks, guard,
                               checkpoints.HistoryLog(path / rundir.HISTORY,
                                                      "validation" in data.splits,
                                                      phases.column(config)),
                               checkpoint, checks, *extra]
        kwargs["initial_epoch"] = first
        kwargs["epochs"] = config.fit.epochs if epochs is None else epochs
        left = kwargs["epochs"] - kwargs["initial_epoch"]
        shown = display.callback(config, kwargs["epochs"], kwargs["initial_epoch"],
                                 _epoch_samples(prepared), "validation" in data.splits,
                                 watched, checkpoint.best, stopping=lambda: bool(stops.noted))
        if shown is not None:
            kwargs["callbacks"].append(shown)
        elif display.mode == "silent" and left > 0:  # nothing per epoch: say that it works
            display.note(f"Training {left} epoch{'s' if left != 1 else ''} on "
                         f"{data.size('train')} samples (fit.verbose: 0, so no progress "
                         "lines)...")
        # Anything printed while training goes to stderr: stdout is kept for the run directory.
        with contextlib.redirect_stdout(sys.stderr), display.training(shown), \
                stops.deferred():
            phases.train(prepared, path, kwargs, _fit_arguments,
                         lambda its, args, kw: _fit(its, path, display, args, kw))
        # history.csv is whole now: draw history.png while the model is evaluated and saved
        # (importing matplotlib and drawing takes about 0.8 s of one core, mostly in Python,
        # while TensorFlow's evaluation runs outside the GIL).
        drawing = threading.Thread(target=_history_png, args=(path, config.name, echo),
                                   name="history.png", daemon=True)
        drawing.start()
        with stops.deferred():  # checked at its start and end, and after each batch
            with contextlib.redirect_stdout(sys.stderr):
                if guard.epoch is not None:
                    raise _NaN(guard, checkpoint)
                trained = True
                metrics = {split: _evaluate(model, data, split, config, [checks])
                           for split in data.splits}
            stops.check()
            formats = saving.save_model(model, path, config.save.formats,
                                        sample=data.sample(8)[0], info=data.describe())
    except KeyboardInterrupt:
        with stops.held():  # a second Ctrl-C (or the launcher's SIGTERM) waits for the save
            _interrupted(prepared, path, checkpoint, echo)
        raise
    except _NaN as exc:
        with stops.held():  # the last good epoch is saved whole, whatever signal comes
            formats, saved = _save_last_good(prepared, path, checkpoint)
            _mark_failed(path, str(exc), checkpoint.completed, formats)
        kept = "the config and the history"
        if checkpoint.completed:
            kept = (f"the history, the last good checkpoint ({checkpoints.FOLDER}/"
                    f"{checkpoints.LAST}) and " + (saved if formats else f"its epoch; {saved}"))
        raise RunError(f"{exc}\nThe run directory {path} keeps {kept}. Lower the learning rate, "
                       "or check the data for NaN or huge values.") from None
    except Exception as exc:
        if stops.noted:  # TensorFlow's C++ code turned the KeyboardInterrupt into this
            with stops.held():
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
                           f"freed, say), finish the run: "
                           f"{command('nettrain', 'fit', '--resume', path)}") from exc
        raise RunError(f"Training failed: {reason}\nThe run directory {path} keeps the config "
                       "and the history so far.") from exc
    finally:
        stops.restore()
        if drawing is not None:  # never leave a half-written picture behind
            drawing.join()
    rundir.write_json(path / rundir.METRICS, metrics)
    RunRecord(path).completed(formats, checkpoint.completed)
    return path


def _fit(prepared: Prepared, path: Path, display: progress.Display, args: dict[str, Any],
         kwargs: dict[str, Any]) -> None:
    """``model.fit``, or on JAX the fused path (:mod:`nettrain.backends.jax_fused`) when it
    can run the same training; run.json's ``training`` says which ran, and why not fused."""
    import keras

    from nettrain.backends import jax_fused
    from nettrain.data import pipeline

    config, data = prepared.config, prepared.data
    x = None if data.stream else data.x["train"]
    arrays = None if x is None or pipeline.needs_dataset(x) else \
        (x, data.y["train"], data.w.get("train"))
    why = jax_fused.refusal(config, prepared.model, arrays)
    on_jax = keras.backend.backend() == "jax"
    # run.json's "backend" (RunRecord.start) says the backend; "training" says the loop.
    RunRecord(path).annotate(training={"loop": "model.fit" if why else "fused",
                                       **({"not_fused": why} if why and on_jax else {})})
    if why is not None and jax_fused.this_process()[0] > 1:
        raise RunError(f"Training over several processes needs the fused JAX path, and this "
                       f"config cannot take it: {why}.")
    if why is not None:
        if on_jax:
            display.note(f"Training with model.fit, not the fused JAX path: {why}.")
        model_fit = prepared.model.fit
        model_fit(**args, **kwargs)
        return
    assert arrays is not None
    n, batch_size = len(arrays[0]), _plan(prepared).train.batch_size
    display.note(jax_fused.describe(n, batch_size))
    jax_fused.fit(prepared.model, *arrays, batch_size=batch_size,
                  epochs=kwargs["epochs"], initial_epoch=kwargs["initial_epoch"],
                  order=(lambda epoch: pipeline.shuffled(n, config.seed, epoch))
                  if config.fit.shuffle else None,
                  callbacks=kwargs["callbacks"], validation_data=kwargs.get("validation_data"),
                  validation_freq=kwargs["validation_freq"])


def _history_png(path: Path, title: str, echo: Any) -> None:
    """Draw ``history.png`` from the run's ``history.csv``. A picture that cannot be drawn
    never fails a trained run: it is said in one line, and the run goes on."""
    from nettrain.engine import plots  # matplotlib itself is imported only when drawing

    if not (path / rundir.HISTORY).is_file() or not (path / rundir.HISTORY).stat().st_size:
        return  # no epoch was trained (fit.epochs equal to fit.initial_epoch)
    try:
        rows = history.read(path / rundir.HISTORY)
        if rows is None:
            raise ValueError(f"{rundir.HISTORY} cannot be read")
        if len(rows):
            plots.history_png({title: rows.frame()}, path / plots.HISTORY_PNG, title=title)
    except Exception as exc:  # matplotlib, the disk, an odd history.csv: only the picture
        echo(f"Warning: {path / plots.HISTORY_PNG} was not drawn ({type(exc).__name__}: "
             f"{' '.join(str(exc).split())[:200]}); the run is complete without it.")


def _arguments(data: Data, split: str, config: Config, training: bool = False,
               first_epoch: int = 0, schedule: steps.Schedule | None = None) -> dict[str, Any]:
    """The x argument of fit or evaluate for one split: a tf.data pipeline (see
    :mod:`nettrain.data.pipeline`) that runs the batches ``schedule`` gives each epoch
    (default: one whole pass, at the training batch size with ``training``, else at the
    evaluation one). ``training`` shuffles each pass (``fit.shuffle``) in an order drawn from
    the seed and the pass number, so a resumed run sees the same orders.
    """
    from nettrain.data import pipeline

    if schedule is None:
        schedule = steps.whole(data.size(split), config.fit.batch_size) if training else \
            steps.evaluation(config, data.size(split))
    shuffle = training and config.fit.shuffle
    if data.stream:
        return {"x": data.stream.dataset(split, schedule.batch_size, shuffle=shuffle,
                                         first_epoch=first_epoch, schedule=schedule)}
    x, y, w = data.x[split], data.y[split], data.w.get(split)
    make = pipeline.dataset if pipeline.needs_dataset(x) else pipeline.arrays
    return {"x": make(x, y, w, shuffle=shuffle, seed=config.seed, first_epoch=first_epoch,
                      schedule=schedule)}


def _mark_failed(path: Path, error: str, completed: int, saved: list[str] | None = None) -> None:
    """Mark the run failed, if the disk lets us (a full disk leaves it 'running': both resume)."""
    with contextlib.suppress(OSError):
        RunRecord(path).failed(error, completed, saved)


def _save_last_good(prepared: Prepared, path: Path, checkpoint: Any) -> tuple[list[str], str]:
    """Save the model of the last completed epoch (its checkpoint) in ``save.formats``, for a
    run stopped early (Ctrl-C, SIGTERM, a NaN loss); return the files written and what to
    tell the user. A save that fails (a full disk) is said, not raised: the checkpoint is what
    a resume needs. Nothing is saved when no epoch completed."""
    from nettrain.run import checkpoints

    if not checkpoint.completed:
        return [], "no model is saved"
    model, config = prepared.model, prepared.config
    last = path / checkpoints.FOLDER / checkpoints.LAST
    try:
        checkpoint.flush()  # the last completed epoch, if not yet on the disk
        model.load_weights(last)
        formats = saving.save_model(model, path, config.save.formats,
                                    sample=prepared.data.sample(8)[0],
                                    info=prepared.data.describe())
    except (OSError, RunError) as exc:
        return [], (f"the model could not be saved ({' '.join(str(exc).split())[:200]}), "
                    f"its checkpoint is kept ({checkpoints.FOLDER}/{checkpoints.LAST})")
    return formats, f"its model ({', '.join(formats)})"


def _interrupted(prepared: Prepared, path: Path, checkpoint: Any, echo: Any) -> None:
    """Ctrl-C or SIGTERM: save the model of the last completed epoch, mark the run
    interrupted, say how to go on."""
    formats, saved = _save_last_good(prepared, path, checkpoint)
    if formats:
        saved = "the model of the last one is saved"
    with contextlib.suppress(OSError):  # a full disk: the run stays 'running', which resumes
        RunRecord(path).interrupted(checkpoint.completed, formats)
    if checkpoint.completed:
        echo(f"Interrupted after {checkpoint.completed} completed epoch(s); {saved}. "
             f"Continue with: {command('nettrain', 'fit', '--resume', path)}")
    else:
        echo(f"Interrupted in epoch {checkpoint.completed + 1}; no epoch completed, so no model "
             "is saved. Start it again, in the same directory: "
             f"{command('nettrain', 'fit', '--resume', path)}")


def _evaluate(model: Any, data: Data, split: str, config: Config,
              callbacks: list[Any] | None = None) -> dict[str, float]:
    result = model.evaluate(**_arguments(data, split, config), verbose=0, return_dict=True,
                            callbacks=callbacks)
    return {k: float(v) for k, v in result.items()}
