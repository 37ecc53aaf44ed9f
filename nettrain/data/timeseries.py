"""data.timeseries: a CSV's rows in time order, cut into windows of the previous rows, split
by time (training first, then validation, then test), for fit, evaluate and predict.

A sample's inputs are the ``window`` rows ending at row ``t - horizon`` (every input column,
the target's own past included), its label the target at row ``t``; the sample belongs to the
part that row ``t`` is in. So a training window never holds a row of validation or test, and
a validation or test window may hold earlier rows of the parts before it (its past), never a
later one. Standardising the inputs and the target is the model's (its first and last
layers, :mod:`nettrain.model.builder`), so the arrays here are in the series' units.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nettrain.config.sections import DataConfig
from nettrain.data.csvfile import CsvRule, read_frame
from nettrain.data.dataset import Data, SplitRows
from nettrain.data.missing import INTERPOLATE, Missing, dropped_note
from nettrain.data.tabular import check_columns, csv_features, numeric_frame
from nettrain.errors import ConfigError, DataError, InputError, Problem, did_you_mean

SPLITS = ("train", "validation", "test")


def load_series(cfg: DataConfig, classify: bool, rule: CsvRule) -> Data:
    """The windows of ``cfg.csv`` split by time, with split.csv's rows (:class:`SplitRows`)
    and the info dataset.json records (``"timeseries"``: the section and the time's kind)."""
    if classify:
        raise ConfigError(Problem("data.timeseries", "a regression loss (mse, mae, huber...): "
                                  "a series forecasts numbers", "a classification loss"))
    series, name = cfg.timeseries, Path(cfg.csv).name
    from nettrain.data.sources import _existing

    frame = read_frame(_existing(Path(cfg.csv), "data.csv"), cfg.delimiter, "data.csv", rule)
    total = len(frame)
    if series.time not in frame.columns:
        close = did_you_mean(series.time, list(frame.columns))
        raise ConfigError(Problem("data.timeseries.time", f"a column of {name} "
                                  f"({', '.join(frame.columns)})", repr(series.time),
                                  f"Did you mean '{close}'?" if close else None))
    features = csv_features([c for c in frame.columns if c != series.time], cfg, name)
    inputs = features + [t for t in cfg.targets if t not in features]
    frame, _, kind = in_time_order(frame, series.time, name)
    missing = Missing.of_config(cfg.missing, inputs, cfg.targets)
    kept, dropped = missing.drop_rows(
        frame[inputs], [t for t in cfg.targets if missing.policy(t) != INTERPOLATE], name)
    n = len(kept)
    n_test, n_val = int(round(n * cfg.test_split)), int(round(n * cfg.validation_split))
    if (cfg.test_split and not n_test) or (cfg.validation_split and not n_val):
        raise DataError(f"{name} has {n} rows: too few for validation_split "
                        f"{cfg.validation_split} and test_split {cfg.test_split}.")
    bounds = np.cumsum([0, n - n_val - n_test, n_val, n_test])
    missing = missing.learned(kept, np.arange(bounds[1]))
    values, labelled = series_values(kept, inputs, cfg.targets, missing, bounds[1], name)
    target = target_index(inputs, cfg.targets)
    data = Data({}, {}, {}, {
        "features": inputs, "target": cfg.targets, "csv_reading": rule.to_json(),
        "missing": missing.to_json(), "timeseries": {**series.model_dump(), "time_kind": kind}})
    for i, split in enumerate(SPLITS):
        if bounds[i + 1] == bounds[i] and split != "train":
            continue
        ends = sample_rows(bounds[i], bounds[i + 1], series, labelled)
        if not len(ends):
            raise DataError(_too_few(name, split, bounds[i + 1] - bounds[i], series))
        data.x[split], data.y[split] = windows(values, ends, series), values[ends][:, target]
    index = {s: np.arange(bounds[i], bounds[i + 1]) for i, s in enumerate(SPLITS)}
    data.rows = SplitRows.of(total, index, kept.index.to_numpy(), lines=True)
    note = dropped_note(dropped, name, cfg.targets)
    unlabelled = int((~labelled).sum())
    data.notes = [note] if note else []
    if unlabelled:
        data.notes.append(f"Note: {name}: {unlabelled} row{'s' if unlabelled > 1 else ''} "
                          f"without the target are filled as inputs (interpolate), never used "
                          "as a label.")
    return data


def target_index(inputs: Any, targets: Any) -> list[int]:
    """Where each target column sits among a series' input columns (its windows' last axis):
    the column a forecast is of, and the one the naive forecast repeats."""
    return [list(inputs).index(t) for t in targets]


def in_time_order(frame: Any, time: str, name: str) -> tuple[Any, np.ndarray, str]:
    """``frame``'s rows sorted by its ``time`` column (numbers, or dates), each row keeping
    its index (its row in the file); the sorted times (numbers, or dates as int64
    nanoseconds); and their kind: 'number' or 'date'. An empty or
    unreadable time, or a time given twice, is an InputError naming the lines."""
    import pandas as pd

    column = frame[time]
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().all():
        times, kind = numbers.to_numpy(dtype="float64"), "number"
    else:
        with_dates = pd.to_datetime(column.astype("string"), errors="coerce", format="mixed")
        bad = with_dates.isna().to_numpy()
        if bad.mean() > 0.5 and numbers.notna().mean() > 0.5:
            bad = numbers.isna().to_numpy()  # mostly numbers: the others are the mistakes
        if bad.any():
            raise InputError(f"{name}: the time column {time!r} holds no date or number in "
                             f"{_lines(frame.index[bad])}: "
                             f"{column[bad].iloc[0]!r}. Give every row its time (a date such "
                             "as 2001-12-29, or a number), or remove the row.")
        times, kind = with_dates.to_numpy(dtype="datetime64[ns]").astype("int64"), "date"
    order = np.argsort(times, kind="stable")
    times = times[order]
    twice = np.flatnonzero(times[1:] == times[:-1])
    if len(twice):
        lines = frame.index[order][np.union1d(twice, twice + 1)]
        raise InputError(f"{name}: the time column {time!r} holds the time "
                         f"{column.iloc[order[twice[0]]]!r} more than once ({_lines(lines)}); "
                         "a series has one row per time. Remove or merge the repeated rows.")
    return frame.iloc[order], times, kind


def _lines(index: Any, shown: int = 5) -> str:
    lines = [str(int(i) + 2) for i in index]
    more = f" and {len(lines) - shown} more" if len(lines) > shown else ""
    return f"line{'s' if len(lines) > 1 else ''} {', '.join(lines[:shown])}{more}"


def series_values(frame: Any, inputs: list[str], targets: list[str], missing: Missing,
                  train: int, name: str, advice: str | None = None) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """The ``inputs`` of ``frame`` (rows in time order, the first ``train`` of them the
    training part) as float32, filled by ``missing`` (interpolate:
    :meth:`Missing.interpolated`), and whether each row's target was given (a filled
    target is an input, never a label)."""
    labelled = frame[targets].notna().all(axis=1).to_numpy()
    filled = missing.fill(missing.interpolated(frame[inputs], train),
                          dict.fromkeys(inputs, "numeric"), name, **(
                              {"advice": advice} if advice else {}))
    return numeric_frame(filled, name), labelled


def sample_rows(start: int, end: int, series: Any, labelled: np.ndarray) -> np.ndarray:
    """The rows in ``[start, end)`` that are a sample's label: those with a full window
    ``horizon`` rows before them, every ``stride``-th, whose target was given."""
    first = max(start, series.window - 1 + series.horizon)
    rows = np.arange(first, end, series.stride)
    return rows[labelled[rows]] if len(rows) else rows


def windows(values: np.ndarray, ends: np.ndarray, series: Any) -> np.ndarray:
    """The window of each label row in ``ends``: the ``window`` rows ending ``horizon`` rows
    before it, as an array [samples, window, inputs]."""
    last = np.asarray(ends) - series.horizon
    return values[last[:, None] - series.window + 1 + np.arange(series.window)]


def _too_few(name: str, split: str, rows: int, series: Any) -> str:
    need = series.window + series.horizon
    return (f"{name}: the {split} part has {rows} rows, none of them with a full window "
            f"before it (window {series.window} + horizon {series.horizon} = {need} rows) "
            "and its target given. Use a longer series, a smaller window, or a larger "
            f"{'validation_split' if split == 'validation' else 'test_split'}."
            if split != "train" else
            f"{name}: the training part has {rows} rows: too few for one window of "
            f"{series.window} rows and its target {series.horizon} row(s) later. Use a longer "
            "series, a smaller window, or smaller validation_split and test_split.")


class Section:
    """A run's recorded data.timeseries (dataset.json's ``"timeseries"``), read as the
    config section is."""

    def __init__(self, recorded: dict[str, Any]):
        self.time, self.window = recorded["time"], int(recorded["window"])
        self.horizon, self.stride = int(recorded["horizon"]), int(recorded.get("stride", 1))
        self.kind = recorded.get("time_kind", "number")


def read_rows(path: Path, info: dict[str, Any], missing: Any, delimiter: str,
              key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A run's new rows (predict's INPUT, evaluate's --data) in time order: their times (as
    :func:`in_time_order` gives them), the inputs as float32 and which rows have their
    target. Gaps are filled as a forecast sees them: the
    last known value carried forward (interpolate), or the run's recorded fills."""
    series = Section(info["timeseries"])
    frame = read_frame(path, delimiter, key, CsvRule.of(info))
    inputs, targets = list(info["features"]), list(info["target"])
    check_columns(list(frame.columns), [series.time, *inputs], path.name,
                  "the run's series (its time column and inputs, the target's past included)",
                  delimiter, extra_allowed=True)
    if len(frame) < series.window:
        raise InputError(f"{key}: {path.name} has {len(frame)} row{'s' if len(frame) != 1 else ''}"
                         f"; a forecast needs a window of {series.window} rows (the run's "
                         f"data.timeseries.window). Give the latest {series.window} rows or more "
                         "(in any order: they are sorted by time).")
    frame, times, _ = in_time_order(frame, series.time, path.name)
    values, labelled = series_values(
        frame, inputs, targets, Missing.of_run(info, missing), 0, path.name,
        "A forecast fills a gap with the last value before it (or the run's data.missing); "
        "fill the cell, or start the file after it.")
    return times, values, labelled


def labelled_series(path: Path, info: dict[str, Any], missing: Any, delimiter: str) -> Data:
    """``evaluate --data``: every window of a run's new rows whose label is in the file, as
    one split, test."""
    series = Section(info["timeseries"])
    times, values, labelled = read_rows(path, info, missing, delimiter, "--data")
    ends = sample_rows(0, len(times), series, labelled)
    if not len(ends):
        raise InputError(f"--data: {path.name} has {len(times)} rows: none with a full window "
                         f"of {series.window} rows {series.horizon} step(s) before it and its "
                         f"target given. Give at least {series.window + series.horizon} rows.")
    target = target_index(info["features"], info["target"])
    return Data({"test": windows(values, ends, series)}, {"test": values[ends][:, target]},
                {}, info)
