"""Config loading and validation, every mistake reported at once; hostile files refused.

load_config needs no Keras; the tests through the CLI (validate, fit) load it.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from pydantic import ValidationError

from nettrain.cli import app
from nettrain.config.overrides import apply_override, parse_override
from nettrain.config.load import load_config
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


@pytest.mark.parametrize("section, keys", [
    ({"data": {"dataset": "iris", "synthetic": None, "timeseries": {"time": "t", "windw": 3}}},
     "data.timeseries.windw .*one of the keys time, window, horizon, stride; .*'window'"),
    ({"fit": {"epochs": 1, "fine_tune": {"after": 1, "unfrezee": 2}}},
     "fit.fine_tune.unfrezee .*one of the keys after, unfreeze, learning_rate; .*'unfreeze'"),
])
def test_an_unknown_key_of_a_nested_section_lists_its_keys_and_the_closest(tmp_path, section,
                                                                          keys):
    """A section inside a section (data.timeseries, fit.fine_tune) names its own keys, not
    'one of the keys ;' with nothing to choose from."""
    with pytest.raises(ConfigError, match=keys):
        load_config(write_config(tmp_path / "c.yaml", tiny_config(**section)))


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


def test_save_formats_are_named_in_any_case(tmp_path):
    """As --format takes ONNX: save.formats takes Keras and SavedModel (stored lowercase); an
    unknown name is refused as written."""
    path = write_config(tmp_path / "c.yaml", tiny_config(save={"formats": ["Keras",
                                                                           "SavedModel"]}))
    assert load_config(path).save.formats == ["keras", "savedmodel"]
    with pytest.raises(ConfigError, match="expected 'json', 'keras' or 'savedmodel'; "
                                          "received 'Onyx'"):
        load_config(path, ["save.formats=[Onyx]"])


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


def test_an_override_key_needs_a_name_and_every_dotted_part():
    for text, expected in (("=5", "KEY=VALUE, e.g. fit.epochs=5"),
                           ("fit..epochs=3", "a dotted key such as fit.epochs")):
        with pytest.raises(ConfigError) as info:
            parse_override(text)
        assert info.value.problems[0].expected == expected


@pytest.mark.parametrize("data, parts, after, keys", [
    ({}, ["fit", "epochs"], {"fit": {"epochs": 3}}, ("fit", "epochs")),  # a section is made
    ({"m": [1, 2]}, ["m", 1], {"m": [1, 3]}, ("m", 1)),
    ({"m": [1, 2]}, ["m", -2], {"m": [3, 2]}, ("m", 0)),  # the key as it is in data
    ({"w": {"0": 1}}, ["w", 0], {"w": {"0": 3}}, ("w", "0")),  # a text key '0'
    ({"fit": {"class_weight": None}}, ["fit", "class_weight", 1],  # null: a mapping is made
     {"fit": {"class_weight": {"1": 3}}}, ("fit", "class_weight", "1")),
    ({"compile": {"optimizer": "Adam"}}, ["compile", "optimizer", "adam", "learning_rate"],
     {"compile": {"optimizer": {"adam": {"learning_rate": 3}}}},  # a bare name, any case
     ("compile", "optimizer", "adam", "learning_rate"))])
def test_an_override_sets_its_key_where_data_has_it(data, parts, after, keys):
    assert apply_override(data, parts, 3) == keys
    assert data == after


@pytest.mark.parametrize("data, parts, expected", [
    ({"m": [1, 2]}, ["m", 2], "an index below 2 into m"),
    ({}, ["nosuch", "x"], "a key that exists in the config"),
    ({"fit": {"epochs": 3}}, ["fit", "epochs", "x"], "fit.epochs to be a mapping or a list")])
def test_an_override_of_a_place_data_does_not_have_is_refused(data, parts, expected):
    with pytest.raises(ConfigError) as info:
        apply_override(data, parts, 3)
    assert info.value.problems[0].expected == expected


def test_flatten_gives_a_dotted_key_per_value_and_keeps_lists_of_scalars_whole():
    from nettrain.config.overrides import flatten

    assert flatten({"fit": {"epochs": 3, "callbacks": [{"EarlyStopping": {"patience": 2}}],
                            "class_weight": {}},
                    "save": {"formats": ["keras", "json"]}}) == {
        "fit.epochs": 3, "fit.callbacks[0].EarlyStopping.patience": 2, "fit.class_weight": {},
        "save.formats": ["keras", "json"]}


def test_config_is_immutable(tmp_path):
    cfg = load_config(write_config(tmp_path / "c.yaml", tiny_config()))
    with pytest.raises(ValidationError, match="Instance is frozen"):
        cfg.fit.epochs = 3


# ------------------------------------------------------------ hostile or broken files


def _billion_laughs(levels: int = 9) -> str:
    """The 342-byte "billion laughs": each level refers to the one below ten times."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        below, here = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{here}: &{here} [{','.join(['*' + below] * 9)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_fast(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_billion_laughs())
    assert len(path.read_bytes()) == 342
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert time.monotonic() - started < 5
    text = str(info.value)
    assert text.startswith(f"{path}:")  # file, line and column where the expansion is too big
    assert "aliases" in text and "expand" in text


