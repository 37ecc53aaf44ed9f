"""How ``--help`` shows parameters: as a shell user reads them, not as typer labels types.

typer labels every parameter with its Python type (``--debug <bool>``, ``CONFIG <path>``,
``KEY=VALUE <list[str]>``) and puts a required argument in braces on the usage line
(``nettrain evaluate [OPTIONS] {run}``). nettrain's help shows instead:

- arguments by their upper-case name, with no type (the help says what they are), required
  ones bare on the usage line and optional ones in brackets: ``RUN``, ``[CONFIG]``,
  ``[KEY=VALUE]...``;
- a flag (``--debug``) with nothing after it; an option with choices as
  ``[test|validation|train]``; any other option by its metavar, else its type in upper case
  (``PATH``, ``INTEGER``).

typer builds its parameter objects itself and offers no hook for their class, so the commands
of an :class:`App` hand out each parameter as its plain-help subclass (:func:`plain`).
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


class PlainArgument(TyperArgument):
    """An argument shown by its upper-case name: ``RUN``, ``[CONFIG]``, ``[KEY=VALUE]...``."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    @property
    def display_name_raw(self) -> str:
        return self.metavar or (self.name or "").upper()

    def display_type_rich(self, ctx: typer.Context) -> str | None:
        return None


class PlainOption(TyperOption):
    """An option shown as ``--debug``, ``--split [test|validation|train]``, ``--run-dir DIR``."""

    def display_type_rich(self, ctx: typer.Context) -> str | None:
        if self.is_flag:
            return None
        if self.metavar is not None:
            return self.metavar
        label = self.display_type(ctx).removeprefix("<").removesuffix(">")
        label = f"[{label}]" if self.type_descriptor.is_choice else label.upper()
        return label + ("..." if self.nargs != 1 else "")


def plain(param: Any) -> Any:
    """``param`` shown the plain way (its class becomes the plain subclass of its own)."""
    if type(param) is TyperArgument:
        param.__class__ = PlainArgument
    elif type(param) is TyperOption:
        param.__class__ = PlainOption
    return param


class Command(TyperCommand):
    """A command whose parameters, ``--help`` included, show the plain way."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        return [plain(p) for p in super().get_params(ctx)]


class Group(TyperGroup):
    """A group of commands whose own options (``--version``, ``--help``) show the plain way."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        return [plain(p) for p in super().get_params(ctx)]


class App(typer.Typer):
    """A ``typer.Typer`` whose groups and commands show their parameters the plain way; use it
    for sub-command groups too (``app.add_typer(App(...), name="runs")``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"cls": Group, **kwargs})

    def command(self, *args: Any, **kwargs: Any) -> Any:
        return super().command(*args, **{"cls": Command, **kwargs})
