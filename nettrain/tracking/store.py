"""Where a run is tracked and how nettrain talks to that MLflow store: the URI and experiment
of a config, the client with short retries, the experiment, and the store read back.

MLflow is imported only inside the functions here, never at import time: a config without
``tracking:`` never loads it. Every call to a store goes through :func:`client`, which first
sets MLflow's HTTP retries and timeout so that a server that is down costs seconds, not the
minutes of MLflow's defaults (the environment may still set them).

A URI's password never reaches a file (:func:`nettrain.text.redacted`): the run's
config.yaml holds ``http://user:***@host``. :func:`client` gives MLflow the URI without its
user part and the user and password in MLflow's own variables, ``MLFLOW_TRACKING_USERNAME``
and ``MLFLOW_TRACKING_PASSWORD`` (so the processes it starts, a sweep's trials, have them
too); for a URI whose password is hidden it reads them from the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nettrain.config.schema import Config
from nettrain.errors import RunError
from nettrain.run import directory as rundir
from nettrain.text import HIDDEN, command, redacted

# The store a run goes to when the config names none: a SQLite file under the runs folder,
# which needs no server (``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``).
DATABASE = "mlflow.db"
ARTIFACTS = "mlartifacts"  # beside a SQLite store: the artifacts of its experiments
# nettrain's own calls give up quickly: 2 retries, 1 s backoff, 10 s per request.
HTTP_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
# Tags nettrain sets on its MLflow runs.
RUN_DIR_TAG = "nettrain.run_dir"
STATUS_TAG = "nettrain.status"
EPOCHS_TAG = "nettrain.epochs"
PLANNED_TAG = "nettrain.planned_epochs"
DIRECTIONS_TAG = "nettrain.directions"  # run.json's directions (JSON): which way each improves
SWEEP_TAG = "nettrain.sweep"
PARENT_TAG = "mlflow.parentRunId"
# Metric names: each epoch's as epoch/<history.csv column> (step = the epoch), the final ones
# of each split as final/<name as `nettrain runs` shows it>. MLflow's UI draws a section per
# prefix, in this order: the learning curves first, then the single values.
EPOCH = "epoch/"
FINAL = "final/"
# MLflow's variables for the user and password of a tracking server (basic auth).
USERNAME, PASSWORD = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"


@dataclass(frozen=True)
class Where:
    """An MLflow store and experiment: ``uri`` as given, ``experiment`` by name."""

    uri: str
    experiment: str

    @property
    def shown(self) -> str:
        return f"experiment {self.experiment!r} at {redacted(self.uri)}"


def default_uri() -> str:
    """``sqlite:///<runs folder>/mlflow.db`` (absolute): the store that needs no server."""
    return f"sqlite:///{(rundir.runs_root() / DATABASE).absolute()}"


def where(config: Config, uri: str | None = None) -> Where:
    """The store and experiment of a config: ``uri`` (``--track``, ``nettrain track --uri``),
    else ``tracking.mlflow.uri``, else :func:`default_uri`; the experiment is
    ``tracking.mlflow.experiment``, else the config's name."""
    settings = config.tracking.mlflow if config.tracking is not None else None
    uri = uri or (settings.uri if settings else None) or default_uri()
    return Where(uri, (settings.experiment if settings else None) or config.name)


def _http(uri: str) -> bool:
    return uri.split("://", 1)[0].lower() in ("http", "https")


def again(uri: str, *words: object) -> str:
    """The command ``words`` to copy from a message about the store ``uri``: when the run's
    files hold ``uri`` without its password, with MLflow's variables before it
    (``MLFLOW_TRACKING_USERNAME=me MLFLOW_TRACKING_PASSWORD=... nettrain track run``)."""
    from urllib.parse import unquote, urlsplit

    line = command(*words)
    parts = urlsplit(uri)
    if not _http(uri) or parts.password is None:
        return line
    user = [command(f"{USERNAME}={unquote(parts.username)}")] if parts.username else []
    return " ".join([*user, f"{PASSWORD}=...", line])


