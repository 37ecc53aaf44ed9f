"""predict: the run's reading rules, inputs streamed in chunks, messages that lead somewhere."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nettrain.engine import predict as predicting
from nettrain.cli import app

from conftest import tiny_config, write_config


def _csv(path, n=60, seed=0, sep=","):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n).round(3), rng.normal(size=n).round(3)
    pd.DataFrame({"a": a, "b": b, "y": (a > b).astype(int)}).to_csv(path, index=False, sep=sep)


def _fit(runner, tmp_path, **data):
    config = tiny_config(data={"csv": str(tmp_path / "train.csv"), "target": "y",
                               "validation_split": 0.2, **data},
                         model={"layers": [{"Dense": {"units": 2, "activation": "softmax"}}]},
                         save={"formats": ["keras"]})
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def assert_same_predictions(got: str, expected: list[str]) -> None:
    """The CSV text ``got`` is the lines ``expected``: the same header, row count and classes,
    and numbers that agree to float32's precision. Not byte for byte: the last of the 7 digits
    can differ between batch sizes, as in Keras's own model.predict (the CPU's matrix kernels
    add up in an order of the batch's shape; seen on an AVX2 CPU, not on AVX-512)."""
    lines = got.splitlines()
    assert lines[0] == expected[0] and len(lines) == len(expected), (lines[:3], expected[:3])
    rows, wanted = (np.array([line.split(",") for line in text[1:]]) for text in (lines, expected))
    if expected[0].startswith("class,"):  # the class is a label: exact
        assert rows[:, 0].tolist() == wanted[:, 0].tolist()
        rows, wanted = rows[:, 1:], wanted[:, 1:]
    np.testing.assert_allclose(rows.astype(float), wanted.astype(float), rtol=1e-5, atol=1e-7)


def test_predict_reads_with_the_runs_delimiter(runner, tmp_path):
    _csv(tmp_path / "train.csv", sep=";")
    run = _fit(runner, tmp_path, delimiter=";")
    (tmp_path / "rows.csv").write_text("b;a\n0.5;1.5\n2;-1\n")
    result = runner.invoke(app, ["predict", run, str(tmp_path / "rows.csv")])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "class,prob_0,prob_1"
    assert len(result.stdout.strip().splitlines()) == 3
    (tmp_path / "commas.csv").write_text("b,a\n0.5,1.5\n")
    result = runner.invoke(app, ["predict", run, str(tmp_path / "commas.csv")])
    assert result.exit_code == 2  # the input does not match the model
    assert "Its header holds ',': write it split by ';', the run's data.delimiter." \
        in result.stderr


def test_output_into_a_missing_folder_fails_at_once(runner, tmp_path, monkeypatch):
    _csv(tmp_path / "train.csv")
    run = _fit(runner, tmp_path)
    _csv(tmp_path / "rows.csv", n=5)
    called = []
    monkeypatch.setattr(predicting, "load_run", lambda *a, **k: called.append(1))
    target = tmp_path / "nowhere" / "out.csv"
    result = runner.invoke(app, ["predict", run, str(tmp_path / "rows.csv"), "-o", str(target)])
    assert isinstance(result.exception, SystemExit)
    assert result.exit_code == 2
    assert f"--output: the folder {tmp_path / 'nowhere'} does not exist" in result.stderr
    assert ".tmp" not in result.stderr
    assert not called  # refused before the model was loaded or anything predicted


def test_predict_streams_its_input_in_chunks(runner, tmp_path, monkeypatch):
    """Chunks of 7 rows give the same output as one read; the output is written at the end."""
    _csv(tmp_path / "train.csv")
    run = _fit(runner, tmp_path)
    _csv(tmp_path / "rows.csv", n=30, seed=1)
    whole = runner.invoke(app, ["predict", run, str(tmp_path / "rows.csv")])
    assert whole.exit_code == 0, whole.output
    seen = []
    read = predicting.read_csv_chunks
    monkeypatch.setattr(predicting, "CHUNK_ROWS", 7)
    monkeypatch.setattr(predicting, "read_csv_chunks",
                        lambda *a, **k: (seen.append(len(c)) or c for c in read(*a, **k)))
    chunked = runner.invoke(app, ["predict", run, str(tmp_path / "rows.csv"), "-o",
                                  str(tmp_path / "out.csv")])
    assert chunked.exit_code == 0, chunked.output
    assert seen == [7, 7, 7, 7, 2]
    assert_same_predictions((tmp_path / "out.csv").read_text(), whole.stdout.splitlines())
    assert "Wrote 30 predictions" in chunked.stderr


