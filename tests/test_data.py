"""Data sources and preprocessing, on tiny real files the tests write."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nettrain.data import pipeline
from nettrain.run import directory as rundir
from nettrain.model import saving
from nettrain.engine import train
from nettrain.cli import app
from nettrain.config.load import load_config
from nettrain.data.loading import load_data
from nettrain.errors import ConfigError, DataError, InputError

from conftest import tiny_config, write_config, write_npz


def _table(tmp_path, n=60, seed=0):
    """A CSV with a string category, an integer category, a number and class names."""
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue"], n)
    size = rng.choice([1, 2, 3], n)
    weight = rng.normal(70, 10, n).round(1)
    label = np.where((color == "red") | (weight > 75), "yes", "no")
    frame = pd.DataFrame({"color": color, "size": size, "weight": weight, "label": label})
    frame.to_csv(tmp_path / "train.csv", index=False)
    return frame


def _table_config(tmp_path, **data):
    return tiny_config(
        data={"csv": str(tmp_path / "train.csv"), "target": "label",
              "categorical": ["color", "size"], "normalize": True, "validation_split": 0.2,
              **data},
        model={"layers": [{"Dense": {"units": 8, "activation": "relu"}},
                          {"Dense": {"units": 2, "activation": "softmax"}}]},
        save={"formats": ["json", "keras", "savedmodel"]})


def test_raw_csv_rows_predict_as_the_in_memory_model_in_every_format(runner, tmp_path):
    _table(tmp_path)
    config = load_config(write_config(tmp_path / "c.yaml", _table_config(tmp_path)))
    prepared = train.prepare(config)
    model, data = prepared.model, prepared.data
    model.fit(train._arguments(data, "train", config, training=True)["x"], epochs=3, verbose=0,
              shuffle=False)
    run = tmp_path / "run"
    run.mkdir()
    rundir.write_atomic(run / rundir.CONFIG, config.to_yaml())
    rundir.write_json(run / rundir.DATASET, data.describe())
    saving.save_model(model, run, config.save.formats)
    raw = pd.DataFrame({"weight": [60.0, 80.0, 71.5], "color": ["red", "blue", "purple"],
                        "size": [1, 3, 9]})  # other column order; unseen categories
    raw.to_csv(tmp_path / "raw.csv", index=False)
    # the rows as the model took them in training: typed arrays, not predict's reader
    inputs = {"color": np.array([["red"], ["blue"], ["purple"]], dtype=object),
              "size": np.array([[1], [3], [9]], dtype="int64"),
              "weight": np.array([[60.0], [80.0], [71.5]], dtype="float32")}
    expected = model.predict(pipeline.dataset(inputs), verbose=0)
    for fmt in ("keras", "json", "savedmodel"):
        result = runner.invoke(app, ["predict", str(run), str(tmp_path / "raw.csv"),
                                     "--format", fmt])
        assert result.exit_code == 0, result.output
        lines = result.stdout.strip().splitlines()
        assert lines[0] == "class,prob_no,prob_yes"
        probs = np.array([[float(v) for v in line.split(",")[1:]] for line in lines[1:]])
        np.testing.assert_allclose(probs, expected, atol=1e-5, err_msg=fmt)
        classes = [line.split(",")[0] for line in lines[1:]]
        assert classes == [["no", "yes"][i] for i in expected.argmax(axis=1)]


def test_categorical_vocabulary_and_normalization_come_from_train_only(tmp_path):
    frame = _table(tmp_path)
    config = load_config(write_config(tmp_path / "c.yaml", _table_config(
        tmp_path, test_split=0.2)))
    prepared = train.prepare(config)
    train_rows = prepared.data.x["train"]
    norm = prepared.model.get_layer("normalize_input")
    assert float(np.asarray(norm.mean).reshape(-1)[0]) == pytest.approx(
        float(train_rows["weight"].mean()), rel=1e-5)
    assert float(train_rows["weight"].mean()) != pytest.approx(float(frame["weight"].mean()))
    lookup = prepared.model.get_layer("encode_color")
    assert set(lookup.get_vocabulary()[1:]) == set(train_rows["color"].reshape(-1))


def test_string_labels_map_to_indices_and_back(tmp_path):
    _table(tmp_path)
    data = load_data(load_config(write_config(tmp_path / "c.yaml", _table_config(tmp_path))))
    assert data.classes == ["no", "yes"]
    assert data.y["train"].dtype == np.int64 and set(data.y["train"]) <= {0, 1}
    assert data.info["columns"] == {"color": "string", "size": "integer", "weight": "numeric"}


def test_stratified_split_keeps_class_proportions(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.array(["a"] * 80 + ["b"] * 20)
    pd.DataFrame({"x": rng.random(100), "y": rng.permutation(labels)}).to_csv(
        tmp_path / "d.csv", index=False)
    config = tiny_config(data={"csv": str(tmp_path / "d.csv"), "target": "y",
                               "test_split": 0.2, "validation_split": 0.1, "stratify": True})
    data = load_data(load_config(write_config(tmp_path / "c.yaml", config)))
    assert {s: data.size(s) for s in data.splits} == {"train": 70, "validation": 10, "test": 20}
    assert int((data.y["test"] == 1).sum()) == 4
    assert int((data.y["validation"] == 1).sum()) == 2


def test_splits_do_not_overlap_and_repeat_with_the_seed(tmp_path):
    config = load_config(write_config(tmp_path / "c.yaml", tiny_config()))
    a, b = load_data(config), load_data(config)
    rows = [tuple(r) for s in a.splits for r in a.x[s]]
    assert len(rows) == 150 and len(set(rows)) == 149  # iris has one duplicate row
    for split in a.splits:
        np.testing.assert_array_equal(a.x[split], b.x[split])


def test_explicit_validation_and_test_files(tmp_path):
    _table(tmp_path)
    frame = pd.read_csv(tmp_path / "train.csv")
    frame.iloc[:10].to_csv(tmp_path / "val.csv", index=False)
    frame.iloc[10:25].to_csv(tmp_path / "test.csv", index=False)
    config = _table_config(tmp_path, validation=str(tmp_path / "val.csv"),
                           test=str(tmp_path / "test.csv"))
    del config["data"]["validation_split"]
    data = load_data(load_config(write_config(tmp_path / "c.yaml", config)))
    assert {s: data.size(s) for s in data.splits} == {"train": 60, "validation": 10, "test": 15}


def test_a_split_and_a_file_for_the_same_part_is_refused(tmp_path):
    config = _table_config(tmp_path, validation="val.csv")
    with pytest.raises(ConfigError, match="either validation .* or validation_split"):
        load_config(write_config(tmp_path / "c.yaml", config))


def test_multi_output_regression_from_csv(runner, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((50, 3))
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "t1": x.sum(1),
                  "t2": x[:, 0] - x[:, 1]}).to_csv(tmp_path / "r.csv", index=False)
    config = tiny_config(data={"csv": str(tmp_path / "r.csv"), "target": ["t1", "t2"]},
                         model={"layers": [{"Dense": {"units": 2}}]},
                         compile={"optimizer": "adam", "loss": "mse"})
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 0, result.output
    pd.DataFrame({"c": [0.1], "a": [0.5], "b": [0.2]}).to_csv(tmp_path / "new.csv", index=False)
    out = runner.invoke(app, ["predict", result.stdout.strip(), str(tmp_path / "new.csv")])
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines()[0] == "t1,t2"


def test_npz_with_its_own_test_part(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.random((20, 4)), y_train=rng.integers(0, 3, 20),
             x_test=rng.random((6, 4)), y_test=rng.integers(0, 3, 6))
    config = tiny_config(data={"npz": str(tmp_path / "d.npz"), "validation_split": 0.25})
    data = load_data(load_config(write_config(tmp_path / "c.yaml", config)))
    assert {s: data.size(s) for s in data.splits} == {"train": 15, "validation": 5, "test": 6}


def test_classic_mnist_mlp_shape_through_npz(runner, tmp_path):
    """784-500-10 sigmoid/softmax with SGD, on MNIST-shaped uint8 images: flatten, scale."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "m.npz", x_train=rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
             y_train=rng.integers(0, 10, 64), x_test=rng.integers(0, 256, (16, 28, 28),
                                                                   dtype=np.uint8),
             y_test=rng.integers(0, 10, 16))
    config = {"name": "mnist-mlp", "seed": 1,
              "data": {"npz": str(tmp_path / "m.npz"), "flatten": True, "scale": 255,
                       "one_hot": True},
              "model": {"input_shape": [784],
                        "layers": [{"Dense": {"units": 500, "activation": "sigmoid"}},
                                   {"Dense": {"units": 10, "activation": "softmax"}}]},
              "compile": {"optimizer": {"SGD": {"learning_rate": 0.5}},
                          "loss": "categorical_crossentropy", "metrics": ["accuracy"]},
              "fit": {"epochs": 1, "batch_size": 32, "verbose": 0}}
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 0, result.output
    run = tmp_path / result.stdout.strip()
    assert "Total params: 397,510" in (run / "summary.txt").read_text()
    np.save(tmp_path / "rows.npy", rng.integers(0, 256, (3, 784)).astype("float32"))
    out = runner.invoke(app, ["predict", str(run), str(tmp_path / "rows.npy")])
    assert out.exit_code == 0, out.output  # flat rows of 784 values reshape to 28x28
    assert len(out.stdout.strip().splitlines()) == 4


