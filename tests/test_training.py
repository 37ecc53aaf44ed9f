"""Training control: reproducible runs, resume, crash safety, NaN, run records, knobs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from nettrain.cli import app
from nettrain.engine.train import balanced_class_weight

from conftest import tiny_config, write_config, write_npz

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def control_config(**fit) -> dict:
    """Iris with Dropout (random state) and two stateful callbacks."""
    config = tiny_config()
    config["model"]["layers"].insert(1, {"Dropout": {"rate": 0.3}})
    config["compile"]["optimizer"] = {"Adam": {"learning_rate": 0.02}}
    config["fit"] = {"epochs": 4, "batch_size": 16, "verbose": 0, "callbacks": [
        {"EarlyStopping": {"monitor": "val_loss", "patience": 20}},
        {"ReduceLROnPlateau": {"monitor": "val_loss", "patience": 1, "factor": 0.5}}], **fit}
    return config


def weights(run: Path, name: str = "model.keras") -> list[np.ndarray]:
    model = keras.saving.load_model(run / name)
    return [*model.get_weights(), *(v.numpy() for v in model.optimizer.variables)]


def assert_identical(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)  # bit-identical, not approximately equal


def fit(runner, *args):
    result = runner.invoke(app, ["fit", *map(str, args)])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip())


def assert_resume_is_uninterrupted(runner, path: Path, tmp_path: Path) -> None:
    """4 epochs in one run, and 2 then a resume to 4, end with the same weights, optimizer
    state and history, bit for bit."""
    full = fit(runner, path, "--run-dir", tmp_path / "full")
    part = fit(runner, path, "fit.epochs=2", "--run-dir", tmp_path / "part")
    result = runner.invoke(app, ["fit", "--resume", str(part), "fit.epochs=4"])
    assert result.exit_code == 0, result.output
    assert_identical(weights(full), weights(part))
    assert (full / "history.csv").read_text() == (part / "history.csv").read_text()


# ----------------------------------------------------------------------- reproducibility


def test_two_fits_with_the_same_seed_are_bit_identical(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", control_config())
    first = fit(runner, path, "--run-dir", tmp_path / "a")
    second = fit(runner, path, "--run-dir", tmp_path / "b")
    assert_identical(weights(first), weights(second))
    assert (first / "history.csv").read_text() == (second / "history.csv").read_text()
    other = fit(runner, path, "seed=1", "--run-dir", tmp_path / "c")
    assert not np.array_equal(weights(first)[0], weights(other)[0])


def test_deterministic_tells_that_xla_is_off(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", {**tiny_config(), "deterministic": True})
    result = runner.invoke(app, ["fit", str(path)])
    assert result.exit_code == 0, result.output
    assert "op determinism is on, which turns XLA off" in result.stderr
    record = json.loads((Path(result.stdout.strip()) / "run.json").read_text())
    assert record["deterministic"] is True
    result = runner.invoke(app, ["validate", str(path), "compile.jit_compile=true"])
    assert result.exit_code == 2
    assert "compile.jit_compile (set on the command line): expected 'auto' or false with " \
           "deterministic: true" in result.stderr


# ----------------------------------------------------------------------------- resume


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", control_config())
    full = fit(runner, path, "--run-dir", tmp_path / "full")
    part = fit(runner, path, "fit.epochs=2", "--run-dir", tmp_path / "part")
    result = runner.invoke(app, ["fit", "--resume", str(part), "fit.epochs=4",
                                 "fit.callbacks.0.EarlyStopping.patience=30"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(part)
    assert "Resume changes fit.epochs: 2 -> 4" in result.stderr
    assert "fit.callbacks[0].EarlyStopping.patience: 20 -> 30" in result.stderr
    assert_identical(weights(full), weights(part))
    assert_identical(weights(full, "checkpoints/last.keras"),
                     weights(part, "checkpoints/last.keras"))
    assert (full / "history.csv").read_text() == (part / "history.csv").read_text()
    record = json.loads((part / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_completed"] == 4
    assert record["resumed"][0]["from_epoch"] == 2
    assert record["resumed"][0]["changes"]["fit.epochs"] == [2, 4]


@pytest.mark.parametrize("stream", [False, True], ids=["named-inputs", "streamed"])
def test_resume_is_bit_identical_with_tf_data_pipelines(runner, tmp_path, stream):
    """Named (string) inputs and streamed CSVs shuffle each epoch by seed and epoch number."""
    rng = np.random.default_rng(0)
    n = 90
    pd.DataFrame({"kind": rng.choice(["p", "q", "r"], n), "a": rng.normal(size=n),
                  "y": rng.integers(0, 2, n)}).to_csv(tmp_path / "d.csv", index=False)
    config = control_config()
    config["data"] = {"csv": str(tmp_path / "d.csv"), "target": "y", "categorical": ["kind"],
                      "validation_split": 0.2, "stream": stream}
    config["model"]["layers"][-1]["Dense"]["units"] = 2
    path = write_config(tmp_path / "c.yaml", config)
    assert_resume_is_uninterrupted(runner, path, tmp_path)


def test_resume_with_a_changed_architecture_is_refused(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config())
    run = fit(runner, path, "fit.epochs=1")
    before = (run / "run.json").read_text()
    result = runner.invoke(app, ["fit", "--resume", str(run), "fit.epochs=3",
                                 "model.layers.0.Dense.units=16", "compile.optimizer=sgd"])
    assert result.exit_code == 2
    err = result.stderr
    assert "the config differs from the run's: 2 problems" in err
    assert "model.layers[0].Dense.units: expected the run's value 8; received 16" in err
    assert "compile.optimizer: expected the run's value 'adam'; received 'sgd'" in err
    assert "fit.epochs" not in err.split("only these keys")[0]  # an allowed change
    assert isinstance(result.exception, SystemExit), result.exception  # handled: no crash
    assert (run / "run.json").read_text() == before  # nothing touched
    # a whole config file can be compared too
    changed = tiny_config()
    changed["model"]["layers"][0]["Dense"]["activation"] = "tanh"
    other = write_config(tmp_path / "other.yaml", changed)
    result = runner.invoke(app, ["fit", str(other), "--resume", str(run), "fit.epochs=3"])
    assert result.exit_code == 2
    assert "model.layers[0].Dense.activation: expected the run's value 'relu'" in result.stderr


def test_resume_needs_something_to_resume(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config())
    run = fit(runner, path)
    result = runner.invoke(app, ["fit", "--resume", str(run)])
    assert result.exit_code == 2
    assert "completed 2 of 2 epochs" in result.stderr and "fit.epochs=12" in result.stderr
    result = runner.invoke(app, ["fit", "--resume", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = runner.invoke(app, ["fit", str(path), "--resume", str(run), "--run-dir", "x"])
    assert result.exit_code == 2 and "stays in its own directory" in result.stderr


# ------------------------------------------------------------------- crash safety (real)


def _popen(*args, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nettrain", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_checkpoints_wait_for_checkpoint_every_seconds_but_a_stop_writes_the_last_epoch(
        runner, tmp_path):
    """With a long interval no epoch is written while training runs (a kill loses them), yet
    SIGINT still writes the last completed epoch, and the run resumes from it bit-identically."""
    config = control_config(epochs=500, batch_size=4, checkpoint_every_seconds=3600)
    path = write_config(tmp_path / "c.yaml", config)
    run = tmp_path / "stopped"
    proc = _popen("fit", path, "--run-dir", run, cwd=tmp_path)
    history = run / "history.csv"
    # Three epochs done: history.csv's row of epoch 4 comes after epoch 3's end, checkpoint
    # snapshot included (the row of epoch 3 is written before that snapshot is taken).
    for _ in range(6000):
        if history.is_file() and len(history.read_text().splitlines()) > 4:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    assert not (run / "checkpoints" / "last.keras").exists()  # not yet: the interval runs
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    record = json.loads((run / "run.json").read_text())
    done = record["epochs_completed"]
    assert record["status"] == "interrupted" and 3 <= done < 500
    assert f"Interrupted after {done} completed epoch(s)" in err
    assert_identical(weights(run), weights(run, "checkpoints/last.keras"))
    assert (run / "checkpoints" / "best.keras").is_file()
    result = runner.invoke(app, ["fit", "--resume", str(run), f"fit.epochs={done + 2}"])
    assert result.exit_code == 0, result.output
    full = fit(runner, path, f"fit.epochs={done + 2}", "--run-dir", tmp_path / "full")
    assert_identical(weights(full), weights(run))
    assert (full / "history.csv").read_text() == (run / "history.csv").read_text()


def test_a_run_that_ends_writes_its_last_epoch_whatever_the_interval(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", control_config(checkpoint_every_seconds=3600))
    run = fit(runner, path, "--run-dir", tmp_path / "run")
    from nettrain.run.checkpoints import read_state

    assert read_state(run / "checkpoints" / "last.keras").epoch == 4
    every = fit(runner, path, "fit.checkpoint_every_seconds=0", "--run-dir", tmp_path / "b")
    assert_identical(weights(run, "checkpoints/last.keras"),
                     weights(every, "checkpoints/last.keras"))
    assert_identical(weights(run, "checkpoints/best.keras"),
                     weights(every, "checkpoints/best.keras"))
    result = runner.invoke(app, ["validate", str(path), "fit.checkpoint_every_seconds=-1"])
    assert result.exit_code == 2
    assert "fit.checkpoint_every_seconds" in result.stderr


def test_resume_is_bit_identical_with_several_steps_per_execution(runner, tmp_path):
    """steps_per_execution: auto runs several batches per call (here 90 / 4 -> 23 batches
    in one call): a resumed run still ends as an uninterrupted one."""
    from nettrain.config.load import load_config
    from nettrain.data.steps import steps_per_execution

    path = write_config(tmp_path / "c.yaml", control_config(batch_size=4))
    config = load_config(path)
    assert config.compile.steps_per_execution == "auto"
    assert steps_per_execution(config, 90) == 23
    assert_resume_is_uninterrupted(runner, path, tmp_path)
    one = fit(runner, path, "compile.steps_per_execution=1", "--run-dir", tmp_path / "one")
    assert (one / "history.csv").is_file()


# ------------------------------------------------------------------------- a NaN loss


def nan_config() -> dict:
    """The learning rate grows a millionfold each epoch: epoch 1 is fine, then it diverges."""
    return tiny_config(
        data={"dataset": "diabetes", "validation_split": 0.2},
        model={"layers": [{"Dense": {"units": 1}}]},
        compile={"optimizer": {"SGD": {"learning_rate": {"ExponentialDecay": {
            "initial_learning_rate": 0.0001, "decay_steps": 12, "decay_rate": 1e6,
            "staircase": True}}}}, "loss": "mse"},
        fit={"epochs": 6, "batch_size": 32, "verbose": 0})


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_model(runner, tmp_path):
    """In this process (TensorFlow); every backend and loop: tests/test_signals.py."""
    path = write_config(tmp_path / "c.yaml", nan_config())
    result = runner.invoke(app, ["fit", str(path), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "the loss became NaN or infinite in epoch 2" in result.stderr
    assert "the last good checkpoint is from epoch 1" in result.stderr
    run = tmp_path / "run"
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and "epoch 2" in record["error"]
    assert record["saved"] == ["model.keras"]  # before: no model file at all
    assert_identical(weights(run), weights(run, "checkpoints/last.keras"))
    assert all(np.isfinite(w).all() for w in weights(run))


# -------------------------------------------------------------------- records and knobs


def test_run_json_records_data_hashes_versions_and_the_git_commit(runner, tmp_path):
    import hashlib

    write_npz(tmp_path / "d.npz", n=30)
    config = tiny_config(data={"npz": "d.npz", "validation_split": 0.2})
    path = write_config(tmp_path / "c.yaml", config)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "c.yaml"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "config"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True).stdout.strip()
    run = fit(runner, path)
    record = json.loads((tmp_path / run / "run.json").read_text())
    assert record["data_sha256"] == {  # config.yaml holds data paths as absolute paths
        str(tmp_path / "d.npz"): hashlib.sha256((tmp_path / "d.npz").read_bytes()).hexdigest()}
    assert record["git"] == {"commit": head, "config_changed": False}
    assert set(record["versions"]) == {"nettrain", "keras", "tensorflow", "python"}
    assert record["seed"] == 0 and record["host"] and record["command"]
    assert record["status"] == "completed" and record["started"] <= record["ended"]
    assert {p.name for p in (tmp_path / run / "checkpoints").iterdir()} == {
        "last.keras", "best.keras"}


def test_balanced_class_weight():
    assert balanced_class_weight([3, 1]) == {0: 4 / 6, 1: 2.0}
    assert balanced_class_weight([2, 0, 1, 1]) == {0: 4 / 6, 2: 4 / 3, 3: 4 / 3}


def test_class_counts_of_one_hot_and_streamed_labels(tmp_path):
    from nettrain.config.load import load_config
    from nettrain.data.loading import load_data

    config = tiny_config(data={"dataset": "iris", "one_hot": True},
                         compile={"optimizer": "adam", "loss": "categorical_crossentropy"})
    data = load_data(load_config(write_config(tmp_path / "c.yaml", config)))
    assert data.class_counts().tolist() == [50, 50, 50]
    (tmp_path / "d.csv").write_text("a,y\n" + "".join(f"{i},{'ab'[i % 3 == 0]}\n"
                                                      for i in range(30)))
    config = tiny_config(data={"csv": str(tmp_path / "d.csv"), "target": "y", "stream": True})
    data = load_data(load_config(write_config(tmp_path / "s.yaml", config)))
    assert data.classes == ["a", "b"] and data.class_counts().tolist() == [20, 10]


def test_class_weight_mixed_precision_and_schedules_train(runner, tmp_path):
    config = tiny_config(mixed_precision="mixed_bfloat16")
    config["fit"]["class_weight"] = "balanced"
    config["model"]["layers"][-1]["Dense"]["dtype"] = "float32"
    config["compile"]["optimizer"] = {"SGD": {"learning_rate": {
        "CosineDecay": {"initial_learning_rate": 0.1, "decay_steps": 20}}}}
    run = fit(runner, write_config(tmp_path / "c.yaml", config))
    model = keras.saving.load_model(tmp_path / run / "model.keras")
    assert model.layers[0].dtype_policy.name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    # the next run (same process) is back to float32
    run = fit(runner, write_config(tmp_path / "d.yaml", tiny_config()))
    assert keras.mixed_precision.global_policy().name == "float32"
    config = tiny_config(compile={"optimizer": "adam", "loss": "mse"})
    config["model"]["layers"][-1]["Dense"]["units"] = 1
    config["fit"]["class_weight"] = {0: 1.0, 1: 2.0}
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "e.yaml", config))])
    assert result.exit_code == 2
    assert "fit.class_weight (line" in result.stderr
    assert "class_weight only with a classification loss; received loss 'mse'" in result.stderr
    config = tiny_config(compile={"optimizer": {"Adam": {"learning_rate": {
        "CosineDecay": {"initial_learning_rate": 0.1, "decay_steps": 20}}}},
        "loss": "sparse_categorical_crossentropy"})
    config["fit"]["callbacks"] = [{"ReduceLROnPlateau": {"patience": 1}}]
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "f.yaml", config))])
    assert result.exit_code == 2
    assert "fit.callbacks[0].ReduceLROnPlateau (line" in result.stderr
    assert "Keras cannot lower a schedule); received the schedule CosineDecay" in result.stderr


def test_multi_worker_is_refused_with_the_reason(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", {**tiny_config(), "distribute": "multi_worker"})
    result = runner.invoke(app, ["fit", str(path)])
    assert result.exit_code == 2
    assert "keras-team/keras#20585" in result.stderr
    assert "Use distribute: mirrored" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    """Logical devices must be set before TensorFlow initializes: a fresh process."""
    path = write_config(tmp_path / "c.yaml", {**tiny_config(), "distribute": "mirrored"})
    code = (
        "import sys, tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(\n"
        "    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
        "from nettrain.cli import app\n"
        f"sys.argv = ['nettrain', 'fit', {str(path)!r}, '--run-dir', 'run']\n"
        "app()\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "completed" and record["replicas"] == 2
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert np.isfinite(metrics["test"]["loss"])


def test_formats_from_an_earlier_save_are_not_used(runner, tmp_path):
    """A resume that drops a format from save.formats leaves its old files behind."""
    path = write_config(tmp_path / "c.yaml", {**control_config(epochs=2),
                                              "save": {"formats": ["keras", "json"]}})
    run = fit(runner, path, "--run-dir", tmp_path / "run")
    result = runner.invoke(app, ["fit", "--resume", str(run), "fit.epochs=3",
                                 "save.formats=[keras]"])
    assert result.exit_code == 0, result.output
    assert (run / "model.json").is_file()  # nothing written is deleted
    result = runner.invoke(app, ["evaluate", str(run), "--format", "json"])
    assert result.exit_code == 2
    assert "from an earlier save" in result.stderr
    assert runner.invoke(app, ["evaluate", str(run)]).exit_code == 0


@pytest.mark.parametrize("steps_per_execution", ["auto", 2])
def test_validation_logged_during_fit_is_one_pass_over_the_validation_split(
        runner, tmp_path, steps_per_execution):
    """history.csv's val_ columns (what EarlyStopping, ModelCheckpoint and the display read)
    are the validation split measured once, as metrics.json measures it with the same final
    weights. Here 75 training samples make 5 batches (5 per call with auto) and 45 validation
    samples 3: a call that ran past the validation batches counted some of them twice."""
    config = tiny_config(data={"dataset": "iris", "validation_split": 0.3, "test_split": 0.2},
                         compile={"optimizer": "adam", "loss": "sparse_categorical_crossentropy",
                                  "metrics": ["accuracy"],
                                  "steps_per_execution": steps_per_execution},
                         fit={"epochs": 2, "batch_size": 16, "verbose": 0},
                         save={"formats": ["keras"]})
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config)),
                                 "--run-dir", str(tmp_path / "run")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0, result.output
    last = pd.read_csv(tmp_path / "run" / "history.csv").iloc[-1]
    final = json.loads((tmp_path / "run" / "metrics.json").read_text())["validation"]
    assert last["val_loss"] == pytest.approx(final["loss"], rel=1e-5)
    assert last["val_accuracy"] == pytest.approx(final["accuracy"], rel=1e-6)


def test_a_metric_keras_maximises_has_one_best_epoch_everywhere(runner, tmp_path, monkeypatch):
    """EarlyStopping on val_pearson_correlation, mode auto: Keras maximises it (the metric's
    direction, not its name). fit's "Best epoch", the live "* best" marker (also after a
    resume), best.keras and ``runs compare`` name the epoch EarlyStopping kept: the highest,
    not the lowest."""
    from rich.console import Console

    from nettrain.cli import common as cli
    from nettrain.run.checkpoints import read_state

    monkeypatch.setattr(cli, "err", Console(stderr=True, force_terminal=True, width=200))
    config = tiny_config(
        seed=3, data={"dataset": "diabetes", "validation_split": 0.2},
        model={"layers": [{"Dense": {"units": 8, "activation": "relu"}},
                          {"Dense": {"units": 1}}]},
        compile={"optimizer": {"Adam": {"learning_rate": 0.1}}, "loss": "mse",
                 "metrics": [{"PearsonCorrelation": {"axis": 0}}]},
        fit={"epochs": 6, "batch_size": 64, "verbose": "auto", "callbacks": [
            {"EarlyStopping": {"monitor": "val_pearson_correlation", "patience": 100}}]})
    path = write_config(tmp_path / "c.yaml", config)
    first = runner.invoke(app, ["fit", str(path), "--run-dir", "run", "fit.epochs=3"])
    assert first.exception is None and first.exit_code == 0, first.output
    result = runner.invoke(app, ["fit", "--resume", "run", "fit.epochs=6"])
    assert result.exception is None and result.exit_code == 0, result.output
    values = list(pd.read_csv("run/history.csv")["val_pearson_correlation"])
    kept = read_state(Path("run/checkpoints/last.keras")).callbacks[0]["state"]["best_epoch"] + 1
    assert kept == values.index(max(values)) + 1 != values.index(min(values)) + 1
    shown = ANSI.sub("", first.stderr + result.stderr)
    assert f"Best epoch    {kept} of 6: highest val_pearson_correlation {max(values):.4f} " \
        "(EarlyStopping's monitor)" in shown
    # each epoch higher than every one before it, the resumed ones too
    rows = re.findall(r"(\d+)/[36] +[\d.]+s +[\d,]* │(.*)", shown)  # epoch rows, not bars
    assert [int(epoch) for epoch, rest in rows if "* best" in rest] == \
        [e + 1 for e, v in enumerate(values) if v > max(values[:e], default=-2)]
    assert read_state(Path("run/checkpoints/best.keras")).epoch == kept
    other = tmp_path / "other"
    shutil.copytree("run", other)
    result = runner.invoke(app, ["runs", "compare", "run", str(other), "--json"])
    assert result.exception is None and result.exit_code == 0, result.output
    assert [r["best_epoch"]["epoch"] for r in json.loads(result.stdout)["runs"]] == [kept] * 2