"""evaluate (and predict) report numbers only about the data and the model they name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nettrain.cli import app

from conftest import fit_once, tiny_config, write_config


def fit(runner, *args):
    result = runner.invoke(app, ["fit", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip())


def refused(result, code: int, *texts: str) -> None:
    """A clean refusal: no stored exception but SystemExit, the exit code, the message."""
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert result.exit_code == code, result.output
    for text in texts:
        assert text in result.stderr, result.stderr


def write_csv(path: Path, seed: int = 0, n: int = 40) -> Path:
    """y = a > b: two numeric columns and a 0/1 target."""
    rng = np.random.default_rng(seed)
    a, b = rng.random(n), rng.random(n)
    rows = "".join(f"{x:.4f},{z:.4f},{int(x > z)}\n" for x, z in zip(a, b))
    path.write_text("a,b,y\n" + rows)
    return path


def csv_config(path: Path, **save) -> dict:
    return tiny_config(data={"csv": str(path), "target": "y", "test_split": 0.25},
                       model={"layers": [{"Dense": {"units": 4, "activation": "relu"}},
                                         {"Dense": {"units": 2, "activation": "softmax"}}]},
                       **({"save": save} if save else {}))


@pytest.fixture
def csv_run(runner, tmp_path):
    data = write_csv(tmp_path / "d.csv")
    return fit(runner, write_config(tmp_path / "c.yaml", csv_config(data)),
               "--run-dir", tmp_path / "run"), data


# ------------------------------------------------------------------------ changed data


def test_evaluate_refuses_a_changed_data_file(runner, csv_run):
    run, data = csv_run
    write_csv(data, seed=1)  # other rows, same columns
    result = runner.invoke(app, ["evaluate", str(run)])
    refused(result, 1, str(data), "has changed since training (its sha256 differs",
            "--allow-changed-data")
    assert not (run / "evaluation.json").exists()


def test_evaluate_with_allow_changed_data_warns_and_records_it(runner, csv_run):
    run, data = csv_run
    write_csv(data, seed=1)
    result = runner.invoke(app, ["evaluate", str(run), "--allow-changed-data"])
    assert result.exit_code == 0, result.output
    assert "Warning" in result.stderr and str(data) in result.stderr
    entry = json.loads((run / "evaluation.json").read_text())["test"]
    assert entry["data_changed"] == [f"{data}: sha256 differs"]


def test_evaluate_refuses_a_missing_data_file(runner, csv_run):
    run, data = csv_run
    data.unlink()
    result = runner.invoke(app, ["evaluate", str(run)])
    refused(result, 1, str(data), "is missing")


def test_evaluate_refuses_a_file_added_to_an_image_folder(runner, tmp_path):
    from test_data import _images

    _images(tmp_path / "photos", per_class=4)
    config = {"name": "cnn", "seed": 0,
              "data": {"images": str(tmp_path / "photos"), "image_size": [8, 8], "scale": 255,
                       "validation_split": 0.25},
              "model": {"layers": ["Flatten", {"Dense": {"units": 2, "activation": "softmax"}}]},
              "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
              "fit": {"epochs": 1, "verbose": 0}}
    run = fit(runner, write_config(tmp_path / "c.yaml", config))
    shutil.copy(tmp_path / "photos" / "cat" / "0.png", tmp_path / "photos" / "cat" / "new.png")
    result = runner.invoke(app, ["evaluate", str(run)])
    refused(result, 1, str(tmp_path / "photos" / "cat" / "new.png"),
            "was added since training")


def test_resume_refuses_a_changed_data_file_unless_allowed(runner, csv_run):
    run, data = csv_run
    write_csv(data, seed=1)
    result = runner.invoke(app, ["fit", "--resume", str(run), "fit.epochs=3"])
    refused(result, 1, str(data), "sha256 differs", "--allow-changed-data")
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    result = runner.invoke(app, ["fit", "--resume", str(run), "fit.epochs=3",
                                 "--allow-changed-data"])
    assert result.exit_code == 0, result.output
    assert "Warning" in result.stderr and str(data) in result.stderr
    result = runner.invoke(app, ["fit", str(run / "config.yaml"), "--allow-changed-data"])
    refused(result, 2, "--allow-changed-data: only for --resume RUN")


def test_evaluate_of_a_built_in_dataset_checks_no_file(runner, tmp_path):
    run = fit(runner, write_config(tmp_path / "c.yaml", tiny_config()))
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr


# ------------------------------------------------------------------------ SavedModel


def _planted_saved_model(folder: Path, marker: Path) -> None:
    """A SavedModel whose serving graph writes a file: what loading one can do."""
    import tensorflow as tf

    class Planted(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
        def serve(self, x):
            tf.io.write_file(str(marker), "written by a SavedModel")
            return tf.concat([x[:, :1] * 0 + 0.5, x[:, :1] * 0 + 0.5], axis=1)

    module = Planted()
    tf.saved_model.save(module, str(folder), signatures={"serve": module.serve})


def test_a_saved_model_is_never_loaded_without_format_savedmodel(runner, tmp_path):
    data = write_csv(tmp_path / "d.csv")
    run = fit(runner, write_config(tmp_path / "c.yaml", csv_config(data, formats=["savedmodel"])),
              "--run-dir", tmp_path / "run")
    (tmp_path / "rows.csv").write_text("a,b\n0.1,0.9\n0.8,0.2\n")
    # the real export works when the user asks for it
    result = runner.invoke(app, ["evaluate", str(run), "--format", "savedmodel"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["predict", str(run), "rows.csv", "--format", "savedmodel"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "class,prob_0,prob_1"
    # without the flag it is refused, with the reason and the way on
    for command in (["evaluate", str(run)], ["predict", str(run), "rows.csv"],
                    ["predict", str(run / "saved_model"), "rows.csv"]):
        result = runner.invoke(app, command)
        refused(result, 2, "a SavedModel is a program", "--format savedmodel")
    # a planted graph: nothing runs without the flag
    marker = tmp_path / "marker.txt"
    shutil.rmtree(run / "saved_model")
    _planted_saved_model(run / "saved_model", marker)
    for command in (["evaluate", str(run)], ["predict", str(run), "rows.csv"],
                    ["predict", str(run / "saved_model"), "rows.csv"]):
        refused(runner.invoke(app, command), 2, "--format savedmodel")
        assert not marker.exists()


# ------------------------------------------------------------------------ damaged files


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A small iris run saved as keras and json, copied per test."""
    folder = tmp_path_factory.mktemp("damaged")
    return fit_once(folder, tiny_config(save={"formats": ["keras", "json"]}),
                    ["evaluate", str(folder / "run")])


