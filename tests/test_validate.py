"""What validate refuses: everything fit would refuse for a config reason, before any run
directory exists, with advice that leads to a config that validates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nettrain.cli import app

from conftest import tiny_config, write_config


def _validate(runner, config: dict, command: str = "validate"):
    path = write_config(Path("c.yaml"), config)
    return runner.invoke(app, [command, str(path)])


def _refused(result, *texts: str) -> str:
    """The config error's text (line numbers left out), after checking the exit status."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    text = re.sub(r" \(line \d+\)", "", " ".join(result.stderr.split()))
    for expected in texts:
        assert expected in text
    assert not Path("runs").exists()
    return text


def _ok(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    assert "OK" in result.stdout


def _callbacks(*specs, **data) -> dict:
    config = tiny_config()
    config["fit"]["callbacks"] = list(specs)
    config["data"].update(data)
    return config


# --- callbacks: monitor names -------------------------------------------------------------

@pytest.mark.parametrize("callback", ["EarlyStopping", "ReduceLROnPlateau", "ModelCheckpoint"])
def test_a_monitor_the_model_never_logs_is_refused(runner, callback):
    kwargs = {"monitor": "val_acc"}
    if callback == "ModelCheckpoint":
        kwargs["filepath"] = "best.keras"
    result = _validate(runner, _callbacks({callback: kwargs}))
    text = _refused(result, f"fit.callbacks[0].{callback}.monitor", "'val_acc'",
                    "Did you mean 'val_accuracy'?")
    assert "val_loss" in text  # what the run logs


def test_monitor_names_come_from_the_compiled_metrics(runner):
    config = _callbacks({"EarlyStopping": {"monitor": "val_top2", "mode": "max"}},
                        {"ReduceLROnPlateau": {"monitor": "val_weighted_accuracy", "mode": "max"}},
                        {"EarlyStopping": {"monitor": "loss"}})
    config["compile"]["metrics"] = [
        "accuracy", {"SparseTopKCategoricalAccuracy": {"k": 2, "name": "top2"}}]
    config["compile"]["weighted_metrics"] = ["accuracy"]
    _ok(_validate(runner, config))


@pytest.mark.parametrize("monitor, metrics, weighted", [
    ("val_tp", [{"TruePositives": {"name": "tp"}}], []),
    ("val_weighted_accuracy", ["accuracy"], ["accuracy"]),  # Keras knows no such metric
])
def test_a_monitor_whose_direction_keras_cannot_tell_needs_a_mode(runner, monitor, metrics,
                                                                 weighted):
    config = _callbacks({"EarlyStopping": {"monitor": monitor}})
    config["model"]["layers"][-1] = {"Dense": {"units": 1, "activation": "sigmoid"}}
    config["compile"].update(loss="binary_crossentropy", metrics=metrics,
                             weighted_metrics=weighted)
    config["data"]["dataset"] = "breast_cancer"
    _refused(_validate(runner, config), "fit.callbacks[0].EarlyStopping.mode",
             "received 'auto' (the default). Add mode: max (or mode: min) to EarlyStopping.")
    config["fit"]["callbacks"][0]["EarlyStopping"]["mode"] = "max"
    _ok(_validate(runner, config))


def test_a_checkpoint_path_may_only_name_logged_values(runner):
    spec = {"ModelCheckpoint": {"filepath": "m-{epoch:02d}-{val_acc:.2f}.keras"}}
    _refused(_validate(runner, _callbacks(spec)), "fit.callbacks[0].ModelCheckpoint.filepath",
             "'{val_acc}' in 'm-{epoch:02d}-{val_acc:.2f}.keras'",
             "Did you mean 'val_accuracy'?")
    spec["ModelCheckpoint"]["filepath"] = "m-{epoch:02d}-{val_accuracy:.2f}.keras"
    _ok(_validate(runner, _callbacks(spec)))


@pytest.mark.parametrize("filepath, received", [
    ("ck-{epoch:0999999999d}.keras",
     "'{epoch:0999999999d}' in 'ck-{epoch:0999999999d}.keras', a width of 999999999"),
    ("ck-{loss:.300f}.keras", "'{loss:.300f}' in 'ck-{loss:.300f}.keras', a precision of 300"),
    ("sub/ck-{epoch:0250d}-{loss:.4f}.keras",
     "'sub/ck-{epoch:0250d}-{loss:.4f}.keras', whose name 'ck-0000000…' is 272 bytes once "
     "filled in (with epoch 2 and a value of -123456.789)"),
    ("x" * 256 + ".keras", f"'{'x' * 256}.keras', whose name 'xxxxxxxxxx…' is 262 bytes"),
])
def test_a_checkpoint_path_too_long_once_formatted_is_refused_at_validate(runner, filepath,
                                                                          received):
    """It passed validate; fit trained, failed with 'File name too long' and wrote a 100 MB
    run.json (Keras formats the name at the end of each epoch)."""
    spec = {"ModelCheckpoint": {"filepath": filepath, "monitor": "loss"}}
    text = _refused(_validate(runner, _callbacks(spec)),
                    "fit.callbacks[0].ModelCheckpoint.filepath: expected a path inside the run "
                    "directory, relative to it (e.g. 'logs/epochs.csv'), each name in it at "
                    "most 255 bytes once Keras fills in its {...}; received " + received,
                    "Write a shorter name, e.g. 'ck-{epoch:02d}.keras'.")
    assert len(text) < 2000


def test_a_checkpoint_path_format_that_cannot_format_its_value_is_refused(runner):
    spec = {"ModelCheckpoint": {"filepath": "ck-{loss:d}.keras", "monitor": "loss"}}
    _refused(_validate(runner, _callbacks(spec)), "fit.callbacks[0].ModelCheckpoint.filepath",
             "a format Python can apply to a fraction; received '{loss:d}' in "
             "'ck-{loss:d}.keras' (Unknown format code 'd' for object of type 'float')")


def test_a_val_monitor_without_validation_names_both_ways_out(runner):
    config = _callbacks({"EarlyStopping": {"monitor": "val_accuracy"}})
    del config["data"]["validation_split"]
    _refused(_validate(runner, config), "fit.callbacks[0].EarlyStopping.monitor",
             "Set data.validation_split (e.g. 0.1), or monitor 'accuracy'.")


# --- callbacks: paths ------------------------------------------------------------------------

@pytest.mark.parametrize("spec, key", [
    ({"CSVLogger": {"filename": "/tmp/elsewhere.csv"}}, "CSVLogger.filename"),
    ({"CSVLogger": {"filename": "../log.csv"}}, "CSVLogger.filename"),
    ({"ModelCheckpoint": {"filepath": "sub/../../m.keras"}}, "ModelCheckpoint.filepath"),
    ({"TensorBoard": {"log_dir": "/tmp/tb"}}, "TensorBoard.log_dir"),
])
def test_a_callback_path_outside_the_run_directory_is_refused(runner, spec, key):
    _refused(_validate(runner, _callbacks(spec), "fit"), f"fit.callbacks[0].{key}",
             "a path inside the run directory")


@pytest.mark.parametrize("spec, key", [
    ({"CSVLogger": {"filename": "history.csv"}}, "CSVLogger.filename"),
    ({"ModelCheckpoint": {"filepath": "model.keras"}}, "ModelCheckpoint.filepath"),
    ({"ModelCheckpoint": {"filepath": "checkpoints/best.keras"}}, "ModelCheckpoint.filepath"),
])
def test_a_callback_path_may_not_replace_a_file_of_the_run(runner, spec, key):
    text = _refused(_validate(runner, _callbacks(spec)), f"fit.callbacks[0].{key}",
                    "itself). Choose another name, e.g. 'callbacks/")
    suggested = re.search(r"e\.g\. '([^']+)'\.$", text).group(1)
    name, argument = key.split(".")
    _ok(_validate(runner, _callbacks({name: {argument: suggested}})))


def test_backup_and_restore_is_refused_with_a_pointer_to_resume(runner, tmp_path):
    kept = tmp_path / "mine"
    kept.mkdir()
    (kept / "keep.txt").write_text("mine")
    result = _validate(runner, _callbacks({"BackupAndRestore": {"backup_dir": str(kept)}}),
                       "fit")
    _refused(result, "fit.callbacks[0].BackupAndRestore", "nettrain fit --resume")
    assert (kept / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("name", ["RemoteMonitor", "LambdaCallback", "LearningRateScheduler"])
def test_callbacks_that_send_data_or_run_code_are_refused(runner, name):
    _refused(_validate(runner, _callbacks(name)), f"fit.callbacks[0].{name}")


@pytest.mark.parametrize("section, name, refused", [
    ("model", "Lamda", "Lambda"), ("model", "TFSMLayers", "TFSMLayer"),
    ("model", "InputLayr", "InputLayer"), ("fit", "BackupAndRestor", "BackupAndRestore"),
])
def test_refused_names_are_never_suggested(runner, section, name, refused):
    if section == "model":
        config = _with(_IRIS, **{"model.layers.0": name})
    else:
        config = _callbacks(name)
    text = _refused(_validate(runner, config), name)
    assert f"'{refused}'" not in text and "Did you mean" not in text


def test_every_refused_callback_is_hidden_from_suggestions():
    from nettrain.model import callbacks
    from nettrain.model.keras_names import CALLBACKS

    assert set(callbacks.REFUSED) == set(CALLBACKS.hidden)


def test_callback_paths_go_under_the_run_directory(runner, tmp_path):
    (tmp_path / "log.csv").write_text("not yours\n")
    config = _callbacks({"CSVLogger": {"filename": "log.csv"}},
                        {"ModelCheckpoint": {"filepath": "mine/epoch{epoch}.keras"}})
    config["fit"]["epochs"] = 2
    result = runner.invoke(app, ["fit", str(write_config(Path("c.yaml"), config)),
                                 "--run-dir", "run"])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "log.csv").read_text() == "not yours\n"
    assert (tmp_path / "run" / "log.csv").read_text().splitlines()[0].startswith("epoch")
    assert sorted(p.name for p in (tmp_path / "run" / "mine").iterdir()) == \
        ["epoch1.keras", "epoch2.keras"]


def test_a_symlink_out_of_the_run_directory_is_refused_at_fit(tmp_path):
    from nettrain.model import callbacks
    from nettrain.config import load as config_module
    from nettrain.errors import ConfigError

    cfg = config_module.load_config(write_config(
        tmp_path / "c.yaml", _callbacks({"CSVLogger": {"filename": "out/log.csv"}})))
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (run / "out").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match=r"fit.callbacks\[0\].CSVLogger.filename"):
        callbacks.place(cfg, [None], run)


