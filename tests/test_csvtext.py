"""csvtext: the predictions' CSV text is pandas's to_csv with '%.7g', byte for byte."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nettrain.engine.csvtext import _cells, csv_text


def _pandas(frame, header=None):
    return frame.to_csv(index=False, header=header or False, float_format="%.7g")


EDGES = [0.0, -0.0, 1.0, 0.5, 1 / 3, 2 / 3, 0.123456789, 1e-30, 3.4e38, 1e7, 12345678.9,
         -2.5e-5, 0.1 + 0.2, 1e16, np.inf, -np.inf]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_floats_are_written_as_pandas_writes_them(dtype):
    values = np.array(EDGES, dtype=dtype)
    frame = pd.DataFrame({"class": [str(i % 3) for i in range(len(values))],
                          "prob_0": values, "prob_1": values[::-1].copy()})
    assert _cells(frame) is not None  # the fast way, not pandas's
    text = csv_text(frame, ["class", "prob_0", "prob_1"])
    assert text == _pandas(frame, ["class", "prob_0", "prob_1"])
    # 7 significant digits, %g's choice of notation, no float32 noise ('0.33333334')
    assert [line.split(",")[1] for line in text.splitlines()[1:]] == [
        "0", "-0", "1", "0.5", "0.3333333", "0.6666667", "0.1234568", "1e-30", "3.4e+38",
        "1e+07", "1.234568e+07", "-2.5e-05", "0.3", "1e+16", "inf", "-inf"]


def test_a_chunk_pandas_must_write_is_written_by_pandas():
    """Missing values, texts that need quotes, one empty column, other types: pandas's text."""
    probs = np.array([0.25, np.nan, 0.75], dtype="float32")
    frames = [
        pd.DataFrame({"class": ["a", "b", "c"], "prob_a": probs}),                 # NaN -> ''
        pd.DataFrame({"id": ["1,5", 'say "hi"', "two\nlines"], "p": [0.5] * 3}),   # quoted
        pd.DataFrame({"id": ["", "x", ""]}),                                       # '""'
        pd.DataFrame({"id": ["", "x", ""], "p": [1.0, 2.0, 3.0]}),                 # '' is ''
        pd.DataFrame({"n": np.arange(3), "p": [0.1, 0.2, 0.3]}),                   # integers
        pd.DataFrame({"k": pd.array(["a", None, "c"], dtype="string"), "p": [1.0] * 3}),
        pd.DataFrame({"p": np.array([1.5, 2.5, 3.5], dtype="float16")}),
        pd.DataFrame({"p": np.array([], dtype="float32")}),
    ]
    for frame in frames:
        assert csv_text(frame, list(frame.columns)) == _pandas(frame, list(frame.columns))
        assert csv_text(frame) == _pandas(frame)


def test_a_header_is_quoted_as_pandas_quotes_it():
    frame = pd.DataFrame({"a": [1.0], "b": [2.0]})
    header = ['prob_"x"', "prob_1,5"]
    assert csv_text(frame, header) == _pandas(frame, header)
    assert csv_text(frame, header).splitlines()[0] == '"prob_""x""","prob_1,5"'
