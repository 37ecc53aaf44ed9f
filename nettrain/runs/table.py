"""The runs table (``nettrain runs``): every run under a root, read into rows. No TensorFlow.

A run is a folder that holds ``config.yaml`` and ``run.json`` (see :mod:`nettrain.run.directory`);
``list_runs`` finds them at any depth under a root and reads each into a :class:`RunRow`
without ever raising: a run whose files are damaged or missing is a row with status
``damaged`` and the reason. Only reads: nothing in a run directory is written or created.

Status is ``run.json``'s (completed, failed, interrupted, running), except that a run marked
running whose lock no process holds (see :mod:`nettrain.run.lock`) ended without saying so (killed,
or the machine went down): its status here is ``stopped``, and ``nettrain fit --resume``
continues it.

Metrics are named by split as Keras names validation metrics: ``train_accuracy``,
``val_loss``, ``test_accuracy`` (from ``metrics.json``, written when a fit completes).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nettrain.errors import ConfigError, Problem, UsageError, did_you_mean
from nettrain.run import directory as rundir
from nettrain.run import history
from nettrain.run import lock
from nettrain.run.record import Damaged, RunRecord
from nettrain.text import command

STATUSES = ("completed", "failed", "interrupted", "running", "stopped", "damaged")
PREFIXES = {"train": "train_", "validation": "val_", "test": "test_"}
SPLIT_NAMES = {"train_": "train", "val_": "val", "test_": "test"}  # the split column's words
COMPARE_PNG = "compare.png"
MISSING = object()  # a config key a run does not have (runs compare)

# The other files fit writes: beside one of config.yaml and run.json they make a folder a run
# (a damaged one), where a lone config.yaml may be a folder of configs.
_ALSO = (rundir.DATASET, rundir.SUMMARY, rundir.HISTORY, rundir.METRICS)


@dataclass
class RunRow:
    """One run as the table shows it.

    ``metrics`` are flat (``val_accuracy``), only for a completed run (another run's
    ``metrics.json`` is about the model before it was resumed). ``note`` says why a run is
    damaged or stopped, or what failed; ``directions`` as fit recorded them (run.json).
    """

    path: Path
    name: str
    status: str
    started: str | None = None
    ended: str | None = None
    epochs: int | None = None
    planned: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    note: str | None = None
    directions: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "status": self.status,
                "started": self.started, "ended": self.ended, "epochs": self.epochs,
                "planned_epochs": self.planned,
                "metrics": {k: _finite(v) for k, v in self.metrics.items()}, "note": self.note}


class _Damaged(Exception):
    """A run directory's file is missing or unreadable (the message is the short reason)."""


def direction_of(metric: str, rows: list[RunRow]) -> str | None:
    """Which way ``metric`` (``val_accuracy``, ``test_loss``) improves for ``rows``: as Keras
    said at fit time (a run's recorded directions), else as Keras makes it of an older run's
    config (only then is Keras loaded); None when Keras cannot tell (``true_positives``)."""
    from nettrain.model import direction

    def asked(row: RunRow) -> str | None:
        if row.directions is not None:
            return direction.of(metric, row.directions)
        with contextlib.suppress(_Damaged):  # (runs --from: a folder of another machine)
            return direction.of(metric, direction.of_config(_config(row.path)))
        return None

    records_first = sorted(rows, key=lambda row: row.directions is None)
    return next(filter(None, map(asked, records_first)), None) or \
        direction.of(metric, direction.of_config({}))  # Keras's own rule: loss goes down


def is_run(path: Path, files: list[str] | None = None) -> bool:
    """Whether ``path`` is a run directory (or what is left of one: see ``_ALSO``).

    Args:
        files: the names of the files in ``path``, when known (saves looking).
    """
    names = (rundir.CONFIG, rundir.RUN, *_ALSO)
    has = set(names).intersection(files) if files is not None else \
        {name for name in names if (path / name).is_file()}
    main = has & {rundir.CONFIG, rundir.RUN}
    return len(main) == 2 or bool(main and has & set(_ALSO))


def find_runs(root: Path) -> list[Path]:
    """Every run directory under ``root`` (``root`` itself included), at any depth.

    Hidden folders, the inside of a run (checkpoints, saved_model) and an MLflow store's
    folders (``mlartifacts``, ``mlruns``: :data:`nettrain.run.directory.NOT_RUNS`, copies of
    runs' files) are not searched; symbolic links to folders are not followed.
    """
    found = []
    for folder, dirs, files in os.walk(root):
        if is_run(Path(folder), files):
            found.append(Path(folder))
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in rundir.NOT_RUNS)
    return found


