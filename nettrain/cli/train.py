"""``nettrain fit`` and ``nettrain validate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

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
from nettrain.errors import UsageError
from nettrain.text import shown

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
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only the run directory (on stdout), warnings and errors.")
    ] = False,
    backend: BackendOption = None,
    debug: Debug = False,
) -> None:
    """Train a model; write its run directory and print its path.

    Progress on stderr: live bars on a terminal, else a line per epoch (fit.verbose 0: none).

    Example: nettrain fit configs/digits_mlp.yaml fit.epochs=5

    Resume: nettrain fit --resume runs/digits-mlp/20261122-120000 fit.epochs=80

    --print-config prints the resolved config on stderr, then trains.

    --backend jax is the override backend=jax: the run's config.yaml records it.
    """
    with _errors(debug):
        overrides = list(overrides or [])
        if config is not None and "=" in config.name and not config.exists():
            overrides.insert(0, str(config))  # fit --resume RUN key=value: no CONFIG given
            config = None
        if backend is not None:
            overrides.append(f"backend={backend}")
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
            if print_config:
                common.err.print(shown(cfg.to_annotated_yaml(), lines=True), highlight=False,
                                 markup=False, soft_wrap=True)
            ran_on = _use_backend(cfg)
        else:
            ran_on = _use_run_backend(resume, backend, loading=False)
        _load_keras(debug)
        from nettrain.engine import progress, train
        from nettrain.run import directory as rundir

        _stop_cleanly_on_signals()
        echo = lambda text: common.err.print(  # noqa: E731
            shown(text, lines=True), highlight=False, markup=False, soft_wrap=True)
        display = progress.Display(common.err, quiet=quiet)
        if resume is None:
            path = train.fit(cfg, run_dir, echo=echo, display=display)
        else:
            path = train.resume(resume, config, overrides, echo=echo,
                                allow_changed_data=allow_changed_data, display=display)
        from nettrain.run.checkpoints import stopped_by

        run = rundir.open_run(path)
        epochs = rundir.read_json(path / rundir.RUN).get("epochs_completed")
        early = isinstance(epochs, int) and epochs < run.config.fit.epochs
        display.summary(run.config.name, path, rundir.read_json(path / rundir.METRICS),
                        run.config, epochs, stopped_by(path, run.config) if early else None,
                        backend=ran_on)
        common.out.print(shown(path), highlight=False, markup=False, soft_wrap=True)


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="The YAML config file.")],
    overrides: Overrides = None,
    print_config: PrintConfig = False,
    backend: BackendOption = None,
    debug: Debug = False,
) -> None:
    """Check a config and build its model (no training, no files); print the summary.

    Example: nettrain validate configs/xor.yaml compile.optimizer.SGD.learning_rate=0.5

    --print-config prints the resolved config first (on stdout), then validates.
    """
    with _errors(debug):
        cfg = _load_config(config, [*(overrides or []),
                                    *([f"backend={backend}"] if backend else [])], debug)
        if print_config:
            common.out.print(shown(cfg.to_annotated_yaml(), lines=True), highlight=False,
                             markup=False, soft_wrap=True)
        ran_on = _use_backend(cfg)
        _load_keras(debug)
        from nettrain.engine import train

        prepared = train.prepare(cfg)
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

        for line in input_lines(cfg, data.describe(), prepared.model.output_shape):
            common.out.print(shown(line), highlight=False, markup=False, soft_wrap=True)