def test_a_bad_row_in_a_later_chunk_leaves_no_output_file(runner, tmp_path, monkeypatch):
    _csv(tmp_path / "train.csv")
    run = _fit(runner, tmp_path)
    rows = "a,b\n" + "1,2\n" * 10 + "1,oops\n"
    (tmp_path / "rows.csv").write_text(rows)
    monkeypatch.setattr(predicting, "CHUNK_ROWS", 4)
    result = runner.invoke(app, ["predict", run, str(tmp_path / "rows.csv"), "-o",
                                 str(tmp_path / "out.csv")])
    assert isinstance(result.exception, SystemExit)
    assert result.exit_code == 2
    assert "column 'b' must be numeric; row 12 holds 'oops'" in result.stderr
    assert not (tmp_path / "out.csv").exists()
    assert list(tmp_path.glob(".out.csv*")) == []


def _host() -> str:
    import re
    import socket

    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:32]


def test_a_killed_predict_leaves_a_named_temporary_that_the_next_write_removes(runner,
                                                                                tmp_path):
    """kill -9 during predict --output big.out left a hidden .big.out.<random>.tmp for ever."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    from conftest import write_npz

    write_npz(tmp_path / "d.npz", n=40)
    config = tiny_config(data={"npz": str(tmp_path / "d.npz")}, save={"formats": ["keras"]},
                         fit={"epochs": 1, "verbose": 0})
    path = write_config(tmp_path / "c.yaml", config)
    assert runner.invoke(app, ["fit", str(path), "--run-dir", "run"]).exit_code == 0
    np.save(tmp_path / "big.npy", np.zeros((2_000_000, 4), dtype="float32"))
    proc = subprocess.Popen([sys.executable, "-m", "nettrain", "predict", "run", "big.npy",
                             "-o", "big.out"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    for _ in range(30000):  # the partial file itself (output()'s writability probe, a folder
        # of the same prefix, lives a moment before it: a kill then left the probe instead)
        if list(tmp_path.glob(".big.out.*.tmp")) or proc.poll() is not None:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    left = [p.name for p in tmp_path.glob(".big.out.*")]
    assert len(left) == 1 and not (tmp_path / "big.out").exists(), left
    # what it is, by whom: a partial big.out of nettrain's process on this host
    assert re.fullmatch(rf"\.big\.out\.partial-{re.escape(_host())}-{proc.pid}-\w+\.tmp",
                        left[0]), left[0]
    live = tmp_path / f".big.out.partial-{_host()}-{os.getpid()}-live.tmp"  # a live writer's
    live.write_text("")
    np.save(tmp_path / "small.npy", np.zeros((3, 4), dtype="float32"))
    result = runner.invoke(app, ["predict", "run", "small.npy", "-o", "big.out"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob(".big.out.*")) == [live.name]
    assert len((tmp_path / "big.out").read_text().splitlines()) == 4


def test_text_in_a_numeric_column_at_predict_says_what_the_model_takes(runner, tmp_path):
    _csv(tmp_path / "train.csv")
    run = _fit(runner, tmp_path)
    (tmp_path / "rows.csv").write_text("a,b\n1,two\n")
    result = runner.invoke(app, ["predict", run, str(tmp_path / "rows.csv")])
    assert isinstance(result.exception, SystemExit)
    assert result.exit_code == 2
    assert "column 'b' must be numeric; row 2 holds 'two'" in result.stderr
    assert "data.categorical" not in result.stderr
    assert "The model was trained on numbers in this column" in result.stderr


def test_non_finite_predict_input_is_refused(runner, tmp_path):
    _csv(tmp_path / "train.csv")
    run = _fit(runner, tmp_path)
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n1e308,0\n")
    result = runner.invoke(app, ["predict", run, str(tmp_path / "rows.csv")])
    assert isinstance(result.exception, SystemExit)
    assert result.exit_code == 2
    assert "rows.csv: column 'a' row 3 holds 1e+308" in result.stderr
    np.save(tmp_path / "rows.npy", np.array([[1.0, np.inf]], dtype="float32"))
    result = runner.invoke(app, ["predict", run, str(tmp_path / "rows.npy")])
    assert result.exit_code == 2  # the input must be mended, as a CSV's inf is
    assert isinstance(result.exception, SystemExit)
    assert "rows.npy: the input at index [0, 1] is inf" in result.stderr


def test_a_csv_given_to_an_image_model_says_it_takes_images(runner, tmp_path):
    from test_data import _images

    _images(tmp_path / "photos")
    config = tiny_config(data={"images": str(tmp_path / "photos"), "image_size": [8, 8],
                               "scale": 255, "validation_split": 0.25},
                         model={"layers": ["Flatten",
                                           {"Dense": {"units": 2, "activation": "softmax"}}]},
                         save={"formats": ["keras"]})
    fit = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert fit.exit_code == 0, fit.output
    (tmp_path / "rows.csv").write_text("a,b\nx,1\n")
    result = runner.invoke(app, ["predict", fit.stdout.strip(), str(tmp_path / "rows.csv")])
    assert isinstance(result.exception, SystemExit)
    assert result.exit_code == 2
    assert "categorical" not in result.stderr
    assert "this model takes images" in result.stderr
    assert "an image file" in result.stderr and "a folder of images" in result.stderr
    (tmp_path / "notes.txt").write_text("x")
    result = runner.invoke(app, ["predict", fit.stdout.strip(), str(tmp_path / "notes.txt")])
    assert result.exit_code == 2
    assert "expected an image file (.png, .jpg, .jpeg, .bmp, .gif), a folder of images, .npy " \
           "or .npz; received" in result.stderr


def test_arrays_given_to_a_model_of_named_columns_ask_for_a_csv(runner, tmp_path):
    from test_data import _table, _table_config

    _table(tmp_path)
    config = _table_config(tmp_path)
    config["save"] = {"formats": ["keras"]}
    fit = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert fit.exit_code == 0, fit.output
    np.save(tmp_path / "rows.npy", np.zeros((2, 3), dtype="float32"))
    result = runner.invoke(app, ["predict", fit.stdout.strip(), str(tmp_path / "rows.npy")])
    assert isinstance(result.exception, SystemExit)
    assert result.exit_code == 2
    assert "this model takes named columns, one input each: give a CSV with a header row " \
           "and the columns color, size, weight" in result.stderr


def test_arrays_of_the_wrong_width_name_the_training_columns(runner, tmp_path):
    _csv(tmp_path / "train.csv")
    run = _fit(runner, tmp_path)
    np.save(tmp_path / "rows.npy", np.zeros((2, 3), dtype="float32"))
    result = runner.invoke(app, ["predict", run, str(tmp_path / "rows.npy")])
    assert isinstance(result.exception, SystemExit)
    assert result.exit_code == 2  # the input does not match the model
    assert "the model takes [2]. Give one value per column, in the training order (a, b)" \
        in result.stderr


# --- extra columns: --keep copies them, others are ignored with a note -------------------------

import pytest  # noqa: E402

from conftest import fit_once  # noqa: E402


@pytest.fixture(scope="module")
def numeric_run(tmp_path_factory):
    """A classifier on the numeric columns a, b of a CSV (target y), saved as model.keras."""
    folder = tmp_path_factory.mktemp("numeric")
    _csv(folder / "train.csv")
    return fit_once(folder, tiny_config(
        data={"csv": str(folder / "train.csv"), "target": "y", "validation_split": 0.2},
        model={"layers": [{"Dense": {"units": 2, "activation": "softmax"}}]},
        save={"formats": ["keras"]}))


def test_predictions_are_model_predicts_across_chunk_and_batch_borders(runner, tmp_path,
                                                                      numeric_run, monkeypatch):
    """31 rows in chunks of 7, batches of 3 (borders inside chunks and between them): each
    row once, in order, with model.predict's numbers at 7 significant digits."""
    _csv(tmp_path / "rows.csv", n=31, seed=2)
    monkeypatch.setattr(predicting, "CHUNK_ROWS", 7)
    monkeypatch.setattr(predicting, "BATCH_SIZE", 3)
    result = runner.invoke(app, ["predict", str(numeric_run), str(tmp_path / "rows.csv"),
                                 "-o", str(tmp_path / "out.csv")])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 0, result.output
    predictor = predicting.load_run(numeric_run)
    x = next(predicting.read_csv_chunks(tmp_path / "rows.csv", predictor.info, "error",
                                        rows=1_000))
    p = predictor.model.predict(x, verbose=0)
    assert len(p) == 31
    assert_same_predictions((tmp_path / "out.csv").read_text(), ["class,prob_0,prob_1"] + [
        "%d,%.7g,%.7g" % (row.argmax(), row[0], row[1]) for row in p])


