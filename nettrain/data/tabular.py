"""Tabular data: a CSV's columns, their kinds (numeric, integer, string), missing cells, and
the named inputs a table model takes. The file itself is read by :mod:`nettrain.data.csvfile`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from nettrain.config.sections import DataConfig
from nettrain.config.textcols import text_columns
from nettrain.data.cells import (
    NUMBERS_ADVICE,
    TARGET_ADVICE,
    WEIGHT_ADVICE,
    WHOLE_NUMBERS_ADVICE,
    _is_text,
    problems,
    together,
)
from nettrain.data.columns import input_names, named_inputs, names_of
from nettrain.data.csvfile import CsvRule, read_frame
from nettrain.data.dataset import Inputs
from nettrain.data.sources import _existing
from nettrain.data.missing import MISSING_ADVICE, Missing, dropped_note
from nettrain.errors import ConfigError, DataError, DataProblems, InputError, Problem, did_you_mean


def csv_features(columns: list[str], cfg: DataConfig, file: str) -> list[str]:
    """The input columns of a CSV with these ``columns``; every column the config names must
    exist (a ConfigError lists each one that does not, with the closest name)."""
    targets = cfg.targets
    weight = [cfg.sample_weight] if cfg.sample_weight else []
    text = list(text_columns(cfg.text))  # inputs of their own, beside data.features
    features = [*cfg.features, *text] if cfg.features or (cfg.features is not None and text) \
        else [c for c in columns if c not in targets + weight]
    problems = [p for p in (
        _column_problem("target", targets, columns, file),
        _column_problem("features", cfg.features or [], columns, file),
        _column_problem("text", text, columns, file),
        _column_problem("sample_weight", weight, columns, file),
        _column_problem("categorical", cfg.categorical or [], features, "the features"),
        _column_problem("missing", [] if isinstance(cfg.missing, str) else list(cfg.missing),
                        columns, file),
    ) if p]
    if problems:
        raise ConfigError(problems)
    return features


def _column_problem(key: str, names: list[str], columns: list[str], file: str) -> Problem | None:
    unknown = [n for n in names if n not in columns]
    if not unknown:
        return None
    close = did_you_mean(unknown[0], columns)
    hint = f"Did you mean '{close}'?" if close else None
    if len(columns) == 1:  # one column: the file is split by another character
        sep = next((c for c in ";\t|" if c in columns[0]), None)
        if sep:
            hint = f"The header holds '{sep}': set data.delimiter: {sep!r}."
    return Problem(f"data.{key}", f"column names of {file} ({', '.join(columns)})",
                   ", ".join(map(repr, unknown)), hint)


def _read_csv(path: Path, cfg: DataConfig, key: str, info: dict | None,
              rule: CsvRule | None = None,
              split: Callable[[int, Any], np.ndarray] | None = None) -> tuple:
    """One CSV file: inputs, labels, sample weights and (for the training file) the info.

    ``info`` is the training file's info when reading an explicit validation or test file;
    then the same columns are required, read by the same rule. ``rule``: the one a run
    recorded (resume, evaluate); default: today's (see :mod:`nettrain.data.csvfile`).
    ``split``: the training rows, for the fills to learn on (see :func:`_table_parts`).
    """
    path = _existing(path, key)
    rule = rule or CsvRule.of(info)
    frame = read_frame(path, cfg.delimiter, key, rule, categorical_columns(cfg, info))
    return _table_parts(frame, cfg, path.name, info, rule=rule, split=split)


def categorical_columns(cfg: DataConfig, info: dict | None) -> list[str]:
    """The columns read as categories: data.categorical, or those a run recorded (``info``,
    its dataset.json) as integer or string."""
    if info is None:
        return [*(cfg.categorical or []), *text_columns(cfg.text)]
    return [c for c, kind in (info.get("columns") or {}).items() if kind != "numeric"]


def _table_parts(frame: Any, cfg: DataConfig, name: str, info: dict | None,
                 advice: str | None = None, missing_advice: str = MISSING_ADVICE,
                 rule: CsvRule | None = None, part: bool = False,
                 split: Callable[[int, Any], np.ndarray] | None = None) -> tuple:
    """A CSV file's frame (file ``name``) as inputs, labels, sample weights and the info.
    ``advice`` ends the message for text in a numeric column, ``missing_advice`` the one for
    an empty cell left empty by data.missing; default: advice for training data.
    ``rule``: the rule the frame was read by, recorded in the training file's info.
    ``part``: the frame is a chunk of the file (see :func:`fill_missing`).

    Rows without their target (or a value where data.missing is drop) are dropped first; the
    training file (``info`` None) then learns its fills on its training rows, the positions
    ``split(rows, labels)`` gives (default: every row), and records them in the info (with
    ``"notes"``, ``"kept_rows"`` and ``"dropped_rows"`` for the loader to take out); other
    files are filled as the info recorded. Once one cell is refused, every problem of the
    frame's cells is reported together (:func:`nettrain.data.cells.together`)."""
    targets = cfg.targets
    weight = [cfg.sample_weight] if cfg.sample_weight else []
    if info is None:
        try:
            features = csv_features(list(frame.columns), cfg, name)
        except ConfigError as exc:  # a column is missing: the cells of the others join it
            raise with_cell_problems(exc, frame, cfg, name, part) from None
        kinds = column_kinds(frame, features, cfg.categorical or [], cfg.text)  # before filling
        missing = Missing.of_config(cfg.missing, features + weight, targets)
    else:  # an explicit validation/test file: training's columns, by name, and their kinds
        features, kinds = info["features"], info.get("columns") or \
            column_kinds(frame, info["features"], [])
        check_columns(list(frame.columns), features + targets + weight, name,
                      "the training file's", cfg.delimiter,
                      extra_allowed=cfg.features is not None)
        missing = Missing.of_run(info, cfg.missing)
    read = frame[features + targets + weight]
    try:
        frame, dropped = missing.drop_rows(read, targets, name)
    except InputError as no_target:  # data.missing: error; the other cells' problems join it
        raise _with_target_problem(no_target, read, name, features, kinds, missing, targets,
                                   weight, advice, part) from None
    if info is None:
        labels = frame[targets[0]].to_numpy() if len(targets) == 1 else None
        train = split(len(frame), labels) if split else np.arange(len(frame))
        missing = missing.learned(frame, train)
    # the names chosen once: the run's (info, or the rule of a run's data read again) or new
    names = names_of(info) if info is not None else (rule or CsvRule()).input_names(features)
    try:
        x, y, w = _table_arrays(frame, cfg, name, features, kinds, missing, advice,
                                missing_advice, part, names)
    except DataError as first:
        raise together(first, frame, name, features, kinds, targets, weight, lambda f: (
            missing.fill(f, kinds, name, missing_advice, part)),
            advice or NUMBERS_ADVICE, part) from None
    if info is None:
        info = {"features": features, "target": targets,
                "csv_reading": (rule or CsvRule()).to_json(), "missing": missing.to_json()}
        if cfg.categorical or cfg.text:
            info["columns"] = kinds
            info["model_inputs"] = named_inputs(kinds, names)
        note = dropped_note(dropped, name, targets)
        info.update(notes=[note] if note else [], kept_rows=frame.index.to_numpy(),
                    dropped_rows=read.index.difference(frame.index).to_numpy())
    return x, y, w, info


