"""A table's cell problems found together: once one cell of a file is refused, every column is
surveyed and all its problems (text in a number column, empty cells, non-finite numbers,
fractions in whole-number categories) are reported in one error, each with its advice; a
column of names or IDs gets the advice to leave it out of the inputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nettrain.errors import DataError, DataProblems

# What a non-number calls for: in an input column of training data, in a target or a
# sample-weight column (which cannot be categories), in a column of whole-number categories.
NUMBERS_ADVICE = "List it in data.categorical to encode it as categories."
TARGET_ADVICE = ("A regression target (data.target) must hold numbers; for class names use one "
                 "target column and a classification loss.")
WEIGHT_ADVICE = "Sample weights (data.sample_weight) must be numbers."
WHOLE_NUMBERS_ADVICE = "Its categories are whole numbers (as in the training rows): give one."
SHOWN_ROWS = 3  # the rows named per column: the first, and two more after it
ID_VALUES = 10  # an ID-like column has at least this many different values ...
ID_SHARE = 0.5  # ... and at least this share of its cells differ from each other


def together(first: DataError, frame: Any, name: str, features: Sequence[str],
             kinds: dict[str, str], targets: Sequence[str] = (), weight: Sequence[str] = (),
             fill: Callable[[Any], Any] | None = None, advice: str = NUMBERS_ADVICE,
             part: bool = False) -> DataError:
    """The error to raise for ``first``, the first problem found in ``frame`` (a file ``name``
    or a chunk of it, ``part``): :class:`DataProblems` listing every problem of its cells, or
    ``first`` itself where the survey finds none (a problem of another kind).

    ``kinds``: each feature's kind ('numeric', 'integer', 'string'); ``fill``: data.missing
    applied to the frame (raising for an empty cell it does not allow); ``advice``: what
    text in a number column of the features calls for (training: list it in
    data.categorical; then a column of names or IDs is told to leave the inputs instead)."""
    found = problems(frame, features, kinds, targets, weight, fill, advice, part)
    return DataProblems(name, found) if found else first


def problems(frame: Any, features: Sequence[str], kinds: dict[str, str],
             targets: Sequence[str] = (), weight: Sequence[str] = (),
             fill: Callable[[Any], Any] | None = None, advice: str = NUMBERS_ADVICE,
             part: bool = False) -> list[str]:
    """Every problem of the cells of ``frame``'s ``features``, ``targets`` and ``weight``
    columns, one line each (see :func:`together`)."""
    columns = [c for c in dict.fromkeys([*features, *targets, *weight]) if c in frame.columns]
    frame = frame[columns]
    found = []
    if fill is not None:
        try:
            fill(frame)
        except DataError as exc:  # its own message, counts included, without the file name
            found.append(str(exc).split(": ", 1)[-1])
    where = f" in rows {frame.index[0] + 2} to {frame.index[-1] + 2}" if part and len(frame) \
        else ""
    numbers = {c: advice for c in features if kinds.get(c, "numeric") == "numeric"}
    numbers.update({c: WHOLE_NUMBERS_ADVICE for c in features if kinds.get(c) == "integer"})
    single = len(targets) == 1 and _is_text(frame[targets[0]])  # class names: not numbers
    numbers.update({c: TARGET_ADVICE for c in targets if not single})
    numbers.update({c: WEIGHT_ADVICE for c in weight})
    ids = [c for c in features if advice == NUMBERS_ADVICE and c in numbers
           and looks_like_ids(frame[c])]
    for column, say in numbers.items():
        if column in ids:
            say = leave_out_advice(frame[column], [c for c in features if c not in ids])
        found += _column_problems(frame[column], column, say, where, kinds.get(column))
    return found


def looks_like_ids(column: Any) -> bool:
    """Whether a column holds names or IDs rather than numbers or categories: mostly text,
    and nearly a value per row (at least :data:`ID_VALUES` values, :data:`ID_SHARE` of its
    cells), such as titanic's ``Name`` or mtcars's ``model``."""
    import pandas as pd

    cells = column.dropna()
    text = pd.to_numeric(cells, errors="coerce").isna()
    distinct = cells[text].nunique()
    return bool(len(cells)) and text.mean() >= 0.5 and distinct >= ID_VALUES and \
        distinct >= ID_SHARE * len(cells)


def leave_out_advice(column: Any, others: list[str]) -> str:
    """What to do with a column of names or IDs: leave it out (``data.features`` listing
    ``others``, written to paste into the config), not make each row a category."""
    import yaml

    cells = column.dropna()
    listed = yaml.safe_dump(others, default_flow_style=True, allow_unicode=True,
                            width=2**31).strip()
    keep = f"data.features: {listed}" if others else "data.features, listing the columns to use"
    return (f"It looks like names or IDs ({cells.nunique()} different values in {len(cells)} "
            f"rows): a category of its own for nearly every row teaches the model nothing. "
            f"Leave it out of the inputs with {keep}")


def _column_problems(column: Any, name: str, advice: str, where: str,
                     kind: str | None) -> list[str]:
    """The problems of one column that must hold numbers: text, then values that are not
    finite 32-bit floats, then (``kind`` 'integer') fractions; empty cells are data.missing's."""
    import pandas as pd

    values = pd.to_numeric(column, errors="coerce")
    text = values.isna() & column.notna()
    if text.any():
        return [f"column '{name}' must be numeric; "
                f"{_rows(column, text.to_numpy(), where, repr)}. {advice}"]
    with np.errstate(over="ignore", invalid="ignore"):
        numbers = values.to_numpy(dtype="float64")
        wide = numbers.astype("float32")
    infinite = ~np.isfinite(wide) & ~np.isnan(numbers)
    if infinite.any():
        return [f"column '{name}' {_rows(column, infinite, where, str)}, which is not a finite "
                "32-bit number (at most about 3.4e38 in size). Replace the value, or drop the "
                "row."]
    fraction = ~np.isnan(numbers) & ((numbers != np.round(numbers)) | (np.abs(numbers) > 2**53))
    if kind == "integer" and fraction.any():
        return [f"column '{name}' holds whole-number categories; "
                f"{_rows(column, fraction, where, repr)}. {WHOLE_NUMBERS_ADVICE}"]
    return []


def _rows(column: Any, bad: np.ndarray, where: str, show: Callable[[Any], str]) -> str:
    """'row 3 holds 'x'', and for more rows how many and the next ones: 'row 3 holds 'x' (and
    4 more rows: row 7 'y', row 9 'z', ...)' (rows as lines of the file; a chunk of a file
    read in parts says which: '(and 4 more in rows 2 to 65537: ...)')."""
    at = np.flatnonzero(bad)
    rows, cells = column.index[at] + 2, column.iloc[at]
    text = f"row {rows[0]} holds {show(cells.iloc[0])}"
    if len(at) > 1:
        named = ", ".join(f"row {r} {show(v)}" for r, v in
                          zip(rows[1:SHOWN_ROWS], cells.iloc[1:SHOWN_ROWS]))
        rows_word = where or f" row{'s' if len(at) > 2 else ''}"
        text += f" (and {len(at) - 1} more{rows_word}: {named}" \
            f"{', ...' if len(at) > SHOWN_ROWS else ''})"
    return text


def _is_text(column: Any) -> bool:
    """Whether a column was read as text (not numbers): class names, or a bad cell."""
    import pandas as pd

    return not pd.api.types.is_numeric_dtype(column)
