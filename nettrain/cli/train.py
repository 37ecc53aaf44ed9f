"""``nettrain fit`` and ``nettrain validate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.text import Text

from nettrain.cli import common
from nettrain.cli.common import (
    AllowChangedData,
    BackendOption,
    Debug,
    Overrides,
    PrintConfig,
    _errors,
    _load_config,
    _load_keras,
    _stop_cleanly_on_signals,
    _use_backend,
    _use_run_backend,
    app,
)
from nettrain.cli.track import Track, logged_note, track_override
from nettrain.errors import UsageError
from nettrain.text import command, shown

if TYPE_CHECKING:
    pass


@app.command()
def fit(
    config: Annotated[Optional[Path], typer.Argument(
        metavar="CONFIG", help="The YAML config file (with --resume: optional, default the run's config).")
    ] = None,
    overrides: Overrides = None,
    run_dir: Annotated[Optional[Path], typer.Option(
        "--run-dir", metavar="DIR",
        help="A new or empty directory for this run (default runs/NAME/DATE-TIME).")
    ] = None,
    resume: Annotated[Optional[Path], typer.Option(
        "--resume", metavar="RUN",
        help="Continue this interrupted run from its last completed epoch, in its directory.")
    ] = None,
    allow_changed_data: AllowChangedData = False,
    print_config: PrintConfig = False,
    track: Track = None,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only the run directory (on stdout), warnings and errors.")
    ] = False,
    backend: BackendOption = None,
    debug: Debug = False,
    processes: Annotated[Optional[int], typer.Option(
        "--processes", metavar="N",
        help="Train data-parallel in N processes on this machine (JAX's distributed runtime).")
    ] = None,
    coordinator: Annotated[Optional[str], typer.Option(
        "--coordinator", metavar="HOST:PORT",
        help="Across machines: the address of process 0 (with --process-id, --num-processes).")
    ] = None,
    process_id: Annotated[Optional[int], typer.Option(
        "--process-id", metavar="I", help="Across machines: this process's number, 0 to N-1.")
    ] = None,
    num_processes: Annotated[Optional[int], typer.Option(
        "--num-processes", metavar="N", help="Across machines: how many processes train.")
    ] = None,
) -> None:
    """Train a model; write its run directory and print its path.

    Progress on stderr: live bars on a terminal, else a line per epoch (fit.verbose 0: none).

    Example: nettrain fit configs/digits_mlp.yaml fit.epochs=5

    Resume: nettrain fit --resume runs/digits-mlp/20261122-120000 fit.epochs=80

    --print-config prints the resolved config on stderr, then trains.

    MLflow: --track http://127.0.0.1:5000 (or a tracking: section in the config).
    Several processes (JAX): nettrain fit configs/digits_mlp.yaml --processes 2; across
    machines, on each: --coordinator HOST:PORT --process-id I --num-processes N.
    --backend jax is the override backend=jax: the run's config.yaml records it.
    """
    with _errors(debug):
        overrides = list(overrides or [])
        if config is not None and "=" in config.name and not config.exists():
            overrides.insert(0, str(config))  # fit --resume RUN key=value: no CONFIG given
            config = None
        asked = ["nettrain", "fit", *([config] if config is not None else []),
                 *(["--resume", resume] if resume is not None else []), *overrides]
        if backend is not None:
            overrides.append(f"backend={backend}")
        # several processes train on JAX's distributed runtime: the backend policy knows
        several = (processes or 1) > 1 or process_id is not None
        if resume is not None and run_dir is not None:
            raise UsageError("--run-dir and --resume: a resumed run stays in its own "
                             "directory; give only --resume RUN.")
        if print_config and resume is not None:
            raise UsageError("--print-config: only for a new run (a resumed run's config is "
                             "RUN/config.yaml; nettrain validate RUN/config.yaml "
                             "--print-config shows it resolved).")
        if allow_changed_data and resume is None:
            raise UsageError("--allow-changed-data: only for --resume RUN (a new run records "
                             "the data as it is).")
        if resume is None:
            if config is None:
                raise UsageError("CONFIG: expected a YAML config file (or --resume RUN).")
            cfg = _load_config(config, overrides, debug)
            if track is not None:  # as the config's tracking: section, recorded with the run
                overrides.append(track_override(cfg, track))
                cfg = _load_config(config, overrides, debug)
            tracked = cfg
            if print_config:
                common.err.print(shown(cfg.to_annotated_yaml(), lines=True), highlight=False,
                                 markup=False, soft_wrap=True)
        else:
            from nettrain.config.load import load_config
            from nettrain.run import directory as rundir

            source = config or rundir.open_run(resume).path / rundir.CONFIG
            tracked = load_config(source, overrides)
            if track is not None:
                overrides.append(track_override(tracked, track))
                tracked = load_config(source, overrides)
        from nettrain.tracking import store

        store.check(tracked, asked, create=True)  # before anything is trained or sent
        from nettrain.backends import distributed

        distributed.check(coordinator, process_id, num_processes, processes)
        from nettrain.data import steps

        distributed.check_config(tracked, steps.train_batch_size(tracked),
                                 processes or num_processes or 1,
                                 by_hand=process_id is not None and resume is None)
        # the config's own mistakes first, then whether the backend asked for can run it
        ran_on = _use_backend(cfg, processes=several) if resume is None else \
            _use_run_backend(resume, backend, loading=False, processes=several)
        if processes is not None and processes > 1:
            _launch(processes, config, overrides, run_dir, resume, allow_changed_data, quiet,
                    debug, cfg if resume is None else None)
            return
        scratch = None
        if process_id is not None and process_id > 0:  # process 0 alone writes the run dir
            scratch, work = distributed.scratch_dir(process_id, resume)
            run_dir, resume = (None, work) if resume is not None else (work, None)
        _stop_cleanly_on_signals()  # also while joining: a stop removes the scratch folder
        distributed.follow_launcher()  # a launcher's process ends with it (even a kill -9)
        try:  # a scratch folder never outlives its process (the launcher's, not even a kill)
            if process_id is not None:
                distributed.join(coordinator, process_id, num_processes)
            echo = lambda text: common.err.print(  # noqa: E731
                shown(text, lines=True), highlight=False, markup=False, soft_wrap=True)
            logger = None
            hooks: dict = {}
            if tracked.tracking is not None and scratch is None:  # process 0 alone logs
                from nettrain.tracking.sidecar import SidecarLogger

                logger = SidecarLogger(tracked, echo=echo)  # before Keras: works meanwhile
            _load_keras(debug)
            from nettrain.engine import progress, train
            from nettrain.run import directory as rundir
            from nettrain.run.record import RunRecord

            display = progress.Display(common.err, quiet=quiet)
            if logger is not None:
                hooks = {"extra_callbacks": (logger.callback(),), "started": logger.started}
            with common.ending(logger):
                if resume is None:
                    path = train.fit(cfg, run_dir, echo=echo, display=display, **hooks)
                else:
                    path = train.resume(resume, config, overrides, echo=echo,
                                        allow_changed_data=allow_changed_data, display=display,
                                        **hooks)
            if logger is not None:
                logger.finish(path)
            from nettrain.run.checkpoints import stopped_by

            run = rundir.open_run(path)
            epochs = RunRecord(path).read().get("epochs_completed")
            early = isinstance(epochs, int) and epochs < run.config.fit.epochs
            display.summary(run.config.name, path, rundir.read_json(path / rundir.METRICS),
                            run.config, epochs, stopped_by(path, run.config) if early else None,
                            backend=ran_on)
            if logged_note(logger) and not quiet:
                echo(logged_note(logger))
        finally:
            if scratch is not None:
                distributed.remove_scratch(scratch)
        if scratch is None:
            common.out.print(shown(path), highlight=False, markup=False, soft_wrap=True)


def _launch(processes: int, config: Path | None, overrides: list[str], run_dir: Path | None,
            resume: Path | None, allow_changed_data: bool, quiet: bool, debug: bool,
            cfg: Any) -> None:
    """``fit --processes N``: the same fit in N processes joined on this machine, with one
    seed: the config's, or one drawn here and handed to each (recorded in the run)."""
    from nettrain.backends import distributed
    from nettrain.engine.train import with_seed
    from nettrain.run import directory as rundir

    flags = [flag for flag, on in (("--allow-changed-data", allow_changed_data),
                                   ("--quiet", quiet), ("--debug", debug)) if on]
    arguments = [*([str(config)] if config is not None else []), *overrides]
    again = ["nettrain", "fit", *arguments]  # what was asked: the command to start again
    if resume is None:  # made here, so a failure can name it
        again += [*(["--run-dir", str(run_dir)] if run_dir is not None else []), *flags]
        made = run_dir is None or not Path(run_dir).exists()
        run_dir = rundir.create_run_dir(cfg, run_dir)
        if cfg.seed is None:
            arguments.append(f"seed={with_seed(cfg).seed}")
        arguments += ["--run-dir", str(run_dir)]
    else:
        run_dir, made = resume, False
        arguments += ["--resume", str(resume)]
        again += ["--resume", str(resume), *flags]
    arguments += flags
    again += ["--processes", str(processes)]
    _stop_cleanly_on_signals()  # Ctrl-C or SIGTERM: every process saves its epoch and ends
    distributed.launch(arguments, processes,
                       lambda: _go_on(run_dir, processes, command(*again), made),
                       lambda: _record(run_dir))


