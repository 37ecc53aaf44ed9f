"""Reports and pictures: per-class and regression numbers, the PNGs, history.png after fit."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from nettrain.engine import plots
from nettrain.engine import reports
from nettrain.cli import app

from conftest import fit_once, tiny_config


def png_size(path: Path) -> tuple[int, int]:
    """A PNG file's width and height in pixels (and a check that it is one)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path}: not a PNG"
    return struct.unpack(">II", head[16:24])


def rendered(table) -> list[str]:
    console = Console(width=80, record=True, file=open("/dev/null", "w"))
    console.print(table)
    return console.export_text().splitlines()


# ------------------------------------------------------------------------ the numbers


def test_classification_report_numbers_per_class_and_averages():
    result = reports.classification(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]),
                                    ["a", "b", "c"])
    assert result["classes"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert result["classes"]["b"]["precision"] == pytest.approx(2 / 3)
    assert result["classes"]["b"]["recall"] == 1.0
    assert result["classes"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert result["accuracy"] == pytest.approx(0.6)
    assert result["macro avg"]["recall"] == pytest.approx(0.5)
    assert result["weighted avg"]["support"] == 5
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_binary_and_one_hot_labels_become_class_indices():
    assert reports.predicted_classes(np.array([[0.2], [0.5], [0.9]])).tolist() == [0, 1, 1]
    assert reports.predicted_classes(np.array([[-0.1], [0.3]]), threshold=0.0).tolist() == [0, 1]
    assert reports.predicted_classes(np.array([[0.1, 0.7, 0.2]])).tolist() == [1]
    assert reports.true_classes(np.array([[0, 0, 1], [1, 0, 0]])).tolist() == [2, 0]
    assert reports.true_classes(np.array([[1], [0]])).tolist() == [1, 0]


def test_regression_report_mae_rmse_r2():
    result = reports.regression(np.array([[1.0], [2.0], [3.0]]), np.array([[1.0], [2.0], [5.0]]),
                                ["price"])
    assert result["mae"] == pytest.approx(2 / 3)
    assert result["rmse"] == pytest.approx(np.sqrt(4 / 3))
    assert result["r2"] == pytest.approx(1 - 4 / 2)
    assert list(result["outputs"]) == ["price"]
    assert reports.regression(np.array([1.0]), np.array([2.0]))["r2"] is None  # undefined


def test_the_counted_report_is_scikit_learns_on_the_rows():
    """evaluate counts a pass into a confusion matrix (memory flat in the rows): its numbers
    are scikit-learn's on the rows themselves, to the last bit."""
    from sklearn.metrics import classification_report

    rng = np.random.default_rng(3)
    true, pred = rng.integers(0, 5, 997), rng.integers(0, 5, 997)
    pred[:400] = true[:400]
    pred[pred == 4] = 3  # a class never predicted
    classes = ["a", "b", "c", "d", "e"]
    result = reports.classification(true, pred, classes)
    sk = classification_report(true, pred, labels=range(5), target_names=classes,
                               output_dict=True, zero_division=0)
    for name in classes:
        assert result["classes"][name] == {"precision": sk[name]["precision"],
                                           "recall": sk[name]["recall"],
                                           "f1": sk[name]["f1-score"],
                                           "support": sk[name]["support"]}
    for name in reports.AVERAGES:
        assert [result[name][k] for k in ("precision", "recall", "f1")] == \
            [sk[name][k] for k in ("precision", "recall", "f1-score")]
    assert result["accuracy"] == sk["accuracy"] and result["samples"] == 997


def test_regression_sums_added_batch_by_batch_give_the_numbers_of_the_whole_arrays():
    rng = np.random.default_rng(4)
    true = rng.normal(50, 10, (1000, 2))
    pred = true + rng.normal(0, 2, (1000, 2))
    moments = reports.Moments()
    for start in range(0, 1000, 64):
        moments.add(true[start:start + 64], pred[start:start + 64])
    streamed = reports.summed(moments, ["a", "b"])
    error = pred - true
    r2 = [1 - (error[:, i] ** 2).sum() / ((true[:, i] - true[:, i].mean()) ** 2).sum()
          for i in range(2)]
    assert streamed["samples"] == 1000
    assert streamed["mae"] == pytest.approx(np.abs(error).mean(), rel=1e-12)
    assert streamed["rmse"] == pytest.approx(np.sqrt((error ** 2).mean()), rel=1e-12)
    assert streamed["outputs"]["b"]["r2"] == pytest.approx(r2[1], rel=1e-12)
    assert streamed["r2"] == pytest.approx(np.mean(r2), rel=1e-12)


def test_the_picture_sample_is_bounded_and_spread_over_every_row():
    sample = reports.Sample(100)
    for start in range(0, 1050, 64):
        rows = np.arange(start, min(start + 64, 1050))
        sample.add(rows, -rows)
    kept, negated = sample.arrays()
    assert 50 <= len(kept) <= 100 and (negated == -kept).all()
    assert kept[0] == 0 and kept[-1] > 900 and (np.diff(kept) == np.diff(kept)[0]).all()


def test_the_per_class_table_reads_as_printed():
    result = reports.classification(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]),
                                    ["setosa", "versicolor", "virginica"])
    lines = rendered(reports.table(result))
    assert lines[1] == "┃ class        ┃ precision ┃ recall ┃     f1 ┃ support ┃"
    assert lines[3] == "│ setosa       │    0.5000 │ 0.5000 │ 0.5000 │       2 │"
    assert lines[4] == "│ versicolor   │    0.6667 │ 1.0000 │ 0.8000 │       2 │"
    assert lines[5] == "│ virginica    │    0.0000 │ 0.0000 │ 0.0000 │       1 │"
    assert lines[7] == "│ macro avg    │    0.3889 │ 0.5000 │ 0.4333 │       5 │"
    assert lines[9] == "│ accuracy     │           │        │ 0.6000 │       5 │"


