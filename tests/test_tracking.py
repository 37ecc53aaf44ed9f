"""Tracking in MLflow: fit, evaluate, resume, sweep and ``nettrain track`` log to a real
``mlflow server`` on a loopback port (one for the module) and to the local SQLite store, and
the runs are read back with MlflowClient against the run directories."""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import fit_once, tiny_config, write_config

from nettrain.cli import app

pytest.importorskip("mlflow", reason="pip install -e '.[mlflow]'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """A real ``mlflow server`` on a free loopback port: a SQLite store and an artifact
    folder in a temporary directory."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = open(folder / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=folder,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # starts sooner
    url = f"http://127.0.0.1:{port}"
    import keras  # noqa: F401  (TensorFlow loads, for the tests' fits, while the server starts)

    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"mlflow server did not start: {(folder / 'server.log').read_text()}")
        time.sleep(0.5)
    yield url
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _record(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())["mlflow"]


def _history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tracked_fit(tmp_path_factory: pytest.TempPathFactory, server: str):
    """A fit with tracking to the server (the run directory and fit's CliRunner result), then
    its evaluation. The config file names the server, so the user names it too:
    MLFLOW_TRACKING_URI."""
    from typer.testing import CliRunner

    folder = tmp_path_factory.mktemp("tracked")
    config = tiny_config(tracking={"mlflow": {"uri": server, "experiment": "tests"}})
    write_config(folder / "c.yaml", config)
    old, before = os.getcwd(), os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = server
    os.chdir(folder)
    try:
        fit = CliRunner().invoke(app, ["fit", "c.yaml", "--run-dir", str(folder / "run")])
        assert fit.exit_code == 0, fit.output
        done = CliRunner().invoke(app, ["evaluate", str(folder / "run")])
        assert done.exit_code == 0, done.output
    finally:
        os.chdir(old)
        os.environ.pop("MLFLOW_TRACKING_URI")
        if before is not None:
            os.environ["MLFLOW_TRACKING_URI"] = before
    return folder / "run", fit


@pytest.fixture(autouse=True)
def no_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLFLOW_TRACKING_URI unset during each test, and after it (mlflow.set_tracking_uri in a
    test sets it)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "x")  # so that monkeypatch restores its absence
    monkeypatch.delenv("MLFLOW_TRACKING_URI")


@pytest.fixture(scope="module")
def tracked(tracked_fit) -> Path:
    return tracked_fit[0]


def test_fit_s_stdout_is_the_run_directory_alone_with_a_tracking_server(tracked_fit) -> None:
    """`run=$(nettrain fit ... --track http://...)`: MLflow's "View run" lines stay off
    stdout; where the run is logged (with its page) is said on stderr."""
    run, fit = tracked_fit
    assert fit.stdout == f"{run}\n"
    record = _record(run)
    assert f"Logged to MLflow: experiment 'tests' at {record['uri']}, run {record['run_id']} " \
        f"({record['uri']}/#/experiments/" in fit.stderr
    assert "View run" not in fit.stderr


def test_fit_logs_params_epochs_final_metrics_and_files(tracked: Path, server: str) -> None:
    record = _record(tracked)
    assert record["uploaded"] is True and record["experiment"] == "tests"
    client = _client(server)
    logged = client.get_run(record["run_id"])
    assert logged.info.status == "FINISHED"
    # the model is the run's ("Logged models" on its page)
    assert [m.model_id for m in logged.outputs.model_outputs] == \
        [record["model_uri"].removeprefix("models:/")]
    assert logged.info.run_name == f"tiny {tracked.name}"
    # params: the resolved config, with the dotted keys of overrides
    params = logged.data.params
    assert params["fit.epochs"] == "2" and params["seed"] == "0"
    assert params["model.layers.0.Dense.units"] == "8"
    assert params["compile.metrics"] == '["accuracy"]'
    # each history.csv column, one point per epoch (step = its epoch)
    rows = _history(tracked)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        points = sorted((m.step, m.value) for m in client.get_metric_history(
            logged.info.run_id, f"epoch/{key}"))
        assert [step for step, _ in points] == [int(r["epoch"]) for r in rows]
        assert [value for _, value in points] == pytest.approx([float(r[key]) for r in rows])
    # the final metrics of each split, named as `nettrain runs` names them
    metrics = json.loads((tracked / "metrics.json").read_text())
    assert logged.data.metrics["final/test_accuracy"] == pytest.approx(
        metrics["test"]["accuracy"])
    assert logged.data.metrics["final/val_loss"] == pytest.approx(metrics["validation"]["loss"])
    # the evaluation: its metrics and its report and picture
    evaluation = json.loads((tracked / "evaluation.json").read_text())
    assert logged.data.metrics["eval/test_accuracy"] == pytest.approx(
        evaluation["test"]["metrics"]["accuracy"])
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {"config.yaml", "dataset.json", "history.csv", "history.png", "metrics.json",
            "summary.txt", "evaluation.json", "confusion_matrix-test.png"} <= artifacts
    assert not {"model.keras", "checkpoints"} & artifacts  # the model is logged as a model
    local = client.download_artifacts(logged.info.run_id, "config.yaml", str(tracked.parent))
    assert Path(local).read_text() == (tracked / "config.yaml").read_text()


