"""Stopping cleanly (nettrain.engine.signals): kill -9, Ctrl-C and SIGTERM of a run, resumed
each time, and a NaN loss, on each backend and loop, one process and many. Its own file (not
test_training.py's): under --dist loadfile a file is one worker's, and these processes are
the largest part of the suite's training."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nettrain.cli import app

from conftest import write_config
from test_training import assert_identical, control_config, nan_config, weights

REPO = Path(__file__).resolve().parents[1]
# Each backend and loop: the environment of its fits, the overrides of a new run, and the
# options of its every command (--processes: backend: auto picks JAX for them).
PATHS = {"tensorflow": ({"KERAS_BACKEND": "tensorflow"}, [], []),
         "jax-model.fit": ({"KERAS_BACKEND": "jax"}, ["compile.steps_per_execution=1"], []),
         "jax-fused": ({"KERAS_BACKEND": "jax"}, [], []),
         "torch": ({"KERAS_BACKEND": "torch"}, [], []),
         "processes-2": ({}, [], ["--processes", "2"])}


# Several nettrain commands in one process, as a user would run them one after the other:
# [stderr, exit status] of each, as the last line.
COMMANDS = """
import json, sys
from typer.testing import CliRunner
from nettrain.cli import app
ends = []
for command in json.loads(sys.argv[1]):
    result = CliRunner().invoke(app, command)
    ends.append([result.stderr, result.exit_code])
print(json.dumps(ends))
"""


def _path_env(tmp_path: Path, extra: dict[str, str]) -> dict[str, str]:
    """A user's environment (not the tests' KERAS_BACKEND), with a temporary folder of the
    fits' own, where no scratch folder may be left."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    return {**env, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path / "tmp"), **extra}


def _start(env: dict[str, str], cwd: Path, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nettrain", *map(str, args)], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # a group of its own, as in a terminal


def _checkpointed(run: Path) -> int:
    """The epochs in checkpoints/last.keras (written whole: os.replace)."""
    from nettrain.run.checkpoints import read_state

    last = run / "checkpoints" / "last.keras"
    return read_state(last).epoch if last.is_file() else 0


def _past(proc: subprocess.Popen, run: Path, epochs: int) -> list[int]:
    """Wait until this process has checkpointed an epoch past ``epochs``; return the
    processes it started (--processes), alive now."""
    for _ in range(12000):
        if _checkpointed(run) > epochs:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            return [int(pid) for pid in children.read_text().split()] \
                if children.exists() else []
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"no epoch past {epochs} was checkpointed")


def _ended(pids: list[int]) -> bool:
    """Whether the processes have all ended (a zombie has)."""
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat")
        with contextlib.suppress(OSError):
            if stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z":
                return False
    return True


def _stopped_cleanly(code: int | None, err: str, run: Path, tmp_path: Path) -> int:
    """A stop kept its promises: exit 130, one resume command, the run interrupted with the
    model of its last completed epoch saved, no scratch folder left. Returns its epochs."""
    said = " ".join(err.split())
    assert code == 130, err[-3000:]
    assert "Traceback" not in err and "Array has been deleted" not in err
    assert said.count("nettrain fit --resume") == 1, said[-3000:]  # process 0 speaks alone
    assert f"the model of the last one is saved. Continue with: nettrain fit --resume {run}" \
        in said, said[-3000:]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "interrupted" and record["saved"] == ["model.keras"]
    assert_identical(weights(run), weights(run, "checkpoints/last.keras"))
    assert not list((tmp_path / "tmp").glob("nettrain-process-*"))
    return record["epochs_completed"]


def test_a_second_stop_waits_for_the_save_of_the_first():
    """While a stopped run saves its last epoch, a second Ctrl-C (an impatient user) or the
    launcher's SIGTERM after the terminal's Ctrl-C is noted, not raised: the save is whole."""
    from nettrain.cli.common import _stop_cleanly_on_signals
    from nettrain.engine.signals import StopNotes

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    _stop_cleanly_on_signals()
    stops = StopNotes()
    try:
        try:
            with stops.held():
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGTERM)
                saved = True  # the signals' handlers ran above, at the next bytecode
        except KeyboardInterrupt:
            pytest.fail("a second stop cut the save of the first")
        assert saved and stops.noted == [signal.SIGINT, signal.SIGTERM]
        with pytest.raises(KeyboardInterrupt):  # outside, a stop stops
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    finally:
        stops.restore()
        for signum, handler in before.items():
            signal.signal(signum, handler)


