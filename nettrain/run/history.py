"""A run's ``history.csv`` (Keras's CSVLogger file, a row per epoch): its one reader.

fit's best epoch and its picture, the live display's resume, ``runs``, ``runs compare`` and
the MLflow upload all read the file through :func:`read`, so an ``NA`` (Keras's CSVLogger
writes it where a run has no validation value), an empty cell or a cut-off row mean the same
everywhere: a value that is not there (NaN). :func:`header` and :func:`keep_epochs` are what
the writer (the run's HistoryLog) and a resume need of the same file. No TensorFlow here.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nettrain.run.directory import replacing

if TYPE_CHECKING:
    import pandas as pd

# history.csv's columns that are no metric: the epoch, the learning rate Keras logs, and the
# flag nettrain's fine-tuning phase writes (1.0 from the epoch it starts: engine.phases).
FINE_TUNE = "fine_tune"
NOT_METRICS = ("epoch", "learning_rate", "lr", FINE_TUNE)


@dataclass(frozen=True)
class History:
    """The rows of a history file: ``columns`` as its header names them (``epoch`` first),
    each row a column -> number mapping, NaN where a cell is NA, empty, missing or not a
    number."""

    columns: list[str]
    rows: list[dict[str, float]]

    def __len__(self) -> int:
        return len(self.rows)

    def epoch(self, index: int) -> int | None:
        """Row ``index``'s epoch (from 0, as Keras counts; the row's index in a file without
        an ``epoch`` column); None when its cell is no number."""
        value = self.rows[index].get("epoch", float(index))
        return int(value) if math.isfinite(value) else None

    def with_values(self) -> list[str]:
        """The columns with at least one finite value (a column of NA only, the ``val_loss``
        of an older run without validation, has none)."""
        return [c for c in self.columns if any(math.isfinite(r[c]) for r in self.rows)]

    def frame(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame (NaN where a value is not there), for plots."""
        import pandas as pd

        frame = pd.DataFrame(self.rows, columns=self.columns)
        if "epoch" in frame and frame["epoch"].notna().all():
            frame["epoch"] = frame["epoch"].astype(int)
        return frame


def read(path: Path) -> History | None:
    """The history file ``path``; None when it is missing or cannot be read (not UTF-8, not
    CSV). A file with only its header, or empty, has no rows.

    Example: ``read(run / "history.csv").rows[0]`` -> ``{'epoch': 0.0, 'loss': 0.93,
    'val_loss': nan}`` for a first row ``0,0.93,NA``.
    """
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            # a row longer than the header puts its extra cells under None: not a column
            rows = [{k: _float(v) for k, v in row.items() if isinstance(k, str)}
                    for row in reader]
            columns = list(reader.fieldnames or [])
    except (OSError, ValueError, csv.Error):  # missing, not UTF-8, not CSV
        return None
    return History(columns, [{c: row.get(c, math.nan) for c in columns} for row in rows])


def _float(text: Any) -> float:
    """A cell as a number; NaN for NA, an empty or missing cell or anything else."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def header(path: Path, sep: str = ",") -> list[str]:
    """The names of the file's header (none for a missing or empty file)."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return next(csv.reader(f, delimiter=sep), [])


def keep_epochs(path: Path, epochs: int) -> None:
    """Keep the header and the rows of the first ``epochs`` epochs (a killed epoch may have
    left a row): what a resume does to the run's history and each CSVLogger's file.

    Lines end as Keras's CSVLogger ends them (the csv module's ``\\r\\n``), so the rows it
    appends next match the ones kept.
    """
    if path.is_file():
        lines = path.read_bytes().splitlines()[: 1 + epochs]
        end = csv.excel.lineterminator.encode()
        with replacing(path) as tmp:
            tmp.write_bytes(b"".join(line + end for line in lines))
