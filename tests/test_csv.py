"""One CSV reader for fit, streaming, evaluate --data and predict: categories are the text
written in the file, the missing-cell rule is the one recorded at training, and a row longer
or shorter than its header or a column named twice is refused naming the line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nettrain.cli import app
from nettrain.errors import DataError

from conftest import fit_once, tiny_config, write_config

# y is the flag; zip and tag are categories whose text must not be merged or lost.
ROWS = [("true", "02134", "None", 1), ("false", "2134", "NA", 0), ("true", "2134", "", 1),
        ("false", "02134", "a", 0), ("true", "10001", "NA", 1), ("false", "10001", "None", 0),
        ("true", "02134", "a", 1), ("false", "2134", "", 0)] * 5


def _write(path: Path, rows=ROWS, header="flag,zip,tag,y") -> Path:
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def _config(csv: Path, **data) -> dict:
    return tiny_config(
        data={"csv": str(csv), "target": "y", "categorical": ["flag", "zip", "tag"],
              "missing": "zero", "validation_split": 0.0, "test_split": 0.0, **data},
        model={"layers": [{"Dense": {"units": 2, "activation": "softmax"}}]},
        compile={"optimizer": {"Adam": {"learning_rate": 0.1}},
                 "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        fit={"epochs": 10, "batch_size": 8, "verbose": 0}, save={"formats": ["keras"]})


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("csv")
    return fit_once(folder, _config(_write(folder / "train.csv")))


def _predict(runner, run: Path, rows: Path) -> list[list[str]]:
    result = runner.invoke(app, ["predict", str(run), str(rows)])
    assert result.exit_code == 0, result.output
    assert result.exception is None
    return [line.split(",") for line in result.stdout.strip().splitlines()]


def test_a_true_false_category_predicts_as_evaluate_data_measures(runner, run):
    train = run.parent / "train.csv"
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(train), "--json"])
    assert result.exit_code == 0, result.output
    measured = json.loads(result.stdout)["metrics"]["accuracy"]
    lines = _predict(runner, run, train)
    assert lines[0][0] == "class"
    predicted = [int(line[0]) for line in lines[1:]]
    accuracy = sum(p == y for p, (*_, y) in zip(predicted, ROWS)) / len(ROWS)
    assert measured == 1.0
    assert accuracy == measured
    dataset = json.loads((run / "dataset.json").read_text())
    assert dataset["columns"]["flag"] == "string"
    assert dataset["csv_reading"]["categories"] == "text"
    assert dataset["csv_reading"]["missing"]["categories"] == [""]


def test_categories_02134_and_2134_stay_two(runner, run, tmp_path):
    import keras

    dataset = json.loads((run / "dataset.json").read_text())
    assert dataset["columns"]["zip"] == "string"
    assert dataset["model_inputs"]["zip"]["dtype"] == "string"
    model = keras.saving.load_model(run / "model.keras")
    assert {"02134", "2134", "10001"} <= set(model.get_layer("encode_zip").get_vocabulary())
    lines = _predict(runner, run, _write(tmp_path / "rows.csv", [
        ("true", "02134", "a", 1), ("true", "2134", "a", 1)]))
    assert lines[1][1:] != lines[2][1:]  # other probabilities: two categories


def test_none_and_na_are_categories_of_their_own_beside_empty(runner, run, tmp_path):
    import keras

    model = keras.saving.load_model(run / "model.keras")
    vocabulary = model.get_layer("encode_tag").get_vocabulary()
    assert {"None", "NA", "", "a"} <= set(vocabulary)
    lines = _predict(runner, run, _write(tmp_path / "rows.csv", [
        ("true", "10001", tag, 1) for tag in ("None", "NA", "")]))
    assert len({tuple(line[1:]) for line in lines[1:]}) == 3


def test_a_run_recorded_before_the_rule_reads_as_it_was_trained(runner, run, tmp_path):
    """A dataset.json without "csv_reading" (an older nettrain): 'NA' is missing, as pandas
    read it in training, so with missing: zero it is the category ''."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(run, old)
    dataset = json.loads((old / "dataset.json").read_text())
    del dataset["csv_reading"]
    (old / "dataset.json").write_text(json.dumps(dataset))
    lines = _predict(runner, old, _write(tmp_path / "rows.csv", [
        ("true", "10001", tag, 1) for tag in ("NA", "")]))
    assert lines[1] == lines[2]