def test_logged_model_predicts_as_nettrain_predict(tracked: Path, server: str, runner,
                                                   tmp_path: Path) -> None:
    import mlflow

    x = np.random.default_rng(1).uniform(0, 8, (6, 4)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    result = runner.invoke(app, ["predict", str(tracked), "x.npy", "-o", "p.csv"])
    assert result.exit_code == 0, result.output
    with open("p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    expected = np.array([[float(v) for k, v in r.items() if k.startswith("prob_")] for r in rows])
    assert expected.shape == (6, 3)
    mlflow.set_tracking_uri(server)
    model = mlflow.pyfunc.load_model(_record(tracked)["model_uri"])
    assert model.metadata.signature is not None
    assert model.metadata.flavors.keys() >= {"keras", "python_function"}
    got = np.asarray(model.predict(x))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


# A table with a text category, a whole-number category and a number (whole in the file).
TABLE = [("basic", 1, 3, "no"), ("premium", 5, 12, "yes"), ("basic", 10, 7, "no"),
         ("standard", 5, 1, "yes")] * 6


def test_a_model_of_categories_is_logged_taking_raw_rows_as_nettrain_predict_does(
        runner, tmp_path: Path, server: str) -> None:
    """The model of a CSV with string and integer categories is logged (before: `Invalid
    dtype: object`, the MLflow run left RUNNING without a model); its pyfunc takes a DataFrame
    of raw rows, as pandas reads the CSV, and answers what `nettrain predict` writes."""
    import io

    import mlflow
    import pandas as pd

    def write(path: Path, rows) -> Path:
        path.write_text("plan,seats,months,y\n" + "".join(f"{p},{s},{m},{y}\n"
                                                         for p, s, m, y in rows))
        return path

    write(tmp_path / "train.csv", TABLE)
    write_config(tmp_path / "c.yaml", tiny_config(
        data={"csv": "train.csv", "target": "y", "categorical": ["plan", "seats"],
              "validation_split": 0.0, "test_split": 0.0},
        model={"layers": [{"Dense": {"units": 2, "activation": "softmax"}}]},
        fit={"epochs": 1, "batch_size": 8, "verbose": 0}, save={"formats": ["keras"]},
        tracking={"mlflow": {"uri": server}}))
    result = runner.invoke(app, ["fit", "c.yaml", "--run-dir", "run", "--track", server])
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr and result.stdout == "run\n"
    record = _record(tmp_path / "run")
    assert record["uploaded"] is True
    logged = _client(server).get_run(record["run_id"])
    assert logged.info.status == "FINISHED" and logged.outputs.model_outputs

    new = write(tmp_path / "new.csv", [("premium", 10, 3, "no"), ("basic", 5, 12, "yes"),
                                       ("gold", 1, 7, "no")])  # gold: a category unseen
    predicted = runner.invoke(app, ["predict", "run", str(new)])
    assert predicted.exit_code == 0, predicted.output
    expected = pd.read_csv(io.StringIO(predicted.stdout))
    mlflow.set_tracking_uri(server)
    model = mlflow.pyfunc.load_model(record["model_uri"])
    raw = pd.read_csv(new)  # plan: text, seats and months: int64, y: ignored as predict does
    got = model.predict(raw)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False,
                                  rtol=1e-5)
    # the signature: the CSV's columns; the input example: raw training rows
    inputs = model.metadata.get_input_schema()
    assert [(c["name"], c["type"]) for c in inputs.to_dict()] == \
        [("plan", "string"), ("seats", "long"), ("months", "any")]
    example = model.input_example
    assert list(example.columns) == ["plan", "seats", "months"]
    assert set(example["plan"]) <= {"basic", "premium", "standard"}
    assert set(example["seats"].tolist()) <= {1, 5, 10}


def test_the_input_example_is_raw_rows_whatever_the_sample_s_types() -> None:
    """A streamed CSV's sample holds text as bytes (tf.data), a loaded one as str: the example
    holds str either way, the columns in the CSV's order, numbers as float64."""
    from nettrain.data.columns import model_inputs
    from nettrain.tracking.pyfunc import raw_rows

    columns = {"my plan": "string", "seats": "integer", "months": "numeric"}
    info = {"features": list(columns), "model_inputs": model_inputs((3,), columns)}
    x = {"my_plan": np.array([[b"basic"], [b"gold"]]), "seats": np.array([[5], [10]]),
         "months": np.array([[1.5], [2.0]], dtype="float32")}
    rows = raw_rows(x, info)
    assert list(rows.columns) == ["my plan", "seats", "months"]
    assert rows["my plan"].tolist() == ["basic", "gold"]
    assert rows["seats"].dtype == "int64" and rows["months"].dtype == "float64"


def test_a_failed_model_upload_ends_the_mlflow_run_and_track_ends_it_finished(
        runner, tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An upload that fails half-way (the model cannot be read) ends the MLflow run FAILED,
    not RUNNING; Ctrl-C during an upload ends it KILLED; `nettrain track` once the model is
    back ends the same MLflow run FINISHED. stdout holds only the run ids."""
    from nettrain.config.load import load_config
    from nettrain.tracking.logger import RunLogger

    run = fit_once(tmp_path, tiny_config(fit={"epochs": 1, "batch_size": 16, "verbose": 0}))
    model = (run / "model.keras").read_bytes()
    (run / "model.keras").write_bytes(b"not a zip")
    result = runner.invoke(app, ["track", str(run), "--uri", server])
    assert result.exit_code == 1 and result.stdout == ""
    assert f"{run}: not uploaded to experiment 'tiny' at {server}: " in result.stderr
    record = _record(run)
    assert record["uploaded"] is False
    client = _client(server)
    assert client.get_run(record["run_id"]).info.status == "FAILED"

    (run / "model.keras").write_bytes(model)
    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(RunLogger, "_log_model", lambda *args: (_ for _ in ()).throw(
            KeyboardInterrupt()))  # Ctrl-C while the model goes
        RunLogger(load_config(run / "config.yaml"), uri=server).finish(run)
    assert client.get_run(record["run_id"]).info.status == "KILLED"

    result = runner.invoke(app, ["track", str(run), "--uri", server])
    assert result.exit_code == 0, result.output
    assert result.stdout == record["run_id"] + "\n" and _record(run)["uploaded"] is True
    assert client.get_run(record["run_id"]).info.status == "FINISHED"


def test_server_away_warns_once_then_track_uploads_and_resume_continues(
        runner, tmp_path: Path, server: str) -> None:
    closed = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    write_config(tmp_path / "c.yaml", tiny_config())
    started = time.monotonic()
    result = runner.invoke(app, ["fit", "c.yaml", "--run-dir", "run", "--track", closed])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 120  # short retries, not MLflow's minutes
    warnings = [line for line in result.stderr.splitlines() if "Warning: MLflow" in line]
    assert len(warnings) == 1 and "Retrying" not in result.stderr, result.stderr
    assert f"experiment 'tiny' at {closed}) failed: the server did not answer (Connection " \
        "refused)." in warnings[0]
    assert f"upload it later with: nettrain track run --uri {closed}" in result.stderr
    run = tmp_path / "run"
    assert {"model.keras", "metrics.json", "history.csv", "history.png"} <= \
        {p.name for p in run.iterdir()}
    record = _record(run)
    assert record["uploaded"] is False and record["run_id"] is None
    recorded = yaml.safe_load((run / "config.yaml").read_text())["tracking"]  # as --track
    assert recorded == {"mlflow": {"uri": closed}}

    result = runner.invoke(app, ["track", "run", "--uri", server])
    assert result.exit_code == 0, result.output
    record = _record(run)
    assert record["uploaded"] is True and result.stdout == record["run_id"] + "\n"
    assert f"run: Logged to MLflow: experiment 'tiny' at {server}, run {record['run_id']}" \
        in result.stderr
    client = _client(server)
    assert [m.step for m in client.get_metric_history(record["run_id"], "epoch/loss")] == [0, 1]
    assert client.get_run(record["run_id"]).data.params["fit.epochs"] == "2"
    again = runner.invoke(app, ["track", "run", "--uri", server])  # nothing is sent twice
    assert again.exit_code == 0 and "already uploaded" in again.stderr
    assert again.stdout == record["run_id"] + "\n"

    # the run's config.yaml names the server the user gave with --track: a file's store
    # outside the runs folder, named again to resume (the message gives the command)
    refused = runner.invoke(app, ["fit", "--resume", "run", "fit.epochs=3"])
    assert refused.exit_code == 2 and type(refused.exception) is SystemExit  # said, no traceback
    assert f"name it yourself: nettrain fit --resume run fit.epochs=3 --track {closed}, or " \
        f"set MLFLOW_TRACKING_URI={closed}" in " ".join(refused.stderr.split())
    assert _record(run)["uploaded"] is True  # nothing was trained or sent
    # a resume goes on in the same MLflow run (its config's URI is the closed one: --track)
    result = runner.invoke(app, ["fit", "--resume", "run", "fit.epochs=3", "--track", server])
    assert result.exit_code == 0, result.output
    assert _record(run)["run_id"] == record["run_id"]
    points = sorted(m.step for m in client.get_metric_history(record["run_id"], "epoch/loss"))
    assert points == [0, 1, 2]
    assert client.get_run(record["run_id"]).info.status == "FINISHED"


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's user and password variables unset, and unset again after the test (nettrain
    sets them from a URI's user part)."""
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, "x")  # so that monkeypatch restores the variable's absence
        monkeypatch.delenv(name)


def test_a_password_in_the_tracking_uri_is_written_nowhere(
        runner, tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch,
        no_credentials: None) -> None:
    """fit --track http://user:secret@host: MLflow gets the password (in its variables), the
    run directory, run.json, the output and the MLflow params do not."""
    uri, hidden = (server.replace("http://", f"http://user:{word}@") for word in ("secret", "***"))
    write_config(tmp_path / "c.yaml", tiny_config())
    argv = ["nettrain", "fit", "c.yaml", "--run-dir", "run", "--track", uri]
    monkeypatch.setattr(sys, "argv", argv)  # run.json's command
    result = runner.invoke(app, argv[1:])
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr and "secret" not in result.stdout + result.stderr
    assert ("To repeat the run: MLFLOW_TRACKING_USERNAME=user MLFLOW_TRACKING_PASSWORD=... "
            f"nettrain fit run/config.yaml --track {shlex.quote(hidden)}") in result.stderr
    # MLflow gets it in its variables (of fit's sidecar process: the test below of
    # store.client); the run is uploaded with it:
    run = tmp_path / "run"
    assert [p.name for p in run.rglob("*") if p.is_file() and b"secret" in p.read_bytes()] == []
    assert yaml.safe_load((run / "config.yaml").read_text())["tracking"]["mlflow"]["uri"] == \
        hidden
    record = json.loads((run / "run.json").read_text())
    assert record["command"][-1] == hidden and record["mlflow"]["uri"] == hidden
    assert record["mlflow"]["uploaded"] is True
    params = _client(server).get_run(record["mlflow"]["run_id"]).data.params
    assert params["tracking.mlflow.uri"] == hidden
    assert [key for key, value in params.items() if "secret" in value] == []


def test_the_params_show_a_uri_without_its_secrets(tmp_path: Path) -> None:
    from nettrain.config.load import load_config
    from nettrain.tracking.logger import params

    uri = "http://user:secret@127.0.0.1:5000/?token=secret"
    config = load_config(write_config(tmp_path / "c.yaml", tiny_config(
        tracking={"mlflow": {"uri": uri}})))
    logged = params(config)
    assert logged["tracking.mlflow.uri"] == "http://user:***@127.0.0.1:5000/?token=***"
    assert logged["fit.epochs"] == "2" and config.tracking.mlflow.uri == uri


def test_the_password_of_a_uri_goes_to_mlflow_s_variables(no_credentials: None) -> None:
    """A URI the run's files hold (user:***@) takes MLflow's variables; a database's driver
    finds its own (PGPASSWORD)."""
    from nettrain.errors import RunError
    from nettrain.tracking import store

    with pytest.raises(RunError, match="set MLFLOW_TRACKING_PASSWORD"):
        store._connect("http://user:***@127.0.0.1:5000")
    assert store._connect("https://user:p%40ss@host/mlflow") == "https://host/mlflow"
    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) \
        == ("user", "p@ss")
    assert store._connect("http://user:***@host") == "http://host"  # the variables now
    assert store._connect("http://host:5000") == "http://host:5000"
    assert store._connect("postgresql://me:***@db/x") == "postgresql://me@db/x"
    assert store._connect("postgresql://me:pw@db/x") == "postgresql://me:pw@db/x"
    assert store.again("http://me:***@host", "nettrain", "track", "my run") == \
        "MLFLOW_TRACKING_USERNAME=me MLFLOW_TRACKING_PASSWORD=... nettrain track 'my run'"
    assert store.again("http://host", "nettrain", "track", "run") == "nettrain track run"


