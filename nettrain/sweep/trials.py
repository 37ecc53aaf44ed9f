"""A sweep's trials: each drawn, trained as a normal run in ``trial-NNNN``, counted or drawn
again, by workers that take them from the study until it has enough.

A trial's life: a worker holding the claim lock sees that the study needs another trial and
asks Optuna for one (a waiting one first: the values of an interrupted trial); the worker
trains it in a fresh process of its own (:func:`train_in_child`, ``python -m nettrain.sweep
... --trial ID``: no trial's graphs or datasets stay in the worker, whose memory stays flat
over any number of trials) and Optuna writes its heartbeat meanwhile; it ends counted (complete, pruned, or failed for a reason of
its own) or interrupted, and an interrupted one is failed and drawn again
(:func:`nettrain.sweep.study.draw_again`): on Ctrl-C by its worker, when its worker on this
machine has ended by the next worker that looks (:func:`fail_interrupted`), and when its
worker on any machine wrote no heartbeat for the grace period by Optuna's
``fail_stale_trials``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nettrain.config.schema import Config
from nettrain.errors import ConfigError, NettrainError
from nettrain.run import directory as rundir
from nettrain.run.record import RunRecord
from nettrain.sweep.space import metric_value, trial_config
from nettrain.sweep.spec import CLAIM, HOST, LOGS, STORAGE_ENV, Sweep, grace_period
from nettrain.sweep.study import draw_again, load_study
from nettrain.tracking.sweeps import trial_ended, trial_logger

if TYPE_CHECKING:
    pass


# ----------------------------------------------------------------------------- trials


def counted(trial: Any) -> bool:
    """Whether a finished trial counts towards the sweep's trials: completed, pruned, or
    failed for a reason of its own (user attribute ``failure``). An interrupted one is
    drawn again instead."""
    from optuna.trial import TrialState

    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        trial.state == TrialState.FAIL and "failure" in trial.user_attrs)


def _process() -> str:
    """This process as ``host:pid:start``; the start time tells a reused pid apart."""
    return f"{HOST}:{os.getpid()}:{_start_time(os.getpid())}"


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _gone(process: str) -> bool:
    """Whether ``host:pid:start`` is a process of this machine that has ended (a live pid
    with another start time is another process that reuses the pid)."""
    pid, _, start = process.partition(":")[2].partition(":")
    if not _here(process) or not pid.isdigit():
        return False  # another machine's: its heartbeat tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return bool(start) and _start_time(int(pid)) != start


def _here(process: str) -> bool:
    return process.partition(":")[0] == HOST


def fail_interrupted(study: Any) -> None:
    """Fail each running trial whose worker is gone, and draw its values again: on this
    machine a worker whose process has ended (at once), on any machine one that wrote no
    heartbeat for the grace period (Optuna's ``fail_stale_trials``). A trial that another
    worker failed first is left to it."""
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        process = trial.user_attrs.get("process")
        if not process or not _gone(process):
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, "interrupted",
                                        "its process ended while it trained")
            marked = storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker marked it first
            continue
        if marked:
            draw_again(study, storage.get_trial(trial._trial_id))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # drawn again by the storage's callback


class TrialFailed(Exception):
    """A trial failed for a reason of its own (recorded as its user attribute ``failure``)."""


def pruning_callback(trial: Any, metric: str) -> Any:
    """A Keras callback that reports ``metric`` to Optuna after each epoch and, when the
    pruner says so, stops the training cleanly (``model.stop_training``): the trial's run
    directory is then a whole run that stopped early, and ``pruned_after`` says when.

    (optuna-integration's KerasPruningCallback raises TrialPruned inside ``model.fit``, which
    a nettrain run records as a failed training, with no saved model.)
    """
    import keras

    class Pruning(keras.callbacks.Callback):
        pruned_after: int | None = None

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            value = (logs or {}).get(metric)
            if value is None or not math.isfinite(float(value)):
                return  # a NaN loss is nettrain's to stop
            trial.report(float(value), step=epoch + 1)
            if trial.should_prune():
                self.pruned_after = epoch + 1
                self.model.stop_training = True

    return Pruning()


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[Any]:
    """Send what a trial prints (Keras's lines, fit's notes) to a log file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", buffering=1) as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        yield log


def run_trial(sweep: Sweep, trial: Any) -> float:
    """Train one trial: draw its values, fit its config in ``trial-NNNN``, return its metric.

    Raises TrialFailed (recorded, counted), optuna.TrialPruned, or KeyboardInterrupt (the
    trial is marked interrupted and its values queued to be drawn again).
    """
    import keras
    import optuna

    from nettrain.engine.signals import StopNotes

    values = {p.key: p.suggest(trial) for p in sweep.params}
    path = sweep.path / f"trial-{trial.number:04d}"
    trial.set_user_attr("run", path.name)
    log = sweep.path / LOGS / f"{path.name}.log"
    pruning = pruning_callback(trial, sweep.metric) if sweep.pruning and \
        not sweep.metric.startswith("test_") else None
    # A Ctrl-C raised while the garbage collector runs (clear_session below, TensorFlow's
    # finalizers) is printed and lost, and one raised in TensorFlow's C++ code can come out
    # as another error: each is noted, and stops the sweep all the same.
    stops = StopNotes()
    logger = None  # the trial's MLflow run, with tracking: (a child of the sweep's)
    try:
        try:
            with _output_to(log) as out:
                config = trial_config(sweep.config, values)
                logger = trial_logger(config, trial.number, _echo_to(log))
                keras.utils.clear_session(free_memory=True)  # one trial's graphs, not the next's
                stops.check()
                train_fit(config, path, out, pruning, logger)
                stops.check()
            metrics = rundir.read_json(path / rundir.METRICS)
        except Exception:
            if stops.noted:
                raise KeyboardInterrupt from None
            raise
    except KeyboardInterrupt:
        trial_ended(logger, path, "interrupted", status="KILLED")
        trial.set_user_attr("interrupted", "Ctrl-C")
        draw_again(trial.study, trial)
        raise
    except ConfigError as exc:
        trial_ended(logger, path, "failed", status="FAILED")
        _failed(trial, f"config: {_one_line(exc)}")
    except NettrainError as exc:
        trial_ended(logger, path, "failed", status="FAILED")
        _failed(trial, _one_line(exc))
    except Exception as exc:  # a bug or the machine: recorded, the sweep goes on
        trial_ended(logger, path, "failed", status="FAILED")
        _failed(trial, f"{type(exc).__name__}: {_one_line(exc)}")
    finally:
        stops.restore()
    value = metric_value(metrics, sweep.metric)
    if value is None or not math.isfinite(value):
        trial_ended(logger, path, "failed", status="FAILED")
        _failed(trial, f"{sweep.metric} is {value} in {path.name}/{rundir.METRICS}")
    trial.set_user_attr("value", value)
    epochs = RunRecord(path).read().get("epochs_completed")
    trial.set_user_attr("epochs", epochs)
    try:  # under the run's lock: never written past a process that trains it now
        RunRecord(path).annotate(sweep={
            "study": sweep.study, "trial": trial.number, "metric": sweep.metric,
            "value": value, "pruned_after_epoch": pruning.pruned_after if pruning else None})
    except NettrainError as exc:
        _failed(trial, _one_line(exc))
    pruned_after = pruning.pruned_after if pruning is not None else None
    trial_ended(logger, path, "complete" if pruned_after is None else "pruned", pruned_after)
    if pruned_after is not None:
        trial.set_user_attr("pruned_after", pruned_after)
        raise optuna.TrialPruned(f"pruned after epoch {pruned_after}")
    return value


# A trial process's exit status for each end (an interrupted one exits 130, as on Ctrl-C).
PRUNED, FAILED, INTERRUPTED = 3, 4, 130


def worker_command(sweep: Sweep, *extra: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of ``python -m nettrain.sweep`` for this sweep, run
    by this nettrain (installed or not): a worker, or with ``--trial ID`` one trial."""
    command = [sys.executable, "-m", "nettrain.sweep", str(sweep.path), "--study", sweep.study,
               "--trials", str(sweep.trials), "--metric", sweep.metric, "--direction",
               sweep.direction, "--parent", str(os.getpid()), *extra]
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return command, {**os.environ, STORAGE_ENV: sweep.storage,
                     "PYTHONPATH": os.pathsep.join(paths)}


@contextlib.contextmanager
def _ctrl_c_held() -> Any:
    """SIGINT held back for the block and delivered after it (KeyboardInterrupt then)."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


class Spare:
    """The next trial's process, started while this one trains, so that its imports
    (TensorFlow's take seconds) overlap the training instead of adding to it.

    It imports what a trial needs and waits for its trial on stdin (``python -m
    nettrain.sweep ... --spare``); it has trained nothing, so each trial is still trained in a
    fresh process. One that died meanwhile is replaced by one started then.
    """

    def __init__(self, sweep: Sweep) -> None:
        self.sweep = sweep
        self.child: subprocess.Popen | None = None

    def start(self) -> None:
        if self.child is None:
            command, env = worker_command(self.sweep, "--spare")
            self.child = subprocess.Popen(command, stdin=subprocess.PIPE,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          env=env, start_new_session=True, text=True)

    def take(self, trial_id: int, log: Path) -> subprocess.Popen | None:
        """Hand ``trial_id`` (its output going to ``log``) to the waiting process; None when
        there is none or it has ended."""
        child, self.child = self.child, None
        if child is None or child.poll() is not None:
            return None
        try:
            child.stdin.write(f"{trial_id}\n{log}\n")
            child.stdin.close()
        except OSError:  # it ended just now
            child.wait()
            return None
        return child

    def close(self) -> None:
        child, self.child = self.child, None
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()  # it holds nothing: it has not begun a trial
            child.wait()


def train_in_child(sweep: Sweep, trial: Any, spare: Spare | None = None,
                   another: bool = True) -> float:
    """Train ``trial`` in a fresh process (:func:`run_trial` there) and return its metric, so
    that nothing a trial builds stays in this worker. Raises as :func:`run_trial` does.

    Its values are drawn here first (the child draws the same ones), so a Ctrl-C before the
    child has started still leaves them to be drawn again. The child runs in a session of
    its own: a Ctrl-C at the terminal reaches it once, forwarded from here, and it stops
    cleanly; one that dies (killed, out of memory) fails its trial with the reason. With
    ``spare``, the trial goes to its waiting process, and another is started for the next
    unless ``another`` is false (the sweep's last trial: a spare would import for nothing).
    """
    import optuna

    for param in sweep.params:
        param.suggest(trial)
    name = f"trial-{trial.number:04d}"
    command, env = worker_command(sweep, "--trial", str(trial._trial_id))
    log_path = sweep.path / LOGS / f"{name}.log"
    child = None
    try:
        child = spare.take(trial._trial_id, log_path) if spare is not None else None
        if child is None:
            # Ctrl-C held while the child starts: one landing inside Popen would leave it
            # running in its own session, unknown here and never told to stop
            with open(log_path, "a", encoding="utf-8") as log, _ctrl_c_held():
                child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, env=env, start_new_session=True)
        if spare is not None and another:
            spare.start()  # the next trial's, importing while this one trains
        code = child.wait()
    except KeyboardInterrupt:  # also one before the child started
        code = INTERRUPTED
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGINT)
            try:
                child.wait()  # its clean stop: the run records the interruption
            except KeyboardInterrupt:  # a second Ctrl-C: stop now
                child.kill()
                child.wait()
    attrs = trial.study._storage.get_trial(trial._trial_id).user_attrs
    if code in (INTERRUPTED, -signal.SIGINT):
        if "interrupted" not in attrs:  # stopped before its run began
            trial.set_user_attr("interrupted", "Ctrl-C")
            draw_again(trial.study, trial)
        raise KeyboardInterrupt
    if code == 0 and "value" in attrs:
        return attrs["value"]
    if code == PRUNED:
        raise optuna.TrialPruned(f"pruned after epoch {attrs.get('pruned_after')}")
    if code == FAILED and "failure" in attrs:
        raise TrialFailed(attrs["failure"])
    ended = f"was killed by signal {-code}" if code < 0 else f"ended with exit status {code}"
    _failed(trial, f"its process {ended}; see {LOGS}/{name}.log")
    raise AssertionError  # _failed raised


