"""Reading CSV files: the one reader of training, streaming, explicit validation and test
files, ``evaluate --data``, ``predict`` and ``--keep``.

Every file is read by one ``pandas.read_csv`` call path under a :class:`CsvRule`, which fit
decides and records in ``dataset.json`` (``"csv_reading"``) and every later reader applies
unchanged: categorical columns are read as the text written in the file ('02134', 'true',
'NA' stay as written) and only an empty cell is missing in them; numeric columns count
pandas's usual markers ('', 'NA', 'nan', ...) as missing. A header that names a column twice,
or a row with more or fewer fields than its header, is refused naming the file and the line
(:class:`nettrain.errors.InputError`, exit 2): pandas would otherwise rename the column, shift
every field, or read the fields a cut line lacks as missing, silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nettrain.data.columns import input_names, names_of
from nettrain.errors import DataError, InputError

# The cell texts pandas reads as missing by default (pandas 2 and 3): kept here, not taken
# from pandas, so that a run reads its files the same way under a later pandas.
PANDAS_MISSING = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
                  "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan",
                  "null")


@dataclass(frozen=True)
class CsvRule:
    """How a run reads the cells of its CSV files.

    ``categories``: 'text' reads categorical columns as the text written in the file;
    'inferred' (runs recorded before the rule) as pandas guesses them (numbers, booleans).
    ``missing_numbers`` / ``missing_categories``: the cell texts that are missing in a
    numeric (or target, or weight) column and in a categorical one.
    ``inputs``: (column, input name) pairs as the run recorded them, so that its data read
    again (evaluate, resume, export) takes the names its model takes; empty for a new run.
    """

    categories: str = "text"
    missing_numbers: tuple[str, ...] = PANDAS_MISSING
    missing_categories: tuple[str, ...] = ("",)
    inputs: tuple[tuple[str, str], ...] = ()

    def input_names(self, features: list[str]) -> dict[str, str]:
        """Column -> model input name: the run's (``inputs``), else a new run's
        (:func:`nettrain.data.columns.input_names`)."""
        recorded = dict(self.inputs)
        if recorded and all(column in recorded for column in features):
            return {column: recorded[column] for column in features}
        return input_names(features)

    def to_json(self) -> dict[str, Any]:
        return {"categories": self.categories,
                "missing": {"numbers": list(self.missing_numbers),
                            "categories": list(self.missing_categories)}}

    @classmethod
    def of(cls, info: dict[str, Any] | None) -> CsvRule:
        """The rule a run recorded in its ``dataset.json`` (``info``). One recorded before
        the rule existed reads as it was trained: categories as pandas inferred them, and
        pandas's missing markers in every column. None (a new run): today's rule."""
        if info is None:
            return cls()
        recorded = info.get("csv_reading")
        inputs = tuple(names_of(info).items())
        if not isinstance(recorded, dict):
            return cls("inferred", PANDAS_MISSING, PANDAS_MISSING, inputs)
        missing = recorded.get("missing") or {}
        return cls(str(recorded.get("categories", "text")),
                   tuple(missing.get("numbers", PANDAS_MISSING)),
                   tuple(missing.get("categories", ("",))), inputs)


RULE = CsvRule()  # what fit decides and records today


def read_header(path: Path, delimiter: str, key: str) -> list[str]:
    """The column names of a CSV's first line, as pandas names them (an empty name is
    'Unnamed: i'). A name given twice, or a first row with more fields than the header, is an
    InputError naming ``key``, the file and the line."""
    import pandas as pd

    try:  # the header and the first row, as written: a longer first row fails here
        head = pd.read_csv(path, sep=delimiter, header=None, nrows=2, dtype=str,
                           keep_default_na=False, index_col=False)
    except pd.errors.ParserError as exc:
        raise _malformed(exc, path, delimiter, key) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{key}: cannot read {path} as CSV: {exc}") from None
    names = [str(n) for n in head.iloc[0].tolist()] if len(head) else []
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name and name in seen:
            raise InputError(f"{key}: line 1 of {path} (the header) names the column {name!r} "
                             f"twice (columns {seen[name] + 1} and {i + 1}). Give each column "
                             "a name of its own.")
        seen.setdefault(name, i)
    return [name or f"Unnamed: {i}" for i, name in enumerate(names)]


def read_csv(path: Path, delimiter: str, key: str, rule: CsvRule = RULE,
             categorical: Sequence[str] = (), rows: int | None = None,
             columns: Sequence[str] | None = None, verbatim: bool = False) -> Iterator[Any]:
    """A CSV as pandas DataFrames of ``rows`` rows each (default: one, the whole file), each
    indexed by its rows' numbers (0: the row after the header), read under ``rule``: the
    ``categorical`` columns as text with only ``rule.missing_categories`` missing, the others
    with ``rule.missing_numbers`` missing. ``columns``: read only these; ``verbatim``: every
    cell as the text written, none missing (``predict --keep``).

    Errors name ``key`` (``data.csv``, ``--data``, ``INPUT``) and the file: InputError for a
    column named twice or a row with more or fewer fields than the header (with its line),
    DataError for a file that is no CSV.
    """
    import numpy as np
    import pandas as pd

    names = read_header(path, delimiter, key)
    # The last column is read too: a row with fewer fields than the header has it empty.
    read = None if columns is None else list(dict.fromkeys([*columns, names[-1]]))
    options: dict[str, Any] = {"sep": delimiter, "index_col": False, "keep_default_na": False,
                               "usecols": read}
    if verbatim:
        options.update(dtype=str, na_filter=False)
    else:
        text = set(categorical)
        options["na_values"] = {n: list(rule.missing_categories if n in text
                                        else rule.missing_numbers) for n in names}
        if rule.categories == "text":
            options["dtype"] = {n: str for n in names if n in text}
    start, checked = 0, len(names) < 2
    try:
        if rows is None:
            parts: Any = [pd.read_csv(path, **options)]
        else:
            parts = pd.read_csv(path, chunksize=rows, **options)
        for chunk in parts:
            chunk.columns = [str(c) for c in chunk.columns]
            chunk.index = np.arange(start, start + len(chunk))  # row numbers in the file
            start += len(chunk)
            last = chunk[names[-1]] if len(chunk) else None
            if not checked and last is not None and (last.isna() | (last == "")).any():
                _refuse_short_rows(path, delimiter, key, names)  # once, for the whole file
                checked = True
            yield chunk if read is None or len(read) == len(columns) else \
                chunk.drop(columns=names[-1])
    except pd.errors.ParserError as exc:
        raise _malformed(exc, path, delimiter, key) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{key}: cannot read {path} as CSV: {exc}") from None


def read_frame(path: Path, delimiter: str, key: str, rule: CsvRule = RULE,
               categorical: Sequence[str] = ()) -> Any:
    """A whole CSV as one DataFrame, read as :func:`read_csv` reads it."""
    return next(read_csv(path, delimiter, key, rule, categorical))


def _refuse_short_rows(path: Path, delimiter: str, key: str, names: list[str]) -> None:
    """Refuse the first row of ``path`` with fewer fields than its header (pandas fills the
    fields it lacks as missing, so a cut line would pass as empty cells) with an InputError
    naming its line and the first column it lacks. Only read when a row's last cell is empty
    or missing: what a short row looks like to pandas."""
    import csv

    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        line = 0
        for record in reader:
            first, line = line + 1, reader.line_num
            if first == 1 or not "".join(record).strip():  # the header; a blank line (skipped)
                continue
            if len(record) < len(names):
                lacking = names[len(record)]
                more = len(names) - len(record) - 1
                raise InputError(
                    f"{key}: line {first} of {path} has {len(record)} field"
                    f"{'s' if len(record) > 1 else ''}; its header (line 1) has {len(names)}: "
                    f"no value for the column {lacking!r}"
                    f"{f' and {more} more' if more else ''} (a line cut short?). Complete the "
                    f"line, leaving a cell empty with the delimiter {delimiter!r} (such as "
                    f"'{delimiter * 2}') where a value is missing, or remove it.")


def _malformed(exc: Exception, path: Path, delimiter: str, key: str) -> Exception:
    """pandas's 'Expected 3 fields in line 5, saw 4' as an InputError naming the line; any
    other parser error as a DataError."""
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if not found:
        return DataError(f"{key}: cannot read {path} as CSV: {' '.join(str(exc).split())}")
    width, line, saw = found.groups()
    return InputError(f"{key}: line {line} of {path} has {saw} fields; its header (line 1) has "
                      f"{width}. Quote each value that holds the delimiter {delimiter!r} (such "
                      f"as a decimal comma: \"5,1\"), or remove the extra fields.")
