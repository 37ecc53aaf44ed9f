"""Guards for promises of the README that a mutation test found unguarded: each test here
failed with a small edit of nettrain/ that broke what it checks, and passes without it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nettrain.cli import app

from conftest import tiny_config, write_config
from test_evaluate import refused, write_csv


def _probabilities(stdout: str) -> list[list[float]]:
    return [[float(v) for v in line.split(",")[1:]] for line in stdout.strip().splitlines()[1:]]


# ------------------------------------------------------------------ the out-of-vocabulary token


def test_a_category_named_like_the_oov_token_is_told_apart_from_an_unseen_one(runner, tmp_path):
    """'[UNK]' sorts before 'b', so it is the first entry of the vocabulary: Keras merges an
    OOV token equal to the first entry with it ('[UNK]' and 'zz' would both be unknown)."""
    rng = np.random.default_rng(0)
    n = 40
    tag = rng.choice(["[UNK]", "b"], n)
    frame = pd.DataFrame({"tag": tag, "x": rng.normal(size=n).round(3),
                          "y": (tag == "[UNK]").astype(int)})
    frame.to_csv(tmp_path / "train.csv", index=False)
    config = tiny_config(data={"csv": str(tmp_path / "train.csv"), "target": "y",
                               "categorical": ["tag"], "validation_split": 0.0,
                               "test_split": 0.0},
                         model={"layers": [{"Dense": {"units": 2, "activation": "softmax"}}]},
                         save={"formats": ["keras", "json"]})
    fit = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert fit.exit_code == 0, fit.output
    run = fit.stdout.strip()
    (tmp_path / "rows.csv").write_text("tag,x\n[UNK],0.5\nzz,0.5\nb,0.5\n")
    for fmt in ("keras", "json"):
        result = runner.invoke(app, ["predict", run, str(tmp_path / "rows.csv"),
                                     "--format", fmt])
        assert result.exit_code == 0, result.output
        known, unseen, other = _probabilities(result.stdout)
        assert known != unseen, (fmt, result.stdout)  # '[UNK]' is not the unknown slot
        assert len({tuple(known), tuple(unseen), tuple(other)}) == 3, (fmt, result.stdout)


# ------------------------------------------------------------- the YAML bound of 10,000 values


def _values(value) -> int:
    """How many values a loaded YAML tree holds, the way the README counts them: each
    mapping, key, list and scalar is one (an alias counts as a copy of its anchor)."""
    if isinstance(value, dict):
        return 1 + sum(1 + _values(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_values(v) for v in value)
    return 1


def _bounded_config(path: Path, total: int) -> Path:
    """A valid config of exactly ``total`` values with its aliases expanded: most of them in
    an anchor (a list of bin boundaries) that a second layer uses again, so the text alone
    holds about half as many."""
    import yaml

    def text(bins: int, shape: bool) -> str:
        boundaries = ", ".join(map(str, range(bins)))
        return (
            "name: bound\nseed: 0\n"
            "data: {dataset: iris, validation_split: 0.2, test_split: 0.2}\n"
            "model:\n" + ("  input_shape: [4]\n" if shape else "") + "  layers:\n"
            f"    - Discretization: {{bin_boundaries: &bins [{boundaries}]}}\n"
            "    - Discretization: {bin_boundaries: *bins}\n"
            "    - Dense: {units: 3, activation: softmax}\n"
            "compile: {optimizer: adam, loss: sparse_categorical_crossentropy}\n"
            "fit: {epochs: 1, batch_size: 16, verbose: 0}\n")

    # an alias adds each boundary twice; input_shape: [4] adds 3 values, to make the rest even
    shape = (total - _values(yaml.safe_load(text(0, False)))) % 2 == 1
    bins = (total - _values(yaml.safe_load(text(0, shape)))) // 2
    written = text(bins, shape)
    assert _values(yaml.safe_load(written)) == total
    path.write_text(written)
    return path


def test_a_config_of_10000_values_loads_and_one_more_is_refused(runner, tmp_path):
    under = runner.invoke(app, ["validate", str(_bounded_config(tmp_path / "under.yaml",
                                                                10_000))])
    assert under.exit_code == 0, under.output
    assert "OK " in under.stdout
    path = _bounded_config(tmp_path / "over.yaml", 10_001)
    over = runner.invoke(app, ["validate", str(path)])
    assert over.exit_code == 2, over.output[-300:]
    assert isinstance(over.exception, SystemExit)
    message = " ".join(over.stderr.split())
    assert f"Config error: {path}" in message
    assert "expected aliases that expand to at most 10,000 values" in message


# --------------------------------------------------------------------------- sweep trials


def _sweep_config(**sweep) -> dict:
    """The tiny iris classifier, one epoch a trial, with a sweep of the learning rate (as in
    test_sweep.py)."""
    config = tiny_config(fit={"epochs": 1, "batch_size": 16, "verbose": 0},
                         save={"formats": ["keras"]},
                         compile={"optimizer": {"SGD": {"learning_rate": 0.05}},
                                  "loss": "sparse_categorical_crossentropy",
                                  "metrics": ["accuracy"]})
    config["sweep"] = {"metric": "val_accuracy", "trials": 1, "sampler": "random",
                       "pruner": "none",
                       "params": {"compile.optimizer.SGD.learning_rate":
                                  {"log_uniform": [0.01, 0.1]}}, **sweep}
    return config


def _study(url: str, name: str = "tiny"):
    import optuna

    return optuna.load_study(study_name=name, storage=url)


def _trained_rate(path: Path) -> float:
    """The learning rate a trial's run directory trained with (its config.yaml)."""
    import yaml

    config = yaml.safe_load((path / "config.yaml").read_text())
    return config["compile"]["optimizer"]["SGD"]["learning_rate"]


