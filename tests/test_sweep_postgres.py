"""Sweeps on many machines: one Optuna study in a real PostgreSQL server (tests/postgres.py
starts it on loopback), shared by worker processes; clear errors for a wrong --storage."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import REPO, tiny_config, write_config
from nettrain.cli import app
from nettrain.errors import RunError, UsageError
from nettrain.sweep.storage import StudyLock, open_storage

WORKER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import optuna
    from nettrain.sweep.storage import open_storage
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, trials, here, other = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    here.touch()
    while not other.exists():  # both open the empty database at the same moment
        time.sleep(0.01)
    study = optuna.create_study(storage=open_storage(url), study_name="shared",
                                load_if_exists=True)
    def objective(trial):
        trial.set_user_attr("pid", os.getpid())
        time.sleep(0.05)  # both workers are inside a trial at the same time
        return trial.suggest_float("x", -1.0, 1.0) ** 2
    study.optimize(objective, n_trials=trials)
""")


@pytest.fixture(params=["postgresql", "sqlite"])
def storage_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A new empty storage: a PostgreSQL database, or a SQLite file."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.db'}"
    return request.getfixturevalue("postgres_url")


def test_two_processes_share_one_optuna_study(storage_url, tmp_path):
    """Both start together on an empty database: they used to race creating Optuna's tables
    (PostgreSQL: duplicate key value violates unique constraint "pg_type_typname_nsp_index";
    SQLite: table studies already exists)."""
    import optuna

    ready = [str(tmp_path / "ready-a"), str(tmp_path / "ready-b")]
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, storage_url, "8", *names],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for names in (ready, ready[::-1])]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs

    trials = optuna.load_study(study_name="shared", storage=storage_url).trials
    assert sorted(t.number for t in trials) == list(range(16))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert {t.user_attrs["pid"] for t in trials} == {w.pid for w in workers}


def test_a_study_lock_lets_one_worker_at_a_time_claim_a_trial(storage_url, tmp_path):
    """Workers on different machines (on PostgreSQL, different connections) wait for each
    other; another study's lock is free; a worker that dies lets its lock go."""
    first, second = (StudyLock(storage_url, "iris", tmp_path / ".claim.lock") for _ in "12")
    other = StudyLock(storage_url, "digits", tmp_path / "other" / ".claim.lock")
    other.path.parent.mkdir()
    first.take()
    other.take()
    taken = threading.Event()
    waiting = threading.Thread(target=lambda: (second.take(), taken.set()))
    waiting.start()
    try:
        assert not taken.wait(0.5)
        if first.postgres:
            first.connection.close()  # as when its process dies: the server lets the lock go
        else:
            first.release()
        assert taken.wait(10)
    finally:
        waiting.join(10)
        for lock in (first, second, other):
            lock.close()


def test_an_unreachable_server_says_so_without_the_password(psycopg_driver):
    with pytest.raises(RunError) as caught:
        open_storage("postgresql+psycopg://nobody:secret@127.0.0.1:1/x")
    assert caught.value.exit_code == 1
    assert str(caught.value) == (
        '--storage postgresql+psycopg://nobody:***@127.0.0.1:1/x: cannot open the database: '
        'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection '
        'refused. Check that the server is running and accepts connections from this machine '
        '(listen_addresses, pg_hba.conf), and that the user and the database exist '
        '(createdb x).')


def test_a_missing_database_names_createdb(postgres_server):
    url = postgres_server.url("nosuchdb")
    with pytest.raises(RunError, match='database "nosuchdb" does not exist. Check that the '
                                       r'server .* \(createdb nosuchdb\)\.$'):
        open_storage(url)
    postgres_server.run("createdb", "-h", "127.0.0.1", "-p", str(postgres_server.port),
                        "-U", "nettrain", "nosuchdb")  # the advice given works
    assert open_storage(url).get_all_studies() == []


def test_a_missing_driver_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed
    with pytest.raises(RunError) as caught:
        open_storage("postgresql+psycopg://nobody@127.0.0.1:1/x")
    assert caught.value.exit_code == 1
    assert str(caught.value) == (
        "--storage postgresql+psycopg://nobody@127.0.0.1:1/x: the database driver psycopg is "
        "not installed. Install it with: pip install 'nettrain[postgres]'")


@pytest.mark.parametrize("url, suggestion", [
    ("postgres://me@db.lan/sweeps", ". Did you mean postgresql+psycopg://me@db.lan/sweeps?"),
    ("sqlit:///sweep.db", ". Did you mean sqlite:///sweep.db?"),
    ("sweep.db", ""),
])
def test_a_string_that_is_not_a_database_url_is_a_usage_error(url, suggestion):
    with pytest.raises(UsageError) as caught:
        open_storage(url)
    assert caught.value.exit_code == 2
    assert str(caught.value) == (
        "--storage: expected a database URL such as postgresql+psycopg://USER@HOST:5432/"
        f"DATABASE or sqlite:///PATH/sweep.db; received '{url}'{suggestion}")