def test_the_regression_table_has_a_row_per_output_and_all():
    result = reports.regression(np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 2.0]]),
                                np.array([[1.0, 0.0], [2.0, 1.0], [5.0, 2.0]]), ["a", "b"])
    lines = rendered(reports.table(result))
    assert lines[1] == "┃ output ┃    MAE ┃   RMSE ┃      R² ┃ samples ┃"
    assert lines[3] == "│ a      │ 0.6667 │ 1.1547 │ -1.0000 │       3 │"
    assert lines[4] == "│ b      │ 0.0000 │ 0.0000 │  1.0000 │       3 │"
    assert lines[6] == "│ all    │ 0.3333 │ 0.8165 │  0.0000 │       3 │"


# ------------------------------------------------------------------------ the pictures


@pytest.mark.parametrize("n, width", [(2, (400, 900)), (10, (600, 1200)), (100, (1400, 2400))])
def test_confusion_png_grows_with_the_classes(tmp_path, n, width):
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 3, (n, n)) + np.diag(rng.integers(5, 30, n))
    names = [f"class_name_{i}" for i in range(n)]
    path = plots.confusion_png(matrix, names, tmp_path / "cm.png", "title")
    w, h = png_size(path)
    assert width[0] <= w <= width[1] and 0.7 * w <= h <= 1.1 * w, (w, h)


def test_regression_png_is_a_picture(tmp_path):
    rng = np.random.default_rng(0)
    true = rng.normal(size=(50, 2))
    path = plots.regression_png(true, true + rng.normal(scale=0.1, size=(50, 2)),
                                tmp_path / "r.png", "title", ["a", "b"], note="MAE 0.1")
    assert png_size(path) == (1000, 440)


# ------------------------------------------------------------------------ fit and evaluate


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("iris")
    return fit_once(folder, tiny_config(fit={"epochs": 3, "batch_size": 16, "verbose": 0}))


def test_fit_writes_history_png(iris_run):
    w, h = png_size(iris_run / "history.png")
    assert (w, h) == (960, 340)  # two panels: loss and accuracy


def test_the_panels_are_the_metrics_not_the_epoch_learning_rate_or_phase_columns():
    import pandas as pd

    from nettrain.engine.phases import FINE_TUNE

    history = pd.DataFrame({"epoch": [0, 1], "accuracy": [0.5, 0.6], FINE_TUNE: [0.0, 1.0],
                            "learning_rate": [0.1, 0.01], "loss": [1.0, 0.9],
                            "val_loss": [1.1, 1.0], "val_auc": [0.6, 0.7]})
    assert plots.metric_names(history) == ["loss", "accuracy", "auc"]


def _legends(fig) -> list[list[str]]:
    """The entries of each legend of a figure: the panels' legends, then the figure's."""
    legends = [ax.get_legend() for ax in fig.axes] + list(fig.legends)
    return [[t.get_text() for t in legend.get_texts()] for legend in legends if legend]


def test_a_run_without_validation_logs_and_draws_no_validation(runner, tmp_path):
    import pandas as pd

    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(tiny_config(
        data={"dataset": "iris", "validation_split": 0, "test_split": 0.2},
        fit={"epochs": 2, "batch_size": 16, "verbose": 0})))
    result = runner.invoke(app, ["fit", str(config), "--run-dir", "run"])
    assert result.exit_code == 0, result.output
    history = (tmp_path / "run" / "history.csv").read_text()
    assert history.splitlines()[0] == "epoch,accuracy,loss"
    fig = plots.history_figure({"tiny": pd.read_csv(tmp_path / "run" / "history.csv")})
    assert _legends(fig) == [["training"], ["training"]]
    # an older run's history.csv has val_ columns of NA only: no validation line either
    old = pd.read_csv(tmp_path / "run" / "history.csv").assign(val_accuracy=np.nan,
                                                               val_loss=np.nan)
    assert _legends(plots.history_figure({"old": old})) == [["training"], ["training"]]
    assert _legends(plots.history_figure({"a": old, "b": old})) == [["a", "b", "training"]]
    # a resume appends rows that match the header it finds, old or new
    old.to_csv(tmp_path / "run" / "history.csv", index=False, na_rep="NA")
    result = runner.invoke(app, ["fit", "--resume", "run", "fit.epochs=3"])
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert rows[0] == "epoch,accuracy,loss,val_accuracy,val_loss" and len(rows) == 4
    assert rows[3].startswith("2,") and rows[3].endswith(",NA,NA")


