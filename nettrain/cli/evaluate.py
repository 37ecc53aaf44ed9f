"""``nettrain evaluate`` and ``nettrain predict``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from nettrain.cli import common
from nettrain.cli.common import (
    AllowChangedData,
    BackendOption,
    Debug,
    Format,
    Split,
    _errors,
    _load_keras,
    _use_run_backend,
    _metrics_table,
    app,
)
from nettrain.errors import RunError, UsageError
from nettrain.text import shown

if TYPE_CHECKING:
    pass


@app.command(short_help="Measure a run's model on its test split (or --data): metrics, per-class "
             "report, picture; saved in the run directory.")
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run directory made by 'nettrain fit'.")],
    split: Annotated[Optional[Split], typer.Option(
        help="Which part of the data (default: test if the run has one).")] = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", metavar="FILE",
        help="New labelled data instead of the run's own: a CSV with the target column, an "
             ".npz with x and y, or a folder with one sub-folder per class.")] = None,
    format: Annotated[Optional[Format], typer.Option(
        "--format", case_sensitive=False,
        help="Which saved model to load (default: keras, else json; a SavedModel "
             "runs its own graph, so only when named).")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object (metrics, report, files) and nothing else on "
                       "stdout.")] = False,
    allow_changed_data: AllowChangedData = False,
    backend: BackendOption = None,
    debug: Debug = False,
) -> None:
    """Reload a run's model and data; print the metrics, the per-class (or regression) report
    and the picture written; save them in the run directory.

    Example: nettrain evaluate runs/digits-mlp/20261122-120000 --split validation

    New data: nettrain evaluate runs/iris/20261122-120000 --data new_flowers.csv
    """
    with _errors(debug):
        if data is not None and split is not None:
            raise UsageError(f"--data {data} and --split {split.value}: --data evaluates the "
                             "given file, --split a part of the run's own data; give one.")
        if data is not None and allow_changed_data:
            raise UsageError("--allow-changed-data: only for the run's own data; --data is "
                             "new data, which is never checked against training.")
        _use_run_backend(run, backend, format.value if format else None)
        _load_keras(debug)
        from nettrain.engine import evaluate as evaluating
        from nettrain.engine import reports

        echo = lambda text: common.err.print(  # noqa: E731
            shown(text, lines=True), style="yellow", highlight=False, markup=False,
            soft_wrap=True)
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            done = evaluating.evaluate(run, split.value if split else None,
                                  format.value if format else None, allow_changed_data, echo,
                                  data_path=data)
        from nettrain.tracking.logger import log_evaluation  # MLflow only for a tracked run

        logged = log_evaluation(run, done.split, done.metrics, done.files, echo)
        if as_json:
            sys.stdout.write(json.dumps(_finite({"run": str(run), **done.to_json()})) + "\n")
            _unrecorded(done.unrecorded)
            return
        what = f"--data {shown(data)}" if data is not None else f"{done.split} split"
        common.out.print(f"{shown(run)} ({done.format} model, {what}, "
                         f"{done.report['samples']} samples):",
                         highlight=False, markup=False, soft_wrap=True)
        common.out.print(_metrics_table({data.name if data is not None else done.split: done.metrics}))
        common.out.print(reports.table(done.report))
        for file in done.files:
            kind = "Confusion matrix" if done.report["kind"] == "classification" else \
                "Predicted against true, and residuals"
            common.out.print(f"{kind}: {shown(file)}", highlight=False, markup=False,
                             soft_wrap=True)
        if logged:
            common.err.print(f"Logged to MLflow run {logged}", highlight=False, markup=False)
        _unrecorded(done.unrecorded)


def _unrecorded(why: str | None) -> None:
    """After the numbers are shown: exit 1 when they could not be recorded in the run."""
    if why:
        raise RunError(f"the numbers above were not recorded: {why}. Make the run directory "
                       "writable, or evaluate a writable copy of it, to keep them.")


def _finite(value: object) -> object:
    """A JSON-ready copy with NaN and infinities as null (JSON has no such numbers)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="A run directory, or a saved model file.")],
    input: Annotated[Path, typer.Argument(help="A .csv with a header row, a .npy, a .npz, or (an image model) an image file or "
             "a folder of images.")],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write the predictions to this CSV file (default, or '-': "
                               "stdout).")
    ] = None,
    format: Annotated[Optional[Format], typer.Option(
        "--format", case_sensitive=False,
        help="Which saved model to load (default: keras, else json; a SavedModel "
             "runs its own graph, so only when named).")] = None,
    keep: Annotated[Optional[list[str]], typer.Option(
        "--keep", metavar="COLUMN",
        help="Copy this column of the input CSV (an id) into the output, first, as written; "
             "repeat for more. Other columns that are no inputs are ignored.")] = None,
    backend: BackendOption = None,
    debug: Debug = False,
) -> None:
    """Predict every row of INPUT: the class and its probabilities, or the values.

    Example: nettrain predict runs/iris/20261122-120000 flowers.csv --keep id -o predictions.csv
    """
    with _errors(debug):
        from nettrain.engine import predict as predicting

        if output is not None:
            predicting.check_output(output)  # at once, not after predicting everything
        _use_run_backend(run if run.is_dir() else run.parent, backend,
                         format.value if format else None)
        _load_keras(debug, saved_model_only=True)
        note = lambda text: common.err.print(  # noqa: E731
            f"Note: {shown(text, lines=True)}", style="yellow", highlight=False, markup=False,
            soft_wrap=True)
        frames = predicting.predict_chunks(run, input, format.value if format else None,
                                           keep or [], note)
        rows = predicting.write_predictions(frames, output, sys.stdout)
        if output is not None and str(output) != "-":
            common.err.print(f"Wrote {rows} predictions to {shown(output)}", highlight=False,
                             markup=False)
