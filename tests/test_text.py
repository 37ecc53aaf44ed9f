"""data.text: free-text CSV columns, vectorised inside the model by a TextVectorization adapted
on the training split only, so predict, evaluate --data, serve (REST and gRPC) and the saved
model take raw text; the backend policy and the export formats say what can run it.

One tiny run for the module (text beside a numeric and a categorical column); the rest are
checks of the config, the policy and the formats without training."""

from __future__ import annotations

import csv
import io
import threading

import numpy as np
import pandas as pd
import pytest

from nettrain.backends import select
from nettrain.cli import app
from nettrain.config.load import load_config
from nettrain.config.textcols import TextColumn, text_columns
from nettrain.errors import ConfigError, UsageError
from nettrain.export.formats import FORMATS, cannot_carry

from conftest import fit_once, tiny_config, write_config

GOOD, BAD = "good great lovely superb fine".split(), "bad awful dull poor boring".split()


def _reviews(path, n: int = 48) -> None:
    """``n`` rows: a review (each with a word of its own, ``wN``, so the vocabulary tells
    which rows it was learned on), stars (numbers), genre (categories) and the label."""
    rng = np.random.default_rng(0)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["review", "stars", "genre", "label"])
        for i in range(n):
            pos = i % 2 == 0
            words = [*rng.choice(GOOD if pos else BAD, 2), "the", "film", f"w{i}"]
            out.writerow([f"{' '.join(words).capitalize()}!", int(rng.integers(1, 6)),
                          rng.choice(["drama", "comedy"]), "pos" if pos else "neg"])


def _config(csv_path, **data) -> dict:
    return tiny_config(
        name="reviews",
        data={"csv": str(csv_path), "target": "label", "text": ["review"],
              "categorical": ["genre"], "validation_split": 0.25, "test_split": 0.25, **data},
        model={"layers": [{"Dense": {"units": 2, "activation": "softmax"}}]},
        fit={"epochs": 1, "batch_size": 16, "verbose": 0})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    _reviews(folder / "reviews.csv")
    return fit_once(folder, _config(folder / "reviews.csv"))


@pytest.fixture(scope="module")
def model(run):
    import keras

    return keras.saving.load_model(run / "model.keras")


def test_the_vocabulary_is_learned_on_the_training_rows_only(run, model):
    split = pd.read_csv(run / "split.csv")
    words = {t for t in model.get_layer("encode_review").get_vocabulary() if t[1:].isdigit()}
    assert words == {f"w{row}" for row in split.loc[split["split"] == "train", "row"]}
    assert split["split"].nunique() == 3  # rows held out, and none of their words learned


def test_predict_evaluate_and_the_saved_model_take_raw_text(runner, run, model, tmp_path):
    import tensorflow as tf

    rows = pd.DataFrame({"review": ["A GOOD, lovely film", "dull and awful"], "stars": [4, 1],
                         "genre": ["drama", "western"]})  # 'western': unseen
    rows.to_csv(tmp_path / "rows.csv", index=False)
    result = runner.invoke(app, ["predict", str(run), str(tmp_path / "rows.csv")])
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(io.StringIO(result.stdout))
    assert model.get_layer("review").dtype == "string"  # the raw text, not token ids
    direct = model.predict({"review": tf.constant(rows[["review"]].to_numpy().astype(str)),
                            "stars": rows[["stars"]].to_numpy("float32"),
                            "genre": tf.constant(rows[["genre"]].to_numpy().astype(str))},
                           verbose=0)
    np.testing.assert_allclose(predicted[["prob_neg", "prob_pos"]], direct, atol=1e-6)
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(run.parent / "reviews.csv")])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout


def test_serve_takes_raw_text_over_rest_and_grpc(runner, run):
    from test_serve import _free_port, _grpc_predict, _http, _stub, _wait

    from nettrain.serve.model import Served
    from nettrain.serve.server import Options, serve

    row = {"review": "A lovely film", "stars": 5, "genre": "drama"}
    port, grpc_port, stopped = _free_port(), _free_port(), []
    options = Options(port=port, grpc_port=grpc_port, max_connections=4, timeout=60)
    thread = threading.Thread(target=serve, args=(Served(run, None, window_ms=1, max_rows=8),
                                                  options, stopped.append), daemon=True)
    thread.start()
    try:
        _wait(f"http://127.0.0.1:{port}/health")
        status, answer = _http("POST", f"http://127.0.0.1:{port}/v1/models/reviews:predict",
                               {"instances": [row]})
        assert status == 200, answer
        out = _grpc_predict(_stub(f"127.0.0.1:{grpc_port}"), "reviews", {
            "review": [[row["review"]]], "genre": [[row["genre"]]],
            "stars": np.array([[row["stars"]]], dtype="float32")})
        np.testing.assert_allclose(out, answer["predictions"], atol=1e-6)
    finally:
        if stopped:
            stopped[0]()
        thread.join(60)


