"""``nettrain sweep``: prepare and check a sweep, run it with N workers on this machine, and
show the trials as they finish.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nettrain.config.schema import NAME_PATTERN, Config
from nettrain.errors import UsageError
from nettrain.run import directory as rundir
from nettrain.sweep.space import grid_size, space
from nettrain.sweep.spec import (
    DATABASE,
    LOGS,
    SWEEP_CONFIG,
    SWEEP_FILE,
    Sweep,
    default_dir,
    grace_period,
    is_default_storage,
    sqlite_url,
)
from nettrain.sweep.study import load_study, open_storage
from nettrain.sweep.trials import counted, work, worker_command
from nettrain.text import redacted

if TYPE_CHECKING:
    import optuna


# ----------------------------------------------------------------------------- the command


def prepare(config: Config, source: str, path: Path | None = None, storage: str | None = None,
            study: str | None = None, trials: int | None = None) -> Sweep:
    """The sweep of a config: its directory, storage URL, study name and number of trials.

    Nothing is written, nothing loads Keras. UsageError for a config without a sweep
    section, a study name that cannot name a directory, a ``--run-dir`` that holds files
    but not this sweep, or a wrong $NETTRAIN_SWEEP_GRACE. A ``--storage`` naming the
    directory's own sweep.db is the default storage. The metric and its direction are set by :func:`check`.
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
    if storage is not None and is_default_storage(storage, path):
        storage = None  # the directory's own sweep.db: the sweep without --storage
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and
                                                 not (path / SWEEP_CONFIG).is_file())):
        raise UsageError(f"--run-dir {path}: expected a new directory or a sweep directory "
                         f"(with {SWEEP_CONFIG}); it holds other files, which are left "
                         "untouched. Choose another directory.")
    where = {"study": name, "storage": redacted(storage) if storage else DATABASE}
    if (path / SWEEP_FILE).is_file():  # trial directories are named by the study's numbers
        recorded = rundir.read_json(path / SWEEP_FILE)
        if recorded != where:
            raise UsageError(
                f"--run-dir {path}: it holds the sweep of study {recorded.get('study')} in "
                f"{recorded.get('storage')}, not of study {name} in {where['storage']}; their "
                "trial directories would collide. Give each study a directory of its own.")
    grace_period()  # a wrong $NETTRAIN_SWEEP_GRACE is refused before anything loads
    params = space(config)
    total = trials or settings.trials
    grid = grid_size(params) if settings.sampler == "grid" else None
    if grid is not None and grid < total:
        total = grid
    else:
        grid = None
    return Sweep(config, path.absolute(), storage or sqlite_url(path.absolute()), name, total,
                 settings.metric or "", settings.direction, params, grid)


def check(sweep: Sweep) -> None:
    """Check the search space and the metric before any trial (loads Keras, the data and the
    base model); set the metric and its direction. ConfigError names the sweep's keys."""
    from nettrain.engine import train
    from nettrain.sweep.space import check_metric, check_space

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
    # A --storage that cannot be opened leaves no sweep directory behind (the default one,
    # a SQLite file, is in the directory).
    default = is_default_storage(sweep.storage, sweep.path)
    storage = None if default else open_storage(sweep.storage)
    sweep.path.mkdir(parents=True, exist_ok=True)
    (sweep.path / LOGS).mkdir(exist_ok=True)
    storage = storage or open_storage(sweep.storage)
    study = load_study(sweep, storage, create=True)
    rundir.write_atomic(sweep.path / SWEEP_CONFIG, sweep.config.to_yaml())
    rundir.write_json(sweep.path / SWEEP_FILE, {
        "study": sweep.study,  # the default's path is not written: the directory may move
        "storage": DATABASE if default else redacted(sweep.storage)})
    echo(f"Sweep directory: {sweep.path}")  # only once the sweep starts, never before a refusal
    echo(f"Study {sweep.study} in {redacted(sweep.storage)}: {sweep.trials} trials of "
         f"{', '.join(p.name for p in sweep.params)}, {sweep.direction} {sweep.metric}, "
         f"{jobs} at once" + (f" (the grid has {sweep.grid} combinations)"
                              if sweep.grid is not None else ""))
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
        echo(f"Interrupted: the finished trials are kept in {redacted(sweep.storage)}. "
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
    command, env = worker_command(sweep)
    with log:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=env, start_new_session=True)


class Display:
    """The trials as they go, read from the storage once a second: a live table on a
    terminal, else one line per finished trial. Runs in a thread of its own."""

    def __init__(self, sweep: Sweep, console: Any) -> None:
        from nettrain.sweep import report as sweep_report

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
