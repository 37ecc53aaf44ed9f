"""What every command shares: the app, its consoles and options, and errors turned into exit
codes. TensorFlow loads lazily.

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
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from nettrain import __version__
from nettrain.cli.help import App
from nettrain.errors import ConfigError, NettrainError
from nettrain.text import shown

if TYPE_CHECKING:
    from nettrain.config.schema import Config

# Before TensorFlow is ever imported: keep its C++ log lines off the user's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

app = App(
    name="nettrain",
    no_args_is_help=True,
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
BackendOption = Annotated[Optional[str], typer.Option(
    "--backend", metavar="NAME",
    help="The Keras backend: auto, tensorflow, jax or torch (default: the config's backend:, "
         "else auto: the installed one that runs the job soonest, start-up included).")]
PrintConfig = Annotated[bool, typer.Option(
    "--print-config", help="Print the resolved config first, each value marked with where it "
                           "came from: file, command line or default.")]


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
    """Train Keras models from YAML config files: fit, evaluate, predict.

    Start: nettrain init mlp-classifier, then nettrain fit mlp-classifier.yaml

    Example: nettrain fit configs/digits_mlp.yaml fit.epochs=5
    """


@contextlib.contextmanager
def ending(logger: Any) -> Iterator[None]:
    """Within the block, a failure or Ctrl-C ends ``logger``'s MLflow run (a run's or a
    sweep's; None: not tracked) as FAILED or KILLED, then goes on up."""
    try:
        yield
    except KeyboardInterrupt:
        if logger is not None:
            logger.finish(status="KILLED")
        raise
    except Exception:
        if logger is not None:
            logger.finish(status="FAILED")
        raise


