"""The documentation site cannot drift from the code: its reference pages are what the CLI and
the config schema give, every console example is what its command prints now, README.md's
copies are the snippets, and ``mkdocs build --strict`` passes (no broken link or anchor)."""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "docs"))
import examples  # noqa: E402  (docs/examples.py)
import reference  # noqa: E402  (docs/reference.py)

DOCS = REPO / "docs"


def _diff(expected: str, received: str, name: str) -> str:
    return "".join(difflib.unified_diff(expected.splitlines(True), received.splitlines(True),
                                        f"{name} (checked in)", f"{name} (the code now)"))


# --- the references ----------------------------------------------------------------------------

def test_the_reference_pages_are_what_the_code_gives():
    """docs/reference/cli.md and config.md are regenerated from the code and compared: an option
    or a config key added without `python docs/reference.py` fails here."""
    for path, text in reference.pages().items():
        checked_in = path.read_text(encoding="utf-8") if path.is_file() else ""
        assert checked_in == text, (f"{path.relative_to(REPO)} is stale: run python "
                                    f"docs/reference.py\n{_diff(checked_in, text, path.name)}")


def _commands():
    import click
    import typer

    from nettrain.cli import app

    group = typer.main.get_command(app)
    root = click.Context(group, info_name="nettrain")
    stack = [(group, root, "nettrain")]
    while stack:
        command, ctx, title = stack.pop()
        yield command, ctx, title
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                stack.append((sub, click.Context(sub, info_name=name, parent=ctx),
                              f"{title} {name}"))


def test_the_cli_reference_lists_every_command_and_option():
    """Each command (sub-commands too) has its section, and each of its options and arguments
    a row in that section, as click knows them."""
    page = reference.cli_page()
    sections = dict(re.findall(r"(?ms)^## `(nettrain[^`]*)`\n(.*?)(?=^## |\Z)", page))
    for command, ctx, title in _commands():
        assert title in sections, f"no section for {title}"
        for param in command.get_params(ctx):
            if getattr(param, "hidden", False):
                continue
            names = param.opts if param.param_type_name == "option" else [param.human_readable_name]
            for name in names:
                assert re.search(rf"(<code>|, ){re.escape(name)}[ <]", sections[title]), \
                    f"{title}: {name} is not in the reference"


def _keys(model, prefix=""):
    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path
        for kind in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                yield from _keys(kind, path + ".")


def test_the_config_reference_lists_every_key_of_the_schema():
    """Every field of the pydantic models, nested sections too, has its row."""
    from nettrain.config.schema import Config

    page = reference.config_page()
    missing = [key for key in _keys(Config) if f"| <code>{key}</code> |" not in page]
    assert not missing, f"keys missing from the config reference: {missing}"


# --- the console examples ----------------------------------------------------------------------

def test_every_console_example_prints_what_the_docs_show():
    """The quick examples run again (each command a process of its own, those marked shared
    one after another in one); each snippet must be what its commands print now
    (normalised). The slow ones: NETTRAIN_DOCS_SLOW=1."""
    slow = os.environ.get("NETTRAIN_DOCS_SLOW") == "1"
    texts = examples.run_all(slow=slow)
    differ = []
    for name in examples.differences(texts):
        path = examples.snippet(name)
        checked_in = path.read_text(encoding="utf-8") if path.is_file() else ""
        differ.append(f"docs/snippets/{name}.txt\n{_diff(checked_in, texts[name], name)}")
    assert not differ, (f"{len(differ)} snippet(s) now print something else; run python "
                        f"docs/examples.py{' --slow' if slow else ''}\n" + "\n".join(differ))


def test_outputs_are_the_same_up_to_the_last_digits_of_a_float():
    """same_output lets floats differ in their last digits, never words, whole numbers or a
    float beyond float32's precision."""
    same = examples.same_output
    shown = "0,0.9998247,1.324857e-09,4.68217e-07,5.764811e-07,1.47..."
    assert same(shown, "0,0.9998248,1.324858e-09,4.682148e-07,5.764806e-07,1.4...")
    assert not same(shown, "0,0.9998147,1.324857e-09,4.68217e-07,5.764811e-07,1.47...")
    assert not same(shown, "1,0.9998247,1.324857e-09,4.68217e-07,5.764811e-07,1.47...")
    assert not same("Epoch 12/60 accuracy 0.98", "Epoch 13/60 accuracy 0.98")
    assert not same("accuracy 0.9833", "loss 0.9833")
    assert not same("a\nb", "a")
    check = ("Checked in onnxruntime: largest difference 1.19e-07 absolute, {} relative "
             "(allowed: |a - b| <= {} + 0.0001 x |b|)")
    assert same(check.format("1.89e-06", "1e-05"), check.format("3.93e-06", "1e-05"))
    assert not same(check.format("1.89e-06", "1e-05"), check.format("1.89e-06", "1e-04"))


def _blocks(text: str, language: str) -> list[tuple[int, str]]:
    """(line, body) of each fenced block of ``language``, indented ones (in lists) too."""
    found = re.finditer(rf"(?m)^( *)```{language}\n(.*?)^\1```$", text, re.DOTALL)
    return [(text[:m.start()].count("\n") + 1, m.group(2)) for m in found]


def test_every_console_block_is_a_snippet_of_a_real_run():
    """A console block in a page is only an include of docs/snippets/ (which the examples
    write); in README.md, a marked copy of one that equals it."""
    names = {example.name for example in examples.EXAMPLES}
    for page in sorted(DOCS.rglob("*.md")):
        for line, body in _blocks(page.read_text(encoding="utf-8"), "console"):
            include = re.fullmatch(r'\s*--8<-- "snippets/([\w-]+)\.txt"\s*', body)
            assert include and include.group(1) in names, \
                f"{page.relative_to(REPO)}:{line}: a console block that no example writes"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    marked = len(re.findall(r"<!-- snippet: [\w-]+ -->\n```console\n", readme))
    assert marked == len(_blocks(readme, "console")), "README.md: a console block without marker"
    assert examples.synced_readme(readme) == readme, \
        "README.md's examples differ from docs/snippets/: run python docs/examples.py"


def test_the_readme_is_a_front_page_with_the_two_commands_first():
    """At most 300 lines; its first sh block (which .ci/run runs) holds exactly two commands."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    first = _blocks(readme, "sh")[0][1].strip().splitlines()
    assert len(first) == 2 and all(line.startswith("python3 -m venv") for line in first), first


def test_the_readme_links_to_pages_that_exist():
    """README.md is not part of the site's build: its links into docs/ are checked here."""
    readme = re.sub(r"(?ms)^```.*?^```$", "", (REPO / "README.md").read_text(encoding="utf-8"))
    links = re.findall(r"\]\(([^)#]+?)(?:#[^)]*)?\)", readme)
    assert links
    missing = [link for link in links if "://" not in link and not (REPO / link).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


# --- the site ----------------------------------------------------------------------------------

def test_the_site_builds_strict(tmp_path):
    """mkdocs build --strict: a broken link, a missing anchor or snippet, or a page left out of
    the nav fails the build, and this test with it (not with -q: mkdocs then drops the
    warnings that --strict counts, and a broken link passed)."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
                           str(REPO / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                          capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    if "No module named mkdocs" in done.stderr:
        pytest.fail("mkdocs is not installed: pip install -e '.[docs]'")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").is_file()
    assert (tmp_path / "site" / "search" / "search_index.json").is_file()
