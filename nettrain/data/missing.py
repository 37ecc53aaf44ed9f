"""data.missing: each table column's policy for an empty cell, the fill values learned on the
training split, and the one place they are applied (fit, evaluate --data, predict, serve).

A run records its :class:`Missing` in ``dataset.json`` (``"missing"``), beside what the other
preprocessing learned, so every later reader fills a cell as training did.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from nettrain.config.series import INTERPOLATE  # data.timeseries only: see interpolated()
from nettrain.errors import DataError, DataProblems, InputError

LEARNED = ("mean", "median", "most_frequent")  # policies whose value the training split gives
MISSING_ADVICE = "Set data.missing (drop, zero, mean, median or most_frequent), or fill the file."


@dataclass(frozen=True)
class Missing:
    """What an empty cell becomes in each column.

    ``policies``: input column (and sample-weight column) -> error | drop | zero | mean |
    median | most_frequent; a column not named follows ``default`` (data.missing's one policy,
    or 'error' beside a mapping). ``target``: 'drop' or 'error' for a row without its target,
    which is dropped (or refused) before any column is filled: it is never filled.
    ``fills``: column -> the value learned on the training rows for the columns whose policy
    is in :data:`LEARNED`.
    """

    policies: dict[str, str] = field(default_factory=dict)
    target: str = "drop"
    fills: dict[str, Any] = field(default_factory=dict)
    default: str = "error"  # the policy of a column not in ``policies``

    @classmethod
    def of_config(cls, missing: str | dict[str, str], columns: list[str],
                  targets: list[str]) -> Missing:
        """The policies of data.missing (one for every column, or a mapping; see
        :class:`nettrain.config.sections.DataConfig`) for these input ``columns``."""
        if isinstance(missing, str):
            return cls(dict.fromkeys(columns, missing), "error" if missing == "error" else "drop",
                       default=missing)
        target = next((missing[t] for t in targets if t in missing), "drop")
        return cls({c: missing.get(c, "error") for c in columns}, target)

    @classmethod
    def of_run(cls, info: dict[str, Any], missing: Any = "error") -> Missing:
        """What a run recorded in its ``dataset.json`` (``info``); a run recorded before fills
        were learned: its data.missing (``missing``) as it was applied then (zero, else
        error)."""
        recorded = info.get("missing")
        if isinstance(recorded, dict):
            return cls(dict(recorded.get("policies") or {}), str(recorded.get("target", "drop")),
                       dict(recorded.get("fills") or {}), str(recorded.get("default", "error")))
        policy = "zero" if missing == "zero" else "error"
        return cls(dict.fromkeys(info.get("features") or [], policy), "error")

    def to_json(self) -> dict[str, Any]:
        return {"policies": dict(self.policies), "default": self.default, "target": self.target,
                "fills": dict(self.fills)}

    def policy(self, column: str) -> str:
        return self.policies.get(column, self.default)

    # ------------------------------------------------------------------ rows

    def drop_rows(self, frame: Any, targets: list[str], name: str) -> tuple[Any, dict[str, int]]:
        """The rows of ``frame`` kept: those with their target and with a value in every
        column whose policy is 'drop'; and how many were dropped for each column (a row
        without its target counts for the target). A missing target with policy 'error' is
        an InputError naming its line and column."""
        dropped: dict[str, int] = {}
        keep = np.ones(len(frame), dtype=bool)
        for column in targets:
            holes = frame[column].isna().to_numpy()
            if holes.any() and self.target == "error":
                at = int(np.argmax(holes))
                raise InputError(
                    f"{name}: line {frame.index[at] + 2} has no value in the target column "
                    f"{column!r} ({int(holes.sum())} row{'s' if holes.sum() > 1 else ''} "
                    "without one). A row without its target has no label and is never "
                    "filled: set data.missing (drop, or a fill for the inputs) to drop such "
                    "rows, or fill the target in the file.")
            if holes.any():
                dropped[column] = int((holes & keep).sum())
                keep &= ~holes
        for column in frame.columns:
            if column not in targets and self.policy(column) == "drop":
                holes = frame[column].isna().to_numpy() & keep
                if holes.any():
                    dropped[column] = int(holes.sum())
                    keep &= ~holes
        return (frame[keep] if not keep.all() else frame), dropped

    def learned(self, frame: Any, train: np.ndarray) -> Missing:
        """This policy with the fill values of the training rows of ``frame`` (a DataFrame of
        the columns, as read; ``train``: their positions): mean, median (of the numbers) or
        the most frequent value (the smallest, of equally frequent ones). A column with no
        value to learn from is a DataError."""
        import pandas as pd

        fills = {}
        for column, policy in self.policies.items():
            if policy not in LEARNED or column not in frame.columns:
                continue
            values = frame[column].iloc[train].dropna()
            if policy != "most_frequent":
                cells, values = values, pd.to_numeric(values, errors="coerce").dropna()
                if values.empty and not cells.empty:
                    continue  # text, not numbers: the column's cells are refused for it
            if values.empty:
                raise DataError(f"data.missing: the column {column!r} has no value in the "
                                f"training rows to learn its {policy} from. Fill the column, or "
                                "leave it out (data.features).")
            fills[column] = learned_value(values, policy)
        return Missing(self.policies, self.target, fills, self.default)

    def surveyed(self, frame: Any, targets: list[str], kinds: dict[str, str], name: str,
                 part: bool = False) -> Any:
        """``frame`` as training would fill it, for a survey of a file's cell problems: rows
        without their target left out (never refused here: that refusal is reported beside
        the survey), fills learned on every row left; a cell left empty is a DataError."""
        kept = replace(self, target="drop").drop_rows(frame, targets, name)[0]
        return self.learned(kept, np.arange(len(kept))).fill(kept, kinds, name, part=part)

    def interpolated(self, frame: Any, train: int) -> Any:
        """``frame`` (rows in time order) with the gaps of its columns whose policy is
        interpolate filled: in its first ``train`` rows (the training part) on the straight
        line between the known values around each gap, one step per row (before the first
        known value: that value; after the last: the last); in the later rows (validation,
        test, the rows predict is given) the last known value carried forward, since a
        forecast made at a row knows no later value. So no value of a later part fills a
        row of an earlier one. A gap with no known value before it in the later rows is
        left empty (refused by :meth:`fill`)."""
        import pandas as pd

        filled = None
        for column in frame.columns:
            values = frame[column]
            if self.policy(column) != INTERPOLATE or not values.isna().any() or \
                    not pd.api.types.is_numeric_dtype(values):  # text: refused as such
                continue
            numbers = values.to_numpy(dtype="float64", na_value=np.nan, copy=True)
            head = numbers[:train]
            known = np.flatnonzero(~np.isnan(head))
            if len(known):
                numbers[:train] = np.interp(np.arange(len(head)), known, head[known])
            filled = frame.copy() if filled is None else filled
            filled[column] = pd.Series(numbers, index=frame.index).ffill()
        return frame if filled is None else filled

    def fill(self, frame: Any, kinds: dict[str, str], name: str, advice: str = MISSING_ADVICE,
             part: bool = False) -> Any:
        """``frame`` with its empty cells filled by each column's policy: zero (0, or '' for a
        text category, a category of its own) or the learned value. A cell left empty (policy
        error, or drop where no row may be dropped: predict gives one output row per input
        row) is a DataError naming the first one, with ``advice`` (see :func:`refuse_holes`).
        ``kinds``: column -> 'numeric' | 'integer' | 'string' (a column not listed: by its
        dtype)."""
        filled = None
        for column in frame.columns:
            policy = self.policy(column)
            if policy not in ("zero", *LEARNED) or not frame[column].isna().any():
                continue
            if policy in LEARNED and column not in self.fills:
                continue  # nothing learned (a run recorded without it): refused below
            filled = frame.copy() if filled is None else filled
            text = is_text(filled[column])
            if policy == "zero":
                kind = kinds.get(column) or ("string" if text else "numeric")
                value = "" if kind in ("string", "text") else 0
            else:
                value = self.fills[column]
            filled[column] = (filled[column].astype(object) if text or isinstance(value, str)
                              else filled[column]).fillna(value)
        frame = frame if filled is None else filled
        refuse_holes(frame, name, advice, part)
        return frame


def learned_value(values: Any, policy: str) -> Any:
    """The mean, median or most frequent of ``values`` (a Series, none missing), as JSON
    holds it: a float for a number, else the text."""
    if policy == "mean":
        return float(values.astype("float64").mean())
    if policy == "median":
        return float(values.astype("float64").median())
    return most_frequent(values.value_counts().to_dict())


def most_frequent(counts: dict[Any, int]) -> Any:
    """The value counted most often (of equally frequent ones, the smallest), as JSON holds
    it."""
    top = max(counts.values())
    value = min((v for v, n in counts.items() if n == top), key=lambda v: (isinstance(v, str), v))
    return value.item() if isinstance(value, np.generic) else value


def is_text(column: Any) -> bool:
    import pandas as pd

    return not pd.api.types.is_numeric_dtype(column)


def refuse_holes(frame: Any, name: str, advice: str = MISSING_ADVICE, part: bool = False) -> None:
    """A DataProblems (exit 2) naming the first empty cell of ``frame`` (and giving ``advice``), with the
    count in its column and in all the frame's columns: of the file, or with ``part`` (a
    chunk of a file read in parts) of the chunk's rows."""
    holes = np.argwhere(frame.isna().to_numpy())
    if len(holes):
        row, col = holes[0]
        row = frame.index[row]  # the row number in the file (a streamed chunk starts later)
        column = frame.columns[col]
        where = (f"read, in rows {frame.index[0] + 2} to {frame.index[-1] + 2}" if part
                 else "read from the file")
        # the file must be mended (exit 2), on every path that reads one: fit, predict,
        # evaluate --data, a series' recent rows
        raise DataProblems(name, [f"missing value at row {row + 2}, column '{column}' "
                                  f"({int((holes[:, 1] == col).sum())} missing in this column, "
                                  f"{len(holes)} in all the columns {where}). {advice}"])


def dropped_note(dropped: dict[str, int], name: str, targets: list[str]) -> str | None:
    """One line saying how many rows were dropped, for which column."""
    if not dropped:
        return None
    parts = [f"{n} without the target {c!r}" if c in targets else f"{n} with no {c!r}"
             for c, n in dropped.items()]
    total = sum(dropped.values())
    return f"Note: {name}: dropped {total} row{'s' if total != 1 else ''} ({', '.join(parts)})."
