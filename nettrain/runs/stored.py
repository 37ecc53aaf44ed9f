"""``nettrain runs --from URI``: the runs an MLflow store holds, as rows of the runs table.

The rows come from :func:`nettrain.tracking.store.stored_runs` (the final metrics logged as
``final/<metric>``, the status and epochs nettrain tagged), so the table has the same
columns as for run directories; the path column is the run directory on the machine that
trained it.
"""

from __future__ import annotations

from pathlib import Path

from nettrain.errors import RunError, UsageError
from nettrain.runs.table import STATUSES, Listing, RunRow, choose
from nettrain.text import redacted


def list_stored(uri: str, sort: str | None = None, status: str | None = None,
                limit: int | None = None, experiment: str | None = None) -> Listing:
    """The nettrain runs of the MLflow store ``uri`` (one ``experiment``, or all), newest
    first, chosen as :func:`nettrain.runs.table.list_runs` chooses. UsageError without
    MLflow or for a SQLite file that does not exist; RunError when the store cannot be read
    (its server away)."""
    from nettrain.config.sections import MLFLOW_INSTALL, mlflow_installed
    from nettrain.tracking.store import check_named, one_line, stored_runs

    if not mlflow_installed():
        raise UsageError(f"--from {redacted(uri)}: reading an MLflow store needs MLflow, "
                         f"which is not installed here. Install it: {MLFLOW_INSTALL}")
    check_named(uri, "--from")  # its form: a typo in the scheme is exit 2, not a server away
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise UsageError(f"--from {uri}: expected an MLflow SQLite store; "
                         f"{uri.removeprefix('sqlite:///')} does not exist. The default store "
                         "of tracked runs is sqlite:///<runs folder>/mlflow.db.")
    try:
        found = stored_runs(uri, experiment)
    except RunError as exc:  # nettrain's own words: a damaged store, which file, what to do
        raise RunError(f"--from {redacted(uri)}: {exc}") from None
    except Exception as exc:  # noqa: BLE001  (a server away, refusing, not MLflow)
        raise RunError(f"--from {redacted(uri)}: the MLflow store could not be read: "
                       f"{one_line(exc, 200)}. Check the URI (http://host:5000, "
                       "sqlite:///runs/mlflow.db) and that its server runs.") from None
    rows = []
    for run in found:
        status_text = run["status"] if run["status"] in STATUSES else "damaged"
        rows.append(RunRow(Path(run["run_dir"] or run["run_id"]),
                           run.get("name") or run["run_id"], status_text, run["started"],
                           run["ended"], run["epochs"], run["planned"], run["metrics"],
                           None if status_text != "damaged" else
                           f"MLflow run {run['run_id']} has status {run['status']}",
                           run.get("directions")))
    return choose(rows, redacted(uri), sort, status, limit)
