"""The named inputs of a table model: each column's input name and dtype, and the one input of
an array model (``inputs``). Decided here for training, saving and predict alike."""

from __future__ import annotations

import keyword
import re
import unicodedata
from typing import Any

INPUT_DTYPES = {"numeric": "float32", "integer": "int64", "string": "string", "text": "string"}


# The name of the one input of a model of arrays (not named columns) in its SavedModel's
# serving signature (see saving.save_model).
SERVING_INPUT = "inputs"


# Layer names a model with named inputs uses for itself (see model._table_model).
_RESERVED_NAMES = {"features", "numeric_inputs", "normalize_input", "layers"}


def input_names(columns: list[str]) -> dict[str, str]:
    """Column -> the name of its model input in a new run, one name that every format takes
    unchanged: Keras (no '/'), a SavedModel's signature (a Python parameter name: no keyword
    such as ``class``, no leading digit), ONNX (tf2onnx names the inputs after TensorFlow's
    placeholders, lowercased: ``Origin`` becomes ``origin``) and TFLite. So: lowercase ASCII
    letters, digits and _, starting with a letter, not a Python keyword, unique (and distinct
    from the model's own layer names). Accents are dropped (``naïve`` -> ``naive``), other
    characters made _. A run records the names it chose (``dataset.json`` ``model_inputs``):
    read them with :func:`names_of`, never by calling this again.

    Example: ``input_names(["class", "2nd", "Origin", "origin", "naïve col"])`` ->
    ``{"class": "class_", "2nd": "c2nd", "Origin": "origin", "origin": "origin_2",
    "naïve col": "naive_col"}``.
    """
    used = set(_RESERVED_NAMES)
    names = {}
    for column in columns:
        ascii_ = unicodedata.normalize("NFKD", str(column)).encode("ascii", "ignore").decode()
        base = re.sub(r"[^a-z0-9_]", "_", ascii_.lower())
        if not re.search(r"[a-z0-9]", base):  # nothing of the name is left: '価格', '?'
            base = "column"
        if not base[0].isalpha():
            base = "c" + base
        if keyword.iskeyword(base):  # a SavedModel's signature refuses 'class'
            base += "_"
        names[column] = _unique(base, used)
    return names


def _legacy_input_names(columns: list[str]) -> dict[str, str]:
    """The input names of runs recorded before ``model_inputs`` (the rule of that time:
    characters other than ASCII letters, digits, _, . and - made _, a leading one not a
    letter or digit prefixed with c): such a run's model takes these."""
    used = set(_RESERVED_NAMES)
    names = {}
    for column in columns:
        base = re.sub(r"[^A-Za-z0-9_.\-]", "_", column) or "column"
        if not base[0].isalnum():
            base = "c" + base
        names[column] = _unique(base, used)
    return names


def _unique(base: str, used: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``... the first not in ``used`` (nor its encoding
    layer's name); added to ``used``."""
    name, n = base, 1
    while name in used or f"encode_{name}" in used:
        n += 1
        name = f"{base}_{n}"
    used.update((name, f"encode_{name}"))
    return name


def names_of(info: dict[str, Any]) -> dict[str, str]:
    """Column -> input name of a run's (or a new data's) named inputs, as recorded in its
    ``info`` (``dataset.json``) ``model_inputs``; a run recorded before it (no
    ``model_inputs``) by the rule of its time. Empty for a model of arrays.

    Example: ``names_of({"columns": {"Origin": "string"}, "model_inputs": {"origin":
    {"column": "Origin", ...}}})`` -> ``{"Origin": "origin"}``.
    """
    columns = list(info.get("columns") or [])
    if not columns:
        return {}
    recorded = {spec.get("column"): name for name, spec in (info.get("model_inputs") or {}).items()
                if isinstance(spec, dict)}
    if all(column in recorded for column in columns):
        return {column: recorded[column] for column in columns}
    return _legacy_input_names(columns)


def named_inputs(columns: dict[str, str], names: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The ``model_inputs`` record of a model of named columns: input name -> dtype, shape and
    the column it takes (``columns``: column -> kind; ``names``: column -> input name)."""
    return {names[column]: {"dtype": INPUT_DTYPES[kind], "shape": [None, 1], "column": column}
            for column, kind in columns.items()}


def model_inputs(input_shape: tuple[int, ...] | list[int], columns: dict[str, str] | None,
                 names: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
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
    return named_inputs(columns, names or input_names(list(columns)))
