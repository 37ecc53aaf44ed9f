"""Backends: every example config and template trains on each installed Keras backend
(TensorFlow, JAX, PyTorch), a model saved under one loads and predicts the same under the
others, and a backend that cannot run a config is refused before anything runs.

The backend is fixed per process, so each backend trains in one process of its own
(this file run as a script: ``python tests/test_backends.py BACKEND FOLDER``), which trains
every config in a loop, then loads the models the others trained, to pay Keras's import once. On TensorFlow, the tests'
own backend, tests/test_examples.py trains every example already: its process here trains
only the two models the other backends load.
"""

from __future__ import annotations

import json
import os
import re
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


def _train_all(backend: str, folder: Path) -> None:
    """In the process of ``backend``: train every example config and template for one epoch
    (``--backend``), then, once every backend has trained (``folder/BACKEND.ready``), load the
    models the others saved (in ``folder``) and predict; write what happened to
    ``folder/BACKEND.json``."""
    try:
        trained = _train_each(backend, folder)
    finally:  # also after a failure: the others load what there is, and do not wait for ever
        (folder / f"{backend}.ready").touch()
    for _ in range(18000):  # the slowest backend's training (a few minutes on a busy machine)
        if all((folder / f"{other}.ready").is_file() for other in INSTALLED):
            break
        time.sleep(0.05)
    (folder / f"{backend}.json").write_text(json.dumps({
        **trained, "loaded": _load_the_others(backend, folder)}))


def _train_each(backend: str, folder: Path) -> dict:
    """Train every config on ``backend``; export xor; save the samples' predictions."""
    from typer.testing import CliRunner

    runner, results = CliRunner(), {}
    os.chdir(REPO)  # the examples' paths are relative to the repository root
    if backend == "tensorflow":  # --debug shows TensorFlow's own log lines
        _as_the_shell_runs("validate", str(CONFIGS / "xor.yaml"), "--debug")
    os.write(2, QUIET_FROM.encode() + b"\n")
    # the first command as the shell runs it (CliRunner replaces sys.stderr): it keeps the
    # backends' native log lines off this process's stderr, which the fixture reads
    _as_the_shell_runs("validate", str(CONFIGS / "xor.yaml"), "--backend", backend)
    # xor first: whether its fit imported TensorFlow is noted (a JAX fit of an MLP must not)
    every = [CONFIGS / "xor.yaml", *sorted(set(CONFIGS.glob("*.yaml")) - {CONFIGS / "xor.yaml"}),
             *TEMPLATES]
    if backend == "tensorflow":  # tests/test_examples.py trains the others on TensorFlow
        every = [CONFIGS / f"{name.replace('-', '_')}.yaml" for name in SAMPLE]
    for path in every:
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
        if name == "digits_backbone":  # Keras's per-layer overhead of ~150 layers a batch:
            # batches of 32 took 66 CPU s on torch (the features once, then three evaluations
            # of every row); 256: 22 CPU s on torch, 18 on JAX; each split one batch (2048):
            # 14 and 15
            extra.append("fit.batch_size=2048")
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
                         "seconds": round(time.perf_counter() - started, 2),
                         "tensorflow_imported": "tensorflow" in sys.modules}
        os.chdir(REPO)
    # the models saved under this backend, predicted here, for the others to compare with
    import keras

    exported = {}
    for name in ("xor",) if backend != "tensorflow" else ():  # on its own backend
        result = runner.invoke(app, ["export", str(folder / backend / name), "--format",
                                     "keras", "-o", str(folder / backend / f"{name}.keras")])
        exported[name] = {"exit": result.exit_code, "output": result.output[-1500:]}
    for name, x in SAMPLE.items():
        run = folder / backend / name.replace("-", "_")
        assert (run / "model.keras").is_file(), results[run.name]["output"]
        model = keras.saving.load_model(run / "model.keras")
        np.save(run / "sample.npy", keras.ops.convert_to_numpy(model(x)))
    return {"trained": results, "exported": exported}