def read_run(path: Path) -> RunRow:
    """The table row of the run directory ``path``; never raises (a damaged run is a row)."""
    name = path.name
    try:
        config = _config(path)
        if isinstance(config.get("name"), str):
            name = config["name"]
        record = _record(path)
        status = record.get("status")
        if status not in STATUSES[:4]:
            raise _Damaged(f"{rundir.RUN} holds no known status (received {status!r}; "
                           f"expected one of {', '.join(STATUSES[:4])})")
        row = RunRow(path, name, status, _text(record.get("started")),
                     _text(record.get("ended")), planned=_int(_get(config, "fit", "epochs")))
        if not (path / rundir.DATASET).is_file():
            raise _Damaged(f"{rundir.DATASET} is missing (the run's columns and classes)")
        if status == "running":
            row.status, row.note = _running(path)
        done = record.get("epochs_completed")
        row.epochs = done if isinstance(done, int) and row.status not in ("running", "stopped") \
            else _history_rows(path / rundir.HISTORY)
        if row.status == "failed":
            row.note = _first_line(record.get("error")) or "failed (run.json gives no error)"
        if row.status == "completed":
            row.metrics = _metrics(path)
            saved = record.get("saved") if isinstance(record.get("saved"), list) else []
            missing = [str(f) for f in saved if not (path / str(f)).exists()]
            if missing:
                raise _Damaged(f"{', '.join(missing)} missing (run.json says it "
                               "was saved)")
        row.directions = known if isinstance(known := record.get("directions"), dict) else None
        return row
    except _Damaged as exc:
        started = None
        with contextlib.suppress(Exception):  # best effort: a start time to order it by
            started = _text(RunRecord(path).read().get("started"))
        return RunRow(path, name, "damaged", started, note=str(exc))


def _running(path: Path) -> tuple[str, str | None]:
    """A run marked running: running while a process holds its lock, else stopped."""
    holder = lock.holder(path)
    if holder is not None:
        who = f"pid {holder['pid']} on {holder.get('host')}" if "pid" in holder else None
        return "running", who and f"trained by {who}"
    # Its process may have ended (and marked it) between reading run.json and the lock test.
    status = _record(path).get("status")
    if status != "running":
        return str(status), None
    return "stopped", ("ended unmarked (killed?); to continue: "
                       f"{command('nettrain', 'fit', '--resume', path)}")