def _with_target_problem(error: InputError, frame: Any, name: str, features: list[str],
                         kinds: dict[str, str], missing: Missing, targets: list[str],
                         weight: list[str], advice: str | None,
                         part: bool) -> InputError | DataProblems:
    """``error`` (a row without its target, under data.missing: error) with the problems of
    the other rows' cells, in one :class:`DataProblems`; ``error`` itself where they have none."""
    kept = replace(missing, target="drop").drop_rows(frame, targets, name)[0]
    found = problems(kept, features, kinds, targets, weight, lambda f: missing.surveyed(
        f, targets, kinds, name, part), advice or NUMBERS_ADVICE, part)
    return DataProblems(name, [str(error).removeprefix(f"{name}: "), *found]) if found \
        else error


def with_cell_problems(error: ConfigError, frame: Any, cfg: DataConfig, name: str,
                       part: bool = False) -> DataError | ConfigError:
    """``error`` (a column the config names is not in the file ``name``) with the problems of
    the cells of the columns that are, in one :class:`DataProblems`, so that one run shows
    every mistake; ``error`` itself where the cells have none."""
    columns = list(frame.columns)
    if len(columns) == 1:  # the file is split by another character: its cells say nothing
        return error
    # a misspelt target is read as the column it was meant to be, not as an input
    targets = [t for c in cfg.targets if (t := c if c in columns else did_you_mean(c, columns))]
    weight = [c for c in [cfg.sample_weight] if c and c in columns]
    named = [*cfg.features, *text_columns(cfg.text)] if cfg.features else \
        [c for c in columns if c not in targets + weight]
    features = [c for c in named if c in columns]
    categorical = [t for c in cfg.categorical or []
                   if (t := c if c in features else did_you_mean(c, features))]
    kinds = column_kinds(frame, features, categorical, cfg.text)
    missing = Missing.of_config(cfg.missing, features + weight, targets)
    found = problems(frame, features, kinds, targets, weight, lambda f: missing.surveyed(
        f, targets, kinds, name, part), NUMBERS_ADVICE, part)
    return DataProblems(name, [*error.problems, *found]) if found else error  # lines: load_data


