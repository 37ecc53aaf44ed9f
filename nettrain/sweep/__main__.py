"""``python -m nettrain.sweep``: one more worker of a sweep that ``nettrain sweep`` started,
or with ``--trial ID`` one trial, in the fresh process a worker starts for it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from nettrain.config.load import load_config
from nettrain.errors import NettrainError
from nettrain.sweep.space import space
from nettrain.sweep.spec import STORAGE_ENV, SWEEP_CONFIG, Sweep
from nettrain.sweep.study import open_storage
from nettrain.sweep.trials import (
    FAILED,
    INTERRUPTED,
    PRUNED,
    TrialFailed,
    run_trial,
    work,
)

if TYPE_CHECKING:
    pass


def _worker_main(argv: list[str]) -> int:
    """``python -m nettrain.sweep SWEEP_DIR --study ... --parent PID``: one more worker of a
    sweep that ``nettrain sweep`` started (exit 130 on Ctrl-C, 1 on a failure); with
    ``--trial ID``, that trial (:func:`_trial_main`)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m nettrain.sweep")
    parser.add_argument("path", type=Path)
    for option in ("--study", "--metric", "--direction"):
        parser.add_argument(option, required=True)
    parser.add_argument("--trials", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--trial", type=int, default=None, help="the trial's id in the storage")
    parser.add_argument("--spare", action="store_true",
                        help="import, then train the trial whose id and log file come on stdin")
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
                if args.trial is not None or args.spare:  # a trial without its worker: as if
                    os.kill(os.getpid(), signal.SIGKILL)  # killed with it (drawn again)

    threading.Thread(target=watch_parent, daemon=True).start()
    config = load_config(args.path / SWEEP_CONFIG)
    from nettrain.backends import select

    select.use(select.choose(config), config)  # the policy: KERAS_BACKEND from nettrain sweep
    sweep = Sweep(config, args.path, os.environ[STORAGE_ENV], args.study, args.trials,
                  args.metric, args.direction, space(config))
    if args.spare:
        return _spare_main(sweep)
    if args.trial is not None:
        return _trial_main(sweep, args.trial)
    try:
        work(sweep, open_storage(sweep.storage), stop)
    except KeyboardInterrupt:
        return 130
    except NettrainError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


def _spare_main(sweep: Sweep) -> int:
    """Import what a trial needs, then wait for one (:class:`nettrain.sweep.trials.Spare`):
    its id and log file come as two lines on stdin; its output goes to that file from then
    on. Exit 0 at once when stdin closes without one."""
    from nettrain.backends import select, startup

    with startup.importing():
        import keras  # noqa: F401  (the seconds a trial would otherwise spend here)
    import optuna  # noqa: F401

    select.settle()  # as nettrain's commands do after importing Keras

    from nettrain.engine import train  # noqa: F401

    trial_id, log = sys.stdin.readline().strip(), sys.stdin.readline().strip()
    if not trial_id.isdigit() or not log:
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return _trial_main(sweep, int(trial_id))


def _trial_main(sweep: Sweep, trial_id: int) -> int:
    """Train the trial ``trial_id`` of the sweep's study (:func:`run_trial`), which its
    worker created and keeps the heartbeat of; the exit status says how it ended (0: its
    value is the trial's user attribute ``value``; PRUNED, FAILED with ``failure``,
    INTERRUPTED). The worker then tells Optuna."""
    import logging

    import optuna

    from nettrain.sweep.study import load_study

    from nettrain.backends import select, startup

    with startup.importing():
        import keras  # noqa: F401
    select.settle()  # as nettrain's commands do after importing Keras
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        study = load_study(sweep, open_storage(sweep.storage), create=False)
        run_trial(sweep, optuna.trial.Trial(study, trial_id))
    except KeyboardInterrupt:
        return INTERRUPTED
    except optuna.TrialPruned:
        return PRUNED
    except TrialFailed:
        return FAILED
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(_worker_main(sys.argv[1:]))
