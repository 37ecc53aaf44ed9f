"""keras.applications backbones as layers: weights from a file or Keras's cache (never random
in their place), preprocessing inside the model, fit.fine_tune's phases (BatchNormalization
kept, the boundary kept by a resume) and a frozen backbone's features computed once."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import h5py
import keras
import numpy as np
import pandas as pd
import pytest

from nettrain.cli import app
from nettrain.config.applications import APPLICATIONS
from nettrain.engine import phases
from nettrain.model import backbone as backbones

from conftest import write_config
from test_training import assert_identical, fit, weights

# The smallest application: MobileNetV3Small, minimalistic, alpha 0.75 (no ImageNet weights
# at that alpha, so a file gives them), built at its smallest input, 32x32.
APP = {"minimalistic": True, "alpha": 0.75, "pooling": "avg"}
IMAGENET_FILE = "weights_mobilenet_v3_small_minimalistic_224_1.0_float_no_top_v2.h5"


def _application(**kwargs) -> keras.Model:
    return keras.applications.MobileNetV3Small(include_top=False, weights=None,
                                               input_shape=(32, 32, 3), **kwargs)


def _config(folder: Path, **fit) -> dict:
    return {
        "name": "bb", "seed": 0,
        "data": {"npz": str(folder / "images.npz"), "validation_split": 0.25},
        "model": {"layers": [
            {"MobileNetV3Small": {**APP, "weights": str(folder / "pretrained.weights.h5"),
                                  "trainable": False}},
            {"Dense": {"units": 3, "activation": "softmax"}}]},
        "compile": {"optimizer": {"Adam": {"learning_rate": 0.01}},
                    "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": 3, "batch_size": 8, "verbose": 0, "checkpoint_every_seconds": 0,
                "fine_tune": {"after": 1, "unfreeze": 6, "learning_rate": 0.001}, **fit},
        "save": {"formats": ["keras"]},
    }


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A folder with 32 gray 8x8 images of 3 classes (images.npz) and the weights of the
    application, as if pretrained (pretrained.weights.h5)."""
    folder = tmp_path_factory.mktemp("backbone")
    rng = np.random.default_rng(0)
    np.savez(folder / "images.npz", x=rng.integers(0, 256, (32, 8, 8, 1)).astype("float32"),
             y=rng.integers(0, 3, 32))
    pretrained = _application(**{k: v for k, v in APP.items() if k != "pooling"})
    pretrained.save_weights(folder / "pretrained.weights.h5")
    return folder, pretrained


@pytest.fixture(scope="module")
def tuned(images):
    """One fine-tuned run (1 head epoch, 2 fine-tuning) on 8x8 gray images (resized and made
    RGB inside the model), and the same run in three parts."""
    from typer.testing import CliRunner

    folder, pretrained = images
    path = write_config(folder / "c.yaml", _config(folder))
    runner = CliRunner()
    before = phases.computed["passes"]
    full = fit(runner, path, "--run-dir", folder / "full")
    passes = phases.computed["passes"] - before
    # stopped at the boundary (the head's optimizer in the checkpoint), resumed into the
    # fine-tuning, stopped there (its optimizer in the checkpoint) and resumed to the end
    part = fit(runner, path, "fit.epochs=1", "--run-dir", folder / "part")
    for epochs in (2, 3):
        result = runner.invoke(app, ["fit", "--resume", str(part), f"fit.epochs={epochs}"])
        assert result.exit_code == 0, result.output
    return {"folder": folder, "full": full, "passes": passes, "part": part,
            "pretrained": pretrained}


def _inner(model: keras.Model) -> keras.Model:
    """The application inside a saved model's backbone layer."""
    wrapper = next(layer for layer in model.layers if layer.name.startswith("backbone"))
    return next(layer for layer in wrapper.layers if isinstance(layer, keras.Model))


def test_fine_tuning_keeps_batch_normalization_and_trains_only_the_top_layers(tuned):
    model = keras.saving.load_model(tuned["full"] / "model.keras", safe_mode=True)
    trained, start = _inner(model), tuned["pretrained"]
    top = trained.layers[-6:]
    changed = []
    for layer, was in zip(trained.layers, start.layers):
        same = all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), was.get_weights()))
        if isinstance(layer, keras.layers.BatchNormalization):  # statistics and scale kept
            assert same, layer.name
            assert not layer.trainable
        elif layer.get_weights() and not same:
            changed.append(layer)
    assert changed and all(layer in top for layer in changed)


def test_history_and_run_json_say_where_each_phase_starts(tuned):
    history = pd.read_csv(tuned["full"] / "history.csv")
    assert history["fine_tune"].tolist() == [0.0, 1.0, 1.0]
    record = json.loads((tuned["full"] / "run.json").read_text())
    assert [(p["phase"], p["first_epoch"]) for p in record["phases"]] == \
        [("head", 0), ("fine_tune", 1)]
    assert record["phases"][1]["learning_rate"] == 0.001


