"""The building blocks of the config schema: Keras-object specs, refusals that say what was
expected and received, and the strict base section. No TensorFlow here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

# Built-in datasets that ship with the install (through scikit-learn, or made here).
BUILTIN_DATASETS = ("xor", "iris", "digits", "breast_cancer", "wine", "diabetes")
# Keras's downloadable datasets, loaded through ``keras.datasets`` and its cache.
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100", "boston_housing", "imdb",
                  "reuters")
SOURCES = ("dataset", "csv", "npz", "images", "synthetic")
# The files of a `data.images` folder that are its samples (the loaders, predict and serve
# read these; the backend policy counts them).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def refuse(expected: str, received: Any = None, hint: str | None = None,
           field: str | None = None) -> PydanticCustomError:
    """The error a validator raises: what was expected, what was received, a suggestion.

    The parts travel in the error's context and are read back by :func:`_problem`; pydantic's
    message template is only ``{expected}``, so braces in the text (``{SGD: {...}}``) and in
    the user's values are never read as placeholders. ``field`` names a key below the one
    validated (a model validator's errors are reported at the model itself); ``received`` is
    shown as written (give a repr for a value).
    """
    ctx = {"received": received, "hint": hint, "field": field}
    ctx = {key: value for key, value in ctx.items() if value is not None}
    return PydanticCustomError("nettrain", "{expected}", {**ctx, "expected": expected})


def refuse_all(errors: list[PydanticCustomError]) -> PydanticCustomError:
    """One error standing for several :func:`refuse` errors: a validator that checks several
    keys reports every problem it finds (pydantic takes one error from a validator)."""
    if len(errors) == 1:
        return errors[0]
    return PydanticCustomError("nettrain_all", "{expected}", {
        "problems": [e.context for e in errors], "expected": f"{len(errors)} problems"})


def argument_example(path: tuple, name: str, value: Any, argument: str = "argument") -> str:
    """How to write a Keras object's argument, as YAML at ``path``: ``- Dropout: {rate: 0.2}``.

    ``path`` ends with the object's name; the line starts with ``- `` in a list, else the key.
    """
    start = "- " if len(path) > 1 and isinstance(path[-2], int) else \
        f"{path[-2]}: " if len(path) > 1 else ""
    arguments = f"{{{argument}: {json.dumps(value, default=str)}}}"
    return f"{start}{name}: {arguments}" if start.startswith("-") else \
        f"{start}{{{name}: {arguments}}}"


def _non_finite(value: Any,
                path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], float]]:
    """Where ``value`` (nested mappings and lists) holds ``.nan`` or ``.inf``: no Keras
    argument means them, and they would train silently to NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite(item, (*path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _non_finite(item, (*path, str(i)))


def normalize_spec(value: Any) -> Any:
    """A Keras object is a bare name or a one-key mapping from the name to its arguments.

    Returns the name, or ``{name: {arguments}}`` with ``None`` arguments made ``{}``; raises
    the schema's error otherwise. Example: ``normalize_spec({'Flatten': None})`` ->
    ``{'Flatten': {}}``.
    """
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, dict) and len(value) == 1:
        (name, kwargs), = value.items()
        if isinstance(name, str) and (kwargs is None or isinstance(kwargs, dict)):
            for where, number in _non_finite(kwargs or {}):
                raise refuse("a finite number", repr(number), field=".".join((name, *where)))
            return {name: dict(kwargs or {})}
        if isinstance(name, str):
            raise PydanticCustomError("keras_arguments", "{expected}", {
                "field": name, "name": name, "value": kwargs,
                "expected": f"the arguments of {name} as a mapping of argument names to values"})
    if isinstance(value, dict) and len(value) > 1:
        raise refuse(f"one Keras name per list item (a one-key mapping); this mapping has "
                     f"{len(value)} keys: {', '.join(map(str, value))}",
                     hint="Start each object on its own '- ' line")
    raise refuse("a Keras name such as 'adam' or a one-key mapping such as "
                 "{SGD: {learning_rate: 0.1}}", short_repr(value))


# What a Keras object looks like in the JSON Schema: its structure, any Keras name (the names
# and their arguments are checked against Keras's registries later, by nettrain).
KERAS_SPEC_SCHEMA = {"anyOf": [
    {"type": "string", "minLength": 1,
     "description": "A Keras name, with its default arguments: adam, Flatten, relu."},
    {"type": "object", "minProperties": 1, "maxProperties": 1,
     "additionalProperties": {"type": ["object", "null"]},
     "description": "A Keras name and its keyword arguments: {SGD: {learning_rate: 0.1}}."},
]}
KerasSpec = Annotated[Any, BeforeValidator(normalize_spec), WithJsonSchema(KERAS_SPEC_SCHEMA)]


def spec_name(spec: str | dict[str, Any]) -> str:
    """The Keras name of a spec: ``'adam'`` -> ``'adam'``, ``{SGD: {...}}`` -> ``'SGD'``."""
    return spec if isinstance(spec, str) else next(iter(spec))


def spec_kwargs(spec: str | dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a spec (empty for a bare name)."""
    return {} if isinstance(spec, str) else dict(next(iter(spec.values())) or {})


class _Section(BaseModel):
    # Strict: a value has the type it says (``epochs: true`` is not 1, ``batch_size: 1e20`` is
    # not a whole number, ``shuffle: 1`` is not true); floats are finite.
    # The docstring under each field is its description in the JSON Schema (editors show it).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False,
                              use_attribute_docstrings=True)


# What Keras, TensorFlow and numpy accept: sizes and counts are int32, a seed is uint32.
INT32_MAX = 2**31 - 1
Count = Annotated[int, Field(gt=0, le=INT32_MAX)]
Index = Annotated[int, Field(ge=0, le=INT32_MAX)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
ImageSide = Annotated[int, Field(gt=0, le=16_384)]


def format_path(loc: tuple) -> str:
    """``('model', 'layers', 1, 'Dense')`` -> ``'model.layers[1].Dense'``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _parse_path(path: str) -> tuple:
    """``'model.layers[1].Dense'`` -> ``('model', 'layers', 1, 'Dense')`` (inverse of format_path)."""
    return tuple(int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path))


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _schema(*options: dict[str, Any]) -> WithJsonSchema:
    """The JSON Schema of a field whose validator takes several kinds of value."""
    return WithJsonSchema({"anyOf": list(options)} if len(options) > 1 else options[0])
