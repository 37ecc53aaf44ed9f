"""Where a run is tracked and how nettrain talks to that MLflow store: the URI and experiment
of a config, the client with short retries, the experiment, and the store read back.

MLflow is imported only inside the functions here, never at import time: a config without
``tracking:`` never loads it. Every call to a store goes through :func:`client`, which first
sets MLflow's HTTP retries and timeout so that a server that is down costs seconds, not the
minutes of MLflow's defaults (the environment may still set them).

Where a run may be tracked (:func:`check`, before anything is trained or sent): a store
named by the user (``--track URI``, ``nettrain track --uri URI``, ``MLFLOW_TRACKING_URI``),
or one under the runs folder. A config file is shared like code, so the store it names
elsewhere (a server that would get the run's files and sample rows, a database anywhere on
disk) is refused unless the user named the same one, as RemoteMonitor is refused.

The default store is created under a lock (:func:`client`): several fits that start together
on a new runs folder would each run MLflow's migrations on the same file and break it.

A URI's password never reaches a file (:func:`nettrain.text.redacted`): the run's
config.yaml holds ``http://user:***@host``. :func:`client` gives MLflow the URI without its
user part and the user and password in MLflow's own variables, ``MLFLOW_TRACKING_USERNAME``
and ``MLFLOW_TRACKING_PASSWORD`` (so the processes it starts, a sweep's trials, have them
too); for a URI whose password is hidden it reads them from the environment.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nettrain.config import uris
from nettrain.config.schema import Config
from nettrain.errors import ConfigError, Problem, RunError, UsageError
from nettrain.run import directory as rundir
from nettrain.text import HIDDEN, command, redacted

# The store a run goes to when the config names none: a SQLite file under the runs folder,
# which needs no server (``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``).
DATABASE = "mlflow.db"
ARTIFACTS = rundir.MLFLOW_ARTIFACTS  # beside a SQLite store: its experiments' artifacts
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
# MLflow's variable for the tracking URI: a store the user names in the environment.
ENV = "MLFLOW_TRACKING_URI"
URI_KEY = ("tracking", "mlflow", "uri")


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
    else ``tracking.mlflow.uri``, else ``MLFLOW_TRACKING_URI``, else :func:`default_uri`; the
    experiment is ``tracking.mlflow.experiment``, else the config's name."""
    settings = config.tracking.mlflow if config.tracking is not None else None
    uri = uri or (settings.uri if settings else None) or os.environ.get(ENV) or default_uri()
    return Where(uri, (settings.experiment if settings else None) or config.name)


def named(uri: str) -> bool:
    """Whether the user named the store ``uri`` in the environment: ``MLFLOW_TRACKING_URI`` is
    the same URI (compared without secrets: the run's files hold ``user:***@``)."""
    given = os.environ.get(ENV)
    return bool(given) and redacted(given) == redacted(uri)


def under_runs(uri: str) -> bool:
    """Whether ``uri`` is a local store (SQLite file, file store) inside the runs folder."""
    path = uris.local_path(uri)
    if path is None:
        return False
    try:
        path.absolute().resolve().relative_to(rundir.runs_root().absolute().resolve())
    except (ValueError, OSError):
        return False
    return True


def naming(uri: str, option: str = "--track") -> tuple[str, ...]:
    """The words that name the store ``uri`` on a command line, which a command repeated from
    the run's files needs (:func:`refusal`): ``(option, URI without its secrets)``; none for
    a store under the runs folder."""
    return () if under_runs(uri) else (option, redacted(uri))


def refusal(uri: str, key: str, asked: Sequence[object], line: int | None = None,
            option: str = "--track") -> Problem | None:
    """The problem of a store ``uri`` that a file names (a config, a run's config.yaml or
    run.json, at ``key``), when it is neither under the runs folder nor :func:`named`: a file
    may not send the run elsewhere nor write outside the runs folder. ``asked``: the command
    the user ran, which the suggestion repeats with ``option`` URI (a kept password,
    ``user:***@``, with MLflow's variables before it: :func:`again`)."""
    if under_runs(uri) or named(uri):
        return None
    shown, path = redacted(uri), uris.local_path(uri)
    why = f"may not write outside the runs folder (this store is a database and the runs' " \
        f"files at {path})" if path is not None else "may not send a run elsewhere (this " \
        "store would get the run's files, dataset.json and sample training rows)"
    name = f"{again(uri, *asked, option, shown)}, or set " if asked else "set "
    return Problem(key, f"a store under the runs folder ({rundir.runs_root()}) or one you "
                        f"name: a file {why}", shown,
                   f"If you trust this store, name it yourself: {name}{ENV}={shown}", line=line)