def test_a_running_trial_of_a_reused_pid_is_failed_and_drawn_again(runner, tmp_path):
    """A trial's process is host:pid:start. A live pid with another start time is another
    process that reuses the pid of a worker that died: its trial is failed and drawn again;
    a live pid with its own start time is a live worker, whose trial is left running."""
    import optuna

    from nettrain.sweep.spec import HOST
    from nettrain.sweep.trials import _start_time

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="tiny", storage=url, direction="maximize")
    rate = optuna.distributions.FloatDistribution(0.01, 0.1, log=True)
    pid, start = os.getpid(), _start_time(os.getpid())
    assert start.isdigit()
    reused = study.ask({"learning_rate": rate})
    reused.set_user_attr("process", f"{HOST}:{pid}:{int(start) + 1}")
    live = study.ask({"learning_rate": rate})
    live.set_user_attr("process", f"{HOST}:{pid}:{start}")
    config = write_config(tmp_path / "c.yaml", _sweep_config(trials=2))
    result = runner.invoke(app, ["sweep", str(config), "--storage", url,
                                 "--run-dir", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    trials = _study(url).get_trials()
    assert trials[reused.number].state.name == "FAIL", [t.state.name for t in trials]
    assert trials[reused.number].user_attrs["interrupted"] == "its process ended while it trained"
    assert trials[live.number].state.name == "RUNNING"  # it counts: no other trial ran
    assert len(trials) == 3, [t.state.name for t in trials]
    again, = [t for t in trials if t.user_attrs.get("retry_of") == reused.number]
    assert again.state.name == "COMPLETE"
    assert again.params == trials[reused.number].params
    assert _trained_rate(tmp_path / "s" / again.user_attrs["run"]) == \
        trials[reused.number].params["learning_rate"]


# A trial stopped by Ctrl-C is drawn again with its values (issue 15's fourth guard): in
# tests/test_sweep.py::test_an_interrupted_sweep_continues_with_the_same_command, whose sweep
# process it shared all but the trial's number (a second sweep process and three trials).


def test_pruned_trials_count_towards_the_sweeps_trials(runner, tmp_path):
    """A study of one completed and one pruned trial has the 2 trials asked: the same
    command trains none."""
    import optuna

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="tiny", storage=url, direction="maximize")
    rate = optuna.distributions.FloatDistribution(0.01, 0.1, log=True)
    for state, value in ((optuna.trial.TrialState.COMPLETE, 0.9),
                         (optuna.trial.TrialState.PRUNED, 0.5)):
        trial = study.ask({"learning_rate": rate})
        trial.report(value, step=1)
        trial.set_user_attr("value", value)
        study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None,
                   state=state)
    config = write_config(tmp_path / "c.yaml", _sweep_config(trials=2))
    result = runner.invoke(app, ["sweep", str(config), "--storage", url,
                                 "--run-dir", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "Continuing study tiny: 2 of 2 trials finished." in result.stderr
    assert [t.state.name for t in _study(url).get_trials()] == ["COMPLETE", "PRUNED"]
    assert not list((tmp_path / "s").glob("trial-*"))


def test_the_claim_lock_holds_a_second_worker_until_the_first_lets_go(tmp_path):
    """Two workers of one SQLite study (two StudyLocks on the sweep's lock file): while one
    holds the lock, the other waits in take()."""
    import threading

    from nettrain.sweep.storage import StudyLock

    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    first, second = (StudyLock(url, "tiny", tmp_path / ".claim.lock") for _ in range(2))
    first.take()
    taken = threading.Event()
    waiter = threading.Thread(target=lambda: (second.take(), taken.set()), daemon=True)
    waiter.start()
    try:
        assert not taken.wait(1.0), "the second worker took a lock the first holds"
        first.release()
        assert taken.wait(30)
    finally:
        first.close()
        waiter.join(30)
        second.close()


# ---------------------------------------------------------------------------- the run record


def test_a_failed_run_finished_by_resume_is_completed_without_the_old_error(runner, tmp_path,
                                                                             monkeypatch):
    """run.json holds the error of a failed run only: the disk is full when the model is
    moved into place (as in test_resume.py), then space is freed and --resume finishes it."""
    import errno
    import json

    replace = os.replace

    def disk_full(source, target, *args, **kwargs):
        if Path(target).name == "model.keras":
            raise OSError(errno.ENOSPC, "No space left on device")
        return replace(source, target, *args, **kwargs)

    config = write_config(tmp_path / "c.yaml", tiny_config())
    run = tmp_path / "run"
    monkeypatch.setattr(os, "replace", disk_full)
    result = runner.invoke(app, ["fit", str(config), "--run-dir", str(run)])
    assert result.exit_code == 1, result.output
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and "No space left on device" in record["error"]
    monkeypatch.setattr(os, "replace", replace)  # space freed
    result = runner.invoke(app, ["fit", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_completed"] == 2
    assert record.get("error") is None, record["error"]
    assert [r["from_epoch"] for r in record["resumed"]] == [2]


# ------------------------------------------------------------------------ the data fingerprint


def _ab_config(train: Path, **data) -> dict:
    return tiny_config(data={"csv": str(train), "target": "y", **data},
                       model={"layers": [{"Dense": {"units": 2, "activation": "softmax"}}]},
                       fit={"epochs": 1, "batch_size": 16, "verbose": 0})


def test_explicit_validation_and_test_files_are_fingerprinted_too(runner, tmp_path):
    train, validation, test = (write_csv(tmp_path / f"{name}.csv", seed=seed, n=n)
                               for name, seed, n in (("train", 0, 40), ("val", 1, 10),
                                                     ("held", 2, 10)))
    config = _ab_config(train, validation=str(validation), test=str(test))
    fit = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config)),
                              "--run-dir", str(tmp_path / "run")])
    assert fit.exit_code == 0, fit.output
    for changed in (test, validation):
        kept = changed.read_bytes()
        write_csv(changed, seed=3, n=10)  # other rows, same columns
        result = runner.invoke(app, ["evaluate", str(tmp_path / "run")])
        refused(result, 1, f"{changed} has changed since training (its sha256 differs")
        changed.write_bytes(kept)
    assert runner.invoke(app, ["evaluate", str(tmp_path / "run")]).exit_code == 0


