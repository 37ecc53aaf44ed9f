"""What a sweep is (:class:`Sweep`): a search over a config's ``sweep:`` section, with Optuna.

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
not counted, and its values are drawn again by a new trial (Optuna's retry callback, see
:func:`nettrain.sweep.study.draw_again`). ``--jobs N`` runs N workers on
this machine: this process and N-1 more (``python -m nettrain.sweep``), each with its own
TensorFlow, all taking trials from the one study; a lock (a file in the sweep directory; on
PostgreSQL the database's own, shared by every machine) lets one worker at a time decide
whether another trial is needed, so workers never run more trials than asked.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nettrain.config.schema import Config
from nettrain.errors import Problem, UsageError
from nettrain.run import directory as rundir
from nettrain.sweep.space import Param

if TYPE_CHECKING:
    pass

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
# Heartbeats: a trial whose worker wrote none for the grace period (GRACE seconds, or
# $NETTRAIN_SWEEP_GRACE) is failed and drawn again, whichever machine it ran on. Local dead
# workers are found at once by their process id and start time.
GRACE, GRACE_ENV = 120, "NETTRAIN_SWEEP_GRACE"
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
    grid: int | None = None  # the grid's size, when a grid smaller than the trials asked

    @property
    def pruning(self) -> bool:
        return self.config.sweep.pruner != "none"


def default_dir(study: str) -> Path:
    """``runs/<study>-sweep`` (under $NETTRAIN_RUNS): the same command finds the same sweep."""
    return rundir.runs_root() / f"{study}-sweep"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{(path / DATABASE).absolute()}"


def is_default_storage(url: str, path: Path) -> bool:
    """Whether ``url`` names the sweep directory's own SQLite file, ``path/sweep.db``, however
    it is spelt (relative or absolute): the sweep then is the one without --storage."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # not a URL: refused by open_storage
        return False
    if parsed.get_backend_name() != "sqlite" or not parsed.database or \
            parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return False
    return Path(parsed.database).absolute().resolve() == (path / DATABASE).absolute().resolve()


def grace_period() -> tuple[int, int]:
    """(grace period, heartbeat interval) in seconds: a running trial whose worker wrote no
    heartbeat for the grace period is failed and drawn again; each worker writes one every
    interval (a quarter of the grace period, at most 30 s). UsageError for a
    $NETTRAIN_SWEEP_GRACE that is not a whole number of seconds of at least 2."""
    text = os.environ.get(GRACE_ENV, "").strip()
    if not text:
        return GRACE, 30
    if not text.isdigit() or int(text) < 2:
        raise UsageError(Problem(GRACE_ENV, "a whole number of seconds, at least 2", repr(text),
                                 f"Unset it for the default, {GRACE}."))
    grace = int(text)
    return grace, max(1, min(30, grace // 4))