@contextlib.contextmanager
def _errors(debug: bool) -> Iterator[None]:
    """Turn the library's errors into a message and an exit status (no traceback); without
    ``debug``, keep the backends' native log lines off the terminal (:mod:`quiet`)."""
    if not debug:
        from nettrain.backends import quiet

        quiet.install()
    try:
        yield
    except typer.Exit:
        raise
    except NettrainError as exc:
        if debug:
            raise
        label = "Config error" if type(exc) is ConfigError else "Error"
        err.print(Text.assemble((f"{label}:", "bold red"), f" {shown(exc, lines=True)}"),
                  soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("[yellow]Interrupted.[/]")
        raise typer.Exit(130) from None
    except Exception as exc:  # anything unexpected: a message, not a traceback
        if debug:
            raise
        err.print(Text.assemble(("Error:", "bold red"),
                                f" {type(exc).__name__}: {shown(exc, lines=True)}\n"
                                "Run again with --debug for the traceback."), soft_wrap=True)
        raise typer.Exit(1) from None


def _load_keras(debug: bool, saved_model_only: bool = False) -> None:
    """Import Keras (and its backend) with the C++ start-up chatter sent nowhere; call
    :func:`_use_backend` first, which chooses the backend. ``saved_model_only``: the command
    only loads a saved model and runs it (see :func:`nettrain.backends.startup.importing`)."""
    from nettrain.backends import select, startup

    if "keras" in sys.modules:
        return
    if debug:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        with startup.importing(saved_model_only):
            import keras  # noqa: F401
        select.settle()
        return
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            with startup.importing(saved_model_only):
                import keras  # noqa: F401
        except Exception:  # a broken install: show what TensorFlow said (not on Ctrl-C)
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    select.settle()


def _use_backend(config: Config | None, requested: str | None = None,
                 recorded: str | None = None, loading: bool = False, *,
                 processes: bool = False, graph: str | None = None,
                 imports_tensorflow: bool = False) -> str:
    """Ask the backend policy (:func:`nettrain.backends.select.choose`) and set its answer
    before Keras is imported; return the line the summary shows: ``jax (auto: ...)``.

    The arguments are the policy's; ``imports_tensorflow``: the command imports TensorFlow
    itself (serve's gRPC, export's converters, track's MLflow model), so Keras may use it."""
    from nettrain.backends import select

    choice = select.choose(config, requested, loading, recorded=recorded,
                           processes=processes, graph=graph)
    select.use(choice, None if imports_tensorflow else config)
    return f"{choice.name} ({choice.why})"


def _use_run_backend(run: Path, requested: str | None = None,
                     format: str | None = None, loading: bool = True, *,
                     processes: bool = False, graph: str | None = None,
                     imports_tensorflow: bool = False) -> str:
    """:func:`_use_backend` for a command on the run directory (or model file) ``run``: the
    run's config and the backend it trained on (run.json; a run from before nettrain recorded
    it trained on TensorFlow). Nothing readable there: any backend (auto). ``--format
    savedmodel`` (``format``) loads TensorFlow's graph; ``graph``: a format the command
    writes as one (export). ``loading``: not a resume, which trains."""
    from nettrain.run import directory as rundir
    from nettrain.run.record import RunRecord

    config, recorded = None, None
    if run.is_dir() and (run / rundir.CONFIG).is_file():
        with contextlib.suppress(Exception):  # the command itself says what is wrong
            config = rundir.open_run(run).config
        with contextlib.suppress(Exception):
            record = RunRecord(run)
            recorded = record.read().get("backend", "tensorflow") if record.exists else None
    return _use_backend(config, requested, recorded, loading, processes=processes,
                        graph=graph or (format if format == "savedmodel" else None),
                        imports_tensorflow=imports_tensorflow)


def _load_config(path: Path, overrides: list[str], debug: bool) -> Config:
    """The validated config; when the schema refuses it, also check the Keras names of what
    parsed, so one ConfigError lists every mistake (this loads Keras)."""
    from nettrain.config.load import load_config

    try:
        return load_config(path, overrides)
    except ConfigError as exc:
        if exc.draft is None:
            raise
        _load_keras(debug)
        from nettrain.model.draft import with_keras_problems

        raise _with_hidden_problems(with_keras_problems(exc)) from None


def _with_hidden_problems(error: ConfigError) -> ConfigError:
    """``error`` and the mistakes its refused keys hid: when nettrain's own hints mend every
    key the schema refused (``- Dropout: 0.1``), the mended config is built as fit builds it,
    and what that finds (a callback's monitor the run does not log) joins the error."""
    from nettrain.config.load import validate_config
    from nettrain.engine.train import prepare
    from nettrain.model.draft import with_hints_applied

    data, draft = with_hints_applied(error), error.draft
    if data is None:
        return error
    try:
        prepare(validate_config(data, draft.source, draft.lines, draft.overridden))
    except ConfigError as hidden:
        return ConfigError([*error.problems,
                            *(p for p in hidden.problems if p not in error.problems)],
                           source=error.source, draft=draft)
    except Exception:  # noqa: BLE001  (the data's own errors are the next run's to report)
        pass
    return error


def _stop_cleanly_on_signals() -> None:
    """Ctrl-C and SIGTERM stop a fit cleanly (KeyboardInterrupt: save, mark, exit 130), also
    when a non-interactive shell started nettrain with SIGINT ignored."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


def _metrics_table(rows: dict[str, dict[str, float]]) -> Table:
    from nettrain.engine.progress import metrics_table

    return metrics_table(rows)




def natural_width(renderable: object, console: Console) -> int:
    """The width ``renderable`` takes when nothing limits it (a table's longest row)."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(10_000), renderable).maximum


def print_whole(renderable: object, console: Console | None = None) -> None:
    """Print a table so that nothing in it is cut or folded: output that is not a terminal
    (a pipe, a file, where rich would assume 80 columns) gets the table's own width; a
    terminal gets its width, the table being made to fit it by its caller."""
    console = console or out
    if console.is_terminal:
        console.print(renderable)
        return
    width = console.width
    console.width = max(width, natural_width(renderable, console))
    try:
        console.print(renderable)
    finally:
        console.width = width
