"""data.timeseries: windows of the previous rows in time order, splits by time, missing:
interpolate in time order, standardising inside the model, predict's forecasts (the last one
the next step) and evaluate beside the naive last-value forecast."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nettrain.cli import app
from nettrain.config.load import load_config
from nettrain.data.loading import load_data
from nettrain.data.missing import Missing

from conftest import fit_once, tiny_config, write_config

ROWS = 40
DAYS = pd.date_range("2020-01-04", periods=ROWS, freq="7D")


def _series(path: Path, gaps: tuple[int, ...] = ()) -> Path:
    """A weekly series in shuffled row order: ``y`` is its week's number (0..39), ``x`` ten
    times it, so each value says which row it came from; ``gaps`` are weeks with no ``y``."""
    y = pd.Series(np.arange(ROWS, dtype="float64"))
    y[list(gaps)] = np.nan
    frame = pd.DataFrame({"x": np.arange(ROWS) * 10.0, "date": DAYS.strftime("%Y-%m-%d"),
                          "y": y})
    frame.sample(frac=1, random_state=0).to_csv(path, index=False)
    return path


def _config(csv: Path, **series) -> dict:
    return tiny_config(
        data={"csv": str(csv), "target": "y", "missing": "interpolate",
              "timeseries": {"time": "date", "window": 4, "horizon": 2, **series},
              "validation_split": 0.2, "test_split": 0.2},
        model={"layers": ["Flatten", {"Dense": {"units": 1}}]},
        compile={"optimizer": "adam", "loss": "mse", "metrics": ["mae"]},
        fit={"epochs": 2, "batch_size": 8, "verbose": 0}, save={"formats": ["keras"]})


def _loaded(tmp_path: Path, gaps: tuple[int, ...] = (), **series):
    config = write_config(tmp_path / "c.yaml", _config(_series(tmp_path / "s.csv", gaps),
                                                       **series))
    return load_config(config), load_data(load_config(config))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("series")
    return fit_once(folder, _config(_series(folder / "s.csv", gaps=(20,))))


def test_splits_are_the_last_parts_in_time_and_windows_end_horizon_rows_before(tmp_path):
    _, data = _loaded(tmp_path)
    # 40 weeks: train 0-23, validation 24-31, test 32-39 (by time, whatever the file order)
    assert {s: data.y[s][:, 0].tolist() for s in data.splits} == {
        "train": list(range(5, 24)), "validation": list(range(24, 32)),
        "test": list(range(32, 40))}
    for split in data.splits:  # the window: weeks t-5..t-2 of label t (x: 10 times the week)
        x, y = data.x[split], data.y[split][:, 0]
        assert x.shape[1:] == (4, 2)
        np.testing.assert_array_equal(x[:, :, 1], y[:, None] - 5 + np.arange(4))
        np.testing.assert_array_equal(x[:, :, 0], 10 * x[:, :, 1])
    assert data.x["train"].max() <= 23 * 10  # no training window holds a later part's row
    assert data.info["features"] == ["x", "y"]
    # split.csv: each line of the shuffled file, by its date
    frame = pd.read_csv(tmp_path / "s.csv")
    codes = np.array(["train", "validation", "test"])[data.rows.codes]
    weeks = (pd.to_datetime(frame["date"]) - DAYS[0]).dt.days.to_numpy() // 7
    assert sorted(weeks[codes == "train"]) == list(range(24))
    assert sorted(weeks[codes == "test"]) == list(range(32, 40))


def test_stride_takes_every_stride_th_window(tmp_path):
    _, data = _loaded(tmp_path, stride=3)
    assert data.y["train"][:, 0].tolist() == [5, 8, 11, 14, 17, 20, 23]


def test_interpolate_fills_training_gaps_on_a_line_and_later_ones_from_the_past_only():
    frame = pd.DataFrame({"v": [1.0, np.nan, 3.0, np.nan, np.nan, 10.0, np.nan, 20.0]})
    missing = Missing.of_config("interpolate", ["v"], [])
    # training rows 0-4: the gap between 1 and 3 on the line; the last two carry 3 forward
    # (never a line toward 10, a value of the part after); row 6 carries 10 forward
    assert missing.interpolated(frame, 5)["v"].tolist() == [1, 2, 3, 3, 3, 10, 10, 20]
    assert missing.interpolated(frame, 0)["v"].tolist() == [1, 1, 3, 3, 3, 10, 10, 20]


def test_a_row_without_its_target_is_an_input_filled_in_time_order_never_a_label(tmp_path):
    _, data = _loaded(tmp_path, gaps=(10, 23))
    train = data.y["train"][:, 0]
    assert 10 not in train and 23 not in train and 11 in train
    windows = data.x["train"][train == 12][0, :, 1]  # weeks 7-10: week 10 from 9 and 11
    assert windows.tolist() == [7, 8, 9, 10]
    last = data.x["validation"][data.y["validation"][:, 0] == 27][0, :, 1]
    assert last.tolist() == [22, 22, 24, 25]  # week 23, the training part's last: 22 carried


def test_the_model_standardises_on_the_training_part_and_answers_in_the_series_units(
        tmp_path):
    from nettrain.model.builder import build_model

    config, data = _loaded(tmp_path)
    model = build_model(config, data)
    first, last = model.layers[0], model.layers[-1]
    train = data.x["train"].reshape(-1, 2)
    np.testing.assert_allclose(np.asarray(first.mean).reshape(-1), train.mean(axis=0),
                               rtol=1e-5)
    np.testing.assert_allclose(np.asarray(first.variance).reshape(-1), train.var(axis=0),
                               rtol=1e-4)
    assert last.invert
    np.testing.assert_allclose(np.asarray(last.mean).reshape(-1), [data.y["train"].mean()],
                               rtol=1e-5)


def test_predict_forecasts_each_window_and_marks_the_next_step(runner, run, tmp_path):
    recent = tmp_path / "recent.csv"  # weeks 30-36, the latest first
    rows = pd.read_csv(run.parent / "s.csv").sort_values("date").iloc[30:37]
    rows.iloc[::-1].to_csv(recent, index=False)
    result = runner.invoke(app, ["predict", str(run), str(recent)])
    assert result.exit_code == 0, result.output
    out = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert list(out.columns) == ["time", "forecast_time", "y", "next_step"]
    dates = rows["date"].tolist()
    assert out["time"].tolist() == dates[3:]  # 7 rows: 4 windows of 4, in time order
    # horizon 2: the first two forecasts are rows of the file, the last two past its end
    after = [(pd.Timestamp(dates[-1]) + pd.Timedelta(days=7 * k)).strftime("%Y-%m-%d")
             for k in (1, 2)]
    assert out["forecast_time"].tolist() == dates[5:] + after
    assert out["next_step"].tolist() == [False, False, False, True]
    assert "the last, next_step true, is for" in " ".join(result.stderr.split())
    assert np.isfinite(out["y"]).all()


def test_evaluate_scores_the_naive_last_value_forecast_on_the_same_rows(runner, run):
    result = runner.invoke(app, ["evaluate", str(run), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["report"]
    naive = report["naive_last_value"]
    # test weeks 32-39, each forecast by the value 2 weeks before: off by 2
    assert (naive["mae"], naive["rmse"], naive["samples"]) == (2.0, 2.0, 8)
    assert report["samples"] == 8
    shown = runner.invoke(app, ["evaluate", str(run), "--data", str(run.parent / "s.csv")])
    assert shown.exit_code == 0, shown.output
    # weeks 5-39 but 20 (no y); week 20 carries 19 forward, so week 22's naive is off by 3
    line = next(line for line in shown.stdout.splitlines() if "naive: last value" in line)
    assert [cell.strip() for cell in line.split("│")][2:4] == ["2.0294", "2.0364"]
    assert "34 samples" in shown.stdout


@pytest.mark.parametrize("rows, expected", [
    ("date,x,y\n2020-01-04,0,0\n2020-01-04,1,1\n2020-01-11,2,2\n",
     "the time column 'date' holds the time '2020-01-04' more than once (lines 2, 3)"),
    ("date,x,y\n2020-01-04,0,0\nsoon,1,1\n2020-01-11,2,2\n,3,3\n",
     "the time column 'date' holds no date or number in lines 3, 5: 'soon'"),
])
def test_repeated_or_unreadable_times_are_refused_naming_the_lines(runner, tmp_path, rows,
                                                                    expected):
    (tmp_path / "s.csv").write_text(rows)
    config = write_config(tmp_path / "c.yaml", _config(tmp_path / "s.csv"))
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert expected in " ".join(result.stderr.split())


def test_predict_with_fewer_rows_than_a_window_is_refused(runner, run, tmp_path):
    short = tmp_path / "short.csv"
    pd.read_csv(run.parent / "s.csv").iloc[:3].to_csv(short, index=False)
    result = runner.invoke(app, ["predict", str(run), str(short)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "short.csv has 3 rows; a forecast needs a window of 4 rows" in \
        " ".join(result.stderr.split())


@pytest.mark.parametrize("data, expected", [
    ({"categorical": ["x"]}, "data.categorical (line"),
    ({"timeseries": {"time": "y", "window": 3}}, "a time column other than the target"),
    ({"missing": "interpolate", "timeseries": None}, "interpolate only with data.timeseries"),
])
def test_keys_that_do_not_go_with_a_series_are_refused_at_validate(runner, tmp_path, data,
                                                                   expected):
    config = _config(_series(tmp_path / "s.csv"))
    config["data"].update(data)
    config["data"] = {k: v for k, v in config["data"].items() if v is not None}
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.stderr.split())


def test_rows_by_column_name_are_refused_for_a_series_model_saying_what_it_takes():
    """serve's and MLflow's rows: a series model takes windows, not time steps one by one."""
    from nettrain.engine.predict import Predictor, rows_inputs
    from nettrain.errors import InputError

    info = {"timeseries": {"time": "date", "window": 4, "horizon": 1}, "input_shape": [4, 2],
            "features": ["x", "y"], "target": ["y"]}
    with pytest.raises(InputError, match=r"give each as a list of 4 rows of 2 numbers \(x, y\)"):
        rows_inputs(Predictor(None, info, False), pd.DataFrame({"x": [1.0], "y": [2.0]}))


def test_the_backend_policy_weighs_a_series_by_its_windows(monkeypatch) -> None:
    """auto's work estimate counts a sample as a window of rows (52 weeks of co2: the Dense
    layer's 53 parameters), not as one row of the file's columns."""
    from nettrain.backends.work import estimate

    monkeypatch.chdir(Path(__file__).parents[1])  # the config's csv is from the repository
    work = estimate(load_config(Path("configs/co2_forecast.yaml")))
    assert work.parameters == 52 * 1 + 1
    assert work.rows == round((2284 - 52) * (1 - 0.3))


def test_predict_of_recent_rows_with_a_gap_at_the_start_is_an_input_mistake(runner, run,
                                                                            tmp_path):
    """A gap with nothing before it to carry forward: the file must be mended (exit 2, as an
    empty cell is for fit and evaluate --data), with the row and column named."""
    gap = tmp_path / "gap.csv"
    rows = pd.read_csv(run.parent / "s.csv").sort_values("date").iloc[:8].reset_index(drop=True)
    rows.loc[0, "y"] = np.nan  # the first week: no earlier value to carry forward
    rows.to_csv(gap, index=False)
    result = runner.invoke(app, ["predict", str(run), str(gap)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "gap.csv: missing value at row 2, column 'y'" in " ".join(result.stderr.split())
