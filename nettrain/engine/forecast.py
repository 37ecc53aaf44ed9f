"""Forecasts of a data.timeseries run: ``nettrain predict RUN recent.csv`` gives one forecast
per window of the rows given, each saying which time it is for, the last marked as the next
step (``evaluate`` scores the naive last-value forecast beside the model:
:func:`nettrain.engine.reports.naive`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nettrain.data.timeseries import Section, read_rows, windows
from nettrain.errors import UsageError

NEXT = "next_step"  # the output column that marks the forecast after the file's last row


def forecast_inputs(info: dict[str, Any], missing: Any, delimiter: str, path: Path,
                    keep: Sequence[str] = ()) -> tuple[np.ndarray, dict[str, Any], str]:
    """What a series run (its dataset.json ``info``, data.missing and delimiter) forecasts
    from the rows of the CSV ``path``: the windows, one per row from the ``window``-th on in
    time order; the columns that say what each forecast is (:func:`placed`); and a line for
    the user saying so."""
    if keep:
        raise UsageError("--keep: not for a series model: its output rows are windows of the "
                         "rows sorted by time, one per row from the window's last on, each "
                         "named by its time.")
    series = Section(info["timeseries"])
    times, values, _ = read_rows(path, info, missing, delimiter, "INPUT")
    last = np.arange(series.window - 1, len(times))  # each window's last row
    ahead = last + series.horizon
    step = np.median(np.diff(times)) if len(times) > 1 else 0  # the file's usual step
    if times.dtype.kind == "i":  # dates, in nanoseconds: exact whole steps
        step = int(round(step))
    beyond = times[-1] + (ahead - (len(times) - 1)) * step
    known = (ahead < len(times)) | (len(times) > 1)
    when = {"time": shown_times(times[last], series.kind),
            "forecast_time": shown_times(np.where(ahead < len(times),
                                                  times[np.minimum(ahead, len(times) - 1)],
                                                  beyond), series.kind, known)}
    steps = f"{series.horizon} row{'s' if series.horizon > 1 else ''}"
    told = (f"{path.name}: {len(times)} rows in time order give {len(last)} forecast"
            f"{'s' if len(last) > 1 else ''}, one per window of {series.window} rows: each is "
            f"for forecast_time, {steps} after the window's last row (time); the last, {NEXT} "
            f"true, is for {when['forecast_time'][-1]}, after the file's last row.")
    return windows(values, ahead, series), when, told


def placed(frame: Any, when: dict[str, Any]) -> Any:
    """The model's outputs (``frame``: the target column(s), in time order) with what each
    forecast is: ``time`` (the window's last row), ``forecast_time`` (the time ``horizon``
    rows later: a row of the file, or past its end at the file's usual step) first, and
    ``next_step`` last, true on the last row only: the forecast after the file's last row."""
    frame.insert(0, "time", when["time"])
    frame.insert(1, "forecast_time", when["forecast_time"])
    frame[NEXT] = np.arange(len(frame)) == len(frame) - 1
    return frame


def shown_times(times: np.ndarray, kind: str, known: Any = True) -> list[Any]:
    """Times as the output shows them: dates (int64 nanoseconds) as ISO text (the day alone
    at midnight), numbers as numbers (whole ones as integers); where not ``known`` (one row:
    no step to go past the file's end by) empty."""
    import pandas as pd

    known = np.broadcast_to(known, times.shape)
    if kind != "date":
        return [None if not k else int(t) if float(t).is_integer() else float(t)
                for t, k in zip(times.tolist(), known)]
    stamps = pd.to_datetime(times, unit="ns")
    days = all(t == t.normalize() for t in stamps)
    return [None if not k else t.strftime("%Y-%m-%d") if days else t.isoformat()
            for t, k in zip(stamps, known)]
