"""``nettrain export``: a run's model in a deployment format, checked in its own runtime.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from nettrain.cli import common
from nettrain.cli.common import Debug, _errors, _load_keras, _use_run_backend, app
from nettrain.run import writing
from nettrain.text import shown


class ExportFormat(str, Enum):
    savedmodel = "savedmodel"
    onnx = "onnx"
    tflite = "tflite"
    keras = "keras"


@app.command(short_help="Write a run's model as a SavedModel, ONNX, TFLite or .keras file, "
             "checked in that format's own runtime.")
def export(
    run: Annotated[Path, typer.Argument(help="A run directory made by 'nettrain fit'.")],
    format: Annotated[ExportFormat, typer.Option(
        "--format", case_sensitive=False,
        help="savedmodel (TensorFlow Serving), onnx (onnxruntime), tflite (LiteRT, builtin "
             "ops only) or keras (every Keras backend); any case (ONNX).")],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", metavar="PATH",
        help="Where to write it (default: RUN/export/model.onnx, model.tflite, model.keras "
             "or saved_model/); '-' is stdout.")] = None,
    rtol: Annotated[Optional[float], typer.Option(
        "--rtol", metavar="FLOAT",
        help="Relative tolerance: each output a of the file must be within atol + rtol * |b| "
             "of the run's model's b, as numpy.allclose (default 1e-4; 1e-2 for a mixed "
             "precision model).")] = None,
    atol: Annotated[Optional[float], typer.Option(
        "--atol", "--tolerance", metavar="FLOAT",
        help="Absolute tolerance (default 1e-5; 1e-2 for a mixed precision model). "
             "--tolerance is the same option.")] = None,
    debug: Debug = False,
) -> None:
    """Write a run's model in a deployment format, load it in that format's own runtime and
    compare its predictions with the run's model on rows of the run's own data (the test
    split) as numpy.allclose does; a file that differs by more is not written (exit 1).

    Prints the checks on stderr and the path written on stdout.

    Example: nettrain export runs/iris/20261122-120000 --format onnx -o iris.onnx
    """
    with _errors(debug):
        from nettrain.export import exporter

        exporter.check(run, format.value, output, rtol, atol)  # before TensorFlow loads
        # the run's backend for a .keras file; the other formats are TensorFlow's graph
        ran_on = _use_run_backend(run, graph=None if format.value == "keras" else format.value,
                                  imports_tensorflow=True)
        _load_keras(debug, saved_model_only=True)
        note = lambda text: common.err.print(  # noqa: E731
            shown(text, lines=True), style="yellow", highlight=False, markup=False,
            soft_wrap=True)
        done = exporter.export(run, format.value, output, rtol, atol, note)
        common.err.print(f"Loaded the run's model with Keras on {ran_on}", highlight=False,
                         markup=False, soft_wrap=True)
        for check in done.checks:
            common.err.print(f"Checked in {check.runtime}: largest difference "
                             f"{check.absolute:.3g} absolute, {check.relative:.3g} relative "
                             f"(allowed: {exporter.allowed(done.rtol, done.atol)})",
                             highlight=False, markup=False, soft_wrap=True)
        to_stdout = writing.is_stdout(done.path)  # the file went there: no path after it
        common.err.print(f"{done.rows} rows of the {done.split} split compared with the run's "
                         f"model; wrote {'standard output' if to_stdout else shown(done.path)}",
                         highlight=False, markup=False, soft_wrap=True)
        if not to_stdout:
            common.out.print(shown(done.path), highlight=False, markup=False, soft_wrap=True)
