"""``nettrain init``: commented starter configs that validate and train as written.

The templates are package data (``nettrain/templates/*.yaml``, read with
:mod:`importlib.resources`), so they come with every install. A template's first line names
the JSON Schema (``# yaml-language-server: $schema=...``) and its second line says what it
trains; a data file a template names (``csv: renewals.csv``) lies beside it and is written
beside the new config. Nothing existing is ever overwritten. No TensorFlow here.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from nettrain.config.export import SCHEMA_FILE
from nettrain.config.reading import parse_yaml
from nettrain.errors import Problem, UsageError, did_you_mean
from nettrain.text import command

SCHEMA_LINE = "# yaml-language-server: $schema="
# The keys of ``data:`` that name a file or folder (their paths are relative to the folder
# nettrain runs in, so init rewrites them to point at the copy it writes).
DATA_PATH_KEYS = ("csv", "npz", "images", "validation", "test")


@dataclass(frozen=True)
class Template:
    """A starter config: its name (``mlp-classifier``), what it trains, and its text."""

    name: str
    summary: str
    text: str


@dataclass(frozen=True)
class Written:
    """What :func:`init` wrote: the config, the data files beside it, and its template."""

    config: Path
    data: tuple[Path, ...]
    template: Template

    def report(self) -> str:
        """What was written and the command to run next, for the terminal."""
        config = shlex.quote(str(self.config))
        files = " and ".join(map(str, (self.config, *self.data)))
        return (f"Wrote {files} (template {self.template.name}).\n"
                f"Next: {command('nettrain', 'fit', config)}\n"
                f"      (or first {command('nettrain', 'validate', config)}: checks it and prints "
                "the model, "
                "no training)\n")


def _package() -> resources.abc.Traversable:
    return resources.files("nettrain")


def templates() -> dict[str, Template]:
    """Every template by name, in name order."""
    found = {}
    for item in sorted(_package().joinpath("templates").iterdir(), key=lambda i: i.name):
        if item.name.endswith(".yaml"):
            text = item.read_text(encoding="utf-8")
            summary = text.splitlines()[1].removeprefix("#").strip()
            found[item.name.removesuffix(".yaml")] = Template(
                item.name.removesuffix(".yaml"), summary, text)
    return found


def template(name: str) -> Template:
    """The template called ``name``; a UsageError lists them (with the closest) otherwise."""
    known = templates()
    if name not in known:
        close = did_you_mean(name, known)
        raise UsageError(Problem(
            "TEMPLATE", f"one of {', '.join(known)}", f"'{name}'",
            f"Did you mean '{close}'?" if close else "See them with: nettrain init --list"))
    return known[name]


def listing() -> str:
    """The templates, one line each, for ``nettrain init --list``."""
    known = templates()
    width = max(map(len, known))
    lines = ["Templates (nettrain init TEMPLATE [PATH]):"]
    lines += [f"  {t.name.ljust(width)}  {t.summary}" for t in known.values()]
    return "\n".join(lines) + "\n"


def config_path(name: str, path: Path | None) -> Path:
    """Where the config of template ``name`` goes: ``PATH`` when it ends in .yaml or .yml,
    else ``NAME.yaml`` in the folder ``PATH`` (default: the current folder)."""
    if path is not None and path.suffix in (".yaml", ".yml"):
        return path
    return (path or Path()) / f"{name}.yaml"


def init(name: str, path: Path | None = None) -> Written:
    """Write template ``name`` as a new config file, and the data files it needs beside it.

    Args:
        name: a template (see :func:`templates`).
        path: the config file (``.yaml``/``.yml``) or a folder for ``NAME.yaml`` (default:
            the current folder); missing folders are made.

    Nothing is overwritten: an existing config, or an existing data file that differs from
    the template's, is a UsageError (exit 2) that suggests a free name, and nothing is written.
    Example: ``init("csv-tabular", Path("churn"))`` writes ``churn/csv-tabular.yaml`` and
    ``churn/renewals.csv``.
    """
    chosen = template(name)
    target = config_path(name, path)
    if target.exists() or target.is_symlink():
        raise UsageError(Problem(
            "PATH", "a new file (init never overwrites one)", f"'{target}' (it exists)",
            f"Write another: nettrain init {name} {shlex.quote(str(_free(target)))}"))
    text, data = _with_data_beside(chosen, target)
    text = _with_schema_line(text, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for destination, source in data:
        if not destination.exists():
            destination.write_bytes(source)
    with open(target, "x", encoding="utf-8") as file:  # "x": fails rather than overwrite
        file.write(text)
    return Written(target, tuple(d for d, _ in data), chosen)


def _free(path: Path) -> Path:
    """The first of ``path``, ``name-2.yaml``, ``name-3.yaml``, ... (or folders ``name``,
    ``name-2``, ...) that does not exist."""
    free, n = path, 2
    while free.exists() or free.is_symlink():
        free, n = path.with_name(f"{path.stem}-{n}{path.suffix}"), n + 1
    return free


def _with_data_beside(chosen: Template, target: Path) -> tuple[str, list[tuple[Path, bytes]]]:
    """The template's text with each data file it names pointing at a copy beside ``target``,
    and the copies to write (``(destination, contents)``). A different file already there is
    a UsageError; the same file is used as it is."""
    text = chosen.text
    data, lines = parse_yaml(text)
    lines_of = text.splitlines(keepends=True)
    copies = []
    for key in DATA_PATH_KEYS:
        value = (data.get("data") or {}).get(key)
        shipped = _package().joinpath("templates", str(value)) if value else None
        if shipped is None or not shipped.is_file():
            continue
        destination = target.parent / shipped.name
        contents = shipped.read_bytes()
        if destination.exists() and (not destination.is_file()
                                     or destination.read_bytes() != contents):
            folder = _free(target.parent / chosen.name)
            raise UsageError(Problem(
                "PATH", f"a folder without a file {shipped.name}, or with this template's "
                "(init never overwrites a file)", f"'{destination}' (a different one exists)",
                f"Write into a new folder: nettrain init {chosen.name} "
                f"{shlex.quote(str(folder))}/"))
        new = f"{key}: {_yaml_text(_below(destination, Path.cwd()))}"
        line = lines[("data", key)] - 1
        lines_of[line] = re.sub(  # the new path, with the comment after it where it was
            rf"{key}: {re.escape(str(value))}( *)(?=#)",
            lambda m: new.ljust(m.end() - m.start() - 1) + " ", lines_of[line], count=1) \
            if "#" in lines_of[line] else lines_of[line].replace(f"{key}: {value}", new, 1)
        copies.append((destination, contents))
    return "".join(lines_of), copies


def _with_schema_line(text: str, target: Path) -> str:
    """The template's text with its first line naming the installed schema: relative to the
    config when the schema is in a folder below it, else its absolute path."""
    with resources.as_file(_package().joinpath(SCHEMA_FILE)) as schema:
        where = _below(schema, target.parent)
    first, rest = text.split("\n", 1)
    return f"{SCHEMA_LINE}{where}\n{rest if first.startswith(SCHEMA_LINE) else text}"


def _below(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` when it is inside it, else absolute (a path such as
    ``../../usr/lib/...`` breaks as soon as either moves)."""
    relative = os.path.relpath(path, folder)
    return Path(relative if not relative.startswith("..") else os.path.abspath(path)).as_posix()


def _yaml_text(value: str) -> str:
    """``value`` as a YAML scalar: plain when it is a simple path, else double-quoted."""
    return value if re.fullmatch(r"[\w./-]+", value) else '"' + value.replace(
        "\\", "\\\\").replace('"', '\\"') + '"'