def test_a_few_aliases_still_work(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ndata: {dataset: iris}\nmodel:\n  layers:\n"
                    "    - Dense: &hidden {units: 8, activation: relu}\n"
                    "    - Dense: *hidden\n    - Dense: {units: 3}\n"
                    "compile: {loss: sparse_categorical_crossentropy}\n")
    cfg = load_config(path, ["model.layers.0.Dense.units=4"])
    # an override of one use of an anchor changes that use only
    assert cfg.model.layers[0] == {"Dense": {"units": 4, "activation": "relu"}}
    assert cfg.model.layers[1] == {"Dense": {"units": 8, "activation": "relu"}}


@pytest.mark.parametrize("content, expected", [
    (b"name: x\ndata: {dataset: iris}\n# caf\xe9\n",
     ":3:6: expected a UTF-8 text file; received the byte 0xe9 at line 3, which is not UTF-8"),
    (b"name: x\x07\n", ":1:8: expected printable text; received the character '\\x07'"),
    (b"name: x\nseed: &a [*a]\n", ":2:7: expected an anchor used outside itself"),
    (b"name: x\nseed: " + b"[" * 100_000 + b"\n",
     ":2:38: expected nesting at most 32 levels deep; received deeper nesting"),
    (b"name: x\n? [a, b]\n: 1\n", ":2:3: expected a key that is a name"),
    (b"name: x\ndata: {[1]: x}\n", ":2:8: expected a key that is a name"),
    (b"name: x\nseed: 1" + b"0" * 5000 + b"\n", ":2:7: expected a YAML value Python can hold"),
    (b"name: 2001-02-30\n", ":1:7: expected a YAML value Python can hold"),
    (b"name: x\n" + b"# padding\n" * 200_000, ": expected a config file of at most 1 MB"),
])
def test_broken_files_are_config_errors_naming_file_and_line(runner, tmp_path, content,
                                                             expected):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(str(path))
    assert expected in str(info.value)
    for command in ("validate", "fit"):
        result = runner.invoke(app, [command, str(path)])
        assert isinstance(result.exception, SystemExit) and result.exit_code == 2
        assert f"Config error: {path}" in result.stderr and expected in result.stderr
    assert not (tmp_path / "runs").exists()


