"""Every example config validates and trains for a couple of epochs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nettrain.cli import app
from nettrain.config import load_config

from conftest import CONFIGS

EXAMPLES = sorted(CONFIGS.glob("*.yaml"))


def test_there_are_examples_for_the_classic_networks():
    names = {p.stem for p in EXAMPLES}
    assert {"xor", "digits_mlp", "iris", "regression", "binary"} <= names


def test_xor_has_41_parameters(runner):
    result = runner.invoke(app, ["validate", str(CONFIGS / "xor.yaml")])
    assert result.exit_code == 0, result.output
    assert "Total params: 41" in result.stdout


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_trains_for_two_epochs(runner, tmp_path, path: Path):
    config = load_config(path)
    formats = ",".join(config.save.formats)
    result = runner.invoke(app, ["fit", str(path), "fit.epochs=2", f"save.formats=[{formats}]"])
    assert result.exit_code == 0, result.output
    run = tmp_path / result.stdout.strip()
    metrics = json.loads((run / "metrics.json").read_text())
    assert "loss" in metrics["train"]
    assert len((run / "history.csv").read_text().splitlines()) == 3
