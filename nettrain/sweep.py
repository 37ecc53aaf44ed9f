"""``nettrain sweep``: a hyperparameter search over a config's ``sweep:`` section, with Optuna.

A sweep has a directory (``runs/<study>-sweep`` or ``--run-dir``) holding ``sweep.yaml`` (the
base config), one normal run directory per trial (``trial-0003``, whose ``config.yaml``
repeats the trial with ``nettrain fit``), ``logs/`` (what each trial and worker printed),
``best.yaml`` and the plots. The trials live in Optuna's storage: by default ``sweep.db``, a
SQLite file in the directory; any SQLAlchemy URL (``postgresql+psycopg://user@host/db``)
shares one study between machines.

Running the same command again continues the study: the sweep has its ``trials`` when that
many trials finished (completed, pruned, or failed for a reason of their own, such as a NaN
loss or a drawn combination the config refuses). A trial that was interrupted (Ctrl-C, its
process killed, its machine silent past the heartbeat's grace period) is marked failed, is
not counted, and its values are drawn again by a new trial. ``--jobs N`` runs N workers on
this machine: this process and N-1 more (``python -m nettrain.sweep``), each with its own
TensorFlow, all taking trials from the one study; a lock (a file in the sweep directory; on
PostgreSQL the database's own, shared by every machine) lets one worker at a time decide
whether another trial is needed, so workers never run more trials than asked.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nettrain import rundir
from nettrain.config import NAME_PATTERN, Config, load_config, yaml_load
from nettrain.errors import ConfigError, NettrainError, UsageError
from nettrain.sweep_space import Param, grid_size, metric_value, space, trial_config

if TYPE_CHECKING:
    import optuna

# Files of a sweep directory.
SWEEP_CONFIG = "sweep.yaml"
SWEEP_FILE = "sweep.json"   # which study of which storage (no password) the directory holds
DATABASE = "sweep.db"
BEST = "best.yaml"
LOGS = "logs"
CLAIM = ".claim.lock"
PLOTS = {"history": "optimization_history.png", "importances": "param_importances.png",
         "parallel": "parallel_coordinate.png"}
# The storage URL goes to worker processes in the environment, never into a file (it may
# hold a password).
STORAGE_ENV = "NETTRAIN_SWEEP_STORAGE"
# Heartbeats: a trial whose worker wrote none for GRACE seconds is failed and drawn again
# (another machine died). Local dead workers are found at once by their process id.
HEARTBEAT, GRACE = 30, 120
# SQLite: how long a writer waits for another's lock before failing.
SQLITE_TIMEOUT = 120
HOST = socket.gethostname()


@dataclass
class Sweep:
    """What a sweep is: its config, where it lives, and what it optimizes."""

    config: Config          # the base config, with its sweep section
    path: Path              # the sweep directory
    storage: str            # the storage URL
    study: str              # the study's name
    trials: int             # how many trials the sweep should have
    metric: str
    direction: str          # maximize or minimize
    params: list[Param] = field(default_factory=list)

    @property
    def pruning(self) -> bool:
        return self.config.sweep.pruner != "none"


def default_dir(study: str) -> Path:
    """``runs/<study>-sweep`` (under $NETTRAIN_RUNS): the same command finds the same sweep."""
    return rundir.runs_root() / f"{study}-sweep"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{(path / DATABASE).absolute()}"


def shown_url(url: str) -> str:
    """The storage URL without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL: it is shown as given, and refused by open_storage
        return url


