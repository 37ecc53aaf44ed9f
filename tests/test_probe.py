"""A fault probe of the trust (issue 7) and safety (issue 8) work: each test is a way a user or
a hostile teammate found past the merged checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nettrain.cli import app

from conftest import tiny_config, write_config


def _refused(result, *texts: str) -> str:
    """The config error's text (line numbers left out), after checking the exit status."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    text = re.sub(r" \(line \d+\)", "", " ".join(result.stderr.split()))
    for expected in texts:
        assert expected in text, text
    return text


def _xor(*callbacks) -> dict:
    config = tiny_config(data={"dataset": "xor"})
    config["model"]["layers"][-1] = {"Dense": {"units": 1, "activation": "sigmoid"}}
    config["compile"]["loss"] = "binary_crossentropy"
    config["fit"]["epochs"] = 1
    config["fit"]["callbacks"] = list(callbacks)
    return config


# --- callback paths: Keras formats ModelCheckpoint's filepath, format specs included --------

@pytest.mark.parametrize("filepath", ["..{epoch:/>3}/pwned.keras", "{epoch:c}{epoch:c}/x.keras",
                                      "m{epoch!r:/>3}.keras"])
def test_a_format_spec_in_a_callback_path_cannot_lead_out_of_the_run(runner, tmp_path, filepath):
    """'..{epoch:/>3}' is '..//1' once Keras formats it: the file went next to the run."""
    config = _xor({"ModelCheckpoint": {"filepath": filepath, "monitor": "loss"}})
    path = write_config(Path("c.yaml"), config)
    result = runner.invoke(app, ["fit", str(path), "--run-dir", "runs/a/b"])
    _refused(result, "fit.callbacks[0].ModelCheckpoint.filepath",
             "Write e.g. '{epoch:02d}' or '{val_loss:.4f}'")
    assert not Path("runs").exists()
    config["fit"]["callbacks"][0]["ModelCheckpoint"]["filepath"] = "m-{epoch:02d}-{loss:.4f}.keras"
    result = runner.invoke(app, ["fit", str(write_config(path, config)), "--run-dir", "run"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    assert [p.name for p in Path("run").glob("m-*.keras")] and \
        not list(tmp_path.rglob("pwned.keras"))


def test_a_misspelt_monitor_is_one_problem_with_advice_that_leads_to_a_valid_config(runner):
    """'val_acc' was also reported as a mode Keras cannot tell, whose advice (mode: max) leaves
    the config invalid; the misspelling is the one problem."""
    config = tiny_config()
    config["fit"]["callbacks"] = [{"EarlyStopping": {"monitor": "val_acc"}}]
    path = write_config(Path("c.yaml"), config)
    text = _refused(runner.invoke(app, ["validate", str(path)]),
                    "fit.callbacks[0].EarlyStopping.monitor", "Did you mean 'val_accuracy'?")
    assert ".mode" not in text and "problems" not in text
    config["fit"]["callbacks"] = [{"EarlyStopping": {"monitor": "val_accuracy"}}]
    result = runner.invoke(app, ["validate", str(write_config(path, config))])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output


# --- Keras's own {class_name, config} form in an argument -----------------------------------

@pytest.mark.parametrize("value", [
    {"module": "keras.src.saving.serialization_lib", "class_name": "function",
     "config": "deserialize_keras_object"},  # Keras: KeyError 'registered_name', exit 1
    {"class_name": "function", "config": "system", "module": "os"},
])
def test_a_malformed_keras_object_form_is_a_config_error(runner, value):
    config = _xor()
    config["model"]["layers"][0]["Dense"]["kernel_initializer"] = value
    result = runner.invoke(app, ["validate", str(write_config(Path("c.yaml"), config))])
    text = _refused(result, "model.layers[0].Dense", "expected valid arguments")
    for internal in ("KeyError", "register_keras_serializable", "Full object config"):
        assert internal not in text


# --- a teammate's run directory: symbolic links out of it -----------------------------------

def _trained(runner, run: str = "run") -> Path:
    config = tiny_config()
    config["fit"]["epochs"] = 1
    result = runner.invoke(app, ["fit", str(write_config(Path("c.yaml"), config)),
                                 "--run-dir", run])
    assert result.exit_code == 0, result.output
    return Path(run)


@pytest.mark.parametrize("link", [".lock", "checkpoints"])
def test_a_symlink_out_of_a_run_directory_is_refused_before_anything_is_written(
        runner, tmp_path, link):
    """'.lock -> ~/.bashrc' in a shared run: the resume truncated the file the link names and
    wrote its lock there; 'checkpoints -> elsewhere' put the checkpoints outside the run."""
    run = _trained(runner)
    victim = tmp_path / "victim"
    if link == "checkpoints":
        (run / "checkpoints").rename(victim)
    else:
        victim.write_text("precious\n")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in victim.rglob("*")) \
        if victim.is_dir() else victim.read_text()
    (run / link).symlink_to(victim)
    result = runner.invoke(app, ["fit", "--resume", str(run), "fit.epochs=2"])
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    text = " ".join(result.stderr.split())
    assert f"{run / link} is a symbolic link to {victim}, outside the run directory" in text
    assert "Remove the link" in text
    after = sorted((p.name, p.stat().st_mtime_ns) for p in victim.rglob("*")) \
        if victim.is_dir() else victim.read_text()
    assert after == before
    (run / link).unlink()  # the advice; a moved checkpoint folder means training from the start
    result = runner.invoke(app, ["fit", "--resume", str(run), "fit.epochs=2"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output


# --- a teammate's run directory: a model file that is not a file ----------------------------

@pytest.mark.parametrize("name, options", [("model.keras", []), ("model.json", ["--format", "json"])])
def test_a_model_file_that_is_not_a_regular_file_is_named_not_read(runner, name, options):
    """A FIFO (or a link to /dev/zero) as model.keras: evaluate waited for ever (/dev/zero grew
    memory past 11 GB in 30 s)."""
    import os
    import threading

    config = tiny_config(save={"formats": ["json", "keras"]})
    config["fit"]["epochs"] = 1
    result = runner.invoke(app, ["fit", str(write_config(Path("c.yaml"), config)),
                                 "--run-dir", "both"])
    assert result.exit_code == 0, result.output
    run = Path("both")
    (run / name).unlink()
    os.mkfifo(run / name)
    results = []
    worker = threading.Thread(target=lambda: results.append(
        runner.invoke(app, ["evaluate", str(run), *options])), daemon=True)
    worker.start()
    worker.join(20)
    if worker.is_alive():  # it opened the FIFO: let it read an end of file, then fail
        os.close(os.open(run / name, os.O_WRONLY))
        worker.join(60)
        pytest.fail(f"evaluate opened the FIFO {name} and waited")
    result, = results
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    text = " ".join(result.stderr.split())
    assert f"{run / name} is damaged (not a regular file" in text


def test_a_hostile_override_is_refused_without_echoing_all_of_it(runner):
    """A 100,000-character override was printed back whole."""
    path = write_config(Path("c.yaml"), tiny_config())
    result = runner.invoke(app, ["validate", str(path), "name=" + "[" * 50000 + "]" * 50000])
    text = _refused(result, "override name: expected a YAML value",
                    "expected nesting at most 32 levels deep")
    assert len(text) < 400


# --- damaged .npz files: fit, validate and predict ------------------------------------------

def _damaged_npz(tmp_path: Path, how: str) -> Path:
    from conftest import write_npz

    whole = tmp_path / "whole.npz"
    write_npz(whole, n=40)
    data = bytearray(whole.read_bytes())
    if how == "cut":
        data = data[:300]  # the zip's directory gone: numpy raises zipfile.BadZipFile
    else:
        data[100:140] = b"\xff" * 40  # an array's bytes changed: a CRC error on reading
    path = tmp_path / f"{how}.npz"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("how", ["cut", "bytes"])
def test_a_damaged_npz_is_named_in_validate_and_predict(runner, tmp_path, how):
    path = _damaged_npz(tmp_path, how)
    config = tiny_config(data={"npz": str(path), "validation_split": 0.2})
    result = runner.invoke(app, ["validate", str(write_config(Path("c.yaml"), config))])
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    assert f"data.npz: cannot read {path} as .npz" in " ".join(result.stderr.split())
    assert "BadZipFile" not in result.stderr
    run = _trained(runner)
    result = runner.invoke(app, ["predict", str(run), str(path)])
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    assert f"INPUT: cannot read {path}" in " ".join(result.stderr.split())
    assert "BadZipFile" not in result.stderr


# --- TensorFlow's op names in messages ------------------------------------------------------

def test_a_corrupt_image_is_named_without_tensorflow_op_names(runner, tmp_path):
    import tensorflow as tf

    rng = __import__("numpy").random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / "photos" / label).mkdir(parents=True)
        for i in range(4):
            (tmp_path / "photos" / label / f"{i}.png").write_bytes(
                tf.io.encode_png(rng.integers(0, 255, (8, 8, 3)).astype("uint8")).numpy())
    bad = tmp_path / "photos" / "dog" / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    config = tiny_config(data={"images": "photos", "image_size": [8, 8]})
    config["model"]["layers"] = ["Flatten", {"Dense": {"units": 2, "activation": "softmax"}}]
    result = runner.invoke(app, ["validate", str(write_config(Path("c.yaml"), config))])
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    text = " ".join(result.stderr.split())
    assert f"cannot decode the image {bad}: Invalid PNG" in text
    for internal in ("function_node", "__wrapped__", "[Op:", "device:CPU", "name:"):
        assert internal not in text, text


# --- what fit writes must read back ---------------------------------------------------------

def test_a_class_weight_mapping_trains_and_its_run_reads_back(runner):
    """The run's config.yaml held class_weight {'0': 1.0, ...} (strings): fit ended with exit
    2, 'config.yaml is damaged', after training."""
    config = tiny_config()
    config["fit"]["class_weight"] = {0: 1.0, 1: 2.0, 2: 1.0}
    result = runner.invoke(app, ["fit", str(write_config(Path("c.yaml"), config)),
                                 "--run-dir", "run"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    assert "class_weight: {0: 1.0, 1: 2.0, 2: 1.0}" in Path("run/config.yaml").read_text()
    for command in (["evaluate", "run"], ["fit", "--resume", "run", "fit.epochs=3"],
                    ["fit", "run/config.yaml", "--run-dir", "again"]):
        result = runner.invoke(app, command)
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            result.exception
        assert result.exit_code == 0, (command, result.output)


# --- callback paths that collide ------------------------------------------------------------

@pytest.mark.parametrize("callbacks, key", [
    ([{"CSVLogger": {"filename": ".lock"}}], "fit.callbacks[0].CSVLogger.filename"),
    ([{"CSVLogger": {"filename": ".model.keras.tmp"}}], "fit.callbacks[0].CSVLogger.filename"),
    ([{"CSVLogger": {"filename": "a.csv"}}, {"CSVLogger": {"filename": "./a.csv"}}],
     "fit.callbacks[1].CSVLogger.filename"),
    ([{"ModelCheckpoint": {"filepath": "x.keras"}}, {"CSVLogger": {"filename": "x.keras"}}],
     "fit.callbacks[1].CSVLogger.filename"),
])
def test_callback_paths_may_not_collide_with_each_other_or_nettrains_own(runner, callbacks,
                                                                         key):
    """A CSVLogger on '.lock' wrote into the run's lock (removed at the end, with the log);
    two callbacks on one file wrote over each other; all with exit 0."""
    config = tiny_config()
    config["fit"]["callbacks"] = callbacks
    path = write_config(Path("c.yaml"), config)
    _refused(runner.invoke(app, ["fit", str(path)]), key, "Choose another name")
    assert not Path("runs").exists()


def test_a_mixed_precision_model_saves_as_a_savedmodel(runner):
    """validate said OK, then the save after training failed: the reload check built its
    TFSMLayer under the mixed policy, which Keras cannot infer an output for."""
    config = tiny_config(mixed_precision="mixed_bfloat16", save={"formats": ["savedmodel"]})
    config["fit"]["epochs"] = 1
    result = runner.invoke(app, ["fit", str(write_config(Path("c.yaml"), config)),
                                 "--run-dir", "run"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    import numpy as np

    np.save("x.npy", np.ones((2, 4), "float32"))
    result = runner.invoke(app, ["predict", "run", "x.npy", "--format", "savedmodel"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("class,prob_")


def test_a_refused_layer_with_a_lone_value_is_refused_not_given_an_argument_hint(runner):
    """'- Lambda: x' got the advice "Write e.g. - Lambda: {function: 'x'}", which is refused."""
    config = tiny_config()
    config["model"]["layers"].insert(0, {"Lambda": "x"})
    text = _refused(runner.invoke(app, ["validate", str(write_config(Path("c.yaml"), config))]),
                    "model.layers[0].Lambda", "a layer that neither loads files nor runs code")
    assert "Write e.g." not in text


def _invoke_or_unblock(runner, args: list[str], fifo: Path):
    """Invoke the CLI in a thread; if it is still running after 20 s (it opened ``fifo`` and
    waits), give it an end of file and fail."""
    import os
    import threading

    results = []
    worker = threading.Thread(target=lambda: results.append(runner.invoke(app, args)),
                              daemon=True)
    worker.start()
    worker.join(20)
    if worker.is_alive():
        os.close(os.open(fifo, os.O_WRONLY))
        worker.join(60)
        pytest.fail(f"{args[0]} opened the pipe {fifo} and waited")
    return results[0]


@pytest.mark.parametrize("key", ["csv", "test"])
def test_a_data_path_that_is_not_a_regular_file_is_refused(runner, tmp_path, key):
    """'csv: /dev/zero' in a shared config grew validate's memory past 5 GB in 20 s; a pipe
    made it wait for ever."""
    import os

    (tmp_path / "d.csv").write_text("a,b,y\n" + "".join(f"{i % 7},{i % 3},{i % 2}\n"
                                                        for i in range(40)))
    os.mkfifo(tmp_path / "pipe.csv")
    data = {"csv": "d.csv", "target": "y", "validation_split": 0.2}
    data[key] = "pipe.csv"
    config = tiny_config(data=data)
    config["model"]["layers"][-1] = {"Dense": {"units": 1, "activation": "sigmoid"}}
    config["compile"]["loss"] = "binary_crossentropy"
    result = _invoke_or_unblock(
        runner, ["validate", str(write_config(Path("c.yaml"), config))], tmp_path / "pipe.csv")
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    assert f"data.{key}: {tmp_path / 'pipe.csv'} is not a regular file" in \
        " ".join(result.stderr.split())
