"""``nettrain track``: upload run directories to MLflow; and ``--track URI`` as the config's
``tracking:`` section, for ``fit`` and ``sweep``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from nettrain.cli import common
from nettrain.cli.common import Debug, _errors, _load_keras, _use_backend, app
from nettrain.errors import UsageError
from nettrain.text import HIDDEN, redacted, shown

if TYPE_CHECKING:
    from nettrain.config.schema import Config

Track = Annotated[Optional[str], typer.Option(
    "--track", metavar="URI",
    help="Log to MLflow at this tracking URI (http://host:5000, sqlite:///mlflow.db); the "
         "same as tracking: {mlflow: {uri: URI}} in the config.")]


def track_override(config: Config, uri: str) -> str:
    """The override that sets ``--track URI``: the config's whole ``tracking:`` section with
    ``uri`` in it (a section that is not in the file is added whole); a malformed ``uri`` is
    refused first, as ``--track``."""
    from nettrain.tracking import store

    store.check_named(uri, "--track")
    settings = config.tracking.mlflow.model_dump(exclude_none=True) \
        if config.tracking is not None else {}
    return f"tracking={json.dumps({'mlflow': {**settings, 'uri': uri}})}"


def logged_note(logger: Any) -> str | None:
    """The line that says where a run was logged (None when it was not), with the run's page
    in a server's UI (what MLflow itself would print on stdout)."""
    if logger is None or logger.run_id is None or logger.broken is not None:
        return None
    from urllib.parse import urlsplit, urlunsplit

    line = f"Logged to MLflow: {logger.place.shown}, run {logger.run_id}"
    parts = urlsplit(logger.place.uri)
    if parts.scheme.lower() in ("http", "https") and logger.experiment_id:
        site = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], query="",
                                         fragment="")).rstrip("/")  # no user, no token
        line += f" ({site}/#/experiments/{logger.experiment_id}/runs/{logger.run_id})"
    return line


def _use_runs_backend(opened: list[Any]) -> str:
    """The backend that loads the runs' models for MLflow (a process has one), from the
    backend policy: the one they trained on when they agree; asked with the config of the run
    that the fewest backends can load (string columns: TensorFlow only)."""
    from nettrain.backends import select
    from nettrain.run.record import RunRecord

    trained = {RunRecord(run.path).read().get("backend", "tensorflow") for run in opened}
    narrowest = max(opened, key=lambda run: sum(
        bool(select.cannot_run(run.config, name, loading=True)) for name in select.NAMES))
    return _use_backend(narrowest.config, recorded=trained.pop() if len(trained) == 1 else None,
                        loading=True, imports_tensorflow=True)


@app.command()
def track(
    runs: Annotated[list[Path], typer.Argument(
        metavar="RUN", help="Run directories to upload (made by nettrain fit or sweep).",
        show_default=False)],
    uri: Annotated[Optional[str], typer.Option(
        "--uri", metavar="URI", help="The MLflow tracking URI (default: the one run.json "
        "records, else the config's tracking.mlflow.uri, else the SQLite store mlflow.db in "
        "the runs folder).")] = None,
    debug: Debug = False,
) -> None:
    """Upload runs to MLflow: params, metrics per epoch, final metrics, files and the model.

    A run partly logged goes on in the same MLflow run (only what is missing is added); one
    made while the server was away is created; one uploaded whole is left as it is. Prints
    each run's MLflow run id on stdout, one a line (what was done goes to stderr).

    Example: nettrain track runs/iris/20261122-120000 --uri http://127.0.0.1:5000
    """
    with _errors(debug):
        from nettrain.config.sections import MLFLOW_INSTALL, mlflow_installed

        if not mlflow_installed():
            raise UsageError(f"nettrain track needs MLflow, which is not installed here. "
                             f"Install it: {MLFLOW_INSTALL}")
        from nettrain.run import directory as rundir
        from nettrain.tracking import store

        if uri is not None:
            store.check_named(uri, "--uri")
        opened = [rundir.open_run(run) for run in runs]  # every RUN checked before any upload
        for run in opened:  # a store the run's files name: under the runs folder, or named
            kept = _kept_uri(run.path)
            found = None if uri else store.refusal(
                store.where(run.config, kept).uri, f"{run.path / rundir.RUN}: mlflow.uri"
                if kept else f"{run.path / rundir.CONFIG}: tracking.mlflow.uri",
                ["nettrain", "track", run.path], option="--uri")
            if found is not None:
                raise UsageError(found)
        _use_runs_backend(opened)
        _load_keras(debug)
        from nettrain.tracking.logger import RunLogger, recorded

        failed = 0
        for run in opened:
            warnings: list[str] = []
            note = recorded(run.path)
            before = note.get("uri")  # where fit sent it (no password)
            if note.get("uploaded") and note.get("run_id") and redacted(uri) in (None, before):
                common.err.print(shown(f"{run.path}: already uploaded to experiment "
                                       f"{note.get('experiment')!r} at {before}, run "
                                       f"{note['run_id']}"), highlight=False, markup=False,
                                 soft_wrap=True)
                common.out.print(note["run_id"], highlight=False, markup=False)
                continue
            logger = RunLogger(run.config, uri or _kept_uri(run.path), echo=warnings.append)
            logger.finish(run.path)
            if logger.broken is not None:
                failed += 1
                common.err.print(shown(f"{run.path}: not uploaded to {logger.place.shown}: "
                                       f"{logger.broken}"), style="red", highlight=False,
                                 markup=False, soft_wrap=True)
                continue
            common.err.print(shown(f"{run.path}: {logged_note(logger)}"), highlight=False,
                             markup=False, soft_wrap=True)
            common.out.print(logger.run_id, highlight=False, markup=False)  # stdout: ids only
        if failed:
            raise typer.Exit(1)


def _kept_uri(path: Path) -> str | None:
    """The store run.json says the run went to, when it holds the whole URI (not one whose
    password is ``***``: the config's then, with MLflow's variables)."""
    from nettrain.tracking.logger import recorded

    before = recorded(path).get("uri")
    return before if before and HIDDEN not in before else None
