"""run.json has one writer, the run record (nettrain.run.record.RunRecord): each status change
is one atomic write made under the run's lock, with the keys it always had."""

from __future__ import annotations

import ast
import json
import threading
from pathlib import Path

import keras
import pytest

from nettrain.cli import app

from conftest import REPO, tiny_config, write_config

PACKAGE = REPO / "nettrain"
# run.json of a completed run, as main wrote it before the record had one writer
# (and the backend that trained, and which way each metric improves, recorded since)
COMPLETED = set(json.loads((REPO / "tests/fixtures/main-20261201/run/run.json").read_text())) \
    | {"backend", "backend_why", "training", "directions"}
STARTED = COMPLETED - {"saved", "epochs_completed"}
WRITERS = {"write_json", "update_json", "write_atomic", "replacing", "write_text", "write_bytes",
           "open", "replace", "rename"}


def _mentions_run_json(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "RUN" or
               isinstance(n, ast.Attribute) and n.attr == "RUN" or
               isinstance(n, ast.Constant) and n.value == "run.json" for n in ast.walk(node))


def _writes_run_json(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in WRITERS:
        return False
    targets = [*call.args, *(k.value for k in call.keywords)]
    if name == "open" and not any(isinstance(t, ast.Constant) and isinstance(t.value, str) and
                                  set(t.value) & set("wax+") for t in targets):
        return False  # opened to read
    if isinstance(func, ast.Attribute):  # (run / RUN).write_text(...)
        targets.append(func.value)
    return any(_mentions_run_json(t) for t in targets)


def _record(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def _calls_outside_the_record(matches) -> list[str]:
    """``file:line`` of each call in the package, run/record.py aside, that ``matches``."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        if where == "run/record.py":
            continue
        found += [f"{where}:{node.lineno}" for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.Call) and matches(node)]
    return found


def test_only_the_run_record_writes_run_json():
    from nettrain.run import directory as rundir

    found = _calls_outside_the_record(_writes_run_json)
    assert found == [], f"run.json written outside nettrain/run/record.py: {found}"
    assert not hasattr(rundir, "update_json")  # the unlocked read-modify-write is gone


READERS = {"read_json", "_json", "read_text", "read_bytes", "open", "load", "loads"}


def _reads_run_json(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    targets = [*call.args, *(k.value for k in call.keywords),
               *([func.value] if isinstance(func, ast.Attribute) else [])]
    return name in READERS and any(_mentions_run_json(t) for t in targets)


def test_only_the_run_record_reads_run_json():
    """Every reader of run.json asks RunRecord(path).read(): one answer for a missing or a
    damaged record (``nettrain runs`` shows its note)."""
    found = _calls_outside_the_record(_reads_run_json)
    assert found == [], f"run.json read outside nettrain/run/record.py: {found}"


def test_a_damaged_record_is_one_error_naming_the_file(tmp_path):
    from nettrain.run.record import Damaged, RunRecord

    assert RunRecord(tmp_path).read() == {} and not RunRecord(tmp_path).exists
    for text, note in ((b'{"status": "completed",', "is not valid JSON (line 1, column 24)"),
                       (b"\xff\xfe", "is not UTF-8 text"),
                       (b"[1, 2]", "holds a JSON list, not an object")):
        (tmp_path / "run.json").write_bytes(text)
        with pytest.raises(Damaged) as caught:
            RunRecord(tmp_path).read()
        assert caught.value.note == f"run.json {note}" and caught.value.exit_code == 1
        assert str(caught.value).startswith(f"{tmp_path / 'run.json'} is damaged (")


def test_each_status_change_writes_the_keys_it_always_wrote(runner, tmp_path):
    from nettrain.config.load import load_config
    from nettrain.engine import train

    path = write_config(tmp_path / "c.yaml", tiny_config())
    result = runner.invoke(app, ["fit", str(path), "--run-dir", str(tmp_path / "done")])
    assert result.exit_code == 0, result.output
    assert set(_record(tmp_path / "done")) == COMPLETED
    assert _record(tmp_path / "done")["status"] == "completed"

    seen = {}

    class CtrlC(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.update(_record(tmp_path / "stopped"))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.fit(load_config(path), tmp_path / "stopped", echo=lambda text: None,
                  extra_callbacks=(CtrlC(),))
    assert set(seen) == STARTED and seen["status"] == "running"
    stopped = _record(tmp_path / "stopped")
    assert set(stopped) == COMPLETED and stopped["status"] == "interrupted"
    assert stopped["epochs_completed"] == 1

    result = runner.invoke(app, ["fit", "--resume", str(tmp_path / "stopped")])
    assert result.exit_code == 0, result.output
    resumed = _record(tmp_path / "stopped")
    assert set(resumed) == COMPLETED | {"resumed", "error"}
    assert resumed["status"] == "completed" and resumed["error"] is None
    assert [set(r) for r in resumed["resumed"]] == [
        {"at", "from_epoch", "command", "host", "changes"}]
    assert resumed["resumed"][0]["from_epoch"] == 1 and resumed["started"] == stopped["started"]

    # the loss becomes NaN in epoch 2: failed
    nan = write_config(tmp_path / "nan.yaml", tiny_config(
        data={"dataset": "diabetes", "validation_split": 0.2},
        model={"layers": [{"Dense": {"units": 1}}]},
        compile={"optimizer": {"SGD": {"learning_rate": {"ExponentialDecay": {
            "initial_learning_rate": 0.0001, "decay_steps": 12, "decay_rate": 1e6,
            "staircase": True}}}}, "loss": "mse"},
        fit={"epochs": 3, "batch_size": 32, "verbose": 0}))
    result = runner.invoke(app, ["fit", str(nan), "--run-dir", str(tmp_path / "nan")])
    assert result.exit_code == 1, result.output
    failed = _record(tmp_path / "nan")
    # a NaN stop keeps the last good epoch's model: "saved" names its files
    assert set(failed) == STARTED | {"error", "epochs_completed", "saved"}
    assert failed["status"] == "failed" and "epoch 2" in failed["error"]


def test_the_record_s_methods_are_its_status_changes(tmp_path):
    from nettrain.config.load import load_config
    from nettrain.run.record import RunRecord

    config = load_config(write_config(tmp_path / "c.yaml", tiny_config()))
    run = tmp_path / "run"
    run.mkdir()
    record = RunRecord(run)
    record.started(config, {"d.npz": "ab12"}, replicas=1)
    # RunRecord's own keys; "training" is a note the training loop adds (annotate)
    assert set(_record(run)) == STARTED - {"training", "directions"} and \
        _record(run)["data_sha256"] == {"d.npz": "ab12"}
    record.decided({"loss": "min", "accuracy": "max"})
    assert _record(run)["directions"] == {"loss": "min", "accuracy": "max"}
    with pytest.raises(ValueError, match="directions belong to the run's status changes"):
        record.annotate(directions={})  # only fit decides them
    record.interrupted(epochs_completed=1, saved=["model.keras"])
    assert set(_record(run)) == COMPLETED - {"training"} and \
        _record(run)["status"] == "interrupted"
    record.resumed(from_epoch=1, changes={"fit.epochs": (2, 4)})
    assert _record(run)["status"] == "running" and _record(run)["ended"] is None
    assert _record(run)["resumed"][0]["changes"] == {"fit.epochs": [2, 4]}
    record.failed("boom", epochs_completed=2)
    assert _record(run)["status"] == "failed" and _record(run)["error"] == "boom"
    record.resumed(from_epoch=2, changes={})
    record.completed(saved=["model.keras"], epochs_completed=4)
    done = _record(run)
    assert set(done) == COMPLETED - {"training"} | {"resumed", "error"}
    assert (done["status"], done["error"], len(done["resumed"])) == ("completed", None, 2)
    record.annotate(sweep={"study": "s", "trial": 0})
    assert _record(run)["sweep"] == {"study": "s", "trial": 0}
    with pytest.raises(ValueError, match="status"):  # a note never changes the status
        record.annotate(status="running")


def test_the_record_holds_the_config_s_values_and_when_the_run_ended(tmp_path):
    """What the readers of run.json take from it: the seed and data keys (evaluate and resume
    compare them with the run's config), the backend, the replicas, and an end time at each
    end, none while it runs again."""
    from nettrain.config.load import load_config
    from nettrain.data.fingerprint import edited_data_config
    from nettrain.run.record import RunRecord

    config = load_config(write_config(tmp_path / "c.yaml",
                                      tiny_config(seed=5, deterministic=True)))
    run = tmp_path / "run"
    run.mkdir()
    record = RunRecord(run)
    record.started(config, {}, replicas=2)
    started = _record(run)
    assert (started["seed"], started["deterministic"], started["replicas"],
            started["backend"], started["ended"]) == (5, True, 2, keras.backend.backend(), None)
    assert (started["data_config"]["dataset"], started["data_config"]["test_split"]) == \
        ("iris", 0.2)
    assert edited_data_config(config, started) == []
    record.failed("boom", epochs_completed=1)
    failed = _record(run)
    assert failed["ended"] >= failed["started"] == started["started"]
    record.resumed(from_epoch=1, changes={})
    assert _record(run)["ended"] is None
    record.completed(saved=[], epochs_completed=2)
    assert _record(run)["ended"] >= failed["ended"]


def test_the_record_names_the_config_s_commit_and_whether_the_file_was_edited(tmp_path):
    import subprocess

    from nettrain.run.record import git_commit

    path = write_config(tmp_path / "c.yaml", tiny_config())
    assert git_commit(str(path)) is None  # not in a repository
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "c.yaml"], ["commit", "-qm", "config"]):
        subprocess.run([*git, *args], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert git_commit(str(path)) == {"commit": head, "config_changed": False}
    path.write_text(path.read_text() + "# edited\n")
    assert git_commit(str(path)) == {"commit": head, "config_changed": True}


def test_a_note_waits_for_the_run_lock_and_refuses_clearly_when_another_holds_it(tmp_path):
    from nettrain.errors import UsageError
    from nettrain.run.lock import locked
    from nettrain.run.record import RunRecord

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"status": "completed"}')
    held, release = threading.Event(), threading.Event()

    def trainer() -> None:  # another holder of the run (a resume, say)
        with locked(run):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=trainer)
    thread.start()
    try:
        held.wait(30)
        with pytest.raises(UsageError) as caught:
            RunRecord(run).annotate(sweep={"trial": 0})
    finally:
        release.set()
        thread.join()
    message = str(caught.value)
    assert message.startswith(f"Cannot write the note 'sweep' in {run / 'run.json'}: {run} is "
                              "being trained by another process (pid ")
    assert message.endswith(f"{run / 'run.json'} is left as it was. Wait for that process to "
                            "end, then try again.")
    assert _record(run) == {"status": "completed"}
    RunRecord(run).annotate(sweep={"trial": 0})  # the lock is free again
    assert _record(run) == {"status": "completed", "sweep": {"trial": 0}}


def test_notes_written_at_once_are_never_lost(tmp_path):
    """Read-modify-write under the lock: no writer overwrites another's change."""
    from nettrain.run.record import RunRecord

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"status": "completed"}')
    errors = []

    def note(worker: int) -> None:
        try:
            for n in range(10):
                RunRecord(run).annotate(**{f"w{worker}_{n}": n})
        except Exception as exc:  # noqa: BLE001  (shown by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=note, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(_record(run)) == 1 + 4 * 10


def test_the_sweep_s_note_is_never_written_past_another_holder_of_the_run(tmp_path,
                                                                         monkeypatch):
    import optuna

    from nettrain.config.load import load_config
    from nettrain.run.lock import locked
    from nettrain.sweep import runner as sweep
    from nettrain.sweep import trials

    from test_sweep import sweep_config

    config = load_config(write_config(tmp_path / "c.yaml", sweep_config()))
    plan = sweep.prepare(config, "c.yaml", tmp_path / "s")
    plan.metric, plan.direction = "val_accuracy", "maximize"
    held, release = threading.Event(), threading.Event()

    def other(path: Path) -> None:  # e.g. fit --resume of the trial, started just as it ended
        with locked(path):
            held.set()
            release.wait(30)

    fit = trials.train_fit

    def fit_then_another_takes_the_run(config, path, out, pruning, logger=None):
        done = fit(config, path, out, pruning, logger)
        threading.Thread(target=other, args=(path,), daemon=True).start()
        held.wait(30)
        return done

    monkeypatch.setattr(trials, "train_fit", fit_then_another_takes_the_run)
    trial = optuna.create_study().ask()
    try:
        with pytest.raises(trials.TrialFailed):
            trials.run_trial(plan, trial)
    finally:
        release.set()
    run = tmp_path / "s" / "trial-0000"
    failure = trial.storage.get_trial(trial._trial_id).user_attrs["failure"]
    assert failure.startswith(f"Cannot write the note 'sweep' in {run / 'run.json'}: {run} is "
                              "being trained by another process")
    assert "sweep" not in _record(run) and _record(run)["status"] == "completed"


def test_the_record_writes_no_secret_of_a_uri(tmp_path, monkeypatch):
    """run.json's command, each resume's command and changes, an error and a note hold a URI
    without its password (fit --track http://user:secret@host)."""
    import sys

    from nettrain.config.load import load_config
    from nettrain.run.record import RunRecord

    uri = "http://user:secret@127.0.0.1:5000"
    config = load_config(write_config(tmp_path / "c.yaml", tiny_config()))
    run = tmp_path / "run"
    run.mkdir()
    record = RunRecord(run)
    monkeypatch.setattr(sys, "argv", ["nettrain", "fit", "c.yaml", "--track", uri])
    record.started(config, {}, replicas=1)
    monkeypatch.setattr(sys, "argv", ["nettrain", "fit", "--resume", "run",
                                      f"tracking.mlflow.uri={uri}"])
    record.resumed(from_epoch=1, changes={"tracking.mlflow.uri": ("http://h", uri)})
    record.failed(f"cannot reach {uri}/api", epochs_completed=1)
    record.annotate(mlflow={"uri": uri})
    text = (run / "run.json").read_text()
    assert "secret" not in text
    written = _record(run)
    assert written["command"][-1] == "http://user:***@127.0.0.1:5000"
    assert written["resumed"][0]["command"][-1] == \
        "tracking.mlflow.uri=http://user:***@127.0.0.1:5000"
    assert written["resumed"][0]["changes"]["tracking.mlflow.uri"][1] == \
        "http://user:***@127.0.0.1:5000"
    assert written["mlflow"] == {"uri": "http://user:***@127.0.0.1:5000"}
