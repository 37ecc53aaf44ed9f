"""The command line: thin commands over config -> train -> runs. TensorFlow loads lazily.

Exit status: 0 success, 1 failure while running, 2 config or usage error, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from nettrain import __version__
from nettrain.errors import ConfigError, NettrainError, UsageError

if TYPE_CHECKING:
    from nettrain.config import Config

# Before TensorFlow is ever imported: keep its C++ log lines off the user's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

app = typer.Typer(
    name="nettrain",
    help="Train Keras models from YAML config files: fit, evaluate, predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

Debug = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks and TensorFlow's logs.")]
AllowChangedData = Annotated[bool, typer.Option(
    "--allow-changed-data",
    help="Go on when a data file changed since training (its sha256 differs from run.json, it "
         "is missing, or a file was added to an image folder): warn and record it.")]
Overrides = Annotated[
    Optional[list[str]],
    typer.Argument(metavar="KEY=VALUE", help="Overrides, e.g. fit.epochs=5 (values are YAML)."),
]


class Split(str, Enum):
    test = "test"
    validation = "validation"
    train = "train"


class Format(str, Enum):
    keras = "keras"
    json = "json"
    savedmodel = "savedmodel"


def _version(value: bool) -> None:
    if value:
        out.print(f"nettrain {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Train Keras models from YAML config files.

    Example: nettrain fit configs/digits_mlp.yaml fit.epochs=5
    """


