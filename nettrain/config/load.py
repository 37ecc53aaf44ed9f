"""A config file plus overrides -> one validated, frozen :class:`Config`, or a ConfigError with
every problem at once.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from nettrain.config.annotated import _key_paths
from nettrain.config.overrides import apply_override, parse_override
from nettrain.config.problems import _problems_from
from nettrain.config.reading import locate, read_yaml
from nettrain.config.schema import Config
from nettrain.errors import ConfigError, Problem


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, override and validate a config file; raise ConfigError listing every mistake.

    Args:
        path: the YAML file.
        overrides: ``dotted.key=value`` strings, applied in order (default none).

    Example: ``load_config("configs/xor.yaml", ["fit.epochs=5"])``.
    """
    path = Path(path)
    data, lines = read_yaml(path)
    data = copy.deepcopy(data)
    overridden: set[tuple] = set()
    for text in overrides:
        parts, value = parse_override(text)
        try:
            key = apply_override(data, parts, value)
        except ConfigError as exc:
            raise ConfigError(exc.problems, source=str(path)) from None
        # What this override set: the key and every key inside its value; what an earlier
        # override set below the key is gone.
        overridden = {o for o in overridden if o[: len(key)] != key} | set(_key_paths(value, key))
    data.setdefault("name", _default_name(path))
    config = validate_config(data, source=str(path), lines=lines, overridden=overridden)
    return config.with_absolute_paths()


def _default_name(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-._") or "run"
    return "run" if stem == "config" else stem


def validate_config(
    data: dict[str, Any],
    source: str | None = None,
    lines: dict[tuple, int] | None = None,
    overridden: set[tuple] | None = None,
) -> Config:
    """Validate a raw mapping into a Config, reporting every mistake at once."""
    try:
        config = Config.model_validate(data)
        config._source, config._lines = source, lines or {}
        config._overridden = overridden or set()
        return config
    except ValidationError as exc:
        problems = _problems_from(exc, data, lines or {}, overridden or set())
        draft = Draft(data, source, lines or {}, overridden or set(),
                      tuple(p.key for p in problems if p.key is not None))
        raise ConfigError(problems, source=source, draft=draft) from None


@dataclass(frozen=True)
class Draft:
    """A config the schema refused: the raw mapping (file plus overrides) and where its keys
    are, for checks that run on the parts that parsed (see :mod:`nettrain.model.draft`).

    ``refused`` holds the key paths the schema refused (a value inside one of them, or a
    container of one, did not parse).
    """

    data: dict[str, Any]
    source: str | None
    lines: dict[tuple, int]
    overridden: set[tuple]
    refused: tuple[tuple, ...]

    def parsed(self, key: tuple) -> bool:
        """Whether the value at ``key`` parsed: the schema refused nothing in it or above it."""
        return not any(r[: len(key)] == key or key[: len(r)] == r for r in self.refused)

    def locate(self, problem: Problem) -> Problem:
        """``problem`` with its file line (see :func:`locate`)."""
        return locate(problem, self.lines, self.overridden)
