"""The named inputs of a table model: each column's input name and dtype, and the one input of
an array model (``inputs``). Decided here for training, saving and predict alike."""

from __future__ import annotations

import re
from typing import Any

INPUT_DTYPES = {"numeric": "float32", "integer": "int64", "string": "string"}


# The name of the one input of a model of arrays (not named columns) in its SavedModel's
# serving signature (see saving.save_model).
SERVING_INPUT = "inputs"


# Layer names a model with named inputs uses for itself (see model._table_model).
_RESERVED_NAMES = {"features", "numeric_inputs", "normalize_input", "layers"}


def input_names(columns: list[str]) -> dict[str, str]:
    """Column -> the name of its model input: the column name with every character other than
    an ASCII letter, digit, _, . or - made _, starting with a letter or digit, unique (and
    distinct from the model's own layer names), because TensorFlow refuses other names in a
    SavedModel's signature and Keras refuses '/'. A name that is fine stays as it is.

    Example: ``input_names(["my col", "my_col", "size"])`` ->
    ``{"my col": "my_col", "my_col": "my_col_2", "size": "size"}``.
    """
    used = set(_RESERVED_NAMES)
    names = {}
    for column in columns:
        base = re.sub(r"[^A-Za-z0-9_.\-]", "_", column) or "column"
        if not base[0].isalnum():
            base = "c" + base
        name, n = base, 1
        while name in used or f"encode_{name}" in used:
            n += 1
            name = f"{base}_{n}"
        used.update((name, f"encode_{name}"))
        names[column] = name
    return names


def model_inputs(input_shape: tuple[int, ...] | list[int],
                 columns: dict[str, str] | None) -> dict[str, dict[str, Any]]:
    """The model's inputs as a caller from Python gives them (``model.predict``, the
    SavedModel's ``signatures["serve"]``): input name -> dtype, shape (None: any number of
    rows) and, for named inputs, the column it takes.

    Example: ``model_inputs((4,), None)`` ->
    ``{"inputs": {"dtype": "float32", "shape": [None, 4]}}``;
    ``model_inputs((2,), {"my col": "string", "n": "numeric"})`` ->
    ``{"my_col": {"dtype": "string", "shape": [None, 1], "column": "my col"}, "n": ...}``.
    """
    if not columns:
        return {SERVING_INPUT: {"dtype": "float32", "shape": [None, *map(int, input_shape)]}}
    names = input_names(list(columns))
    return {names[column]: {"dtype": INPUT_DTYPES[kind], "shape": [None, 1], "column": column}
            for column, kind in columns.items()}
