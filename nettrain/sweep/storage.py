"""The storage a sweep's Optuna study lives in, opened from ``--storage URL`` with clear errors.

One study can be shared by workers on many machines through one database (PostgreSQL, with
``pip install 'nettrain[postgres]'``); on one machine a SQLite file is enough. Workers that
start together may all open a new database at once (:func:`open_storage` lets one create
Optuna's tables) and may all want the last trial (:class:`StudyLock` lets one at a time claim
it). Optuna and SQLAlchemy load here, lazily, never on the ``nettrain --help`` path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nettrain.errors import Problem, RunError, UsageError, did_you_mean
from nettrain.text import redacted

if TYPE_CHECKING:
    from optuna.storages import RDBStorage

URL_EXAMPLES = "postgresql+psycopg://USER@HOST:5432/DATABASE or sqlite:///PATH/sweep.db"
INSTALL_POSTGRES = "pip install 'nettrain[postgres]'"
# Seconds to wait for a database server before giving up (a wrong host can hang for minutes).
CONNECT_TIMEOUT = 10
# The PostgreSQL advisory lock held while a worker creates Optuna's tables (any fixed number).
ADVISORY_LOCK = 0x6E657474_7377  # "nett" "sw"


def open_storage(url: str, engine_kwargs: dict[str, Any] | None = None,
                 **options: Any) -> RDBStorage:
    """Open (and create the tables of) the Optuna storage at ``url``, an SQLAlchemy URL.

    Arguments: ``url``, e.g. ``postgresql+psycopg://nettrain@db.lan:5432/sweeps`` or
    ``sqlite:///runs/sweep/optuna.db``; ``engine_kwargs`` (default none) go to SQLAlchemy's
    ``create_engine`` over this function's own for PostgreSQL (``pool_pre_ping``, a
    connect timeout), e.g. ``{"connect_args": {"timeout": 120}}`` for SQLite; ``options``
    go to ``optuna.storages.RDBStorage`` (``heartbeat_interval``, ``grace_period``...).

    Raises UsageError (exit 2) for a string that is not a database URL or names an unknown
    database kind, RunError (exit 1) when the URL's driver is not installed or the database
    cannot be reached (server down, unknown user or database). Messages show the URL without
    its password.

    Example: ``optuna.create_study(storage=open_storage(url), study_name="digits",
    load_if_exists=True)``.
    """
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError):
        raise UsageError(Problem("--storage", f"a database URL such as {URL_EXAMPLES}",
                                 repr(url), _scheme_suggestion(url))) from None
    shown = redacted(url)
    postgres = parsed.get_backend_name() == "postgresql"
    engine: dict[str, Any] = {"connect_args": {}}
    if postgres:
        # Connections wait idle for a whole trial: check each one before use.
        engine = {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    given = dict(engine_kwargs or {})
    engine["connect_args"].update(given.pop("connect_args", {}))
    engine.update(given)

    def storage() -> RDBStorage:
        # Optuna fills "{SCHEMA_VERSION}" in URLs with str.format: braces of a password stay.
        literal = url.replace("{", "{{").replace("}", "}}")
        return _storage_class()(literal, engine_kwargs=engine, **options)

    try:
        if postgres:
            with _one_at_a_time(url, engine["connect_args"]):
                return storage()
        return _retrying_if_created_meanwhile(storage)
    except ImportError as exc:
        missing = (getattr(exc.__cause__, "name", None) or getattr(exc, "name", None)
                   or parsed.get_driver_name())
        raise RunError(f"--storage {shown}: the database driver {missing} is not installed. "
                       f"{_driver_hint(parsed, missing)}") from None
    except sqlalchemy.exc.DBAPIError as exc:
        # The driver's first line says what failed; its own advice follows in ours.
        reason = str(exc.orig or exc).strip().splitlines()[0].strip().rstrip(".")
        raise RunError(f"--storage {shown}: cannot open the database: {reason}. "
                       f"{_reach_hint(parsed)}") from None


_STORAGE_CLASS: list[type] = []


def _storage_class() -> type[RDBStorage]:
    """Optuna's RDBStorage, whose heartbeat outlives a database that is away for a moment.

    Optuna writes a trial's heartbeat from a thread of its own: an error there (the server
    restarting) would print a traceback and end the heartbeats of a trial that goes on. The
    heartbeat is tried again at the next interval instead; the trial's own writes say when
    the database is gone (:func:`lost`).
    """
    if not _STORAGE_CLASS:
        import optuna
        import sqlalchemy.exc

        class Storage(optuna.storages.RDBStorage):
            def record_heartbeat(self, trial_id: int) -> None:
                with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
                    super().record_heartbeat(trial_id)

        _STORAGE_CLASS.append(Storage)
    return _STORAGE_CLASS[0]


def lost(exc: BaseException, url: str) -> RunError | None:
    """The RunError to raise when ``exc`` (or an error it was raised from, or during) is the
    database of ``url`` gone away in the middle of a sweep; None for any other error.

    Optuna can hide it: when the database is gone as a trial ends, it fails to record the
    trial, then to read it back, and raises UnboundLocalError ('updated_state').
    """
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    seen: set[int] = set()
    error: BaseException | None = exc
    while not isinstance(error, sqlalchemy.exc.DBAPIError):
        if error is None or id(error) in seen:
            return None
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    parsed = make_url(url)
    text = str(error.orig or error).strip().splitlines()
    reason = (text[0].strip().rstrip(".") if text else "") or type(error).__name__
    return RunError(f"--storage {redacted(url)}: the database "
                    f"went away during the sweep: {reason}. The trials it recorded are kept. "
                    f"{_reach_hint(parsed)} Then run the same command again: it continues the "
                    "sweep, and draws again the trial that was interrupted.")


@contextlib.contextmanager
def _one_at_a_time(url: str, connect_args: dict[str, Any]) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock: workers that start together on an empty database
    would otherwise all create Optuna's tables at once, and all but one fail (duplicate key
    value violates unique constraint "pg_type_typname_nsp_index")."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            # Released when the connection closes, also if this process dies meanwhile.
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"),
                               {"key": ADVISORY_LOCK})
            yield
    finally:
        engine.dispose()


def _retrying_if_created_meanwhile(storage: Callable[[], RDBStorage]) -> RDBStorage:
    """``storage()``, again after a moment when another worker created Optuna's tables (or
    its version rows) at the same time: "table studies already exists", "UNIQUE constraint
    failed: alembic_version.version_num" (SQLite has no lock to take around the creation)."""
    import sqlalchemy.exc

    for attempt in range(1, 5):
        try:
            return storage()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as exc:
            if isinstance(exc, sqlalchemy.exc.OperationalError) and \
                    "already exists" not in str(exc.orig):
                raise
            time.sleep(0.1 * attempt)
    return storage()


