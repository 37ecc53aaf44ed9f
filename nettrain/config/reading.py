"""YAML read safely and within bounds: size, depth and values with aliases expanded, with the
line of every key kept for messages. No code is ever loaded from a config.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from nettrain.config.fields import _parse_path, format_path, short_repr
from nettrain.errors import ConfigError, Problem, did_you_mean

# ----------------------------------------------------------------------------- loading


# Bounds on what a config file may hold: a config is a few hundred values, so these refuse only
# hostile or broken input (an alias bomb, a runaway generator) before it costs memory or time.
MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 32          # nested mappings and lists, aliases expanded
MAX_VALUES = 10_000     # keys, values and list items, aliases expanded


class YamlRefused(yaml.MarkedYAMLError):
    """YAML that parses but that a config may not hold, at a position in the text."""

    def __init__(self, mark: yaml.Mark, expected: str, received: str,
                 suggestion: str | None = None):
        super().__init__(problem=f"expected {expected}; received {received}", problem_mark=mark)
        self.expected, self.received, self.suggestion = expected, received, suggestion


class SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (nothing in a file can run code) with fixes and bounds for configs.

    ``1e-3`` is a float, as in YAML 1.2 and Python (YAML 1.1 wants ``1.0e-3`` and reads
    ``1e-3`` as a string); a key written twice in one mapping is an error, not last-one-wins;
    nesting deeper than MAX_DEPTH, keys that are lists or mappings, and values Python cannot
    hold (a 5000-digit number, February 30th) are refused with their position. Use it through
    :func:`parse_yaml`, which also bounds what aliases expand to.
    """

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        # The composer recurses once per level: bound it before Python's stack does.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlRefused(self.peek_event().start_mark,
                                  f"nesting at most {MAX_DEPTH} levels deep", "deeper nesting")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:  # int(), datetime() and float() refused it
            raise YamlRefused(node.start_mark, "a YAML value Python can hold",
                              f"{short_repr(node.value)} ({exc})",
                              "Put it in quotes if it is text") from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<: *anchor': merged by SafeLoader; a key written here replaces it
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise YamlRefused(key_node.start_mark, "a key that is a name (text or a number)",
                                  f"a {kind} as a key")
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"the key '{key}' is written twice (first on line {seen[key].line + 1}); "
                    "keep one", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def parse_yaml(text: str) -> tuple[Any, dict[tuple, int]]:
    """Parse YAML text once, safely; return the value and the line of every key path.

    The text is composed into nodes once; the nodes are checked (what aliases expand to), then
    constructed into the value and walked for the line numbers. The value is a tree: each use of
    an anchor is its own copy, so changing one (an override) leaves the others alone.

    Example: ``parse_yaml("fit:\\n  epochs: 3\\n")`` -> ``({'fit': {'epochs': 3}},
    {('fit',): 1, ('fit', 'epochs'): 2})``.
    """
    loader = SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _expanded_size(node, {})
        value = loader.construct_document(node)
    finally:
        loader.dispose()
    return _tree(value), _line_numbers(node)


def _expanded_size(node: yaml.Node, sizes: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """How many values and how many levels ``node`` has with its aliases expanded.

    ``sizes`` remembers each node (an anchor is counted once however often it is used), so the
    count costs the size of the text, not of the expansion; past a bound it stops.
    """
    known = sizes.get(id(node))
    if known is not None:
        if known == (-1, -1):
            raise YamlRefused(node.start_mark, "an anchor used outside itself",
                              "an alias inside its own anchor (a value that contains itself)")
        return known
    if isinstance(node, yaml.ScalarNode):
        return 1, 0
    sizes[id(node)] = (-1, -1)
    children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) \
        else node.value
    count, depth = 1, 0
    for child in children:
        child_count, child_depth = _expanded_size(child, sizes)
        count, depth = count + child_count, max(depth, child_depth + 1)
        if count > MAX_VALUES or depth > MAX_DEPTH:
            raise YamlRefused(
                node.start_mark, f"aliases that expand to at most {MAX_VALUES:,} values, "
                f"{MAX_DEPTH} levels deep",
                "a value whose aliases expand past that (each use of an alias copies its anchor)")
    sizes[id(node)] = count, depth
    return count, depth


def _tree(value: Any) -> Any:
    """``value`` with every mapping and list copied, so none is shared (bounded by the checks)."""
    if isinstance(value, dict):
        return {k: _tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tree(v) for v in value]
    return value


def yaml_load(text: str) -> Any:
    """Parse YAML text safely (see :func:`parse_yaml`)."""
    return parse_yaml(text)[0]


