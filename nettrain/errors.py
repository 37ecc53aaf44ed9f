"""Domain errors. The library raises these; only the CLI turns them into exit codes."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word`` (case-insensitive), or None when nothing is close.

    Example: ``did_you_mean("unitz", ["units", "activation"])`` -> ``"units"``.
    """
    by_lower: dict[str, str] = {}
    for choice in choices:
        by_lower.setdefault(str(choice).lower(), str(choice))
    match = difflib.get_close_matches(str(word).lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


@dataclass(frozen=True)
class Problem:
    """One mistake: where it is, what was expected, what was received, a suggestion."""

    path: str
    expected: str
    received: str | None = None
    suggestion: str | None = None

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
    """The config (or an override, or a command-line argument) is wrong. Exit status 2."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | Problem | str, source: str | None = None):
        if isinstance(problems, (Problem, str)):
            problems = [problems]
        self.problems = problems
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.source}: " if self.source else ""
        if len(self.problems) == 1:
            return f"{where}{self.problems[0]}"
        lines = [f"{where}{len(self.problems)} problems:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class UsageError(ConfigError):
    """A command-line mistake that is not about the config (a missing run directory...)."""


class DataError(NettrainError):
    """The data cannot be read or does not fit the model. Exit status 1."""


class RunError(NettrainError):
    """Something failed while training, evaluating or predicting. Exit status 1."""