def open_storage(url: str) -> Any:
    """Optuna's RDBStorage on ``url`` (any SQLAlchemy URL), with heartbeats; a SQLite file
    waits up to SQLITE_TIMEOUT seconds for another writer. Errors: see
    :func:`nettrain.sweep_storage.open_storage`."""
    import optuna

    from nettrain import sweep_storage

    engine = {"connect_args": {"timeout": SQLITE_TIMEOUT}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return sweep_storage.open_storage(
            url, engine, heartbeat_interval=HEARTBEAT, grace_period=GRACE,
            heartbeat_stale_trial_callback=_draw_again)


def _samplers(sweep: Sweep) -> tuple[Any, Any]:
    import optuna

    settings = sweep.config.sweep
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if settings.sampler == "grid":
            sampler = optuna.samplers.GridSampler({p.name: p.grid() for p in sweep.params})
        elif settings.sampler == "random":
            sampler = optuna.samplers.RandomSampler()
        else:  # constant_liar: parallel workers do not all draw next to the same good point
            sampler = optuna.samplers.TPESampler(constant_liar=True)
        pruner = {"none": optuna.pruners.NopPruner(),
                  "median": optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
                  "hyperband": optuna.pruners.HyperbandPruner(
                      min_resource=1, max_resource=sweep.config.fit.epochs)}[settings.pruner]
    return sampler, pruner


def _identity(config: Config) -> str:
    """The config as a study records it: all of it but the number of trials (which a later
    command may raise)."""
    data = yaml_load(config.to_yaml())
    data.get("sweep", {}).pop("trials", None)
    import yaml

    return yaml.safe_dump(data, sort_keys=True)


def load_study(sweep: Sweep, storage: Any, create: bool) -> optuna.Study:
    """Create the sweep's study, or load it and check that it searches the same config."""
    import optuna

    sampler, pruner = _samplers(sweep)
    try:
        if create:
            study = optuna.create_study(storage=storage, study_name=sweep.study,
                                        direction=sweep.direction, sampler=sampler,
                                        pruner=pruner, load_if_exists=True)
        else:
            study = optuna.load_study(storage=storage, study_name=sweep.study,
                                      sampler=sampler, pruner=pruner)
    except KeyError:
        raise UsageError(f"--study {sweep.study}: no such study in "
                         f"{shown_url(sweep.storage)}.") from None
    identity = _identity(sweep.config)
    recorded = study.user_attrs.get("config")
    if recorded is None:
        study.set_user_attr("config", identity)
        study.set_user_attr("metric", sweep.metric)
    elif recorded != identity:
        changed = _differences(yaml_load(recorded), yaml_load(identity))
        raise UsageError(
            f"--study {sweep.study} ({shown_url(sweep.storage)}) searches another config: "
            f"{', '.join(changed[:5]) or 'its keys'} differ. Its trials would not be "
            f"comparable. Start a new sweep with --study NEW_NAME (and --run-dir), or run "
            f"the config it was started with.")
    return study


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in dict.fromkeys([*a, *b])
                for d in _differences(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))]
    return [] if a == b else [path or "the config"]


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
    """Whether ``host:pid:start`` is a process of this machine that has ended."""
    host, _, rest = process.partition(":")
    pid, _, start = rest.partition(":")
    if host != HOST or not pid.isdigit():
        return False  # another machine's: its heartbeat tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return bool(start) and _start_time(int(pid)) != start


def _draw_again(study: Any, trial: Any) -> None:
    """Queue a new trial with the values of an interrupted one (partial values are drawn)."""
    study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number},
                        skip_if_exists=False)


def fail_gone(study: Any, storage: Any) -> None:
    """Mark failed (interrupted) each running trial whose process on this machine has ended,
    and draw its values again; one that another worker marked first is left to it."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        process = trial.user_attrs.get("process")
        if not process or not _gone(process):
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, "interrupted",
                                        "its process ended while it trained")
            marked = storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except Exception:  # another worker marked it first (UpdateFinishedTrialError)
            continue
        if marked:
            _draw_again(study, trial)


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

    from nettrain.train import StopNotes

    trial.set_user_attr("process", _process())
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
    try:
        try:
            with _output_to(log) as out:
                config = trial_config(sweep.config, values)
                keras.utils.clear_session(free_memory=True)  # one trial's graphs, not the next's
                stops.check()
                train_fit(config, path, out, pruning)
                stops.check()
            metrics = rundir.read_json(path / rundir.METRICS)
        except Exception:
            if stops.noted:
                raise KeyboardInterrupt from None
            raise
    except KeyboardInterrupt:
        trial.set_user_attr("interrupted", "Ctrl-C")
        _draw_again(trial.study, trial)
        raise
    except ConfigError as exc:
        _failed(trial, f"config: {_one_line(exc)}")
    except NettrainError as exc:
        _failed(trial, _one_line(exc))
    except Exception as exc:  # a bug or the machine: recorded, the sweep goes on
        _failed(trial, f"{type(exc).__name__}: {_one_line(exc)}")
    finally:
        stops.restore()
    value = metric_value(metrics, sweep.metric)
    if value is None or not math.isfinite(value):
        _failed(trial, f"{sweep.metric} is {value} in {path.name}/{rundir.METRICS}")
    trial.set_user_attr("value", value)
    epochs = rundir.read_json(path / rundir.RUN).get("epochs_completed")
    trial.set_user_attr("epochs", epochs)
    rundir.update_json(path / rundir.RUN, sweep={
        "study": sweep.study, "trial": trial.number, "metric": sweep.metric, "value": value,
        "pruned_after_epoch": pruning.pruned_after if pruning else None})
    if pruning is not None and pruning.pruned_after is not None:
        trial.set_user_attr("pruned_after", pruning.pruned_after)
        raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_after}")
    return value


def train_fit(config: Config, path: Path, out: Any, pruning: Any) -> Path:
    from nettrain import train

    return train.fit(config, path, echo=lambda text: print(text, file=out),
                     extra_callbacks=(pruning,) if pruning is not None else ())


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _failed(trial: Any, reason: str) -> None:
    trial.set_user_attr("failure", reason)
    raise TrialFailed(reason)


def work(sweep: Sweep, storage: Any, stop: threading.Event | None = None) -> None:
    """Take trials from the study and train them until it has ``sweep.trials`` (counted,
    or running elsewhere), ``stop`` is set, or a Ctrl-C (KeyboardInterrupt) comes."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the sweep's table says it all
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # its notes would cut the table
    study = load_study(sweep, storage, create=False)
    from nettrain.sweep_storage import StudyLock

    claim = StudyLock(sweep.storage, sweep.study, sweep.path / CLAIM)

    def objective(trial: Any) -> float:
        claim.release()  # the trial exists (RUNNING): the next worker counts it
        return run_trial(sweep, trial)

    try:
        while stop is None or not stop.is_set():
            claim.take()
            fail_gone(study, storage)
            trials = study.get_trials(deepcopy=False)
            running = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
            if sum(map(counted, trials)) + running >= sweep.trials:
                return
            study.optimize(objective, n_trials=1, catch=(TrialFailed,), gc_after_trial=True)
            claim.release()
    finally:
        claim.close()


