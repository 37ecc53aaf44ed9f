"""Each save format reloads, in nettrain and in plain Keras, and predicts the same."""

from __future__ import annotations

import io
import json

import keras
import numpy as np
import pandas as pd
import pytest

from nettrain.cli import app

from conftest import fit_once, tiny_config, write_config


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    """One normalized iris run saved in all three formats."""
    config = tiny_config(save={"formats": ["json", "keras", "savedmodel"]})
    config["data"]["normalize"] = True
    config["fit"]["epochs"] = 5
    return fit_once(tmp_path_factory.mktemp("formats"), config)


def _iris_rows(path, n=6):
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.frame.drop(columns=["target"]).iloc[::25][:n]
    frame.to_csv(path, index=False)
    return frame.to_numpy(dtype="float32")


def test_all_formats_are_written(iris_run):
    names = {p.name for p in iris_run.iterdir()}
    assert {"model.json", "model.weights.h5", "model.keras", "saved_model"} <= names
    assert not [n for n in names if n.startswith(".")]  # no temporary leftovers


@pytest.mark.parametrize("fmt", ["keras", "json", "savedmodel"])
def test_evaluate_each_format_gives_the_fit_metrics(runner, iris_run, fmt):
    result = runner.invoke(app, ["evaluate", str(iris_run), "--format", fmt])
    assert result.exit_code == 0, result.output
    fitted = json.loads((iris_run / "metrics.json").read_text())["test"]
    evaluated = json.loads((iris_run / "evaluation.json").read_text())["test"]
    assert evaluated["format"] == fmt
    assert evaluated["metrics"]["accuracy"] == pytest.approx(fitted["accuracy"])
    assert evaluated["metrics"]["loss"] == pytest.approx(fitted["loss"], rel=1e-4)


def test_predict_is_the_same_in_every_format(runner, iris_run, tmp_path):
    rows = _iris_rows(tmp_path / "rows.csv")
    frames = {}
    for fmt in ("keras", "json", "savedmodel"):
        out = tmp_path / f"{fmt}.csv"
        result = runner.invoke(app, ["predict", str(iris_run), str(tmp_path / "rows.csv"),
                                     "--format", fmt, "--output", str(out)])
        assert result.exit_code == 0, result.output
        frames[fmt] = pd.read_csv(out)
    keras_frame = frames["keras"]
    assert list(keras_frame.columns) == ["class", "prob_setosa", "prob_versicolor",
                                         "prob_virginica"]
    assert len(keras_frame) == len(rows)
    assert set(keras_frame["class"]) <= {"setosa", "versicolor", "virginica"}
    for other in ("json", "savedmodel"):
        pd.testing.assert_frame_equal(keras_frame, frames[other], atol=1e-5)
    # the same as the model in memory would answer: plain Keras on the raw rows
    model = keras.saving.load_model(iris_run / "model.keras")
    expected = model.predict(rows, verbose=0)
    np.testing.assert_allclose(keras_frame.iloc[:, 1:].to_numpy(), expected, atol=1e-5)


def test_plain_keras_and_tensorflow_load_what_was_saved(iris_run):
    import tensorflow as tf

    x = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype="float32")
    a = keras.saving.load_model(iris_run / "model.keras").predict(x, verbose=0)
    model = keras.models.model_from_json((iris_run / "model.json").read_text())
    model.load_weights(iris_run / "model.weights.h5")
    b = model.predict(x, verbose=0)
    loaded = tf.saved_model.load(str(iris_run / "saved_model"))
    c = loaded.serve(tf.constant(x)).numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a, c, atol=1e-5)


def test_predict_rejects_columns_that_differ(runner, iris_run, tmp_path):
    frame = pd.DataFrame({"sepal length (cm)": [5.0], "petal width": [0.2]})
    frame.to_csv(tmp_path / "bad.csv", index=False)
    result = runner.invoke(app, ["predict", str(iris_run), str(tmp_path / "bad.csv")])
    assert result.exit_code == 2  # the input does not match the model
    assert "missing 'sepal width (cm)'" in result.stderr
    assert "'petal width' is not read" in result.stderr


def test_predict_rejects_a_wrong_shape(runner, iris_run, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 5), dtype="float32"))
    result = runner.invoke(app, ["predict", str(iris_run), str(tmp_path / "x.npy")])
    assert result.exit_code == 2  # the input does not match the model, as at evaluate --data
    assert "shape [5] per sample; the model takes [4]" in result.stderr