@contextlib.contextmanager
def _errors(debug: bool) -> Iterator[None]:
    """Turn the library's errors into a message and an exit status (no traceback)."""
    try:
        yield
    except typer.Exit:
        raise
    except NettrainError as exc:
        if debug:
            raise
        label = "Config error" if type(exc) is ConfigError else "Error"
        err.print(Text.assemble((f"{label}:", "bold red"), f" {exc}"), soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("[yellow]Interrupted.[/]")
        raise typer.Exit(130) from None
    except Exception as exc:  # anything unexpected: a message, not a traceback
        if debug:
            raise
        err.print(Text.assemble(("Error:", "bold red"), f" {type(exc).__name__}: {exc}\n"
                                "Run again with --debug for the traceback."), soft_wrap=True)
        raise typer.Exit(1) from None


def _load_keras(debug: bool) -> None:
    """Import Keras (and TensorFlow) with the C++ start-up chatter sent nowhere."""
    if "keras" in sys.modules:
        return
    if debug:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        import keras  # noqa: F401
        return
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            import keras  # noqa: F401
        except Exception:  # a broken install: show what TensorFlow said (not on Ctrl-C)
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _load_config(path: Path, overrides: list[str], debug: bool) -> Config:
    """The validated config; when the schema refuses it, also check the Keras names of what
    parsed, so one ConfigError lists every mistake (this loads Keras)."""
    from nettrain.config import load_config

    try:
        return load_config(path, overrides)
    except ConfigError as exc:
        if exc.draft is None:
            raise
        _load_keras(debug)
        from nettrain.checks import with_keras_problems

        raise with_keras_problems(exc) from None


def _stop_cleanly_on_signals() -> None:
    """Ctrl-C and SIGTERM stop a fit cleanly (KeyboardInterrupt: save, mark, exit 130), also
    when a non-interactive shell started nettrain with SIGINT ignored."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


def _metrics_table(rows: dict[str, dict[str, float]]) -> Table:
    from nettrain.progress import metrics_table

    return metrics_table(rows)


@app.command()
def fit(
    config: Annotated[Optional[Path], typer.Argument(
        metavar="CONFIG", help="The YAML config file (with --resume: optional, default the run's config).")
    ] = None,
    overrides: Overrides = None,
    run_dir: Annotated[Optional[Path], typer.Option(
        "--run-dir", help="A new or empty directory for this run (default runs/NAME/DATE-TIME).")
    ] = None,
    resume: Annotated[Optional[Path], typer.Option(
        "--resume", metavar="RUN",
        help="Continue this interrupted run from its last completed epoch, in its directory.")
    ] = None,
    allow_changed_data: AllowChangedData = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only the run directory (on stdout), warnings and errors.")
    ] = False,
    debug: Debug = False,
) -> None:
    """Train a model; write its run directory and print its path.

    Progress on stderr: live bars on a terminal, else a line per epoch (fit.verbose 0: none).

    Example: nettrain fit configs/digits_mlp.yaml fit.epochs=5

    Resume: nettrain fit --resume runs/digits-mlp/20261122-120000 fit.epochs=80
    """
    with _errors(debug):
        overrides = list(overrides or [])
        if config is not None and "=" in config.name and not config.exists():
            overrides.insert(0, str(config))  # fit --resume RUN key=value: no CONFIG given
            config = None
        if resume is not None and run_dir is not None:
            raise UsageError("--run-dir and --resume: a resumed run stays in its own "
                             "directory; give only --resume RUN.")
        if allow_changed_data and resume is None:
            raise UsageError("--allow-changed-data: only for --resume RUN (a new run records "
                             "the data as it is).")
        if resume is None:
            if config is None:
                raise UsageError("CONFIG: expected a YAML config file (or --resume RUN).")
            cfg = _load_config(config, overrides, debug)
        _load_keras(debug)
        from nettrain import progress, rundir, train

        _stop_cleanly_on_signals()
        echo = lambda text: err.print(text, highlight=False, markup=False,  # noqa: E731
                                      soft_wrap=True)
        display = progress.Display(err, quiet=quiet)
        if resume is None:
            path = train.fit(cfg, run_dir, echo=echo, display=display)
        else:
            path = train.resume(resume, config, overrides, echo=echo,
                                allow_changed_data=allow_changed_data, display=display)
        run = rundir.open_run(path)
        display.summary(run.config.name, path, rundir.read_json(path / rundir.METRICS),
                        run.config, rundir.read_json(path / rundir.RUN).get("epochs_completed"))
        out.print(str(path), highlight=False, markup=False, soft_wrap=True)


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="The YAML config file.")],
    overrides: Overrides = None,
    debug: Debug = False,
) -> None:
    """Check a config and build its model (no training, no files); print the summary.

    Example: nettrain validate configs/xor.yaml compile.optimizer.SGD.learning_rate=0.5
    """
    with _errors(debug):
        cfg = _load_config(config, overrides or [], debug)
        _load_keras(debug)
        from nettrain import train

        prepared = train.prepare(cfg)
        out.print(train.summary_text(prepared.model), highlight=False, markup=False, end="")
        data = prepared.data
        sizes = ", ".join(f"{s} {data.size(s)}" for s in data.splits)
        out.print(Text.assemble(("OK", "green"), f" {config}: {prepared.model.count_params():,} "
                                f"parameters; data: {sizes} samples of shape "
                                f"{list(data.input_shape)}."), soft_wrap=True)


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run directory made by 'nettrain fit'.")],
    split: Annotated[Optional[Split], typer.Option(
        help="Which part of the data (default: test if the run has one).")] = None,
    format: Annotated[Optional[Format], typer.Option(
        "--format", help="Which saved model to load (default: keras, else json; a SavedModel "
                         "runs its own graph, so only when named).")] = None,
    allow_changed_data: AllowChangedData = False,
    debug: Debug = False,
) -> None:
    """Reload a run's model and data; print the metrics and save them in the run directory.

    Example: nettrain evaluate runs/digits-mlp/20261122-120000 --split validation
    """
    with _errors(debug):
        _load_keras(debug)
        from nettrain import train

        echo = lambda text: err.print(text, style="yellow", highlight=False,  # noqa: E731
                                      markup=False, soft_wrap=True)
        used_split, metrics, used = train.evaluate(run, split.value if split else None,
                                                   format.value if format else None,
                                                   allow_changed_data, echo)
        out.print(f"{run} ({used} model, {used_split} split):", highlight=False, markup=False,
                  soft_wrap=True)
        out.print(_metrics_table({used_split: metrics}))


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="A run directory, or a saved model file.")],
    input: Annotated[Path, typer.Argument(help="A .csv with a header row, a .npy, a .npz, or (an image model) an image file or "
             "a folder of images.")],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write the predictions to this CSV file (default: stdout).")
    ] = None,
    format: Annotated[Optional[Format], typer.Option(
        "--format", help="Which saved model to load (default: keras, else json; a SavedModel "
                         "runs its own graph, so only when named).")] = None,
    debug: Debug = False,
) -> None:
    """Predict every row of INPUT: the class and its probabilities, or the values.

    Example: nettrain predict runs/iris/20261122-120000 flowers.csv --output predictions.csv
    """
    with _errors(debug):
        from nettrain import predict as predicting

        if output is not None:
            predicting.check_output(output)  # at once, not after predicting everything
        _load_keras(debug)
        frames = predicting.predict_chunks(run, input, format.value if format else None)
        rows = predicting.write_predictions(frames, output, sys.stdout)
        if output is not None:
            err.print(f"Wrote {rows} predictions to {output}", highlight=False, markup=False)


if __name__ == "__main__":  # pragma: no cover
    app()