@pytest.fixture(scope="module")
def categorical_regression(tmp_path_factory):
    """A regression on the numeric a, b and the categorical colour (target y)."""
    folder = tmp_path_factory.mktemp("categorical")
    rng = np.random.default_rng(3)
    a, colour = rng.normal(size=60).round(3), rng.choice(["red", "green", "blue"], 60)
    pd.DataFrame({"a": a, "colour": colour, "b": rng.normal(size=60).round(3),
                  "y": a + (colour == "red")}).to_csv(folder / "train.csv", index=False)
    return fit_once(folder, tiny_config(
        data={"csv": str(folder / "train.csv"), "target": "y", "categorical": ["colour"]},
        model={"layers": [{"Dense": {"units": 4, "activation": "relu"}}, {"Dense": {"units": 1}}]},
        compile={"optimizer": "adam", "loss": "mse"}, save={"formats": ["keras"]}))


def test_a_regression_with_categorical_columns_across_borders(runner, tmp_path,
                                                             categorical_regression,
                                                             monkeypatch):
    """Named inputs (text columns) in batches of 4 across chunks of 9: model.predict's
    values of every row, once, in order, under the target's name."""
    from nettrain.data import pipeline

    rng = np.random.default_rng(4)
    pd.DataFrame({"colour": rng.choice(["red", "green", "blue", "unseen"], 22),
                  "b": rng.normal(size=22).round(3), "a": rng.normal(size=22).round(3)}
                 ).to_csv(tmp_path / "rows.csv", index=False)
    monkeypatch.setattr(predicting, "CHUNK_ROWS", 9)
    monkeypatch.setattr(predicting, "BATCH_SIZE", 4)
    result = runner.invoke(app, ["predict", str(categorical_regression),
                                 str(tmp_path / "rows.csv"), "-o", str(tmp_path / "out.csv")])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 0, result.output
    predictor = predicting.load_run(categorical_regression)
    x = next(predicting.read_csv_chunks(tmp_path / "rows.csv", predictor.info, "error",
                                        rows=1_000))
    assert isinstance(x, dict)
    p = predictor.model.predict(pipeline.dataset(x, batch_size=32), verbose=0)
    assert len(p) == 22
    assert_same_predictions((tmp_path / "out.csv").read_text(),
                            ["y"] + ["%.7g" % v for v in p[:, 0]])


