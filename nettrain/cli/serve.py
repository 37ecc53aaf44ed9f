"""``nettrain serve``: a run's model over HTTP and gRPC, in TensorFlow Serving's protocols."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Annotated

import typer

from nettrain.cli import common
from nettrain.cli.common import BackendOption, Debug, Format, _errors, _load_keras, \
    _use_run_backend, app
from nettrain.errors import RunError, UsageError
from nettrain.text import shown

# What the serve extra installs: (module, package) of each.
_EXTRA = (("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("python_multipart", "python-multipart"),
          ("grpc", "grpcio"), ("tensorflow_serving", "tensorflow-serving-api"),
          ("httptools", "httptools"))


def _check_extra() -> None:
    """Refuse (exit 1) when a package of the serve extra is missing, saying the pip command."""
    missing = []
    for module, package in _EXTRA:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise RunError(f"nettrain serve needs {', '.join(missing)}, which "
                       f"{'is' if len(missing) == 1 else 'are'} not installed. Install the "
                       "serve extra: pip install 'nettrain[serve]'")


@app.command()
def serve(
    run: Annotated[Path, typer.Argument(help="A run directory (or a saved model file).")],
    host: Annotated[str, typer.Option(help="The address to listen on (0.0.0.0: every "
                                           "interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The REST port (TF Serving's is 8501).")] = 8501,
    grpc_port: Annotated[int, typer.Option(
        "--grpc-port", help="The gRPC port (TF Serving's is 8500); 0: no gRPC.")] = 8500,
    model_name: Annotated[str | None, typer.Option(
        "--model-name", help="The model's name in the URLs (/v1/models/NAME) and gRPC "
                             "ModelSpec (default: the config's name).")] = None,
    batch_window_ms: Annotated[float, typer.Option(
        "--batch-window-ms", min=0, help="Join requests arriving within this many ms of the "
                                         "first into one call of the model.")] = 1.0,
    max_batch: Annotated[int, typer.Option(
        "--max-batch", min=1, help="At most this many rows in one call of the model.")] = 1024,
    max_body_bytes: Annotated[int, typer.Option(
        "--max-body-bytes", min=1, help="Refuse a request body larger than this (413).")
    ] = 16 * 2**20,
    max_rows: Annotated[int | None, typer.Option(
        "--max-rows", min=1, help="Refuse a request of more rows than this (413; gRPC "
                                  "RESOURCE_EXHAUSTED), before reading its values (default: "
                                  "10,000).")] = None,
    client_timeout: Annotated[float, typer.Option(
        "--client-timeout", min=0.1, help="Seconds a client has to send a request's headers, "
                                          "and the longest pause in its body (408); then "
                                          "its connection is closed.")] = 10.0,
    max_connections: Annotated[int | None, typer.Option(
        "--max-connections", min=1, help="At most this many open REST connections; past it "
                                         "the one waiting longest for its client is closed "
                                         "(default: ulimit -n less 128, at most 10,000).")
    ] = None,
    format: Annotated[Format | None, typer.Option(
        "--format", case_sensitive=False,
        help="Which saved model to load (default: keras, else json).")] = None,
    backend: BackendOption = None,
    debug: Debug = False,
) -> None:
    """Serve a run's model: TF Serving's REST and gRPC APIs, and /predict by column name.

    Example: nettrain serve runs/renewals/20261122-120000 --port 8501 --grpc-port 8500
    """
    with _errors(debug):
        if not debug:  # gRPC's C core logs a refused port itself; nettrain says it
            os.environ.setdefault("GRPC_VERBOSITY", "NONE")
        _check_extra()
        for option, value, lowest in (("--port", port, 1), ("--grpc-port", grpc_port, 0)):
            if not lowest <= value <= 65535:
                raise UsageError(f"{option}: expected a port number from 1 to 65535"
                                 f"{' (or 0: no gRPC)' if lowest == 0 else ''}; received "
                                 f"{value}.")
        if not run.exists():
            raise UsageError(f"RUN: '{run}' does not exist; give a run directory (nettrain "
                             "runs lists them).")
        # as predict: the run's backend; TensorFlow's protos load TensorFlow for gRPC anyway
        ran_on = _use_run_backend(run if run.is_dir() else run.parent, backend,
                                  format.value if format else None, imports_tensorflow=True)
        _load_keras(debug, saved_model_only=True)
        from nettrain.serve.checks import MAX_ROWS
        from nettrain.serve.model import Served
        from nettrain.serve.server import Options
        from nettrain.serve.server import serve as serving

        served = Served(run, model_name, batch_window_ms, max_batch,
                        format.value if format else None, request_rows=max_rows or MAX_ROWS)
        served.warm()
        options = Options(host, port, grpc_port or None, max_body_bytes,
                          timeout=client_timeout, max_connections=max_connections)
        where = f"[{host}]" if ":" in host else host

        def ready(stop: object) -> None:
            common.err.print(
                f"Serving {served.name} ({shown(run)}) with Keras on {ran_on}:\n"
                f"  REST  http://{where}:{port}/v1/models/{served.name}:predict, "
                f"/predict, docs at http://{where}:{port}/docs\n"
                + (f"  gRPC  {where}:{grpc_port} (tensorflow.serving.PredictionService, "
                   "ModelService)\n"
                   if grpc_port else "") + "Ctrl-C stops (requests in flight finish first).",
                highlight=False, markup=False, soft_wrap=True)

        serving(served, options, ready)
        common.err.print("Stopped.", highlight=False, markup=False)