def test_a_history_png_that_cannot_be_drawn_does_not_fail_the_run(runner, tmp_path,
                                                                 monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plots, "history_png", full_disk)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(tiny_config(fit={"epochs": 1, "verbose": 0})))
    result = runner.invoke(app, ["fit", str(config), "--run-dir", "run"])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 0, result.output
    assert (f"Warning: {Path('run') / 'history.png'} was not drawn (OSError: [Errno 28] No "
            "space left on device); the run is complete without it.") in result.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "completed"
    assert not (tmp_path / "run" / "history.png").exists()


def test_evaluate_prints_the_per_class_table_and_writes_the_confusion_matrix(runner,
                                                                            iris_run):
    result = runner.invoke(app, ["evaluate", str(iris_run)], terminal_width=100)
    assert result.exit_code == 0, result.output
    entry = json.loads((iris_run / "evaluation.json").read_text())["test"]
    report = entry["report"]
    lines = result.stdout.splitlines()
    assert lines[0] == f"{iris_run} (keras model, test split, 30 samples):"
    assert "┃ class        ┃ precision ┃ recall ┃     f1 ┃ support ┃" in lines
    for name in ("setosa", "versicolor", "virginica"):
        row = report["classes"][name]
        assert (f"│ {name:<12} │ {row['precision']:9.4f} │ {row['recall']:6.4f} │ "
                f"{row['f1']:6.4f} │ {row['support']:7d} │") in lines
    assert sum(r["support"] for r in report["classes"].values()) == 30
    assert lines[-1] == f"Confusion matrix: {iris_run / 'confusion_matrix-test.png'}"
    assert entry["plots"] == ["confusion_matrix-test.png"]
    assert png_size(iris_run / "confusion_matrix-test.png")[0] >= 400


def test_evaluate_json_prints_one_object_and_nothing_else(runner, iris_run):
    result = runner.invoke(app, ["evaluate", str(iris_run), "--split", "validation", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert set(record) == {"run", "split", "format", "metrics", "report", "files"}
    assert record["split"] == "validation" and set(record["metrics"]) == {"loss", "accuracy"}
    assert list(record["report"]["classes"]) == ["setosa", "versicolor", "virginica"]
    assert record["files"] == [str(iris_run / "confusion_matrix-validation.png")]
    assert result.stderr == ""


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("regression")
    return fit_once(folder, tiny_config(
        name="reg", data={"synthetic": {"n_samples": 60, "n_features": 3, "n_outputs": 1},
                          "test_split": 0.25},
        model={"layers": [{"Dense": {"units": 1}}]},
        compile={"optimizer": "adam", "loss": "mse"}))


def test_evaluate_of_a_regression_model_prints_mae_rmse_r2(runner, regression_run):
    result = runner.invoke(app, ["evaluate", str(regression_run)])
    assert result.exit_code == 0, result.output
    report = json.loads((regression_run / "evaluation.json").read_text())["test"]["report"]
    assert "┃ output ┃" in result.stdout and "┃ MAE ┃" not in result.stdout
    row = f"│ y      │ {report['mae']:.4f} │ {report['rmse']:.4f} │"
    assert any(line.startswith(row) for line in result.stdout.splitlines()), result.stdout
    assert result.stdout.splitlines()[-1] == \
        f"Predicted against true, and residuals: {regression_run / 'regression-test.png'}"
    assert png_size(regression_run / "regression-test.png") == (1000, 440)


def test_evaluate_data_of_a_regression_model_wants_numbers(runner, regression_run, tmp_path):
    (tmp_path / "new.csv").write_text("x0,x1,x2,y\n0.1,0.2,0.3,1.5\n0.3,0.1,0.0,-2\n")
    result = runner.invoke(app, ["evaluate", str(regression_run), "--data", "new.csv"])
    assert result.exit_code == 0, result.output
    assert "│ y      │" in result.stdout
    assert result.stdout.splitlines()[-1].endswith(str(regression_run /
                                                       "regression-data-new.png"))
    (tmp_path / "text.csv").write_text("x0,x1,x2,y\n0.1,0.2,0.3,high\n")
    result = runner.invoke(app, ["evaluate", str(regression_run), "--data", "text.csv"])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2, result.output
    assert ("--data: the labels of text.csv must be numbers (the model is a regression model); "
            "they hold values such as 'high'.") in result.stderr
