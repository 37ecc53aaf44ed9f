"""The fused JAX training path (nettrain.backends.jax_fused): the weights of model.fit.

One JAX process (KERAS_BACKEND is read once, at Keras's import, so the JAX side runs in a
subprocess of its own) runs every check and prints their figures as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys
import numpy as np, keras, yaml
from typer.testing import CliRunner
from nettrain.backends import jax_fused
from nettrain.cli import app

rng = np.random.default_rng(0)
x = rng.normal(size=(100, 5)).astype("float32")
y = rng.integers(0, 3, 100)
w = rng.uniform(0.5, 1.5, 100).astype("float32")

def make():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dropout(0.2),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model

# 100 rows in batches of 16: 6 full batches (one lax.scan) and a short one of 4.
fitted, fused = make(), make()
fitted.fit(x, y, sample_weight=w, batch_size=16, epochs=3, shuffle=False, verbose=0)
start = [v.copy() for v in fused.get_weights()]
history = jax_fused.fit(fused, x, y, w, batch_size=16, epochs=3)
jax_fused.SCAN_ON_CPU = True  # the accelerators' path: one lax.scan an epoch
scanned = make()
jax_fused.fit(scanned, x, y, w, batch_size=16, epochs=3)
jax_fused.SCAN_ON_CPU = False
out = {"diff": max(float(np.abs(a - b).max())
                   for a, b in zip(fitted.get_weights(), fused.get_weights())),
       "scan_diff": max(float(np.abs(a - b).max())
                        for a, b in zip(fitted.get_weights(), scanned.get_weights())),
       "moved": max(float(np.abs(a - b).max()) for a, b in zip(start, fused.get_weights())),
       "iterations": [int(fitted.optimizer.iterations.numpy()),
                      int(fused.optimizer.iterations.numpy())],
       "epochs_logged": len(history.history["loss"]),
       "programs": sorted(map(str, fused.__dict__["_nettrain_fused"]))}

# the reload check of a save: the model and its reloaded copy each run one program (their
# forward pass), not one per op run eagerly; rows of a shape no program has seen yet
import jax
from pathlib import Path
from nettrain.model import saving
programs = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, seconds, **kw: programs.append(event)
    if event == "/jax/core/compile/backend_compile_duration" else None)
Path("saved").mkdir()
saving.save_model(fused, Path("saved"), ["keras"], sample=x[:7])
out["reload_programs"] = len(programs)
# a Ctrl-C in a JAX model.fit leaves the variables Keras purged during the epoch without a
# value (here the dropout's seed): the check still runs (it failed with a TypeError)
purged = make()
purged.set_weights(fused.get_weights())
purged._purge_model_variables(non_trainable_variables=True)
saving._check_reload(purged, Path("saved"), "keras", x[:7], {})
try:  # a model that predicts otherwise than the file (the untrained one) is still refused
    saving._check_reload(make(), Path("saved"), "keras", x[:7], {})
except Exception as exc:
    out["reload_refused"] = str(exc)

# nettrain fit: fused by default on JAX; model.fit when compile.steps_per_execution is set.
# Shuffled, validated, with EarlyStopping and a checkpoint: the same run either way.
config = {"name": "t", "seed": 0,
          "data": {"dataset": "iris", "validation_split": 0.2, "test_split": 0.2},
          "model": {"layers": [{"Dense": {"units": 8, "activation": "relu"}},
                               {"Dense": {"units": 3, "activation": "softmax"}}]},
          "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy",
                      "metrics": ["accuracy"]},
          "fit": {"epochs": 3, "batch_size": 16,
                  "callbacks": [{"EarlyStopping": {"monitor": "val_loss", "patience": 5}}]}}
open("c.yaml", "w").write(yaml.safe_dump(config))
runs = {}
# fit.class_weight: model.fit, which weighs each row by its class (the fused path cannot)
for name, extra in (("fused", []), ("fit", ["compile.steps_per_execution=1"]),
                    ("weighted", ["fit.class_weight={0: 1.0, 1: 4.0, 2: 0.25}"])):
    result = CliRunner().invoke(app, ["fit", "c.yaml", "--run-dir", name, *extra])
    record = json.load(open(f"{name}/run.json"))
    runs[name] = {"exit": result.exit_code, "output": result.output,
                  "training": record.get("training"), "backend": record.get("backend"),
                  "history": open(f"{name}/history.csv").read()}
# the loss check before training (traced on JAX, not run op by op): a mismatch is still said
mismatched = {**config, "compile": {**config["compile"], "loss": "categorical_crossentropy"}}
open("m.yaml", "w").write(yaml.safe_dump(mismatched))
result = CliRunner().invoke(app, ["fit", "m.yaml", "--run-dir", "mismatch"])
runs["mismatch"] = {"exit": result.exit_code, "output": result.output}
a = keras.saving.load_model("fused/model.keras").get_weights()
b = keras.saving.load_model("fit/model.keras").get_weights()
out["cli_diff"] = max(float(np.abs(u - v).max()) for u, v in zip(a, b))
c = keras.saving.load_model("weighted/model.keras").get_weights()
out["weighted_diff"] = max(float(np.abs(u - v).max()) for u, v in zip(a, c))
out["runs"] = runs
print("RESULT" + json.dumps(out))
"""