def test_resumes_across_the_boundary_and_inside_fine_tuning_are_exact(tuned):
    full, part = tuned["full"], tuned["part"]
    assert_identical(weights(full), weights(part))
    assert (full / "history.csv").read_bytes() == (part / "history.csv").read_bytes()


def test_a_frozen_backbone_computes_its_features_once(tuned):
    # one pass over the training split and one over the validation split, for the head's
    # epoch; the fine-tuning phase trains the whole model
    assert tuned["passes"] == 2


def test_the_saved_model_takes_raw_pixels(tuned, runner):
    folder = tuned["folder"]
    x = np.load(folder / "images.npz")["x"][:4]
    np.save(folder / "few.npy", x)
    model = keras.saving.load_model(tuned["full"] / "model.keras", safe_mode=True)
    result = runner.invoke(app, ["predict", str(tuned["full"]), str(folder / "few.npy"),
                                 "--output", str(folder / "out.csv")])
    assert result.exit_code == 0, result.output
    shown = pd.read_csv(folder / "out.csv").filter(like="prob").to_numpy()
    np.testing.assert_allclose(shown, model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ imagenet weights


def _imagenet_config(folder: Path) -> dict:
    config = _config(folder)
    config["model"]["layers"][0] = {"MobileNetV3Small": {
        "minimalistic": True, "weights": "imagenet", "trainable": False, "pooling": "avg"}}
    del config["fit"]["fine_tune"]
    return config


def test_imagenet_weights_missing_from_the_cache_stop_before_training(images, runner,
                                                                       tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    path = write_config(tmp_path / "c.yaml", _imagenet_config(images[0]))
    result = runner.invoke(app, ["fit", str(path), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"put the genuine file at {tmp_path / 'home' / 'models' / IMAGENET_FILE}" \
        in result.stderr
    assert not (tmp_path / "run").exists()


def test_imagenet_weights_load_from_keras_cache(images, tmp_path, monkeypatch):
    from nettrain.config.load import load_config
    from nettrain.engine.train import prepare

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    cached = _application(minimalistic=True, pooling="avg")  # as if from ImageNet
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(tmp_path / "models" / IMAGENET_FILE, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, cached)
    path = write_config(tmp_path / "c.yaml", _imagenet_config(images[0]))
    model = prepare(load_config(path, [])).model
    assert_identical(_inner(model).get_weights(), cached.get_weights())


# ------------------------------------------------------------------ the static table


def test_the_table_names_every_application_and_its_preprocessing():
    functions = {name for name, f in vars(keras.applications).items()
                 if inspect.isfunction(f)}
    assert set(APPLICATIONS) == functions
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    for name, mode in APPLICATIONS.items():
        module = inspect.getmodule(getattr(keras.applications, name))
        expected = module.preprocess_input(pixels.copy())
        got = pixels
        for layer in backbones._preprocessing(mode):
            got = layer(got)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), expected, rtol=1e-5,
                                   atol=1e-3, err_msg=name)


@pytest.mark.parametrize("change, key, expected", [
    ({"include_top": True}, "model.layers[0].MobileNetV3Small.include_top", "Remove it."),
    ({"alpah": 0.5}, "model.layers[0].MobileNetV3Small.alpah", "Did you mean 'alpha'?"),
    ({"weights": "w.pt"}, "model.layers[0].MobileNetV3Small.weights", ".weights.h5 or .h5"),
    ({"trainable": True}, "fit.fine_tune", "trainable: false"),
])
def test_config_mistakes_are_named(images, runner, tmp_path, change, key, expected):
    config = _config(images[0])
    config["model"]["layers"][0]["MobileNetV3Small"].update(change)
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2, result.output
    assert key in result.stderr and expected in result.stderr


def test_a_saved_backbone_called_without_training_runs_in_inference_mode():
    # serving and export call the model with no training argument: the layers made before
    # the application (gray to RGB, the scaling up) must not turn its BatchNormalization to
    # training mode (Keras's Resizing would: its call defaults to training=True)
    made = backbones.resolve({"MobileNetV3Small": {**APP, "weights": None}},
                             "model.layers[0]").make((8, 8, 1), 0)
    backbones.set_trainable(made, "all")
    rng = np.random.default_rng(0)
    for layer in made._nettrain_application.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape))
    x = rng.uniform(0, 255, (4, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(made(x)), made.predict(x, verbose=0),
                               atol=1e-4)


def test_a_misspelt_application_is_suggested_like_a_layer(runner, tmp_path):
    """A keras.applications name is a layer entry, so a near miss is told its name."""
    config = {"data": {"dataset": "digits", "reshape": [8, 8, 1]},
              "model": {"layers": [{"MobileNetV3Smal": {"weights": None}}, "Flatten"]},
              "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"}}
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "received 'MobileNetV3Smal'. Did you mean 'MobileNetV3Small'?" in \
        " ".join(result.stderr.split())