def _scheme_suggestion(url: str) -> str | None:
    """``postgres://u@h/db`` -> "Did you mean postgresql+psycopg://u@h/db?" (None if no
    known kind of database is close)."""
    scheme, sep, rest = url.partition("://")
    known = {"postgresql": "postgresql+psycopg", "sqlite": "sqlite"}
    close = did_you_mean(scheme.split("+")[0], known) if sep else None
    return f"Did you mean {known[close]}://{rest}?" if close else None


def _driver_hint(parsed: Any, missing: str) -> str:
    if parsed.get_backend_name() != "postgresql":
        return f"Install {missing}, or use a URL such as {URL_EXAMPLES}."
    if missing == "psycopg":
        return f"Install it with: {INSTALL_POSTGRES}"
    return (f"Write the URL as postgresql+psycopg://... and install its driver with: "
            f"{INSTALL_POSTGRES}")


def _reach_hint(parsed: Any) -> str:
    if parsed.get_backend_name() == "sqlite":
        return "Check that the file's folder exists and can be written."
    return ("Check that the server is running and accepts connections from this machine "
            "(listen_addresses, pg_hba.conf), and that the user and the database exist "
            f"(createdb {parsed.database or 'DATABASE'}).")


class StudyLock:
    """One worker at a time, on every machine that shares a study, decides whether another
    trial is needed and creates it; without it, two machines that look at once both start the
    last trial (a grid point trained twice, one trial past the number asked).

    On PostgreSQL it is an advisory lock named after the study, held on a connection of its
    own (the server lets it go if the worker dies); elsewhere (a SQLite file, which one
    machine uses) a file lock at ``path``.

    Example: ``lock = StudyLock(url, "digits", sweep_dir / ".claim.lock")``, then
    ``lock.take()`` ... ``lock.release()`` around looking at the trials and asking for one.
    """

    def __init__(self, url: str, study: str, path: Path) -> None:
        from sqlalchemy.engine import make_url

        self.url = url
        self.key = int.from_bytes(hashlib.sha256(f"nettrain sweep {study}".encode()).digest()[:8],
                                  "big", signed=True)
        self.postgres = make_url(url).get_backend_name() == "postgresql"
        self.path = path
        self.connection: Any = None
        self.file: Any = None
        self.held = False

    def take(self) -> None:
        """Wait for the lock and hold it."""
        if self.held:
            return
        if self.postgres:
            self._execute("SELECT pg_advisory_lock(:key)")
        else:
            if self.file is None:
                self.file = open(self.path, "a")
            fcntl.flock(self.file, fcntl.LOCK_EX)
        self.held = True

    def release(self) -> None:
        """Let the lock go (nothing when not held)."""
        if not self.held:
            return
        self.held = False
        if self.postgres:
            self._execute("SELECT pg_advisory_unlock(:key)")
        else:
            fcntl.flock(self.file, fcntl.LOCK_UN)

    def close(self) -> None:
        """Let the lock go and close its connection or file."""
        with contextlib.suppress(Exception):
            self.release()
        for resource in (self.connection, self.file):
            if resource is not None:
                with contextlib.suppress(Exception):  # a connection the server dropped
                    resource.close()
        self.connection = self.file = None

    def _execute(self, sql: str) -> None:
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        if self.connection is None:
            engine = sqlalchemy.create_engine(
                self.url, poolclass=NullPool,
                connect_args={"connect_timeout": CONNECT_TIMEOUT})
            # Autocommit: the connection waits between trials, never inside a transaction.
            self.connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self.connection.execute(sqlalchemy.text(sql), {"key": self.key})
