"""Prediction: a run directory (or a saved model) + raw inputs -> one output row per input.

A CSV input is read and predicted in chunks of rows, and each chunk's output is written before
the next is read, so memory stays flat in the number of rows.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from nettrain.config.fields import spec_kwargs
from nettrain.data.columns import named_inputs, names_of
from nettrain.data.csvfile import RULE, CsvRule, read_csv, read_header
from nettrain.data.dataset import IMAGE_SUFFIXES, Inputs
from nettrain.data.missing import Missing
from nettrain.data.tabular import (
    PREDICT_ADVICE,
    check_columns,
    fill_missing,
    table_inputs,
)
from nettrain.engine.arrays import CHUNK_ROWS, array_chunks, read_arrays, read_images
from nettrain.engine.csvtext import csv_text
from nettrain.errors import DataError, InputError, Problem, UsageError, did_you_mean
from nettrain.model import saving
from nettrain.model.outputs import saved_classifier
from nettrain.run import directory as rundir
from nettrain.run import writing
from nettrain.text import shown

INPUT_SUFFIXES = (".csv", ".npy", ".npz")
# Rows per call of the model: Keras's default (32) spends most of its time calling the model
# (about 2 ms a call); 4,096 rows of outputs are still small, and CHUNK_ROWS is a multiple, so
# the batches are those of one model.predict(batch_size=4096) of the whole file.
BATCH_SIZE = 4_096
BATCH_BYTES = 64 * 2**20  # a batch's inputs at most: 4,096 rows of 4,096 numbers, 111 images


@dataclass
class Predictor:
    """A loaded model and what reading its inputs and naming its outputs needs."""

    model: Any
    info: dict[str, Any]            # the run's dataset.json (empty for a bare model)
    classifier: bool | None         # None: unsaid (a bare SavedModel): guessed from outputs
    logits: bool = False            # the loss had from_logits: apply the activation here
    missing: Any = "error"          # the run's data.missing (runs that recorded no fills)
    delimiter: str = ","            # the run's data.delimiter


def check_output(output: Path) -> None:
    """Refuse an --output that cannot be written, before anything is loaded or predicted
    (:func:`nettrain.run.writing.check`: a folder, a socket, a missing or read-only folder)."""
    if output.is_dir():
        raise UsageError(f"--output: {output} is a folder; give a file name, e.g. "
                         f"{output / 'predictions.csv'}.")
    writing.check(output, "--output")


def load_run(run_path: Path, fmt: str | None = None) -> Predictor:
    """The model of a run directory (or a saved model on its own) and its reading rules."""
    if (run_path / rundir.CONFIG).is_file():
        run = rundir.open_run(run_path)
        info = run.dataset
        model, _ = saving.load_model(run_path, fmt, info)
        return Predictor(model, info, run.config.is_classifier,
                         bool(spec_kwargs(run.config.compile.loss).get("from_logits")),
                         run.config.data.missing, run.config.data.delimiter)
    model, _ = saving.load_model(run_path, fmt, {})
    info: dict[str, Any] = {}
    try:
        named = model.input  # a dict for one named input per column
    except (AttributeError, ValueError):  # a Sequential never called (from a SavedModel)
        named = None
    if isinstance(named, dict):  # a bare model of named inputs: their names are the columns
        kinds = {"float32": "numeric", "int64": "integer", "string": "string"}
        columns = {name: kinds.get(str(t.dtype), "numeric") for name, t in named.items()}
        info = {"features": list(named), "csv_reading": RULE.to_json(), "columns": columns,
                "model_inputs": named_inputs(columns, {name: name for name in named})}
    return Predictor(model, info, saved_classifier(model))


def read_csv_chunks(path: Path, info: dict[str, Any], missing: str, delimiter: str = ",",
                    rows: int | None = None, keep: Sequence[str] = (),
                    note: Callable[[str], None] | None = None) -> Iterator[Inputs]:
    """A CSV of raw rows, ``rows`` at a time (default CHUNK_ROWS), as the model takes them:
    the training columns in any order (matched by name), read by the rule the run recorded
    (:class:`nettrain.data.csvfile.CsvRule`). Other columns (a target, an id) are not inputs:
    ``note`` is told once which are ignored, unless ``keep`` names them (a usage error for a
    column the file lacks; see :func:`kept_chunks`)."""
    if info.get("timeseries"):  # one forecast per window: nettrain predict (forecast.py)
        raise InputError(f"{path.name}: a series model's CSV of rows is forecast by nettrain "
                         "predict RUN FILE.csv (windows in time order); here give windows, "
                         f"each a list of {info['input_shape'][0]} rows of numbers.")
    columns = info.get("columns") or {}
    features = _check_header(read_header(path, delimiter, "INPUT"), info, keep, path.name,
                             delimiter, note)
    kinds = columns or dict.fromkeys(features, "numeric")
    categorical = [c for c, kind in kinds.items() if kind != "numeric"]
    read = 0
    for chunk in read_csv(path, delimiter, "INPUT", CsvRule.of(info), categorical,
                          rows or CHUNK_ROWS):
        read += len(chunk)
        if not chunk.empty:  # a header only
            yield _table_chunk(chunk, features, kinds, info, missing, path.name)
    if read == 0:
        raise InputError(f"{path.name}: no rows to predict (only a header).")


def _check_header(header: list[str], info: dict[str, Any], keep: Sequence[str], name: str,
                  delimiter: str, note: Callable[[str], None] | None) -> list[str]:
    """The feature columns of a predict CSV with this header: refuse an unknown ``keep``
    column (exit 2) and missing features; tell ``note`` which columns are ignored."""
    unknown = [c for c in keep if c not in header]
    if unknown:
        close = did_you_mean(unknown[0], header)
        raise UsageError(Problem("--keep", f"column names of {name} ({', '.join(header)})",
                                 ", ".join(map(repr, unknown)),
                                 f"Did you mean '{close}'?" if close else None))
    targets = info.get("target") or []
    features = info.get("features")
    if features is None:  # a bare model: every other column is an input
        return [c for c in header if c not in targets and c not in keep]
    # Extra columns are ignored (named beside a missing feature: one may be its misspelling).
    check_columns(header, features, name, "training", delimiter, optional=(*targets, *keep),
                  extra_allowed=True)
    ignored = [c for c in header if c not in features and c not in targets and c not in keep]
    target = [c for c in header if c in targets and c not in keep]
    if note and ignored:
        names = ", ".join(map(repr, ignored))
        note(f"{name}: ignoring the column{'s' if len(ignored) > 1 else ''} {names} (not "
             f"inputs of the model); --keep {shlex.quote(ignored[0])} copies "
             f"{'one' if len(ignored) > 1 else 'it'} into the output.")
    if note and target:
        names = ", ".join(map(repr, target))
        note(f"{name}: ignoring the target column{'s' if len(target) > 1 else ''} {names} "
             f"(what the model predicts); --keep {shlex.quote(target[0])} copies it into the "
             "output.")
    return features


def kept_chunks(path: Path, keep: Sequence[str], delimiter: str = ",",
                rows: int | None = None) -> Iterator[Any]:
    """The ``keep`` columns of a CSV as the text written in the file ('007' stays '007', an
    empty cell '', 'NA' 'NA'), ``rows`` at a time like :func:`read_csv_chunks`."""
    for chunk in read_csv(path, delimiter, "INPUT", rows=rows or CHUNK_ROWS, columns=keep,
                          verbatim=True):
        yield chunk[list(keep)].reset_index(drop=True)


def _table_chunk(frame: Any, features: list[str], kinds: dict[str, str], info: dict[str, Any],
                 missing: Any, name: str) -> Inputs:
    """Rows of the original columns as the model takes them: filled as the run recorded,
    keyed by its input names (column -> input name, the run's record)."""
    categorical = [c for c, kind in kinds.items() if kind != "numeric"]
    # Filled as training filled them (the run's recorded fills); rows cannot be dropped here:
    # one output row per input row.
    fill = lambda f: fill_missing(  # noqa: E731
        f[features], Missing.of_run(info, missing), kinds, name,
        advice="Fill it: predict needs a value in every column.", part=True)
    try:
        return table_inputs(fill(frame), features, categorical, name,
                            kinds if categorical else None, advice=PREDICT_ADVICE,
                            names=names_of(info) or None)
    except DataError as first:  # every problem of the chunk's cells, together
        from nettrain.data.cells import together

        raise together(first, frame, name, features, kinds, fill=fill, advice=PREDICT_ADVICE,
                       part=True) from None


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
    raise InputError(f"{name}: the inputs have shape {list(x.shape[1:])} per sample; the "
                     f"model takes {list(shape)}.")


def predict_chunks(run_path: str | Path, input_path: str | Path, fmt: str | None = None,
                   keep: Sequence[str] = (), note: Callable[[str], None] | None = None) -> \
        Iterator[Any]:
    """Predict every input row; yield pandas DataFrames of output rows, one per input chunk.

    A classifier gives the predicted class (its name where known) and one probability column
    per class; a regression model one column per output value. Images get their path first,
    a CSV's ``keep`` columns come first, as written in it (an output column of the same name
    becomes ``predicted_NAME``). A CSV is read CHUNK_ROWS rows at a time with the run's
    delimiter and missing policy; its columns that are no inputs are ignored, with a line to
    ``note``.
    """

    run_path, input_path = Path(run_path), Path(input_path)
    if not input_path.exists():
        raise UsageError(f"INPUT: '{input_path}' does not exist.")
    keep = list(dict.fromkeys(keep))
    if keep and (input_path.is_dir() or input_path.suffix.lower() != ".csv"):
        what = "an array without column names: row i of the output is row i of the array" \
            if input_path.suffix.lower() in (".npy", ".npz") else \
            "not a CSV (the output of an image starts with its path)"
        raise UsageError(f"--keep: only for a CSV input (it copies columns named in its "
                         f"header); received '{input_path}', {what}.")
    predictor = load_run(run_path, fmt)
    info, model = predictor.info, predictor.model
    suffix = input_path.suffix.lower()
    if info.get("timeseries") and suffix == ".csv":  # windows of the rows, in time order
        from nettrain.engine.forecast import forecast_inputs, placed

        x, when, told = forecast_inputs(info, predictor.missing, predictor.delimiter,
                                        input_path, keep)
        if note:
            note(told)
        yield placed(outputs(predictor, call_model(predictor, x, input_path.name)), when)
        return
    images = bool(info.get("images"))
    if images and (input_path.is_dir() or suffix in IMAGE_SUFFIXES):
        x, paths = read_images(input_path, info["images"])
        yield outputs(predictor, call_model(predictor, x, input_path.name), paths)
        return
    if images and suffix == ".csv":
        raise UsageError(f"INPUT: this model takes images: an image file "
                         f"({', '.join(IMAGE_SUFFIXES)}) or a folder of images (or a .npy/.npz "
                         f"array of them, shape [{', '.join(map(str, info['input_shape']))}] "
                         f"per image); received '{input_path}'.")
    if suffix == ".csv":
        chunks = read_csv_chunks(input_path, info, predictor.missing, predictor.delimiter,
                                 keep=keep, note=note)
        # the kept columns come from a reader of their own, as text, in step row for row
        kept = kept_chunks(input_path, keep, predictor.delimiter) if keep else None
        for x in chunks:
            frame = outputs(predictor, call_model(predictor, x, input_path.name))
            yield _with_kept(frame, next(kept, frame.iloc[:0, :0])) if kept else frame
    elif suffix in (".npy", ".npz"):
        if info.get("columns"):
            raise UsageError(f"INPUT: this model takes named columns, one input each: give a "
                             f"CSV with a header row and the columns "
                             f"{', '.join(info['features'])}; received '{input_path}'.")
        for x in array_chunks(read_arrays(input_path), input_path.name):
            yield outputs(predictor, call_model(predictor, x, input_path.name))
    else:
        if not (run_path / rundir.CONFIG).is_file():  # a model file alone
            _refuse_images(run_path, input_path, model)
        kinds = f"an image file ({', '.join(IMAGE_SUFFIXES)}), a folder of images, .npy or " \
            ".npz" if images else ", ".join(INPUT_SUFFIXES)
        raise UsageError(f"INPUT: expected {kinds}; received '{input_path}'.")


def _refuse_images(model_path: Path, input_path: Path, model: Any) -> None:
    """Refuse images for a model file alone: it does not record how training read them."""
    shape = getattr(model, "input_shape", None)  # image inputs: [rows, height, width, colours]
    if (input_path.is_dir() or input_path.suffix.lower() in IMAGE_SUFFIXES) and \
            isinstance(shape, tuple) and len(shape) == 4:
        run = model_path.parent if (model_path.parent / rundir.CONFIG).is_file() else None
        way = f": nettrain predict {shlex.quote(str(run))} {shlex.quote(str(input_path))}" \
            if run else f" (or a .npy/.npz array of them, shape [rows, {shape[1]}, {shape[2]}, " \
            f"{shape[3]}], raw pixels)."
        what = "a folder" if input_path.is_dir() else "an image"
        raise UsageError(f"INPUT: '{input_path}' is {what}, and the model file {model_path} "
                         "alone does not record how images were read in training (the image "
                         "size and colour mode they were resized to). Pass the run directory "
                         f"instead{way}")


def _model_keys(x: dict[str, np.ndarray], predictor: Predictor) -> dict[str, np.ndarray]:
    """Named inputs keyed as the model takes them: a model saved before inputs had their own
    names (:func:`nettrain.data.columns.input_names`) takes the column names."""
    try:
        keys = predictor.model.input
    except (AttributeError, ValueError):
        return x
    columns = list(predictor.info.get("columns") or [])
    if not isinstance(keys, dict) or set(keys) == set(x) or set(keys) != set(columns):
        return x
    return {column: x[name] for column, name in names_of(predictor.info).items()}


def _shaped(x: np.ndarray, predictor: Predictor, name: str) -> np.ndarray:
    shape = tuple(predictor.info.get("input_shape") or predictor.model.input_shape[1:])
    try:
        return fit_shape(x, shape, name)
    except InputError as exc:
        features = predictor.info.get("features")
        if not features or predictor.info.get("images"):
            raise
        raise InputError(f"{exc} Give one value per column, in the training order "
                        f"({', '.join(features)}), or a CSV with a header row.") from None


def rows_inputs(predictor: Predictor, rows: Any, name: str = "rows") -> Inputs:
    """Rows already in memory as the model takes them, by the rules `nettrain predict` reads
    a file with (``nettrain serve``'s rows): a pandas DataFrame of columns by name for a
    table model (a categorical column's values as the text a CSV would hold: ``5`` and
    ``"5"`` are one category; None a missing cell, filled by the run's ``data.missing``), or an
    array of rows for a model of arrays or images. Errors name ``name`` and count rows
    from 1."""
    import pandas as pd

    info = predictor.info
    if isinstance(rows, pd.DataFrame):
        if info.get("timeseries"):  # a row is a time step; the model takes windows of them
            raise InputError(f"{name}: this model forecasts from windows of a series: give "
                             f"each as a list of {info['input_shape'][0]} rows of "
                             f"{len(info['features'])} numbers ({', '.join(info['features'])}),"
                             " or a CSV of the latest rows to nettrain predict.")
        if not info.get("features"):
            raise InputError(f"{name}: this model takes arrays, not named columns: give each "
                             "row as a list of numbers.")
        frame = rows.set_axis(np.arange(len(rows)) - 1)  # messages say 'row {i + 2}'
        columns = info.get("columns") or {}
        features = _check_header([str(c) for c in frame.columns], info, (), name,
                                 predictor.delimiter, None)
        return _table_chunk(frame, features, columns or dict.fromkeys(features, "numeric"),
                            info, predictor.missing, name)
    if info.get("columns"):
        raise InputError(f"{name}: this model takes named columns ({', '.join(info['features'])}"
                         "): give each row as an object of column: value.")
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            x = np.asarray(rows, dtype="float32")
        except (TypeError, ValueError) as exc:
            raise InputError(f"{name}: expected rows of numbers, all of one shape; {exc}.") \
                from None
    return _shaped(next(array_chunks(x, name, rows=max(x.size and len(x), 1))), predictor, name)


def call_model(predictor: Predictor, x: Inputs, name: str, whole: bool = False) -> np.ndarray:
    """The model's raw outputs for inputs as this module reads them (a chunk of a CSV, an
    array, images), :func:`batches_of` rows at a time (``whole``: one batch, a server's few
    rows), each one call of ``predict_on_batch`` (about 2 ms besides the model), not of
    ``predict``, which builds a pipeline each call (0.3 s a chunk: 5 s of a million rows)."""
    from nettrain.data.dataset import size, take
    from nettrain.data.pipeline import needs_dataset

    model = predictor.model
    if needs_dataset(x):
        x = _model_keys(x, predictor)
    elif not predictor.info.get("images") or x.ndim != 4:
        x = _shaped(x, predictor, name)
    n = size(x)
    step = max(n, 1) if whole else batches_of(x)
    parts = [model.predict_on_batch(x if step >= n else take(x, slice(start, start + step)))
             for start in range(0, n, step) or [0]]
    if len(parts) == 1:
        return parts[0]
    import keras

    return keras.tree.map_structure(lambda *a: np.concatenate(a), *parts)


def batches_of(x: Inputs) -> int:
    """Rows per call of the model: BATCH_SIZE, fewer for large rows (images), so that a
    batch's inputs stay within BATCH_BYTES."""
    from nettrain.data.dataset import size

    arrays = list(x.values()) if isinstance(x, dict) else [x]
    row = sum(a.itemsize * int(np.prod(a.shape[1:])) for a in arrays) or 1
    return max(1, min(BATCH_SIZE, BATCH_BYTES // row, size(x)))


def outputs(predictor: Predictor, out: Any, paths: list[str] | None = None) -> Any:
    """The model's outputs for some rows as a DataFrame: classes and probabilities, or values."""
    import pandas as pd

    out = np.asarray(out).reshape(len(out), -1)
    if predictor.classifier is None:  # layers unseen: probabilities summing to 1 -> classes
        predictor.classifier = bool(out.shape[1] > 1 and
                                    np.allclose(out.sum(axis=1), 1.0, atol=1e-3))
    if not predictor.classifier:
        names = predictor.info.get("target")
        if not names or len(names) != out.shape[1]:
            names = [f"output_{i}" for i in range(out.shape[1])]
        frame = pd.DataFrame(out, columns=names)
    else:
        if predictor.logits:  # the model ends without its activation: the loss applied it
            out = 1 / (1 + np.exp(-out)) if out.shape[1] == 1 else _softmax(out)
        probs = np.concatenate([1 - out, out], axis=1) if out.shape[1] == 1 else out
        classes = predictor.info.get("classes") or [str(i) for i in range(probs.shape[1])]
        names = [shown(name) for name in classes]
        frame = pd.DataFrame({"class": [names[i] for i in probs.argmax(axis=1)]})
        for i, name in enumerate(classes):
            frame[f"prob_{name}"] = probs[:, i]
    if paths is not None:
        frame.insert(0, "path", [shown(path) for path in paths])
    return frame


def _with_kept(frame: Any, kept: Any) -> Any:
    """The kept input columns, then the outputs (``class`` beside a kept ``class`` column
    becomes ``predicted_class``)."""
    import pandas as pd

    if len(kept) != len(frame):  # both readers parse the same file: never expected
        raise DataError(f"INPUT: the --keep columns were read as {len(kept)} rows beside "
                        f"{len(frame)} rows of inputs; the CSV's rows are ambiguous (a quote "
                        "left open?).")
    frame = frame.rename(columns={c: f"predicted_{c}" for c in frame.columns if c in kept})
    return pd.concat([kept, frame], axis=1)


def predict(run_path: str | Path, input_path: str | Path, fmt: str | None = None,
            keep: Sequence[str] = ()) -> Any:
    """Predict every input row; return one pandas DataFrame (one row per input).

    Example: ``predict("runs/iris/20261122-120000", "flowers.csv", keep=["id"])``.
    For inputs larger than memory use :func:`predict_chunks` and :func:`write_predictions`.
    """
    import pandas as pd

    return pd.concat(list(predict_chunks(run_path, input_path, fmt, keep)), ignore_index=True)


def write_predictions(frames: Iterator[Any], output: Path | None,
                      stdout: TextIO | None = None) -> int:
    """Write output frames as one CSV as they come: to ``stdout`` (also for an ``output`` of
    '-' or ``/dev/stdout``), or to ``output`` through a temporary file put in place at the end
    (:mod:`nettrain.run.writing`; a failure leaves no half-written file, a device or FIFO is
    written into, never replaced).
    Returns the number of rows written. Column names (``prob_<class>``...) are written as
    :func:`nettrain.text.shown` shows them: people and terminals read the file too."""
    rows = 0

    def write(sink: TextIO) -> None:
        nonlocal rows
        for frame in frames:
            header = [shown(c) for c in frame.columns] if rows == 0 else None
            sink.write(csv_text(frame, header))
            rows += len(frame)

    if output is None or writing.is_stdout(output):  # '-', /dev/stdout: rows as they come
        stdout = stdout or sys.stdout
        write(stdout)
        stdout.flush()
    else:
        with writing.replacing(output) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            write(f)
    return rows
