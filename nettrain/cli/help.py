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

typer builds its command and parameter objects itself and offers no hook for their classes,
so the group of an :class:`App` hands out each command, and each command each parameter, as
its plain-help subclass (:func:`plain`): every command shows its help the same way, those of
a sub-command group (``app.add_typer(typer.Typer(), name="runs")``) included.
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


def plain(item: Any) -> Any:
    """A command or parameter shown the plain way: its class becomes the plain subclass of its
    own (typer's classes only; anything else is left as it is). Returns ``item``."""
    plain_class = {TyperArgument: PlainArgument, TyperOption: PlainOption,
                   TyperCommand: Command, TyperGroup: Group}.get(type(item))
    if plain_class is not None:
        item.__class__ = plain_class
    return item


class Command(TyperCommand):
    """A command whose parameters, ``--help`` included, show the plain way."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        return [plain(p) for p in super().get_params(ctx)]


# The order ``nettrain --help`` lists the commands in: the order a user meets them, fit first
# (typer lists them in the order their modules happened to register them: track came first).
# A command missing here comes after these, in the order it was added.
ORDER = ("fit", "validate", "evaluate", "predict", "runs", "init", "schema", "sweep", "track",
         "export", "serve")


class Group(TyperGroup):
    """A group whose options (``--version``, ``--help``) and commands show the plain way, its
    commands in :data:`ORDER`."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda name: ORDER.index(name) if name in ORDER else len(ORDER))

    def get_params(self, ctx: typer.Context) -> list[Any]:
        return [plain(p) for p in super().get_params(ctx)]

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        return plain(super().get_command(ctx, cmd_name))


class App(typer.Typer):
    """A ``typer.Typer`` whose commands, and the commands of its sub-command groups, show their
    parameters the plain way."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"cls": Group, **kwargs})
