"""Run directories written by an earlier nettrain still load, evaluate, predict and resume.

``fixtures/main-20261201/run`` was trained by main at commit 8665135 (before the package
became subpackages), in /tmp/oldrun, on ``renewals.csv`` (categorical CSV, keras and json
formats, 3 epochs). A test copies it and points its recorded data paths at the copy, as a
user who moved the folder would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from nettrain.cli import app

FIXTURE = Path(__file__).parent / "fixtures" / "main-20261201"
MADE_IN = "/tmp/oldrun"


def _old_run(tmp_path: Path) -> Path:
    folder = tmp_path / "old"
    shutil.copytree(FIXTURE, folder)
    for name in ("run.json", "config.yaml"):
        path = folder / "run" / name
        path.write_text(path.read_text().replace(MADE_IN, str(folder)))
    return folder / "run"


def test_an_old_run_evaluates_with_its_recorded_metrics(tmp_path, runner):
    run = _old_run(tmp_path)
    result = runner.invoke(app, ["evaluate", str(run), "--json"])
    assert result.exit_code == 0, result.output
    assert result.exception is None
    measured = json.loads(result.stdout)
    recorded = json.loads((run / "metrics.json").read_text())["test"]
    assert measured["metrics"]["accuracy"] == recorded["accuracy"]


def test_an_old_run_predicts_raw_rows(tmp_path, runner):
    run = _old_run(tmp_path)
    rows = pd.read_csv(run.parent / "renewals.csv", dtype=str).drop(columns=["renewed"])[:5]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    result = runner.invoke(app, ["predict", str(run), str(tmp_path / "rows.csv"),
                                 "--output", str(tmp_path / "out.csv")])
    assert result.exit_code == 0, result.output
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["class", "prob_no", "prob_yes"]
    assert len(out) == 5


def test_an_old_run_resumes_to_more_epochs(tmp_path, runner):
    run = _old_run(tmp_path)
    result = runner.invoke(app, ["fit", "--resume", str(run), "fit.epochs=4", "--quiet"])
    assert result.exit_code == 0, result.output
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["epochs_completed"] == 4
    # which way its metrics improve, recorded once by the resume (the run had no record)
    assert record["directions"] == {"loss": "min", "accuracy": "max"}
    assert len(pd.read_csv(run / "history.csv")) == 4
