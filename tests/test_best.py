"""The best epoch of a run (nettrain.engine.best): the callbacks' monitor, Keras's direction
as fit recorded it, and the first of equal values."""

from __future__ import annotations

import json
from pathlib import Path

from nettrain.config.load import load_config
from nettrain.engine.best import best_epoch, monitor

from conftest import tiny_config, write_config

KERAS = {"loss": "min", "accuracy": "max"}  # what fit records for tiny_config's model


def _config(tmp_path: Path, *callbacks):
    path = write_config(tmp_path / "c.yaml",
                        tiny_config(fit={"epochs": 2, "callbacks": list(callbacks)}))
    return load_config(path, [])


def _run(tmp_path: Path, history: str, directions: dict | None = KERAS) -> Path:
    """A run directory with ``history`` as its history.csv and, unless None, ``directions``
    recorded in its run.json."""
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "history.csv").write_text(history)
    record = {"status": "completed"} | ({"directions": directions} if directions else {})
    (run / "run.json").write_text(json.dumps(record))
    return run


def test_the_best_epoch_follows_the_callbacks_monitor(tmp_path):
    names = ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert monitor(_config(tmp_path), names, KERAS) == ("val_loss", "min", "")
    assert monitor(_config(tmp_path), names[:3], KERAS) == ("loss", "min", "")
    assert monitor(_config(tmp_path, {"EarlyStopping": {"monitor": "val_accuracy"}}), names,
                   KERAS) == ("val_accuracy", "max", "EarlyStopping's monitor")
    # an explicit mode wins over Keras's direction, as in Keras
    assert monitor(_config(tmp_path, {"ModelCheckpoint": {
        "filepath": "m.keras", "monitor": "val_accuracy", "mode": "min"}}), names, KERAS) \
        == ("val_accuracy", "min", "ModelCheckpoint's monitor")
    # a metric Keras cannot tell the direction of (not recorded): no mode, no best epoch
    assert monitor(_config(tmp_path, {"EarlyStopping": {"monitor": "val_tp"}}), names,
                   KERAS) == ("val_tp", None, "EarlyStopping's monitor")
    run = _run(tmp_path, "epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.0,0.6,0.9\n"
                         "1,0.7,0.8,0.6,0.95\n2,0.8,0.7,0.7,nan\n")

    def best(*callbacks):
        found = best_epoch(run, _config(tmp_path, *callbacks))
        return found and (found.epoch, found.text())

    assert best() == (1, "lowest val_loss 0.9000")
    assert best({"EarlyStopping": {"monitor": "val_accuracy"}}) == \
        (3, "highest val_accuracy 0.7000 (EarlyStopping's monitor)")
    assert best({"EarlyStopping": {"monitor": "val_tp"}}) is None
    # Keras's CSVLogger writes NA where a run without validation has no val_ value
    (run / "history.csv").write_text(
        "epoch,accuracy,loss,val_accuracy,val_loss\r\n0,0.5,0.7,NA,NA\r\n1,0.2,0.6,NA,NA\r\n")
    assert best() == (2, "lowest loss 0.6000")


def test_the_first_of_equal_best_values_is_the_best_epoch(tmp_path):
    run = _run(tmp_path, "epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.0,0.6,0.9\n"
                         "1,0.7,0.8,0.8,0.5\n2,0.8,0.7,0.8,0.5\n3,0.6,0.9,0.7,0.7\n")
    lowest = best_epoch(run, _config(tmp_path))
    assert (lowest.epoch, lowest.value) == (2, 0.5)
    highest = best_epoch(run, _config(tmp_path, {"EarlyStopping": {"monitor": "val_accuracy"}}))
    assert (highest.epoch, highest.value) == (2, 0.8)


def test_the_recorded_direction_decides_and_an_older_run_asks_its_config(tmp_path):
    """The direction is run.json's (fit asked Keras); a run without the record gets it from
    its config's metric objects, never from the metric's name."""
    history = "epoch,loss,val_loss,val_score,val_accuracy\n0,1,1,0.2,0.9\n1,1,1,0.6,0.5\n"
    run = _run(tmp_path, history, {"loss": "min", "score": "max"})
    found = best_epoch(run, _config(tmp_path, {"EarlyStopping": {"monitor": "val_score"}}))
    assert (found.epoch, found.text()) == (2, "highest val_score 0.6000 (EarlyStopping's "
                                              "monitor)")
    run = _run(tmp_path, history, directions=None)  # an older run: tiny_config's accuracy
    found = best_epoch(run, _config(tmp_path, {"EarlyStopping": {"monitor": "val_accuracy"}}))
    assert (found.epoch, found.monitor.mode) == (1, "max")
    # its config says nothing of val_score: Keras cannot tell, so no epoch is best
    assert best_epoch(run, _config(tmp_path, {"EarlyStopping": {"monitor": "val_score"}})) \
        is None
