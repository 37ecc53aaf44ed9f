"""The package's house rules: stages that import only downward (import-linter's contracts in
pyproject.toml), no module over about 500 lines, and each module opening with its job."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nettrain"
MAX_LINES = 520  # "about 500": a module past this has more than one job


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=PACKAGE.parent, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_every_module_is_short_and_opens_with_its_job():
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        lines = text.count("\n")
        assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)}: {lines} lines"
        doc = ast.get_docstring(ast.parse(text))
        assert doc, f"{path.relative_to(PACKAGE)}: no docstring saying its job"
        first = " ".join(doc.split("\n\n")[0].split())
        assert len(first) < 400 and first[-1] in ".:" and " " in first, \
            f"{path.relative_to(PACKAGE)}: {first!r} is not a sentence saying its job"


def test_the_flat_modules_are_gone():
    """Every module lives in the room of its stage (only these stay at the top)."""
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top == {"__init__.py", "__main__.py", "errors.py", "text.py"}


def test_the_files_handed_out_first_exist():
    """tests/conftest.py's FIRST (the heaviest test files, first under --dist loadfile) names
    files that are there: a renamed file would silently go back to the end of the queue."""
    from conftest import FIRST

    tests = Path(__file__).resolve().parent
    assert [name for name in FIRST if not (tests / name).is_file()] == []