def test_predict_ignores_the_target_column_and_takes_a_model_file(runner, iris_run, tmp_path):
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True).frame.head(3)
    iris.to_csv(tmp_path / "with_target.csv", index=False)
    result = runner.invoke(app, ["predict", str(iris_run), str(tmp_path / "with_target.csv")])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("class,prob_setosa")
    # a bare .keras file: no class names travel, so classes are numbered
    iris.drop(columns=["target"]).to_csv(tmp_path / "rows.csv", index=False)
    result = runner.invoke(app, ["predict", str(iris_run / "model.keras"),
                                 str(tmp_path / "rows.csv")])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "class,prob_0,prob_1,prob_2"


def test_a_format_that_reloads_differently_is_not_saved(tmp_path):
    from nettrain.model import saving
    from nettrain.errors import RunError

    def dense(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

    sample = np.ones((4, 3), dtype="float32")
    saving.save_model(dense(1), tmp_path, ["keras"], sample=sample)  # reloads the same: saved
    assert (tmp_path / "model.keras").is_file()
    with pytest.raises(RunError, match="predicts differently after reloading"):
        saving._check_reload(dense(2), tmp_path, "keras", sample, {})


def test_a_saved_model_folder_predicts_on_its_own(runner, iris_run, tmp_path):
    rows = _iris_rows(tmp_path / "rows.csv")
    np.save(tmp_path / "rows.npy", rows)
    result = runner.invoke(app, ["predict", str(iris_run / "saved_model"),
                                 str(tmp_path / "rows.npy"), "--format", "savedmodel"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "class,prob_0,prob_1,prob_2"


def test_from_logits_classifiers_predict_probabilities(runner, tmp_path):
    config = tiny_config(compile={"optimizer": "adam", "loss": {
        "SparseCategoricalCrossentropy": {"from_logits": True}}})
    config["model"]["layers"][-1]["Dense"].pop("activation")
    run = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert run.exit_code == 0, run.output
    rows = _iris_rows(tmp_path / "rows.csv")
    result = runner.invoke(app, ["predict", run.stdout.strip(), str(tmp_path / "rows.csv")])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.stdout))
    probs = frame.iloc[:, 1:].to_numpy()
    assert len(probs) == len(rows) and (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_saving_again_replaces_a_saved_model_folder(tmp_path):
    """A resumed run saves into a directory that already holds saved_model/."""
    from nettrain.model import saving

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    sample = np.ones((2, 3), dtype="float32")
    info = {"input_shape": [3]}
    saving.save_model(model, tmp_path, ["savedmodel", "json"], sample=sample, info=info)
    model.layers[0].kernel.assign(np.zeros((3, 2), dtype="float32"))
    saving.save_model(model, tmp_path, ["savedmodel", "json"], sample=sample, info=info)
    reloaded, _ = saving.load_model(tmp_path, "savedmodel", info)
    assert np.allclose(np.asarray(reloaded(sample)), 0.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.json", "model.weights.h5", "saved_model"]


def test_a_format_that_does_not_reload_is_not_called_damaged(tmp_path):
    """The reload check at save time reports the format, not a damaged temporary file."""
    from nettrain.model import saving
    from nettrain.errors import RunError

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    sample = np.ones((2, 3), dtype="float32")
    (tmp_path / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(RunError, match=r"^The keras format of this model does not reload "
                                       r"\(not a whole \.keras archive\); it was not saved"):
        saving._check_reload(model, tmp_path, "keras", sample, {})


def test_saving_flushes_its_own_files_only(tmp_path, monkeypatch):
    """Saving a model flushes what it writes and the run directory's entries, never the run's
    other files: those may be written at the same time (history.png is drawn while the model
    is saved) and vanish under it (a sweep trial failed with "No such file or directory:
    .history.png.<tmp>.png"), and flushing every checkpoint again at each save costs time."""
    import builtins

    from nettrain.model import saving

    (tmp_path / "history.csv").write_text("epoch,loss\n0,1.0\n")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.keras").write_bytes(b"a checkpoint")
    opened: list[str] = []

    def recording_open(file, *args, **kwargs):
        opened.append(str(file))
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(saving, "open", recording_open, raising=False)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    saving.save_model(model, tmp_path, ["keras", "json"], sample=np.ones((4, 3), "float32"))
    assert (tmp_path / "model.keras").is_file() and (tmp_path / "model.json").is_file()
    others = [f for f in opened if "history.csv" in f or "last.keras" in f]
    assert others == [], others