def test_a_change_past_the_first_mebibyte_of_a_data_file_is_found(runner, tmp_path):
    """The whole file is hashed, not its first block (files are read 1 MiB at a time)."""
    data = write_csv(tmp_path / "big.csv", n=80_000)
    assert data.stat().st_size > (1 << 20) + 100_000
    config = _ab_config(data, test_split=0.2)
    config["fit"]["batch_size"] = 4096
    fit = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config)),
                              "--run-dir", str(tmp_path / "run")])
    assert fit.exit_code == 0, fit.output
    before = data.read_bytes()
    last = before.rstrip(b"\n").rsplit(b"\n", 1)[1]
    after = before[:-2] + (b"0" if last.endswith(b"1") else b"1") + b"\n"  # the last label
    assert len(after) == len(before) and after[:1 << 20] == before[:1 << 20]
    data.write_bytes(after)
    result = runner.invoke(app, ["evaluate", str(tmp_path / "run")])
    refused(result, 1, f"{data} has changed since training (its sha256 differs")


# ----------------------------------------------------------------------------- the step plan


def test_fit_steps_per_epoch_is_the_batches_trained_each_epoch(runner, tmp_path):
    """iris has 90 training samples, 6 batches of 16: steps_per_epoch 2 trains 2 an epoch
    (the optimizer counts each batch it applies)."""
    import keras

    config = tiny_config(fit={"epochs": 3, "batch_size": 16, "steps_per_epoch": 2,
                              "verbose": 0})
    fit = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config)),
                              "--run-dir", str(tmp_path / "run")])
    assert fit.exit_code == 0, fit.output
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert int(model.optimizer.iterations.numpy()) == 3 * 2