def test_predict_refuses_a_run_whose_config_is_an_alias_bomb(runner, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(_billion_laughs())
    np.save(tmp_path / "x.npy", np.zeros((2, 4), dtype="float32"))
    started = time.monotonic()
    result = runner.invoke(app, ["predict", str(run), str(tmp_path / "x.npy")])
    assert time.monotonic() - started < 60
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert f"{run / 'config.yaml'} is damaged" in result.stderr and "aliases" in result.stderr


# --------------------------------------------------------------- numbers and booleans


@pytest.mark.parametrize("override, expected", [
    ("seed=4294967296", "seed (set on the command line): expected less than or equal to "
                        "4294967295; received 4294967296"),
    ("seed=true", "seed (set on the command line): expected a whole number; received True"),
    ("fit.batch_size=1e20", "fit.batch_size (set on the command line): expected a whole "
                            "number; received 1e+20"),
    ("fit.batch_size=4294967296", "fit.batch_size (set on the command line): expected less "
                                  "than or equal to 2147483647"),
    ("fit.epochs=true", "fit.epochs (set on the command line): expected a whole number; "
                        "received True"),
    ("fit.epochs=2.5", "fit.epochs (set on the command line): expected a whole number; "
                       "received 2.5"),
    ("fit.steps_per_epoch=99999999999", "fit.steps_per_epoch (set on the command line): "
                                        "expected less than or equal to 2147483647"),
    ("data.validation_split=true", "data.validation_split (set on the command line): "
                                   "expected a number; received True"),
    ("data.validation_split=.nan", "data.validation_split (set on the command line): "
                                   "expected a finite number; received nan"),
    ("data.scale=.inf", "data.scale (set on the command line): expected a finite number; "
                        "received inf"),
    ("compile.loss_weights=[true]", "compile.loss_weights[0] (set on the command line): "
                                    "expected a number; received True"),
    ("compile.optimizer={SGD: {learning_rate: .nan}}", "compile.optimizer.SGD.learning_rate "
                                                       "(set on the command line): expected a "
                                                       "finite number; received nan"),
    ("model.layers.0.Dense.kernel_regularizer={L2: {l2: -.inf}}",
     "model.layers[0].Dense.kernel_regularizer.L2.l2 (set on the command line): expected a "
     "finite number; received -inf"),
    ("fit.shuffle=1", "fit.shuffle (set on the command line): expected true or false; "
                      "received 1"),
    ("data.synthetic={n_samples: true}", "data.synthetic.n_samples (set on the command "
                                         "line): expected a whole number; received True"),
])
def test_numbers_are_numbers_within_what_keras_accepts(runner, tmp_path, override,
                                                       expected):
    path = write_config(tmp_path / "c.yaml", tiny_config())
    if override.startswith("data.synthetic"):
        path = write_config(tmp_path / "c.yaml", tiny_config(data={"synthetic": {}}))
    result = runner.invoke(app, ["fit", str(path), override])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert expected in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_boolean_in_the_file_is_not_a_number(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ndata: {dataset: iris}\nmodel: {layers: [Dense]}\n"
                    "compile: {loss: mse}\nfit:\n  epochs: true\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (f"{path}: fit.epochs (line 6): expected a whole number; "
                               "received True")


def test_the_largest_accepted_numbers_load(tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config())
    cfg = load_config(path, ["seed=4294967295", "fit.batch_size=2147483647",
                             "data.validation_split=0", "data.scale=255"])
    assert cfg.seed == 2**32 - 1 and cfg.fit.batch_size == 2**31 - 1
    assert cfg.data.scale == 255.0 and isinstance(cfg.data.scale, float)


# ------------------------------------------------------------------ message templates


def test_scalar_arguments_give_a_plain_message_with_the_way_to_write_them(runner, tmp_path):
    layers = [{"Dense": {"units": 8}}, {"Dropout": 0.2},
              {"Dense": {"units": 3, "activation": "softmax"}}]
    path = write_config(tmp_path / "c.yaml", tiny_config(model={"layers": layers}))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (f"{path}: model.layers[1].Dropout (line 11): expected the "
                               "arguments of Dropout as a mapping of argument names to values; "
                               "received 0.2. Write e.g. - Dropout: {argument: 0.2}")
    # With Keras loaded (validate, fit) the hint names the argument, and following it works.
    result = runner.invoke(app, ["validate", str(path)])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert "{{" not in result.stderr and "}}" not in result.stderr
    assert ("model.layers[1].Dropout (line 11): expected the arguments of Dropout as a mapping of "
            "argument names to values; received 0.2. Write e.g. - Dropout: {rate: 0.2}"
            in result.stderr)
    layers[1] = {"Dropout": {"rate": 0.2}}
    result = runner.invoke(app, ["validate", str(write_config(path, tiny_config(
        model={"layers": layers})))])
    assert result.exception is None and result.exit_code == 0, result.output


def test_class_weight_message_has_single_braces(tmp_path):
    config = tiny_config(fit={"epochs": 1, "class_weight": [1, 2]})
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path / "c.yaml", config))
    assert "such as {0: 1.0, 1: 5.0}" in str(info.value)


def test_user_text_in_a_message_is_not_read_as_a_template(tmp_path):
    config = tiny_config(data={"dataset": "{hint}"})
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path / "c.yaml", config))
    assert "received '{hint}'" in str(info.value)


# ------------------------------------------------- schema and Keras problems at once