def test_large_rows_are_fewer_to_a_batch(monkeypatch):
    monkeypatch.setattr(predicting, "BATCH_BYTES", 40)
    assert predicting.batches_of(np.zeros((100, 5), dtype="float32")) == 2  # 20 bytes a row
    assert predicting.batches_of({"a": np.zeros((100, 1)), "b": np.zeros((100, 1))}) == 2
    assert predicting.batches_of(np.zeros((100, 50), dtype="float32")) == 1
    monkeypatch.setattr(predicting, "BATCH_BYTES", 2**30)
    assert predicting.batches_of(np.zeros((100, 5), dtype="float32")) == 100
    assert predicting.batches_of(np.zeros((10_000, 5))) == predicting.BATCH_SIZE

ROWS = ("id,a,note,b,y\n"
        "007,1.50,first,0.5,1\n"
        "010,-1,,2,0\n"
        "NA,0.25,third,0.75,0\n"
        ",3,fourth,1e-3,1\n"
        "0x1F,2,fifth,2,0\n")


def test_keep_copies_input_columns_first_unchanged_in_every_chunk(runner, tmp_path,
                                                                  numeric_run, monkeypatch):
    (tmp_path / "rows.csv").write_text(ROWS)
    plain = runner.invoke(app, ["predict", str(numeric_run), str(tmp_path / "rows.csv")])
    assert plain.exit_code == 0, plain.output
    monkeypatch.setattr(predicting, "CHUNK_ROWS", 2)  # kept columns stay beside their rows
    result = runner.invoke(app, ["predict", str(numeric_run), str(tmp_path / "rows.csv"),
                                 "--keep", "id", "--keep", "a"])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "id,a,class,prob_0,prob_1"
    # as written in the file: no 7 for 007, no empty cell for NA, no 1.5 for 1.50
    assert [line.split(",")[:2] for line in lines[1:]] == \
        [["007", "1.50"], ["010", "-1"], ["NA", "0.25"], ["", "3"], ["0x1F", "2"]]
    # a kept feature is still an input: the predictions are those without --keep
    assert [line.split(",", 2)[2] for line in lines[1:]] == plain.stdout.splitlines()[1:]


