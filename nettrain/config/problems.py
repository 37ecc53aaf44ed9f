"""Pydantic's validation errors as nettrain problems: the key path, its line in the file or the
override that set it, what was expected and received, and a suggestion.
"""

from __future__ import annotations

import typing
from dataclasses import replace
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from nettrain.config.fields import argument_example, short_repr
from nettrain.config.reading import _line, _where
from nettrain.config.schema import Config
from nettrain.errors import Problem, did_you_mean

# Keys that belong to another section than the one they were written in.
_MOVED = {("fit", "validation_split"): "data.validation_split",
          ("fit", "validation_data"): "data.validation_split or data.test_split",
          ("compile", "epochs"): "fit.epochs", ("fit", "optimizer"): "compile.optimizer",
          ("fit", "loss"): "compile.loss", ("fit", "metrics"): "compile.metrics"}


def _problems_from(exc: ValidationError, data: dict, lines: dict[tuple, int],
                   overridden: set[tuple]) -> list[Problem]:
    problems = []
    errors = []
    for err in exc.errors():  # one error of refuse_all stands for several
        errors += [{**err, "type": "nettrain", "ctx": ctx} for ctx in err["ctx"]["problems"]] \
            if err["type"] == "nettrain_all" else [err]
    for err in errors:
        loc = tuple(err["loc"])
        ctx = err.get("ctx") or {}
        if "field" in ctx:  # a dotted field names a key below a section: fit.class_weight
            loc = (*loc, *(int(p) if p.isdigit() else p for p in str(ctx["field"]).split(".")))
        problems.append(_problem(err, loc, data, lines, overridden))
    return problems


def _problem(err: dict, loc: tuple, data: dict, lines: dict[tuple, int],
             overridden: set[tuple]) -> Problem:
    return replace(_problem_text(err, loc, _where(loc, lines, overridden)),
                   line=_line(loc, lines, overridden), key=loc)


def _problem_text(err: dict, loc: tuple, where: str) -> Problem:
    kind = err["type"]
    if kind == "extra_forbidden":
        parent, key = loc[:-1], str(loc[-1])
        model = _section_model(parent)
        allowed = list(model.model_fields) if model else []
        moved = _MOVED.get((*map(str, parent), key)) if len(parent) == 1 else None
        close = did_you_mean(key, allowed)
        hint = (f"'{key}' belongs in {moved}" if moved
                else f"Did you mean '{close}'?" if close else None)
        return Problem(where, f"one of the keys {', '.join(allowed)}",
                       f"unknown key '{key}'", hint)
    if kind == "missing":
        return Problem(where, "a value (this key is required)", "nothing",
                       _missing_hint(loc))
    ctx = err.get("ctx") or {}
    if kind == "nettrain":  # raised by a validator here: the parts are in the context
        return Problem(where, ctx["expected"], ctx.get("received"), ctx.get("hint"))
    if kind == "keras_arguments":
        return Problem(where, ctx["expected"], short_repr(ctx["value"]),
                       f"Write e.g. {argument_example(loc, ctx['name'], ctx['value'])}")
    received = short_repr(err.get("input"))
    if kind == "string_pattern_mismatch" and loc == ("name",):
        return Problem(where, "a name of letters, digits, '.', '_' and '-' (it names a folder "
                       "under runs/)", received)
    if kind in _EXPECTED:
        return Problem(where, _EXPECTED[kind], received)
    return Problem(where, err["msg"].removeprefix("Input should be "), received)


# What pydantic's error types expect, in the words of a config.
_EXPECTED = {
    "int_type": "a whole number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list, e.g. [accuracy] or one '- item' per line",
    "dict_type": "a mapping (indented key: value lines)",
    "model_type": "a mapping (indented key: value lines)",
    "model_attributes_type": "a mapping (indented key: value lines)",
}


def _section_model(parent: tuple) -> type[BaseModel] | None:
    """The section model at ``parent`` (``("fit", "fine_tune")``: FineTuneConfig), at any
    depth; None below a list or a free mapping."""
    model: type[BaseModel] | None = Config
    for part in map(str, parent):
        field = model.model_fields.get(part) if model is not None else None
        model = _model_in(field.annotation) if field is not None else None
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The section model an annotation holds (``FineTuneConfig | None``: FineTuneConfig)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_model_in, typing.get_args(annotation))), None)


def _missing_hint(loc: tuple) -> str | None:
    examples = {
        ("data",): "e.g. data: {dataset: iris}",
        ("model",): "e.g. model: {layers: [{Dense: {units: 1}}]}",
        ("compile",): "e.g. compile: {optimizer: adam, loss: mse}",
        ("compile", "loss"): "e.g. loss: categorical_crossentropy",
        ("model", "layers"): "e.g. layers: [{Dense: {units: 1}}]",
    }
    return examples.get(tuple(map(str, loc)))