def test_none_and_na_are_no_missing_cells_of_a_category(runner, tmp_path):
    """With missing: error only an empty cell is missing in a categorical column."""
    rows = [r for r in ROWS if r[2] != ""]
    config = _config(_write(tmp_path / "d.csv", rows), missing="error")
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 0, result.output
    _write(tmp_path / "d.csv", ROWS)
    result = runner.invoke(app, ["validate", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2
    assert "d.csv: missing value at row 4, column 'tag'" in result.stderr


def _two_classes(**data) -> dict:
    return tiny_config(data={"csv": str(Path.cwd() / "d.csv"), "target": "y", **data},
                       model={"layers": [{"Dense": {"units": 2, "activation": "softmax"}}]})


DECIMAL_COMMA = "a,b,y\n5,1,3,2,0\n4,9,3,0,1\n"  # every value a decimal comma, unquoted


@pytest.mark.parametrize("stream", [False, True])
def test_a_row_longer_than_its_header_is_refused_at_fit(runner, tmp_path, stream):
    (tmp_path / "d.csv").write_text(DECIMAL_COMMA)
    config = _two_classes(stream=stream)
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert (f"data.csv: line 2 of {tmp_path / 'd.csv'} has 5 fields; its header (line 1) "
            "has 3. Quote each value that holds the delimiter ','") in result.stderr


@pytest.mark.parametrize("stream", [False, True])
def test_a_row_shorter_than_its_header_is_refused_at_fit(runner, tmp_path, stream):
    """pandas reads the fields a cut line lacks as empty cells (a 0 under data.missing: zero,
    a class 'nan' of the target): refused at the data stage's reader, in memory and streamed."""
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n3,4,1\n5,6\n7,8,1\n")
    config = _two_classes(stream=stream, missing="zero")
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert (f"data.csv: line 4 of {tmp_path / 'd.csv'} has 2 fields; its header (line 1) has "
            "3: no value for the column 'y' (a line cut short?). Complete the line, leaving a "
            "cell empty with the delimiter ',' (such as ',,') where a value is missing, or "
            "remove it.") in " ".join(result.stderr.split())


def test_a_later_long_row_is_refused_naming_its_line(runner, tmp_path):
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,9,1\n")
    config = _two_classes()
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2, result.output
    assert f"data.csv: line 5 of {tmp_path / 'd.csv'} has 4 fields; its header (line 1) " \
           "has 3." in result.stderr


def test_a_column_named_twice_is_refused_at_fit(runner, tmp_path):
    (tmp_path / "d.csv").write_text("a,b,a,y\n1,2,3,0\n4,5,6,1\n")
    config = _two_classes()
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2, result.output
    assert (f"data.csv: line 1 of {tmp_path / 'd.csv'} (the header) names the column 'a' "
            "twice (columns 1 and 3). Give each column a name of its own.") in result.stderr


@pytest.mark.parametrize("text, line", [
    ("flag,zip,tag\ntrue,02134,a,1\n", "line 2 of {} has 4 fields; its header (line 1) has 3."),
    ("flag,zip,tag\ntrue,02134,a\ntrue,2134,a\nfalse,1,b,c\n",
     "line 4 of {} has 4 fields; its header (line 1) has 3."),
    ("flag,zip,tag,zip\ntrue,02134,a,1\n",
     "line 1 of {} (the header) names the column 'zip' twice (columns 2 and 4)."),
    # cut short (the run reads data.missing: zero): before, the lacking cells were filled
    ("flag,zip,tag\ntrue,02134,a\ntrue\n",
     "line 3 of {} has 1 field; its header (line 1) has 3: no value for the column 'zip' and "
     "1 more (a line cut short?)."),
    # the line a row starts on, past a quoted line break and a blank line (skipped)
    ('flag,zip,tag\n"tr\nue",02134,\n\nfalse,2134\n',
     "line 5 of {} has 2 fields; its header (line 1) has 3: no value for the column 'tag' "
     "(a line cut short?)."),
])
def test_malformed_rows_are_refused_at_predict_and_evaluate(runner, run, tmp_path, text, line):
    path = tmp_path / "rows.csv"
    path.write_text(text)
    result = runner.invoke(app, ["predict", str(run), str(path)])
    assert result.exit_code == 2, result.output
    assert f"INPUT: {line.format(path)}" in result.stderr
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(path)])
    assert result.exit_code == 2, result.output
    assert f"--data: {line.format(path)}" in result.stderr