def _record(run_dir: Path) -> dict:
    """The run's record as process 0 left it ({} when there is none, or it is unreadable)."""
    from nettrain.errors import NettrainError
    from nettrain.run.record import RunRecord

    try:
        return RunRecord(run_dir).read()
    except (NettrainError, OSError):
        return {}


def _go_on(run_dir: Path, processes: int, again: str, made: bool) -> str:
    """How to go on after a multi-process run failed, from what its run directory holds: the
    checkpoint a resume continues from (its owner, :mod:`nettrain.engine.resume`), else the
    run's record; with neither, nothing was written and the fit is started again."""
    from nettrain.engine.resume import last_checkpoint
    from nettrain.run.record import RunRecord

    go_on = command("nettrain", "fit", "--resume", run_dir, "--processes", processes)
    if last_checkpoint(run_dir) is not None:
        return f"The run directory {run_dir} keeps its completed epochs. Continue with: {go_on}"
    if RunRecord(run_dir).read():
        return (f"No epoch was completed. Start it again, in the same directory "
                f"{run_dir}: {go_on}")
    if made and run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()  # made by this fit, and nothing was written in it
    return f"No epoch was trained and nothing was written. Start again: {again}"


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="The YAML config file.")],
    overrides: Overrides = None,
    print_config: PrintConfig = False,
    track: Track = None,
    backend: BackendOption = None,
    debug: Debug = False,
) -> None:
    """Check a config and build its model (no training, no files); print the summary.

    Example: nettrain validate configs/xor.yaml compile.optimizer.SGD.learning_rate=0.5

    --print-config prints the resolved config first (on stdout), then validates.
    --track URI checks the tracking URI as fit --track would take it.
    """
    with _errors(debug):
        typed = [*(overrides or []), *([f"backend={backend}"] if backend else [])]
        cfg = _load_config(config, typed, debug)
        if track is not None:
            cfg = _load_config(config, [*typed, track_override(cfg, track)], debug)
        from nettrain.tracking import store

        store.check(cfg, ["nettrain", "validate", config, *(overrides or [])])
        if print_config:
            common.out.print(shown(cfg.to_annotated_yaml(), lines=True), highlight=False,
                             markup=False, soft_wrap=True)
        ran_on = _use_backend(cfg)
        _load_keras(debug)
        from nettrain.engine import train

        prepared = train.prepare(cfg, echo=lambda text: common.err.print(  # notes: stderr
            shown(text, lines=True), highlight=False, markup=False, soft_wrap=True))
        if cfg.sweep is not None:  # fit ignores the sweep section; validate checks it
            from nettrain.sweep import space as sweep_space

            sweep_space.check_space(cfg)
            sweep_space.check_metric(cfg, prepared.model, prepared.data)
        common.out.print(shown(train.summary_text(prepared.model), lines=True), highlight=False,
                         markup=False, end="")
        data = prepared.data
        sizes = ", ".join(f"{s} {data.size(s)}" for s in data.splits)
        common.out.print(Text.assemble(("OK", "green"), f" {shown(config)}: "
                                f"{prepared.model.count_params():,} parameters; data: {sizes} "
                                f"samples of shape {list(data.input_shape)}."), soft_wrap=True)
        common.out.print(f"Backend: {ran_on}", highlight=False, markup=False, soft_wrap=True)
        from nettrain.engine.inputs import input_lines

        from nettrain.export.formats import text_support

        for line in [*input_lines(cfg, data.describe(), prepared.model.output_shape),
                     *text_support(cfg, data.describe())]:
            common.out.print(shown(line), highlight=False, markup=False, soft_wrap=True)