def test_extra_columns_and_the_target_are_ignored_with_a_note(runner, tmp_path, numeric_run):
    (tmp_path / "rows.csv").write_text(ROWS)
    result = runner.invoke(app, ["predict", str(numeric_run), str(tmp_path / "rows.csv")])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "class,prob_0,prob_1"
    assert len(result.stdout.splitlines()) == 6
    assert "Note: rows.csv: ignoring the columns 'id', 'note' (not inputs of the model); " \
           "--keep id copies one into the output." in result.stderr
    assert "Note: rows.csv: ignoring the target column 'y' (what the model predicts); " \
           "--keep y copies it into the output." in result.stderr
    kept = runner.invoke(app, ["predict", str(numeric_run), str(tmp_path / "rows.csv"),
                               "--keep", "id", "--keep", "y", "--keep", "note"])
    assert kept.exit_code == 0, kept.output
    assert "Note" not in kept.stderr
    assert kept.stdout.splitlines()[:2] == ["id,y,note,class,prob_0,prob_1",
                                            kept.stdout.splitlines()[1]]
    assert kept.stdout.splitlines()[1].startswith("007,1,first,")


def test_a_kept_column_named_like_an_output_column_renames_the_prediction(runner, tmp_path,
                                                                           numeric_run):
    (tmp_path / "rows.csv").write_text("class,a,b\nsmall,1,2\n")
    result = runner.invoke(app, ["predict", str(numeric_run), str(tmp_path / "rows.csv"),
                                 "--keep", "class"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "class,predicted_class,prob_0,prob_1"
    assert result.stdout.splitlines()[1].startswith("small,")


def test_an_unknown_keep_column_is_refused_naming_the_columns(runner, tmp_path, numeric_run):
    (tmp_path / "rows.csv").write_text(ROWS)
    result = runner.invoke(app, ["predict", str(numeric_run), str(tmp_path / "rows.csv"),
                                 "--keep", "ID", "-o", str(tmp_path / "out.csv")])
    assert isinstance(result.exception, SystemExit)
    assert result.exit_code == 2
    assert "--keep: expected column names of rows.csv (id, a, note, b, y); received 'ID'. " \
           "Did you mean 'id'?" in result.stderr
    assert not (tmp_path / "out.csv").exists()


def test_keep_with_arrays_or_images_is_a_usage_error(runner, tmp_path, numeric_run):
    np.save(tmp_path / "rows.npy", np.zeros((2, 2), dtype="float32"))
    result = runner.invoke(app, ["predict", str(numeric_run), str(tmp_path / "rows.npy"),
                                 "--keep", "id"])
    assert isinstance(result.exception, SystemExit)
    assert result.exit_code == 2
    assert "--keep: only for a CSV input (it copies columns named in its header); " \
           "received 'rows.npy', an array without column names: row i of the output is " \
           "row i of the array." in result.stderr.replace(str(tmp_path) + "/", "")


def test_the_keep_advice_is_a_command_that_works_as_typed(runner, tmp_path, numeric_run):
    """A column named with a space: the note quotes it as a shell does, and the advice typed
    as shown (split by shlex, as the shell splits it) copies the column."""
    import shlex

    (tmp_path / "rows.csv").write_text(ROWS.replace("id,", "cust id,", 1))
    result = runner.invoke(app, ["predict", str(numeric_run), str(tmp_path / "rows.csv")])
    assert result.exit_code == 0, result.output
    assert "--keep 'cust id' copies one into the output." in result.stderr
    advice = result.stderr.split("--keep ", 1)[1].split(" copies")[0]
    kept = runner.invoke(app, ["predict", str(numeric_run), str(tmp_path / "rows.csv"),
                               *shlex.split(f"--keep {advice}")])
    assert kept.exit_code == 0, kept.output
    assert kept.stdout.splitlines()[0] == "cust id,class,prob_0,prob_1"


def test_a_missing_column_is_one_rule_at_predict_and_evaluate_data(runner, tmp_path,
                                                                   numeric_run):
    """A file without a column the model takes: exit 2 (the input does not match the model)
    at predict and at evaluate --data, the same words, extra columns not called
    "unexpected" where they are ignored, and a misspelling named."""
    (tmp_path / "rows.csv").write_text("a,bb,y,note\n1,2,0,x\n3,4,1,y\n")
    said = []
    for args in (["predict", str(numeric_run), "rows.csv"],
                 ["evaluate", str(numeric_run), "--data", "rows.csv"]):
        result = runner.invoke(app, args)
        assert isinstance(result.exception, SystemExit) and result.exit_code == 2, result.output
        assert "unexpected" not in result.stderr
        said.append(result.stderr)
    assert said[0] == ("Error: rows.csv: the columns differ from training (missing 'b'; 'bb', "
                       "'note' are not read). Expected the columns (in any order): a, b. It "
                       "has: a, bb, y, note. Is 'bb' meant to be 'b'?\n")
    assert said[1].startswith("Error: --data: rows.csv: the columns differ from the run's "
                              "training data (missing 'b'; 'bb', 'note' are not read).")


# --- a bare saved model (no run directory) ----------------------------------------------------

def test_a_bare_sigmoid_model_names_its_outputs_as_its_run_does(runner, tmp_path):
    """One sigmoid unit is a binary classifier's probability: model.keras alone gives
    class,prob_0,prob_1 (classes 0/1), the same rows as its run directory gives."""
    _csv(tmp_path / "train.csv")
    config = tiny_config(data={"csv": str(tmp_path / "train.csv"), "target": "y",
                               "validation_split": 0.2},
                         model={"layers": [{"Dense": {"units": 1, "activation": "sigmoid"}}]},
                         compile={"optimizer": "adam", "loss": "binary_crossentropy"},
                         save={"formats": ["keras"]})
    fit = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert fit.exit_code == 0, fit.output
    run = fit.stdout.strip()
    (tmp_path / "rows.csv").write_text("a,b\n1.5,0.5\n-1,2\n")
    from_run = runner.invoke(app, ["predict", run, str(tmp_path / "rows.csv")])
    assert from_run.exit_code == 0, from_run.output
    bare = runner.invoke(app, ["predict", f"{run}/model.keras", str(tmp_path / "rows.csv")])
    assert bare.exception is None or isinstance(bare.exception, SystemExit), bare.exception
    assert bare.exit_code == 0, bare.output
    assert bare.stdout.splitlines()[0] == "class,prob_0,prob_1"
    assert bare.stdout == from_run.stdout


def test_a_bare_image_model_given_an_image_asks_for_the_run_directory(runner, tmp_path):
    from test_data import _images

    _images(tmp_path / "photos", per_class=3)
    config = tiny_config(data={"images": str(tmp_path / "photos"), "image_size": [8, 8],
                               "scale": 255, "validation_split": 0.25},
                         model={"layers": ["Flatten",
                                           {"Dense": {"units": 2, "activation": "softmax"}}]},
                         fit={"epochs": 1, "verbose": 0}, save={"formats": ["keras"]})
    fit = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config)),
                              "--run-dir", "run"])
    assert fit.exit_code == 0, fit.output
    image = "photos/cat/0.png"
    for given in (image, "photos/cat"):
        result = runner.invoke(app, ["predict", "run/model.keras", given])
        assert isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code == 2, result.output
        assert " ".join(result.stderr.split()) == (
            f"Error: INPUT: '{given}' is {'an image' if given == image else 'a folder'}, and "
            "the model file run/model.keras alone does not record how images were read in "
            "training (the image size and colour mode they were resized to). Pass the run "
            f"directory instead: nettrain predict run {given}")
    ok = runner.invoke(app, ["predict", "run", image])
    assert ok.exit_code == 0, ok.output
    # A folder with a link to itself: each image is read once (the link was followed 40
    # levels deep, until the system's limit: 41 rows for 1 image).
    folder = tmp_path / "new"
    folder.mkdir()
    (folder / "a.png").write_bytes((tmp_path / image).read_bytes())
    (folder / "again").symlink_to(".")
    looped = runner.invoke(app, ["predict", "run", "new"])
    assert looped.exit_code == 0, looped.output
    assert looped.stdout.splitlines()[1:] == [f"new/a.png,{ok.stdout.splitlines()[1].split(',', 1)[1]}"]


