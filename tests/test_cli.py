"""The CLI as a user runs it: exit codes, messages, no tracebacks, the run directory."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from nettrain.cli import app

from conftest import tiny_config, write_config, write_npz


def test_help_lists_the_commands_in_the_order_a_user_meets_them(runner):
    """fit first, then validate, evaluate, predict, ...: track came first (the order in which
    the modules happened to register their commands)."""
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    listed = re.findall(r"(?m)^│ (\w+) ", result.output.split("Commands")[1])
    assert listed == ["fit", "validate", "evaluate", "predict", "runs", "init", "schema",
                      "sweep", "track", "export", "serve"], listed


def test_validate_prints_the_summary_and_parameter_count(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config())
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "Total params: 67" in result.stdout  # 4*8+8 + 8*3+3
    assert "67 parameters" in result.stdout
    assert not (tmp_path / "runs").exists()  # validate writes nothing


@pytest.mark.parametrize("change, expected", [
    ({"model": {"layers": [{"Dence": {"units": 3}}]}},
     "model.layers[0].Dence: expected a Keras layer name"),
    ({"model": {"layers": [{"Dense": {"unitz": 3}}]}},
     "model.layers[0].Dense.unitz: expected an argument of Dense"),
    ({"model": {"layers": [{"Dense": {"units": 3, "activation": "softmx"}}]}},
     "Did you mean 'softmax'?"),
    ({"model": {"layers": [{"Dense": {"units": -3}}]}},
     "expected a positive integer. Received: units=-3"),
    ({"compile": {"optimizer": "adamm", "loss": "mse"}},
     "compile.optimizer: expected a Keras optimizer name"),
    ({"compile": {"optimizer": {"SGD": {"learning_rat": 0.1}}, "loss": "mse"}},
     "Did you mean 'learning_rate'?"),
    ({"compile": {"optimizer": "adam", "loss": "mean_squred_error"}},
     "Did you mean 'mean_squared_error'?"),
    ({"fit": {"epochs": 1, "callbacks": [{"EarlyStoping": {}}]}},
     "Did you mean 'EarlyStopping'?"),
])
def test_keras_mistakes_are_config_errors(runner, tmp_path, change, expected):
    path = write_config(tmp_path / "c.yaml", tiny_config(**change))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert expected in re.sub(r" \(line \d+\)", "", result.stderr)
    assert isinstance(result.exception, SystemExit), result.exception  # handled: no crash


def test_all_keras_mistakes_at_once_with_lines(runner, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "data: {dataset: iris}\n"
        "model:\n"
        "  layers:\n"
        "    - Dence: {units: 10}\n"
        "    - Dense: {unitz: 3, activation: softmax}\n"
        "compile: {optimizer: adamm, loss: sparse_categorical_crossentropy}\n")
    result = runner.invoke(app, ["fit", str(path)])
    assert result.exit_code == 2
    err = result.stderr
    assert "3 problems" in err
    assert "model.layers[0].Dence (line 4)" in err and "Did you mean 'Dense'?" in err
    assert "model.layers[1].Dense.unitz (line 5)" in err and "Did you mean 'units'?" in err
    assert "compile.optimizer (line 6)" in err and "Did you mean 'Adam'?" in err
    assert not (tmp_path / "runs").exists()


def test_labels_that_do_not_fit_the_loss(runner, tmp_path):
    config = tiny_config(compile={"optimizer": "adam", "loss": "categorical_crossentropy"})
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2
    assert "data.one_hot: true" in result.stderr


def test_output_units_must_match_the_classes(runner, tmp_path):
    config = tiny_config()
    config["model"]["layers"][1]["Dense"]["units"] = 5
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2
    assert "model.layers[1].Dense.units" in result.stderr
    assert "expected 3 outputs, one per class (setosa, versicolor, virginica)" in result.stderr


def test_input_shape_mismatch_shows_both_shapes(runner, tmp_path):
    config = tiny_config()
    config["model"]["input_shape"] = [5]
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2
    assert "model.input_shape" in result.stderr and "[4]" in result.stderr
    assert "[5]" in result.stderr


def test_override_errors_exit_2(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config())
    result = runner.invoke(app, ["fit", str(path), "fit.epoch=3"])
    assert result.exit_code == 2
    assert "Did you mean 'epochs'?" in result.stderr
    result = runner.invoke(app, ["fit", str(path), "epochs"])
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.stderr


def test_missing_config_file(runner, tmp_path):
    result = runner.invoke(app, ["fit", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert "missing.yaml" in result.stderr and "no such file" in result.stderr


def test_a_missing_config_file_suggests_a_close_name_in_its_folder(runner, tmp_path):
    write_config(tmp_path / "churn.yaml", tiny_config())
    result = runner.invoke(app, ["validate", str(tmp_path / "churn.yml")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.stderr == (f"Config error: config: expected an existing YAML file; received "
                             f"'{tmp_path / 'churn.yml'}' (no such file). Did you mean "
                             f"'{tmp_path / 'churn.yaml'}'?\n")


def _complete(runner, line: str) -> list[str]:
    """What bash completion offers for the last word of ``line`` (click's protocol)."""
    words = line.split(" ")
    result = runner.invoke(app, [], prog_name="nettrain", env={
        "_NETTRAIN_COMPLETE": "complete_bash", "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1)})
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def test_runs_completes_its_compare_sub_command(runner, tmp_path):
    assert _complete(runner, "nettrain runs co") == ["compare"]
    (tmp_path / "configs").mkdir()  # ROOT may be a folder that starts so too
    assert _complete(runner, "nettrain runs co") == ["compare", "configs/"]
    # no sub-command fits: nothing offered, so the shell completes paths itself (-o default)
    assert _complete(runner, "nettrain runs conf") == []
    assert _complete(runner, "nettrain runs ") == []
    assert _complete(runner, "nettrain ru") == ["runs"]


def test_yaml_syntax_error_exit_2(runner, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ndata: {dataset: iris\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "line 3, column 1" in result.stderr


def test_fit_writes_a_new_run_directory_each_time(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config(save={"formats": ["keras"]}))
    first = runner.invoke(app, ["fit", str(path)])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["fit", str(path)])
    assert second.exit_code == 0, second.output
    run1, run2 = first.stdout.strip(), second.stdout.strip()
    assert run1 != run2
    for run in (run1, run2):
        files = {p.name for p in (tmp_path / run).iterdir()}
        assert {"config.yaml", "model.keras", "history.csv", "metrics.json", "summary.txt",
                "run.json", "dataset.json"} <= files
    metrics = json.loads((tmp_path / run1 / "metrics.json").read_text())
    assert set(metrics) == {"train", "validation", "test"}
    assert {"loss", "accuracy"} <= set(metrics["test"])
    assert "Total params: 67" in (tmp_path / run1 / "summary.txt").read_text()
    history = (tmp_path / run1 / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2  # header + one row per epoch
    assert json.loads((tmp_path / run1 / "run.json").read_text())["status"] == "completed"


def test_run_dir_that_holds_files_is_refused_and_untouched(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config())
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["fit", str(path), "--run-dir", str(used)])
    assert result.exit_code == 2
    assert "already holds files" in result.stderr
    assert [p.name for p in used.iterdir()] == ["keep.txt"]
    assert (used / "keep.txt").read_text() == "mine"
    fresh = tmp_path / "fresh"
    result = runner.invoke(app, ["fit", str(path), "--run-dir", str(fresh)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(fresh)
    assert (fresh / "model.keras").is_file()


def test_config_yaml_in_the_run_repeats_the_run(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config())
    run = runner.invoke(app, ["fit", str(path), "fit.epochs=1"]).stdout.strip()
    again = runner.invoke(app, ["fit", f"{run}/config.yaml"])
    assert again.exit_code == 0, again.output
    m1 = json.loads((tmp_path / run / "metrics.json").read_text())
    m2 = json.loads((tmp_path / again.stdout.strip() / "metrics.json").read_text())
    assert m1 == m2


def test_evaluate_unknown_run_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_evaluate_missing_split(runner, tmp_path):
    config = tiny_config(data={"dataset": "iris"})
    run = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    result = runner.invoke(app, ["evaluate", run.stdout.strip(), "--split", "test"])
    assert result.exit_code == 2
    assert "no test part" in result.stderr


def test_offline_keras_dataset_says_where_the_file_goes(runner, tmp_path):
    config = tiny_config(data={"dataset": "mnist"})
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 1
    assert str(tmp_path / "keras_home" / "datasets" / "mnist.npz") in result.stderr
    assert isinstance(result.exception, SystemExit), result.exception  # handled: no crash
    assert not (tmp_path / "runs").exists()


def _run(*args, **kwargs):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=300, **kwargs)


def test_help_does_not_import_tensorflow():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom nettrain.cli import app\n"
            "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    assert _run("-c", code).stdout.split() == ["False", "False"]


def test_the_schema_path_does_not_import_tensorflow(tmp_path):
    # validate and fit then load Keras to check the names of what parsed (all problems at once)
    path = write_config(tmp_path / "c.yaml", tiny_config(fit={"epochz": 1}))
    code = ("import sys\nfrom nettrain.config.load import load_config\nfrom nettrain.errors import "
            f"ConfigError\ntry:\n    load_config({str(path)!r})\nexcept ConfigError as e:\n"
            "    print('epochz' in str(e), 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    assert _run("-c", code).stdout.split() == ["True", "False", "False"]


def test_real_subprocess_fit_evaluate_predict(tmp_path):
    """The README's path, as real processes: clean stderr, the run directory on stdout."""
    x, y = write_npz(tmp_path / "d.npz", n=30)
    config = tiny_config(data={"npz": str(tmp_path / "d.npz"), "test_split": 0.2})
    path = write_config(tmp_path / "c.yaml", config)
    fit = _run("-m", "nettrain", "fit", str(path), cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr
    run = fit.stdout.strip()
    assert run.startswith("runs/tiny/") or run.startswith(str(tmp_path / "runs"))
    assert "I0000" not in fit.stderr and "oneDNN" not in fit.stderr
    ev = _run("-m", "nettrain", "evaluate", run, cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    assert "accuracy" in ev.stdout and "test" in ev.stdout
    np.save(tmp_path / "rows.npy", x[:5])
    pred = _run("-m", "nettrain", "predict", run, str(tmp_path / "rows.npy"), cwd=tmp_path)
    assert pred.returncode == 0, pred.stderr
    lines = pred.stdout.strip().splitlines()
    assert lines[0] == "class,prob_0,prob_1,prob_2"
    assert len(lines) == 6
    bad = _run("-m", "nettrain", "validate", str(tmp_path / "missing.yaml"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "missing.yaml" in bad.stderr


# ------------------------------------------------ what a new user ran into (fixed)


def test_exponent_floats_and_whole_numbers_are_numbers(runner, tmp_path):
    config = tiny_config(compile={"optimizer": "adam", "loss": "sparse_categorical_crossentropy"})
    path = tmp_path / "c.yaml"
    path.write_text(write_config(tmp_path / "tmp.yaml", config).read_text().replace(
        "optimizer: adam", "optimizer: {Adam: {learning_rate: 1e-3}}"))
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 0
    result = runner.invoke(app, ["validate", str(path), "compile.optimizer.Adam.learning_rate=1"])
    assert result.exit_code == 0, result.output


def test_a_key_written_twice_is_refused(runner, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: iris}\nmodel:\n  layers: [{Dense: {units: 3, units: 4}}]\n"
                    "compile: {loss: mse}\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "the key 'units' is written twice" in result.stderr and "line 3" in result.stderr


def test_a_misspelled_initializer_string(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config())
    result = runner.invoke(app, ["validate", str(path),
                                 "model.layers.0.Dense.kernel_initializer=he_norml"])
    assert result.exit_code == 2
    assert "Did you mean 'he_normal'?" in result.stderr


def test_a_layer_that_needs_more_dimensions_gets_a_reshape_hint(runner, tmp_path):
    config = tiny_config(data={"dataset": "digits"})
    config["model"]["layers"].insert(0, {"Conv2D": {"filters": 2, "kernel_size": 3}})
    config["model"]["layers"][-1]["Dense"]["units"] = 10
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2
    assert "model.layers[0].Conv2D (line" in result.stderr
    assert "of shape [None, 64]" in result.stderr
    assert "data.reshape: [8, 8, 1]" in result.stderr
    result = runner.invoke(app, ["validate", str(tmp_path / "c.yaml"), "data.reshape=[8, 8, 1]",
                                 "model.layers.1=Flatten"])
    assert result.exit_code == 0, result.output


def test_a_val_monitor_needs_a_validation_split(runner, tmp_path):
    config = tiny_config(data={"dataset": "iris"})
    config["fit"]["callbacks"] = [{"EarlyStopping": {"monitor": "val_loss"}}]
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2
    assert "fit.callbacks[0].EarlyStopping.monitor" in result.stderr
    assert "Set data.validation_split" in result.stderr


def test_brackets_in_messages_are_printed(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config())
    result = runner.invoke(app, ["validate", str(path), "compile.metrics=accuracy"])
    assert result.exit_code == 2
    assert "e.g. [accuracy]" in result.stderr


def test_evaluate_from_another_folder(runner, tmp_path, monkeypatch):
    write_npz(tmp_path / "d.npz", n=30)
    config = tiny_config(data={"npz": "d.npz", "test_split": 0.2})  # relative to the cwd
    run = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert run.exit_code == 0, run.output
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = runner.invoke(app, ["evaluate", str(tmp_path / run.stdout.strip())])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["evaluate", str(tmp_path / run.stdout.strip()),
                                 "--format", "json"])
    assert result.exit_code == 2
    assert "this run saved keras, not json" in result.stderr


def test_data_and_model_mistakes_name_the_file_and_line(runner, tmp_path):
    config = tiny_config(data={"dataset": "iris"},
                         compile={"optimizer": "adam", "loss": "binary_crossentropy"})
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2
    assert f"{tmp_path / 'c.yaml'}: compile.loss (line" in result.stderr
    assert "Use sparse_categorical_crossentropy with 3 softmax units." in result.stderr


def test_run_dir_that_is_a_file_or_cannot_be_made(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config())
    result = runner.invoke(app, ["fit", str(path), "--run-dir", str(path)])
    assert result.exit_code == 2 and "it is a file" in result.stderr
    result = runner.invoke(app, ["fit", str(path), "--run-dir", "/proc/nettrain/run"])
    assert result.exit_code == 2 and "cannot create it" in result.stderr


def test_cross_entropy_needs_probabilities_from_the_last_layer(runner, tmp_path):
    config = tiny_config()
    config["model"]["layers"][-1]["Dense"].pop("activation")
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2
    assert "model.layers[1].Dense.activation (line" in result.stderr
    assert "{SparseCategoricalCrossentropy: {from_logits: true}}" in result.stderr


def test_legacy_argument_names_get_the_new_name(runner, tmp_path):
    config = tiny_config(compile={"optimizer": {"Adam": {"lr": 0.1}},
                                  "loss": "sparse_categorical_crossentropy"})
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2
    assert "Did you mean 'learning_rate'?" in result.stderr
