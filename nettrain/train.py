"""Training and evaluation: validated config -> data + model -> fit -> run directory."""

from __future__ import annotations

import contextlib
import platform
import secrets
import socket
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nettrain import __version__
from nettrain import runs
from nettrain.config import Config
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


def prepare(config: Config) -> Prepared:
    """Construct every Keras object, load and split the data, build and compile the model.

    Raises ConfigError for mistakes in the config, DataError for unreadable data.
    """
    import keras

    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    resolved = resolve_all(config)  # bad Keras names fail before any data is read
    data = load_data(config)
    model = build_model(config, data, resolved)
    return Prepared(config, data, model, resolved.callbacks)


def summary_text(model: Any) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda text, line_break=True: lines.append(text))
    return "\n".join(lines).rstrip() + "\n"


def with_seed(config: Config) -> Config:
    """The config with a seed: a run without one gets a random seed, recorded in the run."""
    if config.seed is not None:
        return config
    return config.model_copy(update={"seed": secrets.randbelow(2**31)})


def versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"nettrain": __version__, "keras": keras.__version__, "tensorflow": tf.__version__,
            "python": platform.python_version()}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def fit(config: Config, run_dir: str | Path | None = None, echo: Any = print) -> Path:
    """Train the config's model and write its run directory; return the directory.

    Args:
        config: a validated config.
        run_dir: an explicit new or empty directory (default ``runs/<name>/<date>-<time>``).
        echo: where progress lines go (default ``print``).
    """
    import keras

    if run_dir is not None:  # refuse a used --run-dir before any work
        runs.check_new_dir(Path(run_dir))
    config = with_seed(config)
    prepared = prepare(config)
    model, data = prepared.model, prepared.data
    path = runs.create_run_dir(config, run_dir)
    runs.write_atomic(path / runs.CONFIG, config.to_yaml())
    runs.write_json(path / runs.DATASET, {**data.describe(), "classifier": config.is_classifier})
    runs.write_atomic(path / runs.SUMMARY, summary_text(model))
    runs.write_json(path / runs.RUN, {
        "status": "running", "started": _now(), "ended": None, "command": sys.argv,
        "host": socket.gethostname(), "versions": versions()})
    echo(f"Run directory: {path}")
    callbacks = [*prepared.callbacks, keras.callbacks.CSVLogger(str(path / runs.HISTORY))]
    fit_kwargs = config.fit.model_dump()
    fit_kwargs["callbacks"] = callbacks
    train_args = _arguments(data, "train", config, training=True)
    del fit_kwargs["batch_size"]  # in train_args, or done by the tf.data pipeline
    if "y" not in train_args:  # a tf.data pipeline shuffles itself
        fit_kwargs["shuffle"] = False
    if "validation" in data.splits:
        fit_kwargs["validation_data"] = _validation_data(data, config)
    try:
        # Keras writes its progress bar to stdout; stdout is kept for the run directory.
        with contextlib.redirect_stdout(sys.stderr):
            model.fit(**train_args, **fit_kwargs)
            metrics = {split: _evaluate(model, data, split, config) for split in data.splits}
        formats = runs.save_model(model, path, config.save.formats,
                                  sample=data.sample(8)[0], info=data.describe())
    except KeyboardInterrupt:
        runs.update_json(path / runs.RUN, status="interrupted", ended=_now())
        raise
    except Exception as exc:
        runs.update_json(path / runs.RUN, status="failed", ended=_now(), error=str(exc))
        raise RunError(f"Training failed: {' '.join(str(exc).split())[:500]}\nThe run "
                       f"directory {path} keeps the config and the history so far.") from exc
    runs.write_json(path / runs.METRICS, metrics)
    runs.update_json(path / runs.RUN, status="completed", ended=_now(), saved=formats)
    return path


def _arguments(data: Data, split: str, config: Config, training: bool = False) -> \
        dict[str, Any]:
    """The x / y / sample_weight arguments of fit or evaluate for one split.

    Arrays go to Keras as they are; named inputs with strings become a tf.data pipeline.
    """
    from nettrain import pipeline

    batch = config.fit.batch_size if training else \
        (config.fit.validation_batch_size or config.fit.batch_size)
    if data.stream:
        return {"x": data.stream.dataset(split, batch, shuffle=training and config.fit.shuffle)}
    x, y, w = data.x[split], data.y[split], data.w.get(split)
    if pipeline.needs_dataset(x):
        return {"x": pipeline.dataset(x, y, w, batch, shuffle=training and config.fit.shuffle,
                                      seed=config.seed)}
    return {"x": x, "y": y, "sample_weight": w, "batch_size": batch}


def _validation_data(data: Data, config: Config) -> Any:
    args = _arguments(data, "validation", config)
    if "y" not in args:
        return args["x"]
    return (args["x"], args["y"]) if args["sample_weight"] is None else \
        (args["x"], args["y"], args["sample_weight"])


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
    compiled = resolve_compiled(run.config)
    model.compile(loss=compiled.loss, metrics=compiled.metrics,
                  weighted_metrics=compiled.weighted_metrics or None)
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
