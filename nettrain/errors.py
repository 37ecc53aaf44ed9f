"""Domain errors. The library raises these; only the CLI turns them into exit codes."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word`` (case-insensitive), or None when nothing is close.

    Example: ``did_you_mean("unitz", ["units", "activation"])`` -> ``"units"``.
    """
    by_lower: dict[str, str] = {}
    for choice in choices:
        by_lower.setdefault(str(choice).lower(), str(choice))
    match = difflib.get_close_matches(str(word).lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


def plain_tf_text(text: str) -> str:
    """A TensorFlow error message as one line without its op names: ``{{function_node
    __wrapped__DecodeImage_device_/job:...}} Invalid PNG. [Op:DecodeImage] name:`` ->
    ``Invalid PNG``."""
    text = re.sub(r"\{\{function_node [^}]*\}\}", "", text)
    text = re.sub(r"\[Op:[^\]]*\].*", "", text, flags=re.S)
    return " ".join(text.split()).rstrip(" .") or "no reason given"


@dataclass(frozen=True)
class Problem:
    """One mistake: where it is, what was expected, what was received, a suggestion.

    ``line`` (the config file's line, for ordering) and ``key`` (the key path as a tuple, for
    matching) are set where known; the message shows the line inside ``path``.
    """

    path: str
    expected: str
    received: str | None = None
    suggestion: str | None = None
    line: int | None = field(default=None, compare=False)
    key: tuple | None = field(default=None, compare=False)

    def __str__(self) -> str:
        text = f"{self.path}: expected {self.expected}"
        if self.received is not None:
            text += f"; received {self.received}"
        if self.suggestion:
            text += f". {self.suggestion}"
        return text


class NettrainError(Exception):
    """Base class of the errors a user can cause. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ConfigError(NettrainError):
    """The config (or an override, or a command-line argument) is wrong. Exit status 2.

    Problems are listed in the order of their lines in the file (those without a line, such as
    overrides, last). ``draft`` is set when the schema refused the config: what parsed of it
    (:class:`nettrain.config.load.Draft`), so checks that need Keras can still run on it and report
    their problems in the same error (:func:`nettrain.model.draft.with_keras_problems`).
    """

    exit_code = 2

    def __init__(self, problems: list[Problem] | Problem | str, source: str | None = None,
                 draft: Any = None):
        if isinstance(problems, (Problem, str)):
            problems = [problems]
        self.problems = sorted(problems, key=_line_order)
        self.source = source
        self.draft = draft
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.source}: " if self.source else ""
        if len(self.problems) == 1:
            return f"{where}{self.problems[0]}"
        lines = [f"{where}{len(self.problems)} problems:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def _line_order(problem: Problem | str) -> tuple[bool, int]:
    line = getattr(problem, "line", None)
    return line is None, line or 0


class UsageError(ConfigError):
    """A command-line mistake that is not about the config (a missing run directory...)."""


class DataError(NettrainError):
    """The data cannot be read or does not fit the model. Exit status 1."""


class DataProblems(DataError):
    """The cells of a data file break what their columns must hold (text in a number column,
    an empty cell, inf): every problem found, listed together as a config's mistakes are,
    at most ``shown`` of them. Exit status 2: the file, or the config, must be mended."""

    exit_code = 2

    def __init__(self, source: str, problems: list, shown: int = 10):
        self.source, self.problems = source, list(problems)
        if len(problems) == 1:
            text = f"{source}: {problems[0]}"
        else:
            more = len(problems) - shown
            text = "\n".join([f"{source}: {len(problems)} problems:",
                              *(f"  - {p}" for p in problems[:shown]),
                              *([f"  - ... and {more} more"] if more > 0 else [])])
        super().__init__(text)


class RunError(NettrainError):
    """Something failed while training, evaluating or predicting. Exit status 1."""


class InputError(NettrainError):
    """An input file breaks the rules of its format (a CSV row with more fields than its
    header, a column named twice): the file must be mended. Exit status 2."""

    exit_code = 2
