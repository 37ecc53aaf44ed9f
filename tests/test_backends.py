"""Backends: every example config and template trains on each installed Keras backend
(TensorFlow, JAX, PyTorch), a model saved under one loads and predicts the same under the
others, and a backend that cannot run a config is refused before anything runs.

The backend is fixed per process, so each backend trains in one process of its own
(this file run as a script: ``python tests/test_backends.py BACKEND FOLDER train|load``),
which trains every config in a loop to pay Keras's import once. On TensorFlow, the tests'
own backend, tests/test_examples.py trains every example already: its process here trains
only the two models the other backends load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from nettrain.backends import select
from nettrain.cli import app

from conftest import CONFIGS, REPO, tiny_config, write_config

INSTALLED = [name for name in select.NAMES if select.installed(name)]
TEMPLATES = ("mlp-classifier", "regression", "cnn-images", "csv-tabular")
SAMPLE = {"xor": np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32"),
          "digits-mlp": np.random.default_rng(0).random((5, 64), dtype="float32") * 16}


def _train_all(backend: str, folder: Path, train: bool = True) -> None:
    """In the process of ``backend``: train every example config and template for one epoch
    (``--backend``), then load the models the other backends saved (in ``folder``) and
    predict; write what happened to ``folder/BACKEND.json`` (without ``train``: only load,
    into ``folder/BACKEND-loads.json``)."""
    from typer.testing import CliRunner

    runner, results = CliRunner(), {}
    os.chdir(REPO)  # the examples' paths are relative to the repository root
    every = [*sorted(CONFIGS.glob("*.yaml")), *TEMPLATES]
    if backend == "tensorflow":  # tests/test_examples.py trains the others on TensorFlow
        every = [CONFIGS / f"{name.replace('-', '_')}.yaml" for name in SAMPLE]
    for path in every if train else []:
        if isinstance(path, str):  # a template, as nettrain init writes it
            os.chdir(folder)
            written = folder / backend / f"{path}.yaml"
            written.parent.mkdir(exist_ok=True)
            if not written.exists():
                runner.invoke(app, ["init", path, str(written)])
            path = written
        name = path.stem if path.parent == CONFIGS else f"template-{path.stem}"
        extra = ["fit.epochs=1", "fit.verbose=0"]
        if name not in (*(n.replace("-", "_") for n in SAMPLE), "iris_csv"):
            extra.append("save.formats=[keras]")  # the formats: the samples, iris_csv's
        if "images" in yaml.safe_load(path.read_text())["data"]:
            extra += [f"data.images={folder / 'photos'}", "data.image_size=[16, 16]"]
        run = folder / backend / name
        started = time.perf_counter()
        result = runner.invoke(app, ["fit", str(path), *extra, "--backend", backend,
                                     "--run-dir", str(run)])
        if result.exit_code == 2 and backend == "torch" and "savedmodel" in result.output:
            result = runner.invoke(app, ["fit", str(path), *extra, "save.formats=[keras,json]",
                                         "--backend", backend, "--run-dir", str(run)])
        record = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() \
            else {}
        results[name] = {"exit": result.exit_code, "output": result.output[-600:],
                         "backend": record.get("backend"),
                         "seconds": round(time.perf_counter() - started, 2)}
        os.chdir(REPO)
    # the models saved under this backend, predicted here, for the others to compare with
    import keras

    exported = {}
    for name in ("xor",) if train and backend != "tensorflow" else ():  # on its own backend
        result = runner.invoke(app, ["export", str(folder / backend / name), "--format",
                                     "keras", "-o", str(folder / backend / f"{name}.keras")])
        exported[name] = {"exit": result.exit_code, "output": result.output[-1500:]}
    if train:
        (folder / f"{backend}.json").write_text(json.dumps({"trained": results,
                                                            "exported": exported}))
    for name, x in SAMPLE.items() if train else ():
        run = folder / backend / name.replace("-", "_")
        assert (run / "model.keras").is_file(), results[run.name]["output"]
        model = keras.saving.load_model(run / "model.keras")
        np.save(run / "sample.npy", keras.ops.convert_to_numpy(model(x)))
    loaded = {}
    for other in INSTALLED if not train else ():  # loads: once every backend has trained
        for name, x in SAMPLE.items():
            run = folder / other / name.replace("-", "_")
            if other == backend or not (run / "sample.npy").is_file():
                continue
            kept = np.load(run / "sample.npy")
            for fmt in ("keras", "json"):
                result = runner.invoke(app, ["predict", str(run), str(folder / f"{name}.npy"),
                                             "--format", fmt, "--backend", backend])
                got = None
                if result.exit_code == 0:
                    rows = [line.split(",") for line in result.stdout.strip().splitlines()[1:]]
                    got = np.array([[float(v) for v in row[-kept.shape[1]:]] for row in rows])
                loaded[f"{other}/{name}/{fmt}"] = {
                    "exit": result.exit_code, "output": result.output[-600:],
                    "same": got is not None and np.allclose(got, kept, atol=1e-5)}
    (folder / f"{backend}{'' if train else '-loads'}.json").write_text(json.dumps({
        "trained": results, "loaded": loaded, "exported": exported,
        "tensorflow_imported": "tensorflow" in sys.modules}))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Each installed backend's process: every config trained, the others' models loaded.
    Two rounds, each with the backends' processes side by side: the first trains, the second
    loads every other backend's models."""
    from test_data import _images

    folder = tmp_path_factory.mktemp("backends")
    _images(folder / "photos", size=16)
    for name, x in SAMPLE.items():
        np.save(folder / f"{name}.npy", x)
    env = {**os.environ, "NETTRAIN_RUNS": str(folder / "runs"),
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"),
                                          os.environ.get("PYTHONPATH", "")])}
    done = {}
    for step in ("train", "load"):  # the backends side by side: most of it is one core's
        children = [(backend, subprocess.Popen(
            [sys.executable, __file__, backend, str(folder), step],
            env={**env, "KERAS_BACKEND": backend}, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)) for backend in INSTALLED]
        for backend, child in children:
            _, stderr = child.communicate(timeout=900)
            assert child.returncode == 0, (backend, step, stderr[-3000:])
    for backend in INSTALLED:
        done[backend] = json.loads((folder / f"{backend}.json").read_text())
        done[backend]["loaded"] = json.loads(
            (folder / f"{backend}-loads.json").read_text())["loaded"]
    return done