def test_track_loads_the_model_on_the_backend_the_run_trained_on(
        tmp_path: Path, server: str) -> None:
    """Under KERAS_BACKEND=jax, track logs a run trained on TensorFlow with Keras on
    TensorFlow: it asks the backend policy, as evaluate does (before, it took the
    environment's JAX, and the logged model said keras_backend: jax)."""
    import mlflow

    run = fit_once(tmp_path, tiny_config(fit={"epochs": 1, "batch_size": 16, "verbose": 0}))
    done = subprocess.run([sys.executable, "-m", "nettrain", "track", str(run), "--uri", server],
                          env={**os.environ, "KERAS_BACKEND": "jax",
                               "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    record = _record(run)
    assert record["uploaded"] is True and done.stdout == record["run_id"] + "\n"  # ids alone
    mlflow.set_tracking_uri(server)
    flavor = mlflow.models.get_model_info(record["model_uri"]).flavors["keras"]
    assert flavor["keras_backend"] == "tensorflow"


def test_sweep_logs_a_parent_and_a_child_per_trial_to_the_local_store(
        runner, tmp_path: Path) -> None:
    config = tiny_config(sweep={"metric": "val_accuracy", "trials": 2,
                                "params": {"fit.batch_size": [8, 16]}},
                         tracking={"mlflow": {"experiment": "sweeps"}})
    config["fit"]["epochs"] = 1
    write_config(tmp_path / "s.yaml", config)
    result = runner.invoke(app, ["sweep", "s.yaml", "--run-dir", "sweep"])
    assert result.exit_code == 0, result.output
    store = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"  # the default: no server
    client = _client(store)
    experiment = client.get_experiment_by_name("sweeps")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.run_name == "tiny sweep"
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert "best.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "best/val_accuracy" in parent.data.metrics
    children = sorted((r for r in runs if r not in parents), key=lambda r: r.info.run_name)
    assert [c.info.run_name for c in children] == ["trial-0000", "trial-0001"]
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        trial = tmp_path / "sweep" / child.info.run_name
        pruned = json.loads((trial / "run.json").read_text())["sweep"]["pruned_after_epoch"]
        assert child.data.tags["nettrain.trial_state"] == ("pruned" if pruned else "complete")
        assert child.data.params["fit.batch_size"] == str(
            yaml.safe_load((trial / "config.yaml").read_text())["fit"]["batch_size"])
        assert _record(trial)["run_id"] == child.info.run_id
        # which way each metric improves, as fit recorded it: what `runs --from` sorts by
        assert json.loads(child.data.tags["nettrain.directions"]) == \
            json.loads((trial / "run.json").read_text())["directions"] == \
            {"loss": "min", "accuracy": "max"}
    # runs --from lists the trials with the columns of the run directories
    from_store = runner.invoke(app, ["runs", "--from", store, "--json"])
    local = runner.invoke(app, ["runs", "sweep", "--json"])
    assert from_store.exit_code == 0 and local.exit_code == 0, from_store.output
    keys = ("name", "status", "epochs", "planned_epochs", "metrics")
    mine = sorted(({k: r[k] for k in keys} | {"path": r["path"]} for r in json.loads(
        local.stdout)), key=lambda r: r["path"])
    theirs = sorted(({k: r[k] for k in keys} | {"path": r["path"]} for r in json.loads(
        from_store.stdout)), key=lambda r: r["path"])
    assert [r["path"] for r in theirs] == [str((tmp_path / "sweep" / f"trial-000{i}"))
                                           for i in range(2)]
    for a, b in zip(mine, theirs):
        assert {k: a[k] for k in keys if k != "metrics"} == {k: b[k] for k in keys
                                                             if k != "metrics"}
        assert b["metrics"] == pytest.approx(a["metrics"])
    table = runner.invoke(app, ["runs", "--from", store])
    assert table.exit_code == 0, table.output
    assert f"2 runs in {store}, newest first." in table.stdout


def test_tracking_without_mlflow_is_refused_at_validate(runner, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the extra were not installed
    write_config(tmp_path / "c.yaml", tiny_config(tracking={"mlflow": {"experiment": "x"}}))
    result = runner.invoke(app, ["validate", "c.yaml"])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "tracking.mlflow" in result.stderr
    assert "pip install 'nettrain[mlflow]'" in result.stderr
    result = runner.invoke(app, ["fit", "c.yaml"])
    assert result.exit_code == 2 and "pip install 'nettrain[mlflow]'" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_tracking_off_imports_no_mlflow(tmp_path: Path) -> None:
    write_config(tmp_path / "c.yaml", tiny_config())
    script = ("import sys\nfrom typer.testing import CliRunner\nfrom nettrain.cli import app\n"
              "r = CliRunner().invoke(app, ['fit', 'c.yaml', '--run-dir', 'run', '-q'])\n"
              "assert r.exit_code == 0, r.output\n"
              "r = CliRunner().invoke(app, ['evaluate', 'run'])\n"
              "assert r.exit_code == 0, r.output\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(Path(
                              __file__).resolve().parents[1])}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_three_processes_opening_a_new_default_store_at_once_all_work(tmp_path: Path) -> None:
    """Three tracked fits started together on a new runs folder each open the default store
    first: one creates it, the others wait for it (before: 'table _alembic_tmp_tags already
    exists', and the file broken for good)."""
    go = tmp_path / "go"
    script = ("import os, pathlib, sys, time\n"
              "from nettrain.tracking import store\n"
              "import mlflow.store.tracking.sqlalchemy_store  # loaded: then all open at once\n"
              "pathlib.Path(sys.argv[1]).touch()\n"
              f"while not os.path.exists({str(go)!r}):\n    time.sleep(0.01)\n"
              "print(len(store.client(store.default_uri()).search_experiments()))\n")
    env = {**os.environ, "NETTRAIN_RUNS": str(tmp_path / "runs"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("MLFLOW_TRACKING_URI", None)
    ready = [tmp_path / f"ready-{i}" for i in range(3)]
    processes = [subprocess.Popen([sys.executable, "-c", script, str(mark)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for mark in ready]
    try:
        while not all(mark.exists() for mark in ready) and \
                all(p.poll() is None for p in processes):
            time.sleep(0.05)
        go.touch()
        ends = [p.communicate(timeout=300) for p in processes]
    finally:
        for p in processes:
            p.kill()
    assert [p.returncode for p in processes] == [0, 0, 0], [err[-2000:] for _, err in ends]
    assert (tmp_path / "runs" / "mlflow.db").is_file()


def test_a_damaged_store_says_which_file_and_how_to_recover(runner, tmp_path: Path) -> None:
    database = tmp_path / "runs" / "mlflow.db"
    database.parent.mkdir()
    database.write_bytes(b"not a database " * 100)
    result = runner.invoke(app, ["runs", "--from", f"sqlite:///{database}"])
    assert result.exit_code == 1 and type(result.exception) is SystemExit  # said, no traceback
    assert f"the MLflow store {database} cannot be opened" in result.stderr
    assert f"mv {database} {database}.damaged" in result.stderr


def test_a_config_file_may_not_choose_a_store_outside_the_runs_folder(
        runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared config's tracking URI that leaves the runs folder is refused before anything
    is trained, sent or written, as RemoteMonitor is, unless the user names the same store:
    --track, KEY=VALUE, or MLFLOW_TRACKING_URI (before: a database made anywhere, the run's
    files sent to any host)."""
    outside = tmp_path / "elsewhere" / "mlflow.db"
    for uri, does in (("http://collector.example:5000", "may not send a run elsewhere"),
                      (f"sqlite:///{outside}", "may not write outside the runs folder"),
                      ("sqlite:///runs/../x.db", "may not write outside the runs folder")):
        write_config(tmp_path / "c.yaml", tiny_config(tracking={"mlflow": {"uri": uri}}))
        result = runner.invoke(app, ["fit", "c.yaml"])
        text = " ".join(result.stderr.split())
        assert result.exit_code == 2 and type(result.exception) is SystemExit, result.output
        assert "tracking.mlflow.uri (line " in text and does in text
        assert f"name it yourself: nettrain fit c.yaml --track {uri}, or set " \
            f"MLFLOW_TRACKING_URI={uri}" in text
        assert not (tmp_path / "runs").exists() and not outside.parent.exists()
    # a store under the runs folder, or one the user names, is taken
    uri = f"sqlite:///{outside}"
    write_config(tmp_path / "c.yaml", tiny_config(tracking={"mlflow": {"uri": uri}}))
    from nettrain.config.load import load_config
    from nettrain.tracking import store

    for named in (["--track", uri], [f"tracking.mlflow.uri={uri}"]):
        result = runner.invoke(app, ["validate", "c.yaml", *named])
        assert result.exit_code == 0, result.output
    from nettrain.errors import ConfigError

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mine:5000")  # another store: no say
    with pytest.raises(ConfigError, match="name it yourself"):
        store.check(load_config(tmp_path / "c.yaml"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    store.check(load_config(tmp_path / "c.yaml"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    write_config(tmp_path / "c.yaml", tiny_config(tracking={"mlflow": {
        "uri": "sqlite:///runs/team/m.db"}}))
    store.check(load_config(tmp_path / "c.yaml"))


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_a_fit_stopped_ends_its_mlflow_run_killed_ctrl_c_or_kill_9(tmp_path: Path,
                                                                   how: str) -> None:
    """Ctrl-C (to the terminal's process group) or kill -9 of a tracked fit: the MLflow run
    ends KILLED, not RUNNING (after kill -9, fit's sidecar process ends it)."""
    write_config(tmp_path / "c.yaml", tiny_config())
    process = subprocess.Popen(
        [sys.executable, "-m", "nettrain", "fit", "c.yaml", "--run-dir", "run", "-q",
         "fit.epochs=100000", 'tracking={"mlflow": {}}'], cwd=tmp_path, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    run_json, note = tmp_path / "run" / "run.json", {}
    deadline = time.monotonic() + 180
    while not note.get("run_id") and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        if run_json.is_file():
            note = json.loads(run_json.read_text()).get("mlflow") or {}
    assert note.get("run_id"), process.communicate(timeout=60)
    os.killpg(process.pid, getattr(signal, how))  # the group: what Ctrl-C at a terminal does
    out, err = process.communicate(timeout=180)
    assert process.returncode == (130 if how == "SIGINT" else -9), err
    assert out == ""
    client = _client(note["uri"])
    while client.get_run(note["run_id"]).info.status == "RUNNING" and \
            time.monotonic() < deadline:  # after kill -9, the sidecar ends it
        time.sleep(0.2)
    assert client.get_run(note["run_id"]).info.status == "KILLED"
    if how == "SIGINT":
        assert json.loads(run_json.read_text())["mlflow"]["uploaded"] is True


def test_a_relative_sqlite_store_keeps_its_artifacts_in_mlartifacts_beside_it(
        tmp_path: Path, monkeypatch) -> None:
    """``--track sqlite:///runs/mlflow.db`` (relative, MLflow's own documented form) works:
    its new experiment's artifacts go to ``runs/mlartifacts``, not a failed ``as_uri``."""
    from nettrain.tracking import store

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    uri = "sqlite:///runs/team.db"
    client = _client(uri)
    ident = store.experiment_id(client, store.Where(uri=uri, experiment="relative"))
    assert client.get_experiment(ident).artifact_location == \
        (tmp_path / "runs" / store.ARTIFACTS).as_uri()