def test_a_streamed_csv_reads_its_categories_as_one_loaded_whole(tmp_path, monkeypatch):
    """Kinds come from every row (not the first chunk): '02134' after 1,200 rows of whole
    numbers makes the column text, in the stream as in memory."""
    from nettrain.config.load import load_config
    from nettrain.data import stream
    from nettrain.data.loading import load_data

    monkeypatch.setattr(stream, "CHUNK_ROWS", 500)
    rows = [(i % 3, i % 2) for i in range(1200)] + [("02134", 0), ("2134", 1), ("", 0)]
    (tmp_path / "d.csv").write_text("zip,y\n" + "".join(f"{z},{y}\n" for z, y in rows))
    loaded = []
    for streamed in (False, True):
        config = _two_classes(categorical=["zip"], missing="zero", stream=streamed)
        data = load_data(load_config(write_config(tmp_path / "c.yaml", config)))
        loaded.append((data.columns, sorted(data.vocabulary("zip"))))
    assert loaded[0] == loaded[1] == ({"zip": "string"}, ["", "0", "02134", "1", "2", "2134"])


def test_only_a_row_cut_short_is_refused_not_an_empty_last_cell(tmp_path):
    """The reader's own check: empty last cells (pandas reads them as a short row reads) and
    whitespace-only lines pass; --keep (every cell as text, '' for an empty one) and a read of
    some columns see a short row too."""
    from nettrain.data.csvfile import read_csv
    from nettrain.errors import InputError

    path = tmp_path / "rows.csv"
    path.write_text("a,b,c\n1,2,\n\n   \n3,,\n")
    assert [list(f.index) for f in read_csv(path, ",", "INPUT", rows=1)] == [[0], [1]]
    path.write_text("a,b,c\n1,2,\n3,4\n")
    for options in ({}, {"verbatim": True, "columns": ["a"]}, {"rows": 1}):
        with pytest.raises(InputError, match=r"INPUT: line 3 of .* has 2 fields; its header "
                                             r"\(line 1\) has 3: no value for the column 'c'"):
            list(read_csv(path, ",", "INPUT", **options))
    path.write_text("a,b,c\n1,2,3\n")  # a read of some columns keeps them, in file order
    frame = next(read_csv(path, ",", "INPUT", columns=["b", "a"], verbatim=True))
    assert list(frame.columns) == ["a", "b"]


# ---------------------------------------------------------------- data.missing

# airquality's shape: a numeric target (Ozone) with gaps, and gaps in a feature (Solar.R).
AIR = ("Ozone,Solar.R,Wind\n41,190,7.4\n36,118,8.0\n12,149,12.6\n18,313,11.5\n,,14.3\n"
       "28,,14.9\n23,299,8.6\n19,99,13.8\n8,19,20.1\n,194,8.6\n7,,6.9\n16,256,9.7\n")
# msleep's shape: a class of text (vore) with gaps.
SLEEP = ("vore,sleep,brain\ncarni,12.1,0.01\nomni,17.0,0.0155\nherbi,14.4,0.3\n,14.9,0.2\n"
         "herbi,4.0,0.1\ncarni,14.4,0.05\n,8.7,0.3\nomni,10.1,0.2\nherbi,3.0,0.5\n")