@pytest.mark.parametrize("backend", INSTALLED)
def test_every_example_and_template_trains_on_each_backend(trained, backend):
    results = trained[backend]["trained"]
    assert len(results) == (len(SAMPLE) if backend == "tensorflow" else
                            len(list(CONFIGS.glob("*.yaml"))) + len(TEMPLATES))
    for name, result in results.items():
        if backend != "tensorflow" and name in ("renewals_categorical",
                                                "template-csv-tabular"):
            # string categories need TensorFlow's lookups: refused before anything runs
            assert result["exit"] == 2, (name, result["output"])
            assert "data.categorical" in result["output"]
            assert "Use backend: auto (which picks tensorflow for this config)" in \
                result["output"]
            continue
        assert result["exit"] == 0, (name, result["output"])
        assert result["backend"] == backend, name
        assert f"Backend       {backend} (backend: {backend})" in result["output"], name


def test_a_model_saved_under_one_backend_predicts_the_same_under_the_others(trained):
    loaded = {f"{backend} loads {what}": result for backend in INSTALLED
              for what, result in trained[backend]["loaded"].items()}
    assert len(loaded) == len(INSTALLED) * (len(INSTALLED) - 1) * len(SAMPLE) * 2
    for what, result in loaded.items():
        assert result["exit"] == 0, (what, result["output"])
        assert result["same"], what


@pytest.mark.parametrize("backend", [b for b in INSTALLED if b != "tensorflow"])
def test_a_run_exports_on_the_backend_it_trained_on(trained, backend):
    """export asks the backend policy: a run trained on JAX or PyTorch is loaded there, and
    the .keras file is checked on the others (on torch the model's output held its graph,
    which np.asarray refused)."""
    result = trained[backend]["exported"]["xor"]
    assert result["exit"] == 0, result["output"]
    assert f"Loaded the run's model with Keras on {backend} (the backend the run trained " \
        "on)" in result["output"]
    checked = [line.split(":")[0] for line in result["output"].splitlines()
               if line.startswith("Checked in Keras on ")]
    assert checked == [f"Checked in Keras on {b}" for b in
                       [backend, *(n for n in INSTALLED if n != backend)]]


