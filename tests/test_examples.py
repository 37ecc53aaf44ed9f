"""Every example config validates and trains for a couple of epochs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nettrain.cli import app
from nettrain.config.load import load_config

from conftest import CONFIGS, REPO

EXAMPLES = sorted(CONFIGS.glob("*.yaml"))


def test_there_are_examples_for_the_classic_networks():
    names = {p.stem for p in EXAMPLES}
    assert {"xor", "digits_mlp", "iris", "regression", "binary", "iris_csv",
            "renewals_categorical", "diabetes_csv", "images_cnn"} <= names


def test_xor_has_41_parameters(runner):
    result = runner.invoke(app, ["validate", str(CONFIGS / "xor.yaml")])
    assert result.exit_code == 0, result.output
    assert "Total params: 41" in result.stdout


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_trains_for_two_epochs(runner, tmp_path, monkeypatch, path: Path):
    monkeypatch.chdir(REPO)  # example paths are relative to the repository root
    config = load_config(path)
    extra = []
    if config.data.images:  # the image example needs a folder of images: make a small one
        from test_data import _images

        _images(tmp_path / "photos", size=16)
        extra = [f"data.images={tmp_path / 'photos'}", "data.image_size=[16, 16]"]
    formats = ",".join(config.save.formats)
    result = runner.invoke(app, ["validate", str(path), *extra])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["fit", str(path), "fit.epochs=2", f"save.formats=[{formats}]",
                                 *extra])
    assert result.exit_code == 0, result.output
    run = tmp_path / result.stdout.strip()
    metrics = json.loads((run / "metrics.json").read_text())
    assert "loss" in metrics["train"]
    assert len((run / "history.csv").read_text().splitlines()) == 3


def test_renewals_predict_takes_raw_rows_with_strings(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    result = runner.invoke(app, ["fit", "configs/renewals_categorical.yaml", "fit.epochs=2",
                                 "save.formats=[keras]"])
    assert result.exit_code == 0, result.output
    rows = tmp_path / "rows.csv"
    rows.write_text("plan,region,seats,months,support_tickets\n"
                    "premium,north,5,36,0\nbasic,mars,3,1,9\n")  # 'mars', 3 unseen
    out = runner.invoke(app, ["predict", result.stdout.strip(), str(rows)])
    assert out.exit_code == 0, out.output
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "class,prob_no,prob_yes" and len(lines) == 3
