"""Command-line overrides (``fit.epochs=5``): parsed as YAML data, applied to the raw mapping
before validation; and the same dotted keys for a whole config.
"""

from __future__ import annotations

from typing import Any

import yaml

from nettrain.config.fields import format_path, short_repr
from nettrain.config.reading import yaml_load
from nettrain.config.schema import SECTIONS
from nettrain.errors import ConfigError, Problem, did_you_mean


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """``'fit.epochs=5'`` -> ``(['fit', 'epochs'], 5)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(Problem("override", "KEY=VALUE, e.g. fit.epochs=5", f"'{text}'"))
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
    if any(p == "" for p in parts):
        raise ConfigError(Problem("override", "a dotted key such as fit.epochs", f"'{key}'"))
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(Problem(f"override {key}", "a YAML value", short_repr(raw),
                                  " ".join(str(getattr(exc, "problem", "") or "").split())
                                  or None)) from None
    return parts, value


def apply_override(data: dict[str, Any], parts: list[str | int], value: Any) -> tuple:
    """Set ``value`` at the dotted path ``parts`` of ``data`` (in place); return the key path
    it set, as the keys are in ``data`` (``'0'`` where a mapping has the text key ``'0'``).

    A missing last key is added (the schema then refuses it if it does not exist, with a
    suggestion). A missing intermediate key is refused unless it is a config section. A bare
    Keras name is expanded when an override sets one of its arguments:
    ``compile.optimizer=adam`` + ``compile.optimizer.adam.learning_rate=0.1``.
    """
    dotted = ".".join(map(str, parts))
    node: Any = data
    keys: list[str | int] = []  # the path walked so far, as the keys are in ``data``
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(map(str, parts[:depth])) or "the config"
        if isinstance(node, list):
            if not isinstance(part, int) or not -len(node) <= part < len(node):
                raise ConfigError(Problem(
                    f"override {dotted}", f"an index below {len(node)} into {where}",
                    f"'{part}'"))
            keys.append(part % len(node))
        elif isinstance(node, dict):
            if isinstance(part, int) and part not in node:
                part = str(part)
            keys.append(part)
            if last:
                break
            if part not in node:
                if depth == 0 and part in SECTIONS:
                    node[part] = {}
                else:
                    close = did_you_mean(str(part), map(str, node))
                    raise ConfigError(Problem(
                        f"override {dotted}", f"a key that exists in {where}",
                        f"'{part}' (it has {', '.join(map(str, node)) or 'no keys'})",
                        f"Did you mean '{close}'?" if close else None))
            child = node[part]
            if isinstance(child, str) and depth + 1 < len(parts) - 1 \
                    and str(parts[depth + 1]).lower() == child.lower():
                node[part] = child = {parts[depth + 1]: {}}
            elif child is None:
                node[part] = child = {}
        else:
            raise ConfigError(Problem(
                f"override {dotted}", f"{where} to be a mapping or a list",
                f"{type(node).__name__} {node!r}"))
        if last:
            break
        node = node[part]
    node[part] = value
    return tuple(keys)


def flatten(value: Any, path: tuple = ()) -> dict[str, Any]:
    """``{'fit': {'epochs': 3}}`` -> ``{'fit.epochs': 3}``; list items become ``[i]``.

    Lists of scalars stay whole (``save.formats``), so a changed list is one difference.
    """
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, sub in value.items():
            flat.update(flatten(sub, (*path, key)))
        return flat
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        flat = {}
        for i, sub in enumerate(value):
            flat.update(flatten(sub, (*path, i)))
        return flat
    return {format_path(path): value}
