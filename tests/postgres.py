"""A real PostgreSQL server on loopback for the tests that share an Optuna study through it.

The session starts one server (``initdb`` into a temporary folder, trust authentication,
``pg_ctl start`` on a free port of 127.0.0.1, its unix socket in the same folder) and stops it
at the end, also when tests fail or pytest is interrupted. Each test that asks for
``postgres_url`` gets a database of its own on that server.

PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` user
(made by Debian's package) or ``nobody``, through ``runuser``. Tests are skipped, with the way to
install it, only where no server can be started; with ``NETTRAIN_REQUIRE_POSTGRES=1`` (set by
``.ci/run``) they fail instead, so CI never passes without having run them.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL_SERVER = ("install PostgreSQL (Debian/Ubuntu: `apt-get install postgresql`, which "
                  "puts them in /usr/lib/postgresql/VERSION/bin)")
INSTALL_DRIVER = "install it with `pip install 'nettrain[postgres]'`"
SUPERUSER = "nettrain"


def find_bin_dir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, else Debian's newest
    /usr/lib/postgresql/VERSION/bin; None when PostgreSQL is not installed."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(os.path.realpath(on_path)).parent
    def version(folder: str) -> int:
        match = re.search(r"/postgresql/(\d+)/bin", folder)
        return int(match.group(1)) if match else 0
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def _server_user() -> str | None:
    """The user the server runs as: None for the current user, or, under root (which
    PostgreSQL refuses), ``postgres`` or else ``nobody``."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' user exists "
                       "to run the server as (PostgreSQL refuses root)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    """A running server: ``url(db)`` is the SQLAlchemy URL Optuna takes as its storage."""

    bin_dir: Path
    folder: Path
    port: int
    user: str | None
    _databases: itertools.count = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self._databases = itertools.count(1)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a PostgreSQL program of ``bin_dir`` as the server's user; raise with its output
        when it fails."""
        argv = [str(self.bin_dir / command[0]), *command[1:]]
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        # cwd: the server's user may not be allowed into pytest's folder (root's, mode 0700).
        done = subprocess.run(argv, cwd=self.folder, capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed with exit status "
                               f"{done.returncode}:\n{done.stdout}{done.stderr}")
        return done

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self.run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.folder / "server.log"),
                 "-w", "-t", "60", "-o", options, timeout=90)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", timeout=90)

    def create_database(self, prefix: str = "test") -> str:
        """A new empty database; returns its URL."""
        name = f"{re.sub(r'[^a-z0-9_]', '_', prefix.lower())[:40]}_{next(self._databases)}"
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name)
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _unavailable(reason: str) -> None:
    """Skip, or fail where CI requires PostgreSQL (NETTRAIN_REQUIRE_POSTGRES=1)."""
    if os.environ.get("NETTRAIN_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required here (NETTRAIN_REQUIRE_POSTGRES=1): {reason}",
                    pytrace=False)
    pytest.skip(f"no PostgreSQL for this test: {reason}")


@pytest.fixture(scope="session")
def psycopg_driver() -> None:
    """The PostgreSQL driver that storage URLs postgresql+psycopg://... need (the postgres
    extra); tests that ask for it are skipped without it (or fail where it is required)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable(f"the psycopg driver is not installed; {INSTALL_DRIVER}")


@pytest.fixture(scope="session")
def postgres_server(psycopg_driver: None) -> Iterator[PostgresServer]:
    """One PostgreSQL server on 127.0.0.1 for the whole session, stopped and deleted after."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        _unavailable(f"initdb and pg_ctl were not found; {INSTALL_SERVER}")
    try:
        user = _server_user()
    except RuntimeError as exc:
        _unavailable(str(exc))
    # Not under pytest's tmp folder: the server's user must be able to reach it.
    folder = Path(tempfile.mkdtemp(prefix="nettrain-postgres-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(bin_dir, folder, _free_port(), user)
    try:
        _initdb_and_start(server)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        log = server.log()[-2000:]
        _stop_and_delete(server)
        _unavailable(f"{exc}\n{log}")
    try:
        yield server
    finally:
        _stop_and_delete(server)


def _initdb_and_start(server: PostgresServer) -> None:
    server.run("initdb", "-D", str(server.data), "-U", SUPERUSER, "--auth=trust", "--no-sync",
               "-E", "UTF8", "--locale=C")
    for attempt in range(3):  # another process may take the free port before the server does
        try:
            server.start()
            return
        except RuntimeError:
            if attempt == 2 or "already in use" not in server.log():
                raise
            server.port = _free_port()


def _stop_and_delete(server: PostgresServer) -> None:
    try:
        server.stop()
    finally:
        shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """The URL of a new empty database for this test, e.g.
    ``postgresql+psycopg://nettrain@127.0.0.1:54321/test_two_workers_1``."""
    return postgres_server.create_database(request.node.name)