def _connect(uri: str) -> str:
    """The URI to give MLflow. An HTTP URI goes without its user part: its user and password
    go to MLflow's variables (a password in the URI replaces theirs); RunError when its
    password is hidden (``user:***@``, as the run's files hold it) and MLFLOW_TRACKING_PASSWORD
    is not set. A database's hidden password is left out: its driver finds it (PGPASSWORD)."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    user, password = parts.username, parts.password
    if not _http(uri):
        return uri.replace(f":{HIDDEN}@", "@", 1) if password == HIDDEN else uri
    if password == HIDDEN:
        if not os.environ.get(PASSWORD):
            raise RunError(f"the password of {uri} is not kept in the run's files: set "
                           f"{PASSWORD} (and {USERNAME}), or give the URI again with its "
                           "password (--track URI, nettrain track --uri URI)")
        password = None
    if user and (password is not None or not os.environ.get(USERNAME)):
        os.environ[USERNAME] = unquote(user)
    if password is not None:
        os.environ[PASSWORD] = unquote(password)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def client(uri: str) -> Any:
    """An ``MlflowClient`` of the store ``uri``, with nettrain's short HTTP retries; a SQLite
    store's folder is created. The fluent API (``mlflow.start_run``) gets the same URI. An
    HTTP URI's user and password go to MLflow's variables (see the module's docstring)."""
    uri = _connect(uri)
    for key, value in HTTP_SETTINGS.items():
        os.environ.setdefault(key, value)
    # MLflow writes "View run ... at: URL" to stdout as a run ends, where nettrain's answer (the
    # run directory, the run ids) is all there is; nettrain says where the run is on stderr.
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    import logging

    import mlflow
    from mlflow.tracking import MlflowClient

    for name in ("mlflow", "alembic"):  # their INFO lines would cut nettrain's output
        logging.getLogger(name).setLevel(logging.WARNING)
    # a server away: nettrain says it once; urllib3 would add a line per retry
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def experiment_id(mlflow_client: Any, place: Where, create: bool = True) -> str | None:
    """The id of the experiment ``place.experiment``, created when missing (``create``).

    A SQLite store's new experiment keeps its artifacts in ``mlartifacts/`` beside the
    database (MLflow's default would be ``./mlruns`` under whichever folder nettrain runs in).
    """
    found = mlflow_client.get_experiment_by_name(place.experiment)
    if found is not None:
        return found.experiment_id
    if not create:
        return None
    location = None
    if place.uri.startswith("sqlite:///"):
        location = (Path(place.uri.removeprefix("sqlite:///")).parent / ARTIFACTS).as_uri()
    return mlflow_client.create_experiment(place.experiment, artifact_location=location)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line: ``ConnectionError: ...``; a server that did not
    answer as ``the server did not answer (Connection refused)``."""
    if isinstance(exc, RunError):  # nettrain's own: its words are the message
        return redacted(str(exc))
    text = " ".join(redacted(str(exc)).split())
    if "Max retries exceeded" in text or "NewConnectionError" in text:
        import re

        why = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text) or re.search(r"(timed out)", text)
        return f"the server did not answer ({why.group(1) if why else 'no connection'})"
    text = text if len(text) <= limit else text[:limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def stored_runs(uri: str, experiment: str | None = None) -> list[dict[str, Any]]:
    """The nettrain runs of a store (every experiment, or the one named), newest first, each
    as plain values: ``name``, ``run_dir``, ``status``, ``started``, ``ended``, ``epochs``,
    ``planned``, ``metrics`` (the final ones, named as ``nettrain runs`` names them),
    ``directions`` (run.json's, or None) and ``run_id``. A sweep's parent run is left out
    (its trials are runs)."""
    from datetime import datetime, timezone

    mlflow_client = client(uri)
    if experiment is not None:
        found = mlflow_client.get_experiment_by_name(experiment)
        ids = [found.experiment_id] if found is not None else []
    else:
        ids = [e.experiment_id for e in mlflow_client.search_experiments()]
    if not ids:
        return []
    runs = mlflow_client.search_runs(ids, filter_string=f"tags.`{RUN_DIR_TAG}` != ''",
                                     max_results=5000, order_by=["attributes.start_time DESC"])

    def stamp(ms: int | None) -> str | None:
        return None if ms is None else \
            datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds")

    def number(text: str | None) -> int | None:
        return int(text) if text is not None and text.isdigit() else None

    rows = []
    for run in runs:
        tags = run.data.tags
        rows.append({
            "name": tags.get("nettrain.name") or run.info.run_name, "run_dir": tags.get(RUN_DIR_TAG),
            "status": tags.get(STATUS_TAG) or run.info.status.lower(),
            "started": stamp(run.info.start_time), "ended": stamp(run.info.end_time),
            "epochs": number(tags.get(EPOCHS_TAG)), "planned": number(tags.get(PLANNED_TAG)),
            "metrics": {k.removeprefix(FINAL): v for k, v in run.data.metrics.items()
                        if k.startswith(FINAL)},
            "directions": _directions(tags.get(DIRECTIONS_TAG)), "run_id": run.info.run_id})
    return rows


def _directions(text: str | None) -> dict[str, str] | None:
    """The directions tag read back; None without one (a run logged before it was tagged)."""
    import json

    try:
        found = json.loads(text) if text else None
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
