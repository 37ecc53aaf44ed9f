"""Forecasts of a data.timeseries run: ``nettrain predict RUN recent.csv`` gives one forecast
per window of the rows given, each saying which time it is for, the last marked as the next
step; ``evaluate`` scores the naive last-value forecast on the same rows beside the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nettrain.data.timeseries import Section, read_rows, windows
from nettrain.errors import UsageError

NEXT = "next_step"  # the output column that marks the forecast after the file's last row


def forecasts(predictor: Any, path: Path, keep: Sequence[str] = (),
              note: Callable[[str], None] | None = None) -> Any:
    """The forecasts of ``predictor`` (a series run's, :class:`nettrain.engine.predict.
    Predictor`) from the rows of the CSV ``path``, as a DataFrame in time order: ``time`` (the
    window's last row), ``forecast_time`` (the time ``horizon`` rows later: a row of the file,
    or past its end at the file's usual step), the target column(s) and ``next_step`` (true on
    the last row only: the forecast after the file's last row)."""
    from nettrain.engine.predict import call_model, outputs

    if keep:
        raise UsageError("--keep: not for a series model: its output rows are windows of the "
                         "rows sorted by time, one per row from the window's last on, each "
                         "named by its time.")
    series = Section(predictor.info["timeseries"])
    times, values, _ = read_rows(path, predictor.info, predictor.missing,
                                 predictor.delimiter, "INPUT")
    last = np.arange(series.window - 1, len(times))  # each window's last row
    frame = outputs(predictor, call_model(predictor, windows(values, last + series.horizon,
                                                             series), path.name))
    ahead = last + series.horizon
    step = np.median(np.diff(times)) if len(times) > 1 else 0  # the file's usual step
    if times.dtype.kind == "i":  # dates, in nanoseconds: exact whole steps
        step = int(round(step))
    beyond = times[-1] + (ahead - (len(times) - 1)) * step
    known = (ahead < len(times)) | (len(times) > 1)
    frame.insert(0, "time", shown_times(times[last], series.kind))
    frame.insert(1, "forecast_time", shown_times(
        np.where(ahead < len(times), times[np.minimum(ahead, len(times) - 1)], beyond),
        series.kind, known))
    frame[NEXT] = np.arange(len(frame)) == len(frame) - 1
    if note:
        steps = f"{series.horizon} row{'s' if series.horizon > 1 else ''}"
        note(f"{path.name}: {len(times)} rows in time order give {len(frame)} forecast"
             f"{'s' if len(frame) > 1 else ''}, one per window of {series.window} rows: each "
             f"is for forecast_time, {steps} after the window's last row (time); the last, "
             f"{NEXT} true, is for {frame['forecast_time'].iloc[-1]}, after the file's last "
             "row.")
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


def naive(parts: Any, info: dict[str, Any]) -> dict[str, Any]:
    """MAE, RMSE and R² of the naive forecast on ``parts`` (a split's ``(x, y)`` windows, a
    chunk at a time): each window's last value of the target, the value ``horizon`` steps
    before; the baseline a forecast has to beat (:func:`nettrain.engine.reports.summed`)."""
    from nettrain.engine.reports import Moments, summed

    index = [list(info["features"]).index(t) for t in info["target"]]
    moments = Moments()
    for x, y in parts:
        moments.add(y, np.asarray(x)[:, -1, index])
    result = summed(moments, info.get("target"))
    return {key: result[key] for key in ("mae", "rmse", "r2", "samples")}
