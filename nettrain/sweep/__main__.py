"""``python -m nettrain.sweep``: one more worker of a sweep that ``nettrain sweep`` started.
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
from nettrain.sweep.trials import work

if TYPE_CHECKING:
    pass


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
