"""Prediction: a run directory (or a saved model) + raw inputs -> one output row per input."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from nettrain import runs
from nettrain.config import spec_kwargs
from nettrain.data import (
    IMAGE_SUFFIXES, Inputs, fill_missing, images_to_numpy, read_frame, table_inputs,
)
from nettrain.errors import DataError, UsageError

INPUT_SUFFIXES = (".csv", ".npy", ".npz")


def read_table(path: Path, info: dict[str, Any], missing: str) -> Inputs:
    """A CSV of raw rows: the training columns in any order; a target column is dropped."""
    frame = read_frame(path, ",", "INPUT")
    if frame.empty:
        raise DataError(f"{path.name}: no rows to predict (only a header).")
    frame = frame[[c for c in frame.columns if c not in (info.get("target") or [])]]
    features = info.get("features")
    if features is not None:
        missing_cols = [f for f in features if f not in frame.columns]
        extra = [c for c in frame.columns if c not in features]
        if missing_cols or extra:
            parts = []
            if missing_cols:
                parts.append(f"missing {', '.join(map(repr, missing_cols))}")
            if extra:
                parts.append(f"unexpected {', '.join(map(repr, extra))}")
            raise DataError(f"{path.name}: the columns differ from training "
                            f"({'; '.join(parts)}). Expected the columns: "
                            f"{', '.join(features)}.")
    else:
        features = list(frame.columns)
    columns = info.get("columns") or {}
    categorical = [c for c, kind in columns.items() if kind != "numeric"]
    # Rows cannot be dropped here: one output row per input row.
    frame = fill_missing(frame[features], "zero" if missing == "zero" else "error",
                         categorical, path.name,
                         advice="Fill it: predict needs a value in every column.")
    if categorical:
        for column, kind in columns.items():
            if kind == "string":
                frame[column] = frame[column].astype(str)
    return table_inputs(frame, features, categorical, path.name, columns or None)


def read_arrays(path: Path) -> np.ndarray:
    """A .npy array, or the array ``x`` (or ``x_test``, or the only one) of a .npz."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"INPUT: cannot read {path}: {exc}") from None
    if path.suffix.lower() == ".npy":
        return np.asarray(loaded, dtype="float32")
    with loaded:
        for key in ("x", "x_test"):
            if key in loaded.files:
                return np.asarray(loaded[key], dtype="float32")
        if len(loaded.files) == 1:
            return np.asarray(loaded[loaded.files[0]], dtype="float32")
        raise DataError(f"{path.name}: expected an array named x (or x_test); it holds "
                        f"{sorted(loaded.files)}.")


def read_images(path: Path, options: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """An image file, or a folder of images (searched recursively), resized as in training."""
    import keras

    image_size, color_mode = tuple(options["image_size"]), options["color_mode"]
    folder = path
    tmp = None
    if path.is_file():  # the same reader as training needs a folder: link the file into one
        tmp = Path(tempfile.mkdtemp(prefix="nettrain-predict-"))
        (tmp / path.name).symlink_to(path.resolve())
        folder = tmp
    try:
        dataset = keras.utils.image_dataset_from_directory(
            folder, labels=None, batch_size=None, shuffle=False, image_size=image_size,
            color_mode=color_mode, follow_links=True, verbose=False)
        paths = [str(path)] if tmp else list(dataset.file_paths)
        x, _ = images_to_numpy(dataset, with_labels=False)
    except ValueError as exc:
        raise DataError(f"INPUT: no images ({', '.join(IMAGE_SUFFIXES)}) in {path}: "
                        f"{exc}") from None
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return x, paths


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fit_shape(x: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Check (and, for flat rows of the right size, reshape) inputs to the model's shape."""
    if tuple(x.shape[1:]) == shape:
        return x
    if x.ndim == 1 and len(shape) == 1 and x.shape[0] == shape[0]:
        return x.reshape(1, -1)
    if x.ndim == 2 and x.shape[1] == int(np.prod(shape)):
        return x.reshape((len(x), *shape))
    raise DataError(f"{name}: the inputs have shape {list(x.shape[1:])} per sample; the model "
                    f"takes {list(shape)}.")


def predict(run_path: str | Path, input_path: str | Path, fmt: str | None = None) -> Any:
    """Predict every input row; return a pandas DataFrame (one row per input).

    A classifier gives the predicted class (its name where known) and one probability column
    per class; a regression model one column per output value. Images get their path first.

    Example: ``predict("runs/iris/20261122-120000", "flowers.csv").to_csv(sys.stdout)``.
    """
    import pandas as pd

    from nettrain import pipeline

    run_path, input_path = Path(run_path), Path(input_path)
    if (run_path / runs.CONFIG).is_file():
        run = runs.open_run(run_path)
        info, classifier, missing = run.dataset, run.config.is_classifier, \
            run.config.data.missing
        logits = bool(spec_kwargs(run.config.compile.loss).get("from_logits"))
    else:  # a saved model on its own: no column names, no class names
        info, classifier, missing, logits = {}, None, "error", False
    if not input_path.exists():
        raise UsageError(f"INPUT: '{input_path}' does not exist.")
    model, _ = runs.load_model(run_path, fmt, info)
    if not info and len(model.inputs) > 1:  # a bare model with one named input per column
        kinds = {"float32": "numeric", "int64": "integer", "string": "string"}
        info = {"features": [t.name for t in model.inputs],
                "columns": {t.name: kinds.get(str(t.dtype), "numeric") for t in model.inputs}}
    paths = None
    if info.get("images") and (input_path.is_dir()
                               or input_path.suffix.lower() in IMAGE_SUFFIXES):
        x, paths = read_images(input_path, info["images"])
    elif input_path.suffix.lower() == ".csv":
        x = read_table(input_path, info, missing)
    elif input_path.suffix.lower() in (".npy", ".npz"):
        x = read_arrays(input_path)
    else:
        kinds = ", ".join(INPUT_SUFFIXES + (("an image or a folder of images",)
                                            if info.get("images") else ()))
        raise UsageError(f"INPUT: expected {kinds}; received '{input_path}'.")
    if pipeline.needs_dataset(x):
        out = model.predict(pipeline.dataset(x), verbose=0)
    else:
        shape = tuple(info.get("input_shape") or model.input_shape[1:])
        x = fit_shape(x, shape, input_path.name)
        out = model.predict(x, verbose=0)
    out = np.asarray(out).reshape(len(out), -1)
    if classifier is None:  # guess from the output: probabilities summing to 1 -> classes
        classifier = out.shape[1] > 1 and np.allclose(out.sum(axis=1), 1.0, atol=1e-3)
    if not classifier:
        names = info.get("target")
        if not names or len(names) != out.shape[1]:
            names = [f"output_{i}" for i in range(out.shape[1])]
        frame = pd.DataFrame(out, columns=names)
    else:
        if logits:  # the model ends without its activation: the loss applied it in training
            out = 1 / (1 + np.exp(-out)) if out.shape[1] == 1 else _softmax(out)
        probs = np.concatenate([1 - out, out], axis=1) if out.shape[1] == 1 else out
        classes = info.get("classes") or [str(i) for i in range(probs.shape[1])]
        frame = pd.DataFrame({"class": [classes[i] for i in probs.argmax(axis=1)]})
        for i, name in enumerate(classes):
            frame[f"prob_{name}"] = probs[:, i]
    if paths is not None:
        frame.insert(0, "path", paths)
    return frame
