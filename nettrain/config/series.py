"""The ``data.timeseries`` section and the data keys it goes with (or not). No TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import Field
from pydantic_core import PydanticCustomError

from nettrain.config.fields import Count, _Section, refuse


class TimeseriesConfig(_Section):
    """``data.timeseries``: the CSV's rows in time order, each sample the previous ``window``
    rows of the inputs (the target's own past included), its label the target ``horizon``
    steps after the window's last row; validation and test are the last parts in time."""

    time: str = Field(min_length=1)
    """The column of times (dates or numbers); the rows are sorted by it."""
    window: Count
    """How many rows (time steps) each sample sees, ending at the row it forecasts from."""
    horizon: Count = 1
    """How many rows after the window's last row the forecast is for (1: the next step)."""
    stride: Count = 1
    """Take every stride-th window (1: a sample at every row)."""


INTERPOLATE = "interpolate"  # the data.missing policy that only data.timeseries takes


def problems(cfg: Any) -> Iterator[PydanticCustomError]:
    """Every data key that does not go with ``cfg.timeseries`` (``cfg``: the DataConfig), and
    ``missing: interpolate`` without it."""
    series = cfg.timeseries
    policies = [cfg.missing] if isinstance(cfg.missing, str) else list(cfg.missing.values())
    if series is None:
        if INTERPOLATE in policies:
            yield refuse("interpolate only with data.timeseries (it fills gaps in time "
                         "order)", "'interpolate'", "Add data.timeseries: {time: COLUMN, "
                         "window: N}, or use median.", field="missing")
        return
    if cfg.source != "csv":
        yield refuse("timeseries only with the source csv", f"source '{cfg.source}'",
                     field="timeseries")
        return
    time = series.time
    if time in cfg.targets:
        yield refuse("a time column other than the target", repr(time), field="timeseries")
    if cfg.features is not None and time in cfg.features:
        yield refuse("input columns other than the time column (data.timeseries.time)",
                     repr(time), f"Remove {time!r} from data.features.", field="features")
    refused = {"categorical": "numbers only: every column of a series is a number",
               "text": "numbers only: every column of a series is a number",
               "sample_weight": "no per-row weights",
               "stratify": "no stratified split: the splits are the last parts in time",
               "validation": "the validation part is the last rows before the test part, "
                             "by time: use validation_split",
               "test": "the test part is the last rows by time: use test_split",
               "scale": "no scale: the inputs and the target are standardised on the "
                        "training part",
               "normalize": "no normalize: the inputs and the target are standardised on "
                            "the training part"}
    for key, why in refused.items():
        if getattr(cfg, key) not in (None, False):
            yield refuse(f"{key} not with data.timeseries ({why})", repr(getattr(cfg, key)),
                         f"Remove data.{key}.", field=key)
    if cfg.stream is True:
        yield refuse("stream: false or auto with data.timeseries (the rows are sorted and "
                     "windowed in memory)", "true", field="stream")