def test_a_jax_fit_of_an_mlp_never_imports_tensorflow(tmp_path):
    if "jax" not in INSTALLED:
        pytest.fail("jax is not installed: pip install -e '.[jax]'")
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom nettrain.cli import app\n"
            "r = CliRunner().invoke(app, ['fit', sys.argv[1], 'fit.epochs=1', "
            "'save.formats=[keras,json]'])\n"
            "print(r.exit_code, 'tensorflow' in sys.modules, r.output[-2000:])")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("KERAS_BACKEND")  # auto: JAX is the fastest for an MLP
    done = subprocess.run([sys.executable, "-c", code, str(CONFIGS / "xor.yaml")], env=env,
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.stdout.startswith("0 False"), done.stdout + done.stderr[-2000:]
    assert "Backend       jax (auto: the fastest installed backend" in done.stdout


def test_a_backend_that_cannot_run_the_config_is_refused_at_validate(runner, tmp_path):
    path = write_config(tmp_path / "c.yaml", {**tiny_config(), "backend": "jax",
                                              "deterministic": True})
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and result.exception is None or \
        isinstance(result.exception, SystemExit)
    assert "backend (line" in result.output and "deterministic: true is TensorFlow's op " \
        "determinism" in result.output and "Use backend: auto (which picks tensorflow for this " \
        "config) or tensorflow, or change deterministic" in " ".join(result.output.split())
    result = runner.invoke(app, ["validate", str(CONFIGS / "renewals_categorical.yaml"),
                                 "--backend", "torch"])
    assert result.exit_code == 2
    assert "backend (set on the command line): expected a backend that can run this config " \
        "(categorical columns are encoded by StringLookup/IntegerLookup layers" in \
        " ".join(result.output.split())
    result = runner.invoke(app, ["fit", str(path), "--backend", "mxnet"])
    assert result.exit_code == 2
    assert "backend" in result.output and "'jax'" in result.output and \
        "mxnet" in result.output


def test_auto_picks_the_fastest_backend_that_can_run_the_config():
    from nettrain.config.load import load_config

    renewals = load_config(CONFIGS / "renewals_categorical.yaml")
    assert select.cannot_run(renewals, "jax")[0][0] == "data.categorical"
    assert select.cannot_run(renewals, "tensorflow") == []
    assert select.fastest(renewals).name == "tensorflow"
    assert select.fastest(renewals).why.startswith("auto: jax cannot run this config "
                                                   "(data.categorical: categorical columns")
    assert select.fastest(load_config(CONFIGS / "digits_mlp.yaml")).name == "jax"
    assert select.fastest(load_config(CONFIGS / "images_cnn.yaml")) == select.Choice(
        "tensorflow", "auto: the fastest installed backend for convolutions")


def test_one_policy_answers_every_command(monkeypatch):
    """select.choose on validated configs (nothing trains): the run's recorded backend, a
    format that is TensorFlow's graph, several processes (JAX's runtime), each refused with the
    key when asked otherwise."""
    from nettrain.config.load import load_config
    from nettrain.errors import ConfigError

    xor = load_config(CONFIGS / "xor.yaml")
    # evaluate, predict, serve, export, track: the backend the run trained on
    assert select.choose(xor, loading=True, recorded="tensorflow") == select.Choice(
        "tensorflow", "the backend the run trained on")
    # a SavedModel (evaluate/predict/serve --format savedmodel, export to savedmodel, onnx,
    # tflite) is TensorFlow's graph: TensorFlow, and --backend jax is refused naming --format
    assert select.choose(xor, loading=True, recorded="jax", graph="onnx") == select.Choice(
        "tensorflow", "--format onnx: TensorFlow's graph")
    with pytest.raises(ConfigError) as refused:
        select.choose(xor, "jax", loading=True, graph="savedmodel")
    assert "--backend: expected a backend that can run this config (--format savedmodel is " \
        "TensorFlow's graph of the model" in str(refused.value)
    # fit --processes: auto is JAX; backend: torch and KERAS_BACKEND=torch are refused
    monkeypatch.delenv("KERAS_BACKEND")
    assert select.choose(xor, processes=True) == select.Choice(
        "jax", "auto: several processes train on JAX's distributed runtime")
    torch = load_config(CONFIGS / "xor.yaml", ["backend=torch"])
    with pytest.raises(ConfigError) as refused:
        select.choose(torch, processes=True)
    message = " ".join(str(refused.value).split())
    assert "backend (set on the command line): expected a backend that can run this config " \
        "(training over several processes runs on JAX's distributed runtime " \
        "(jax.distributed), at --processes); received 'torch'. Use backend: auto (which " \
        "picks jax for this config) or jax, or leave out --processes" in message
    with pytest.raises(ConfigError, match="--processes: expected a run that trained on jax "
                       r"\(several processes train on JAX's distributed runtime\); received a "
                       r"run that trained on tensorflow \(run.json\). Resume it without"):
        select.choose(xor, recorded="tensorflow", processes=True)  # fit --resume RUN
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    with pytest.raises(ConfigError) as refused:
        select.choose(xor, processes=True)
    assert "KERAS_BACKEND: expected a backend that can run this config (training over " \
        "several processes runs on JAX's distributed runtime (jax.distributed), at " \
        "--processes); received 'torch'. Unset KERAS_BACKEND or set KERAS_BACKEND=jax" in \
        " ".join(str(refused.value).split())


def test_no_installed_backend_that_can_run_the_config_is_a_refusal(runner, monkeypatch):
    """String categories run on TensorFlow only; with TensorFlow not installed and
    --backend jax, the refusal names the key and what to install (this was an
    UnboundLocalError: auto's pick was unset when no installed backend could run it)."""
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as if not installed (find_spec)
    result = runner.invoke(app, ["validate", str(CONFIGS / "renewals_categorical.yaml"),
                                 "--backend", "jax"])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    message = " ".join(result.output.split())
    assert "backend (set on the command line): expected a backend that can run this config " \
        "(categorical columns are encoded by StringLookup/IntegerLookup layers on string " \
        "tensors, which only TensorFlow runs, at data.categorical); received 'jax'. " \
        "tensorflow is not installed; jax: data.categorical: " in message
    assert "Install 'nettrain' (pip install 'nettrain'), which can" in message
    from nettrain.config.load import load_config
    from nettrain.errors import UsageError

    with pytest.raises(UsageError, match="No installed Keras backend can run this config: "
                       "tensorflow is not installed; jax: data.categorical"):
        select.fastest(load_config(CONFIGS / "renewals_categorical.yaml"))


def test_keras_still_has_the_private_switch_that_keeps_tensorflow_out():
    """settle() flips keras.src.utils.module_utils.tensorflow._available (no public switch
    exists). When a Keras upgrade moves it this fails, so it is noticed; nettrain itself then
    goes on without it (the next test)."""
    from keras.src.utils import module_utils

    assert select.tensorflow_switch() is module_utils.tensorflow


def test_a_keras_without_the_switch_still_trains_and_predicts_on_jax(tmp_path):
    """A Keras whose lazy TensorFlow module names its flag otherwise (as after an upgrade):
    settle() leaves it alone and a JAX fit and predict work (before, settle() looked the old
    name up, which LazyModule answers by importing TensorFlow and raising AttributeError)."""
    code = """\
import sys
from keras.src.utils import module_utils
from nettrain.backends import select
from nettrain.config.load import load_config
lazy = module_utils.tensorflow  # the flag renamed, as a Keras upgrade might
class Renamed(type(lazy)):
    available = property(lambda self: self.__dict__.setdefault("flag", True))
lazy.__class__, lazy.flag = Renamed, lazy.__dict__.pop("_available")
config = load_config(sys.argv[1])
select.use(select.choose(config), config)
select.settle()  # what nettrain runs right after importing Keras
from typer.testing import CliRunner
from nettrain.cli import app
r = CliRunner().invoke(app, ['fit', sys.argv[1], 'fit.epochs=1', '--run-dir', 'run'])
print('fit:', r.exit_code, repr(r.exception), r.output[-1500:])
r = CliRunner().invoke(app, ['predict', 'run', sys.argv[2]])
print('predict:', r.exit_code, repr(r.exception), r.stdout)
"""
    np.save(tmp_path / "x.npy", SAMPLE["xor"])
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", code, str(CONFIGS / "xor.yaml"),
                           str(tmp_path / "x.npy")], env=env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.stdout.startswith("fit: 0 None"), done.stdout + done.stderr[-2000:]
    assert "Backend       jax (auto: " in done.stdout
    predicted = done.stdout.split("predict: ")[-1]
    assert predicted.split()[:3] == ["0", "None", "class,prob_0,prob_1"] and \
        len(predicted.split()) == 3 + 4, done.stdout  # a header and the 4 rows
    assert json.loads((tmp_path / "run" / "run.json").read_text())["backend"] == "jax"


def test_a_fit_where_jax_is_not_installed_trains_on_tensorflow(tmp_path):
    """The README's first command installs nettrain without JAX: fit runs on TensorFlow and
    never imports jax (a fit failed with "No module named 'jax'" once)."""
    code = ("import sys\nsys.modules['jax'] = None  # as if not installed: find_spec, import\n"
            "from typer.testing import CliRunner\nfrom nettrain.cli import app\n"
            "r = CliRunner().invoke(app, ['fit', sys.argv[1], 'fit.epochs=1'])\n"
            "print(r.exit_code, repr(r.exception), r.output[-2000:])")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("KERAS_BACKEND")
    done = subprocess.run([sys.executable, "-c", code, str(CONFIGS / "xor.yaml")], env=env,
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.stdout.startswith("0 None"), done.stdout + done.stderr[-2000:]
    assert "Backend       tensorflow (auto: the fastest installed backend)" in done.stdout

if __name__ == "__main__":
    _train_all(sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "train")