# --- where the output goes: a file replaced whole, a device or FIFO written into ---------------

ROWS_AB = "a,b\n1,2\n3,4\n"


def test_output_to_a_device_or_fifo_is_written_into_never_replaced(runner, tmp_path,
                                                                   numeric_run):
    """As root, --output /dev/null renamed a regular file over the device: every program on
    the machine then wrote into a file. A device node of our own stands in for it."""
    from test_writing import device_node, fifo_reader, is_null_device

    (tmp_path / "rows.csv").write_text(ROWS_AB)
    null = device_node(tmp_path / "null")
    result = runner.invoke(app, ["predict", str(numeric_run), str(tmp_path / "rows.csv"),
                                 "-o", str(null)])
    assert result.exit_code == 0, result.output
    assert is_null_device(null)
    assert f"Wrote 2 predictions to {null}" in " ".join(result.stderr.split())
    with fifo_reader(tmp_path / "fifo") as got:
        result = runner.invoke(app, ["predict", str(numeric_run), str(tmp_path / "rows.csv"),
                                     "--output", str(tmp_path / "fifo")])
        assert result.exit_code == 0, result.output
    assert got["data"].decode().splitlines()[0] == "class,prob_0,prob_1"
    assert len(got["data"].decode().splitlines()) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "null", "rows.csv"]


