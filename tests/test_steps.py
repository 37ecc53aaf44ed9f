"""How many batches an epoch, a call and a validation pass run: exactly what Keras's own
``model.fit`` runs with ``steps_per_execution: 1``, whatever nettrain's steps_per_execution.

The samples are counted inside the graph: every label is 1 and the model's output a sigmoid,
so the metrics TruePositives + FalseNegatives of an epoch are the rows the compiled step saw
(Keras resets them at each epoch and each validation pass). The expected counts come from
plain Keras, not from nettrain: ``model.fit`` with ``steps_per_execution=1`` on arrays, and,
with ``steps_per_epoch``, on the batches repeated (``tf.data``'s ``.repeat()``, which Keras
asks for when an epoch is given in steps: an epoch is ``steps_per_epoch`` batches, not cut
short where a pass over the data ends).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import write_config
from test_training import assert_resume_is_uninterrupted, control_config

TRAIN, VALIDATION = 23, 13
EPOCHS = 2
GRID = {  # 2 x 2 x 4 x 2 x 2 x 2 = 128 combinations
    "batch_size": (4, 5),
    "validation_batch_size": (None, 3),
    "steps_per_execution": (1, 2, 4, "auto"),
    "validation_freq": (1, 2),
    "validation_steps": (None, 2),
    "steps_per_epoch": (None, 5),
}


def _combinations(**only) -> list[dict]:
    grid = {**GRID, **only}
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def _counts(logs: list[dict]) -> list[tuple[int, int | None]]:
    """(rows trained, rows validated or None) of each epoch, from its logs."""
    def rows(prefix: str, epoch: dict) -> int | None:
        found = [v for k, v in epoch.items() if k.startswith(prefix) and
                 k[len(prefix):].lower().replace("_", "").rstrip("0123456789")
                 in ("truepositives", "falsenegatives")]
        return None if len(found) < 2 else int(round(sum(found)))

    return [(rows("", epoch), rows("val_", epoch)) for epoch in logs]


_KERAS: dict[tuple, list] = {}
_MODEL: list = []  # one plain model for every count: what it learns does not change them


def keras_counts(train: int, validation: int, batch_size: int, validation_batch_size: int | None,
                 validation_freq: int, validation_steps: int | None,
                 steps_per_epoch: int | None, **_) -> list[tuple[int, int | None]]:
    """What plain Keras trains and validates each epoch, with steps_per_execution=1."""
    import keras
    import tensorflow as tf

    key = (train, validation, batch_size, validation_batch_size, validation_freq,
           validation_steps, steps_per_epoch)
    if key in _KERAS:
        return _KERAS[key]
    if not _MODEL:
        _MODEL.append(keras.Sequential([keras.Input((1,)),
                                        keras.layers.Dense(1, activation="sigmoid")]))
        _MODEL[0].compile(optimizer="sgd", loss="mse", steps_per_execution=1, metrics=[
            keras.metrics.TruePositives(), keras.metrics.FalseNegatives()])
    model = _MODEL[0]
    x, y = np.zeros((train, 1), "float32"), np.ones((train, 1), "float32")
    if steps_per_epoch is None:
        data = {"x": x, "y": y, "batch_size": batch_size}
    else:
        data = {"x": tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).repeat(),
                "steps_per_epoch": steps_per_epoch}
    logs: list[dict] = []
    model.fit(**data, epochs=EPOCHS, verbose=0, shuffle=False,
              validation_data=(np.zeros((validation, 1), "float32"),
                               np.ones((validation, 1), "float32")),
              # Keras's default for a dataset x is not batch_size: say nettrain's default
              validation_batch_size=validation_batch_size or batch_size,
              validation_steps=validation_steps,
              validation_freq=validation_freq, callbacks=[keras.callbacks.LambdaCallback(
                  on_epoch_end=lambda epoch, epoch_logs: logs.append(dict(epoch_logs)))])
    _KERAS[key] = _counts(logs)
    return _KERAS[key]


def _config(data: dict, combination: dict, **fit) -> dict:
    spe = combination["steps_per_execution"]
    fit = {"epochs": EPOCHS, "verbose": 0, **fit,
           **{k: v for k, v in combination.items() if k != "steps_per_execution"}}
    return {"name": "count", "seed": 0, "data": data,
            "model": {"layers": [{"Dense": {"units": 1, "activation": "sigmoid"}}]},
            "compile": {"optimizer": "sgd", "loss": "mse", "steps_per_execution": spe,
                        "metrics": ["TruePositives", "FalseNegatives"]},
            "fit": {k: v for k, v in fit.items() if v is not None}}


def _write_data(folder: Path, kind: str) -> dict:
    """The ``data:`` section of one kind of input, TRAIN and VALIDATION rows, labels all 1."""
    rng = np.random.default_rng(0)
    if kind == "arrays":
        for name, n in (("train", TRAIN), ("validation", VALIDATION)):
            np.savez(folder / f"{name}.npz", x=rng.random((n, 2)).astype("float32"),
                     y=np.ones((n, 1), "float32"))
        return {"npz": str(folder / "train.npz"), "validation": str(folder / "validation.npz"),
                "validation_split": 0.0, "test_split": 0.0}
    frames = {name: pd.DataFrame({"a": rng.normal(size=n), "kind": rng.choice(["p", "q"], n),
                                  "y": np.ones(n)})
              for name, n in (("train", TRAIN), ("validation", VALIDATION))}
    if kind == "named":  # a categorical column: named inputs through a generator
        for name, frame in frames.items():
            frame.to_csv(folder / f"{name}.csv", index=False)
        return {"csv": str(folder / "train.csv"), "validation": str(folder / "validation.csv"),
                "target": "y", "categorical": ["kind"], "validation_split": 0.0,
                "test_split": 0.0}
    # streamed: the rows split by a hash of the row number; the counts are the stream's
    pd.concat([frames["train"], frames["validation"]]).to_csv(folder / "all.csv", index=False)
    return {"csv": str(folder / "all.csv"), "target": "y", "features": ["a"], "stream": True,
            "validation_split": 0.35, "test_split": 0.0}


def _nettrain_counts(folder: Path, kind: str, combinations: list[dict], **fit) -> list[str]:
    """Fit each combination as ``nettrain fit`` does (its pipelines and model.fit's
    arguments), on one built model per steps_per_execution; the combinations whose counts
    differ from Keras's."""
    import keras

    from nettrain.config.schema import Config
    from nettrain.engine.train import Prepared, _fit_arguments, prepare

    data_section = _write_data(folder, kind)
    built: dict[tuple, Prepared] = {}
    wrong = []
    for combination in combinations:
        config = Config.model_validate(_config(data_section, combination, **fit))
        key = (combination["steps_per_execution"],) if combination[
            "steps_per_execution"] != "auto" else ("auto", combination["batch_size"],
                                                   combination["steps_per_epoch"])
        if key not in built:
            built[key] = prepare(config)
        prepared = Prepared(config, built[key].data, built[key].model, [])
        args, kwargs = _fit_arguments(prepared)
        logs: list[dict] = []
        kwargs["callbacks"] = [keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, epoch_logs: logs.append(dict(epoch_logs)))]
        prepared.model.fit(**args, **kwargs)
        sizes = prepared.data.size("train"), prepared.data.size("validation")
        expected = keras_counts(*sizes, **combination)
        if _counts(logs) != expected:
            wrong.append(f"{combination}: trained, validated {_counts(logs)}; Keras {expected}")
    return wrong