DAMAGES = {
    "truncated": lambda data: data[: len(data) // 2],
    "garbage": lambda data: bytes(range(256)) * 4,
    "empty": lambda data: b"",
    "a list": lambda data: b"[1, 2]\n",
}
FILES = {"run.json": None, "dataset.json": None, "evaluation.json": None,
         "config.yaml": None, "model.keras": None, "model.json": "json",
         "model.weights.h5": "json"}


@pytest.mark.parametrize("damage", list(DAMAGES))
@pytest.mark.parametrize("name", list(FILES))
def test_a_damaged_run_file_is_named(runner, saved_run, tmp_path, name, damage):
    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    (run / name).write_bytes(DAMAGES[damage]((run / name).read_bytes()))
    fmt = ["--format", FILES[name]] if FILES[name] else []
    result = runner.invoke(app, ["evaluate", str(run), *fmt])
    if damage == "truncated" and name == "config.yaml" and result.exit_code == 0:
        return  # half a config that still validates and names the same run is not damage
    # a run's config.yaml is a config file: exit 2, as for any config error
    refused(result, 2 if name == "config.yaml" else 1, f"{run / name}", "is damaged")
    for raw in ("JSONDecodeError", "File not found", "BadZipFile", "Traceback"):
        assert raw not in result.output
    if name != "evaluation.json":
        assert json.loads((saved_run / "evaluation.json").read_text()) == \
            json.loads((run / "evaluation.json").read_text())  # nothing written is lost


def test_predict_names_a_damaged_model_file(runner, saved_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    (run / "model.keras").write_bytes(b"not a zip file")
    (tmp_path / "rows.csv").write_text(
        "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n5,3,1,0.2\n")
    result = runner.invoke(app, ["predict", str(run), "rows.csv"])
    refused(result, 1, f"{run / 'model.keras'}", "is damaged", "--format json")


# ---------------------------------------------------------------- which model, which data


def test_evaluate_says_which_model_a_run_that_did_not_complete_holds(runner, saved_run,
                                                                     tmp_path):
    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    record = json.loads((run / "run.json").read_text())
    record.update(status="interrupted", epochs_completed=1)
    (run / "run.json").write_text(json.dumps(record))
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 0, result.output
    assert "interrupted" in result.stderr
    assert "the model of epoch 1 of 2" in result.stderr
    entry = json.loads((run / "evaluation.json").read_text())["test"]
    assert entry["status"] == "interrupted" and entry["epochs"] == 1


def test_evaluate_refuses_data_that_no_longer_matches_dataset_json(runner, saved_run,
                                                                  tmp_path):
    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    info = json.loads((run / "dataset.json").read_text())
    info["classes"] = info["classes"][::-1]  # the model's class order is not the data's
    (run / "dataset.json").write_text(json.dumps(info))
    result = runner.invoke(app, ["evaluate", str(run)])
    refused(result, 1, f"{run / 'dataset.json'}", "classes")


def test_evaluations_of_an_earlier_model_are_not_kept_beside_new_ones(runner, tmp_path):
    config = tiny_config(save={"formats": ["keras", "json"]})
    run = fit(runner, write_config(tmp_path / "c.yaml", config), "--run-dir", tmp_path / "run")
    assert runner.invoke(app, ["evaluate", str(run), "--split", "validation"]).exit_code == 0
    (run / "history.png").unlink()
    result = runner.invoke(app, ["fit", "--resume", str(run), "fit.epochs=3",
                                 "save.formats=[json]"])
    assert result.exit_code == 0, result.output
    assert (run / "history.png").is_file()  # drawn again, with the resumed epochs
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 0, result.output
    record = json.loads((run / "evaluation.json").read_text())
    assert set(record) == {"test", "earlier"}  # the validation numbers: the earlier model
    assert [e["split"] for e in record["earlier"]] == ["validation"]
    assert record["earlier"][0]["epochs"] == 2
    assert record["test"]["format"] == "json" and record["test"]["epochs"] == 3


def _evaluate_read_only(run: Path) -> tuple[subprocess.CompletedProcess, str]:
    """``nettrain evaluate RUN`` with RUN read-only, and the reason the OS gives for it: by
    chmod; as root (whom chmod does not stop) by a read-only bind mount of RUN onto itself,
    in a mount namespace of the command's own (it goes with the command)."""
    command = [sys.executable, "-m", "nettrain", "evaluate", str(run)]
    if os.geteuid() != 0:
        run.chmod(0o555)
        try:
            return subprocess.run(command, capture_output=True, text=True), "Permission denied"
        finally:
            run.chmod(0o755)
    script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
    return subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", str(run), *command],
                          capture_output=True, text=True), "Read-only file system"


def test_evaluate_of_a_read_only_run_shows_the_metrics_then_says_they_are_not_recorded(
        runner, saved_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    before = sorted(p.name for p in run.iterdir())
    result, why = _evaluate_read_only(run)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and ".tmp" not in result.stderr, result.stderr
    assert result.stdout.startswith(f"{run} (keras model, test split, "), result.stdout
    assert "accuracy" in result.stdout and "macro avg" in result.stdout
    picture = run / "confusion_matrix-test.png"
    assert f"Warning: the classification picture was not drawn ({picture}: {why})." \
        in result.stderr
    assert result.stderr.endswith(
        f"Error: the numbers above were not recorded: {run / 'evaluation.json'} could not be "
        f"written ({why}). Make the run directory writable, or evaluate a writable copy of "
        "it, to keep them.\n"), result.stderr
    assert sorted(p.name for p in run.iterdir()) == before


@pytest.mark.parametrize("key, value", [("data.test_split", 0.5), ("seed", 1)])
def test_evaluate_refuses_a_run_config_whose_data_part_was_edited(runner, saved_run, tmp_path,
                                                                 key, value):
    """Another split or seed puts other rows (some of them trained on) in the test part."""
    import yaml

    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    *parents, last = key.split(".")
    target = config
    for part in parents:
        target = target[part]
    target[last] = value
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = runner.invoke(app, ["evaluate", str(run)])
    refused(result, 1, f"{run / 'config.yaml'}", f"{key} is {value}", "run.json")


def _source(tmp_path: Path, name: str) -> dict:
    """A small config per kind of data source (its data made in tmp_path)."""
    from conftest import write_npz
    from test_data import _images

    if name == "npz":
        write_npz(tmp_path / "d.npz", n=40)
        return tiny_config(data={"npz": str(tmp_path / "d.npz"), "validation_split": 0.25})
    if name == "images":
        _images(tmp_path / "photos", per_class=4)
        return {**tiny_config(data={"images": str(tmp_path / "photos"), "image_size": [8, 8],
                                    "scale": 255, "validation_split": 0.25}),
                "model": {"layers": ["Flatten", {"Dense": {"units": 2,
                                                           "activation": "softmax"}}]}}
    if name == "categorical":
        from conftest import REPO

        shutil.copy(REPO / "configs" / "data" / "renewals.csv", tmp_path / "r.csv")
        return tiny_config(
            data={"csv": str(tmp_path / "r.csv"), "target": "renewed", "normalize": True,
                  "categorical": ["plan", "region", "seats"], "test_split": 0.2},
            model={"layers": [{"Dense": {"units": 1, "activation": "sigmoid"}}]},
            compile={"optimizer": "adam", "loss": "binary_crossentropy"})
    if name == "synthetic":
        return tiny_config(data={"synthetic": {"n_samples": 40, "n_features": 4, "n_classes": 3},
                                 "test_split": 0.25})
    return tiny_config(data={"dataset": "iris", "one_hot": True, "test_split": 0.2},
                       compile={"optimizer": "adam", "loss": "categorical_crossentropy"})


@pytest.mark.parametrize("source", ["npz", "images", "categorical", "synthetic", "one_hot"])
def test_evaluate_right_after_fit_checks_pass_for_every_source(runner, tmp_path, source):
    """The checks compare a run with itself: nothing changed, nothing is refused."""
    config = _source(tmp_path, source)
    config["fit"]["epochs"] = 1
    run = fit(runner, write_config(tmp_path / "c.yaml", config))
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_a_run_without_its_record_is_not_evaluated_on_unchecked_data(runner, csv_run):
    run, data = csv_run
    (run / "run.json").unlink()
    result = runner.invoke(app, ["evaluate", str(run)])
    refused(result, 1, f"{run / 'run.json'}", "cannot be checked", "--allow-changed-data")
    result = runner.invoke(app, ["evaluate", str(run), "--allow-changed-data"])
    assert result.exit_code == 0, result.output
    assert "Warning" in result.stderr and "run.json" in result.stderr


def test_a_run_without_dataset_json_is_refused(runner, csv_run):
    run, _ = csv_run
    (run / "dataset.json").unlink()
    (run.parent / "rows.csv").write_text("a,b\n0.1,0.9\n")
    for command in (["evaluate", str(run)], ["predict", str(run), str(run.parent / "rows.csv")]):
        refused(runner.invoke(app, command), 1, f"{run / 'dataset.json'} is missing")


def test_a_model_file_that_would_load_a_saved_model_is_refused(runner, saved_run, tmp_path):
    """A TFSMLayer inside model.keras would run a SavedModel's graph: Keras's safe mode
    refuses it, and nettrain names the file (a guard: this passed before the fixes too)."""
    import keras

    marker = tmp_path / "marker.txt"
    _planted_saved_model(tmp_path / "planted", marker)
    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    model = keras.Sequential([keras.Input((2,)), keras.layers.TFSMLayer(
        str(tmp_path / "planted"), call_endpoint="serve")])
    model.save(run / "model.keras")
    marker.unlink(missing_ok=True)
    result = runner.invoke(app, ["evaluate", str(run)])
    refused(result, 1, f"{run / 'model.keras'}", "TFSMLayer")
    assert not marker.exists()


def test_evaluate_of_a_failed_resume_says_the_model_is_from_before_it(runner, saved_run,
                                                                     tmp_path):
    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    record = json.loads((run / "run.json").read_text())
    record.update(status="failed", epochs_completed=3, error="Training stopped: NaN",
                  resumed=[{"from_epoch": 2}])
    (run / "run.json").write_text(json.dumps(record))
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 0, result.output
    assert "status is failed" in result.stderr and "from before it was resumed" in result.stderr
    assert f"nettrain fit --resume {run}" in result.stderr
    assert json.loads((run / "evaluation.json").read_text())["test"]["status"] == "failed"


def test_a_damaged_saved_model_is_named(runner, tmp_path):
    data = write_csv(tmp_path / "d.csv")
    run = fit(runner, write_config(tmp_path / "c.yaml",
                                   csv_config(data, formats=["savedmodel", "keras"])),
              "--run-dir", tmp_path / "run")
    (run / "saved_model" / "saved_model.pb").write_bytes(b"\x00garbage")
    result = runner.invoke(app, ["evaluate", str(run), "--format", "savedmodel"])
    refused(result, 1, f"{run / 'saved_model'} is damaged", "--format keras")


# ------------------------------------------------------------------------ --data FILE


IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)",
                "petal width (cm)"]


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    """A small iris classifier (a built-in dataset: its columns and class names are known)."""
    folder = tmp_path_factory.mktemp("iris")
    return fit_once(folder, tiny_config(), ["evaluate", str(folder / "run")])