# ----------------------------------------------------------------------------- the command


def prepare(config: Config, source: str, path: Path | None = None, storage: str | None = None,
            study: str | None = None, trials: int | None = None) -> Sweep:
    """The sweep of a config: its directory, storage URL, study name and number of trials.

    Nothing is written, nothing loads Keras. UsageError for a config without a sweep
    section, a study name that cannot name a directory, or a ``--run-dir`` that holds files
    but not this sweep. The metric and its direction are set by :func:`check`.
    """
    settings = config.sweep
    if settings is None:
        raise UsageError(f"{source}: expected a sweep: section that names what to search, "
                         "e.g. sweep: {metric: val_accuracy, params: "
                         "{compile.optimizer.Adam.learning_rate: {log_uniform: [1.0e-4, "
                         "1.0e-1]}}}")
    if study is not None and not re.match(NAME_PATTERN, study):
        raise UsageError(f"--study {study!r}: expected a name of letters, digits, '.', '_' and "
                         "'-' (it names the sweep directory).")
    name = study or config.name
    path = Path(path) if path is not None else default_dir(name)
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and
                                                 not (path / SWEEP_CONFIG).is_file())):
        raise UsageError(f"--run-dir {path}: expected a new directory or a sweep directory "
                         f"(with {SWEEP_CONFIG}); it holds other files, which are left "
                         "untouched. Choose another directory.")
    where = {"study": name, "storage": shown_url(storage) if storage else DATABASE}
    if (path / SWEEP_FILE).is_file():  # trial directories are named by the study's numbers
        recorded = rundir.read_json(path / SWEEP_FILE)
        if recorded != where:
            raise UsageError(
                f"--run-dir {path}: it holds the sweep of study {recorded.get('study')} in "
                f"{recorded.get('storage')}, not of study {name} in {where['storage']}; their "
                "trial directories would collide. Give each study a directory of its own.")
    params = space(config)
    total = trials or settings.trials
    if settings.sampler == "grid":
        total = min(total, grid_size(params))
    return Sweep(config, path.absolute(), storage or sqlite_url(path.absolute()), name, total,
                 settings.metric or "", settings.direction, params)


def check(sweep: Sweep) -> None:
    """Check the search space and the metric before any trial (loads Keras, the data and the
    base model); set the metric and its direction. ConfigError names the sweep's keys."""
    from nettrain import train
    from nettrain.sweep_space import check_metric, check_space

    check_space(sweep.config)
    prepared = train.prepare(sweep.config)
    sweep.metric, sweep.direction = check_metric(sweep.config, prepared.model, prepared.data)