def _env(folder: Path) -> dict[str, str]:
    return {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO),
            "NETTRAIN_RUNS": str(folder / "runs"), "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def checks(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("fused")
    env = _env(folder)
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def test_fused_gives_the_weights_of_model_fit(checks: dict) -> None:
    # Same seed, data, sample weights, dropout and momentum: equal to float tolerance; the
    # weights moved, and the optimizer took every step (6 full batches + 1 short, 3 epochs).
    assert checks["moved"] > 1e-3
    assert checks["diff"] < 1e-6, checks["diff"]
    assert checks["scan_diff"] < 1e-6, checks["scan_diff"]
    assert checks["iterations"] == [21, 21]
    assert checks["epochs_logged"] == 3
    # on CPU each step gathers its rows from the arrays put on the device once (no copy of
    # the whole set in each epoch's order), and the short last batch has its own program
    assert checks["programs"] == ["False", "gather"], checks["programs"]
    # a save's reload check compiles the model's forward pass once for each side (before:
    # each op of it, run eagerly, about 10 programs here)
    assert checks["reload_programs"] == 2, checks["reload_programs"]
    assert "predicts differently after reloading" in checks.get("reload_refused", "")


def test_fit_on_jax_takes_the_fused_path_with_the_same_result(checks: dict) -> None:
    fused, fit = checks["runs"]["fused"], checks["runs"]["fit"]
    assert fused["exit"] == 0 and fit["exit"] == 0, fused["output"] + fit["output"]
    assert fused["training"] == {"loop": "fused"} and fused["backend"] == "jax"
    assert "Training fused on JAX: the epoch's batches on the device" in fused["output"]
    assert fit["training"]["loop"] == "model.fit"
    assert "compile.steps_per_execution is 1" in fit["training"]["not_fused"]
    assert "Training with model.fit, not the fused JAX path: compile.steps_per_execution " \
           "is 1" in fit["output"]
    # the same shuffled batches, validation and callbacks: the same history and weights
    assert fused["history"].splitlines()[0] == fit["history"].splitlines()[0]
    assert len(fused["history"].splitlines()) == 4
    assert checks["cli_diff"] < 1e-5, checks["cli_diff"]


def test_the_loss_check_on_jax_refuses_labels_the_loss_cannot_take(checks: dict) -> None:
    # On JAX the check is traced, not run (no XLA compile of each op): the same refusal
    mismatch = checks["runs"]["mismatch"]
    assert mismatch["exit"] == 2, mismatch["output"]
    assert "compile.loss" in mismatch["output"] and \
        "Set data.one_hot: true, or use loss: sparse_categorical_crossentropy." in \
        " ".join(mismatch["output"].split()), mismatch["output"]


def test_class_weight_trains_with_model_fit_which_weighs_the_rows(checks: dict) -> None:
    # The fused loop has no class weights: it refuses them, and model.fit trains, weighing
    # each row by its class, so the weights are not those of the unweighted run.
    weighted = checks["runs"]["weighted"]
    assert weighted["exit"] == 0, weighted["output"]
    assert weighted["training"] == {
        "loop": "model.fit",
        "not_fused": "fit.class_weight is set (model.fit turns it into sample weights)"}
    assert "Training with model.fit, not the fused JAX path: fit.class_weight is set" in \
        weighted["output"]
    assert checks["weighted_diff"] > 1e-3, checks["weighted_diff"]


# Ctrl-C, SIGTERM, kill -9 and a NaN on the fused path: test_signals.py's
# test_every_stop_keeps_its_promises_on_each_path[jax-fused] (and [processes-2]).


def test_the_line_the_user_reads_counts_the_short_last_batch():
    from nettrain.backends.jax_fused import describe

    assert "468 steps of 128 rows and one of 96 rows an epoch" in describe(60_000, 128)
    assert "one step of 100 rows an epoch" in describe(100, 128)
    assert "2 steps of 128 rows an epoch" in describe(256, 128)
