"""User strings reach the terminal with their control characters escaped: class names, column
names, file and run names, in every table, note and CSV header (:func:`nettrain.text.shown`)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from nettrain.cli import app
from nettrain.cli import common as cli

from conftest import fit_once

TITLE = "cat\x1b]0;pwned\x07"  # sets the terminal window's title
CLEAR = "dog\x1b[2J"           # clears the screen


def test_shown_escapes_control_characters_and_keeps_the_rest():
    from nettrain.text import shown

    assert shown(TITLE) == "cat\\x1b]0;pwned\\x07"
    assert shown("a\tb\nc\rd\x7f\x9b\u202e") == "a\\tb\\nc\\rd\\x7f\\x9b\\u202e"
    assert shown("été [bold]x[/bold] 中文") == "été [bold]x[/bold] 中文"
    assert shown("[bold]x[/bold]", markup=True) == "\\[bold]x\\[/bold]"
    assert shown("line 1\nline\x1b 2\t.", lines=True) == "line 1\nline\\x1b 2\t."
    # a message (an error, a note): the bold Keras puts in its errors is dropped, not noise
    assert shown("\x1b[1mfailed\x1b[0m in hid\x1b[2Jden", lines=True) == \
        "failed in hid\\x1b[2Jden"


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_data import _images

    folder = tmp_path_factory.mktemp("escapes")
    _images(folder / "photos", classes=(TITLE, CLEAR), per_class=3)
    config = {"name": "cnn", "seed": 0,
              "data": {"images": str(folder / "photos"), "image_size": [8, 8], "scale": 255,
                       "test_split": 0.34},
              "model": {"layers": ["Flatten", {"Dense": {"units": 2,
                                                         "activation": "softmax"}}]},
              "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
              "fit": {"epochs": 1, "verbose": 0}}
    return fit_once(folder, config)


def test_evaluate_shows_class_names_escaped(runner, image_run):
    with warnings.catch_warnings(record=True) as caught:  # printed on stderr outside pytest
        warnings.simplefilter("always")
        result = runner.invoke(app, ["evaluate", str(image_run)])
    assert result.exception is None and result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    # the confusion matrix labels its axes with the names escaped too: no "Glyph 27 (\x1b)
    # missing from font" warning
    assert [str(w.message) for w in caught if "\x1b" in str(w.message)] == []
    assert "cat\\x1b]0;pwned\\x07" in result.stdout and "dog\\x1b[2J" in result.stdout


def test_predict_writes_class_names_escaped_in_its_csv_header(runner, image_run):
    result = runner.invoke(app, ["predict", str(image_run), str(image_run.parent / "photos")])
    assert result.exception is None and result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert result.stdout.splitlines()[0] == \
        "path,class,prob_cat\\x1b]0;pwned\\x07,prob_dog\\x1b[2J"


def test_runs_shows_a_run_directory_named_with_escapes_escaped(runner, image_run,
                                                               monkeypatch):
    monkeypatch.setattr(cli.out, "width", 200)
    shutil.copytree(image_run, Path("runs") / f"x{CLEAR}")
    result = runner.invoke(app, ["runs", "runs"])
    assert result.exception is None and result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert "runs/xdog\\x1b[2J " in result.stdout


def test_an_error_shows_the_path_it_names_escaped(runner):
    result = runner.invoke(app, ["runs", f"no{TITLE}"])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert result.stderr == (
        "Error: ROOT: expected a folder of run directories; received "
        "'nocat\\x1b]0;pwned\\x07', which does not exist. Runs are under $NETTRAIN_RUNS, "
        "else ./runs.\n")


def test_validate_shows_a_layer_name_escaped_in_the_model_summary(runner, tmp_path):
    from conftest import tiny_config, write_config

    config = tiny_config(model={"layers": [
        {"Dense": {"units": 4, "activation": "relu", "name": f"hid{CLEAR}den"}},
        {"Dense": {"units": 3, "activation": "softmax"}}]})
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exception is None and result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert "│ hiddog\\x1b[2Jden (Dense) " in result.stdout


def test_redacted_hides_the_secrets_of_uris_and_nothing_else():
    from nettrain.text import redacted, shown

    cases = {
        "http://user:secret@127.0.0.1:5000": "http://user:***@127.0.0.1:5000",
        "postgresql+psycopg://me:p@ss@db:5432/x": "postgresql+psycopg://me:***@db:5432/x",
        "https://host/api?token=secret&page=2#top": "https://host/api?token=***&page=2#top",
        "http://h/?password=secret&api_key=secret&sig=secret&design=1":
            "http://h/?password=***&api_key=***&sig=***&design=1",
        "http://:secret@host": "http://:***@host",
        # nothing secret: unchanged
        "http://user@host:5000": "http://user@host:5000",
        "http://host:5000/a@b": "http://host:5000/a@b",
        "sqlite:///runs/mlflow.db": "sqlite:///runs/mlflow.db",
        "fit.epochs=3 user:pass token=x": "fit.epochs=3 user:pass token=x",
        # a URI inside a command line's word, JSON or a message
        'tracking={"mlflow": {"uri": "http://u:secret@h"}}':
            'tracking={"mlflow": {"uri": "http://u:***@h"}}',
        "failed at http://u:secret@h, then": "failed at http://u:***@h, then",
    }
    assert {text: redacted(text) for text in cases} == cases
    assert redacted({"a": ["http://u:secret@h", 3, None], "b": ("x",)}) == \
        {"a": ["http://u:***@h", 3, None], "b": ("x",)}
    assert shown("Error: --from http://u:secret@h: refused", lines=True) == \
        "Error: --from http://u:***@h: refused"