def test_output_dash_is_stdout_and_a_socket_is_refused(runner, tmp_path, numeric_run,
                                                       monkeypatch):
    import socket

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rows.csv").write_text(ROWS_AB)
    result = runner.invoke(app, ["predict", str(numeric_run), "rows.csv", "-o", "-"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "class,prob_0,prob_1"
    assert not (tmp_path / "-").exists()
    server = socket.socket(socket.AF_UNIX)
    server.bind("sock")
    try:
        result = runner.invoke(app, ["predict", str(numeric_run), "rows.csv", "-o", "sock"])
    finally:
        server.close()
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2, result.output
    assert result.stderr == ("Error: --output: sock is a socket; nettrain writes only files, "
                             "devices such as /dev/null and FIFOs. Give the path of a file.\n")


def test_output_in_a_read_only_folder_is_refused_before_predicting(runner, tmp_path,
                                                                   numeric_run, monkeypatch):
    from test_writing import read_only_folder

    (tmp_path / "rows.csv").write_text(ROWS_AB)
    called = []
    monkeypatch.setattr(predicting, "load_run", lambda *a, **k: called.append(1))
    with read_only_folder(tmp_path / "ro") as ro:
        result = runner.invoke(app, ["predict", str(numeric_run), str(tmp_path / "rows.csv"),
                                     "-o", str(ro / "out.csv")])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Error: --output: cannot write in the folder {ro} (")
    assert "Give a path in a folder you can write to." in result.stderr
    assert not called


def test_a_predict_process_leaves_out_what_only_keras_s_wrappers_and_plots_import(runner,
                                                                                  tmp_path):
    """Keras on TensorFlow imports scikit-learn, SciPy and matplotlib's pyplot wherever they
    are installed, for its scikit-learn estimators and its image-gallery plot: about 1 CPU
    second of a predict's (and serve's, export's) start-up, for a model that needs none. The
    predictions are the same; the process imported none of them."""
    import subprocess
    import sys

    _csv(tmp_path / "train.csv")
    run = _fit(runner, tmp_path)
    expected = runner.invoke(app, ["predict", run, "train.csv"])
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom nettrain.cli import app\n"
            "r = CliRunner().invoke(app, ['predict', sys.argv[1], 'train.csv'])\n"
            "print(r.exit_code, sorted({'sklearn', 'scipy', 'matplotlib'} & set(sys.modules)))\n"
            "print(r.stdout, end='')")
    done = subprocess.run([sys.executable, "-c", code, run], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    first, _, predictions = done.stdout.partition("\n")
    assert first == "0 []", done.stdout[-2000:] + done.stderr[-2000:]
    assert expected.exit_code == 0 and predictions == expected.stdout