def iris_rows(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    bunch = load_iris()
    rows = np.arange(0, 150, 150 // n)[:n]
    return bunch.data[rows].astype("float32"), bunch.target[rows]


def test_evaluate_data_csv_reads_columns_by_name_and_class_names(runner, iris_run, tmp_path):
    x, y = iris_rows()
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    header = ["id", "target", *IRIS_COLUMNS[::-1]]  # another order, and an extra column
    lines = [",".join(f'"{h}"' for h in header)]
    lines += [",".join([str(i), name, *map(str, row[::-1])])
              for i, (name, row) in enumerate(zip(names, x))]
    (tmp_path / "flowers.csv").write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["evaluate", str(iris_run), "--data", "flowers.csv"])
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    assert out[0] == f"{iris_run} (keras model, --data flowers.csv, 12 samples):"
    assert out[-1] == f"Confusion matrix: {iris_run / 'confusion_matrix-data-flowers.png'}"
    assert "│ setosa       │" in result.stdout
    record = json.loads((iris_run / "evaluation.json").read_text())
    entry = record[f"data:{tmp_path / 'flowers.csv'}"]
    from nettrain.data.fingerprint import sha256

    assert entry["data"] == {"file": str(tmp_path / "flowers.csv"),
                             "sha256": sha256(tmp_path / "flowers.csv")}
    assert entry["report"]["samples"] == 12 and entry["plots"] == \
        ["confusion_matrix-data-flowers.png"]
    assert "test" in record  # the run's own evaluation is kept, and its picture
    assert (iris_run / "confusion_matrix-test.png").is_file()


def test_evaluate_data_npz_with_integer_or_one_hot_labels(runner, iris_run, tmp_path):
    x, y = iris_rows()
    np.savez(tmp_path / "ints.npz", x=x, y=y)
    np.savez(tmp_path / "onehot.npz", x=x, y=np.eye(3)[y])
    reports = []
    for name in ("ints.npz", "onehot.npz"):
        result = runner.invoke(app, ["evaluate", str(iris_run), "--data", name, "--json"])
        assert result.exit_code == 0, result.output
        record = json.loads(result.stdout)
        assert record["data"]["file"] == str(tmp_path / name)
        assert record["files"] == [str(iris_run / f"confusion_matrix-data-{name[:-4]}.png")]
        reports.append(record["report"])
    assert reports[0] == reports[1]
    assert [r["support"] for r in reports[0]["classes"].values()] == \
        np.bincount(y, minlength=3).tolist()


def test_evaluate_data_of_a_binary_csv_model(runner, tmp_path):
    """One sigmoid unit: class 1 from 0.5; the new file may order its columns differently."""
    data = write_csv(tmp_path / "d.csv")
    config = csv_config(data)
    config["model"]["layers"][-1] = {"Dense": {"units": 1, "activation": "sigmoid"}}
    config["compile"] = {"optimizer": "adam", "loss": "binary_crossentropy",
                         "metrics": ["accuracy"]}
    run = fit(runner, write_config(tmp_path / "c.yaml", config), "--run-dir", tmp_path / "run")
    (tmp_path / "new.csv").write_text("y,b,a\n1,0.1,0.9\n0,0.8,0.2\n0,0.7,0.6\n")
    result = runner.invoke(app, ["evaluate", str(run), "--data", "new.csv", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["report"]
    assert [c["support"] for c in report["classes"].values()] == [2, 1]
    assert np.sum(report["confusion_matrix"]) == 3


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    from test_data import _images

    folder = tmp_path_factory.mktemp("images")
    _images(folder / "photos", classes=("cat", "dog", "fox"), per_class=4)
    config = {"name": "cnn", "seed": 0,
              "data": {"images": str(folder / "photos"), "image_size": [8, 8], "scale": 255,
                       "validation_split": 0.25},
              "model": {"layers": ["Flatten", {"Dense": {"units": 3,
                                                         "activation": "softmax"}}]},
              "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
              "fit": {"epochs": 1, "verbose": 0}}
    return fit_once(folder, config)


def test_evaluate_data_image_folder_with_some_of_the_classes(runner, image_run, tmp_path):
    from test_data import _images

    _images(tmp_path / "new", classes=("dog", "fox"), per_class=3)
    result = runner.invoke(app, ["evaluate", str(image_run), "--data", "new", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert [c["support"] for c in record["report"]["classes"].values()] == [0, 3, 3]
    assert record["data"]["files"] == 6 and len(record["data"]["sha256"]) == 64
    assert Path(record["files"][0]).name == "confusion_matrix-data-new.png"


def test_evaluate_data_refuses_an_unknown_class_folder(runner, image_run, tmp_path):
    from test_data import _images

    _images(tmp_path / "new", classes=("bird", "cat"), per_class=2)
    result = runner.invoke(app, ["evaluate", str(image_run), "--data", "new"])
    refused(result, 2, f"--data: {Path('new')} has class folders the run lacks: bird; its "
                       "classes are cat, dog, fox.")


@pytest.mark.parametrize("case", ["no target", "wrong shape", "unknown label", "images",
                                  "missing", "with --split"])
def test_evaluate_data_refuses_data_of_the_wrong_kind(runner, iris_run, tmp_path, case):
    x, y = iris_rows(3)
    header = ",".join(f'"{c}"' for c in IRIS_COLUMNS)
    rows = "".join(",".join(map(str, r)) + "\n" for r in x)
    args = ["--data", "new.csv"]
    if case == "no target":
        (tmp_path / "new.csv").write_text(header + ',"label"\n' + rows.replace("\n", ",0\n"))
        expected = ["--data: new.csv: the columns differ from the run's training data "
                    "(missing 'target'; 'label' is not read).", "Expected the columns (in any order): sepal "
                    "length (cm), sepal width (cm), petal length (cm), petal width (cm), "
                    "target. It has: sepal length (cm), sepal width (cm), petal length (cm), "
                    "petal width (cm), label."]
    elif case == "wrong shape":
        np.savez(tmp_path / "new.npz", x=np.zeros((3, 5)), y=y)
        args = ["--data", "new.npz"]
        expected = ["--data: the inputs x of new.npz have shape [5] per sample; the model "
                    "takes [4]."]
    elif case == "unknown label":
        labelled = [f"{line},{label}" for line, label in
                    zip(rows.splitlines(), ["daisy", "setosa", "virginica"])]
        (tmp_path / "new.csv").write_text(header + ',"target"\n' + "\n".join(labelled))
        expected = ["--data: new.csv: labels that are not classes of the run: daisy; its "
                    "classes are setosa, versicolor, virginica. Give class names, or their "
                    "indices 0 to 2 (not both in one file)."]
    elif case == "images":
        (tmp_path / "folder" / "setosa").mkdir(parents=True)
        args = ["--data", "folder"]
        expected = ["--data: this model takes a CSV with a header row, or an .npz; received "
                    "folder."]
    elif case == "missing":
        expected = ["--data: new.csv does not exist; expected a CSV with the target column, "
                    "an .npz with arrays x and y, or a folder of class folders."]
    else:
        (tmp_path / "new.csv").write_text("a\n")
        args += ["--split", "test"]
        expected = ["--data new.csv and --split test: --data evaluates the given file, "
                    "--split a part of the run's own data; give one."]
    before = (iris_run / "evaluation.json").read_bytes() if \
        (iris_run / "evaluation.json").exists() else None
    refused(runner.invoke(app, ["evaluate", str(iris_run), *args]), 2, *expected)
    after = (iris_run / "evaluation.json").read_bytes() if \
        (iris_run / "evaluation.json").exists() else None
    assert before == after  # nothing recorded


def test_evaluate_data_names_a_file_that_cannot_be_read(runner, iris_run, tmp_path):
    (tmp_path / "new.npz").write_bytes(b"not a zip archive")
    result = runner.invoke(app, ["evaluate", str(iris_run), "--data", "new.npz"])
    refused(result, 1, f"--data: cannot read {Path('new.npz')} as .npz")


def test_evaluate_data_advice_is_about_the_file_not_the_training_config(runner, iris_run,
                                                                       tmp_path):
    """A run's config cannot change for an evaluation: 'list it in data.categorical' and 'set
    data.missing' were advice for training data."""
    header = ",".join(f'"{c}"' for c in [*IRIS_COLUMNS, "target"])
    (tmp_path / "text.csv").write_text(header + "\n5,3,1,x,setosa\n")
    (tmp_path / "hole.csv").write_text(header + "\n5,3,,0.2,setosa\n")
    refused(runner.invoke(app, ["evaluate", str(iris_run), "--data", "text.csv"]), 2,
            "text.csv: column 'petal width (cm)' must be numeric; row 2 holds 'x'. The model "
            "was trained on numbers in this column: give a number.")
    refused(runner.invoke(app, ["evaluate", str(iris_run), "--data", "hole.csv"]), 2,
            "hole.csv: missing value at row 2, column 'petal length (cm)' (1 missing in this "
            "column, 1 in all the columns read from the file). "
            "Fill it, or drop the row (the run's data.missing is error).")


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("column", ["target", "weight"])
def test_a_text_cell_in_a_target_or_weight_column_gets_advice_for_that_column(
        runner, tmp_path, column, stream):
    """'List it in data.categorical' is for input columns; a target or a weight cannot be."""
    (tmp_path / "d.csv").write_text("a,y1,y2,w\n" + "".join(
        f"{i},{i},{'x' if column == 'target' and i == 3 else i},"
        f"{'heavy' if column == 'weight' and i == 3 else 1}\n" for i in range(8)))
    config = tiny_config(data={"csv": "d.csv", "target": ["y1", "y2"], "sample_weight": "w",
                               "stream": stream},
                         model={"layers": [{"Dense": {"units": 2}}]},
                         compile={"optimizer": "adam", "loss": "mse"})
    result = runner.invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    name, value = ("y2", "'x'") if column == "target" else ("w", "'heavy'")
    advice = ("A regression target (data.target) must hold numbers; for class names use one "
              "target column and a classification loss." if column == "target" else
              "Sample weights (data.sample_weight) must be numbers.")
    refused(result, 2, f"d.csv: column '{name}' must be numeric; row 5 holds {value}. {advice}")


def test_evaluate_data_csv_read_in_chunks_gives_the_numbers_of_one_read(runner, iris_run,
                                                                        tmp_path, monkeypatch):
    """evaluate --data streams a CSV chunk by chunk (issue 17: a 2M-row file was read whole):
    chunks of 5 rows give the metrics and the report of the file read at once."""
    from nettrain.data import loading, stream

    x, y = iris_rows(12)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    header = ",".join(f'"{c}"' for c in [*IRIS_COLUMNS, "target"])
    (tmp_path / "rows.csv").write_text(header + "\n" + "".join(
        ",".join([*map(str, row), name]) + "\n" for row, name in zip(x, names)))
    whole = runner.invoke(app, ["evaluate", str(iris_run), "--data", "rows.csv", "--json"])
    assert whole.exit_code == 0, whole.output
    seen = []
    read = loading.read_csv if hasattr(loading, "read_csv") else None
    monkeypatch.setattr(stream, "CHUNK_ROWS", 5)
    monkeypatch.setattr(loading, "read_csv", lambda *a, **k: (
        seen.append(len(c)) or c for c in read(*a, **k)), raising=False)
    chunked = runner.invoke(app, ["evaluate", str(iris_run), "--data", "rows.csv", "--json"])
    assert chunked.exit_code == 0, chunked.output
    assert seen[:3] == [5, 5, 2]  # every pass reads 5 rows at a time
    one, parts = json.loads(whole.stdout), json.loads(chunked.stdout)
    assert parts["metrics"] == pytest.approx(one["metrics"])
    assert parts["report"] == one["report"] and parts["report"]["samples"] == 12


def test_evaluate_data_names_a_bad_row_of_a_later_chunk_before_evaluating(runner, iris_run,
                                                                          tmp_path, monkeypatch):
    """Read in chunks, a bad row past the first chunk is refused as in a file read whole (its
    line, the exit code) and nothing is recorded."""
    from nettrain.data import stream

    monkeypatch.setattr(stream, "CHUNK_ROWS", 5)
    x, y = iris_rows(12)
    names = list(np.array(["setosa", "versicolor", "virginica"])[y])
    header = ",".join(f'"{c}"' for c in [*IRIS_COLUMNS, "target"])
    before = (iris_run / "evaluation.json").read_bytes()
    for row, label, cell, code, message in (
            (8, "daisy", None, 2, "--data: new.csv: labels that are not classes of the run: "
                                  "daisy; its classes are setosa, versicolor, virginica."),
            (10, None, "x", 2, "new.csv: column 'petal width (cm)' must be numeric; row 12 "
                               "holds 'x'.")):
        cells = [[*map(str, r), n] for r, n in zip(x, names)]
        cells[row][4 if label else 3] = label or cell
        (tmp_path / "new.csv").write_text(header + "\n" + "".join(
            ",".join(c) + "\n" for c in cells))
        refused(runner.invoke(app, ["evaluate", str(iris_run), "--data", "new.csv"]), code,
                message)
    assert (iris_run / "evaluation.json").read_bytes() == before


@pytest.fixture(scope="module")
def sum_run(tmp_path_factory):
    """A small regression model of y = a + b (a CSV of numbers)."""
    folder = tmp_path_factory.mktemp("sum")
    rng = np.random.default_rng(1)
    (folder / "d.csv").write_text("a,b,y\n" + "".join(
        f"{a:.3f},{b:.3f},{a + b:.3f}\n" for a, b in rng.random((40, 2))))
    return fit_once(folder, tiny_config(
        data={"csv": str(folder / "d.csv"), "target": "y", "validation_split": 0.2},
        model={"layers": [{"Dense": {"units": 4, "activation": "relu"}}, {"Dense": {"units": 1}}]},
        compile={"optimizer": "adam", "loss": "mse", "metrics": ["mae"]}))


@pytest.mark.parametrize("kind", ["classifier", "regression"])
def test_evaluate_data_counts_every_row_and_its_metrics_are_keras_evaluate(
        runner, iris_run, sum_run, tmp_path, monkeypatch, kind):
    """evaluate --data streams (issue 26: memory grew with the rows): read 5 rows at a time,
    the pictures drawn from at most 4 of them, its metrics are Keras's model.evaluate of the
    rows held at once, and its report counts every row."""
    import keras

    from nettrain.data import stream
    from nettrain.engine import reports

    if kind == "classifier":
        run, columns, (x, y) = iris_run, [*IRIS_COLUMNS, "target"], iris_rows(12)
        labels = list(np.array(["setosa", "versicolor", "virginica"])[y])
    else:
        run, columns = sum_run, ["a", "b", "y"]
        x = np.random.default_rng(2).random((12, 2)).round(3).astype("float32")
        y = labels = list(x.sum(axis=1).round(3))
    header = ",".join(f'"{c}"' for c in columns)
    (tmp_path / "rows.csv").write_text(header + "\n" + "".join(
        ",".join([*map(str, row), str(label)]) + "\n" for row, label in zip(x, labels)))
    monkeypatch.setattr(stream, "CHUNK_ROWS", 5)
    monkeypatch.setattr(reports, "SAMPLE_ROWS", 4)
    result = runner.invoke(app, ["evaluate", str(run), "--data", "rows.csv", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    model = keras.saving.load_model(run / "model.keras")
    y = np.asarray(y, dtype="int64" if kind == "classifier" else "float32")
    assert record["metrics"] == pytest.approx(
        model.evaluate(x, y, verbose=0, return_dict=True), rel=1e-5)
    out = model.predict(x, verbose=0)
    report = record["report"]
    assert report["samples"] == 12
    if kind == "classifier":
        assert report == reports.classification(y, out.argmax(axis=1),
                                                ["setosa", "versicolor", "virginica"])
        assert report["accuracy"] == pytest.approx(record["metrics"]["accuracy"])
    else:
        whole = reports.regression(y, out, ["y"])
        assert [report[k] for k in ("mae", "rmse", "r2")] == \
            pytest.approx([whole[k] for k in ("mae", "rmse", "r2")], rel=1e-9)
        assert report["mae"] == pytest.approx(record["metrics"]["mae"], rel=1e-5)
        assert (run / "regression-data-rows.png").is_file()
