"""The command line: thin commands over config -> train -> runs. TensorFlow loads lazily.

Exit status: 0 success, 1 failure while running, 2 config or usage error, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import json
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
from nettrain.cli_help import App, Group
from nettrain.errors import ConfigError, NettrainError, UsageError

if TYPE_CHECKING:
    from nettrain.config import Config

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
    debug: Debug = False,
) -> None:
    """Train a model; write its run directory and print its path.

    Progress on stderr: live bars on a terminal, else a line per epoch (fit.verbose 0: none).

    Example: nettrain fit configs/digits_mlp.yaml fit.epochs=5

    Resume: nettrain fit --resume runs/digits-mlp/20261122-120000 fit.epochs=80

    --print-config prints the resolved config on stderr, then trains.
    """
    with _errors(debug):
        overrides = list(overrides or [])
        if config is not None and "=" in config.name and not config.exists():
            overrides.insert(0, str(config))  # fit --resume RUN key=value: no CONFIG given
            config = None
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
                err.print(cfg.to_annotated_yaml(), highlight=False, markup=False,
                          soft_wrap=True)
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
    print_config: PrintConfig = False,
    debug: Debug = False,
) -> None:
    """Check a config and build its model (no training, no files); print the summary.

    Example: nettrain validate configs/xor.yaml compile.optimizer.SGD.learning_rate=0.5

    --print-config prints the resolved config first (on stdout), then validates.
    """
    with _errors(debug):
        cfg = _load_config(config, overrides or [], debug)
        if print_config:
            out.print(cfg.to_annotated_yaml(), highlight=False, markup=False, soft_wrap=True)
        _load_keras(debug)
        from nettrain import train

        prepared = train.prepare(cfg)
        if cfg.sweep is not None:  # fit ignores the sweep section; validate checks it
            from nettrain import sweep_space

            sweep_space.check_space(cfg)
            sweep_space.check_metric(cfg, prepared.model, prepared.data)
        out.print(train.summary_text(prepared.model), highlight=False, markup=False, end="")
        data = prepared.data
        sizes = ", ".join(f"{s} {data.size(s)}" for s in data.splits)
        out.print(Text.assemble(("OK", "green"), f" {config}: {prepared.model.count_params():,} "
                                f"parameters; data: {sizes} samples of shape "
                                f"{list(data.input_shape)}."), soft_wrap=True)
        from nettrain.predict import input_lines

        for line in input_lines(cfg, data.describe(), prepared.model.output_shape):
            out.print(line, highlight=False, markup=False, soft_wrap=True)


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
    debug: Debug = False,
) -> None:
    """Search the config's sweep: section with Optuna; write best.yaml and plots.

    Each trial is a run directory in the sweep directory.

    The same command again continues an interrupted sweep.

    Many machines: the same --storage URL and --study NAME on each.

    Example: nettrain sweep configs/digits_mlp.yaml --trials 20 --jobs 2
    """
    with _errors(debug):
        cfg = _load_config(config, overrides or [], debug)
        from nettrain import sweep as sweeping

        plan = sweeping.prepare(cfg, str(config), run_dir, storage, study, trials)
        _load_keras(debug)
        from nettrain import sweep_report

        sweeping.check(plan)  # before anything is written: the space, the metric
        _stop_cleanly_on_signals()
        console = Console(file=sys.stderr)  # not redirected with a trial's output
        if not console.is_terminal:  # a log file: the tables as wide as they need
            console = Console(file=sys.stderr, width=160)
        echo = lambda text: console.print(text, highlight=False, markup=False,  # noqa: E731
                                          soft_wrap=True)
        found = sweeping.run(plan, jobs, echo, console)
        sweep_report.report(plan, found, console, echo)
        out.print(str(plan.path), highlight=False, markup=False, soft_wrap=True)


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run directory made by 'nettrain fit'.")],
    split: Annotated[Optional[Split], typer.Option(
        help="Which part of the data (default: test if the run has one).")] = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", metavar="FILE",
        help="New labelled data instead of the run's own: a CSV with the target column, an "
             ".npz with x and y, or a folder with one sub-folder per class.")] = None,
    format: Annotated[Optional[Format], typer.Option(
        "--format", help="Which saved model to load (default: keras, else json; a SavedModel "
                         "runs its own graph, so only when named).")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object (metrics, report, files) and nothing else on "
                       "stdout.")] = False,
    allow_changed_data: AllowChangedData = False,
    debug: Debug = False,
) -> None:
    """Reload a run's model and data; print the metrics, the per-class (or regression) report
    and the picture written; save them in the run directory.

    Example: nettrain evaluate runs/digits-mlp/20261122-120000 --split validation

    New data: nettrain evaluate runs/iris/20261122-120000 --data new_flowers.csv
    """
    with _errors(debug):
        if data is not None and split is not None:
            raise UsageError(f"--data {data} and --split {split.value}: --data evaluates the "
                             "given file, --split a part of the run's own data; give one.")
        if data is not None and allow_changed_data:
            raise UsageError("--allow-changed-data: only for the run's own data; --data is "
                             "new data, which is never checked against training.")
        _load_keras(debug)
        from nettrain import reports, train

        echo = lambda text: err.print(text, style="yellow", highlight=False,  # noqa: E731
                                      markup=False, soft_wrap=True)
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            done = train.evaluate(run, split.value if split else None,
                                  format.value if format else None, allow_changed_data, echo,
                                  data_path=data)
        if as_json:
            sys.stdout.write(json.dumps(_finite({"run": str(run), **done.to_json()})) + "\n")
            return
        what = f"--data {data}" if data is not None else f"{done.split} split"
        out.print(f"{run} ({done.format} model, {what}, {done.report['samples']} samples):",
                  highlight=False, markup=False, soft_wrap=True)
        out.print(_metrics_table({data.name if data is not None else done.split: done.metrics}))
        out.print(reports.table(done.report))
        for file in done.files:
            kind = "Confusion matrix" if done.report["kind"] == "classification" else \
                "Predicted against true, and residuals"
            out.print(f"{kind}: {file}", highlight=False, markup=False, soft_wrap=True)


def _finite(value: object) -> object:
    """A JSON-ready copy with NaN and infinities as null (JSON has no such numbers)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


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
    keep: Annotated[Optional[list[str]], typer.Option(
        "--keep", metavar="COLUMN",
        help="Copy this column of the input CSV (an id) into the output, first, as written; "
             "repeat for more. Other columns that are no inputs are ignored.")] = None,
    debug: Debug = False,
) -> None:
    """Predict every row of INPUT: the class and its probabilities, or the values.

    Example: nettrain predict runs/iris/20261122-120000 flowers.csv --keep id -o predictions.csv
    """
    with _errors(debug):
        from nettrain import predict as predicting

        if output is not None:
            predicting.check_output(output)  # at once, not after predicting everything
        _load_keras(debug)
        note = lambda text: err.print(f"Note: {text}", style="yellow",  # noqa: E731
                                      highlight=False, markup=False, soft_wrap=True)
        frames = predicting.predict_chunks(run, input, format.value if format else None,
                                           keep or [], note)
        rows = predicting.write_predictions(frames, output, sys.stdout)
        if output is not None:
            err.print(f"Wrote {rows} predictions to {output}", highlight=False, markup=False)


