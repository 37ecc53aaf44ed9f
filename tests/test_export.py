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


def test_model_keras_files_of_a_run_predict_under_torch(numeric):
    """model.keras, the checkpoints and model.json's compile config say steps_per_execution 1:
    the PyTorch backend refuses any other number (this failed before: "steps_per_execution
    must be 1 with the PyTorch backend. Received: steps_per_execution=4"). JAX took them
    before too; the keras export test below predicts a nettrain .keras file under JAX."""
    saved = json.loads((numeric / "model.json").read_text())["compile_config"]
    assert saved["steps_per_execution"] == 1
    files = [str(numeric / "model.keras"), str(numeric / "checkpoints" / "last.keras")]
    done = subprocess.run([sys.executable, "-c", PREDICT_UNDER, *files],
                          env={**os.environ, "KERAS_BACKEND": "torch"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("torch ") == 2 and "(3, 3)" in done.stdout


def _difference(stderr, runtime, kind="absolute"):
    """The difference (absolute or relative) a 'Checked in RUNTIME: ...' line reports."""
    line = next(line for line in " ".join(stderr.split()).replace(" Checked in ", "\nChecked in ")
                .splitlines() if line.startswith(f"Checked in {runtime}:"))
    absolute, relative = line.split("largest difference ")[1].split(" relative")[0].split(
        " absolute, ")
    return float(absolute if kind == "absolute" else relative)


ALLOWED = "(allowed: |a - b| <= 1e-05 + 0.0001 x |b| (--atol, --rtol))"


def _inputs_in_runtime(fmt, path):
    """The input names the written file takes, asked of its own runtime."""
    if fmt == "onnx":
        import onnxruntime

        return {i.name for i in onnxruntime.InferenceSession(str(path)).get_inputs()}
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=str(path)).get_signature_runner("serve")
        return set(runner.get_input_details())
    if fmt == "savedmodel":
        import tensorflow as tf

        return set(tf.saved_model.load(str(path)).signatures["serve"]
                   .structured_input_signature[1])
    import keras

    return {t.name for t in keras.saving.load_model(path).inputs}


@pytest.mark.parametrize("fmt,file,runtime", [
    ("savedmodel", "saved_model", "tf.saved_model.load"),
    ("onnx", "model.onnx", "onnxruntime"),
    ("tflite", "model.tflite", "the LiteRT interpreter (ai-edge-litert)"),
    ("keras", "model.keras", "Keras on tensorflow")])
def test_each_format_round_trips_in_its_runtime_with_text_inputs(runner, strings, fmt, file,
                                                                  runtime):
    result = runner.invoke(app, ["export", str(strings), "--format", fmt])
    assert result.exit_code == 0, result.output
    written = strings / "export" / file
    assert result.stdout.strip() == str(written)
    assert 0 <= _difference(result.stderr, runtime) <= 1e-4
    assert ALLOWED in " ".join(result.stderr.split())
    assert "15 rows of the test split compared with the run's model" in result.stderr
    assert _inputs_in_runtime(fmt, written) == {"plan", "months", "tickets"}
    if fmt == "keras":  # said, not hidden: Keras runs text inputs on TensorFlow only
        assert "Note: this model takes text (plan), which Keras runs on the TensorFlow " \
               "backend only: the .keras file is not checked under jax or torch." \
               in " ".join(result.stderr.split())
    assert [p.name for p in written.parent.iterdir() if p.name.startswith(".")] == []


def test_a_keras_export_is_checked_under_every_installed_backend(runner, numeric, tmp_path):
    out = tmp_path / "iris.keras"
    result = runner.invoke(app, ["export", str(numeric), "--format", "keras", "-o", str(out)])
    assert result.exit_code == 0, result.output
    for backend in ("tensorflow", "jax", "torch"):
        assert _difference(result.stderr, f"Keras on {backend}") <= 1e-4
    assert out.is_file() and result.stdout.strip() == str(out)


def test_export_runs_on_the_backend_the_run_trained_on_and_says_so(strings, tmp_path):
    """Under KERAS_BACKEND=jax, a run trained on TensorFlow (its text column runs on
    TensorFlow only) is exported on TensorFlow, as evaluate and predict would, and the
    output says so (before, export ran on the environment's JAX, failed to load the model,
    and would have labelled its check "Keras on tensorflow")."""
    out = tmp_path / "table.keras"
    done = subprocess.run([sys.executable, "-m", "nettrain", "export", str(strings),
                           "--format", "keras", "-o", str(out)],
                          env={**os.environ, "KERAS_BACKEND": "jax"}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Loaded the run's model with Keras on tensorflow (the backend the run trained " \
           "on)" in done.stderr
    assert 0 <= _difference(done.stderr, "Keras on tensorflow") <= 1e-4
    assert out.is_file() and done.stdout.strip() == str(out)


def test_a_file_beyond_the_tolerance_is_not_written(runner, numeric, tmp_path):
    """LiteRT computes float32 in another order than TensorFlow: a difference of about 1e-7,
    over an impossible tolerance (--tolerance: the same option as --atol). The file already
    there is left as it was."""
    out = tmp_path / "iris.tflite"
    out.write_text("the earlier export")
    result = runner.invoke(app, ["export", str(numeric), "--format", "tflite", "-o", str(out),
                                 "--tolerance", "1e-12", "--rtol", "0"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    message = " ".join(result.stderr.split())
    assert "Error: The tflite file predicts differently from the run's model in the LiteRT " \
           "interpreter (ai-edge-litert): largest absolute difference " in message
    assert "on 30 rows of the test split; allowed: |a - b| <= 1e-12 + 0 x |b| (--atol, --rtol)." \
           f" Nothing was written at {out}. A larger --rtol or --atol accepts it" in message
    assert out.read_text() == "the earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iris.tflite"]


def _shifted(model, shift=0.1):
    """``model``'s weights moved by ``shift``: the predictions of another model."""
    for weight in model.trainable_weights:
        weight.assign(weight + shift)
    return model


@pytest.mark.parametrize("fmt,file,runtime", [
    ("savedmodel", "saved_model", "tf.saved_model.load"),
    ("onnx", "model.onnx", "onnxruntime")])
def test_a_file_that_predicts_otherwise_is_not_written(runner, numeric, tmp_path, monkeypatch,
                                                       fmt, file, runtime):
    """The check is run in the file's own runtime: a file written from other weights (what a
    faulty converter would write) is refused under the default tolerance. A check skipped, or
    one that always passed, wrote it (the SavedModel's difference is 0 and ONNX's about 1e-7
    on the run's own weights, so no tolerance alone tells those apart)."""
    from nettrain.export import exporter, formats

    def write_another_model(fmt, model, target, work):
        weights = model.get_weights()
        formats.write(fmt, _shifted(model), target, work)
        model.set_weights(weights)

    monkeypatch.setattr(exporter, "write", write_another_model)
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / file
    result = runner.invoke(app, ["export", str(numeric), "--format", fmt, "-o", str(out)])
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert f"Error: The {fmt} file predicts differently from the run's model in {runtime}: " \
           "largest absolute difference " in message
    assert "; allowed: |a - b| <= 1e-05 + 0.0001 x |b| (--atol, --rtol). Nothing was written " \
           f"at {out}." in message
    assert list(folder.iterdir()) == []


def test_one_backend_that_disagrees_fails_the_keras_check(runner, numeric, tmp_path,
                                                          monkeypatch):
    """Each backend's difference is held to the tolerance: torch, given a .keras file of
    other weights, fails the check although TensorFlow and JAX agree (the best backend does
    not outvote it). The file is predicted here for each backend (this process's Keras):
    the check's rule is the promise; the other backends' processes are
    test_a_keras_export_is_checked_under_every_installed_backend's."""
    import keras

    from nettrain.export import exporter, formats

    def predict_under(backend, path, x):
        if backend == "torch":
            other = tmp_path / "other.keras"  # beside, not in, the folder written to
            _shifted(keras.saving.load_model(path, safe_mode=True)).save(other)
            path = other
        return formats.predictor(formats.FORMATS["keras"], path)(x)

    monkeypatch.setattr(exporter, "predict_under", predict_under)
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "iris.keras"
    result = runner.invoke(app, ["export", str(numeric), "--format", "keras", "-o", str(out)])
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert "Error: The keras file predicts differently from the run's model in Keras on " \
           "torch: largest absolute difference " in message
    assert list(folder.iterdir()) == []


def test_refusals_say_why_before_converting(runner, numeric, tmp_path, monkeypatch):
    folder = tmp_path / "integers"
    folder.mkdir()
    run = fit_once(folder, {**_table_config(_csv(folder / "t.csv", 40, integer=True),
                                            ["plan", "seats"]), "save": {"formats": ["keras"]}})
    for fmt in ("onnx", "tflite"):
        result = runner.invoke(app, ["export", str(run), "--format", fmt])
        assert result.exit_code == 2, result.output
        message = " ".join(result.stderr.split())
        assert f"Error: --format {fmt} cannot carry this run's model: the whole-number " \
               "categorical column seats is looked up in an int64 -> int64" in message
        assert "Export --format savedmodel or keras instead." in message
    assert not (run / "export").exists()

    for option, what in (("--tolerance", "--atol: expected a number 0 or more (the absolute"),
                         ("--rtol", "--rtol: expected a number 0 or more (the relative")):
        result = runner.invoke(app, ["export", str(numeric), "--format", "onnx", option, "-1"])
        assert result.exit_code == 2
        assert f"{what} difference allowed); received -1.0." in " ".join(result.stderr.split())

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    result = runner.invoke(app, ["export", str(numeric), "--format", "onnx"])
    assert result.exit_code == 2
    assert "--format onnx needs onnxruntime, which is not installed. Install the export " \
           "extra: pip install 'nettrain[export]'" in " ".join(result.stderr.split())


# --- where the file goes ---------------------------------------------------------------------

def test_export_into_a_device_writes_into_it_and_dash_is_stdout(runner, numeric, tmp_path,
                                                               monkeypatch):
    """As root, export -o /dev/null renamed a regular file over the device. A device node
    of our own stands in for it; '-' writes the file to stdout (and no path after it)."""
    from test_writing import device_node, is_null_device

    null = device_node(tmp_path / "null")
    result = runner.invoke(app, ["export", str(numeric), "--format", "tflite", "-o", str(null)])
    assert result.exit_code == 0, result.output
    assert is_null_device(null)
    assert f"model; wrote {null}" in " ".join(result.stderr.split())
    assert result.stdout == f"{null}\n"
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["export", str(numeric), "--format", "tflite", "-o", "-"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes[4:8] == b"TFL3"  # the file itself, a FlatBuffer of LiteRT
    assert "model; wrote standard output" in " ".join(result.stderr.split())
    result = runner.invoke(app, ["export", str(numeric), "--format", "savedmodel", "-o",
                                 str(null)])
    assert result.exit_code == 2, result.output
    assert f"--output: {null} is a file or device; a SavedModel is a folder." in \
        " ".join(result.stderr.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_export_into_a_read_only_folder_is_refused_before_converting(runner, numeric,
                                                                     tmp_path, monkeypatch):
    """It failed after loading and converting, with a raw OSError (exit 1)."""
    from nettrain.export import exporter
    from test_writing import read_only_folder

    called = []
    monkeypatch.setattr(exporter, "_model_and_rows", lambda *a: called.append(1))
    with read_only_folder(tmp_path / "ro") as ro:
        result = runner.invoke(app, ["export", str(numeric), "--format", "onnx", "-o",
                                     str(ro / "m.onnx")])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Error: --output: cannot write in the folder {ro} (")
    assert "Give a path in a folder you can write to." in result.stderr
    assert not called


def test_a_killed_exports_folder_is_removed_by_the_next_export(runner, numeric, tmp_path,
                                                              monkeypatch):
    """kill -9 during export left a hidden 12 MB folder for ever. The export's folder says
    whose it is (.model.tflite.partial-HOST-PID-...): one of a process that ended is removed by
    the next export to that path, one of a running process kept."""
    import re

    from nettrain.export import exporter, formats
    from nettrain.run.writing import _host
    from test_writing import _ended_pid

    host, dead, alive = _host(), _ended_pid(), os.getppid()
    killed = tmp_path / f".model.tflite.partial-{host}-{dead}-k1ll3d00"
    (killed / "scratch" / "saved_model").mkdir(parents=True)
    (killed / "scratch" / "saved_model" / "saved_model.pb").write_bytes(b"\0" * 100_000)
    running = tmp_path / f".model.tflite.partial-{host}-{alive}-running"
    running.mkdir()
    used = []

    def write(fmt, model, target, work):
        used.append(work.parent.name)
        formats.write(fmt, model, target, work)

    monkeypatch.setattr(exporter, "write", write)
    result = runner.invoke(app, ["export", str(numeric), "--format", "tflite", "-o",
                                 str(tmp_path / "model.tflite")])
    assert result.exit_code == 0, result.output
    assert re.fullmatch(rf"\.model\.tflite\.partial-{re.escape(host)}-{os.getpid()}-\w+",
                        used[0]), used
    assert sorted(p.name for p in tmp_path.iterdir()) == [running.name, "model.tflite"]


# --- any column name, any scale of output ----------------------------------------------------

# Column names no format takes as they are: Python keywords (a SavedModel's signature refuses
# 'class'), a leading digit, a capital (tf2onnx lowercases ONNX's input names), an accent and a
# space. A regression on prices near 1e5: float32 rounds them to about 0.01.
AWKWARD = ["class", "def", "2nd", "Origin", "naïve col"]


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    """A regression run of a table whose columns are named AWKWARD (class and Origin text
    categories), predicting prices near 1e5 (the last layer's bias starts there)."""
    folder = tmp_path_factory.mktemp("awkward")
    rng = np.random.default_rng(0)
    lines = [",".join(f'"{c}"' if " " in c else c for c in AWKWARD) + ",price"]
    for i in range(48):
        a, b = rng.normal(size=2)
        lines.append(f"{['first', 'second', 'third'][i % 3]},{a:.4f},{i % 7},"
                     f"{['usa', 'Japan'][i % 2]},{b:.4f},{100000 + 20000 * a:.1f}")
    (folder / "t.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = tiny_config(
        name="awkward",
        data={"csv": str(folder / "t.csv"), "target": "price",
              "categorical": ["class", "Origin"], "normalize": True,
              "validation_split": 0.0, "test_split": 0.25},
        model={"layers": [
            {"Dense": {"units": 16, "activation": "relu",
                       "kernel_initializer": {"RandomNormal": {"stddev": 30}}}},
            {"Dense": {"units": 1, "kernel_initializer": {"RandomNormal": {"stddev": 300}},
                       "bias_initializer": {"Constant": {"value": 100000}}}}]},
        compile={"optimizer": "adam", "loss": "mse"},
        fit={"epochs": 1, "batch_size": 16, "verbose": 0},
        save={"formats": ["keras", "savedmodel"]})
    return fit_once(folder, config)


def test_an_earlier_runs_input_names_a_format_cannot_take_are_refused_before_converting():
    """A run recorded before model_inputs keeps its model's names ('def', '2nd', 'Origin' by
    the rule of its time): a SavedModel refuses the keyword (before: "Error: ValueError:
    'def' is not a valid parameter name", exit 1, after loading and converting), ONNX also
    the names tf2onnx changes; said from dataset.json alone. A run of today passes."""
    from nettrain.data.columns import input_names, model_inputs
    from nettrain.export.formats import FORMATS, cannot_carry

    columns = {"def": "numeric", "2nd": "numeric", "Origin": "string", "plan": "string"}
    old = {"columns": columns}
    assert "it takes input named 'def' (named by an earlier nettrain), which savedmodel " \
           "cannot take as it is." in cannot_carry(FORMATS["savedmodel"], old)
    assert "inputs named 'def', '2nd', 'Origin'" in cannot_carry(FORMATS["onnx"], old)
    assert cannot_carry(FORMATS["keras"], old) is None
    new = {"columns": columns, "model_inputs": model_inputs((4,), columns,
                                                             input_names(list(columns)))}
    assert [cannot_carry(fmt, new) for fmt in FORMATS.values()] == [None] * 4


def test_the_check_compares_as_numpy_allclose():
    """|a - b| <= atol + rtol * |b| on every output, with the largest absolute and relative
    differences: one float32 unit in the last place at 1e5 (0.0078) passes the defaults,
    which an absolute tolerance alone refused; a NaN, or a relative error of 1e-3, fails."""
    from nettrain.export.exporter import compare
    from nettrain.model.saving import FLOAT32_TOLERANCE

    rtol, atol = FLOAT32_TOLERANCE
    b = np.array([[100000.0], [0.5], [0.0]])
    a = b + np.array([[0.0078125], [1e-7], [0.0]])
    check = compare("onnxruntime", a, b, rtol, atol)
    assert check.passed and check.absolute == pytest.approx(0.0078125)
    assert check.relative == pytest.approx(2e-7)  # 1e-7 on 0.5 (7.8e-8 on 1e5)
    assert not compare("x", a, b, 0.0, atol).passed
    assert not compare("x", b * 1.001, b, rtol, atol).passed
    assert not compare("x", np.where(b == 0.5, np.nan, b), b, rtol, atol).passed
    assert np.isinf(compare("x", b + 1e-6, b, rtol, atol).relative)  # 1e-6 where b is 0


@pytest.mark.parametrize("fmt,file,runtime", [
    ("savedmodel", "saved_model", "tf.saved_model.load"),
    ("ONNX", "model.onnx", "onnxruntime"),
    ("tflite", "model.tflite", "the LiteRT interpreter (ai-edge-litert)")])
def test_any_column_names_and_large_outputs_export_to_every_format(runner, awkward, fmt, file,
                                                                   runtime):
    """Before: fit trained every epoch and failed at the save ("'class' is not a valid
    parameter name"); ONNX wanted the lowercase names its check did not feed ('origin' for
    'Origin'); and a 1-2 units-in-the-last-place difference on prices near 1e5 (0.0078 in
    ONNX, 0.0156 in TFLite: 1.6e-7 relative) was over the absolute tolerance 1e-4. The
    format's name is taken in any case (ONNX)."""
    result = runner.invoke(app, ["export", str(awkward), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert _difference(result.stderr, runtime, "relative") <= 1e-4
    assert ALLOWED in " ".join(result.stderr.split())
    recorded = json.loads((awkward / "dataset.json").read_text())["model_inputs"]
    assert {name: spec["column"] for name, spec in recorded.items()} == {
        "class_": "class", "def_": "def", "c2nd": "2nd", "origin": "Origin",
        "naive_col": "naïve col"}
    assert _inputs_in_runtime(fmt.lower(), awkward / "export" / file) == set(recorded)


def test_a_run_of_any_column_names_predicts_from_its_original_names(runner, awkward,
                                                                     tmp_path):
    """predict reads the CSV by the columns' own names (the file the run trained on), in
    any order, and gives what the model gives on the inputs by their input names."""
    import keras
    import tensorflow as tf

    rows = tmp_path / "rows.csv"
    lines = (awkward.parent / "t.csv").read_text(encoding="utf-8").splitlines()[:4]
    rows.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["predict", str(awkward), str(rows)])
    assert result.exit_code == 0, result.output
    got = np.array([float(line) for line in result.stdout.strip().splitlines()[1:]])
    model = keras.saving.load_model(awkward / "model.keras")
    x = {"class_": [["first"], ["second"], ["third"]], "origin": [["usa"], ["Japan"], ["usa"]]}
    for name, column in (("def_", 1), ("c2nd", 2), ("naive_col", 4)):
        x[name] = [[float(line.split(",")[column])] for line in lines[1:]]
    expected = model.predict({k: tf.constant(v) for k, v in x.items()}, verbose=0)[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
