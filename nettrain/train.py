"""Training and evaluation: validated config -> data + model -> fit -> run directory."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nettrain import callbacks, record, runs, runtime
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


def fit(config: Config, run_dir: str | Path | None = None, echo: Any = print) -> Path:
    """Train the config's model and write its run directory; return the directory.

    Args:
        config: a validated config.
        run_dir: an explicit new or empty directory (default ``runs/<name>/<date>-<time>``).
        echo: where progress lines go (default ``print``).
    """
    if run_dir is not None:  # refuse a used --run-dir before any work
        runs.check_new_dir(Path(run_dir))
    config = with_seed(config)
    prepared = prepare(config, echo)
    path = runs.create_run_dir(config, run_dir)
    runs.write_atomic(path / runs.CONFIG, config.to_yaml())
    runs.write_json(path / runs.DATASET, {**prepared.data.describe(),
                                          "classifier": config.is_classifier})
    runs.write_atomic(path / runs.SUMMARY, summary_text(prepared.model))
    runs.write_json(path / runs.RUN, {**record.start(config),
                                      "replicas": _replicas(prepared)})
    echo(f"Run directory: {path}")
    return _train(prepared, path, echo)


def resume(run_path: str | Path, config_path: str | Path | None = None,
           overrides: list[str] | None = None, echo: Any = print) -> Path:
    """Continue an interrupted run from its last completed epoch, in the same directory.

    Args:
        run_path: the run directory.
        config_path: a config file for the resume (default: the run's own ``config.yaml``).
        overrides: ``KEY=VALUE`` changes; only keys that keep the run the same run may change
            (``fit.epochs``, a callback's patience, ...; see :mod:`nettrain.resume`).

    With a seed and numpy data on CPU the result is bit-identical to an uninterrupted run.
    """
    from nettrain import checkpoints
    from nettrain.resume import check_changes

    run = runs.open_run(run_path)
    path = run.path
    status = runs.read_json(path / runs.RUN) if (path / runs.RUN).is_file() else {}
    new = load_config(Path(config_path) if config_path else path / runs.CONFIG,
                      overrides or [])
    if new.seed is None:  # "any seed": keep the one the run drew
        new = new.model_copy(update={"seed": run.config.seed})
    changes = check_changes(run.config, new, str(path))
    last = path / checkpoints.FOLDER / checkpoints.LAST
    if not last.is_file():
        raise UsageError(f"--resume {path}: the run has no completed epoch to resume from "
                         f"({checkpoints.FOLDER}/{checkpoints.LAST} is missing). Start it "
                         f"again: nettrain fit {path}/{runs.CONFIG}")
    state = checkpoints.read_state(last)
    if state.epoch >= new.fit.epochs:
        raise UsageError(f"--resume {path}: the run has completed {state.epoch} of "
                         f"{new.fit.epochs} epochs (status {status.get('status', 'unknown')}); "
                         f"nothing is left to train. To train longer: nettrain fit --resume "
                         f"{path} fit.epochs={state.epoch + 10}")
    for key, (was, now) in changes.items():
        echo(f"Resume changes {key}: {was!r} -> {now!r}")
    prepared = prepare(new, echo)
    with runtime.scope(prepared.strategy):
        checkpoints.restore(prepared.model, last, state)
    _remove_leftovers(path)
    _truncate_history(path / runs.HISTORY, state.epoch)
    runs.write_atomic(path / runs.CONFIG, new.to_yaml())
    resumes = [*status.get("resumed", []), {
        "at": _now(), "from_epoch": state.epoch, "command": sys.argv,
        "host": socket.gethostname(), "changes": {k: list(v) for k, v in changes.items()}}]
    runs.update_json(path / runs.RUN, status="running", ended=None, resumed=resumes,
                     error=None)
    echo(f"Resuming {path} after epoch {state.epoch} of {new.fit.epochs}")
    return _train(prepared, path, echo, state)


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
    """Keep the header and the rows of the completed epochs (a killed epoch may have a row)."""
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        runs.write_atomic(path, "".join(lines[: 1 + epochs]))


def _fit_arguments(prepared: Prepared, first_epoch: int = 0) -> \
        tuple[dict[str, Any], dict[str, Any]]:
    """The data arguments of ``model.fit`` and the ``fit:`` section as keyword arguments."""
    config, data = prepared.config, prepared.data
    kwargs = config.fit.model_dump()
    if kwargs["verbose"] == "auto":  # Keras's progress bar is for a terminal; a log gets lines
        kwargs["verbose"] = 1 if sys.stderr.isatty() else 2
    if kwargs["class_weight"] == "balanced":
        kwargs["class_weight"] = balanced_class_weight(data.class_counts())
    args = _arguments(data, "train", config, training=True, first_epoch=first_epoch)
    del kwargs["batch_size"]  # in args, or done by the tf.data pipeline
    if "y" not in args:  # a tf.data pipeline shuffles itself, by seed and epoch
        kwargs["shuffle"] = False
    if "validation" in data.splits:
        kwargs["validation_data"] = _validation_data(data, config)
    return args, kwargs


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


def _train(prepared: Prepared, path: Path, echo: Any, state: Any = None) -> Path:
    """Fit with the always-on callbacks, then evaluate and save; keep run.json up to date."""
    import keras

    from nettrain import checkpoints

    config, model, data = prepared.config, prepared.model, prepared.data
    callbacks.place(config, prepared.callbacks, path)  # their files go in the run directory
    guard = checkpoints.NaNGuard()
    monitor = "val_loss" if "validation" in data.splits else "loss"
    checkpoint = checkpoints.RunCheckpoint(path / checkpoints.FOLDER, monitor,
                                           prepared.callbacks, guard, state)
    args, kwargs = _fit_arguments(prepared, state.epoch if state else 0)
    # The run's own callbacks go last: the checkpoint sees the others' state after each epoch.
    kwargs["callbacks"] = [*prepared.callbacks, guard,
                           keras.callbacks.CSVLogger(str(path / runs.HISTORY), append=True),
                           checkpoint]
    kwargs["initial_epoch"] = state.epoch if state else config.fit.initial_epoch
    if config.fit.verbose == 0:  # Keras prints nothing: say that something is happening
        epochs = config.fit.epochs - kwargs["initial_epoch"]
        echo(f"Training {epochs} epoch{'s' if epochs != 1 else ''} on "
             f"{data.size('train')} samples (fit.verbose: 0, so no progress lines)...")
    try:
        # Keras writes its progress bar to stdout; stdout is kept for the run directory.
        with contextlib.redirect_stdout(sys.stderr):
            model.fit(**args, **kwargs)
            if guard.epoch is not None:
                raise _NaN(guard, checkpoint)
            metrics = {split: _evaluate(model, data, split, config) for split in data.splits}
        formats = runs.save_model(model, path, config.save.formats,
                                  sample=data.sample(8)[0], info=data.describe())
    except KeyboardInterrupt:
        _interrupted(prepared, path, checkpoint, echo)
        raise
    except _NaN as exc:
        runs.update_json(path / runs.RUN, status="failed", ended=_now(), error=str(exc),
                         epochs_completed=checkpoint.completed)
        kept = (f"the history and the last good checkpoint ({checkpoints.FOLDER}/"
                f"{checkpoints.LAST})" if checkpoint.completed else "the config and the history")
        raise RunError(f"{exc}\nThe run directory {path} keeps {kept}. Lower the learning rate, "
                       "or check the data for NaN or huge values.") from None
    except Exception as exc:
        runs.update_json(path / runs.RUN, status="failed", ended=_now(), error=str(exc),
                         epochs_completed=checkpoint.completed)
        raise RunError(f"Training failed: {' '.join(str(exc).split())[:500]}\nThe run "
                       f"directory {path} keeps the config and the history so far.") from exc
    runs.write_json(path / runs.METRICS, metrics)
    runs.update_json(path / runs.RUN, status="completed", ended=_now(), saved=formats,
                     epochs_completed=checkpoint.completed)
    return path


def _arguments(data: Data, split: str, config: Config, training: bool = False,
               first_epoch: int = 0) -> dict[str, Any]:
    """The x / y / sample_weight arguments of fit or evaluate for one split.

    Arrays go to Keras as they are (Keras shuffles them from the seed). Named inputs with
    strings and streamed CSVs become a tf.data pipeline that shuffles each epoch in an order
    drawn from the seed and the epoch number, so a resumed run sees the same orders.
    """
    from nettrain import pipeline

    batch = config.fit.batch_size if training else \
        (config.fit.validation_batch_size or config.fit.batch_size)
    shuffle = training and config.fit.shuffle
    if data.stream:
        return {"x": data.stream.dataset(split, batch, shuffle=shuffle, first_epoch=first_epoch)}
    x, y, w = data.x[split], data.y[split], data.w.get(split)
    if pipeline.needs_dataset(x):
        return {"x": pipeline.dataset(x, y, w, batch, shuffle=shuffle, seed=config.seed,
                                      first_epoch=first_epoch)}
    return {"x": x, "y": y, "sample_weight": w, "batch_size": batch}


def _validation_data(data: Data, config: Config) -> Any:
    args = _arguments(data, "validation", config)
    if "y" not in args:
        return args["x"]
    return (args["x"], args["y"]) if args["sample_weight"] is None else \
        (args["x"], args["y"], args["sample_weight"])


class _NaN(Exception):
    def __init__(self, guard: Any, checkpoint: Any):
        kept = (f"the last good checkpoint is from epoch {checkpoint.completed}"
                if checkpoint.completed else "no epoch completed, so there is no checkpoint")
        super().__init__(f"Training stopped: the loss became NaN or infinite in epoch "
                         f"{guard.epoch + 1} (batch {guard.batch + 1}); {kept}.")


def _interrupted(prepared: Prepared, path: Path, checkpoint: Any, echo: Any) -> None:
    """Ctrl-C: save the model of the last completed epoch, mark the run interrupted."""
    from nettrain import checkpoints

    model, config = prepared.model, prepared.config
    sample, info = prepared.data.sample(8)[0], prepared.data.describe()
    last = path / checkpoints.FOLDER / checkpoints.LAST
    formats: list[str] = []
    if last.is_file():
        model.load_weights(last)
        formats = runs.save_model(model, path, config.save.formats, sample=sample, info=info)
    runs.update_json(path / runs.RUN, status="interrupted", ended=_now(),
                     epochs_completed=checkpoint.completed, saved=formats)
    echo(f"Interrupted after {checkpoint.completed} completed epoch(s); the model of the last "
         f"one is saved. Continue with: nettrain fit --resume {path}")


def _evaluate(model: Any, data: Data, split: str, config: Config) -> dict[str, float]:
    result = model.evaluate(**_arguments(data, split, config), verbose=0, return_dict=True)
    return {k: float(v) for k, v in result.items()}


def evaluate(run_path: str | Path, split: str | None = None, fmt: str | None = None) -> \
        tuple[str, dict[str, float], str]:
    """Reload a run's model and data and evaluate one split; record it in the run directory.

    Args:
        run_path: a run directory made by ``fit``.
        split: test, validation or train (default: test if the run has one, else validation,
            else train).
        fmt: the saved format to load (default: the first of keras, json, savedmodel).

    Returns ``(split, metrics, format)``.
    """
    run = runs.open_run(run_path)
    data = load_data(run.config)
    if split is None:
        split = next(s for s in ("test", "validation", "train") if s in data.splits)
    if split not in data.splits:
        raise UsageError(f"--split {split}: this run has no {split} part; it has "
                         f"{', '.join(data.splits)}. Set data.{split}_split before training "
                         "to hold one out.")
    model, used = runs.load_model(run.path, fmt, run.dataset)
    model.compile(**resolve_compiled(run.config).kwargs(run.config))
    try:
        metrics = _evaluate(model, data, split, run.config)
    except Exception as exc:
        raise DataError(f"Evaluating {split} failed: {' '.join(str(exc).split())[:500]}") \
            from None
    record = runs.read_json(run.path / runs.EVALUATION) if \
        (run.path / runs.EVALUATION).is_file() else {}
    record[split] = {"metrics": metrics, "format": used, "evaluated": _now()}
    runs.write_json(run.path / runs.EVALUATION, record)
    return split, metrics, used