def _table(folder: Path, text: str, target: str, **data) -> dict:
    (folder / "t.csv").write_text(text)
    classify = target == "vore"
    return tiny_config(
        data={"csv": str(folder / "t.csv"), "target": target, "validation_split": 0.0,
              "test_split": 0.0, **data},
        model={"layers": [{"Dense": {"units": 3 if classify else 1,
                                     **({"activation": "softmax"} if classify else {})}}]},
        compile={"optimizer": "adam", "metrics": [],
                 "loss": "sparse_categorical_crossentropy" if classify else "mse"},
        fit={"epochs": 1, "batch_size": 4, "verbose": 0})


@pytest.mark.parametrize("missing", ["zero", "median", {"Solar.R": "zero"}])
def test_a_row_without_its_numeric_target_is_dropped_never_filled(tmp_path, missing):
    from nettrain.config.load import validate_config
    from nettrain.data.loading import load_data

    data = load_data(validate_config(_table(tmp_path, AIR, "Ozone", missing=missing)))
    assert data.size("train") == 10  # 12 rows, 2 without Ozone
    assert 0.0 not in data.y["train"].ravel().tolist()
    assert data.notes == ["Note: t.csv: dropped 2 rows (2 without the target 'Ozone')."]


def test_a_row_without_its_class_is_dropped_with_a_note_never_a_class(runner, tmp_path):
    config = write_config(tmp_path / "c.yaml", _table(tmp_path, SLEEP, "vore", missing="zero"))
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    assert "Note: t.csv: dropped 2 rows (2 without the target 'vore')." in result.stderr
    assert "data: train 7 samples" in result.stdout
    assert "the classes carni, herbi, omni." in result.stdout  # no class ''


def test_a_missing_target_with_missing_error_is_refused_naming_line_and_column(runner,
                                                                               tmp_path):
    config = write_config(tmp_path / "c.yaml", _table(tmp_path, SLEEP, "vore"))
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "t.csv: line 5 has no value in the target column 'vore' (2 rows without one)" in \
        " ".join(result.stderr.split())


@pytest.mark.parametrize("missing, expected", [
    ({"Solr.R": "median"}, "data.missing (line 8): expected column names of t.csv"),
    ("interpolate", "interpolate only with data.timeseries (it fills gaps in time order)"),
    ({"Ozone": "median"}, "drop or error for the target 'Ozone'"),
    ("mediam", "Did you mean 'median'?"),
])
def test_missing_mistakes_are_refused_at_validate(runner, tmp_path, missing, expected):
    config = write_config(tmp_path / "c.yaml", _table(tmp_path, AIR, "Ozone", missing=missing))
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert expected in " ".join(result.stderr.split())
    if isinstance(missing, dict) and "Solr.R" in missing:
        assert "Did you mean 'Solar.R'?" in result.stderr


@pytest.mark.parametrize("missing", ["median", {"tier": "mean"}])
def test_mean_or_median_of_a_categorical_column_is_refused(runner, tmp_path, missing):
    (tmp_path / "t.csv").write_text("a,tier,y\n1,low,0\n2,,1\n3,high,0\n")
    config = write_config(tmp_path / "c.yaml", tiny_config(data={
        "csv": str(tmp_path / "t.csv"), "target": "y", "categorical": ["tier"],
        "missing": missing}))
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2, result.output
    text = " ".join(result.stderr.split())
    assert "data.missing" in text and "'tier'" in text and "most_frequent" in text


@pytest.mark.parametrize("stream", [False, True])
def test_a_mapping_fills_each_column_by_its_policy_and_leaves_others_to_error(tmp_path,
                                                                              stream):
    from nettrain.config.load import validate_config
    from nettrain.data.loading import load_data

    (tmp_path / "t.csv").write_text("age,city,n,y\n30,a,1,0\n,b,2,1\n50,b,,0\n40,,4,1\n")
    config = tiny_config(data={"csv": str(tmp_path / "t.csv"), "target": "y",
                               "categorical": ["city"], "validation_split": 0.0,
                               "test_split": 0.0, "stream": stream,
                               "missing": {"age": "median", "city": "most_frequent"}})
    with pytest.raises(DataError, match="missing value at row 4, column 'n'"):
        load_data(validate_config(config))
    config["data"]["missing"]["n"] = "mean"
    data = load_data(validate_config(config))
    assert data.info["missing"]["fills"] == {"age": 40.0, "city": "b", "n": 7 / 3}
    if stream:
        return
    assert data.x["train"]["age"].ravel().tolist() == [30, 40, 50, 40]
    assert data.x["train"]["city"].ravel().tolist() == ["a", "b", "b", "b"]