def check(config: Config, asked: Sequence[object] = (), create: bool = False) -> None:
    """Refuse, before anything is trained or sent (ConfigError, exit 2), the store of a config
    with ``tracking:``: one its file names (not ``--track`` nor an override) that is outside
    the runs folder and not named in ``MLFLOW_TRACKING_URI`` (:func:`refusal`); a malformed
    ``MLFLOW_TRACKING_URI`` it would use; a local store whose folder cannot be created
    (``create``: fit makes it now, which tells for sure; else its nearest folder is asked)."""
    if config.tracking is None:
        return
    uri = config.tracking.mlflow.uri
    problems: list[Problem] = []
    if uri is not None:
        key = ".".join(URI_KEY)
        typed = any(URI_KEY[:len(o)] == o for o in config._overridden)  # --track, KEY=VALUE
        found = None if typed else refusal(uri, key, asked, config._lines.get(URI_KEY))
        problems += [found] if found else []
    elif os.environ.get(ENV):
        key, uri = f"{ENV} (in the environment)", os.environ[ENV]
        wrong = uris.problem(uri)
        if wrong is not None:
            problems.append(Problem(key, wrong[0], redacted(uri), redacted(wrong[1])))
    else:
        key, uri = "tracking.mlflow (the default store)", default_uri()
    why = unwritable(uri, create) if not problems else None
    if why is not None:
        problems.append(Problem(key, "a local store whose folder exists or can be created",
                                redacted(uri), why, line=config._lines.get(URI_KEY)))
    if problems:
        raise config.error(problems) if key == ".".join(URI_KEY) else \
            ConfigError(problems, source=config._source)


def check_named(uri: str, option: str) -> None:
    """Refuse (UsageError, exit 2) a store the user names on the command line (``option``:
    ``--track``, ``--uri``) that is malformed or a local store that cannot be created (its
    nearest folder asked: fit makes it at :func:`check`)."""
    wrong = uris.problem(uri)
    why = unwritable(uri) if wrong is None else None
    if wrong is not None:
        raise UsageError(Problem(option, wrong[0], redacted(uri), redacted(wrong[1])))
    if why is not None:
        raise UsageError(Problem(option, "a local store whose folder exists or can be created",
                                 redacted(uri), why))


def unwritable(uri: str, create: bool = False) -> str | None:
    """Why the local store ``uri`` (a SQLite file, a file store's folder) cannot be created or
    written, in a few words; None when it can, or it is not local. ``create``: make its
    folder (else the nearest folder that exists is asked, which root's rights can fool)."""
    path = uris.local_path(uri)
    if path is None:
        return None
    path = path.absolute()
    folder = path.parent if uris.scheme(uri) == "sqlite" else path
    if uris.scheme(uri) == "sqlite" and path.is_dir():
        return f"{path} is a folder; name a database file in it"
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"{folder} cannot be made ({exc.strerror or exc})"
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder, so {folder} cannot be made"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


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

    from nettrain.backends.startup import long_lived

    with long_lived():  # MLflow's 1.2 CPU s import: 0.3 s less without the collector
        import mlflow
        from mlflow.tracking import MlflowClient

    for name in ("mlflow", "alembic"):  # their INFO lines would cut nettrain's output
        logging.getLogger(name).setLevel(logging.WARNING)
    # a server away: nettrain says it once; urllib3 would add a line per retry
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

    database = uris.local_path(uri) if uris.scheme(uri) == "sqlite" else None
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    given = os.environ.get(ENV)
    mlflow.set_tracking_uri(uri)
    # MLflow also sets MLFLOW_TRACKING_URI, for its subprocesses: it stays what the user set
    # (the variable names a store the user chose; see check)
    if given is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = given
    if database is None:
        return MlflowClient(tracking_uri=uri)
    with _creating(database):  # MLflow creates and migrates a new database on first use
        try:
            return MlflowClient(tracking_uri=uri)
        except Exception as exc:
            raise _damaged(database, uri, exc) from exc


@contextlib.contextmanager
def _creating(database: Path) -> Iterator[None]:
    """Hold an exclusive lock (``flock``) on ``.<database>.lock`` beside the SQLite file
    while MLflow opens it: one process creates its tables, the others wait and find them
    (MLflow checks and creates without a lock: two at once leave a half-migrated file,
    'table _alembic_tmp_tags already exists'). A folder where no lock file can be made (a
    store read from a read-only folder) is opened without."""
    import fcntl

    try:
        handle = open(database.parent / f".{database.name}.lock", "a")
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process ends
        yield


def _damaged(database: Path, uri: str, exc: BaseException) -> RunError:
    """The error of a SQLite store MLflow cannot open, saying which file and what to do."""
    why = one_line(exc, limit=200).split(" [SQL:")[0]  # not the query that met the damage
    if "out-of-date database schema" in why:  # made by an older MLflow
        return RunError(f"the MLflow store {database} was made by an older MLflow ({why}). "
                        f"Back it up, then upgrade it: mlflow db upgrade {redacted(uri)}")
    aside = database.with_name(database.name + ".damaged")
    return RunError(f"the MLflow store {database} cannot be opened: it is damaged or was left "
                    f"half-made ({why}). Move it aside, and the next tracked run makes a new "
                    f"one: {command('mv', database, aside)} (the run directories are not "
                    "touched)")


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
    database = uris.local_path(place.uri) if uris.scheme(place.uri) == "sqlite" else None
    if database is not None:  # relative (sqlite:///runs/mlflow.db) is from the current folder
        location = (database.absolute().parent / ARTIFACTS).as_uri()
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