def _load_the_others(backend: str, folder: Path) -> dict:
    """Predict with the models the other backends saved, in each format, on ``backend``."""
    from typer.testing import CliRunner

    runner, loaded = CliRunner(), {}
    for other in INSTALLED:
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
    return loaded


QUIET_FROM = "-- nettrain without --debug from here --"
# A line of TensorFlow, absl, XLA, CUDA or gloo (the test's own pattern, not nettrain's).
BACKEND_LINE = re.compile(r"oneDNN|cuda|absl|Gloo|rebuild TensorFlow|gradient is requested|"
                          r"xla|^[IWEF]\d{4} \d\d:", re.IGNORECASE | re.MULTILINE)


def _as_the_shell_runs(*args: str) -> None:
    """Run a nettrain command through its entry point, with this process's real stderr."""
    try:
        app([*args], prog_name="nettrain", standalone_mode=False)
    except SystemExit:
        pass


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Each installed backend's process, side by side: every config trained, then, once all
    have trained, every other backend's models loaded."""
    from test_data import _images

    folder = tmp_path_factory.mktemp("backends")
    _images(folder / "photos", size=16)
    for name, x in SAMPLE.items():
        np.save(folder / f"{name}.npy", x)
    env = {**os.environ, "NETTRAIN_RUNS": str(folder / "runs"),
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"),
                                          os.environ.get("PYTHONPATH", "")])}
    done = {}
    children = [(backend, subprocess.Popen(  # side by side: most of it is one core's
        [sys.executable, __file__, backend, str(folder)],
        env={**env, "KERAS_BACKEND": backend}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)) for backend in INSTALLED]
    for backend, child in children:
        _, stderr = child.communicate(timeout=1200)
        assert child.returncode == 0, (backend, stderr[-3000:])
        done[backend] = json.loads((folder / f"{backend}.json").read_text())
        done[backend]["stderr"] = stderr
    return done


@pytest.mark.parametrize("backend", INSTALLED)
def test_every_example_and_template_trains_on_each_backend(trained, backend):
    results = trained[backend]["trained"]
    assert len(results) == (len(SAMPLE) if backend == "tensorflow" else
                            len(list(CONFIGS.glob("*.yaml"))) + len(TEMPLATES))
    for name, result in results.items():
        if backend != "tensorflow" and name in ("renewals_categorical",
                                                "template-csv-tabular", "reviews_text"):
            # string categories and text need TensorFlow's lookups and string ops: refused
            # before anything runs
            assert result["exit"] == 2, (name, result["output"])
            assert ("data.text" if name == "reviews_text" else "data.categorical") in \
                result["output"]
            assert "Use backend: auto (which picks tensorflow for this config)" in \
                result["output"]
            continue
        assert result["exit"] == 0, (name, result["output"])
        assert result["backend"] == backend, name
        assert f"Backend       {backend} (backend: {backend})" in result["output"], name


@pytest.mark.parametrize("backend", INSTALLED)
def test_no_backend_log_line_reaches_the_terminal_without_debug(trained, backend):
    """Each backend's process trains every example (on JAX, savedmodel imports TensorFlow
    late, through jax2tf) and predicts the others' models after one command as the shell runs
    it: its stderr holds no TensorFlow, absl, XLA or CUDA line (seven reached the terminal
    with JAX installed, also with -q); --debug shows them."""
    stderr = trained[backend]["stderr"]
    before, marker, after = stderr.partition(QUIET_FROM)
    assert marker, stderr[-2000:]
    assert not BACKEND_LINE.search(after), (BACKEND_LINE.findall(after), after[-3000:])
    if backend == "tensorflow":
        assert BACKEND_LINE.search(before), before[-2000:]  # --debug: TensorFlow's own


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