# --- TensorBoard ----------------------------------------------------------------------------

def test_tensorboard_logs_under_the_run_directory_or_is_refused_at_validate(runner, tmp_path):
    import importlib.util

    config = _callbacks("TensorBoard")
    if importlib.util.find_spec("tensorboard") is None:
        _refused(_validate(runner, config, "fit"), "fit.callbacks[0].TensorBoard",
                 "pip install 'nettrain[tensorboard]'")
        return
    result = runner.invoke(app, ["fit", str(write_config(Path("c.yaml"), config)),
                                 "--run-dir", "run"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "logs").exists()
    assert list((tmp_path / "run" / "logs" / "train").iterdir())


# --- layers that load files or run code -----------------------------------------------------

@pytest.mark.parametrize("layers, key", [
    ([{"TFSMLayer": {"filepath": "sm", "call_endpoint": "serve"}}], "model.layers[0].TFSMLayer"),
    ([{"Lambda": {"function": "x"}}], "model.layers[0].Lambda"),
    ([{"TimeDistributed": {"layer": {"TFSMLayer": {"filepath": "sm"}}}}],
     "model.layers[0].TimeDistributed.layer.TFSMLayer"),
    ([{"Bidirectional": {"layer": {"LSTM": {"units": 2}},
                         "backward_layer": {"Lambda": {"function": "x"}}}}],
     "model.layers[0].Bidirectional.backward_layer.Lambda"),
    ([{"TimeDistributed": {"layer": {"class_name": "TFSMLayer",
                                     "config": {"filepath": "sm"}}}}],
     "model.layers[0].TimeDistributed.layer"),
])
def test_layers_that_load_files_or_run_code_are_refused(runner, tmp_path, layers, key):
    config = tiny_config()
    config["model"]["layers"] = [*layers, {"Dense": {"units": 3, "activation": "softmax"}}]
    (tmp_path / "sm").mkdir()
    text = _refused(_validate(runner, config), key)
    assert "runs code" in text or "loads a file" in text


def test_a_vocabulary_file_is_refused(runner):
    config = tiny_config()
    config["model"]["layers"].insert(0, {"IntegerLookup": {"vocabulary": "vocab.txt"}})
    _refused(_validate(runner, config), "model.layers[0].IntegerLookup.vocabulary",
             "a list of values")


# --- cross-entropy takes probabilities ------------------------------------------------------

def _last(*layers, loss="sparse_categorical_crossentropy", dataset="iris", **data) -> dict:
    config = tiny_config()
    config["data"].update(dataset=dataset, **data)
    config["model"]["layers"] = [{"Dense": {"units": 8, "activation": "relu"}}, *layers]
    config["compile"]["loss"] = loss
    return config


@pytest.mark.parametrize("config, key, received, fixed", [
    (_last({"Dense": {"units": 3, "activation": "relu"}}),
     "model.layers[1].Dense.activation", "'relu'",
     _last({"Dense": {"units": 3, "activation": "softmax"}})),
    (_last({"Dense": {"units": 3, "activation": "tanh"}}, loss="categorical_crossentropy",
           one_hot=True),
     "model.layers[1].Dense.activation", "'tanh'",
     _last({"Dense": {"units": 3, "activation": "softmax"}}, loss="categorical_crossentropy",
           one_hot=True)),
    (_last({"Dense": {"units": 3, "activation": "sigmoid"}}),
     "model.layers[1].Dense.activation", "'sigmoid'",
     _last({"Dense": {"units": 3, "activation": "softmax"}})),
    (_last({"Dense": {"units": 1, "activation": "relu"}}, loss="binary_crossentropy",
           dataset="breast_cancer"),
     "model.layers[1].Dense.activation", "'relu'",
     _last({"Dense": {"units": 1, "activation": "sigmoid"}}, loss="binary_crossentropy",
           dataset="breast_cancer")),
    (_last({"Dense": {"units": 1, "activation": "softmax"}}, loss="binary_crossentropy",
           dataset="breast_cancer"),
     "model.layers[1].Dense.activation", "'softmax'",
     _last({"Dense": {"units": 1, "activation": "sigmoid"}}, loss="binary_crossentropy",
           dataset="breast_cancer")),
    (_last({"Dense": {"units": 3}}, {"Activation": {"activation": "relu"}}),
     "model.layers[2].Activation.activation", "'relu'",
     _last({"Dense": {"units": 3}}, {"Activation": {"activation": "softmax"}})),
    (_last({"Dense": {"units": 3}}, "BatchNormalization"),
     "model.layers[2].BatchNormalization", "no activation",
     _last({"Dense": {"units": 3}}, "BatchNormalization",
           {"Activation": {"activation": "softmax"}})),
    (_last({"Dense": {"units": 1, "activation": "sigmoid"}}, "Softmax",
           loss="binary_crossentropy", dataset="breast_cancer"),
     "model.layers[2].Softmax", "'softmax' on one unit, which is always 1. Replace it with - "
     "Activation: {activation: sigmoid}.",
     _last({"Dense": {"units": 1, "activation": "sigmoid"}},
           {"Activation": {"activation": "sigmoid"}}, loss="binary_crossentropy",
           dataset="breast_cancer")),
    (_last({"Dense": {"units": 3, "activation": "relu"}}, {"Dropout": {"rate": 0.1}}),
     "model.layers[1].Dense.activation", "'relu'",
     _last({"Dense": {"units": 3, "activation": "softmax"}}, {"Dropout": {"rate": 0.1}})),
])
def test_cross_entropy_needs_probabilities(runner, config, key, received, fixed):
    text = _refused(_validate(runner, config), key, received)
    assert "takes probabilities" in text
    assert re.search(r"(Set activation: |- Activation: \{activation: )(softmax|sigmoid)", text)
    _ok(_validate(runner, fixed))


@pytest.mark.parametrize("layers", [
    [{"Dense": {"units": 3}}, "Softmax"],
    [{"Dense": {"units": 3, "activation": "softmax"}}, "Flatten"],
])
def test_probabilities_from_a_separate_layer(runner, layers):
    _ok(_validate(runner, _last(*layers)))


def test_logits_with_from_logits(runner):
    config = _last({"Dense": {"units": 3}},
                   loss={"SparseCategoricalCrossentropy": {"from_logits": True}})
    _ok(_validate(runner, config))


# --- advice leads to a config that validates -----------------------------------------------

def _with(config: dict, **changes) -> dict:
    """``config`` with dotted keys changed: ``_with(c, **{"data.one_hot": True})``."""
    import copy

    config = copy.deepcopy(config)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = config
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is None:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return config


_IRIS = tiny_config()
_BINARY = _with(_IRIS, **{"data.dataset": "breast_cancer", "compile.loss": "binary_crossentropy",
                          "model.layers.1": {"Dense": {"units": 1, "activation": "sigmoid"}}})
_REGRESSION = _with(_IRIS, **{"data.dataset": "diabetes", "compile.metrics": ["mae"],
                              "model.layers.1": {"Dense": {"units": 1}}})
_DENSE3 = {"Dense": {"units": 3, "activation": "softmax"}}

ADVICE = [  # (broken config, key, the advice as printed, the config that follows it)
    (_with(_IRIS, **{"model.layers.1.Dense.units": 1}), "model.layers[1].Dense.units",
     "Set the last layer's units to 3.", _IRIS),
    (_with(_IRIS, **{"compile.loss": "binary_crossentropy"}), "compile.loss",
     "Use sparse_categorical_crossentropy with 3 softmax units.", _IRIS),
    (_with(_BINARY, **{"compile.loss": "sparse_categorical_crossentropy"}), "compile.loss",
     "Use loss: binary_crossentropy, or 2 softmax units.", _BINARY),
    (_with(_BINARY, **{"compile.loss": "sparse_categorical_crossentropy"}), "compile.loss",
     "Use loss: binary_crossentropy, or 2 softmax units.",
     _with(_BINARY, **{"compile.loss": "sparse_categorical_crossentropy",
                       "model.layers.1": {"Dense": {"units": 2, "activation": "softmax"}}})),
    (_with(_IRIS, **{"compile.loss": "categorical_crossentropy"}), "compile.loss",
     "Set data.one_hot: true", _with(_IRIS, **{"compile.loss": "categorical_crossentropy",
                                               "data.one_hot": True})),
    (_with(_REGRESSION, **{"compile.loss": "sparse_categorical_crossentropy"}), "compile.loss",
     "Use loss: mse with one output", _with(_REGRESSION, **{"compile.loss": "mse"})),
    (_with(_REGRESSION, **{"compile.loss": "binary_crossentropy"}), "compile.loss",
     "Use loss: mse with one output", _with(_REGRESSION, **{"compile.loss": "mse"})),
    (_with(_REGRESSION, **{"compile.loss": "mse", "model.layers.1.Dense.units": 2}),
     "model.layers[1].Dense.units", "Set the last layer's units to 1.",
     _with(_REGRESSION, **{"compile.loss": "mse"})),
    (_with(_IRIS, **{"model.input_shape": [5]}), "model.input_shape",
     "Leave input_shape out", _IRIS),
    (_with(_IRIS, **{"model.layers": [{"Input": {"shape": [4]}}, _DENSE3]}),
     "model.layers[0].Input", "Remove it, and write model.input_shape: [4]",
     _with(_IRIS, **{"model.layers": [_DENSE3], "model.input_shape": [4]})),
    (_with(_IRIS, **{"model.layers": [{"InputLayer": {"shape": [4]}}, _DENSE3]}),
     "model.layers[0].InputLayer", "Remove it, and write model.input_shape: [4]",
     _with(_IRIS, **{"model.layers": [_DENSE3], "model.input_shape": [4]})),
    (_with(_IRIS, **{"model.layers": ["Input", _DENSE3]}), "model.layers[0].Input",
     "Remove it", _with(_IRIS, **{"model.layers": [_DENSE3]})),
    (_with(_IRIS, **{"model.layers": [{"LSTM": {"units": 4}}, _DENSE3]}),
     "model.layers[0].LSTM", "e.g. data.reshape: [4, 1]",
     _with(_IRIS, **{"model.layers": [{"LSTM": {"units": 4}}, _DENSE3],
                     "data.reshape": [4, 1]})),
    (_with(_IRIS, **{"model.layers": [{"Dense": {"units": 4}}, {"LSTM": {"units": 4}}, _DENSE3]}),
     "model.layers[1].LSTM", "e.g. a Reshape layer before it: {Reshape: {target_shape: [4, 1]}}",
     _with(_IRIS, **{"model.layers": [{"Dense": {"units": 4}},
                                      {"Reshape": {"target_shape": [4, 1]}},
                                      {"LSTM": {"units": 4}}, _DENSE3]})),
    (_with(_IRIS, **{"model.layers": [{"Conv1D": {"filters": 2, "kernel_size": 3}}, _DENSE3],
                     "data.reshape": [4, 1]}),
     "model.layers[1].Dense", "Add a Flatten layer before it",
     _with(_IRIS, **{"model.layers": [{"Conv1D": {"filters": 2, "kernel_size": 3}}, "Flatten",
                                      _DENSE3], "data.reshape": [4, 1]})),
    (_with(_IRIS, **{"model.layers": [{"Conv2D": {"filters": 2, "kernel_size": 3}}, "Flatten",
                                      _DENSE3], "data.reshape": [2, 2, 1]}),
     "model.layers[0].Conv2D", "padding: same",
     _with(_IRIS, **{"model.layers": [{"Conv2D": {"filters": 2, "kernel_size": 3,
                                                  "padding": "same"}}, "Flatten", _DENSE3],
                     "data.reshape": [2, 2, 1]})),
    (_with(_IRIS, **{"model.layers": ["Dense", _DENSE3]}), "model.layers[0].Dense",
     "e.g. {Dense: {units: ...}}",
     _with(_IRIS, **{"model.layers": [{"Dense": {"units": 4}}, _DENSE3]})),
    (_with(_IRIS, **{"model.layers.1": {"Dense": {"units": 3}},
                     "compile.loss": {"sparse_categorical_crossentropy": {"from_logits": True}}}),
     "compile.loss.sparse_categorical_crossentropy",
     "To pass arguments use the class: {SparseCategoricalCrossentropy: {...}}",
     _with(_IRIS, **{"model.layers.1": {"Dense": {"units": 3}},
                     "compile.loss": {"SparseCategoricalCrossentropy": {"from_logits": True}}})),
    (_with(_IRIS, **{"model.layers.0.Dense.input_shape": [4]}),
     "model.layers[0].Dense.input_shape", "Remove it", _IRIS),
    (_with(_IRIS, **{"compile.optimizer": {"SGD": {"learning_rate": 0.1, "decay": 0.01}}}),
     "compile.optimizer.SGD.decay", "Remove it",
     _with(_IRIS, **{"compile.optimizer": {"SGD": {"learning_rate": 0.1}}})),
    (_with(_IRIS, **{"fit.callbacks": [{"EarlyStopping": {"monitor": "val_accuracy"}}],
                     "data.validation_split": None}),
     "fit.callbacks[0].EarlyStopping.monitor", "Set data.validation_split (e.g. 0.1)",
     _with(_IRIS, **{"fit.callbacks": [{"EarlyStopping": {"monitor": "val_accuracy"}}],
                     "data.validation_split": 0.1})),
    (_with(_IRIS, **{"fit.callbacks": [{"EarlyStopping": {"monitor": "val_accuracy"}}],
                     "data.validation_split": None}),
     "fit.callbacks[0].EarlyStopping.monitor", "or monitor 'accuracy'.",
     _with(_IRIS, **{"fit.callbacks": [{"EarlyStopping": {"monitor": "accuracy"}}],
                     "data.validation_split": None})),
    (_with(_IRIS, **{"fit.callbacks": ["EarlyStopping"], "data.validation_split": None}),
     "fit.callbacks[0].EarlyStopping", "or monitor 'loss'.",
     _with(_IRIS, **{"fit.callbacks": [{"EarlyStopping": {"monitor": "loss"}}],
                     "data.validation_split": None})),
]


@pytest.mark.parametrize("broken, key, advice, followed", ADVICE,
                         ids=[f"{i}-{case[1]}" for i, case in enumerate(ADVICE)])
def test_advice_leads_to_a_config_that_validates(runner, broken, key, advice, followed):
    text = _refused(_validate(runner, broken), key, advice)
    assert "site-packages" not in text and "ndim" not in text
    _ok(_validate(runner, followed))



def test_a_conv2d_on_categorical_columns_gets_advice_that_validates(runner, tmp_path):
    """The encoded columns are one vector per sample, and data.reshape is refused with
    categorical columns: the advice is a Reshape layer first, and the config that follows it
    validates."""
    from test_data import _table, _table_config

    _table(tmp_path)  # color (3) and size (3) one-hot with an unseen slot each, weight: 9
    conv = [{"Conv2D": {"filters": 2, "kernel_size": 2}}, "Flatten",
            {"Dense": {"units": 2, "activation": "softmax"}}]
    broken = _with(_table_config(tmp_path), **{"model.layers": conv})
    text = _refused(_validate(runner, broken), "model.layers[0].Conv2D",
                    "e.g. a first layer {Reshape: {target_shape: [3, 3, 1]}}")
    assert "data.reshape" not in text
    followed = _with(broken, **{"model.layers": [{"Reshape": {"target_shape": [3, 3, 1]}},
                                                 *conv]})
    _ok(_validate(runner, followed))

def test_a_one_class_image_folder_asks_for_a_second_class(runner, tmp_path):
    from test_data import _images

    _images(tmp_path / "photos", classes=("cat",))
    config = _with(_IRIS, **{"data": {"images": "photos", "image_size": [8, 8], "scale": 255,
                                      "flatten": True, "validation_split": 0.25},
                             "model.layers.1.Dense.units": 2})
    _refused(_validate(runner, config), "data.images", "at least two classes",
             "photos/cat'", "Add a folder of images for each other class")
    _images(tmp_path / "photos", classes=("dog",))
    _ok(_validate(runner, config))


def test_keras_warnings_become_problems_without_paths_into_keras(runner):
    import warnings

    config = _with(_IRIS, **{"model.layers.0.Dense.input_shape": [4]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _validate(runner, config)
    text = _refused(result, "model.layers[0].Dense.input_shape", "received Keras says: Do not "
                    "pass an `input_shape`", "Remove it, and write model.input_shape: [4]")
    assert "UserWarning" not in text and "site-packages" not in text
    assert [str(w.message) for w in caught if "keras" in w.filename] == []


def test_a_legacy_argument_name_gets_the_new_one(runner):
    config = _with(_IRIS, **{"model.layers.0": {"LeakyReLU": {"alpha": 0.1}}})
    _refused(_validate(runner, config), "model.layers[0].LeakyReLU.alpha",
             "Did you mean 'negative_slope'?")


def test_a_resumed_run_appends_to_its_csv_log(tmp_path):
    from nettrain.model import callbacks
    from nettrain.run import checkpoints
    from nettrain.config import load as config_module

    cfg = config_module.load_config(write_config(
        tmp_path / "c.yaml", _callbacks({"CSVLogger": {"filename": "logs/log.csv"}})))
    run = tmp_path / "run"
    made = [None]
    callbacks.place(cfg, made, run)
    assert made[0].filename == str(run / "logs" / "log.csv") and not made[0].append
    # a resume places the paths again, then continues every CSV log it finds
    callbacks.place(cfg, made, run)
    assert checkpoints.continue_logs(made) == [run / "logs" / "log.csv"]
    assert made[0].append


def test_accuracy_on_a_regression_target_is_refused_and_its_advice_works(runner, tmp_path):
    # with exit 0 it reported accuracy 0.0 for a model that fits well
    config = tiny_config(data={"dataset": "diabetes", "validation_split": 0.2},
                         model={"layers": [{"Dense": {"units": 8, "activation": "relu"}},
                                           {"Dense": {"units": 1}}]},
                         compile={"optimizer": "adam", "loss": "mse", "metrics": ["accuracy"]})
    path = write_config(tmp_path / "c.yaml", config)
    result = runner.invoke(app, ["validate", str(path)])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert "compile.metrics[0]" in result.stderr and "'accuracy' on targets such as" in \
        result.stderr and "Use mae or mse" in result.stderr
    result = runner.invoke(app, ["validate", str(path), "compile.metrics=[mae]"])
    assert result.exit_code == 0, result.output


def test_accuracy_with_mse_on_labels_0_and_1_is_allowed(runner, tmp_path):
    config = tiny_config(data={"dataset": "xor"},
                         model={"layers": [{"Dense": {"units": 4, "activation": "tanh"}},
                                           {"Dense": {"units": 1, "activation": "sigmoid"}}]},
                         compile={"optimizer": "sgd", "loss": "mse", "metrics": ["accuracy"]})
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("rate", [0, -1.0])
def test_a_learning_rate_at_or_below_zero_is_refused(runner, tmp_path, rate):
    config = tiny_config(compile={"optimizer": {"Adam": {"learning_rate": rate}},
                                  "loss": "sparse_categorical_crossentropy"})
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert "compile.optimizer.Adam.learning_rate" in result.stderr
    assert "a learning rate above 0" in result.stderr and "e.g. learning_rate: 0.001" in \
        result.stderr


def test_a_scalar_argument_does_not_hide_a_wrong_monitor(runner, tmp_path):
    """``- Dropout: 0.1`` (refused by the schema, with its fix) and a monitor the run does not
    log: both at once, at validate and at fit, so the first fix is not followed by a second
    error."""
    config = tiny_config(fit={"epochs": 1, "verbose": 0, "callbacks": [
        {"EarlyStopping": {"monitor": "val_acuracy"}}]})
    config["model"]["layers"].insert(1, {"Dropout": 0.1})
    write_config(tmp_path / "c.yaml", config)
    for command in ("validate", "fit"):
        result = runner.invoke(app, [command, "c.yaml"])
        assert isinstance(result.exception, SystemExit) and result.exit_code == 2, result.output
        assert "Config error: c.yaml: 2 problems:" in result.stderr
        assert "model.layers[1].Dropout (line " in result.stderr
        assert "Write e.g. - Dropout: {rate: 0.1}" in result.stderr
        assert ("fit.callbacks[0].EarlyStopping.monitor (line " in result.stderr and
                "received 'val_acuracy'. Did you mean 'val_accuracy'?" in result.stderr)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("uri, hint", [
    ("htp://127.0.0.1:5000", "received 'htp://127.0.0.1:5000'. Did you mean "
                             "'http://127.0.0.1:5000'?"),
    ("http://127.0.0.1:50x0", "a port from 1 to 65535"),
    ("sqlite://runs/mlflow.db", "three slashes, then the database file"),
    ("http://user:secret@:5000", "received 'http://user:***@:5000'"),
])
def test_a_tracking_uri_is_checked_by_its_form_with_the_config(runner, uri, hint):
    """Before: a typo in the scheme was a server away, found after training."""
    _refused(_validate(runner, tiny_config(tracking={"mlflow": {"uri": uri}}), "fit"),
             "tracking.mlflow.uri: expected", hint)


def test_track_on_the_command_line_is_checked_by_validate_and_fit(runner, tmp_path):
    write_config(Path("c.yaml"), tiny_config())
    for command in ("validate", "fit"):
        text = _refused(runner.invoke(app, [command, "c.yaml", "--track", "htp://h:5000"]),
                        "--track: expected a tracking URI", "Did you mean 'http://h:5000'?")
        assert "secret" not in text
    (tmp_path / "file").write_text("")  # a store's folder that cannot be made
    _refused(runner.invoke(app, ["fit", "c.yaml", "--track", f"sqlite:///{tmp_path}/file/m.db"]),
             "expected a local store whose folder exists or can be created",
             f"{tmp_path}/file is not a folder")


def test_a_sweep_does_not_search_where_runs_are_logged(runner):
    config = tiny_config(sweep={"params": {"tracking.mlflow.uri": ["http://h:5000"]}},
                         tracking={"mlflow": {}})
    _refused(_validate(runner, config), "sweep.params: expected keys of the model and its "
             "training (a sweep does not search where runs are logged)")