@pytest.mark.parametrize("path", list(PATHS))
def test_every_stop_keeps_its_promises_on_each_path(runner, tmp_path, path):
    """kill -9, then Ctrl-C, then SIGTERM of one run, resumed each time, ends with the weights
    and history of an uninterrupted run, bit for bit; a NaN loss stops with its message and
    keeps the last good model. With --processes the signals go to the launcher, which its
    processes follow (before: kill -9 or SIGTERM of the launcher left them training)."""
    extra, overrides, several = PATHS[path]
    env = _path_env(tmp_path, extra)
    config = control_config(epochs=100000, batch_size=16, checkpoint_every_seconds=0)
    config["fit"]["callbacks"][0]["EarlyStopping"]["patience"] = 100000
    write_config(tmp_path / "c.yaml", config)
    run = tmp_path / "run"
    # kill -9: the run says running (nothing could mark it), its epochs are checkpointed; a
    # launcher's processes end with it, and process 0 stops the run cleanly
    proc = _start(env, tmp_path, "fit", "c.yaml", *overrides, *several, "--run-dir", run)
    workers = _past(proc, run, 0)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=300)  # with --processes: once process 0 has ended
    for _ in range(3000):
        if _ended(workers):
            break
        time.sleep(0.02)
    assert _ended(workers), "the launcher's processes trained on after it was killed"
    if several:
        done = _stopped_cleanly(130, err, run, tmp_path)
    else:
        assert json.loads((run / "run.json").read_text())["status"] == "running"
        listed = json.loads(runner.invoke(app, ["runs", str(tmp_path), "--json"]).stdout)
        assert [(r["status"], r["note"]) for r in listed] == [("stopped", (
            f"ended unmarked (killed?); to continue: nettrain fit --resume {run}"))], listed
        done = _checkpointed(run)
    # Ctrl-C in the terminal (to its process group), then SIGTERM: each resumed run stops
    # after an epoch, saved and marked, exit 130
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc = _start(env, tmp_path, "fit", "--resume", run, *several)
        _past(proc, run, done)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=300)
        done = _stopped_cleanly(proc.returncode, err, run, tmp_path)
    # the resumed run ends with the weights of an uninterrupted one; a NaN loss stops with its
    # message, keeping the last good epoch as the run's model
    write_config(tmp_path / "nan.yaml", nan_config())
    commands = [["fit", "--resume", str(run), f"fit.epochs={done + 1}", *several],
                ["fit", "c.yaml", *overrides, f"fit.epochs={done + 1}", *several, "--run-dir",
                 str(tmp_path / "full")],
                ["fit", "nan.yaml", *overrides, *several, "--run-dir", str(tmp_path / "nan")]]
    if several:  # three launchers at once
        procs = [_start(env, tmp_path, *command) for command in commands]
        ends = [(p.communicate(timeout=600)[1], p.returncode) for p in procs]
    elif path == "tensorflow":  # the tests' own backend: here, as the process below would
        ends = [(result.stderr, result.exit_code) for result in
                (runner.invoke(app, command) for command in commands)]
    else:  # one process (each start of a backend costs seconds) with the three commands
        helper = subprocess.run([sys.executable, "-c", COMMANDS, json.dumps(commands)],
                               cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=600, check=False)
        assert helper.returncode == 0, helper.stderr[-3000:]
        ends = json.loads(helper.stdout.splitlines()[-1])
    (resumed, code_resumed), (full, code_full), (nan, code_nan) = ends
    assert code_resumed == 0 and code_full == 0, resumed + full
    assert_identical(weights(tmp_path / "full"), weights(run))
    assert (tmp_path / "full" / "history.csv").read_text() == (run / "history.csv").read_text()
    said = " ".join(nan.split())
    assert code_nan == 1, nan[-3000:]
    assert said.count("the loss became NaN or infinite in epoch 2") == 1, said
    assert "the last good checkpoint is from epoch 1" in said
    assert "keeps the history, the last good checkpoint (checkpoints/last.keras) and its " \
        "model (model.keras)" in said, said
    record = json.loads((tmp_path / "nan" / "run.json").read_text())
    assert record["status"] == "failed" and "epoch 2" in record["error"]
    assert record["saved"] == ["model.keras"]
    assert_identical(weights(tmp_path / "nan"), weights(tmp_path / "nan",
                                                         "checkpoints/last.keras"))
    assert all(np.isfinite(w).all() for w in weights(tmp_path / "nan"))
    assert not list((tmp_path / "tmp").glob("nettrain-process-*"))
