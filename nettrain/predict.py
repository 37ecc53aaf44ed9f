"""Prediction: a run directory (or a saved model) + raw inputs -> one output row per input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nettrain import runs
from nettrain.data import numeric_frame
from nettrain.errors import DataError, UsageError

INPUT_SUFFIXES = (".csv", ".npy", ".npz")


def read_inputs(path: Path, features: list[str] | None, ignore: list[str]) -> np.ndarray:
    """Read INPUT as a float32 array; a CSV must have the training columns (any order).

    Args:
        path: a .csv with a header row, a .npy, or a .npz holding ``x`` (or ``x_test``).
        features: the training input columns, when known; other columns are refused.
        ignore: columns that may be present and are dropped (the training target).
    """
    if not path.is_file():
        raise UsageError(f"INPUT: expected a {', '.join(INPUT_SUFFIXES)} file; received "
                         f"'{path}', which does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        import pandas as pd

        try:
            frame = pd.read_csv(path)
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"INPUT: cannot read {path} as CSV: {exc}") from None
        columns = [str(c) for c in frame.columns]
        frame.columns = columns
        frame = frame[[c for c in columns if c not in ignore]]
        if features is not None:
            missing = [f for f in features if f not in frame.columns]
            extra = [c for c in frame.columns if c not in features]
            if missing or extra:
                parts = []
                if missing:
                    parts.append(f"missing {', '.join(map(repr, missing))}")
                if extra:
                    parts.append(f"unexpected {', '.join(map(repr, extra))}")
                raise DataError(f"{path.name}: the columns differ from training ({'; '.join(parts)}). "
                                f"Expected the columns: {', '.join(features)}.")
            frame = frame[features]
        return numeric_frame(frame, path.name)
    if suffix in (".npy", ".npz"):
        try:
            loaded = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DataError(f"INPUT: cannot read {path}: {exc}") from None
        if suffix == ".npy":
            return np.asarray(loaded, dtype="float32")
        with loaded:
            for key in ("x", "x_test"):
                if key in loaded.files:
                    return np.asarray(loaded[key], dtype="float32")
            if len(loaded.files) == 1:
                return np.asarray(loaded[loaded.files[0]], dtype="float32")
            raise DataError(f"{path.name}: expected an array named x (or x_test); it holds "
                            f"{sorted(loaded.files)}.")
    raise UsageError(f"INPUT: expected a {', '.join(INPUT_SUFFIXES)} file; received '{path}'.")


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
    per class; a regression model one column per output value.

    Example: ``predict("runs/iris/20261122-120000", "flowers.csv").to_csv(sys.stdout)``.
    """
    import pandas as pd

    run_path, input_path = Path(run_path), Path(input_path)
    if (run_path / runs.CONFIG).is_file():
        run = runs.open_run(run_path)
        info = run.dataset
        ignore = info.get("target") or []
        classifier = run.config.is_classifier
    else:  # a saved model on its own: no column names, no class names
        run, info, ignore, classifier = None, {}, [], None
    model, _ = runs.load_model(run_path, fmt, info.get("input_shape"))
    shape = tuple(info.get("input_shape") or model.input_shape[1:])
    x = fit_shape(read_inputs(input_path, info.get("features"), ignore), shape, input_path.name)
    out = np.asarray(model.predict(x, verbose=0))
    out = out.reshape(len(x), -1)
    if classifier is None:  # guess from the output: probabilities summing to 1 -> classes
        classifier = out.shape[1] > 1 and np.allclose(out.sum(axis=1), 1.0, atol=1e-3)
    if not classifier:
        names = info.get("target")
        if not names or len(names) != out.shape[1]:
            names = [f"output_{i}" for i in range(out.shape[1])]
        return pd.DataFrame(out, columns=names)
    probs = np.concatenate([1 - out, out], axis=1) if out.shape[1] == 1 else out
    classes = info.get("classes") or [str(i) for i in range(probs.shape[1])]
    frame = pd.DataFrame({"class": [classes[i] for i in probs.argmax(axis=1)]})
    for i, name in enumerate(classes):
        frame[f"prob_{name}"] = probs[:, i]
    return frame