def test_fit_validation_steps_is_the_batches_validated_each_epoch(runner, tmp_path):
    """validation_steps 1: history.csv's val_loss is the first validation batch of 16
    samples, not the whole validation split of 30 that metrics.json measures.
    (steps_per_execution 1: with auto, 6 here, one call validates past validation_steps.)"""
    import json

    import keras

    from nettrain.config.load import load_config
    from nettrain.data.loading import load_data

    config = tiny_config(fit={"epochs": 1, "batch_size": 16, "validation_steps": 1,
                              "verbose": 0})
    config["compile"]["steps_per_execution"] = 1
    fit = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config)),
                              "--run-dir", str(tmp_path / "run")])
    assert fit.exit_code == 0, fit.output
    logged = pd.read_csv(tmp_path / "run" / "history.csv").iloc[-1]["val_loss"]
    whole = json.loads((tmp_path / "run" / "metrics.json").read_text())["validation"]["loss"]
    data = load_data(load_config(tmp_path / "run" / "config.yaml"))
    assert data.size("validation") == 30
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    first = model.evaluate(data.x["validation"][:16], data.y["validation"][:16], verbose=0,
                           return_dict=True)["loss"]
    assert logged == pytest.approx(first, rel=1e-5)
    assert logged != pytest.approx(whole, rel=1e-3)


# ---------------------------------------------------------------------------- the CSV reader


def test_predict_reads_text_categories_as_written_when_they_look_like_numbers(runner,
                                                                             tmp_path):
    """A text category column ('a', '01', '1.50') keeps '01' and '1.50' as written at predict,
    also in a file whose cells all look like numbers (pandas alone would read 1 and 1.5)."""
    rng = np.random.default_rng(0)
    n = 60
    code = rng.choice(["a", "01", "1.50"], n)
    frame = pd.DataFrame({"code": code, "x": rng.normal(size=n).round(3),
                          "y": (code == "01").astype(int)})
    frame.to_csv(tmp_path / "train.csv", index=False)
    config = tiny_config(data={"csv": str(tmp_path / "train.csv"), "target": "y",
                               "categorical": ["code"], "validation_split": 0.0,
                               "test_split": 0.0},
                         model={"layers": [{"Dense": {"units": 2, "activation": "softmax"}}]})
    fit = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config))])
    assert fit.exit_code == 0, fit.output
    run = fit.stdout.strip()
    predicted = {}
    for name, rows in (("numbers", "01,0.5\n1.50,0.5\n"), ("mixed", "01,0.5\n1.50,0.5\na,0.5\n"),
                       ("unseen", "1,0.5\n1.5,0.5\n")):
        (tmp_path / f"{name}.csv").write_text("code,x\n" + rows)
        result = runner.invoke(app, ["predict", run, str(tmp_path / f"{name}.csv")])
        assert result.exit_code == 0, result.output
        predicted[name] = _probabilities(result.stdout)
    assert predicted["numbers"] == predicted["mixed"][:2]
    assert predicted["numbers"][0] != predicted["unseen"][0]  # '01' is not 1, an unseen value