def run(sweep: Sweep, jobs: int = 1, echo: Any = print, console: Any = None) -> optuna.Study:
    """Run the sweep here with ``jobs`` workers; show the trials as they go; return the study.

    This process is the first worker; ``jobs - 1`` more are started as
    ``python -m nettrain.sweep``. On Ctrl-C every worker stops (each marks its trial
    interrupted) and KeyboardInterrupt is raised once all have ended.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the sweep's table says it all
    echo(f"Sweep directory: {sweep.path}")
    # A --storage that cannot be opened leaves no sweep directory behind (the default one,
    # a SQLite file, is in the directory).
    given = sweep.storage != sqlite_url(sweep.path)
    storage = open_storage(sweep.storage) if given else None
    sweep.path.mkdir(parents=True, exist_ok=True)
    (sweep.path / LOGS).mkdir(exist_ok=True)
    storage = storage or open_storage(sweep.storage)
    study = load_study(sweep, storage, create=True)
    rundir.write_atomic(sweep.path / SWEEP_CONFIG, sweep.config.to_yaml())
    default = sweep.storage == sqlite_url(sweep.path)  # the directory may move
    rundir.write_json(sweep.path / SWEEP_FILE, {
        "study": sweep.study, "storage": DATABASE if default else shown_url(sweep.storage)})
    asked = sweep.config.sweep.trials
    echo(f"Study {sweep.study} in {shown_url(sweep.storage)}: {sweep.trials} trials of "
         f"{', '.join(p.name for p in sweep.params)}, {sweep.direction} {sweep.metric}, "
         f"{jobs} at once" + (f" (the grid has {sweep.trials} combinations)"
                              if sweep.trials < asked else ""))
    before = sum(map(counted, study.get_trials(deepcopy=False)))
    if before:
        echo(f"Continuing study {sweep.study}: {before} of {sweep.trials} trials finished.")
    workers = [_start_worker(sweep, i) for i in range(1, jobs)]
    display = Display(sweep, console)
    display.start()
    try:
        work(sweep, storage)
        for worker in workers:
            worker.wait()
    except KeyboardInterrupt:
        echo(f"Interrupted: the finished trials are kept in {shown_url(sweep.storage)}. "
             "Continue with the same command.")
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                worker.send_signal(signal.SIGINT)
        for worker in workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
        raise
    finally:
        display.stop()
    for i, worker in enumerate(workers, 1):
        if worker.returncode not in (0, None):
            echo(f"Worker {i} ended with exit status {worker.returncode}; see "
                 f"{sweep.path / LOGS / f'worker-{i}.log'}")
    return study


def _start_worker(sweep: Sweep, number: int) -> subprocess.Popen:
    """Start worker ``number`` as ``python -m nettrain.sweep``, its output in logs/.

    It runs in a session of its own, so a Ctrl-C at the terminal reaches it once, forwarded
    by this process (a second one would cut its clean stop short).
    """
    log = open(sweep.path / LOGS / f"worker-{number}.log", "a", encoding="utf-8")
    command = [sys.executable, "-m", "nettrain.sweep", str(sweep.path), "--study", sweep.study,
               "--trials", str(sweep.trials), "--metric", sweep.metric, "--direction",
               sweep.direction, "--parent", str(os.getpid())]
    root = str(Path(__file__).resolve().parents[1])  # this nettrain, installed or not
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, STORAGE_ENV: sweep.storage, "PYTHONPATH": os.pathsep.join(paths)}
    with log:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=env, start_new_session=True)


class Display:
    """The trials as they go, read from the storage once a second: a live table on a
    terminal, else one line per finished trial. Runs in a thread of its own."""

    def __init__(self, sweep: Sweep, console: Any) -> None:
        from nettrain import sweep_report

        self.sweep, self.console, self.report = sweep, console, sweep_report
        self.shown: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.live: Any = None

    def start(self) -> None:
        import optuna

        self.study = optuna.load_study(study_name=self.sweep.study,
                                       storage=open_storage(self.sweep.storage))
        self.shown = {t.number for t in self.study.get_trials(deepcopy=False)
                      if t.state.is_finished()}
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(console=self.console, auto_refresh=False, redirect_stdout=False,
                             redirect_stderr=False, transient=True)  # the final table stays
            self.live.start()
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            with contextlib.suppress(Exception):  # a busy database: try again next second
                self.refresh()

    def refresh(self) -> None:
        trials = self.study.get_trials(deepcopy=False)
        if self.live is not None:
            self.live.update(self.report.table(self.sweep, trials, live=True), refresh=True)
            return
        for trial in trials:
            if trial.state.is_finished() and trial.number not in self.shown:
                self.shown.add(trial.number)
                self.console.print(self.report.line(self.sweep, trial), highlight=False,
                                   markup=False, soft_wrap=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with contextlib.suppress(Exception):
            self.refresh()
        if self.live is not None:
            self.live.stop()


def _worker_main(argv: list[str]) -> int:
    """``python -m nettrain.sweep SWEEP_DIR --study ... --parent PID``: one more worker of a
    sweep that ``nettrain sweep`` started (exit 130 on Ctrl-C, 1 on a failure)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m nettrain.sweep")
    parser.add_argument("path", type=Path)
    for option in ("--study", "--metric", "--direction"):
        parser.add_argument(option, required=True)
    parser.add_argument("--trials", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    stop = threading.Event()

    def watch_parent() -> None:  # nettrain sweep was killed: take no new trial
        while not stop.wait(2.0):
            if os.getppid() != args.parent:
                stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    config = load_config(args.path / SWEEP_CONFIG)
    sweep = Sweep(config, args.path, os.environ[STORAGE_ENV], args.study, args.trials,
                  args.metric, args.direction, space(config))
    try:
        work(sweep, open_storage(sweep.storage), stop)
    except KeyboardInterrupt:
        return 130
    except NettrainError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(_worker_main(sys.argv[1:]))