def test_validate_says_where_a_text_model_runs(runner, run):
    result = runner.invoke(app, ["validate", str(run / "config.yaml")])
    assert result.exit_code == 0, result.output
    assert "review: string (column 'review', raw text)" in result.stdout
    assert "It runs on tensorflow only; export formats that take raw text: savedmodel, keras " \
        "(not onnx, tflite)." in result.stdout


def test_auto_never_picks_a_backend_that_cannot_run_text(tmp_path, monkeypatch):
    cfg = load_config(write_config(tmp_path / "c.yaml", _config(tmp_path / "r.csv",
                                                                categorical=None)))
    monkeypatch.setattr(select, "loaded", lambda: None)  # as in a new process
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.delenv(select.WHY_VARIABLE, raising=False)
    for loading in (False, True):  # fit; predict, serve, evaluate
        assert select.choose(cfg, loading=loading).name == "tensorflow"  # jax from the env
        assert [key for key, _ in select.cannot_run(cfg, "jax", loading)] == ["data.text"]
    with pytest.raises(UsageError) as refused:
        select.choose(cfg, "jax")
    assert "--backend" in str(refused.value) and "at data.text" in str(refused.value)


def test_validate_with_backend_jax_is_a_clear_exit_2(runner, tmp_path, run):
    result = runner.invoke(app, ["validate", str(run / "config.yaml"), "--backend", "jax"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)  # told, not raised
    assert "TextVectorization" in result.output


def test_onnx_and_tflite_refuse_a_text_model_before_converting(run):
    import json

    info = json.loads((run / "dataset.json").read_text())
    assert info["columns"] == {"review": "text", "stars": "numeric", "genre": "string"}
    assert cannot_carry(FORMATS["savedmodel"], info) is None
    assert cannot_carry(FORMATS["keras"], info) is None
    for fmt in ("onnx", "tflite"):
        assert "the text column review is vectorised inside the model" in \
            cannot_carry(FORMATS[fmt], info)


def test_token_ids_start_an_embedding_stack(runner, tmp_path):
    _reviews(tmp_path / "r.csv")
    config = _config(tmp_path / "r.csv", features=[], categorical=None, text=[
        {"review": {"output_mode": "int", "sequence_length": 6, "max_tokens": 100}}])
    config["model"]["layers"] = [{"Embedding": {"input_dim": 100, "output_dim": 4}},
                                 {"Conv1D": {"filters": 4, "kernel_size": 2}},
                                 {"LSTM": {"units": 4, "return_sequences": True}},
                                 "GlobalAveragePooling1D", *config["model"]["layers"]]
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 0, result.output
    assert "(None, 6)" in result.stdout  # [rows, sequence_length] token ids
    config["data"]["features"] = ["stars"]  # beside stars: a sequence joins no other column
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)  # told, not raised
    assert "data.text (line 6): expected output_mode: int (token ids for Embedding, LSTM, " \
        "Conv1D) on the model's only input" in result.output
    assert "beside 'stars'. Use output_mode multi_hot or tf_idf" in result.output


def test_every_mistake_in_data_text_is_reported_at_once(tmp_path):
    config = _config(tmp_path / "r.csv", features=["review", "stars"], categorical=["review"],
                     missing={"review": "median"}, text=[
                         {"review": {"max_tokns": 10, "output_mode": "multihot",
                                     "sequence_length": 5, "standardize": "lowr"}}, 7])
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path / "c.yaml", config))
    text = str(info.value)
    assert "data.text[0].review.max_tokns" in text and "Did you mean 'max_tokens'?" in text
    assert "data.text[0].review.output_mode" in text and "Did you mean 'multi_hot'?" in text
    assert "sequence_length only with output_mode: int" in text
    assert "Did you mean 'lower'?" in text
    assert "data.text[1] (line 12): expected a column name, or a one-key mapping" in text
    config["data"]["text"] = ["review"]
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path / "c.yaml", config))
    text = str(info.value)
    assert "4 problems" in text
    assert "Remove 'review' from data.features" in text
    assert "Remove 'review' from data.categorical or from data.text" in text
    assert "median needs numbers" in text


def test_a_column_of_numbers_declared_text_and_a_stream_are_exit_2(runner, tmp_path):
    _reviews(tmp_path / "r.csv")
    path = write_config(tmp_path / "c.yaml", _config(tmp_path / "r.csv", text=["stars"]))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)  # told, not raised
    assert "data.text (line 6): expected columns of words" in result.output
    assert "'stars', whose cells are all numbers" in result.output
    path = write_config(tmp_path / "c.yaml", _config(tmp_path / "r.csv", stream=True))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "no stream with data.text" in result.output


def test_text_columns_read_the_options_with_their_defaults():
    assert text_columns(["a", {"b": {"output_mode": "int"}}, {"c": None}]) == {
        "a": TextColumn(), "b": TextColumn(output_mode="int", sequence_length=200),
        "c": TextColumn()}