def _close_name(path: Path, most: int = 10_000) -> str | None:
    """The name of a file in ``path``'s folder closest to its name (``churn.yaml`` for
    ``churn.yml``), or None; only the first ``most`` entries of a large folder are read."""
    import itertools
    import os

    try:
        with os.scandir(path.parent if str(path.parent) else ".") as entries:
            names = [e.name for e in itertools.islice(entries, most) if e.is_file()]
    except OSError:
        return None
    return did_you_mean(path.name, names)


def read_yaml(path: Path) -> tuple[dict[str, Any], dict[tuple, int]]:
    """Read a YAML mapping safely; also return the line number of every key path.

    Everything wrong with the file is a ConfigError naming the file and, where known, the line:
    missing, not a regular file, larger than MAX_FILE_BYTES, not UTF-8, bad YAML, or YAML a
    config may not hold (see :class:`SafeLoader` and :func:`parse_yaml`).
    """
    if not path.exists():
        close = _close_name(path)
        raise ConfigError(Problem("config", "an existing YAML file", f"'{path}' (no such file)",
                                  f"Did you mean '{path.with_name(close)}'?" if close else None))
    if path.is_dir():
        raise ConfigError(Problem("config", "a YAML file", f"'{path}' (a directory)"))
    if not path.is_file():
        raise ConfigError(Problem("config", "a YAML file", f"'{path}' (not a regular file)"))
    with path.open("rb") as file:
        raw = file.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(Problem(str(path), f"a config file of at most "
                                  f"{MAX_FILE_BYTES // 10**6} MB", "a larger file",
                                  "Is this the config file?"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(raw, exc.start)
        raise ConfigError(Problem(
            f"{path}:{line}:{column}", "a UTF-8 text file",
            f"the byte 0x{raw[exc.start]:02x} at line {line}, which is not UTF-8",
            "Save the file as UTF-8")) from None
    try:
        data, lines = parse_yaml(text)
    except yaml.reader.ReaderError as exc:  # a control character: a position, no mark
        line, column = _position(text, exc.position)
        raise ConfigError(Problem(f"{path}:{line}:{column}", "printable text",
                                  f"the character {chr(exc.character)!r}", "Remove it")) from None
    except YamlRefused as exc:
        mark = exc.problem_mark
        raise ConfigError(Problem(f"{path}:{mark.line + 1}:{mark.column + 1}", exc.expected,
                                  exc.received, exc.suggestion)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            Problem(f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path),
                    "valid YAML", f"a syntax error at {where}: {problem}",
                    "Check the indentation and the ':' after each key.")
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(Problem(str(path), "a mapping of sections (name, data, model, ...)",
                                  type(data).__name__))
    return data, lines


def _position(text: str | bytes, offset: int) -> tuple[int, int]:
    """The 1-based line and column of ``offset`` in ``text``."""
    newline = "\n" if isinstance(text, str) else b"\n"
    line_start = text.rfind(newline, 0, offset) + 1
    return text.count(newline, 0, offset) + 1, offset - line_start + 1


def _line_numbers(node: yaml.Node | None, path: tuple = ()) -> dict[tuple, int]:
    """Map every key path of a composed YAML document to its 1-based line."""
    lines: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            lines[sub] = key.start_mark.line + 1
            lines.update(_line_numbers(value, sub))
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            lines[(*path, i)] = value.start_mark.line + 1
            lines.update(_line_numbers(value, (*path, i)))
    return lines


def locate(problem: Problem, lines: dict[tuple, int], overridden: set[tuple]) -> Problem:
    """``problem`` (its path a dotted key, ``model.layers[1].Dense``) with the line it is on."""
    key = _parse_path(problem.path)
    return replace(problem, path=_where(key, lines, overridden),
                   line=_line(key, lines, overridden),
                   key=key)


def _where(loc: tuple, lines: dict[tuple, int], overridden: set[tuple]) -> str:
    path = format_path(loc)
    if _overrides(loc, overridden):
        return f"{path} (set on the command line)"
    line = _line(loc, lines, overridden)
    return path if line is None else f"{path} (line {line})"


def _overrides(loc: tuple, overridden: set[tuple]) -> bool:
    return any(loc[: len(o)] == o or o[: len(loc)] == loc for o in overridden)


def _line(loc: tuple, lines: dict[tuple, int], overridden: set[tuple]) -> int | None:
    """The file line of ``loc``, or of the nearest key above it; None if set by an override."""
    if _overrides(loc, overridden):
        return None
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None