def _images(folder, classes=("cat", "dog"), per_class=6, size=8):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 80, (size, size, 3)) + 150 * c
            png = tf.io.encode_png(pixels.astype("uint8")).numpy()
            (folder / name / f"{i}.png").write_bytes(png)


def test_image_folder_cnn_and_predict_on_images(runner, tmp_path):
    _images(tmp_path / "photos")
    config = {"name": "cnn", "seed": 0,
              "data": {"images": str(tmp_path / "photos"), "image_size": [8, 8], "scale": 255,
                       "validation_split": 0.25},
              "model": {"layers": [{"Conv2D": {"filters": 4, "kernel_size": 3,
                                               "activation": "relu"}},
                                   "Flatten", {"Dense": {"units": 2, "activation": "softmax"}}]},
              "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy",
                          "metrics": ["accuracy"]},
              "fit": {"epochs": 2, "verbose": 0},
              "save": {"formats": ["keras", "savedmodel"]}}
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 0, result.output
    run = result.stdout.strip()
    info = json.loads((tmp_path / run / "dataset.json").read_text())
    assert info["classes"] == ["cat", "dog"] and info["input_shape"] == [8, 8, 3]
    split = pd.read_csv(tmp_path / run / "split.csv")  # each image's file and its split
    assert split.columns.tolist() == ["row", "path", "split"]
    assert split["path"].tolist() == [str(tmp_path / "photos" / c / f"{i}.png")
                                      for c in ("cat", "dog") for i in range(6)]
    assert split["split"].value_counts().to_dict() == {"train": 9, "validation": 3}
    one = runner.invoke(app, ["predict", run, str(tmp_path / "photos" / "dog" / "0.png")])
    assert one.exit_code == 0, one.output
    assert one.stdout.splitlines()[0] == "path,class,prob_cat,prob_dog"
    folder = runner.invoke(app, ["predict", run, str(tmp_path / "photos"), "--format",
                                 "savedmodel"])
    assert folder.exit_code == 0, folder.output
    assert len(folder.stdout.strip().splitlines()) == 1 + 12


