"""Config loading and validation: no Keras needed, every mistake reported at once."""

from __future__ import annotations

import pytest

from nettrain.config import apply_override, load_config, parse_override
from nettrain.errors import ConfigError

from conftest import tiny_config, write_config


def test_loads_a_valid_config_with_defaults(tmp_path):
    cfg = load_config(write_config(tmp_path / "c.yaml", tiny_config()))
    assert cfg.name == "tiny"
    assert cfg.data.source == "dataset"
    assert cfg.save.formats == ["keras"]
    assert cfg.is_classifier


def test_name_defaults_to_the_file_name(tmp_path):
    config = tiny_config()
    del config["name"]
    cfg = load_config(write_config(tmp_path / "my_net.yaml", config))
    assert cfg.name == "my_net"


def test_every_schema_mistake_is_reported_at_once(tmp_path):
    config = tiny_config(fit={"epochz": 3, "batch_size": "big"})
    config["data"]["validation_spilt"] = 0.1
    config["compile"]["optimizer"] = {"SGD": {"learning_rate": 0.1}, "Adam": {}}
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path / "c.yaml", config))
    text = str(info.value)
    assert "4 problems" in text
    assert "fit.epochz" in text and "did you mean 'epochs'?" in text.lower()
    assert "fit.batch_size" in text and "'big'" in text
    assert "data.validation_spilt" in text and "validation_split" in text
    assert "compile.optimizer" in text and "2 keys" in text


def test_problems_name_the_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ndata: {dataset: iris}\nmodel:\n  layers: [Dense]\n"
                    "compile: {loss: mse}\nfit:\n  epochs: -1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "fit.epochs (line 7): expected greater than 0; received -1" in str(info.value)


def test_unknown_dataset_suggests_the_closest(tmp_path):
    config = tiny_config(data={"dataset": "iriss"})
    with pytest.raises(ConfigError, match="Did you mean 'iris'"):
        load_config(write_config(tmp_path / "c.yaml", config))


def test_exactly_one_source(tmp_path):
    config = tiny_config(data={"dataset": "iris", "npz": "a.npz"})
    with pytest.raises(ConfigError, match=r"data.npz.*exactly one data source"):
        load_config(write_config(tmp_path / "c.yaml", config))


def test_a_key_in_the_wrong_section_says_where_it_belongs(tmp_path):
    config = tiny_config(fit={"epochs": 1, "validation_split": 0.1})
    with pytest.raises(ConfigError, match="belongs in data.validation_split"):
        load_config(write_config(tmp_path / "c.yaml", config))


def test_yaml_syntax_error_shows_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndata:\n  dataset: iris\n   bad: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "line 4, column" in str(info.value)


def test_missing_file_names_its_path(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_are_read_as_yaml(tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config())
    cfg = load_config(path, ["fit.epochs=7", "model.layers.0.Dense.units=32",
                             "compile.optimizer.adam.learning_rate=0.5", "seed=3",
                             "save.formats=[json, keras]"])
    assert cfg.fit.epochs == 7
    assert cfg.model.layers[0] == {"Dense": {"units": 32, "activation": "relu"}}
    assert cfg.compile.optimizer == {"adam": {"learning_rate": 0.5}}
    assert cfg.seed == 3 and cfg.save.formats == ["json", "keras"]


def test_override_of_an_unknown_key_is_refused_with_a_suggestion(tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config())
    with pytest.raises(ConfigError) as info:
        load_config(path, ["fit.epoch=3"])
    assert "fit.epoch (set on the command line)" in str(info.value)
    assert "Did you mean 'epochs'?" in str(info.value)
    with pytest.raises(ConfigError, match="Did you mean 'model'"):
        load_config(path, ["modle.layers.0.Dense.units=3"])
    with pytest.raises(ConfigError, match="an index below 2"):
        load_config(path, ["model.layers.5.Dense.units=3"])


def test_override_syntax():
    assert parse_override("a.b.0=1.5") == (["a", "b", 0], 1.5)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("fit.epochs")
    data = {"fit": {"callbacks": []}}
    apply_override(data, ["fit", "callbacks"], [{"EarlyStopping": {"patience": 2}}])
    assert data["fit"]["callbacks"][0]["EarlyStopping"]["patience"] == 2


def test_config_is_immutable(tmp_path):
    cfg = load_config(write_config(tmp_path / "c.yaml", tiny_config()))
    with pytest.raises(Exception):
        cfg.fit.epochs = 3