def _template_names(incomplete: str) -> list[str]:
    from nettrain.starter import templates

    return [name for name in templates() if name.startswith(incomplete)]


@app.command()
def init(
    template: Annotated[Optional[str], typer.Argument(
        autocompletion=_template_names,
        help="The starter config to write (nettrain init --list shows them).")] = None,
    path: Annotated[Optional[Path], typer.Argument(
        help="The config file to write (.yaml or .yml), or a folder for TEMPLATE.yaml "
             "(default: the current folder).")] = None,
    list_templates: Annotated[bool, typer.Option(
        "--list", help="List the templates, one line each.")] = False,
    debug: Debug = False,
) -> None:
    """Write a commented starter config that validates and trains as written.

    Example: nettrain init mlp-classifier digits.yaml

    Templates: mlp-classifier, regression, cnn-images, csv-tabular (with an example CSV
    written beside the config). An existing file is never overwritten.
    """
    with _errors(debug):
        from nettrain import starter

        if list_templates or template is None:
            out.print(starter.listing(), highlight=False, markup=False, soft_wrap=True, end="")
            return
        written = starter.init(template, path)
        out.print(written.report(), highlight=False, markup=False, soft_wrap=True, end="")


@app.command()
def schema(
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", metavar="FILE", help="Write the schema to this file "
                                               "(default: stdout).")] = None,
    debug: Debug = False,
) -> None:
    """Print the JSON Schema of config files, for completion and checks in editors.

    Example: nettrain schema --output nettrain.schema.json

    Then start a config with: # yaml-language-server: $schema=nettrain.schema.json
    """
    with _errors(debug):
        from nettrain.config import schema_json

        text = schema_json()
        if output is None:
            out.print(text, highlight=False, markup=False, soft_wrap=True, end="")
            return
        from nettrain.predict import check_output
        from nettrain.rundir import write_atomic

        check_output(output)
        write_atomic(output, text)
        err.print(f"Wrote {output}", highlight=False, markup=False, soft_wrap=True)