def test_image_folder_without_class_folders(runner, tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(b"")
    config = tiny_config(data={"images": str(tmp_path / "flat")})
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 1
    assert "no class sub-folders" in result.stderr


@pytest.mark.parametrize("loss, classes", [("sparse_categorical_crossentropy", 3), ("mse", None)])
def test_synthetic_data(tmp_path, loss, classes):
    config = tiny_config(data={"synthetic": {"n_samples": 50, "n_features": 5, "n_classes": 3}},
                         compile={"optimizer": "adam", "loss": loss})
    data = load_data(load_config(write_config(tmp_path / "c.yaml", config)))
    assert data.input_shape == (5,)
    assert (len(data.classes) if data.classes else None) == classes


def test_tutorial_random_regression(runner, tmp_path):
    """X = rand(100, 10); y = rand(100, 1), a small ReLU MLP with Adam on MSE."""
    config = tiny_config(data={"synthetic": {"n_samples": 100, "n_features": 10,
                                             "random": True}},
                         model={"layers": [{"Dense": {"units": 16, "activation": "relu"}},
                                           {"Dense": {"units": 1}}]},
                         compile={"optimizer": "adam", "loss": "mse"})
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 0, result.output


# ----------------------------------------------------------------------------- bad data


def test_unknown_target_column_suggests(runner, tmp_path):
    _table(tmp_path)
    config = _table_config(tmp_path)
    config["data"]["target"] = "lable"
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2
    assert "data.target" in result.stderr and "Did you mean 'label'?" in result.stderr


@pytest.mark.parametrize("stream", [False, True])
def test_missing_values_are_counted_in_their_column_and_in_all(runner, tmp_path, stream):
    """'(5 missing in all)' read as five in 'tier'; it counted every column."""
    rows = ["1,low,0", "2,,1", "3,high,0", ",low,1", "5,,0", ",high,1", ",low,0"]
    (tmp_path / "d.csv").write_text("a,tier,y\n" + "\n".join(rows) + "\n")
    config = tiny_config(data={"csv": str(tmp_path / "d.csv"), "target": "y",
                               "categorical": ["tier"], "stream": stream})
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    where = "read, in rows 2 to 8" if stream else "read from the file"
    assert " ".join(result.stderr.split()) == (
        "Error: d.csv: missing value at row 3, column 'tier' (2 missing in this column, 5 in "
        f"all the columns {where}). Set data.missing (drop, zero, mean, median or most_frequent), "
        "or fill the file.")


def test_missing_value_names_row_and_column(runner, tmp_path):
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n3,,1\n5,6,0\n")
    config = tiny_config(data={"csv": str(tmp_path / "d.csv"), "target": "y"})
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2
    assert "missing value at row 3, column 'b'" in result.stderr
    dropped = load_data(load_config(tmp_path / "c.yaml", ["data.missing=drop"]))
    assert dropped.size("train") == 2
    zero = load_data(load_config(tmp_path / "c.yaml", ["data.missing=zero"]))
    assert zero.x["train"][1].tolist() == [3.0, 0.0]


def test_text_in_a_numeric_column(runner, tmp_path):
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n3,oops,1\n")
    config = tiny_config(data={"csv": str(tmp_path / "d.csv"), "target": "y"})
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2
    assert "column 'b' must be numeric; row 3 holds 'oops'" in result.stderr
    assert "data.categorical" in result.stderr


def test_categorical_column_must_be_a_feature(tmp_path):
    _table(tmp_path)
    config = _table_config(tmp_path)
    config["data"]["categorical"] = ["colour"]
    with pytest.raises(ConfigError, match="Did you mean 'color'"):
        load_data(load_config(write_config(tmp_path / "c.yaml", config)))


def test_npz_with_wrong_keys(tmp_path):
    np.savez(tmp_path / "d.npz", inputs=np.zeros((3, 2)))
    config = tiny_config(data={"npz": str(tmp_path / "d.npz")})
    with pytest.raises(DataError, match=r"must hold arrays x and y .* holds \['inputs'\]"):
        load_data(load_config(write_config(tmp_path / "c.yaml", config)))


def test_npz_x_and_y_lengths_differ(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 2)), y=np.zeros(4))
    config = tiny_config(data={"npz": str(tmp_path / "d.npz")})
    with pytest.raises(DataError, match="3 train inputs but 4 labels"):
        load_data(load_config(write_config(tmp_path / "c.yaml", config)))


def test_class_label_unseen_in_training(tmp_path):
    _table(tmp_path)
    frame = pd.read_csv(tmp_path / "train.csv")
    frame.loc[:3, "label"] = "maybe"
    frame.iloc[:5].to_csv(tmp_path / "val.csv", index=False)
    frame.iloc[5:].to_csv(tmp_path / "train.csv", index=False)
    config = _table_config(tmp_path, validation=str(tmp_path / "val.csv"))
    del config["data"]["validation_split"]
    with pytest.raises(DataError, match="labels that training lacks: \\['maybe'\\]"):
        load_data(load_config(write_config(tmp_path / "c.yaml", config)))


