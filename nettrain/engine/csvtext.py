"""The CSV text of a table of predictions: what pandas's ``to_csv(index=False,
float_format="%.7g")`` writes, byte for byte, made at C speed where it can be.

pandas formats each float of a column with ``float_format`` in Python, one call a value (about
2 µs: 2 s of CPU for a million rows of two probabilities); here the cells of a whole chunk
are formatted by one ``%`` of one format string over all of them. A chunk this way could not
write as pandas does (a missing value, a text that needs quoting, a column of another type)
is written by pandas itself.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any

import numpy as np

FLOAT_FORMAT = "%.7g"  # 7 significant digits: float32's precision, without its noise
# pandas quotes a text holding one of these (csv.QUOTE_MINIMAL with its delimiter ','); NUL
# too, to be safe: such a chunk is left to pandas.
_QUOTED = (",", '"', "\n", "\r", "\x00")


def csv_text(frame: Any, header: list[str] | None = None) -> str:
    """``frame`` (a pandas DataFrame) as CSV text, its ``header`` line first when given:
    the same text as ``frame.to_csv(index=False, header=header or False,
    float_format=FLOAT_FORMAT)``."""
    head = ""
    if header is not None:
        line = io.StringIO()
        csv.writer(line, lineterminator=os.linesep).writerow(header)
        head = line.getvalue()
    cells = _cells(frame)
    if cells is None:  # pandas's own formatting
        return head + frame.to_csv(index=False, header=False, float_format=FLOAT_FORMAT,
                                   lineterminator=os.linesep)
    formats, columns = cells
    flat: list[Any] = [None] * (len(frame) * len(columns))
    for i, values in enumerate(columns):
        flat[i::len(columns)] = values
    return head + (",".join(formats) + os.linesep) * len(frame) % tuple(flat)


def _cells(frame: Any) -> tuple[list[str], list[list[Any]]] | None:
    """Each column's ``%`` format and its cells as Python values, or None when a column
    cannot be written this way exactly as pandas writes it."""
    import pandas as pd

    if frame.empty or frame.shape[1] == 0:
        return None
    formats, columns = [], []
    for _, column in frame.items():
        dtype = column.dtype
        if isinstance(dtype, np.dtype) and dtype in (np.float32, np.float64):
            values = column.to_numpy()
            if np.isnan(values).any():  # pandas writes '' (and '""' alone on a line)
                return None
            formats.append(FLOAT_FORMAT)
            columns.append(values.tolist())
        elif pd.api.types.is_string_dtype(dtype):
            values = column.to_numpy(dtype=object)
            if pd.api.types.infer_dtype(values, skipna=False) != "string":
                return None  # a missing cell or a value that is no text
            texts = values.tolist()
            joined = "".join(texts)
            if any(c in joined for c in _QUOTED) or (frame.shape[1] == 1 and "" in texts):
                return None
            formats.append("%s")
            columns.append(texts)
        else:
            return None
    return formats, columns