def test_the_plan_of_every_combination_is_what_keras_trains_and_validates():
    """The whole grid (128 combinations), planned: the rows each epoch trains and validates."""
    from nettrain.config.schema import Config
    from nettrain.data import steps

    wrong = []
    for combination in _combinations():
        config = Config.model_validate(_config({"dataset": "iris"}, combination))
        plan = steps.plan(config, {"train": TRAIN, "validation": VALIDATION})
        planned = [(plan.train.epoch_samples(epoch),
                    plan.validation.epoch_samples(epoch)
                    if (epoch + 1) % plan.validation_freq == 0 else None)
                   for epoch in range(EPOCHS)]
        expected = keras_counts(TRAIN, VALIDATION, **combination)
        if planned != expected:
            wrong.append(f"{combination}: planned {planned}; Keras {expected}")
    assert not wrong, f"{len(wrong)} of {len(_combinations())}:\n" + "\n".join(wrong)


def test_fit_trains_and_validates_the_samples_keras_does(tmp_path):
    """End to end through the pipelines and model.fit, counted in the graph, on arrays in
    memory shuffled (the default): every steps_per_execution and every kind of epoch (a pass,
    steps_per_epoch equal to a pass, shorter than one), validation whole and cut short."""
    combinations = _combinations(validation_batch_size=(3,), validation_freq=(1,))
    wrong = _nettrain_counts(tmp_path, "arrays", combinations)
    assert not wrong, f"{len(wrong)} of {len(combinations)}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("kind", ["arrays-in-order", "named", "streamed"])