def _table_arrays(frame: Any, cfg: DataConfig, name: str, features: list[str],
                  kinds: dict[str, str], missing: Missing, advice: str | None,
                  missing_advice: str, part: bool, names: dict[str, str]) -> tuple:
    """:func:`_table_parts`'s inputs, labels and weights of the ``features`` (of these
    ``kinds``), the rows without a target already dropped, raising at the first problem of a
    cell."""
    targets = cfg.targets
    weight = [cfg.sample_weight] if cfg.sample_weight else []
    frame = missing.fill(frame, kinds, name, missing_advice, part)
    encoded = [c for c in features if kinds[c] != "numeric"]  # categories and text
    x = table_inputs(frame, features, encoded, name, kinds,
                     advice or NUMBERS_ADVICE, names)
    if len(targets) > 1:  # multi-output regression
        y = numeric_frame(frame[targets], name, TARGET_ADVICE)
    elif _is_text(frame[targets[0]]):  # class names such as 'setosa'
        y = frame[targets[0]].astype(str).to_numpy()
    else:
        numeric_frame(frame[targets], name)  # finite numbers only
        y = frame[targets[0]].to_numpy()
    w = numeric_frame(frame[weight], name, WEIGHT_ADVICE)[:, 0] if weight else None
    return x, y, w


def check_columns(columns: list[str], expected: list[str], name: str, what: str,
                  delimiter: str, optional: tuple[str, ...] = (),
                  extra_allowed: bool = False) -> None:
    """Refuse (InputError, exit 2: the file does not match the model) a file that lacks one of
    the ``expected`` columns or, unless ``extra_allowed``, has one more than them and
    ``optional``; their order does not matter: columns are always matched by name. Where
    extra columns are allowed they are ignored, and named only beside a missing column (one
    may be its misspelling). A file split by another character than ``delimiter`` says so."""
    missing = [c for c in expected if c not in columns]
    others = [c for c in columns if c not in expected and c not in optional]
    extra = [] if extra_allowed else others
    if not missing and not extra:
        return
    parts = ([f"missing {', '.join(map(repr, missing))}"] if missing else []) + \
        ([f"unexpected {', '.join(map(repr, extra))}"] if extra else [])
    if missing and extra_allowed and others:
        parts.append(f"{', '.join(map(repr, others))} {'is' if len(others) == 1 else 'are'} "
                     "not read")
    close = next((f" Is {c!r} meant to be {m!r}?" for m in missing
                  if (c := did_you_mean(m, others))), "")
    sep = next((c for c in ",;\t|" if c != delimiter and c in columns[0]), None) \
        if len(columns) == 1 and missing else None
    hint = f" Its header holds {sep!r}: write it split by {delimiter!r}, the run's " \
        "data.delimiter." if sep else ""
    raise InputError(f"{name}: the columns differ from {what} ({'; '.join(parts)}). "
                     f"Expected the columns (in any order): {', '.join(expected)}. It has: "
                     f"{', '.join(columns)}.{close}{hint}")


def column_kinds(frame: Any, features: list[str], categorical: list[str],
                 text: Any = None) -> dict[str, str]:
    """'numeric', 'text' for a column of data.text (``text``, as written; refused when its
    cells are all numbers), or for a categorical column its :func:`category_kind`."""
    words = text_columns(text)
    for column in (c for c in words if c in frame.columns):
        check_words(frame[column], column)
    return {name: "text" if name in words else category_kind(frame[name])
            if name in categorical else "numeric" for name in features}


def check_words(column: Any, name: str) -> None:
    """Refuse (ConfigError, exit 2) a data.text column whose cells are all numbers."""
    import pandas as pd

    values = column.dropna()
    if len(values) and pd.to_numeric(values, errors="coerce").notna().all():
        raise ConfigError(Problem(
            "data.text", "columns of words (free text, vectorised into tokens)",
            f"{name!r}, whose cells are all numbers (such as {values.iloc[0]!r})",
            f"Remove {name!r} from data.text: a column of numbers is a numeric input as it "
            "is, or categories in data.categorical."))