def test_npz_source(runner, tmp_path):
    write_npz(tmp_path / "d.npz", n=30)
    config = tiny_config(data={"npz": str(tmp_path / "d.npz"), "test_split": 0.2})
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 0, result.output
    assert "train 24, test 6" in result.stdout
    data = load_data(load_config(tmp_path / "c.yaml"))
    data.rows.write(tmp_path / "split.csv")
    split = pd.read_csv(tmp_path / "split.csv")  # the index in x, and the split
    assert split.columns.tolist() == ["row", "split"] and split["row"].tolist() == \
        list(range(30))
    test = split["row"][split["split"] == "test"].to_numpy()
    assert np.array_equal(data.x["test"], np.load(tmp_path / "d.npz")["x"][test])


def test_a_source_not_split_is_the_training_split_without_a_copy(tmp_path):
    """No split: the training rows are the source's, in order, held once (MNIST: 188 MB less
    and 0.1-0.2 CPU seconds of copying); the labels are the source's too."""
    write_npz(tmp_path / "d.npz", n=30)
    data = load_data(load_config(write_config(tmp_path / "c.yaml", tiny_config(
        data={"npz": str(tmp_path / "d.npz")}))))
    assert data.splits == ["train"]
    assert np.array_equal(data.x["train"], np.load(tmp_path / "d.npz")["x"])
    assert not data.x["train"].flags.owndata  # a view of the loaded array, not a copy


def test_sample_weights_from_a_csv_column(runner, tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.random(40), "b": rng.random(40),
                          "w": np.r_[np.zeros(20), np.ones(20)], "y": rng.integers(0, 2, 40)})
    frame.to_csv(tmp_path / "d.csv", index=False)
    config = tiny_config(data={"csv": str(tmp_path / "d.csv"), "target": "y",
                               "sample_weight": "w", "validation_split": 0.25},
                         model={"layers": [{"Dense": {"units": 2, "activation": "softmax"}}]})
    data = load_data(load_config(write_config(tmp_path / "c.yaml", config)))
    assert "w" not in data.info["features"]
    assert data.x["train"].shape[1] == 2
    assert sorted(np.r_[data.w["train"], data.w["validation"]].tolist()) == \
        sorted(frame["w"].tolist())
    result = runner.invoke(app, ["fit", str(tmp_path / "c.yaml")])
    assert result.exit_code == 0, result.output


def test_npz_parts_must_agree_and_hold_numbers(tmp_path):
    config = tiny_config(data={"npz": str(tmp_path / "d.npz")})
    write_config(tmp_path / "c.yaml", config)
    np.savez(tmp_path / "d.npz", x_train=np.zeros((10, 3)), y_train=np.zeros(10),
             x_test=np.zeros((5, 4)), y_test=np.zeros(5))
    with pytest.raises(DataError, match=r"test inputs of d.npz have shape \[4\] per sample; "
                                        r"the training inputs \[3\]"):
        load_data(load_config(tmp_path / "c.yaml"))
    x = np.zeros((10, 3))
    x[4, 1] = np.nan
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(10))
    with pytest.raises(DataError, match=r"hold nan at index \[4, 1\]"):
        load_data(load_config(tmp_path / "c.yaml"))
    np.save(tmp_path / "d.npy", np.zeros((3, 2)))
    with pytest.raises(DataError, match="holds one array"):
        load_data(load_config(tmp_path / "c.yaml", [f"data.npz={tmp_path / 'd.npy'}"]))


def test_predict_checks_integer_categories_and_empty_files(runner, tmp_path):
    _table(tmp_path)
    config = _table_config(tmp_path)
    config["save"] = {"formats": ["keras"]}
    run = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert run.exit_code == 0, run.output
    (tmp_path / "bad.csv").write_text("color,size,weight\nred,ten,70\n")
    result = runner.invoke(app, ["predict", run.stdout.strip(), str(tmp_path / "bad.csv")])
    assert result.exit_code == 2
    assert "column 'size' must be numeric; row 2 holds 'ten'" in result.stderr
    (tmp_path / "empty.csv").write_text("color,size,weight\n")
    result = runner.invoke(app, ["predict", run.stdout.strip(), str(tmp_path / "empty.csv")])
    assert result.exit_code == 2  # the input must be mended
    assert "empty.csv: no rows to predict (only a header)" in result.stderr


def test_integer_categories_with_empty_cells_stay_integers(runner, tmp_path):
    """pandas reads an int column with a hole as floats; predict must see the same kind."""
    _table(tmp_path)
    frame = pd.read_csv(tmp_path / "train.csv")
    frame.loc[3, "size"] = np.nan
    frame.to_csv(tmp_path / "train.csv", index=False)
    config = _table_config(tmp_path, missing="drop")
    data = load_data(load_config(write_config(tmp_path / "c.yaml", config)))
    assert data.info["columns"]["size"] == "integer"
    assert data.x["train"]["size"].dtype == np.int64
    assert set(data.vocabulary("size")) == {1, 2, 3}


def test_an_integer_label_only_in_test_data_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.random((20, 4)), y_train=rng.integers(0, 3, 20),
             x_test=rng.random((4, 4)), y_test=np.array([0, 1, 2, 7]))
    config = tiny_config(data={"npz": str(tmp_path / "d.npz")})
    with pytest.raises(DataError, match=r"test data has class labels that training lacks: \[7\]"):
        load_data(load_config(write_config(tmp_path / "c.yaml", config)))


