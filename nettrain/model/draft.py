"""Keras-name checks of a config the schema refused, so every mistake is reported at once.

When the schema refuses some keys (``epochs: ten``), the Keras objects that did parse (layers,
optimizer, loss, metrics, callbacks) are still resolved through Keras's registries, and their
problems join the schema's in one ConfigError, in the order of the file's lines. This needs
Keras, so the CLI calls it where it loads Keras anyway (validate, fit); :mod:`nettrain.config.load`
stays free of TensorFlow.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

from nettrain.config.fields import argument_example, format_path, normalize_spec
from nettrain.config.load import Draft
from nettrain.errors import ConfigError, Problem
from nettrain.model.keras_names import (
    CALLBACKS,
    LAYERS,
    LOSSES,
    METRICS,
    OPTIMIZERS,
    Registry,
    ResolveError,
    lookup,
    refused,
    resolve,
)

# Where a config names Keras objects: key path, registry, whether it is a list of them.
KERAS_KEYS: tuple[tuple[tuple[str, str], Registry, bool], ...] = (
    (("model", "layers"), LAYERS, True),
    (("compile", "optimizer"), OPTIMIZERS, False),
    (("compile", "loss"), LOSSES, False),
    (("compile", "metrics"), METRICS, True),
    (("compile", "weighted_metrics"), METRICS, True),
    (("fit", "callbacks"), CALLBACKS, True),
)


def with_keras_problems(error: ConfigError) -> ConfigError:
    """``error`` (the schema's) with the Keras-name problems of the parts that parsed.

    Returns ``error`` itself when it carries no draft (it is not the schema's) or Keras finds
    nothing more. Where the schema refused a scalar as arguments (``- Dropout: 0.2``), its
    suggestion names the class's first argument (``- Dropout: {rate: 0.2}``).

    Example: ``raise with_keras_problems(exc) from None`` in a command that loaded Keras.
    """
    draft = error.draft
    if not isinstance(draft, Draft):
        return error
    found, hints = keras_problems(draft)
    if not found and not hints:
        return error
    problems = [replace(p, suggestion=hints[p.key])
                if isinstance(p, Problem) and p.key in hints else p for p in error.problems
                if not (isinstance(p, Problem) and p.key in hints and hints[p.key] is None)]
    problems += [draft.locate(p) for p in found]
    return ConfigError(problems, source=error.source, draft=draft)


def keras_problems(draft: Draft) -> tuple[list[Problem], dict[tuple, str]]:
    """Resolve every Keras object of ``draft`` that parsed; return the problems found and
    better suggestions for scalar arguments, by key path."""
    problems: list[Problem] = []
    hints: dict[tuple, str | None] = {}  # None: drop the schema's problem at that key
    for key, registry, many in KERAS_KEYS:
        section = draft.data.get(key[0])
        if not isinstance(section, dict) or key[1] not in section:
            continue
        value = section[key[1]]
        if many and not isinstance(value, list):
            continue
        for item_key, spec in ([((*key, i), s) for i, s in enumerate(value)] if many
                               else [(key, value)]):
            if _scalar_arguments(spec):
                _hint_arguments(item_key, spec, registry, problems, hints)
            elif draft.parsed(item_key):
                try:
                    resolve(normalize_spec(spec), registry, format_path(item_key))
                except ResolveError as exc:
                    problems += exc.problems
    return problems, hints


def with_hints_applied(error: ConfigError) -> dict[str, Any] | None:
    """The refused config's mapping with each scalar argument written as its hint suggests
    (``- Dropout: 0.1`` -> ``- Dropout: {rate: 0.1}``), when those are all the schema refused;
    else None. Validated and built, it shows the mistakes the refused keys hid (a monitor the
    run does not log), so they are reported at once, not after the first fix."""
    import copy

    draft = error.draft
    if not isinstance(draft, Draft):
        return None
    fixes: dict[tuple, Any] = {}
    for key, registry, many in KERAS_KEYS:
        section = draft.data.get(key[0])
        value = section.get(key[1]) if isinstance(section, dict) else None
        items = list(enumerate(value)) if many and isinstance(value, list) else \
            [(None, value)] if not many and value is not None else []
        for i, spec in items:
            if not _scalar_arguments(spec):
                continue
            (name, argument_value), = spec.items()
            try:
                obj = lookup(name, registry, name)
            except ResolveError:
                return None
            argument = _first_argument(obj) if inspect.isclass(obj) else None
            if argument is None:
                return None
            fixes[(*key, *(() if i is None else (i,)), name)] = {name: {argument: argument_value}}
    if not fixes or any(not isinstance(p, Problem) or p.key not in fixes for p in error.problems):
        return None
    data = copy.deepcopy(draft.data)
    for key, spec in fixes.items():
        parent = data
        for part in key[:-2]:
            parent = parent[part]
        parent[key[-2]] = spec
    return data


def _scalar_arguments(spec: Any) -> bool:
    """``{Dropout: 0.2}``: a name with a value that is not a mapping of arguments."""
    return isinstance(spec, dict) and len(spec) == 1 and isinstance(next(iter(spec)), str) \
        and next(iter(spec.values())) is not None and not isinstance(next(iter(spec.values())),
                                                                      dict)


def _hint_arguments(key: tuple, spec: dict, registry: Registry, problems: list[Problem],
                    hints: dict[tuple, str | None]) -> None:
    (name, value), = spec.items()
    refusals = refused({name: {}}, format_path(key))
    if refusals:  # refused whatever its arguments: the refusal replaces the schema's problem
        problems += refusals
        hints[(*key, name)] = None
        return
    try:
        obj = lookup(name, registry, format_path((*key, name)))
    except ResolveError as exc:
        problems += exc.problems
        return
    argument = _first_argument(obj) if inspect.isclass(obj) else None
    if argument is not None:
        hints[(*key, name)] = f"Write e.g. {argument_example((*key, name), name, value, argument)}"


def _first_argument(cls: type) -> str | None:
    """The first keyword argument of ``cls(...)``: what a lone value most likely means."""
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return named[0].name if named else None