def _script_on_xor(code: str, folder: Path) -> subprocess.CompletedProcess:
    """Python ``code`` in a process of its own (in ``folder``, ``sys.argv[1]`` the xor config),
    with no KERAS_BACKEND: the backend is the policy's."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("KERAS_BACKEND")
    return subprocess.run([sys.executable, "-c", code, str(CONFIGS / "xor.yaml")], env=env,
                          capture_output=True, text=True, cwd=folder, timeout=300)


def test_a_jax_fit_of_an_mlp_never_imports_tensorflow(trained):
    """The JAX process's first fit (xor, saved as keras and json) left TensorFlow unimported."""
    if "jax" not in INSTALLED:
        pytest.fail("jax is not installed: pip install -e '.[jax]'")
    xor = trained["jax"]["trained"]["xor"]
    assert xor["exit"] == 0 and not xor["tensorflow_imported"], xor["output"]
    assert "Backend       jax (backend: jax)" in xor["output"]


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


def _large(*layers: dict, **data: object) -> dict:
    """A dense job above auto's threshold: 300,000 rows x 40 epochs x ~100k parameters."""
    return tiny_config(data={"synthetic": {"n_samples": 300_000, "n_features": 196},
                             **data},
                       model={"layers": [*layers, {"Dense": {"units": 500}},
                                         {"Dense": {"units": 2, "activation": "softmax"}}]},
                       fit={"epochs": 40, "batch_size": 128})


def test_auto_picks_the_backend_whose_whole_process_is_shortest_for_the_job(tmp_path):
    """auto weighs the job's work (rows x epochs x parameters, from the config alone) against
    JAX's longer start-up: the README's main job and every small example run on TensorFlow
    (on JAX the main job took 1.35x as long and scored 0.9749 against 0.9833), a large dense
    job on JAX, a CNN on TensorFlow; the reason says it in terms of the job."""
    from nettrain.backends import work
    from nettrain.config.load import load_config

    digits = load_config(CONFIGS / "digits_mlp.yaml")
    assert work.estimate(digits) == work.Work(rows=1258, epochs=60, parameters=9610)
    assert select.fastest(digits) == select.Choice(
        "tensorflow", "auto: 1,258 rows x 60 epochs x 9,610 parameters = 7.3e8 of work, below "
        "the 2e11 from which JAX's faster steps repay its longer start-up (this run imports "
        "TensorFlow too)")
    for path in CONFIGS.glob("*.yaml"):
        assert select.fastest(load_config(path)).name == "tensorflow", path.name
    large = load_config(write_config(tmp_path / "large.yaml", _large()))
    assert select.fastest(large) == select.Choice(
        "jax", "auto: 300,000 rows x 40 epochs x 99,502 parameters = 1.2e12 of work, from "
        "1e11 JAX's faster steps repay its longer start-up")
    cnn = load_config(CONFIGS / "images_cnn.yaml")
    assert select.fastest(cnn) == select.Choice(
        "tensorflow", "auto: convolutions train fastest on TensorFlow (XLA's are slow on CPU)")
    renewals = load_config(CONFIGS / "renewals_categorical.yaml")
    assert select.cannot_run(renewals, "jax")[0][0] == "data.categorical"
    assert select.cannot_run(renewals, "tensorflow") == []
    assert select.fastest(renewals).name == "tensorflow"


def _mnist_mlp(tmp_path: Path, epochs: int, rows: int = 60_000) -> Path:
    """benchmarks/perf.py's seed MNIST MLP config on an npz of ``rows`` 28x28 images (only
    the headers are read: the arrays are zeros written once, a few MB)."""
    data = tmp_path / f"mnist-{rows}.npz"
    if not data.is_file():
        np.savez(data, x=np.zeros((rows, 28, 28), np.uint8), y=np.zeros(rows, np.int64))
    return write_config(tmp_path / f"mnist-{epochs}.yaml", {
        "name": "mnist-mlp", "data": {"npz": str(data), "flatten": True, "scale": 255,
                                      "one_hot": True},
        "model": {"layers": [{"Dense": {"units": 500, "activation": "sigmoid"}},
                             {"Dense": {"units": 10, "activation": "softmax"}}]},
        "compile": {"optimizer": {"SGD": {"learning_rate": 0.5}},
                    "loss": "categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": epochs, "batch_size": 128}})


