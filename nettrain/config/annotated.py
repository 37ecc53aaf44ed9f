"""The resolved config as annotated YAML: each value marked with where it came from (file,
command line, default), for ``--print-config``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import yaml
from pydantic import (
    BaseModel,
)


def _key_text(key: tuple) -> tuple[str, ...]:
    """A key path with every part as text: the file's line table holds a mapping key ``0:``
    as ``'0'``, the validated config as ``0``."""
    return tuple(map(str, key))


def _flow(value: Any) -> str:
    """``value`` as one line of flow-style YAML: ``{units: 10, activation: tanh}``."""
    return yaml.safe_dump([value], default_flow_style=True, sort_keys=False,
                          width=math.inf).strip()[1:-1]


def _key_paths(value: Any, key: tuple) -> Iterator[tuple]:
    """``key`` and the key path of everything inside ``value`` (mappings and lists)."""
    yield key
    items = value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, list) else ()
    for part, item in items:
        yield from _key_paths(item, (*key, part))


def _leaf_paths(value: Any, key: tuple) -> Iterator[tuple]:
    """The key paths of ``value``'s scalars (``key`` itself for a scalar or an empty one)."""
    items = value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, list) else ()
    found = False
    for part, item in items:
        found = True
        yield from _leaf_paths(item, (*key, part))
    if not found:
        yield key


def _merged_origin(value: Any, key: tuple, origin: Any) -> str:
    """The origin of a value written on one line: its own, then the parts that differ."""
    own = origin(key)
    others: dict[str, list[str]] = {}
    for path in _leaf_paths(value, key):
        where = origin(path)
        if where != own:
            others.setdefault(where, []).append(".".join(map(str, path[len(key):])))
    return "; ".join([own, *(f"{where}: {', '.join(parts)}" for where, parts in others.items())])


def _annotated_rows(model: BaseModel, data: dict[str, Any], key: tuple, indent: str,
                    rows: list[tuple[str, str | None]], origin: Any) -> None:
    """Append the lines of ``data`` (the dump of ``model`` at ``key``) with their origins:
    a nested model is a block, a list of non-scalars one ``- item`` line per item, and any
    other value one line."""
    for name, value in data.items():
        path = (*key, name)
        if isinstance(getattr(model, name, None), BaseModel):
            rows.append((f"{indent}{name}:", None))
            _annotated_rows(getattr(model, name), value, path, indent + "  ", rows, origin)
        elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
            rows.append((f"{indent}{name}:", origin(path)))
            for i, item in enumerate(value):
                text = f"{next(iter(item))}: {_flow(next(iter(item.values())))}" \
                    if isinstance(item, dict) and len(item) == 1 else _flow(item)
                rows.append((f"{indent}- {text}", _merged_origin(item, (*path, i), origin)))
        else:
            rows.append((f"{indent}{name}: {_flow(value)}", _merged_origin(value, path, origin)))