def category_kind(column: Any) -> str:
    """'integer' when every category of ``column`` (its cells that are not missing) is a whole
    number, each number written one way; else 'string', the categories as the text written.
    So '02134' beside '2134', or '1' beside '1.0', stay two categories (text), never one
    number; 'true'/'false' are text."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column):
        return "string"
    values = pd.Series(column.dropna().unique())
    numbers = whole_numbers(values)
    return "integer" if numbers is not None and len(set(numbers.tolist())) == len(values) \
        else "string"


def whole_numbers(column: Any) -> np.ndarray | None:
    """The cells of ``column`` (none missing) as exact int64, or None when one is not a whole
    number (text, a fraction, beyond 2**53 as a float)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column):
        return None
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.isna().any():
        return None
    if pd.api.types.is_integer_dtype(numbers):
        # pandas reads a cell past 2**63 - 1 as uint64, which int64 would wrap to negatives.
        if pd.api.types.is_unsigned_integer_dtype(numbers) and numbers.max() > 2**63 - 1:
            return None
        return numbers.to_numpy(dtype="int64")
    values = numbers.to_numpy(dtype="float64")
    if not (np.isfinite(values).all() and (values == np.round(values)).all()
            and (np.abs(values) <= 2**53).all()):
        return None
    return values.astype("int64")


def fill_missing(frame: Any, rule: Missing | str, kinds: dict[str, str], name: str,
                 advice: str = MISSING_ADVICE, part: bool = False) -> Any:
    """``frame`` with its empty cells filled by ``rule`` (a run's :class:`Missing`, or one
    policy for every column): the one owner of filling, for fit, evaluate --data, predict and
    serve. A cell it leaves empty is a DataError naming it (and giving ``advice``); ``part``:
    the frame is a chunk of a file read in parts (see :meth:`Missing.fill`)."""
    if isinstance(rule, str):
        rule = Missing.of_config(rule, list(frame.columns), [])
    return rule.fill(frame, kinds, name, advice, part)


# What a non-number in a numeric column calls for at predict time (in training data, in a
# target, a weight, a whole-number category: nettrain.data.cells, which owns the messages).
PREDICT_ADVICE = "The model was trained on numbers in this column: give a number."


def table_inputs(frame: Any, features: list[str], categorical: list[str], name: str,
                 kinds: dict[str, str] | None = None, advice: str = NUMBERS_ADVICE,
                 names: dict[str, str] | None = None) -> Inputs:
    """The feature columns as the model takes them: one float32 matrix, or (with categorical
    columns) a mapping from input name (:func:`input_names`) to a one-column array.

    ``kinds`` are the training columns' kinds (at predict time); default: read from ``frame``.
    ``advice`` ends the message for text in a numeric column. ``names``: column -> input
    name, the run's (:func:`nettrain.data.columns.names_of`); default: a new run's.
    """
    import pandas as pd

    if not categorical:
        return numeric_frame(frame[features], name, advice)
    kinds = kinds or column_kinds(frame, features, categorical)
    names = names or input_names(features)
    x = {}
    for column in features:
        if kinds[column] == "numeric":
            x[names[column]] = numeric_frame(frame[[column]], name, advice)
        elif kinds[column] == "integer":
            numeric_frame(frame[[column]], name, WHOLE_NUMBERS_ADVICE)  # numbers, finite
            values = whole_numbers(frame[column])
            if values is None:  # a fraction (or a number too large to be exact)
                numbers = pd.to_numeric(frame[column]).to_numpy(dtype="float64")
                at = int(np.argmax((numbers != np.round(numbers)) | (np.abs(numbers) > 2**53)))
                raise DataError(f"{name}: column '{column}' holds whole-number categories; row "
                                f"{frame.index[at] + 2} holds {frame[column].iloc[at]!r}. "
                                f"{WHOLE_NUMBERS_ADVICE}")
            x[names[column]] = values.reshape(-1, 1)
        else:
            x[names[column]] = frame[[column]].astype(str).to_numpy(dtype=object)
    return x


def numeric_frame(frame: Any, name: str, advice: str = NUMBERS_ADVICE) -> np.ndarray:
    """A DataFrame's values as float32, or a DataError naming the first non-numeric cell (and
    giving ``advice``), or the first value that is not a finite float32 (inf, 1e308)."""
    import pandas as pd

    fill_missing(frame, "error", {}, name)
    for column in frame.columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            at = int(np.argmax(bad.to_numpy()))
            raise DataError(f"{name}: column '{column}' must be numeric; row "
                            f"{frame.index[at] + 2} holds {frame[column].iloc[at]!r}. {advice}")
    with np.errstate(over="ignore", invalid="ignore"):
        array = frame.to_numpy(dtype="float32")
    infinite = ~np.isfinite(array)
    if infinite.any():
        row, col = np.argwhere(infinite)[0]
        raise DataError(f"{name}: column '{frame.columns[col]}' row {frame.index[row] + 2} holds "
                        f"{frame.iloc[row, col]}, which is not a finite 32-bit number (at most "
                        "about 3.4e38 in size). Replace the value, or drop the row.")
    return array