def test_schema_and_keras_mistakes_are_reported_together_by_line(runner, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: x\n"
        "data: {dataset: iris}\n"
        "model:\n"
        "  layers:\n"
        "    - Dens: {units: 8}\n"
        "    - Dense: {units: 3, activation: softmax}\n"
        "compile:\n"
        "  optimizer: adamm\n"
        "  loss: sparse_categorical_crossentropy\n"
        "  metrics: [accuracyy]\n"
        "fit:\n"
        "  epochs: ten\n"
        "  callbacks: [EarlyStoping]\n")
    for command in ("validate", "fit"):
        result = runner.invoke(app, [command, str(path)])
        assert isinstance(result.exception, SystemExit) and result.exit_code == 2
        lines = result.stderr.splitlines()
        assert lines[0] == f"Config error: {path}: 5 problems:"
        assert [line.split(":")[0] for line in lines[1:6]] == [
            "  - model.layers[0].Dens (line 5)", "  - compile.optimizer (line 8)",
            "  - compile.metrics[0] (line 10)", "  - fit.epochs (line 12)",
            "  - fit.callbacks[0] (line 13)"]
        assert "Did you mean 'Dense'?" in result.stderr
        assert "Did you mean 'Adam'?" in result.stderr
        assert "Did you mean 'accuracy'?" in result.stderr
        assert "expected a whole number; received 'ten'" in result.stderr
        assert "Did you mean 'EarlyStopping'?" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_refused_section_is_not_checked_twice(runner, tmp_path):
    config = tiny_config(compile={"optimizer": {"SGD": {}, "Adam": {}},
                                  "loss": "mean_squared_eror"})
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert "2 problems" in result.stderr
    assert "compile.optimizer (line" in result.stderr and "2 keys" in result.stderr
    assert "compile.loss (line" in result.stderr
    assert "Did you mean 'mean_squared_error'?" in result.stderr


def test_every_cross_field_mistake_is_reported(tmp_path):
    config = tiny_config(data={"dataset": "irs", "validation_split": 0.6, "test_split": 0.5,
                               "target": "y", "maxlen": 10},
                         compile={"loss": "mse"}, fit={"epochs": 1, "class_weight": "balanced"})
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path / "c.yaml", config))
    assert [line.split(":")[0] for line in str(info.value).splitlines()] == [
        f"{tmp_path / 'c.yaml'}", "  - data.dataset (line 4)", "  - data.test_split (line 6)",
        "  - data.target (line 7)", "  - data.maxlen (line 8)", "  - fit.class_weight (line 21)"]
    text = str(info.value)
    assert "Did you mean 'iris'?" in text
    assert "data.target (line 7): expected target only with the source csv" in text
    assert "data.maxlen (line 8): expected num_words and maxlen only with dataset imdb" in text
    assert "expected class_weight only with a classification loss; received loss 'mse'" in text


def test_keys_of_two_sections_are_checked_when_another_section_is_wrong(tmp_path):
    config = tiny_config(data={"dataset": "irs"}, compile={"loss": "mse", "jit_compile": True})
    config["deterministic"] = True
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path / "c.yaml", config))
    assert "2 problems" in str(info.value)
    assert "compile.jit_compile (line 15): expected 'auto' or false with deterministic: true" \
        in str(info.value)


def test_merge_keys_work_and_a_key_replaces_a_merged_one(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ndata: {dataset: iris}\nmodel:\n  layers:\n"
                    "    - Dense: &dense {units: 8, activation: relu}\n"
                    "    - Dense: {<<: *dense, units: 4}\n"
                    "compile: {loss: sparse_categorical_crossentropy}\n")
    cfg = load_config(path)
    assert cfg.model.layers[1] == {"Dense": {"units": 4, "activation": "relu"}}
    path.write_text(path.read_text().replace("units: 4}", "units: 4, units: 2}"))
    with pytest.raises(ConfigError, match="the key 'units' is written twice"):
        load_config(path)


def test_the_written_config_keeps_no_secret_of_a_uri_and_the_config_keeps_it(tmp_path):
    """config.yaml, sweep.yaml and --print-config come from to_yaml: a tracking URI's password
    is written ***; the loaded config keeps it, for the store it opens."""
    uri = "http://user:secret@127.0.0.1:5000/?token=secret"
    config = load_config(write_config(tmp_path / "c.yaml", tiny_config(
        tracking={"mlflow": {"experiment": "x"}})), [f"tracking.mlflow.uri={uri}"])
    assert config.tracking.mlflow.uri == uri
    for text in (config.to_yaml(), config.to_annotated_yaml()):
        assert "secret" not in text and "http://user:***@127.0.0.1:5000/?token=***" in text