def test_the_other_pipelines_follow_the_same_plan(tmp_path, kind):
    """In order (fit.shuffle: false), named inputs (a generator) and a streamed CSV, over
    calls that divide an epoch or a validation pass and calls that do not."""
    combinations = _combinations(batch_size=(4,), validation_batch_size=(None,),
                                 validation_freq=(2,), steps_per_execution=(1, 4, "auto"))
    shuffle = {"shuffle": False} if kind == "arrays-in-order" else {}
    wrong = _nettrain_counts(tmp_path, kind.split("-")[0], combinations, **shuffle)
    assert not wrong, f"{len(wrong)} of {len(combinations)}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("steps_per_execution, initial_epoch", [(1, 0), (2, 0), (2, 1)])
def test_resume_is_bit_identical_with_steps_per_epoch_shorter_than_a_pass(
        runner, tmp_path, steps_per_execution, initial_epoch):
    """90 iris rows in batches of 16 are 6 batches a pass; epochs of 4 batches run on from
    one pass into the next, each pass in its own order, as an uninterrupted run takes them
    (also when the run starts counting at fit.initial_epoch)."""
    config = control_config(steps_per_epoch=4, initial_epoch=initial_epoch)
    config["compile"]["steps_per_execution"] = steps_per_execution
    assert_resume_is_uninterrupted(runner, write_config(tmp_path / "c.yaml", config), tmp_path)


# ------------------------------------------------------------------ the planner's own numbers
# The counts above are rows, the same whatever steps_per_execution; these are the calls a
# plan groups them in, and an epoch's rows for samples/s.


def _planned(compile_: dict | None = None, **fit):
    from nettrain.config.schema import Config

    combination = {"steps_per_execution": "auto", "batch_size": 4, **fit}
    config = _config({"dataset": "iris"}, combination)
    config["compile"].update(compile_ or {})
    return Config.model_validate(config)


@pytest.mark.parametrize("config, samples, calls", [
    (_planned(batch_size=128), 60_000, 32),         # 469 batches: 15 calls of at most 32
    (_planned(batch_size=32), 1_258, 20),           # 40 batches: 2 calls of 20
    (_planned(), 132, 17),                          # 33 batches: 2 equal calls, not 32 and 1
    (_planned(), 23, 6),                            # 6 batches: one call
    (_planned(batch_size=1), 4, 4),                 # xor: one call an epoch
    (_planned(steps_per_epoch=40), 23, 20),         # an epoch given in steps: 2 calls of 20
    (_planned(batch_size=128, steps_per_epoch=10), 60_000, 10),
    (_planned(steps_per_execution=7), 60_000, 7),   # a number is kept as given
    (_planned({"run_eagerly": True}), 23, 1),       # eager: a step per call
    (_planned(), None, 1),                          # the size unknown
    (_planned(), 0, 1)])
def test_steps_per_execution_auto_splits_an_epoch_into_equal_calls_of_at_most_32(
        config, samples, calls):
    from nettrain.data import steps

    assert steps.steps_per_execution(config, samples) == calls


def test_a_mirrored_run_takes_one_step_a_call():
    """Keras 3.15 fails with more under tf.distribute.MirroredStrategy."""
    from nettrain.data import steps

    config = _planned().model_copy(update={"distribute": "mirrored"})
    assert steps.steps_per_execution(config, 132) == 1


def test_the_plan_of_an_epoch_given_in_steps():
    """The docstring's example: 23 rows in batches of 4 (6 a pass), epochs of 5 batches in
    calls of 2 (an iterator an epoch: 5 is not a whole number of calls), 13 validation rows
    in batches of 3, the first 2 of them; an epoch is 19.2 rows on average."""
    from nettrain.data import steps

    config = _planned(steps_per_execution=2, steps_per_epoch=5, validation_batch_size=3,
                      validation_steps=2, validation_freq=2)
    plan = steps.plan(config, {"train": TRAIN, "validation": VALIDATION})
    assert (plan.per_call, plan.train.per_epoch, plan.train.endless) == (2, 5, False)
    assert [plan.train.segments(epoch) for epoch in range(3)] == [
        [(0, 0, 5)], [(0, 5, 6), (1, 0, 4)], [(1, 4, 6), (2, 0, 3)]]
    assert (plan.validation.per_epoch, plan.validation.segments(3)) == (2, [(3, 0, 2)])
    assert plan.epoch_samples == 19
    assert plan.fit_arguments() == {"steps_per_epoch": None, "validation_steps": None,
                                    "validation_freq": 2}
    endless = steps.plan(_planned(steps_per_execution=5, steps_per_epoch=5), {"train": TRAIN})
    assert endless.validation is None and endless.train.endless
    assert endless.fit_arguments()["steps_per_epoch"] == 5
