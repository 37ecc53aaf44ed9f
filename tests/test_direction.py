"""Which way a metric improves (nettrain.model.direction): Keras's answer for the compiled
model's metric objects, the same from a run's config, and read back from run.json."""

from __future__ import annotations

import json

import keras
import numpy as np

from nettrain.model import direction

# compile.metrics as a config writes them, and the name each logs under
METRICS = [
    ({"PearsonCorrelation": {"axis": 0}}, "pearson_correlation", "max"),
    ({"ConcordanceCorrelation": {"axis": 0}}, "concordance_correlation", "max"),
    ("CosineSimilarity", "CosineSimilarity", "max"),
    ({"IoU": {"num_classes": 2, "target_class_ids": [1]}}, "io_u", "max"),
    ({"MeanIoU": {"num_classes": 2}}, "mean_io_u", "max"),
    ({"SpecificityAtSensitivity": {"sensitivity": 0.5}}, "specificity_at_sensitivity", "max"),
    ({"SensitivityAtSpecificity": {"specificity": 0.5}}, "sensitivity_at_specificity", "max"),
    ("AUC", "AUC", "max"),
    ("accuracy", "accuracy", "max"),
    ("mse", "mse", "min"),
    ("mae", "mae", "min"),
    ("TruePositives", "TruePositives", None),  # Keras cannot tell: mode auto refuses it
]


def _compiled() -> keras.Model:
    from nettrain.model.keras_names import METRICS as REGISTRY
    from nettrain.model.keras_names import resolve

    keras.utils.clear_session()  # names as in fit's own process: io_u, not io_u_3
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy",
                  metrics=[resolve(spec, REGISTRY, "m") for spec, _, _ in METRICS])
    x, y = np.random.default_rng(0).random((8, 3)), np.array([[0.0], [1.0]] * 4)
    model.compute_metrics(x, y, model(x), sample_weight=None)  # as fit's check builds them
    return model


def test_keras_decides_each_metric_s_direction_not_its_name():
    found = direction.of_model(_compiled())
    assert found == {"loss": "min", **{name: way for _, name, way in METRICS if way}}
    for _, name, way in METRICS:
        for shown in (name, f"val_{name}", f"test_{name}", f"train_{name}"):
            assert direction.of(shown, found) == way, shown
    assert direction.of("val_loss", found) == direction.of("test_loss", found) == "min"
    assert direction.of("learning_rate", found) is None


def test_an_older_run_s_config_gives_what_fit_would_have_recorded(tmp_path):
    """A run without the record: its config's metric objects, asked the same way, give the
    answer fit records for the compiled model (the names too, as fit's process names them)."""
    recorded = direction.of_model(_compiled())
    keras.metrics.IoU(num_classes=2, target_class_ids=[1])  # Keras numbers the next io_u
    config = {"compile": {"loss": "binary_crossentropy",
                          "metrics": [spec for spec, _, _ in METRICS]}}
    assert direction.of_config(config) == recorded
    run = tmp_path / "run"
    run.mkdir()
    assert direction.of_run(run, config) == direction.of_config(config)
    (run / "run.json").write_text(json.dumps({"directions": {"loss": "min", "x": "max"}}))
    assert direction.of_run(run, config) == {"loss": "min", "x": "max"}  # recorded: read
    assert direction.of_config({"compile": {"metrics": [{"NoSuchMetric": {}}, 3]}}) == \
        {"loss": "min"}  # an edited config: what cannot be made is passed over