def test_auto_on_the_seed_mnist_mlp_weighs_its_work_read_from_the_npz_header(tmp_path):
    """The seed MNIST MLP (an npz of 60,000 images): its rows and width come from the npz's
    header (NumPy 2.4 has no private _read_array_header: validate and fit of this config
    failed with an AttributeError), and auto picks by its work against JAX_WORK."""
    from nettrain.backends import work
    from nettrain.config.load import load_config

    eight = load_config(_mnist_mlp(tmp_path, 8))
    assert work.estimate(eight) == work.Work(rows=60_000, epochs=8, parameters=397_510)
    # measured whole processes (select.JAX_WORK's comment): from 4 epochs (9.5e10) a cold JAX
    # used fewer CPU seconds than TensorFlow, at 2 epochs (4.8e10) a few more
    assert select.fastest(eight) == select.Choice(
        "jax", "auto: 60,000 rows x 8 epochs x 397,510 parameters = 1.9e11 of work, from "
        "1e11 JAX's faster steps repay its longer start-up")
    assert select.fastest(load_config(_mnist_mlp(tmp_path, 5))).name == "jax"
    assert select.fastest(load_config(_mnist_mlp(tmp_path, 2))).name == "tensorflow"


def test_a_layer_that_needs_tensorflow_makes_auto_pick_it_and_jax_refuse_it(runner, tmp_path):
    """Keras's own check ("Layer TextVectorization requires TensorFlow") finds the layers
    that run on TensorFlow tensors only: auto picks TensorFlow for them (under auto such a
    config failed on JAX with "requires TensorFlow. Install it via pip install tensorflow",
    TensorFlow installed), and --backend jax is refused at validate, naming the layer."""
    from nettrain.config.load import load_config

    assert {"TextVectorization", "StringLookup", "IntegerLookup", "Hashing"} <= \
        select.tensorflow_layers()
    assert "Dense" not in select.tensorflow_layers()
    path = write_config(tmp_path / "text.yaml", _large({"TextVectorization": {}}))
    config = load_config(path)
    assert select.cannot_run(config, "jax") == [("model.layers.0", (
        "TextVectorization is a TensorFlow layer (Keras: 'Layer TextVectorization requires "
        "TensorFlow'), which runs on TensorFlow tensors only"))]
    choice = select.fastest(config)
    assert choice.name == "tensorflow", choice
    assert "; jax cannot run this config (model.layers.0: TextVectorization is a " \
        "TensorFlow layer" in choice.why
    result = runner.invoke(app, ["validate", str(path), "--backend", "jax"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "expected a backend that can run this config (TextVectorization is a TensorFlow " \
        "layer" in " ".join(result.output.split())
    assert "change model.layers.0" in " ".join(result.output.split())


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
    done = _script_on_xor(code, tmp_path)
    assert done.stdout.startswith("0 None"), done.stdout + done.stderr[-2000:]
    assert "Backend       tensorflow (auto: 4 rows x 1 epoch x 41 parameters = 1.6e2 of " \
        "work, below the 1e11" in done.stdout


def test_a_tensorflow_fit_beside_jax_never_imports_jax(tmp_path):
    """TensorFlow imports jax.jit wherever JAX is installed (for TFLite), 0.5 CPU seconds and
    100 MB of every TensorFlow run for nothing: on TensorFlow, nettrain imports Keras with JAX
    hidden, and JAX still imports afterwards."""
    if "jax" not in INSTALLED:
        pytest.fail("jax is not installed: pip install -e '.[jax]'")
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom nettrain.cli import app\n"
            "r = CliRunner().invoke(app, ['fit', sys.argv[1], 'fit.epochs=1', "
            "'--backend', 'tensorflow'])\n"
            "print(r.exit_code, 'jax' in sys.modules, repr(r.exception))\n"
            "import jax\nprint(jax.numpy.ones(2).sum())")
    done = _script_on_xor(code, tmp_path)
    assert done.stdout.splitlines() == ["0 False None", "2.0"], \
        done.stdout + done.stderr[-2000:]


def test_keras_imports_without_a_garbage_collection_and_its_objects_are_frozen(tmp_path):
    """Every process that runs Keras imports it through startup.importing(): Python's
    collector walked TensorFlow's 3,300 modules' objects over and over while they loaded, and
    again in every later full collection (1.6 s of the README's main job, 1.0 s of a
    predict); with the collector off during the import and those objects frozen after it,
    0.07 s and 0.02 s."""
    code = ("import gc, sys\nfrom nettrain.backends import startup\nstarted = []\n"
            "gc.callbacks.append(lambda phase, info: phase == 'start' and started.append(1))\n"
            "with startup.importing():\n    import keras\n"
            "print(len(started), gc.isenabled(), gc.get_freeze_count() > 100_000)\n"
            "with startup.importing():  # imported already: nothing frozen again\n"
            "    frozen = gc.get_freeze_count()\nprint(frozen == gc.get_freeze_count())")
    done = _script_on_xor(code, tmp_path)
    assert done.stdout.splitlines() == ["0 True True", "True"], \
        done.stdout + done.stderr[-2000:]


def test_a_child_process_says_why_its_parent_chose_not_the_environment(tmp_path):
    """KERAS_BACKEND that nettrain set for its child processes (a sweep's trials) comes with
    the parent's reason, which the child says; one the user set is named as the user's (a
    run said "auto: KERAS_BACKEND=jax in the environment", which only nettrain had set)."""
    code = ("import os, sys\nfrom nettrain.backends import select\n"
            "from nettrain.config.load import load_config\n"
            "select.use(select.Choice('jax', 'auto: the parent chose'))\n"
            "print(repr(os.environ['KERAS_BACKEND']), repr(os.environ[select.WHY_VARIABLE]))\n"
            "print(select.choose(load_config(sys.argv[1])).why)\n"
            "del os.environ[select.WHY_VARIABLE]  # as a user's shell\n"
            "print(select.choose(load_config(sys.argv[1])).why)\n")
    done = _script_on_xor(code, tmp_path)
    assert done.stdout.splitlines() == [
        "'jax' 'jax\\tauto: the parent chose'", "auto: the parent chose",
        "auto: KERAS_BACKEND=jax in the environment"], done.stdout + done.stderr[-2000:]

if __name__ == "__main__":
    _train_all(sys.argv[1], Path(sys.argv[2]))


def _tensorflow_only(site: Path) -> Path:
    """A real environment of nettrain's core install (the README's first command): a folder
    of links to the distributions nettrain requires without extras, transitively (so no
    JAX, PyTorch or MLflow), for ``python -S`` with PYTHONPATH=site:REPO."""
    from importlib import metadata

    from packaging.requirements import Requirement

    seen: dict[str, metadata.Distribution] = {}
    todo = ["nettrain"]
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        try:
            seen[name] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for requirement in map(Requirement, seen[name].requires or []):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    site.mkdir(parents=True)
    for name, distribution in seen.items():
        if name == "nettrain":  # the worktree's, from PYTHONPATH
            continue
        base = Path(distribution.locate_file(""))
        for top in {file.parts[0] for file in distribution.files or []}:
            if top != ".." and not top.endswith(".pth") and (base / top).exists() and \
                    not (site / top).exists():
                (site / top).symlink_to(base / top)
    return site


@pytest.fixture(scope="module")
def main_job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The README's main job, ``nettrain fit configs/digits_mlp.yaml`` as the shell runs it,
    in both of the README's environments side by side: TensorFlow only (the first command)
    and every extra installed (this one), with a run that auto trains on JAX (a user's
    KERAS_BACKEND=jax); then, TensorFlow only, a resume of that run and ``--processes 2``."""
    folder = tmp_path_factory.mktemp("venvs")
    site = _tensorflow_only(folder / "site")
    every = {**os.environ, "PYTHONPATH": str(REPO), "NETTRAIN_RUNS": str(folder / "runs")}
    every.pop("KERAS_BACKEND", None)
    every.pop("TF_CPP_MIN_LOG_LEVEL", None)
    only = {**every, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    python = {"every": [sys.executable], "tensorflow": [sys.executable, "-S"]}
    envs = {"every": every, "tensorflow": only}

    def start(venv: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen([*python[venv], "-m", "nettrain", *args], env=envs[venv],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    done: dict[str, dict] = {}
    children = {venv: start(venv, "fit", "configs/digits_mlp.yaml", "--run-dir",
                            str(folder / venv)) for venv in python}
    jax_run = folder / "jax-auto-xor"  # backend: auto, trained on JAX
    envs["jax"], python["jax"] = {**every, "KERAS_BACKEND": "jax",
                                  "XDG_CACHE_HOME": str(folder / "cache")}, python["every"]
    envs["jax"].pop("JAX_COMPILATION_CACHE_DIR", None)
    on_jax = start("jax", "fit", "configs/xor.yaml", "fit.epochs=1", "--run-dir", str(jax_run))
    on_jax.communicate(timeout=900)
    done["jax_cache"] = sorted(p.name for p in (folder / "cache").rglob("*") if p.is_file())
    importable = subprocess.run(
        [*python["tensorflow"], "-c", "import importlib.util as u; print(*(u.find_spec(m) is "
         "not None for m in ('jax', 'torch', 'mlflow', 'tensorflow')))"], env=only,
        capture_output=True, text=True, timeout=60)
    done["importable"] = importable.stdout.split()
    assert json.loads((jax_run / "run.json").read_text())["backend"] == "jax"
    for what, args in (("resume", ("fit", "--resume", str(jax_run), "fit.epochs=2")),
                       ("processes", ("fit", "configs/iris.yaml", "--processes", "2")),
                       ("processes-set", ("fit", "configs/iris.yaml", "--processes", "2"))):
        if what == "processes-set":  # a user's KERAS_BACKEND=tensorflow: the install first
            envs["tensorflow"] = {**only, "KERAS_BACKEND": "tensorflow"}
        refused = start("tensorflow", *args)
        out, err = refused.communicate(timeout=300)
        done[what] = {"exit": refused.returncode, "stdout": out, "stderr": err}
    for venv, child in children.items():
        out, err = child.communicate(timeout=900)
        run = folder / venv
        done[venv] = {"exit": child.returncode, "stdout": out, "stderr": err, "run": str(run),
                      "record": json.loads((run / "run.json").read_text())
                      if (run / "run.json").is_file() else {},
                      "metrics": json.loads((run / "metrics.json").read_text())
                      if (run / "metrics.json").is_file() else {}}
    return done


@pytest.mark.parametrize("venv", ["tensorflow", "every"])
def test_the_readme_main_job_holds_in_both_environments(main_job, venv):
    """The README's main job gives what the README shows, TensorFlow alone or every extra
    installed: auto runs it on TensorFlow (with JAX installed it ran on JAX: 0.9749 and 1.35x
    the time), the same test accuracy and loss as the README's table, the reason in the
    summary and in run.json, and no backend log line on the terminal."""
    if "jax" not in INSTALLED:
        pytest.fail("jax is not installed: pip install -e '.[jax]'")
    assert main_job["importable"] == ["False", "False", "False", "True"]
    done = main_job[venv]
    assert done["exit"] == 0, done["stderr"][-3000:]
    assert done["record"]["backend"] == "tensorflow"
    why = done["record"]["backend_why"]
    assert why.startswith("auto: 1,258 rows x 60 epochs x 9,610 parameters = 7.3e8 of work")
    assert f"Backend tensorflow ({why})" in " ".join(done["stderr"].split())
    readme = (REPO / "README.md").read_text()
    test = done["metrics"]["test"]
    assert f"│ test       │   {test['accuracy']:.4f} │ {test['loss']:.4f} │" in readme, test
    assert round(test["accuracy"], 2) >= 0.98
    assert done["stdout"] == done["run"] + "\n"
    assert not BACKEND_LINE.search(done["stderr"]), BACKEND_LINE.findall(done["stderr"])


def test_a_jax_run_keeps_its_compiled_programs_in_the_users_cache(main_job):
    """A JAX fit leaves XLA's programs in the user's cache folder (nettrain/jax under
    XDG_CACHE_HOME), which a second run of the job loads instead of compiling them again."""
    assert any(name.startswith("jit_") for name in main_job["jax_cache"]), main_job["jax_cache"]


def test_without_jax_a_resume_of_a_jax_run_is_refused_naming_the_install(main_job):
    """TensorFlow only: resuming a run that auto trained on JAX is refused, naming the install
    (it trained on TensorFlow, and run.json still said jax)."""
    resume = main_job["resume"]
    assert resume["exit"] == 2, resume["stderr"]
    assert "--resume: expected the backend the run trained on, jax (run.json), installed: " \
        "another backend would change its weights; received jax is not installed here. " \
        "Install it: pip install 'nettrain[jax]'" in " ".join(resume["stderr"].split())


def test_without_jax_several_processes_name_the_install(main_job):
    """TensorFlow only: --processes names the install first, with or without KERAS_BACKEND
    (it said "KERAS_BACKEND: ... received 'tensorflow'", as if the variable were the
    trouble)."""
    for processes in (main_job["processes"], main_job["processes-set"]):
        assert processes["exit"] == 2, processes["stderr"]
        message = " ".join(processes["stderr"].split())
        assert message.startswith(
            "Error: --processes: expected JAX installed (several processes train on JAX's "
            "distributed runtime); received JAX is not installed here. Install it: pip install "
            "'nettrain[jax]', or train in one process"), message
        assert "KERAS_BACKEND" not in message


def test_every_command_keeps_native_log_lines_off_the_terminal_and_debug_shows_them(tmp_path):
    """What C++ code writes to descriptor 2 once a command started (TensorFlow imported late
    by jax2tf, gloo's peers, absl's Python warnings) is filtered: the backends' log lines are
    left out, everything else passes; --debug leaves the descriptor alone."""
    code = """\
import logging, os, sys
from nettrain.cli import app
try:
    app(sys.argv[1:], prog_name="nettrain", standalone_mode=False)
except (SystemExit, Exception):  # the missing file's refusal (--debug: raised)
    pass
os.write(2, b"I0000 00:00:1796604704.578754   10472 port.cc:153] oneDNN custom operations\\n"
            b"WARNING: All log messages before absl::InitializeLog() is called are written\\n"
            b"[Gloo] Rank 0 is connected to 1 peer ranks.\\nkept: a line of the user's\\n")
logging.getLogger("absl").warning("Importing a function ... if a gradient is requested")
print("kept: python", file=sys.stderr)
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for flags in ([], ["--debug"]):
        done = subprocess.run([sys.executable, "-c", code, "validate", "missing.yaml", *flags],
                              env=env, capture_output=True, text=True, cwd=tmp_path,
                              timeout=120)
        lines = [line for line in done.stderr.splitlines() if "missing.yaml" not in line]
        if not flags:  # the filter's thread and Python's own stream: in either order
            assert sorted(lines) == ["kept: a line of the user's", "kept: python"], done.stderr
        else:
            assert BACKEND_LINE.search(done.stderr) and "[Gloo] Rank 0" in done.stderr, \
                done.stderr
