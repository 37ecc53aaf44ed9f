"""Every stopped run can be resumed or finished, bit for bit, and only by one process at once."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest

from nettrain.cli import app

from conftest import fit_once, tiny_config, write_config, write_npz
from test_training import _popen, assert_identical, fit, weights


def best_before_the_end_config(**fit_section) -> dict:
    """A learning rate so high that val_loss is best in the first epoch and never again: the
    stateful callbacks (best weights, best value, lowered learning rate) all matter."""
    config = tiny_config()
    config["model"]["layers"].insert(1, {"Dropout": {"rate": 0.2}})
    config["compile"]["optimizer"] = {"Adam": {"learning_rate": 1.0}}
    config["fit"] = {"epochs": 8, "batch_size": 8, "verbose": 0, "callbacks": [
        {"EarlyStopping": {"monitor": "val_loss", "patience": 20,
                           "restore_best_weights": True}},
        {"ReduceLROnPlateau": {"monitor": "val_loss", "patience": 1, "factor": 0.5}},
        {"ModelCheckpoint": {"filepath": "mc.keras", "monitor": "val_loss",
                             "save_best_only": True}},
        {"CSVLogger": {"filename": "log.csv"}},
        {"CSVLogger": {"filename": "appended.csv", "append": True}}], **fit_section}
    return config


def _saving_model_keras_fails(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """The disk is full when model.keras is written; returns the function that frees it."""
    replace = os.replace

    def disk_full(source, target, *args, **kwargs):
        if Path(target).name == "model.keras":
            raise OSError(errno.ENOSPC, "No space left on device")
        return replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", disk_full)
    return lambda: monkeypatch.setattr(os, "replace", replace)


def _callback_file(run: Path, cwd: Path, name: str) -> Path:
    """Where a callback of the config wrote (the run directory, or the working folder)."""
    return run / name if (run / name).is_file() else cwd / name


def _val_loss(run: Path) -> list[float]:
    return pd.read_csv(run / "history.csv")["val_loss"].tolist()


# ------------------------------------------------------------------ callback state


def test_restore_best_weights_and_callback_state_resume_bit_identically(runner, tmp_path,
                                                                         monkeypatch):
    path = write_config(tmp_path / "c.yaml", best_before_the_end_config())
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    full = fit(runner, path, "--run-dir", tmp_path / "full")
    losses = _val_loss(full)
    best = int(np.argmin(losses))
    stop = best + 2  # the run stops after the best epoch and one worse one
    assert stop < len(losses) and min(losses[stop:]) > losses[best]  # the test's premise
    monkeypatch.chdir(tmp_path / "b")
    part = fit(runner, path, f"fit.epochs={stop}", "--run-dir", tmp_path / "part")
    result = runner.invoke(app, ["fit", "--resume", str(part), f"fit.epochs={len(losses)}"])
    assert result.exit_code == 0, result.output
    # EarlyStopping restored the weights of the best epoch, from before the stop
    assert_identical(weights(full), weights(part))
    assert_identical(weights(full, "checkpoints/last.keras"),
                     weights(part, "checkpoints/last.keras"))
    # ReduceLROnPlateau's lowered rate and ModelCheckpoint's best value came back too
    lr = keras.saving.load_model(part / "checkpoints/last.keras").optimizer.learning_rate
    assert float(lr) < 1.0
    assert_identical(weights(_callback_file(full, tmp_path / "a", "mc.keras"), ""),
                     weights(_callback_file(part, tmp_path / "b", "mc.keras"), ""))
    # the config's own CSVLogger files go on as history.csv does, appending or not
    for name in ("log.csv", "appended.csv"):
        assert _callback_file(full, tmp_path / "a", name).read_bytes() == \
            _callback_file(part, tmp_path / "b", name).read_bytes()
    assert (full / "history.csv").read_bytes() == (part / "history.csv").read_bytes()


# ----------------------------------------------------------------- early-stopped runs


def early_stopping_config() -> dict:
    """EarlyStopping stops in epoch 2 of 10: no later loss beats the first by 100."""
    config = tiny_config()
    config["fit"] = {"epochs": 10, "batch_size": 16, "verbose": 0, "callbacks": [
        {"EarlyStopping": {"monitor": "loss", "patience": 1, "min_delta": 100}}]}
    return config


def test_an_early_stopped_run_is_finished_until_the_user_decides(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", early_stopping_config())
    run = fit(runner, path, "--run-dir", tmp_path / "run")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_completed"] == 2
    before = {name: (run / name).read_bytes() for name in ("model.keras", "metrics.json")}
    for extra in ([], ["fit.epochs=20"]):
        result = runner.invoke(app, ["fit", "--resume", str(run), *extra])
        assert result.exit_code == 2, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "stopped early after epoch 2 of" in result.stderr
        assert "EarlyStopping" in result.stderr
        assert "fit.callbacks.0.EarlyStopping.patience=" in result.stderr
        assert {name: (run / name).read_bytes() for name in before} == before
    # the advice works: a new patience is the decision to train on
    result = runner.invoke(app, ["fit", "--resume", str(run),
                                 "fit.callbacks.0.EarlyStopping.patience=3"])
    assert result.exit_code == 0, result.output
    record = json.loads((run / "run.json").read_text())
    # as a run with patience 3 from the start: 3 epochs after the best one (the first)
    assert record["status"] == "completed" and record["epochs_completed"] == 4


def test_a_completed_run_is_finished_unless_epochs_are_raised(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config())
    run = fit(runner, path, "--run-dir", tmp_path / "run")
    metrics = (run / "metrics.json").read_bytes()
    result = runner.invoke(app, ["fit", "--resume", str(run)])
    assert result.exit_code == 2
    assert "completed 2 of 2 epochs (status completed); it is finished" in result.stderr
    assert f"nettrain fit --resume {run} fit.epochs=12" in result.stderr
    assert (run / "metrics.json").read_bytes() == metrics


def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file()}


def test_a_resume_may_not_set_epochs_below_those_done(runner, tmp_path, monkeypatch):
    """3 epochs trained, the final save failed (a resume would finish the run); a resume with
    fit.epochs=2 is refused and changes nothing in the run directory."""
    path = write_config(tmp_path / "c.yaml", tiny_config(
        fit={"epochs": 3, "batch_size": 16, "verbose": 0}))
    free_space = _saving_model_keras_fails(monkeypatch)
    run = tmp_path / "run"
    assert runner.invoke(app, ["fit", str(path), "--run-dir", str(run)]).exit_code == 1
    free_space()
    before = _files(run)
    result = runner.invoke(app, ["fit", "--resume", str(run), "fit.epochs=2"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert (f"--resume {run}: fit.epochs: expected at least 3 (the epochs this run has "
            "done); received 2.") in result.stderr
    assert f"nettrain fit {run}/config.yaml fit.epochs=2" in result.stderr
    assert _files(run) == before


# ---------------------------------------------------------- stops and their messages


def _wait_for_line(proc: subprocess.Popen, text: str) -> str:
    seen = ""
    while text not in seen:
        line = proc.stderr.readline()
        assert line, f"the process ended before printing {text!r}: {seen}"
        seen += line
    return seen


def test_ctrl_c_in_the_first_epoch_tells_the_truth_and_its_advice_works(runner, tmp_path):
    write_npz(tmp_path / "d.npz", n=6000, classes=3)
    config = tiny_config(data={"npz": str(tmp_path / "d.npz")})
    config["fit"] = {"epochs": 1, "batch_size": 1, "verbose": 0}
    path = write_config(tmp_path / "c.yaml", config)
    run = tmp_path / "run"
    proc = _popen("fit", path, "--run-dir", run, cwd=tmp_path)
    _wait_for_line(proc, "Training 1 epoch")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert not (run / "checkpoints" / "last.keras").exists()  # the premise: epoch 1 unfinished
    assert "the model of the last one is saved" not in err
    assert "no epoch completed, so no model is saved" in err
    assert f"nettrain fit --resume {run}" in err
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    result = runner.invoke(app, ["fit", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    full = fit(runner, path, "--run-dir", tmp_path / "full")
    assert_identical(weights(full), weights(run))
    assert (full / "history.csv").read_bytes() == (run / "history.csv").read_bytes()


def test_a_final_save_that_fails_is_finished_by_resume(runner, tmp_path, monkeypatch):
    """Disk full when the model is moved into place; then space is freed."""
    path = write_config(tmp_path / "c.yaml", best_before_the_end_config(epochs=3))
    full = fit(runner, path, "--run-dir", tmp_path / "full")
    free_space = _saving_model_keras_fails(monkeypatch)
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(path), "--run-dir", str(run)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "No space left on device" in result.stderr
    assert "all 3 epochs are trained" in result.stderr
    assert f"nettrain fit --resume {run}" in result.stderr
    assert not (run / "metrics.json").exists()
    free_space()
    result = runner.invoke(app, ["fit", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    assert "no epoch is left to train" in result.stderr
    assert_identical(weights(full), weights(run))
    assert (full / "history.csv").read_bytes() == (run / "history.csv").read_bytes()
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_completed"] == 3
    assert json.loads((run / "metrics.json").read_text()) == \
        json.loads((full / "metrics.json").read_text())


def _wait_for_epoch(proc: subprocess.Popen, run: Path, epoch: int) -> None:
    """Wait until checkpoints/last.keras holds epoch ``epoch``."""
    from nettrain.run.checkpoints import read_state

    last = run / "checkpoints" / "last.keras"
    for _ in range(6000):
        if last.is_file() and read_state(last).epoch >= epoch:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    raise AssertionError(f"epoch {epoch} was never checkpointed")


def _killed_at_the_end_config() -> dict:
    config = best_before_the_end_config(epochs=2)
    config["save"] = {"formats": ["keras", "json", "savedmodel"]}  # a slow final save
    return config


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run the killed ones must end as: trained once, for every signal."""
    return fit_once(tmp_path_factory.mktemp("full"), _killed_at_the_end_config())


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_kill_after_the_last_epoch_is_finished_by_resume(runner, tmp_path, sig,
                                                           uninterrupted):
    path = write_config(tmp_path / "c.yaml", _killed_at_the_end_config())
    run = tmp_path / "run"
    proc = _popen("fit", path, "--run-dir", run, cwd=tmp_path)
    _wait_for_epoch(proc, run, 2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert not (run / "metrics.json").exists(), err  # the premise: killed before the end
    result = runner.invoke(app, ["fit", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    assert "no epoch is left to train" in result.stderr
    assert_identical(weights(uninterrupted), weights(run))
    assert (uninterrupted / "history.csv").read_bytes() == (run / "history.csv").read_bytes()
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and (run / "metrics.json").is_file()


# ------------------------------------------------------------------------- the lock


def test_two_processes_cannot_train_one_run(runner, tmp_path):
    """A run trained by another process is refused (here, in this process); once that process
    is killed, its lock is gone with it and the run resumes (here too)."""
    from nettrain.run.checkpoints import read_state

    config = tiny_config()
    config["fit"] = {"epochs": 500, "batch_size": 4, "verbose": 0,
                     "checkpoint_every_seconds": 0}
    path = write_config(tmp_path / "c.yaml", config)
    run = tmp_path / "run"
    first = _popen("fit", path, "--run-dir", run, cwd=tmp_path)
    try:
        _wait_for_epoch(first, run, 1)
        second = runner.invoke(app, ["fit", "--resume", str(run), "fit.epochs=600"])
        err = second.stderr
        assert second.exit_code == 2 and isinstance(second.exception, SystemExit), err
        assert f"{run} is being trained by another process" in err
        assert f"pid {first.pid} on {socket.gethostname()}" in err
        assert "nettrain fit" in err and "since 20" in err
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    # the lock died with its process: the run can be resumed now
    done = json.loads((run / "run.json").read_text())
    assert done["status"] == "running"
    epochs = read_state(run / "checkpoints" / "last.keras").epoch
    third = runner.invoke(app, ["fit", "--resume", str(run), f"fit.epochs={epochs + 1}"])
    assert third.exit_code == 0, third.output
    rows = (run / "history.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == list(range(len(rows)))


# --------------------------------------------------------------------- history.csv


def test_history_csv_keeps_one_line_ending_after_a_resume(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config())
    run = fit(runner, path, "--run-dir", tmp_path / "run")
    result = runner.invoke(app, ["fit", "--resume", str(run), "fit.epochs=4"])
    assert result.exit_code == 0, result.output
    data = (run / "history.csv").read_bytes()
    lines = data.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 6  # header, 4 rows, the end
    endings = {line.endswith(b"\r") for line in lines[:-1]}
    assert len(endings) == 1, data


# ---------------------------------------------------------------- damaged checkpoints


def _bad_state(last: Path) -> None:
    """A whole zip whose resume state is not what nettrain wrote."""
    with zipfile.ZipFile(last) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["nettrain-state.json"] = b'{"epochs": 1}'
    with zipfile.ZipFile(last, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.parametrize("damage", [
    lambda last: last.write_bytes(b"not a zip"),
    lambda last: last.write_bytes(last.read_bytes()[:2000]),
    _bad_state,
], ids=["garbage", "truncated", "bad-state"])
def test_a_damaged_checkpoint_is_named_with_what_to_do(runner, tmp_path, damage):
    path = write_config(tmp_path / "c.yaml", tiny_config(fit={"epochs": 3, "batch_size": 16,
                                                              "verbose": 0}))
    run = fit(runner, path, "fit.epochs=2", "--run-dir", tmp_path / "run")
    damage(run / "checkpoints" / "last.keras")
    result = runner.invoke(app, ["fit", "--resume", str(run), "fit.epochs=3"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    last = run / "checkpoints" / "last.keras"
    assert f"{last} is damaged" in result.stderr
    for name in ("BadZipFile", "TypeError", "KeyError", "JSONDecodeError"):
        assert name not in result.stderr
    best = run / "checkpoints" / "best.keras"
    assert f"cp {best} {last}" in result.stderr  # the best epoch's checkpoint is whole
    assert f"nettrain fit {run}/config.yaml" in result.stderr
    # the advice works: the best checkpoint carries its resume state
    (run / "checkpoints" / "last.keras").write_bytes(best.read_bytes())
    result = runner.invoke(app, ["fit", "--resume", str(run), "fit.epochs=3"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "run.json").read_text())["epochs_completed"] == 3


def _batch_by_batch() -> dict:
    """Three epochs of 6 batches, one batch per call of the training step, so a callback's
    on_train_batch_end sees every batch (with steps_per_execution: auto it would see one call
    of 6 batches an epoch)."""
    config = tiny_config(fit={"epochs": 3, "batch_size": 16, "verbose": 0})
    config["compile"]["steps_per_execution"] = 1
    return config


def _fit_batch_by_batch_with(callback: keras.callbacks.Callback, runner, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch, **fit) -> tuple[Any, Path]:
    """``nettrain fit`` of :func:`_batch_by_batch` (``fit`` options replaced) with
    ``callback`` among the config's own; the result and the run directory."""
    from nettrain.engine import train

    prepare = train.prepare

    def prepare_with_it(*args, **kwargs):
        prepared = prepare(*args, **kwargs)
        prepared.callbacks.append(callback)
        return prepared

    monkeypatch.setattr(train, "prepare", prepare_with_it)
    config = _batch_by_batch()
    config["fit"].update(fit)
    path = write_config(tmp_path / "c.yaml", config)
    run = tmp_path / "run"
    return runner.invoke(app, ["fit", str(path), "--run-dir", str(run)]), run


def _turned_into_a_system_error() -> None:
    # as TensorFlow's C++ code can: 'Objects/listobject.c:338: bad argument to internal function'
    raise SystemError("Objects/listobject.c:338: bad argument to internal function")


def _lost() -> None:
    pass  # as Python does in a weakref callback of the garbage collector: prints it, goes on


@pytest.mark.parametrize("what_becomes_of_it", [_turned_into_a_system_error, _lost],
                         ids=["system-error", "lost"])
def test_a_ctrl_c_that_does_not_come_out_as_keyboardinterrupt_is_still_a_stop(
        runner, tmp_path, monkeypatch, what_becomes_of_it):
    """A real SIGINT whose KeyboardInterrupt is caught where Keras does not see it. The
    callback below plays the code that catches it (C++ or the garbage collector). While the
    loop runs a first Ctrl-C is only noted (the test below), so an impatient user's second
    one is the one raised there."""

    class CatchesIt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations.numpy() == 8:  # in the second epoch
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.2)
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(5)
                except KeyboardInterrupt:
                    what_becomes_of_it()

    result, run = _fit_batch_by_batch_with(CatchesIt(), runner, tmp_path, monkeypatch)
    assert result.exit_code == 130, result.output
    # the stop is honoured at once: in the epoch it came in
    assert "Interrupted after 1 completed epoch(s)" in result.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"


def test_the_lock_is_taken_over_after_a_kill_and_gone_after_a_normal_end(tmp_path):
    from nettrain.run.lock import LOCK, locked

    (tmp_path / LOCK).write_text('{"pid": 1, "host": "gone"}')  # as a killed process left it
    with locked(tmp_path):
        held = json.loads((tmp_path / LOCK).read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
    assert not (tmp_path / LOCK).exists()


def test_a_ctrl_c_on_a_full_disk_says_what_was_kept(runner, tmp_path, monkeypatch):
    """The model of the last epoch cannot be saved: the message says so, and resume works."""
    from nettrain.engine import train

    class CtrlC(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations.numpy() == 8:  # in the second epoch
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)

    prepare = train.prepare

    def prepare_with_it(*args, **kwargs):
        prepared = prepare(*args, **kwargs)
        prepared.callbacks.append(CtrlC())
        return prepared

    monkeypatch.setattr(train, "prepare", prepare_with_it)
    _saving_model_keras_fails(monkeypatch)
    path = write_config(tmp_path / "c.yaml", _batch_by_batch())
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(path), "--run-dir", str(run)])
    assert result.exit_code == 130, result.output
    assert "Interrupted after 1 completed epoch(s); the model could not be saved " \
           "([Errno 28] No space left on device)" in result.stderr
    assert f"Continue with: nettrain fit --resume {run}" in result.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    monkeypatch.undo()
    result = runner.invoke(app, ["fit", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


def test_a_changed_optimizer_is_one_difference_with_both_values(runner, tmp_path):
    """adam -> {Adam: {learning_rate: 0.1}} is one change, shown with both values (not
    "received nothing" at compile.optimizer plus a second line below it)."""
    path = write_config(tmp_path / "c.yaml", tiny_config())
    assert runner.invoke(app, ["fit", str(path), "--run-dir", "run"]).exit_code == 0
    before = (tmp_path / "run" / "config.yaml").read_text()
    result = runner.invoke(app, ["fit", "--resume", "run", "fit.epochs=4",
                                 "compile.optimizer={Adam: {learning_rate: 0.1}}"])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2, result.output
    assert result.stderr.startswith(
        "Config error: --resume run: the config differs from the run's: compile.optimizer: "
        "expected the run's value 'adam'; received {'Adam': {'learning_rate': 0.1}}. A resume "
        "must train the same model the same way")
    assert "nothing" not in result.stderr
    assert (tmp_path / "run" / "config.yaml").read_text() == before


def test_advised_commands_quote_a_run_path_with_a_space(runner, tmp_path):
    """A run directory named with a space: the command a message advises, typed as shown
    (split as a shell splits it), runs."""
    import shlex

    path = write_config(tmp_path / "c.yaml", tiny_config())
    assert runner.invoke(app, ["fit", str(path), "--run-dir", "my run"]).exit_code == 0
    result = runner.invoke(app, ["fit", "--resume", "my run", "fit.epochs=1"])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2, result.output
    advised = " ".join(result.stderr.split()).split("start a new one: ")[1].rstrip(".")
    assert advised == "nettrain fit 'my run/config.yaml' fit.epochs=1"
    again = runner.invoke(app, [*shlex.split(advised)[1:], "--run-dir", "new run"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "new run" / "model.keras").is_file()


def test_a_ctrl_c_in_a_step_waits_for_its_end_instead_of_raising_inside_it(runner, tmp_path,
                                                                           monkeypatch):
    """A Python handler runs at the next bytecode, which can be inside a callback from the
    C++ code of a step; a KeyboardInterrupt raised there came out as a SystemError, and once
    killed the process (SIGSEGV). While the loop runs, a first Ctrl-C is only noted, and
    raised after the step (on every backend and loop: test_signals stops each one). The
    callback below plays the C++ code that calls into Python."""
    inside = []

    class CalledFromTheStep(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == 8:  # in the second epoch
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.5)
                except KeyboardInterrupt:
                    inside.append("raised inside the step")

    result, run = _fit_batch_by_batch_with(CalledFromTheStep(), runner, tmp_path,
                                           monkeypatch)
    assert inside == []
    assert result.exit_code == 130, result.output
    # honoured after the step it came in, in its epoch
    assert "Interrupted after 1 completed epoch(s)" in result.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "interrupted" and record["epochs_completed"] == 1