def test_two_sweep_workers_share_one_study_in_postgresql(postgres_url, tmp_path):
    """`nettrain sweep` on two machines: the same --storage and --study, a sweep directory
    each; together they run the sweep's trials, none twice."""
    import optuna

    # A grid of 3 (each trial a process: 8 CPU s on a loaded machine), not 4: the workers
    # start alike, and each has the time of two trials to take one.
    config = tiny_config(sweep={
        "metric": "val_accuracy", "direction": "maximize", "trials": 3, "sampler": "grid",
        "pruner": "none",
        "params": {"fit.batch_size": [8, 16, 32], "model.layers.0.Dense.units": [8]}})
    config["fit"]["epochs"] = 1
    path = write_config(tmp_path / "iris.yaml", config)
    workers = [subprocess.Popen(
        [sys.executable, "-m", "nettrain", "sweep", str(path), "--storage", postgres_url,
         "--study", "iris-grid", "--run-dir", str(tmp_path / machine)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for machine in ("machine-a", "machine-b")]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert [out for out, _ in outputs] == [f"{tmp_path / 'machine-a'}\n",
                                           f"{tmp_path / 'machine-b'}\n"]

    trials = optuna.load_study(study_name="iris-grid", storage=postgres_url).trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), \
        [(t.number, t.state.name, t.params, t.user_attrs) for t in trials]
    assert len(trials) == 3
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == 3, params  # every point of the grid once
    # Each trial trained in one machine's sweep directory, under its own number.
    ran = {machine: sorted(p.name for p in (tmp_path / machine).glob("trial-*"))
           for machine in ("machine-a", "machine-b")}
    assert sorted(ran["machine-a"] + ran["machine-b"]) == [f"trial-{n:04d}" for n in range(3)]
    assert ran["machine-a"] and ran["machine-b"], ran  # both workers trained trials


TINY_SWEEP = {"metric": "val_accuracy", "direction": "maximize", "trials": 2, "sampler": "grid",
              "pruner": "none", "params": {"fit.batch_size": [8, 16]}}


@pytest.mark.parametrize("url, code, message", [
    ("postgresql+psycopg://nobody@127.0.0.1:1/x", 1,
     "Error: --storage postgresql+psycopg://nobody@127.0.0.1:1/x: cannot open the database: "
     'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection '
     "refused. Check that the server is running"),
    ("sweep.db", 2, "Error: --storage: expected a database URL such as "
                    "postgresql+psycopg://USER@HOST:5432/DATABASE or sqlite:///PATH/sweep.db; "
                    "received 'sweep.db'\n"),
])
def test_sweep_with_a_wrong_storage_says_so_and_leaves_nothing(runner, tmp_path, url, code,
                                                               message, psycopg_driver):
    config = write_config(tmp_path / "c.yaml", tiny_config(sweep=TINY_SWEEP))
    result = runner.invoke(app, ["sweep", str(config), "--storage", url, "--run-dir", "sw"])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert not (tmp_path / "sw").exists()  # no sweep directory left behind


def test_sweep_without_the_postgresql_driver_says_how_to_install_it(runner, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed
    config = write_config(tmp_path / "c.yaml", tiny_config(sweep=TINY_SWEEP))
    result = runner.invoke(app, ["sweep", str(config), "--storage",
                                 "postgresql+psycopg://me@db.lan/sweeps", "--run-dir", "sw"])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 1, result.output
    assert ("Error: --storage postgresql+psycopg://me@db.lan/sweeps: the database driver "
            "psycopg is not installed. Install it with: pip install 'nettrain[postgres]'\n"
            ) in result.stderr
    assert not (tmp_path / "sw").exists()


def test_a_password_with_braces_is_not_taken_for_a_template(postgres_server):
    """Optuna fills {SCHEMA_VERSION} in URLs with str.format: a password with braces was a
    KeyError. The fixture's server trusts every password, so the connection shows it passed."""
    url = postgres_server.create_database("braces").replace("nettrain@", "nettrain:p{w}d@")
    assert open_storage(url).get_all_studies() == []


def test_a_database_that_goes_away_mid_sweep_says_so_and_the_same_command_continues(
        postgres_server, tmp_path, runner):
    """The server stops while a trial trains: the sweep ends with exit 1 and says the database
    went away and what to run (it ended with UnboundLocalError: cannot access local variable
    'updated_state', from Optuna). With the server back, the same command (here, in this
    process) finishes the sweep, the interrupted trial drawn again."""
    import optuna

    url = postgres_server.create_database("gone")
    # One trial (each a process: 8 CPU s on a loaded machine): the one interrupted, then its
    # values drawn again; a second trial added a process and a spare to no purpose.
    config = tiny_config(sweep={**TINY_SWEEP, "trials": 1})
    config["fit"]["epochs"] = 10  # the server stops while the first trial trains
    path = write_config(tmp_path / "iris.yaml", config)
    command = [sys.executable, "-m", "nettrain", "sweep", str(path), "--storage", url,
               "--run-dir", str(tmp_path / "s")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (tmp_path / "s" / "logs" / "trial-0000.log").exists():
        time.sleep(0.05)
    try:
        postgres_server.stop()
        stderr = process.communicate(timeout=180)[1]
    finally:
        postgres_server.start()
    assert process.returncode == 1, stderr
    message = " ".join(stderr.split())
    assert "Traceback" not in stderr and "UnboundLocalError" not in stderr, stderr
    assert f"Error: --storage {url}: the database went away during the sweep: " in message
    assert message.endswith(
        "Check that the server is running and accepts connections from this machine "
        "(listen_addresses, pg_hba.conf), and that the user and the database exist "
        f"(createdb {url.rsplit('/', 1)[1]}). Then run the same command again: it continues "
        "the sweep, and draws again the trial that was interrupted."), message

    again = runner.invoke(app, command[3:])
    assert again.exit_code == 0, again.output
    trials = optuna.load_study(study_name="tiny", storage=url).trials
    first = trials[0]
    assert first.state.name == "FAIL" and "failure" not in first.user_attrs, first.user_attrs
    retried = [t for t in trials if t.user_attrs.get("retry_of") == first.number]
    assert [t.state.name for t in retried] == ["COMPLETE"]
    assert retried[0].params == first.params
    assert sorted(t.state.name for t in trials) == ["COMPLETE", "FAIL"]