@pytest.mark.parametrize("stream", [False, True])
def test_fills_are_learned_on_the_training_split_alone(tmp_path, stream):
    """The median of Solar.R's training rows (split.csv says which), not of all rows."""
    from nettrain.config.load import validate_config
    from nettrain.data.loading import load_data

    rows = [f"{i},{i * 10 if i % 5 else ''},{i % 3}" for i in range(1, 41)]
    config = _table(tmp_path, "Ozone,Solar.R,Wind\n" + "\n".join(rows) + "\n", "Ozone",
                    missing="median", validation_split=0.5, stream=stream)
    data = load_data(validate_config(config))
    data.rows.write(tmp_path / "split.csv")
    split = pd.read_csv(tmp_path / "split.csv")
    source = pd.read_csv(tmp_path / "t.csv")
    train = source.iloc[split["row"][split["split"] == "train"]]["Solar.R"]
    assert data.info["missing"]["fills"]["Solar.R"] == train.median()
    assert train.median() != source["Solar.R"].median()


def test_fit_predict_and_evaluate_data_fill_a_gap_with_the_training_median(runner, tmp_path):
    """End to end: gaps in a feature and in the target; the recorded fill is the training
    split's median, predict of a row with a gap is predict of the row with it written in, and
    evaluate --data scores a file with gaps as training filled them."""
    rows = [f"{i % 7 + 1 if i % 9 else ''},{i * 3 if i % 4 else ''},{i % 5}" for i in range(1, 49)]
    (tmp_path / "t.csv").write_text("Ozone,Solar.R,Wind\n" + "\n".join(rows) + "\n")
    config = _table(tmp_path, (tmp_path / "t.csv").read_text(), "Ozone", missing="median",
                    validation_split=0.25)
    config["save"] = {"formats": ["keras"]}
    run = fit_once(tmp_path, config)
    split = pd.read_csv(run / "split.csv")
    source = pd.read_csv(tmp_path / "t.csv")
    assert split["line"].tolist() == [r + 2 for r in range(48)]
    assert (split["split"] == "dropped").tolist() == source["Ozone"].isna().tolist()
    median = source.iloc[split["row"][split["split"] == "train"]]["Solar.R"].median()
    recorded = json.loads((run / "dataset.json").read_text())["missing"]
    assert recorded["fills"]["Solar.R"] == median
    (tmp_path / "p.csv").write_text(f"Solar.R,Wind\n,2\n{median},2\n")
    lines = _predict(runner, run, tmp_path / "p.csv")
    assert lines[1] == lines[2]
    from nettrain.engine.predict import load_run, rows_inputs

    served = rows_inputs(load_run(run), pd.DataFrame({"Solar.R": [None, median],
                                                       "Wind": [2, 2]}))  # serve's rows
    assert served[0].tolist() == served[1].tolist() == [np.float32(median), 2.0]
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(tmp_path / "t.csv"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    filled = source.dropna(subset=["Ozone"]).fillna({"Solar.R": median})
    filled.to_csv(tmp_path / "filled.csv", index=False)
    again = runner.invoke(app, ["evaluate", str(run), "--data", str(tmp_path / "filled.csv"),
                                "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(result.stdout)["metrics"] == json.loads(again.stdout)["metrics"]


# ------------------------------------------------------------------------ problems together


def _validate(runner, tmp_path, text: str, **data):
    (tmp_path / "d.csv").write_text(text)
    config = tiny_config(data={"csv": "d.csv", "target": "y", "validation_split": 0.0,
                               "test_split": 0.0, **data},
                         model={"layers": [{"Dense": {"units": 2, "activation": "softmax"}}]})
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, result.output
    return " ".join(result.stderr.split())


@pytest.mark.parametrize("stream", [False, True])
def test_a_files_cell_problems_are_reported_together(runner, tmp_path, monkeypatch, stream):
    """Issue 26: problems came one at a time. Text in a number column (its first rows named,
    the rest counted), an empty cell, inf and a misspelt column: one message, exit 2."""
    rows = [["1", "2", "0.5", "0"] for _ in range(12)]
    for i in (2, 5, 6, 9, 10):
        rows[i][0] = f"x{i}"
    rows[3][1], rows[7][2] = "", "inf"
    text = "a,b,c,y\n" + "".join(",".join(r) + "\n" for r in rows)
    told = _validate(runner, tmp_path, text, stream=stream)
    assert told.startswith("Error: d.csv: 3 problems: - missing value at row 5, column 'b' (1 "
                           "missing in this column"), told
    more = " in rows 2 to 13" if stream else " rows"  # a streamed file: of the chunk read
    assert f"- column 'a' must be numeric; row 4 holds 'x2' (and 4 more{more}" in told
    assert ": row 7 'x5', row 8 'x6', ...). List it in data.categorical" in told
    assert "- column 'c' row 9 holds inf, which is not a finite 32-bit number" in told
    told = _validate(runner, tmp_path, text.replace("a,b,c,y", "a,b,c,why"), stream=stream)
    assert told.startswith("Error: d.csv: 4 problems: - data.target (line 5): expected column "
                           "names of d.csv (a, b, c, why); received 'y'"), told
    wide = ",".join(f"t{i}" for i in range(12))
    told = _validate(runner, tmp_path, f"{wide},y\n" + f"{'a,' * 12}0\n" * 3, stream=stream)
    assert told.startswith("Error: d.csv: 12 problems: - column 't0' must be numeric")
    more = " in rows 2 to 4" if stream else " rows"
    assert told.endswith(f"- column 't9' must be numeric; row 2 holds 'a' (and 2 more{more}: "
                         "row 3 'a', row 4 'a'). List it in data.categorical to encode it as "
                         "categories. - ... and 2 more"), told


def test_an_id_column_is_advised_out_of_the_inputs_a_category_into_categorical(runner,
                                                                              tmp_path):
    """A column of names (a value per row) as categories teaches nothing: leave it out, with
    data.features ready to paste; a few repeated strings stay the categorical advice."""
    import yaml

    rows = "".join(f"Person {i},{'mf'[i % 2]},{20 + i},{i % 2}\n" for i in range(14))
    told = _validate(runner, tmp_path, "Name,Sex,on,y\n" + rows)
    name, sex = told.split(" - ")[1:3]
    assert name.startswith("column 'Name' must be numeric; row 2 holds 'Person 0' (and 13 more")
    assert "It looks like names or IDs (14 different values in 14 rows)" in name
    assert "data.categorical" not in name
    pasted = yaml.safe_load(name.split("Leave it out of the inputs with ")[1])
    assert pasted == {"data.features": ["Sex", "on"]}  # 'on' quoted: YAML reads it as true
    assert sex.startswith("column 'Sex' must be numeric; row 2 holds 'm'")
    assert sex.endswith("List it in data.categorical to encode it as categories.")


def test_a_missing_target_under_missing_error_comes_with_the_other_cells_problems(runner,
                                                                                 tmp_path):
    """vega's cars: rows without the target, a names column and a gap in an input come in one
    message; a median asked of a names column says it is text, not that it has no values."""
    text = "name,hp,y\n" + "".join(f"car {i},{'' if i == 3 else i},{'' if i == 5 else i % 2}\n"
                                   for i in range(14))
    told = _validate(runner, tmp_path, text)
    assert told.startswith("Error: d.csv: 3 problems: - line 7 has no value in the target "
                           "column 'y' (1 row without one)."), told
    assert "- missing value at row 5, column 'hp'" in told
    assert "- column 'name' must be numeric; row 2 holds 'car 0'" in told
    told = _validate(runner, tmp_path, text, missing="median")
    assert told.startswith("Error: d.csv: column 'name' must be numeric"), told
    assert "to learn its median" not in told
