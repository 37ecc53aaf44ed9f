"""``nettrain sweep``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

from nettrain.cli import common
from nettrain.cli.common import (
    BackendOption,
    Debug,
    Overrides,
    _errors,
    _load_config,
    _load_keras,
    _use_backend,
    _stop_cleanly_on_signals,
    app,
)
from nettrain.cli.track import Track, track_override
from nettrain.text import shown

if TYPE_CHECKING:
    pass


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="The YAML config file, with a sweep: section.")],
    overrides: Overrides = None,
    trials: Annotated[Optional[int], typer.Option(
        "--trials", min=1, help="How many trials the sweep should have (default sweep.trials); "
                                "a larger number continues a finished sweep.")] = None,
    storage: Annotated[Optional[str], typer.Option(
        "--storage", metavar="URL",
        help="Optuna's storage, a database URL shared by every machine of the sweep, e.g. "
             "postgresql+psycopg://user@host/db (default: sweep.db, a SQLite file in the "
             "sweep directory).")] = None,
    study: Annotated[Optional[str], typer.Option(
        "--study", metavar="NAME", help="The study's name in the storage (default: the "
                                        "config's name).")] = None,
    jobs: Annotated[int, typer.Option(
        "--jobs", min=1, help="Trials trained at once on this machine, each in its own "
                              "process.")] = 1,
    run_dir: Annotated[Optional[Path], typer.Option(
        "--run-dir", help="The sweep directory (default runs/STUDY-sweep); the same "
                          "directory again continues the sweep.")] = None,
    track: Track = None,
    backend: BackendOption = None,
    debug: Debug = False,
) -> None:
    """Search the config's sweep: section with Optuna; write best.yaml and plots.

    Each trial is a run directory in the sweep directory.

    The same command again continues an interrupted sweep.

    Many machines: the same --storage URL and --study NAME on each.

    Example: nettrain sweep configs/digits_mlp.yaml --trials 20 --jobs 2

    MLflow: --track URI logs one parent run, and each trial as its child.
    """
    with _errors(debug):
        overrides = [*(overrides or []), *([f"backend={backend}"] if backend else [])]
        cfg = _load_config(config, overrides, debug)
        if track is not None:  # as the config's tracking: section, which each trial gets
            overrides.append(track_override(cfg, track))
            cfg = _load_config(config, overrides, debug)
        from nettrain.tracking import store

        store.check(cfg, ["nettrain", "sweep", config])  # where the trials' runs go
        _use_backend(cfg)  # the trials' processes inherit it (KERAS_BACKEND)
        from nettrain.sweep import runner as sweeping

        plan = sweeping.prepare(cfg, str(config), run_dir, storage, study, trials)
        _load_keras(debug)
        from nettrain.sweep import report as sweep_report

        sweeping.check(plan)  # before anything is written: the space, the metric
        _stop_cleanly_on_signals()
        console = Console(file=sys.stderr)  # not redirected with a trial's output
        if not console.is_terminal:  # a log file: the tables as wide as they need
            console = Console(file=sys.stderr, width=160)
        echo = lambda text: console.print(  # noqa: E731
            shown(text, lines=True), highlight=False, markup=False, soft_wrap=True)
        parent = None
        if cfg.tracking is not None:
            from nettrain.tracking.sweeps import SweepLogger

            parent = SweepLogger(plan.config, plan.path, plan.study, echo)
            parent.start()  # the trials' runs are its children
        with common.ending(parent):
            found = sweeping.run(plan, jobs, echo, console)
            sweep_report.report(plan, found, console, echo)
        if parent is not None:
            parent.finish(sweep_report.best(plan, found.get_trials(deepcopy=False)),
                          plan.metric)
        common.out.print(shown(plan.path), highlight=False, markup=False, soft_wrap=True)
