"""``nettrain runs`` and ``nettrain runs compare``.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from nettrain.cli import common
from nettrain.cli.common import Debug, _errors, app
from nettrain.cli.help import Group
from nettrain.errors import UsageError
from nettrain.text import shown

if TYPE_CHECKING:
    pass


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

    _SUB = "nettrain.runs.table.sub-command"

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:
            ctx.meta[self._SUB] = True
        else:
            ctx.allow_interspersed_args = True
        return super().parse_args(ctx, args)

    def get_params(self, ctx: typer.Context) -> list:
        params = super().get_params(ctx)
        return [p for p in params if not (ctx.meta.get(self._SUB) and p.name == "root")]


def _complete_root(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of ``runs co<TAB>``: the sub-commands that start so, and then the
    folders here that do too (as ROOT); nothing otherwise, so that the shell completes ROOT
    as a path itself (typer's bash script falls back to it)."""
    import os

    names = [name for name in ctx.command.commands if incomplete and name.startswith(incomplete)]
    if not names:
        return []
    with os.scandir(".") as entries:
        folders = sorted(f"{e.name}/" for e in entries
                         if e.name.startswith(incomplete) and e.is_dir())
    return [*names, *folders]


runs_app = typer.Typer(cls=_RunsGroup, add_completion=False, pretty_exceptions_enable=False,
                       subcommand_metavar="[compare RUN RUN ...]")
app.add_typer(runs_app, name="runs")


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    root: Annotated[Optional[Path], typer.Argument(
        metavar="ROOT", help="The folder to search for runs, at any depth (default: "
                               "$NETTRAIN_RUNS, else ./runs).", show_default=False,
        autocompletion=_complete_root)] = None,
    sort: Annotated[Optional[str], typer.Option(
        "--sort", metavar="METRIC", help="Best first by this metric, the way Keras says it "
        "improves: val_accuracy highest first, test_loss lowest first.")] = None,
    status: Annotated[Optional[RunStatus], typer.Option(
        "--status", help="Only runs with this status.")] = None,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", metavar="N", min=1, help="Show at most N runs.")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the runs as a JSON list (every metric) and nothing else.")] = False,
    source: Annotated[Optional[str], typer.Option(
        "--from", metavar="URI", help="List the runs an MLflow store holds instead (its "
        "tracking URI: http://host:5000, sqlite:///runs/mlflow.db).")] = None,
    debug: Debug = False,
) -> None:
    """List the runs under ROOT, newest first: status, epochs, main metrics, path.

    From MLflow: nettrain runs --from http://127.0.0.1:5000

    Example: nettrain runs --status completed --sort val_accuracy --limit 5

    Compare runs: nettrain runs compare RUN RUN [RUN ...]
    """
    if ctx.invoked_subcommand is not None:
        return
    with _errors(debug):
        from nettrain.run import directory as rundir
        from nettrain.runs import table as runs_table
        from nettrain.runs import view

        if source is not None:
            if root is not None:
                raise UsageError(f"ROOT {root} and --from {source}: give one (a folder of "
                                 "run directories, or an MLflow store).")
            from nettrain.runs.stored import list_stored

            listing = list_stored(source, sort, status.value if status else None, limit)
        else:
            listing = runs_table.list_runs(root or rundir.runs_root(), sort,
                                           status.value if status else None, limit,
                                           explicit=root is not None)
        if as_json:
            common.out.print_json(data=[row.to_json() for row in listing.rows])
        elif listing.rows:
            table = view.runs_table(listing)
            if common.out.is_terminal and \
                    common.natural_width(table, common.out) > common.out.width:
                # too narrow: paths and notes below, each whole on its own line
                common.out.print(view.runs_table(listing, whole=False))
                for line in view.paths_below(listing):
                    common.out.print(line, highlight=False, markup=False, soft_wrap=True)
            else:
                common.print_whole(table)
            common.out.print(view.describe(listing), highlight=False, markup=False,
                      soft_wrap=True)
        if not listing.rows:
            common.err.print(view.empty_message(listing), highlight=False, markup=False,
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
        from nettrain.runs import compare as comparing

        comparing.check_output(output)
        comparison = comparing.compare(paths)
        plot = comparing.compare_png(comparison, output)
        if as_json:
            common.out.print_json(data=comparison.to_json(plot))
        else:
            for table in comparing.compare_tables(comparison):
                common.print_whole(table)
        without = [label for label in comparison.labels if label not in comparison.histories]
        if without:
            common.err.print(f"No history to plot for {shown(', '.join(without))} (no "
                             "history.csv rows).",
                      highlight=False, markup=False, soft_wrap=True)
        if plot is not None:
            common.err.print(f"Wrote the history plot of {len(comparison.histories)} runs to "
                             f"{shown(plot)}",
                      highlight=False, markup=False, soft_wrap=True)
