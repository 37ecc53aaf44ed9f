"""nettrain export: each format is written, loaded in its own runtime and compared with the
run's model on rows of the run's data; a file that disagrees is not written; formats that
cannot carry a model say so first; model.keras files load and predict under every backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nettrain.cli import app

from conftest import fit_once, tiny_config

# What a user of another backend types: load the file as it is (compiled) and predict.
PREDICT_UNDER = """\
import sys, numpy as np, keras
for path in sys.argv[1:]:
    model = keras.saving.load_model(path)
    p = model.predict(np.ones((3, 4), dtype="float32"), verbose=0)
    print(keras.backend.backend(), path, p.shape)
"""


def _csv(path, rows=60, integer=False):
    """A small table: a text category, (optionally) a whole-number category, two numbers."""
    rng = np.random.default_rng(0)
    lines = ["plan,seats,months,tickets,renewed" if integer else "plan,months,tickets,renewed"]
    for i in range(rows):
        plan = ["basic", "standard", "premium"][i % 3]
        seats = f"{[1, 5, 10][i % 3]}," if integer else ""
        lines.append(f"{plan},{seats}{rng.integers(1, 40)},{rng.integers(0, 5)},"
                     f"{['no', 'yes'][(i // 2) % 2]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _table_config(csv, categorical):
    return tiny_config(
        name="table",
        data={"csv": str(csv), "target": "renewed", "categorical": categorical,
              "normalize": True, "validation_split": 0.0, "test_split": 0.25},
        model={"layers": [{"Dense": {"units": 1, "activation": "sigmoid"}}]},
        compile={"optimizer": "adam", "loss": "binary_crossentropy"},
        save={"formats": ["keras", "json"]})


@pytest.fixture(scope="module")
def numeric(tmp_path_factory):
    """A tiny iris run; steps_per_execution > 1, as the step planner picks by default."""
    folder = tmp_path_factory.mktemp("numeric")
    config = tiny_config(data={"dataset": "iris", "validation_split": 0.2, "test_split": 0.2,
                               "normalize": True},
                         fit={"epochs": 2, "batch_size": 8, "verbose": 0},
                         compile={"optimizer": "adam", "loss": "sparse_categorical_crossentropy",
                                  "steps_per_execution": 4})
    config["save"] = {"formats": ["keras", "json"]}
    return fit_once(folder, config)


@pytest.fixture(scope="module")
def strings(tmp_path_factory):
    """A tiny run of a table with a text category (a StringLookup inside the model)."""
    folder = tmp_path_factory.mktemp("strings")
    return fit_once(folder, _table_config(_csv(folder / "t.csv"), ["plan"]))


def test_model_keras_files_of_a_run_predict_under_jax_and_torch(numeric):
    """model.keras, the checkpoints and model.json's compile config say steps_per_execution 1:
    torch refuses any other number (this failed before: steps_per_execution=4)."""
    saved = json.loads((numeric / "model.json").read_text())["compile_config"]
    assert saved["steps_per_execution"] == 1
    files = [str(numeric / "model.keras"), str(numeric / "checkpoints" / "last.keras")]
    for backend in ("jax", "torch"):
        done = subprocess.run([sys.executable, "-c", PREDICT_UNDER, *files],
                              env={**os.environ, "KERAS_BACKEND": backend},
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count(f"{backend} ") == 2 and "(3, 3)" in done.stdout
