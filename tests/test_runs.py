"""`nettrain runs` (the table of runs) and `nettrain runs compare`, as a user runs them.

Two tiny real runs are trained once (iris, 2 and 3 epochs); the other statuses are made by
copying one and editing its files as a failed, interrupted, killed or damaged run leaves them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import pytest

from conftest import REPO, fit_once, tiny_config
from nettrain.cli import common as cli
from nettrain.run import lock
from nettrain.cli import app

WIDTH = 140


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run a: 8 units, adam, 2 epochs. Run b: 16 units, Adam at 0.01, 3 epochs."""
    root = tmp_path_factory.mktemp("trained")
    save = {"formats": ["keras"]}
    (root / "a").mkdir()
    (root / "b").mkdir()
    a = fit_once(root / "a", tiny_config(save=save))
    b = fit_once(root / "b", tiny_config(
        save=save,
        model={"layers": [{"Dense": {"units": 16, "activation": "relu"}},
                          {"Dense": {"units": 3, "activation": "softmax"}}]},
        compile={"optimizer": {"Adam": {"learning_rate": 0.01}},
                 "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        fit={"epochs": 3, "batch_size": 16, "verbose": 0}))
    return {"a": a, "b": b}


@pytest.fixture(autouse=True)
def _wide_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed terminal width, and times shown in UTC."""
    monkeypatch.setattr(cli.out, "width", WIDTH)
    monkeypatch.setattr(cli.err, "width", WIDTH)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def put(trained: dict[str, Path], which: str, where: str, started: str,
        metrics: dict | None = None, history: list[tuple] | None = None, **record) -> Path:
    """Copy trained run ``which`` to ``runs/WHERE``, started on ``started`` (November, UTC),
    with ``metrics`` as its metrics.json and ``history`` its history.csv rows (accuracy,
    loss, val_accuracy, val_loss): fixed numbers, not what training happened to give. run.json
    is changed by ``record`` (a None value removes the key)."""
    path = Path("runs") / where
    shutil.copytree(trained[which], path)
    data = json.loads((path / "run.json").read_text())
    data.update(started=f"2026-11-{started}:00+00:00", **record)
    data = {k: v for k, v in data.items() if v is not None}
    (path / "run.json").write_text(json.dumps(data))
    if metrics is not None:
        (path / "metrics.json").write_text(json.dumps(metrics))
    if history is not None:
        (path / "history.csv").write_text("epoch,accuracy,loss,val_accuracy,val_loss\r\n" + "".join(
            ",".join(map(str, (epoch, *row))) + "\r\n" for epoch, row in enumerate(history)))
    return path


def scores(accuracy: float, loss: float) -> dict:
    return {split: {"accuracy": accuracy, "loss": loss}
            for split in ("train", "validation", "test")}


@pytest.fixture
def many(trained: dict[str, Path]) -> dict[str, Path]:
    """runs/ with one run of each status and one damaged run, two folders deep.

    Run a has the lower loss, run b the higher accuracy.
    """
    paths = {
        "a": put(trained, "a", "tiny/a", "20T10:00", scores(0.9, 0.25),
                 [(0.6, 0.9, 0.65, 0.8), (0.8, 0.6, 0.85, 0.5)]),
        "b": put(trained, "b", "tiny/b", "21T10:00", scores(0.95, 0.5),
                 [(0.5, 1.0, 0.55, 0.9), (0.85, 0.5, 0.9, 0.45), (0.95, 0.3, 0.93, 0.48)]),
        "failed": put(trained, "a", "failed", "22T10:00", history=[(0.6, 0.9, 0.65, 0.8)],
                      status="failed", epochs_completed=1,
                      error="Training stopped: the loss became NaN or infinite in epoch 2 "
                            "(by batch 3).\nThe run directory keeps the history."),
        "interrupted": put(trained, "b", "interrupted", "23T10:00", status="interrupted",
                           epochs_completed=1),
        "killed": put(trained, "b", "killed", "24T10:00", status="running",
                      epochs_completed=None),
        "damaged": put(trained, "a", "old/deep/damaged", "19T10:00"),
    }
    for name in ("failed", "interrupted", "killed"):
        (paths[name] / "metrics.json").unlink()
    history = paths["killed"] / "history.csv"  # killed in epoch 3: two rows
    history.write_bytes(b"".join(history.read_bytes().splitlines(keepends=True)[:3]))
    (paths["damaged"] / "run.json").write_text('{"status": "completed",')
    return paths


def lines(text: str) -> list[str]:
    """The lines of a table, the rule under its header shortened to one "─"."""
    return [line.rstrip().strip("─") or ("─" if "─" in line else "")
            for line in text.splitlines()]


HEADER = [
    "                                                   test    test",
    " name   started           status       epochs  accuracy    loss  path                   note",
    "─",
]


def test_runs_lists_every_status_newest_first(runner, many):
    result = runner.invoke(app, ["runs", "runs"])
    assert result.exception is None and result.exit_code == 0, result.output
    assert lines(result.stdout) == [*HEADER,
        " tiny                     damaged           ?         -       -  runs/old/deep/damaged  run.json is not valid JSON (line 1, column 24)",
        " tiny   2026-11-24 10:00  stopped         2/3         -       -  runs/killed            ended unmarked (killed?); to continue: nettrain fit --resume runs/killed",
        " tiny   2026-11-23 10:00  interrupted     1/3         -       -  runs/interrupted",
        " tiny   2026-11-22 10:00  failed          1/2         -       -  runs/failed            Training stopped: the loss became NaN or infinite in epoch 2 (by batch 3).",
        " tiny   2026-11-21 10:00  completed       3/3    0.9500  0.5000  runs/tiny/b",
        " tiny   2026-11-20 10:00  completed       2/2    0.9000  0.2500  runs/tiny/a",
        "6 runs under runs, newest first.",
    ]
    assert result.stderr == ""


def test_runs_default_root_is_nettrain_runs(runner, many, tmp_path):
    result = runner.invoke(app, ["runs", "--limit", "2"])
    assert result.exception is None and result.exit_code == 0, result.output
    assert lines(result.stdout)[-1] == f"2 of 6 runs under {tmp_path}/runs, newest first."
    result = runner.invoke(app, ["runs", "--json", "--status", "stopped"])
    assert [run["path"] for run in json.loads(result.stdout)] == [f"{tmp_path}/runs/killed"]


def test_runs_sort_by_a_metric_highest_or_lowest_first(runner, many):
    result = runner.invoke(app, ["runs", "runs", "--sort", "val_accuracy", "--status",
                                 "completed"])
    assert result.exception is None and result.exit_code == 0, result.output
    assert lines(result.stdout) == [
        "                                                 test    test       val",
        " name   started           status     epochs  accuracy    loss  accuracy  path",
        "─",
        " tiny   2026-11-21 10:00  completed     3/3    0.9500  0.5000    0.9500  runs/tiny/b",
        " tiny   2026-11-20 10:00  completed     2/2    0.9000  0.2500    0.9000  runs/tiny/a",
        "2 of 6 runs under runs (status completed), sorted by val_accuracy, highest first.",
    ]
    result = runner.invoke(app, ["runs", "runs", "--sort", "val_loss", "--limit", "3"])
    assert result.exit_code == 0, result.output
    assert lines(result.stdout)[-1] == ("3 of 6 runs under runs, sorted by val_loss, "
                                        "lowest first.")
    result = runner.invoke(app, ["runs", "runs", "--sort", "val_loss", "--limit", "3", "--json"])
    assert [run["path"] for run in json.loads(result.stdout)] == [
        "runs/tiny/a", "runs/tiny/b", "runs/old/deep/damaged"]  # without the metric: last


def test_runs_sort_by_an_unknown_metric_says_which_exist(runner, many):
    result = runner.invoke(app, ["runs", "runs", "--sort", "val_acuracy"])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert result.stderr == (
        "Error: --sort: expected a metric of the runs under runs (train_accuracy, train_loss, "
        "val_accuracy, val_loss, test_accuracy, test_loss); received 'val_acuracy'. "
        "Did you mean 'val_accuracy'?\n")
    assert result.stdout == ""


def test_runs_status_filter(runner, many):
    result = runner.invoke(app, ["runs", "runs", "--status", "failed"])
    assert result.exit_code == 0, result.output
    assert lines(result.stdout) == [
        " name   started           status  epochs  path         note",
        "─",
        " tiny   2026-11-22 10:00  failed     1/2  runs/failed  Training stopped: the loss "
        "became NaN or infinite in epoch 2 (by batch 3).",
        "1 of 6 runs under runs (status failed), newest first."]
    result = runner.invoke(app, ["runs", "runs", "--status", "stopped", "--json"])
    assert [run["path"] for run in json.loads(result.stdout)] == ["runs/killed"]
    result = runner.invoke(app, ["runs", "runs", "--status", "dead"])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert "Invalid value for '--status'" in result.stderr
    assert "'dead' is not one of 'completed', 'failed', 'interrupted', 'running', " \
           "'stopped', 'damaged'" in " ".join(result.stderr.replace("│", "").split())
    result = runner.invoke(app, ["runs", "runs", "--status", "running"])
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == "No run under runs has status running (6 runs in all).\n"


def test_runs_json_is_a_list_of_objects_and_nothing_else(runner, many):
    result = runner.invoke(app, ["runs", "runs", "--json", "--status", "completed"])
    assert result.exception is None and result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    assert [run["path"] for run in runs] == ["runs/tiny/b", "runs/tiny/a"]
    assert runs[1] == {
        "name": "tiny", "path": "runs/tiny/a", "status": "completed",
        "started": "2026-11-20T10:00:00+00:00", "ended": runs[1]["ended"], "epochs": 2,
        "planned_epochs": 2, "note": None,
        "metrics": {"train_accuracy": 0.9, "train_loss": 0.25, "val_accuracy": 0.9,
                    "val_loss": 0.25, "test_accuracy": 0.9, "test_loss": 0.25}}
    result = runner.invoke(app, ["runs", "--json", "runs", "--limit", "1"])  # options first
    assert [run["status"] for run in json.loads(result.stdout)] == ["damaged"]
    assert result.stderr == ""


def test_a_run_being_trained_is_running_and_one_whose_process_ended_is_stopped(runner, many):
    with lock.locked(many["killed"]):
        result = runner.invoke(app, ["runs", "runs", "--json", "--status", "running"])
        assert result.exit_code == 0, result.output
        [run] = json.loads(result.stdout)
        assert (run["path"], run["epochs"]) == ("runs/killed", 2)
        assert run["note"].startswith(f"trained by pid {os.getpid()} on ")
    result = runner.invoke(app, ["runs", "runs", "--json", "--status", "stopped"])
    [run] = json.loads(result.stdout)
    assert run["note"] == "ended unmarked (killed?); to continue: nettrain fit --resume runs/killed"
    assert not (many["a"] / ".lock").exists()  # reading never creates a lock file


def test_damaged_runs_are_rows_with_the_reason(runner, trained):
    made = {
        "garbage": put(trained, "a", "garbage", "20T10:00"),
        "list": put(trained, "a", "list", "20T10:01"),
        "status": put(trained, "a", "status", "20T10:02", status="done"),
        "no-config": put(trained, "a", "no-config", "20T10:03"),
        "bad-config": put(trained, "a", "bad-config", "20T10:04"),
        "no-dataset": put(trained, "a", "no-dataset", "20T10:05"),
        "no-model": put(trained, "a", "no-model", "20T10:06"),
        "bad-metrics": put(trained, "a", "bad-metrics", "20T10:07"),
        "no-metrics": put(trained, "a", "no-metrics", "20T10:08"),
        "no-run-json": put(trained, "a", "no-run-json", "20T10:09"),
    }
    (made["garbage"] / "run.json").write_bytes(b"\xff\xfe")
    (made["list"] / "run.json").write_text("[1, 2]")
    (made["no-config"] / "config.yaml").unlink()
    (made["bad-config"] / "config.yaml").write_text("name: [tiny\n")
    (made["no-dataset"] / "dataset.json").unlink()
    (made["no-model"] / "model.keras").unlink()
    (made["bad-metrics"] / "metrics.json").write_text('{"test": {"loss": "low"}}')
    (made["no-metrics"] / "metrics.json").unlink()
    (made["no-run-json"] / "run.json").unlink()
    Path("runs/configs").mkdir()  # a folder of configs is not a run
    (Path("runs/configs") / "config.yaml").write_text("name: x\n")
    result = runner.invoke(app, ["runs", "runs", "--json"])
    assert result.exception is None and result.exit_code == 0, result.output
    notes = {Path(run["path"]).name: run["note"] for run in json.loads(result.stdout)
             if run["status"] == "damaged"}
    assert notes == {
        "garbage": "run.json is not UTF-8 text",
        "list": "run.json holds a JSON list, not an object",
        "status": "run.json holds no known status (received 'done'; expected one of "
                  "completed, failed, interrupted, running)",
        "no-config": "config.yaml is missing",
        "bad-config": "config.yaml is not valid YAML (did not find expected ',' or ']' at "
                      "line 2, column 1)",
        "no-dataset": "dataset.json is missing (the run's columns and classes)",
        "no-model": "model.keras missing (run.json says it was saved)",
        "bad-metrics": "metrics.json: expected numbers for each split; 'test' holds "
                       '{"loss": "low"}',
        "no-metrics": "metrics.json is missing",
        "no-run-json": "run.json is missing",
    }
    result = runner.invoke(app, ["runs", "runs"])  # the table shows them too
    assert result.exit_code == 0 and lines(result.stdout)[-1] == "10 runs under runs, newest first."


def test_runs_with_no_runs_says_how_to_train(runner, tmp_path):
    result = runner.invoke(app, ["runs"])  # $NETTRAIN_RUNS does not exist yet: no runs
    assert result.exception is None and result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == (f"No runs under {tmp_path}/runs. Train one with: nettrain fit "
                             "CONFIG (e.g. nettrain fit configs/xor.yaml); runs go under "
                             "$NETTRAIN_RUNS, else ./runs.\n")
    Path("empty").mkdir()
    result = runner.invoke(app, ["runs", "empty", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert result.stderr.startswith("No runs under empty. Train one with:")


@pytest.mark.parametrize("root, why", [("nowhere", "does not exist. Runs are under "
                                        "$NETTRAIN_RUNS, else ./runs."),
                                       ("file.txt", "is a file.")])
def test_runs_root_must_be_a_folder(runner, root, why):
    Path("file.txt").write_text("x")
    result = runner.invoke(app, ["runs", root])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert result.stderr == (f"Error: ROOT: expected a folder of run directories; received "
                             f"'{root}', which {why}\n")


def test_compare_shows_the_keys_that_differ_the_metrics_and_one_plot(runner, many):
    result = runner.invoke(app, ["runs", "compare", "runs/tiny/a", "runs/tiny/b", "runs/failed"])
    assert result.exception is None and result.exit_code == 0, result.output
    assert lines(result.stdout) == [
        "Config: 4 keys differ (32 the same)",
        "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━┳━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓",
        "┃ key                                  ┃ tiny (a)  ┃ tiny (b)  ┃ tiny (failed) ┃",
        "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩",
        "│ model.layers.0.Dense.units           │ 8         │ 16        │ 8             │",
        "│ compile.optimizer                    │ adam      │ (not set) │ adam          │",
        "│ compile.optimizer.Adam.learning_rate │ (not set) │ 0.01      │ (not set)     │",
        "│ fit.epochs                           │ 2         │ 3         │ 2             │",
        "└──────────────────────────────────────┴───────────┴───────────┴───────────────┘",
        "Metrics",
        "┏━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━┓",
        "┃                ┃            tiny (a) ┃            tiny (b) ┃       tiny (failed) ┃",
        "┡━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━┩",
        "│ status         │           completed │           completed │              failed │",
        "│ epochs         │                 2/2 │                 3/3 │                 1/2 │",
        "│ best epoch     │ 2 (val_loss 0.5000) │ 2 (val_loss 0.4500) │ 1 (val_loss 0.8000) │",
        "│ test_accuracy  │              0.9000 │              0.9500 │                   - │",
        "│ test_loss      │              0.2500 │              0.5000 │                   - │",
        "│ val_accuracy   │              0.9000 │              0.9500 │                   - │",
        "│ val_loss       │              0.2500 │              0.5000 │                   - │",
        "│ train_accuracy │              0.9000 │              0.9500 │                   - │",
        "│ train_loss     │              0.2500 │              0.5000 │                   - │",
        "└────────────────┴─────────────────────┴─────────────────────┴─────────────────────┘",
    ]
    assert result.stderr == "Wrote the history plot of 3 runs to compare.png\n"
    image = matplotlib.image.imread("compare.png")
    assert image.shape[:2] == (385, 960)  # two panels (loss, accuracy), a legend under them


def test_compare_json_and_output(runner, many):
    result = runner.invoke(app, ["runs", "compare", "runs/tiny/b", "runs/tiny/a", "--json",
                                 "--output", "plots/ab.png"])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert result.stderr == "Error: --output plots/ab.png: the folder plots does not exist.\n"
    Path("plots").mkdir()
    result = runner.invoke(app, ["runs", "compare", "runs/tiny/b", "runs/tiny/a", "--json",
                                 "-o", "plots/ab.png"])
    assert result.exception is None and result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["config"] == {"same": 32, "differ": {
        "model.layers.0.Dense.units": [16, 8], "compile.optimizer": [None, "adam"],
        "compile.optimizer.Adam.learning_rate": [0.01, None], "fit.epochs": [3, 2]}}
    assert data["metrics"]["test_accuracy"] == [0.95, 0.9]
    assert [(run["label"], run["best_epoch"]) for run in data["runs"]] == [
        ("tiny (b)", {"epoch": 2, "monitor": "val_loss", "value": 0.45}),
        ("tiny (a)", {"epoch": 2, "monitor": "val_loss", "value": 0.5})]
    assert data["plot"] == "plots/ab.png" and Path("plots/ab.png").stat().st_size > 10000
    assert result.stderr == "Wrote the history plot of 2 runs to plots/ab.png\n"


@pytest.mark.parametrize("args, message", [
    (["runs/tiny/a", "runs/nowhere"], "RUN: expected a run directory (made by 'nettrain fit'); "
     "received 'runs/nowhere', which does not exist. List the runs with: nettrain runs"),
    (["runs/tiny/a", "runs/tiny"], "RUN: expected a run directory (made by 'nettrain fit'); "
     "received 'runs/tiny', which has no config.yaml and run.json. List the runs with: "
     "nettrain runs"),
    (["runs/tiny/a"], "RUN: expected at least two run directories to compare; received 1. To "
     "see one run: nettrain runs runs/tiny/a"),
    (["runs/tiny/a", "runs/tiny/../tiny/a"], "RUN: 'runs/tiny/../tiny/a' is given twice (as "
     "'runs/tiny/a'); compare different runs."),
    (["runs/tiny/a", "runs/tiny/b", "-o", "x.jpg"], "--output x.jpg: expected a .png file "
     "name (the plot is a PNG)."),
    (["runs/tiny/a", "runs/interrupted"], "RUN 'runs/interrupted': runs/interrupted/config.yaml"
     ":2:1: expected valid YAML; received a syntax error at line 2, column 1: expected ',' or "
     "']', but got '<stream end>'. Check the indentation and the ':' after each key. Its config "
     "cannot be compared; restore it from a copy of the run directory."),
])
def test_compare_refuses_what_is_not_two_runs(runner, many, args, message):
    (many["interrupted"] / "config.yaml").write_text("name: [tiny\n")
    result = runner.invoke(app, ["runs", "compare", *args])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert result.stderr == f"Error: {message}\n"
    assert not Path("compare.png").exists()


def test_runs_group_takes_root_options_anywhere_and_a_compare_sub_command(runner, many):
    for args in (["runs", "runs/tiny", "--json"], ["runs", "--json", "runs/tiny"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert [run["path"] for run in json.loads(result.stdout)] == ["runs/tiny/b", "runs/tiny/a"]
    result = runner.invoke(app, ["runs", "runs/tiny/a", "--json"])  # a run directory itself
    assert [run["path"] for run in json.loads(result.stdout)] == ["runs/tiny/a"]
    result = runner.invoke(app, ["runs", "--help"])
    assert result.exit_code == 0
    assert "List the runs under ROOT, newest first" in result.stdout
    assert "compare" in result.stdout and "--sort" in result.stdout
    result = runner.invoke(app, ["runs", "compare", "--help"])
    assert result.exit_code == 0 and "the differing config keys" in result.stdout
    assert "--output" in result.stdout and "--sort" not in result.stdout


def test_runs_imports_no_tensorflow(many):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "nettrain", "runs", "runs"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "6 runs under runs" in done.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "nettrain" in imported and not imported & {"tensorflow", "keras", "matplotlib"}


def test_a_trainer_starting_while_runs_tests_its_lock_waits_instead_of_failing(tmp_path):
    """`nettrain runs` holds a shared lock for an instant to see whether a run is trained."""
    import fcntl
    import threading

    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").touch()
    fd = os.open(run / ".lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # as lock.holder does, but for 0.1 s
    threading.Timer(0.1, os.close, [fd]).start()
    with lock.locked(run):
        assert lock.holder(run)["pid"] == os.getpid()
    assert lock.holder(run) is None and not (run / ".lock").exists()


def test_names_paths_and_errors_are_shown_as_written_not_as_markup(runner, trained):
    put(trained, "a", "[x]/run", "20T10:00", status="failed", epochs_completed=1,
        error="Training failed: [/red] shapes [batch, 4] and [bold]8[/bold] differ")
    put(trained, "a", "[y]/run", "20T10:01", scores(0.9, 0.25))
    result = runner.invoke(app, ["runs", "runs"])
    assert result.exception is None and result.exit_code == 0, result.output
    assert " ".join(result.stdout.split()[11:]) == (
        "tiny 2026-11-20 10:01 completed 2/2 0.9000 0.2500 runs/[y]/run "
        "tiny 2026-11-20 10:00 failed 1/2 - - runs/[x]/run Training failed: [/red] shapes "
        "[batch, 4] and [bold]8[/bold] differ 2 runs under runs, newest first.")
    result = runner.invoke(app, ["runs", "compare", "runs/[x]/run", "runs/[y]/run"])
    assert result.exception is None and result.exit_code == 0, result.output
    assert lines(result.stdout)[:2] == ["Config: the same in every run (35 keys)", "Metrics"]
    assert "tiny ([x]/run)" in result.stdout


def test_compare_best_epoch_is_the_one_fit_s_summary_gives(runner, trained):
    """One rule: the monitor of the run's EarlyStopping (val_accuracy, highest), not val_loss."""
    import yaml

    from nettrain.engine.progress import Display
    from nettrain.run import directory as rundir

    # highest val_accuracy in epoch 1, lowest val_loss in epoch 2
    path = put(trained, "a", "tiny/stopped", "20T10:00", scores(0.9, 0.25),
               [(0.6, 0.9, 0.9, 0.5), (0.8, 0.6, 0.7, 0.4)])
    config = yaml.safe_load((path / "config.yaml").read_text())
    config["fit"]["callbacks"] = [{"EarlyStopping": {"monitor": "val_accuracy", "mode": "max",
                                                     "patience": 5}}]
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    summary: list[str] = []
    run = rundir.open_run(path)
    Display(echo=summary.append).summary(run.config.name, path, {}, run.config, 2)
    assert "Best epoch    1 of 2: highest val_accuracy 0.9000 (EarlyStopping's monitor)" \
        in summary
    other = put(trained, "b", "tiny/b", "21T10:00", scores(0.95, 0.5),
                [(0.5, 1.0, 0.55, 0.9), (0.85, 0.5, 0.9, 0.45)])
    result = runner.invoke(app, ["runs", "compare", str(path), str(other), "--json"])
    assert result.exception is None and result.exit_code == 0, result.output
    assert [run["best_epoch"] for run in json.loads(result.stdout)["runs"]] == [
        {"epoch": 1, "monitor": "val_accuracy", "value": 0.9},
        {"epoch": 2, "monitor": "val_loss", "value": 0.45}]
    result = runner.invoke(app, ["runs", "compare", str(path), str(other)])
    assert result.exception is None and result.exit_code == 0, result.output
    assert "│ best epoch     │ 1 (val_accuracy 0.9000) │ 2 (val_loss 0.4500) │" in result.stdout


def test_runs_sort_the_way_keras_said_the_metric_improves(runner, trained):
    """Not by the name: a PearsonCorrelation the user named fit_error goes up, as fit
    recorded it; a metric Keras cannot tell is sorted highest first, and said so."""
    keras_said = {"loss": "min", "fit_error": "max"}
    for which, value in (("a", 0.3), ("b", 0.8)):
        put(trained, which, which, "20T10:00", {"test": {"fit_error": value, "tp": value}},
            directions=keras_said)
    result = runner.invoke(app, ["runs", "runs", "--sort", "test_fit_error", "--json"])
    assert result.exception is None and result.exit_code == 0, result.output
    assert [run["path"] for run in json.loads(result.stdout)] == ["runs/b", "runs/a"]
    result = runner.invoke(app, ["runs", "runs", "--sort", "test_tp"])
    assert result.exception is None and result.exit_code == 0, result.output
    assert lines(result.stdout)[-1] == ("2 runs under runs, sorted by test_tp, highest first "
                                        "(Keras cannot tell which way test_tp improves).")


def test_runs_piped_keeps_every_path_and_note_whole(runner, many, monkeypatch):
    """Piped (rich assumes 80 columns): the table takes its own width; nothing is folded."""
    monkeypatch.setattr(cli.out, "width", 80)
    result = runner.invoke(app, ["runs", "runs"])
    assert result.exit_code == 0, result.output
    assert result.exception is None
    rows = result.stdout.splitlines()
    for path in ("runs/tiny/a", "runs/old/deep/damaged", "runs/killed"):
        assert any(f" {path} " in f"{row} " for row in rows), (path, result.stdout)
    assert any(row.rstrip().endswith(
        "ended unmarked (killed?); to continue: nettrain fit --resume runs/killed")
        for row in rows), result.stdout


def test_runs_on_a_narrow_terminal_puts_paths_and_notes_below(runner, many, monkeypatch):
    """A terminal of 80 columns: the table without paths and notes fits; each run's path and
    note follow, whole, each on its own line, numbered as the table's rows."""
    from rich.console import Console

    monkeypatch.setattr(cli, "out", Console(force_terminal=True, width=80, color_system=None))
    with cli.out.capture() as captured:
        result = runner.invoke(app, ["runs", "runs"])
    assert result.exit_code == 0, result.output
    text = captured.get()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert lines(text)[1].split() == ["#", "name", "started", "status", "epochs", "accuracy",
                                      "loss"]
    below = text.splitlines()[9:]
    assert below[:4] == ["1  runs/old/deep/damaged", "   run.json is not valid JSON (line 1, column 24)",
                         "2  runs/killed",
                         "   ended unmarked (killed?); to continue: nettrain fit --resume runs/killed"]
    assert below[-3:] == ["5  runs/tiny/b", "6  runs/tiny/a", "6 runs under runs, newest first."]


def test_compare_keeps_each_layer_s_keys_together_and_whole(runner, trained, tmp_path,
                                                           monkeypatch):
    """A run with a Dropout between its Dense layers: layer 1's Dense keys, then its Dropout
    key, then layer 2's: never interleaved; and no dotted key folded, even piped at 40
    columns."""
    (tmp_path / "c").mkdir()
    dropout = fit_once(tmp_path / "c", tiny_config(save={"formats": ["keras"]}, model={"layers": [
        {"Dense": {"units": 8, "activation": "relu"}}, {"Dropout": {"rate": 0.1}},
        {"Dense": {"units": 3, "activation": "softmax"}}]}))
    monkeypatch.setattr(cli.out, "width", 40)
    result = runner.invoke(app, ["runs", "compare", str(trained["a"]), str(dropout)])
    assert result.exception is None and result.exit_code == 0, result.output
    table = result.stdout.split("Metrics")[0]
    keys = [line.split("│")[1].strip() for line in table.splitlines()
            if line.startswith("│")]
    assert keys == ["model.layers.1.Dense.units", "model.layers.1.Dense.activation",
                    "model.layers.1.Dropout.rate", "model.layers.2.Dense.units",
                    "model.layers.2.Dense.activation"], table


def test_a_run_with_only_a_train_split_shows_its_train_metrics(runner, trained):
    """Issue 17: the table's columns were of test (or validation) metrics, so a run whose
    data has only a train split showed '-'. A table of such runs shows train columns; a table
    mixing them with held-out runs says each row's split."""
    put(trained, "a", "a", "20T10:00", {"train": {"accuracy": 0.8, "loss": 0.4}})
    alone = runner.invoke(app, ["runs", "runs"])
    assert alone.exit_code == 0, alone.output
    assert lines(alone.stdout)[:2] == [
        "                                                train   train",
        " name   started           status     epochs  accuracy    loss  path"]
    assert lines(alone.stdout)[3] == \
        " tiny   2026-11-20 10:00  completed     2/2    0.8000  0.4000  runs/a"
    put(trained, "b", "b", "21T10:00", scores(0.95, 0.5))
    mixed = runner.invoke(app, ["runs", "runs"])
    assert mixed.exit_code == 0, mixed.output
    assert lines(mixed.stdout) == [
        " name   started           status     epochs  split  accuracy    loss  path",
        "─",
        " tiny   2026-11-21 10:00  completed     3/3  test     0.9500  0.5000  runs/b",
        " tiny   2026-11-20 10:00  completed     2/2  train    0.8000  0.4000  runs/a",
        "2 runs under runs, newest first."]


def test_the_files_of_an_mlflow_store_under_the_runs_folder_are_not_runs(runner, trained,
                                                                       tmp_path):
    """The default store keeps its artifacts in runs/mlartifacts/, a copy of each tracked
    run's config.yaml and run.json (before: each listed a second time, damaged)."""
    root = tmp_path / "listed"
    shutil.copytree(trained["a"], root / "tiny" / "run")
    for store in ("mlartifacts/1/0f3a/artifacts", "team/mlruns/2/9b1c/artifacts"):
        shutil.copytree(trained["a"], root / store, ignore=shutil.ignore_patterns("model*"))
    result = runner.invoke(app, ["runs", str(root), "--json"])
    assert result.exit_code == 0, result.output
    assert [row["path"] for row in json.loads(result.stdout)] == [str(root / "tiny" / "run")]
