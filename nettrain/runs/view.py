"""How a listing of runs looks in the terminal (``nettrain runs``): the rich table, the paths
under a narrow one, the line under it and the message when no run is shown. No TensorFlow."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from nettrain.runs.table import SPLIT_NAMES, Listing, RunRow, metric_columns, metric_value, \
    row_split
from nettrain.text import shown

if TYPE_CHECKING:
    from rich.table import Table


def local_time(stamp: str | None) -> str:
    """run.json's UTC time as local time to the minute: ``2026-11-25 15:56``."""
    if not stamp:
        return ""
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return ""


def epochs_text(row: RunRow) -> str:
    done = "?" if row.epochs is None else str(row.epochs)
    return done if row.planned is None else f"{done}/{row.planned}"


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def runs_table(listing: Listing, whole: bool = True) -> Table:
    """The rich table of a listing: name, started, status, epochs, main metrics, path (and a
    note column when a run is damaged, stopped or failed).

    Args:
        whole: with the path and note columns; else a ``#`` column instead, for
            :func:`paths_below` to give each run's path and note on lines of their own.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    columns = metric_columns(listing.rows, listing.sort)
    mixed = any(not c.startswith(tuple(SPLIT_NAMES)) for c in columns)
    notes = whole and any(row.note for row in listing.rows)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
    if not whole:
        table.add_column("#", justify="right", no_wrap=True)
    table.add_column("name", overflow="fold", min_width=6)
    table.add_column("started", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("epochs", justify="right", no_wrap=True)
    if mixed:  # bare metric names: each row's of its own split
        table.add_column("split", no_wrap=True)
    for name in columns:  # "val" over "accuracy": the table fits 80 columns
        table.add_column(Text(shown(name).replace("_", "\n", 1)), justify="right",
                         no_wrap=True)
    if whole:  # a path and a note (a command to copy) are never folded
        table.add_column("path", no_wrap=True, overflow="ignore")
    if notes:
        table.add_column("note", no_wrap=True, overflow="ignore")
    for i, row in enumerate(listing.rows, 1):  # Text: never read as rich markup
        table.add_row(*([str(i)] if not whole else []), Text(shown(row.name)),
                      local_time(row.started), _status_text(row.status), epochs_text(row),
                      *([SPLIT_NAMES.get(row_split(row) or "", "-")] if mixed else []),
                      *(number(metric_value(row, c)) for c in columns),
                      *([Text(shown(row.path))] if whole else []),
                      *([Text(shown(row.note or ""))] if notes else []))
    return table


def paths_below(listing: Listing) -> list[str]:
    """Each run's path (and note) on lines of its own, numbered as in ``runs_table(listing,
    whole=False)``: what a terminal too narrow for the whole table shows under it."""
    lines = []
    for i, row in enumerate(listing.rows, 1):
        lines.append(f"{i:>{len(str(len(listing.rows)))}}  {shown(row.path)}")
        if row.note:
            lines.append(f"{'':>{len(str(len(listing.rows)))}}  {shown(row.note)}")
    return lines


def _status_text(status: str) -> Any:
    from rich.text import Text

    style = {"completed": "green", "failed": "red", "damaged": "red", "interrupted": "yellow",
             "stopped": "yellow", "running": "cyan"}[status]
    return Text(status, style=style)


def describe(listing: Listing) -> str:
    """The line under the table: how many runs, and how they are ordered."""
    count = len(listing.rows)
    text = f"{count} of {listing.found} runs" if count != listing.found else \
        f"{count} run{'s' if count != 1 else ''}"
    text += f" {_where(listing)} {shown(listing.root)}"
    if listing.status:
        text += f" (status {listing.status})"
    if listing.sort:
        text += (f", sorted by {shown(listing.sort)}, "
                 f"{'lowest' if listing.way == 'min' else 'highest'} first")
        if listing.way is None:
            text += f" (Keras cannot tell which way {shown(listing.sort)} improves)"
    else:
        text += ", newest first"
    return text + "."


def _where(listing: Listing) -> str:
    """'under' a folder, 'in' an MLflow store (``runs --from URI``)."""
    return "in" if isinstance(listing.root, str) else "under"


def empty_message(listing: Listing) -> str:
    """What to say when no run is shown: where nothing was found, and how to get runs."""
    if listing.found:
        return (f"No run {_where(listing)} {shown(listing.root)} has status {listing.status} "
                f"({listing.found} run{'s' if listing.found != 1 else ''} in all).")
    if isinstance(listing.root, str):  # an MLflow store (runs --from)
        return (f"No nettrain runs in {listing.root}. Log some with: nettrain fit CONFIG "
                f"--track {listing.root}, or upload run directories: nettrain track RUN "
                f"--uri {listing.root}")
    return (f"No runs under {shown(listing.root)}. Train one with: nettrain fit CONFIG "
            "(e.g. nettrain fit configs/xor.yaml); runs go under $NETTRAIN_RUNS, else ./runs.")