@pytest.mark.parametrize("label", [10**6, 2**40])
def test_an_npz_label_far_beyond_the_class_count_is_refused_at_once(runner, tmp_path, label):
    """Labels 0, 1, 2 and 2**40: validate ran for minutes, its memory growing (a set of
    range(2**40 + 1)), to make a model of 2**40 + 1 classes."""
    import time

    import keras  # noqa: F401  (imported before the clock starts, as validate imports it)

    x, y = write_npz(tmp_path / "d.npz", n=20)
    y[5] = label
    np.savez(tmp_path / "d.npz", x=x, y=y)
    config = tiny_config(data={"npz": str(tmp_path / "d.npz")})
    start = time.monotonic()
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert time.monotonic() - start < 20
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert " ".join(result.stderr.split()) == (
        f"Config error: {tmp_path / 'c.yaml'}: data.npz (line 4): expected class labels that "
        "number the classes 0, 1, 2, ... (at most 999 for 4 distinct labels); received label "
        f"{label} in {tmp_path / 'd.npz'}, which would make {label + 1} classes. Number the "
        "classes 0, 1, 2, ... (np.unique(y, return_inverse=True)[1]), or write them as names.")


@pytest.mark.parametrize("stream", [False, True])
def test_an_id_column_as_a_csv_target_is_refused_at_once(runner, tmp_path, stream):
    rows = "".join(f"{i / 10},{100000 + i}\n" for i in range(20))
    (tmp_path / "d.csv").write_text("a,id\n" + rows)
    config = tiny_config(data={"csv": str(tmp_path / "d.csv"), "target": "id",
                               "stream": stream, "validation_split": 0.2})
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert " ".join(result.stderr.split()) == (
        f"Config error: {tmp_path / 'c.yaml'}: data.target (line 5): expected class labels "
        "that number the classes 0, 1, 2, ... (at most 999 for 20 distinct labels); received label 100019 in column 'id' of "
        f"{tmp_path / 'd.csv'}, which would make 100020 classes. If 'id' is not the class, "
        "set data.target to the class column; else number the classes 0, 1, 2, ..., or write "
        "them as names.")


@pytest.mark.parametrize("name", ["x", "y"])
def test_a_complex_npz_array_is_refused_not_cut_to_its_real_part(runner, tmp_path, name):
    x, y = write_npz(tmp_path / "d.npz", n=20)
    arrays = {"x": x, "y": y}
    arrays[name] = arrays[name] + 1j  # an imaginary part that float32 would drop
    np.savez(tmp_path / "d.npz", **arrays)
    config = tiny_config(data={"npz": str(tmp_path / "d.npz")})
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert " ".join(result.stderr.split()) == (
        f"Config error: {tmp_path / 'c.yaml'}: data.npz (line 4): expected arrays of real "
        f"numbers; received array '{name}' of {tmp_path / 'd.npz'}, which holds complex "
        f"numbers ({arrays[name].dtype}). Keep the real part ({name}.real), or give the real "
        f"and imaginary parts as two features (np.concatenate([{name}.real, {name}.imag], "
        "axis=-1)).")


def test_predict_refuses_a_complex_npz_input(runner, tmp_path):
    x, _ = write_npz(tmp_path / "d.npz", n=20)
    config = tiny_config(data={"npz": str(tmp_path / "d.npz")}, save={"formats": ["keras"]},
                         fit={"epochs": 1, "verbose": 0})
    path = write_config(tmp_path / "c.yaml", config)
    assert runner.invoke(app, ["fit", str(path), "--run-dir", "run"]).exit_code == 0
    np.savez(tmp_path / "new.npz", x=x[:3] * 1j)  # complex64
    result = runner.invoke(app, ["predict", "run", str(tmp_path / "new.npz")])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert " ".join(result.stderr.split()).startswith(
        f"Error: INPUT: expected arrays of real numbers; received array 'x' of "
        f"{tmp_path / 'new.npz'}, which holds complex numbers (complex64).")


def test_a_semicolon_file_suggests_the_delimiter(tmp_path):
    (tmp_path / "d.csv").write_text("a;b;y\n1;2;0\n3;4;1\n")
    config = tiny_config(data={"csv": str(tmp_path / "d.csv"), "target": "y"})
    with pytest.raises(ConfigError, match="set data.delimiter: ';'"):
        load_data(load_config(write_config(tmp_path / "c.yaml", config)))


def test_stratify_with_a_one_sample_class(tmp_path):
    (tmp_path / "d.csv").write_text("a,y\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(20))
                                    + "5,c\n")
    config = tiny_config(data={"csv": str(tmp_path / "d.csv"), "target": "y",
                               "test_split": 0.2, "stratify": True})
    with pytest.raises(ConfigError, match=r"class(es)? \['c'\] with 1 sample.*stratify: false"):
        load_data(load_config(write_config(tmp_path / "c.yaml", config)))


def test_a_bare_categorical_model_reads_its_columns_from_the_model(runner, tmp_path):
    _table(tmp_path)
    config = _table_config(tmp_path)
    config["save"] = {"formats": ["keras"]}
    run = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert run.exit_code == 0, run.output
    (tmp_path / "rows.csv").write_text("weight,color,size\n70,red,2\n")
    out = runner.invoke(app, ["predict", f"{run.stdout.strip()}/model.keras",
                              str(tmp_path / "rows.csv")])
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines()[0] == "class,prob_0,prob_1"