def train_fit(config: Config, path: Path, out: Any, pruning: Any, logger: Any = None) -> Path:
    """Fit the trial's config in ``path``, with the pruning callback and the MLflow logger's
    (each optional)."""
    from nettrain.engine import train

    extra = tuple(c for c in (pruning, logger.callback() if logger else None) if c is not None)
    return train.fit(config, path, echo=lambda text: print(text, file=out),
                     extra_callbacks=extra, started=logger.started if logger else None)


def _echo_to(log: Path) -> Any:
    """An echo that appends a line to the trial's log (which outlives the redirect)."""
    def echo(text: str) -> None:
        with open(log, "a", encoding="utf-8") as f:
            print(text, file=f)
    return echo


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _failed(trial: Any, reason: str) -> None:
    trial.set_user_attr("failure", reason)
    raise TrialFailed(reason)


def work(sweep: Sweep, storage: Any, stop: threading.Event | None = None) -> None:
    """Take trials from the study and train them until it has ``sweep.trials`` (counted,
    or running elsewhere), ``stop`` is set, or a Ctrl-C (KeyboardInterrupt) comes.

    When the only trials left run on other machines, wait for them, up to the grace period
    and a heartbeat more: one whose machine died meanwhile is then failed and drawn again
    here, so the same command finishes the sweep. (A trial of a live process of this
    machine, another ``nettrain sweep``, is left to it.) RunError when the database goes
    away (:func:`nettrain.sweep.storage.lost`).
    """
    from nettrain.sweep.storage import lost

    try:
        _work(sweep, storage, stop)
    except Exception as exc:
        gone = lost(exc, sweep.storage)
        if gone is None:
            raise
        raise gone from None


