"""``nettrain export``: a run's model written in one deployment format, loaded back in that
format's own runtime and compared with the run's model on rows of the run's own data; only a
file that agrees as ``numpy.allclose`` says (``|a - b| <= atol + rtol * |b|``) is moved to its
place.

The flow: check the format can carry the model and its packages are installed (before any
conversion), read the run (:func:`nettrain.run.directory.open_run`), its model
(:func:`nettrain.model.saving.load_model`) and its data (:func:`nettrain.data.loading.load_data`,
by the rule the run recorded), convert into a temporary folder beside the output, predict
there, then put it onto the output (:mod:`nettrain.run.writing`: a file replaced whole, a
device written in place) or refuse with the difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nettrain.data.dataset import size, take
from nettrain.errors import RunError, UsageError
from nettrain.export.formats import FORMATS, Format, cannot_carry, check_installed, feeds, \
    installed_backends, predict_under, predictor, string_inputs, write
from nettrain.run import directory as rundir
from nettrain.run import writing

SAMPLE_ROWS = 256    # rows of the run's data each exported file predicts
EXPORT_FOLDER = "export"  # RUN/export/<file>: the default output


@dataclass
class Check:
    """One runtime's predictions compared with the run's model."""

    runtime: str
    absolute: float     # the largest |a - b| (a: this runtime's output, b: the run's model's)
    relative: float     # the largest |a - b| / |b| (over outputs b other than 0)
    passed: bool        # every output within atol + rtol * |b|


@dataclass
class Exported:
    """What ``export`` wrote and how it was checked."""

    path: Path
    format: str
    rows: int           # the sample rows compared
    split: str          # the split they came from
    rtol: float
    atol: float
    checks: list[Check] = field(default_factory=list)


def default_output(run_path: Path, fmt: str) -> Path:
    return Path(run_path) / EXPORT_FOLDER / FORMATS[fmt].file


def export(run_path: str | Path, fmt_name: str, output: str | Path | None = None,
           rtol: float | None = None, atol: float | None = None,
           echo: Any = print) -> Exported:
    """Export a run's model as ``fmt_name`` to ``output`` (default ``RUN/export/<file>``).

    Args:
        run_path: a run directory made by ``fit``.
        fmt_name: savedmodel, onnx, tflite or keras.
        output: where the file (a folder for savedmodel) goes; an existing one is replaced
            only by a file that passed the check.
        rtol, atol: each output ``a`` of the sample rows must be within ``atol + rtol * |b|``
            of the run's model's ``b``, as ``numpy.allclose`` compares (defaults:
            :func:`nettrain.model.saving.tolerance`, looser for a mixed precision model).
        echo: where a note on what cannot be checked goes, before converting.

    Raises UsageError before converting when the format cannot carry the model or its
    packages are missing, and RunError (nothing written) when the file disagrees.
    """
    run, fmt, target = check(run_path, fmt_name, output, rtol, atol)
    backends = installed_backends() if fmt.name == "keras" else []
    text = string_inputs(run.dataset)
    if backends and text:  # a Keras limit: StringLookup runs on TensorFlow tensors only
        echo(f"Note: this model takes text ({', '.join(text)}), which Keras runs on the "
             f"TensorFlow backend only: the .keras file is not checked under "
             f"{' or '.join(backends)}.")
        backends = []
    model, x, split = _model_and_rows(run)
    expected = np.asarray(_call(model, x))
    from nettrain.model.saving import tolerance

    default_rtol, default_atol = tolerance(model)
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    result = Exported(target, fmt.name, size(x), split, rtol, atol)
    if not writing.output(target).stream:
        target.parent.mkdir(parents=True, exist_ok=True)
    with writing.scratch(target) as work:  # beside the output; a killed export's is removed
        written = work / FORMATS[fmt.name].file
        write(fmt, model, written, work / "scratch")
        result.checks = _checks(fmt, written, feeds(x), expected, backends, rtol, atol)
        failed = [c for c in result.checks if not c.passed]
        if failed:
            worst = failed[0]
            raise RunError(
                f"The {fmt.name} file predicts differently from the run's model in "
                f"{worst.runtime}: largest absolute difference {worst.absolute:.3g}, relative "
                f"{worst.relative:.3g}, on {result.rows} rows of the {split} split; allowed: "
                f"{allowed(rtol, atol)}. Nothing was written at {target}. A larger --rtol "
                "or --atol accepts it, if that difference is fine for your use.")
        writing.put(written, target)
    return result


def allowed(rtol: float, atol: float) -> str:
    """The check in words, as the messages give it."""
    return f"|a - b| <= {atol:g} + {rtol:g} x |b| (--atol, --rtol)"


def check(run_path: str | Path, fmt_name: str, output: str | Path | None,
          rtol: float | None = None, atol: float | None = None) -> \
        tuple[rundir.Run, Format, Path]:
    """Everything refused before a model is loaded (no TensorFlow): the tolerances, the run,
    what the format cannot carry, its packages, the output path. Returns the run, the format
    and the output path."""
    fmt = FORMATS[fmt_name]
    for key, value, what in (("--rtol", rtol, "relative"), ("--atol", atol, "absolute")):
        if value is not None and not 0 <= value < float("inf"):
            raise UsageError(f"{key}: expected a number 0 or more (the {what} difference "
                             f"allowed); received {value}.")
    run = rundir.open_run(run_path)
    why = cannot_carry(fmt, run.dataset)
    if why:
        raise UsageError(f"--format {fmt.name} cannot carry this run's model: {why}.")
    check_installed(fmt)
    target = Path(output) if output is not None else default_output(run.path, fmt.name)
    _check_target(target, fmt, output is None)
    return run, fmt, target


def _check_target(target: Path, fmt: Format, default: bool) -> None:
    """Refuse an output that cannot be written, before anything is loaded or converted: a
    folder in the way (only a SavedModel replaces a SavedModel), a SavedModel (a folder) into
    a device, a missing parent folder, one nettrain cannot write in (a read-only filesystem),
    and what :func:`nettrain.run.writing.check` refuses."""
    folder = fmt.name == "savedmodel"
    if target.is_dir() and not (folder and (target / "saved_model.pb").is_file()):
        raise UsageError(f"--output: {target} is a folder; give the path of the "
                         f"{fmt.name} {'folder' if folder else 'file'} to write, e.g. "
                         f"{target / fmt.file}.")
    if folder and (writing.output(target, "--output").stream or
                   target.exists() and not target.is_dir()):
        raise UsageError(f"--output: {target} is a file or device; a SavedModel is a folder. "
                         f"Give a new path, e.g. {target.with_name(fmt.file)}.")
    if default and not target.parent.exists():  # RUN/export, made when the file is written
        writing.check(target.parent, "--output", folder=True)
    else:
        writing.check(target, "--output", folder=folder)


def _model_and_rows(run: rundir.Run) -> tuple[Any, Any, str]:
    """The run's model (keras, else json: never its SavedModel, which is a program) and up to
    SAMPLE_ROWS rows of its test split (else validation, else train), read as training read
    them."""
    from nettrain.data.loading import load_data
    from nettrain.model.saving import load_model

    model, _ = load_model(run.path, None, run.dataset)
    data = load_data(run.config, run.dataset)
    split = next(s for s in ("test", "validation", "train") if s in data.splits)
    if data.stream:  # a streamed CSV: its first training rows, never the whole file
        x, _ = data.sample(SAMPLE_ROWS)
        return model, x, "train"
    x = data.x[split]
    return model, take(x, np.arange(min(SAMPLE_ROWS, size(x)))), split


def _call(model: Any, x: Any) -> Any:
    import keras

    from nettrain.data.pipeline import to_tensors

    # convert_to_numpy: on torch the output holds its graph (np.asarray refuses it)
    return keras.ops.convert_to_numpy(model(to_tensors(x), training=False))


def _checks(fmt: Format, path: Path, x: dict[str, np.ndarray], expected: np.ndarray,
            backends: list[str], rtol: float, atol: float) -> list[Check]:
    """Predict ``x`` with the file in its runtime (a .keras file: also under ``backends``, each
    in a process of its own) and compare with ``expected`` as ``numpy.allclose`` does."""
    if fmt.name != "keras":
        return [compare(fmt.runtime, predictor(fmt, path)(x), expected, rtol, atol, fmt.name)]
    import keras

    return [compare(f"Keras on {keras.backend.backend()}", predictor(fmt, path)(x), expected,
                    rtol, atol, fmt.name),
            *(compare(f"Keras on {backend}", predict_under(backend, path, x), expected, rtol,
                      atol, fmt.name) for backend in backends)]


def compare(runtime: str, got: Any, expected: np.ndarray, rtol: float, atol: float,
            fmt: str = "exported") -> Check:
    """``got`` (a runtime's outputs) against ``expected`` (the run's model's): passed where
    every output is within ``atol + rtol * |expected|`` (``numpy.allclose``; a NaN fails),
    with the largest absolute and relative differences.

    Example: ``compare("onnxruntime", [100000.0156], np.array([100000.0]), 1e-4, 1e-5)`` ->
    ``Check("onnxruntime", 0.0156, 1.56e-07, True)``.
    """
    got, b = np.asarray(got, dtype="float64"), np.asarray(expected, dtype="float64")
    if got.shape != b.shape:
        raise RunError(f"The {fmt} file gives outputs of shape {got.shape}; the run's model "
                       f"gives {b.shape}. Nothing was written.")
    if not got.size:
        return Check(runtime, 0.0, 0.0, True)
    diff = np.abs(got - b)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(b != 0, diff / np.abs(b), np.where(diff == 0, 0.0, np.inf))
    return Check(runtime, float(np.max(diff)), float(np.max(relative)),
                 bool(np.all(diff <= atol + rtol * np.abs(b))))
