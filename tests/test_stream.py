"""A CSV streamed in chunks trains, evaluates and predicts like one loaded whole."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nettrain.data import stream
from nettrain.cli import app
from nettrain.config.load import load_config
from nettrain.data.loading import load_data
from nettrain.errors import ConfigError, DataError

from conftest import tiny_config, write_config


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(stream, "CHUNK_ROWS", 37)  # batches cross chunk borders


def _csv(tmp_path, n=300):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n), rng.normal(size=n)
    kind = rng.choice(["x", "y"], n)
    label = np.where(a + b > 0, "pos", "neg")
    pd.DataFrame({"a": a, "b": b, "kind": kind, "label": label}).to_csv(tmp_path / "big.csv",
                                                                         index=False)


def _config(tmp_path, **data):
    return tiny_config(data={"csv": str(tmp_path / "big.csv"), "target": "label",
                             "stream": True, "validation_split": 0.2, "test_split": 0.2,
                             "normalize": True, "features": ["a", "b"], **data},
                       model={"layers": [{"Dense": {"units": 2, "activation": "softmax"}}]},
                       fit={"epochs": 2, "batch_size": 16, "verbose": 0})


def test_split_is_stable_and_close_to_the_fractions(tmp_path):
    _csv(tmp_path)
    data = load_data(load_config(write_config(tmp_path / "c.yaml", _config(tmp_path))))
    assert sum(data.stream.counts.values()) == 300
    assert 40 <= data.size("test") <= 80 and 40 <= data.size("validation") <= 80
    assert data.classes == ["neg", "pos"]
    again = load_data(load_config(tmp_path / "c.yaml"))
    assert again.stream.counts == data.stream.counts
    batches = list(data.stream.batches("train", 16))
    assert sum(len(b[1]) for b in batches) == data.size("train")
    assert all(len(b[1]) == 16 for b in batches[:-1])


def test_streamed_fit_evaluate_predict(runner, tmp_path):
    _csv(tmp_path)
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml",
                                                         _config(tmp_path)))])
    assert result.exit_code == 0, result.output
    run = tmp_path / result.stdout.strip()
    info = json.loads((run / "dataset.json").read_text())
    assert info["streamed"] and info["classes"] == ["neg", "pos"]
    fitted = json.loads((run / "metrics.json").read_text())["test"]
    ev = runner.invoke(app, ["evaluate", str(run)])
    assert ev.exit_code == 0, ev.output
    evaluated = json.loads((run / "evaluation.json").read_text())["test"]["metrics"]
    assert evaluated["loss"] == pytest.approx(fitted["loss"], rel=1e-5)
    pd.DataFrame({"a": [2.0, -2.0], "b": [1.0, -1.0]}).to_csv(tmp_path / "new.csv", index=False)
    out = runner.invoke(app, ["predict", str(run), str(tmp_path / "new.csv")])
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines()[0] == "class,prob_neg,prob_pos"


def test_streamed_categorical_columns(runner, tmp_path):
    _csv(tmp_path)
    config = _config(tmp_path, features=["a", "b", "kind"], categorical=["kind"])
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 0, result.output


def test_normalization_adapts_on_the_streamed_training_rows(tmp_path):
    from nettrain.engine import train

    _csv(tmp_path)
    config = load_config(write_config(tmp_path / "c.yaml", _config(tmp_path)))
    prepared = train.prepare(config)
    rows = np.concatenate([x for x, _, _ in prepared.data.stream.arrays("train")])
    mean = np.asarray(prepared.model.get_layer("normalize_input").mean).reshape(-1)
    np.testing.assert_allclose(mean, rows.mean(axis=0), rtol=1e-4, atol=1e-6)


def test_bad_value_deep_in_a_streamed_file_names_its_row(tmp_path):
    _csv(tmp_path)
    lines = (tmp_path / "big.csv").read_text().splitlines()
    parts = lines[200].split(",")
    parts[1] = ""
    lines[200] = ",".join(parts)
    (tmp_path / "big.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="missing value at row 201, column 'b'"):
        load_data(load_config(write_config(tmp_path / "c.yaml", _config(tmp_path))))


def test_stratify_is_refused_when_streaming(tmp_path):
    _csv(tmp_path)
    with pytest.raises(ConfigError, match="no stratify with a streamed CSV"):
        load_data(load_config(write_config(tmp_path / "c.yaml",
                                           _config(tmp_path, stratify=True))))


def test_a_bad_value_fails_validation_not_the_end_of_training(runner, tmp_path):
    _csv(tmp_path)
    lines = (tmp_path / "big.csv").read_text().splitlines()
    parts = lines[250].split(",")
    parts[0] = "abc"
    lines[250] = ",".join(parts)
    (tmp_path / "big.csv").write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml",
                                                              _config(tmp_path)))])
    assert result.exit_code == 2
    assert "column 'a' must be numeric; row 251 holds 'abc'" in result.stderr


def test_streamed_integer_categories_with_empty_cells_stay_integers(tmp_path):
    """missing: zero fills a whole-number category with 0; its vocabulary holds integers."""
    rng = np.random.default_rng(0)
    size = rng.choice([1, 2, 3], 300).astype(object)
    size[[5, 100, 250]] = None
    pd.DataFrame({"a": rng.normal(size=300), "size": size,
                  "label": rng.choice(["neg", "pos"], 300)}).to_csv(tmp_path / "big.csv",
                                                                   index=False)
    config = _config(tmp_path, features=["a", "size"], categorical=["size"], missing="zero")
    data = load_data(load_config(write_config(tmp_path / "c.yaml", config)))
    assert data.columns == {"a": "numeric", "size": "integer"}
    assert data.vocabulary("size") == [0, 1, 2, 3]
    assert all(type(v) is int for v in data.vocabulary("size"))