def _work(sweep: Sweep, storage: Any, stop: threading.Event | None) -> None:
    import optuna
    from optuna.trial import TrialState

    from nettrain.sweep.storage import StudyLock

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the sweep's table says it all
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # its notes would cut the table
    study = load_study(sweep, storage, create=False)
    claim = StudyLock(sweep.storage, sweep.study, sweep.path / CLAIM)
    grace, interval = grace_period()
    waiting_since: float | None = None
    spare = Spare(sweep)
    another = True  # whether the study may want a trial after this one

    def objective(trial: Any) -> float:
        claim.release()  # the trial exists (RUNNING): the next worker counts it
        trial.set_user_attr("process", _process())  # this worker: its heartbeat and liveness
        return train_in_child(sweep, trial, spare, another)

    try:
        while stop is None or not stop.is_set():
            claim.take()
            fail_interrupted(study)
            trials = study.get_trials(deepcopy=False)
            running = [t for t in trials if t.state == TrialState.RUNNING]
            done = sum(map(counted, trials))
            if done + len(running) < sweep.trials:
                waiting_since = None
                another = done + len(running) + 1 < sweep.trials
                study.optimize(objective, n_trials=1, catch=(TrialFailed,),
                               gc_after_trial=True)
                claim.release()
                continue
            claim.release()
            elsewhere = [t for t in running if not _here(t.user_attrs.get("process", ""))]
            if done >= sweep.trials or not elsewhere:
                return
            waiting_since = waiting_since or time.monotonic()
            if time.monotonic() - waiting_since > grace + interval:
                return  # alive: their machines finish them
            if stop is not None:
                stop.wait(min(interval, 5))
            else:
                time.sleep(min(interval, 5))
    finally:
        spare.close()
        claim.close()