def _config(path: Path, whole: bool = False) -> dict[str, Any]:
    """A run's config.yaml as a mapping; _Damaged when it is missing or not a mapping.

    Args:
        whole: every value will be walked (``runs compare``): read it as a config is read,
            refusing aliases that expand past bounds (:func:`nettrain.config.reading.read_yaml`).
            Otherwise (the table reads a name and a number) libyaml's safe loader reads it,
            about ten times faster; it never expands an alias.
    """
    import yaml

    from nettrain.config.reading import MAX_FILE_BYTES, read_yaml

    file = path / rundir.CONFIG
    if not file.is_file():
        raise _Damaged(f"{rundir.CONFIG} is missing")
    try:
        if whole:
            return read_yaml(file)[0]
        with file.open("rb") as f:
            data = yaml.load(f.read(MAX_FILE_BYTES),  # noqa: S506 (a safe loader)
                             Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except ConfigError as exc:  # names the file, the line and what is wrong
        raise _Damaged(str(exc)) from None
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: not UTF-8
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        why = (f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark and problem
               else " ".join(str(exc).split())[:80])
        raise _Damaged(f"{rundir.CONFIG} is not valid YAML ({why})") from None
    if not isinstance(data, dict):
        raise _Damaged(f"{rundir.CONFIG} holds a {type(data).__name__}, not a mapping")
    return data


def _record(path: Path) -> dict[str, Any]:
    """The run's record (run.json, :class:`RunRecord`); _Damaged when it is missing or damaged."""
    record = RunRecord(path)
    if not record.exists:
        raise _Damaged(f"{rundir.RUN} is missing")
    try:
        return record.read()
    except Damaged as exc:
        raise _Damaged(exc.note) from None


def _json(path: Path) -> dict[str, Any]:
    """A JSON object of the run directory; _Damaged with a short reason when it is not one."""
    try:
        return rundir.json_object(path)
    except FileNotFoundError:
        raise _Damaged(f"{path.name} is missing") from None
    except rundir.Unreadable as exc:
        raise _Damaged(f"{path.name} {exc.what}") from None


def _metrics(path: Path) -> dict[str, float]:
    """``metrics.json`` as flat names: ``{'test': {'loss': 0.3}}`` -> ``{'test_loss': 0.3}``."""
    flat = {}
    for split, values in _json(path / rundir.METRICS).items():
        if not isinstance(values, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values()):
            raise _Damaged(f"{rundir.METRICS}: expected numbers for each split; {split!r} "
                           f"holds {json.dumps(values)[:60]}")
        prefix = PREFIXES.get(split, f"{split}_")
        flat.update({prefix + name: float(value) for name, value in values.items()})
    return flat


def _history_rows(path: Path) -> int | None:
    """The epochs in ``history.csv`` (its rows after the header); None without one."""
    return None if (rows := history.read(path)) is None else len(rows)


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _first_line(value: Any, width: int = 120) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    line = " ".join(value.strip().splitlines()[0].split())
    return line if len(line) <= width else line[:width].rsplit(" ", 1)[0] + " ..."


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


# ----------------------------------------------------------------------------- the table


@dataclass
class Listing:
    """What ``nettrain runs`` shows: the rows, and how they were chosen."""

    root: Path | str  # a folder, or an MLflow store's URI (runs --from)
    rows: list[RunRow]
    found: int
    sort: str | None = None
    status: str | None = None
    way: str | None = None  # which way sort's metric improves (None: Keras cannot tell)


def list_runs(root: Path, sort: str | None = None, status: str | None = None,
              limit: int | None = None, explicit: bool = True) -> Listing:
    """The runs under ``root``, newest first (or best first by the metric ``sort``).

    Args:
        root: the folder to search (a run directory itself lists that run).
        sort: a metric name (``val_accuracy``): best first, the way Keras says it improves
            (:func:`direction_of`; else highest first); runs without it come last.
        status: keep only runs with this status (one of :data:`STATUSES`).
        limit: show at most this many.
        explicit: the user named ``root`` (default True); a default root that does not exist
            yet is an empty listing, a named one a UsageError.

    Raises UsageError for a root that is a file or does not exist, or an unknown metric.
    """
    if root.exists() and not root.is_dir():
        raise UsageError(f"ROOT: expected a folder of run directories; received '{root}', "
                         "which is a file.")
    if not root.exists():
        if explicit:
            raise UsageError(f"ROOT: expected a folder of run directories; received '{root}', "
                             "which does not exist. Runs are under $NETTRAIN_RUNS, else ./runs.")
        return Listing(root, [], 0, sort, status)
    rows = [read_run(path) for path in find_runs(root)]
    rows.sort(key=lambda row: (row.started or _mtime(row.path), str(row.path)), reverse=True)
    return choose(rows, root, sort, status, limit)


def choose(rows: list[RunRow], root: Path | str, sort: str | None = None,
           status: str | None = None, limit: int | None = None) -> Listing:
    """The listing of ``rows`` (newest first): best first by ``sort``, only ``status``, at
    most ``limit`` (see :func:`list_runs`); ``root`` is where they were found (a folder, or
    an MLflow store's URI for ``runs --from``)."""
    found, way = len(rows), None
    if sort is not None and rows:  # no runs at all: the empty listing says how to train
        present = list(dict.fromkeys(name for row in rows for name in row.metrics))
        if sort not in present:
            guess = did_you_mean(sort, present)
            raise UsageError(Problem(
                "--sort", f"a metric of the runs under {root} "
                f"({', '.join(present) if present else 'none has metrics yet'})",
                repr(sort), f"Did you mean '{guess}'?" if guess else None))
        way = direction_of(sort, [row for row in rows if sort in row.metrics])
        sign = 1 if way == "min" else -1
        rows.sort(key=lambda row: (sort not in row.metrics or math.isnan(row.metrics[sort]),
                                   sign * row.metrics.get(sort, 0.0)))
    if status is not None:
        rows = [row for row in rows if row.status == status]
    return Listing(root, rows[:limit] if limit else rows, found, sort, status, way)


def _mtime(path: Path) -> str:
    """A folder's modification time in run.json's form (orders a run with no start time)."""
    try:
        stamp = path.stat().st_mtime
    except OSError:
        return ""
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="seconds")


def row_split(row: RunRow) -> str | None:
    """The prefix of the split a row's numbers are shown of: test if the run has it, else
    validation, else train (a run whose data has only a train split); None: no metrics."""
    return next((p for p in ("test_", "val_", "train_") if any(n.startswith(p)
                                                              for n in row.metrics)), None)


def metric_columns(rows: list[RunRow], sort: str | None = None) -> list[str]:
    """The metrics worth a column for these rows: of one split (test if a run has it, else
    validation, else train) the most common metric besides the loss, then the loss; and the
    sort metric. Rows whose splits differ (a run with only a train split among held-out ones)
    get bare names (``accuracy``, ``loss``), each row's of its own split (:func:`row_split`),
    which a ``split`` column names. ``--json`` gives every metric."""
    splits = {row_split(row) for row in rows} - {None}
    if len(splits) > 1:
        names = [n[len(p):] for row in rows for n in row.metrics
                 if n.startswith(p := row_split(row) or "")]
        prefix = ""
    else:
        prefix = next(iter(splits), "train_")
        names = [n[len(prefix):] for row in rows for n in row.metrics if n.startswith(prefix)]
    others = [n for n in names if n != "loss"]
    columns = [prefix + max(dict.fromkeys(others), key=others.count)] if others else []
    columns += [prefix + "loss"] if "loss" in names else []
    return columns + ([sort] if sort and sort not in columns else [])


def metric_value(row: RunRow, column: str) -> float | None:
    """A row's number for a column of :func:`metric_columns`: a bare name is of the row's
    own split."""
    if column.startswith(tuple(SPLIT_NAMES)):
        return row.metrics.get(column)
    split = row_split(row)
    return row.metrics.get(split + column) if split else None