class RunStatus(str, Enum):
    completed = "completed"
    failed = "failed"
    interrupted = "interrupted"
    running = "running"
    stopped = "stopped"
    damaged = "damaged"


class _RunsGroup(Group):
    """``runs [ROOT]`` lists and ``runs compare A B`` compares: when the first word names a
    sub-command it is not taken for ROOT, and options may follow ROOT (``runs ROOT --json``)."""

    _SUB = "nettrain.runs.sub-command"

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:
            ctx.meta[self._SUB] = True
        else:
            ctx.allow_interspersed_args = True
        return super().parse_args(ctx, args)

    def get_params(self, ctx: typer.Context) -> list:
        params = super().get_params(ctx)
        return [p for p in params if not (ctx.meta.get(self._SUB) and p.name == "root")]


runs_app = typer.Typer(cls=_RunsGroup, add_completion=False, pretty_exceptions_enable=False,
                       subcommand_metavar="[compare RUN RUN ...]")
app.add_typer(runs_app, name="runs")


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    root: Annotated[Optional[Path], typer.Argument(
        metavar="ROOT", help="The folder to search for runs, at any depth (default: "
                               "$NETTRAIN_RUNS, else ./runs).", show_default=False)] = None,
    sort: Annotated[Optional[str], typer.Option(
        "--sort", metavar="METRIC", help="Best first by this metric, e.g. val_accuracy "
        "(highest first) or test_loss (lowest first for a loss or an error).")] = None,
    status: Annotated[Optional[RunStatus], typer.Option(
        "--status", help="Only runs with this status.")] = None,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", metavar="N", min=1, help="Show at most N runs.")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the runs as a JSON list (every metric) and nothing else.")] = False,
    debug: Debug = False,
) -> None:
    """List the runs under ROOT, newest first: status, epochs, main metrics, path.

    Example: nettrain runs --status completed --sort val_accuracy --limit 5

    Compare runs: nettrain runs compare RUN RUN [RUN ...]
    """
    if ctx.invoked_subcommand is not None:
        return
    with _errors(debug):
        from nettrain import rundir
        from nettrain import runs as runs_table

        listing = runs_table.list_runs(root or rundir.runs_root(), sort,
                                       status.value if status else None, limit,
                                       explicit=root is not None)
        if as_json:
            out.print_json(data=[row.to_json() for row in listing.rows])
        elif listing.rows:
            out.print(runs_table.runs_table(listing))
            out.print(runs_table.describe(listing), highlight=False, markup=False,
                      soft_wrap=True)
        if not listing.rows:
            err.print(runs_table.empty_message(listing), highlight=False, markup=False,
                      soft_wrap=True)


@runs_app.command("compare")
def runs_compare(
    paths: Annotated[list[Path], typer.Argument(
        metavar="RUN", help="Two or more run directories.", show_default=False)],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Where to write the overlaid history plot (PNG).")
    ] = Path("compare.png"),
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the comparison as JSON and nothing else.")] = False,
    debug: Debug = False,
) -> None:
    """Compare runs side by side: the differing config keys, the metrics, one history plot.

    Example: nettrain runs compare runs/iris/20261122-120000 runs/iris/20261122-130000
    """
    with _errors(debug):
        from nettrain import runs as runs_table

        runs_table.check_output(output)
        comparison = runs_table.compare(paths)
        plot = runs_table.compare_png(comparison, output)
        if as_json:
            out.print_json(data=comparison.to_json(plot))
        else:
            for table in runs_table.compare_tables(comparison):
                out.print(table)
        without = [label for label in comparison.labels if label not in comparison.histories]
        if without:
            err.print(f"No history to plot for {', '.join(without)} (no history.csv rows).",
                      highlight=False, markup=False, soft_wrap=True)
        if plot is not None:
            err.print(f"Wrote the history plot of {len(comparison.histories)} runs to {plot}",
                      highlight=False, markup=False, soft_wrap=True)


if __name__ == "__main__":  # pragma: no cover
    app()