def _ab(path, n=40, seed=0, order=("a", "b", "y"), **extra):
    """y = a > b, written with the columns in ``order``."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n).round(3), "b": rng.normal(size=n).round(3)})
    frame["y"] = (frame.a > frame.b).astype(int)
    for k, v in extra.items():
        frame[k] = v
    frame[list(order)].to_csv(path, index=False)
    return frame


@pytest.mark.parametrize("split", ["test", "validation"])
def test_explicit_files_match_columns_by_name(tmp_path, split):
    _ab(tmp_path / "train.csv")
    held = _ab(tmp_path / "held.csv", n=10, seed=1, order=("b", "y", "a"))
    config = tiny_config(data={"csv": str(tmp_path / "train.csv"), "target": "y",
                               "validation_split": 0.0, "test_split": 0.0,
                               split: str(tmp_path / "held.csv")})
    data = load_data(load_config(write_config(tmp_path / "c.yaml", config)))
    np.testing.assert_allclose(data.x[split], held[["a", "b"]].to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(data.y[split], held["y"].to_numpy())


def test_an_explicit_file_with_other_columns_is_refused(tmp_path):
    _ab(tmp_path / "train.csv")
    _ab(tmp_path / "held.csv", n=10, order=("a", "b", "y", "c"), c=1.0)
    config = tiny_config(data={"csv": str(tmp_path / "train.csv"), "target": "y",
                               "test": str(tmp_path / "held.csv"), "test_split": 0.0})
    with pytest.raises(InputError, match=r"held.csv: the columns differ from the training "
                                        r"file's \(unexpected 'c'\)"):
        load_data(load_config(write_config(tmp_path / "c.yaml", config)))


def test_explicit_categorical_file_matches_columns_by_name(tmp_path):
    frame = _table(tmp_path)
    frame[["label", "weight", "size", "color"]].iloc[:10].to_csv(tmp_path / "held.csv",
                                                                 index=False)
    data = load_data(load_config(write_config(tmp_path / "c.yaml", _table_config(
        tmp_path, test=str(tmp_path / "held.csv")))))
    assert list(data.x["test"]) == list(data.x["train"])
    np.testing.assert_array_equal(data.x["test"]["size"][:, 0], frame["size"][:10])


def test_missing_zero_keeps_integer_categories_integers_through_predict(runner, tmp_path):
    """An empty cell in an integer category with missing: zero is the category 0, not text."""
    _table(tmp_path)
    frame = pd.read_csv(tmp_path / "train.csv")
    frame.loc[3, "size"] = np.nan
    frame.loc[5, "color"] = np.nan
    frame.to_csv(tmp_path / "train.csv", index=False)
    config = _table_config(tmp_path, missing="zero")
    config["save"] = {"formats": ["keras"]}
    path = write_config(tmp_path / "c.yaml", config)
    data = load_data(load_config(path))
    assert data.info["columns"] == {"color": "string", "size": "integer", "weight": "numeric"}
    assert data.x["train"]["size"].dtype == np.int64
    assert set(data.vocabulary("size")) <= {0, 1, 2, 3}
    run = runner.invoke(app, ["fit", str(path)])
    assert run.exit_code == 0, run.output
    (tmp_path / "rows.csv").write_text("color,size,weight\nred,1,60\nblue,3,80\ngreen,,70\n"
                                       ",2,70\n")
    result = runner.invoke(app, ["predict", run.stdout.strip(), str(tmp_path / "rows.csv")])
    assert result.exit_code == 0, result.output
    import keras

    model = keras.saving.load_model(f"{run.stdout.strip()}/model.keras")
    inputs = {"color": np.array([["red"], ["blue"], ["green"], [""]], dtype=object),
              "size": np.array([[1], [3], [0], [2]], dtype="int64"),
              "weight": np.array([[60.0], [80.0], [70.0], [70.0]], dtype="float32")}
    expected = model.predict(pipeline.dataset(inputs), verbose=0)
    probs = np.array([[float(v) for v in line.split(",")[1:]]
                      for line in result.stdout.strip().splitlines()[1:]])
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_category_values_never_share_the_out_of_vocabulary_token(runner, tmp_path):
    """-1, '[UNK]' and '' are real categories: each differs from an unseen value, in every
    save format and at predict."""
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({"code": rng.choice([-1, 1, 2], n),
                          "tag": rng.choice(["[UNK]", "", "a"], n), "y": rng.integers(0, 2, n)})
    frame.to_csv(tmp_path / "train.csv", index=False)
    config = tiny_config(data={"csv": str(tmp_path / "train.csv"), "target": "y",
                               "categorical": ["code", "tag"], "missing": "zero",
                               "validation_split": 0.0, "test_split": 0.0},
                         model={"layers": [{"Dense": {"units": 2, "activation": "softmax"}}]},
                         save={"formats": ["keras", "json", "savedmodel"]})
    run = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert run.exit_code == 0, run.output
    import keras

    model = keras.saving.load_model(f"{run.stdout.strip()}/model.keras")
    rows = {"code": np.array([[-1], [99], [1]]), "tag": np.array([["[UNK]"], ["zz"], [""]])}
    encoded = {c: np.asarray(model.get_layer(f"encode_{c}")(rows[c])) for c in rows}
    for column, hot in encoded.items():  # each row its own one-hot position
        assert len({int(i) for i in hot.argmax(axis=1)}) == 3, (column, hot)
    (tmp_path / "rows.csv").write_text('code,tag\n-1,[UNK]\n99,zz\n1,""\n')
    outputs = []
    for fmt in ("keras", "json", "savedmodel"):
        result = runner.invoke(app, ["predict", run.stdout.strip(), str(tmp_path / "rows.csv"),
                                     "--format", fmt])
        assert result.exit_code == 0, result.output
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] == outputs[2]


@pytest.mark.parametrize("value", ["inf", "-inf", "1e308"])
def test_non_finite_csv_values_are_refused_with_file_row_and_column(runner, tmp_path, value):
    _ab(tmp_path / "train.csv")
    text = (tmp_path / "train.csv").read_text().splitlines()
    text[4] = f"{value},0.5,1"
    (tmp_path / "train.csv").write_text("\n".join(text) + "\n")
    config = tiny_config(data={"csv": str(tmp_path / "train.csv"), "target": "y"})
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert isinstance(result.exception, SystemExit)
    assert result.exit_code == 2
    shown = {"1e308": "1e+308"}.get(value, value)  # as Python writes the number
    assert f"train.csv: column 'a' row 5 holds {shown}, which is not a finite 32-bit " \
           "number" in result.stderr


@pytest.mark.parametrize("where", ["test", "weight", "target", "stream"])
def test_non_finite_values_in_every_csv_column_kind(runner, tmp_path, where):
    _ab(tmp_path / "train.csv", order=("a", "b", "y", "w"), w=1.0)
    data = {"csv": str(tmp_path / "train.csv"), "target": "y", "sample_weight": "w"}
    file, column = "train.csv", {"weight": "w", "target": "y", "stream": "b"}.get(where)
    if where == "test":
        _ab(tmp_path / "held.csv", n=5, order=("a", "b", "y", "w"), w=1.0)
        lines = (tmp_path / "held.csv").read_text().splitlines()
        lines[2] = "0.1,inf,1,1.0"
        (tmp_path / "held.csv").write_text("\n".join(lines) + "\n")
        data.update(test=str(tmp_path / "held.csv"), test_split=0.0)
        file, column = "held.csv", "b"
    else:
        lines = (tmp_path / "train.csv").read_text().splitlines()
        cells = lines[2].split(",")
        cells[{"w": 3, "y": 2, "b": 1}[column]] = "inf"
        lines[2] = ",".join(cells)
        (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    if where == "target":
        data["target"], data["sample_weight"] = "y", None
        config = tiny_config(data=data, compile={"optimizer": "adam", "loss": "mse"},
                             model={"layers": [{"Dense": {"units": 1}}]})
    else:
        config = tiny_config(data={**data, "stream": where == "stream",
                                   "test_split": 0.0 if where == "test" else 0.2},
                             model={"layers": [{"Dense": {"units": 2,
                                                          "activation": "softmax"}}]})
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert isinstance(result.exception, SystemExit)
    assert result.exit_code == 2, result.output
    assert f"{file}: column '{column}' row 3 holds inf" in result.stderr


def test_awkward_categorical_column_names_work_in_every_format(runner, tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    names = ["my col", "a/b", "héllo", "1st", "a_b", "features"]
    frame = pd.DataFrame({name: rng.choice(["p", "q", "r"], n) for name in names})
    frame["x.y"] = rng.normal(size=n)
    frame["y"] = rng.integers(0, 2, n)
    frame.to_csv(tmp_path / "train.csv", index=False)
    config = tiny_config(data={"csv": str(tmp_path / "train.csv"), "target": "y",
                               "categorical": names, "normalize": True},
                         model={"layers": [{"Dense": {"units": 2, "activation": "softmax"}}]},
                         save={"formats": ["keras", "json", "savedmodel"]})
    run = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert run.exception is None or isinstance(run.exception, SystemExit)
    assert run.exit_code == 0, run.output
    assert "UserWarning" not in run.output
    frame.drop(columns="y").iloc[:5].to_csv(tmp_path / "rows.csv", index=False)
    outputs = []
    for fmt in ("keras", "json", "savedmodel"):
        result = runner.invoke(app, ["predict", run.stdout.strip(), str(tmp_path / "rows.csv"),
                                     "--format", fmt])
        assert result.exit_code == 0, result.output
        assert "UserWarning" not in result.output
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] == outputs[2]
    assert len(outputs[0].strip().splitlines()) == 6


def test_input_names_are_chosen_once_for_every_format():
    """Each name is one TensorFlow keeps as it is (its spec names: lowercase letters, digits
    and _, starting with a letter; so tf2onnx's ONNX inputs are the same names), a Python
    parameter name (a SavedModel's signature: no keyword), unique, and none of the model's
    own layer names."""
    import keyword

    from tensorflow.python.framework.tensor import sanitize_spec_name

    from nettrain.data.columns import input_names

    columns = ["class", "def", "2nd", "Origin", "naïve col", "origin", "ORIGIN", "a b", "a_b",
               "features", "価格", "値", "my.col", "my-col", "_x", "lambda"]
    names = input_names(columns)
    assert list(names) == columns
    assert len(set(names.values())) == len(columns)
    for name in names.values():
        assert sanitize_spec_name(name) == name and name.isascii() and name.isidentifier()
        assert not keyword.iskeyword(name)
        assert name not in ("features", "numeric_inputs", "normalize_input", "layers")
    assert {c: names[c] for c in ["class", "def", "2nd", "Origin", "naïve col", "origin"]} == {
        "class": "class_", "def": "def_", "2nd": "c2nd", "Origin": "origin",
        "naïve col": "naive_col", "origin": "origin_2"}


def test_a_run_keeps_the_input_names_it_recorded(tmp_path):
    """The names are read from the run (dataset.json model_inputs), never chosen again: a
    run recorded before model_inputs (its model takes 'Origin' and 'my col' as 'Origin' and
    'my_col', the rule of its time) reads its data again by those names, so evaluate,
    resume and export feed its model what it takes; a new run chooses today's names."""
    from nettrain.data.columns import names_of

    frame = pd.DataFrame({"Origin": ["usa", "japan"] * 10, "my col": np.arange(20.0),
                          "y": [0, 1] * 10})
    frame.to_csv(tmp_path / "t.csv", index=False)
    config = load_config(write_config(tmp_path / "c.yaml", tiny_config(data={
        "csv": str(tmp_path / "t.csv"), "target": "y", "categorical": ["Origin"]})))
    new = load_data(config)
    assert sorted(new.x["train"]) == ["my_col", "origin"]
    assert names_of(new.describe()) == {"Origin": "origin", "my col": "my_col"}
    old = {k: v for k, v in new.describe().items() if k != "model_inputs"}
    assert names_of(old) == {"Origin": "Origin", "my col": "my_col"}
    again = load_data(config, old)
    assert sorted(again.x["train"]) == ["Origin", "my_col"]
    assert again.describe()["model_inputs"]["Origin"]["column"] == "Origin"
    recorded = {**old, "model_inputs": {"o": {"column": "Origin"}, "m": {"column": "my col"}}}
    assert sorted(load_data(config, recorded).x["train"]) == ["m", "o"]


def _corrupt(path):
    path.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")


def test_a_corrupt_image_in_a_class_folder_is_named(runner, tmp_path):
    _images(tmp_path / "photos")
    _corrupt(tmp_path / "photos" / "dog" / "3.png")
    config = tiny_config(data={"images": str(tmp_path / "photos"), "image_size": [8, 8]},
                         model={"layers": ["Flatten",
                                           {"Dense": {"units": 2, "activation": "softmax"}}]})
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert isinstance(result.exception, SystemExit)
    assert result.exit_code == 1
    assert f"cannot decode the image {tmp_path / 'photos' / 'dog' / '3.png'}" in result.stderr
    assert "InvalidArgumentError" not in result.stderr
    assert "Remove or replace the file" in result.stderr


def test_a_corrupt_image_given_to_predict_is_named(runner, tmp_path):
    _images(tmp_path / "photos")
    config = tiny_config(data={"images": str(tmp_path / "photos"), "image_size": [8, 8],
                               "validation_split": 0.25},
                         model={"layers": ["Flatten",
                                           {"Dense": {"units": 2, "activation": "softmax"}}]},
                         save={"formats": ["keras"]})
    fit = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert fit.exit_code == 0, fit.output
    (tmp_path / "new").mkdir()
    _corrupt(tmp_path / "new" / "bad.png")
    for target in (tmp_path / "new" / "bad.png", tmp_path / "new"):
        result = runner.invoke(app, ["predict", fit.stdout.strip(), str(target)])
        assert isinstance(result.exception, SystemExit)
        assert result.exit_code == 1
        assert f"cannot decode the image {tmp_path / 'new' / 'bad.png'}" in result.stderr
        assert "InvalidArgumentError" not in result.stderr


def test_non_finite_npz_labels_are_refused(tmp_path):
    x, _ = write_npz(tmp_path / "d.npz", n=20)
    y = np.linspace(0, 1, 20)
    y[7] = np.inf
    np.savez(tmp_path / "d.npz", x=x, y=y)
    config = tiny_config(data={"npz": str(tmp_path / "d.npz")},
                         compile={"optimizer": "adam", "loss": "mse"},
                         model={"layers": [{"Dense": {"units": 1}}]})
    with pytest.raises(DataError, match=r"the train labels of d.npz hold inf at index \[7\]"):
        load_data(load_config(write_config(tmp_path / "c.yaml", config)))


def test_the_images_under_a_folder_are_each_read_once_whatever_its_links(tmp_path):
    """predict's folder: links to folders are followed, but a folder reached again (a link to
    itself, to a folder above, a second link to one folder) is not read again. Two such loops
    made predict run without end."""
    from nettrain.data.sources import images_under

    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    for name in ("in/b.png", "in/sub/a.JPG", "in/notes.txt", "elsewhere/c.png"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "in" / "sub" / "self").symlink_to(".")
    (tmp_path / "in" / "sub" / "up").symlink_to("..")
    (tmp_path / "in" / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "in" / "linked-again").symlink_to(tmp_path / "elsewhere")
    found = [p.relative_to(tmp_path / "in").as_posix() for p in images_under(tmp_path / "in")]
    assert found == ["b.png", "linked/c.png", "sub/a.JPG"]


def test_whole_numbers_past_64_bits_are_not_whole_numbers():
    """A cell past int64 (pandas reads it as uint64) stays text, never wraps to -2**63."""
    import pandas as pd

    from nettrain.data.tabular import whole_numbers

    assert whole_numbers(pd.Series(["9223372036854775808", "1"])) is None
    assert whole_numbers(pd.Series(["18446744073709551616", "1"])) is None
    assert whole_numbers(pd.Series(["9223372036854775807", "-3"])).tolist() == [2**63 - 1, -3]
