"""fit --processes 2: data-parallel training on JAX's distributed runtime (loopback, gloo).

Real processes: the launcher, its two JAX processes and, for the reference, one JAX process
on the global batch. Both fits start together (module fixture), so the test pays one start.
The rules that need no process (the batch size, the seed, the advice after a failure, the
scratch folders, each process's rows) are checked first, in this process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from nettrain.backends import distributed, jax_fused
from nettrain.cli import app
from nettrain.cli.train import _go_on
from nettrain.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

CONFIG = {"name": "dist", "seed": 3,
          # 141 training rows in global batches of 16: 8 full ones, split 8 + 8 between the
          # processes, and a short one of 13, which does not split: each process feeds it whole
          "data": {"synthetic": {"n_samples": 201, "n_features": 6, "n_classes": 3},
                   "validation_split": 0.2, "test_split": 0.1},
          "model": {"layers": [{"Dense": {"units": 8, "activation": "relu"}},
                               {"Dense": {"units": 3, "activation": "softmax"}}]},
          "compile": {"optimizer": {"SGD": {"learning_rate": 0.1, "momentum": 0.9}},
                      "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
          "fit": {"epochs": 3, "batch_size": 16},
          "save": {"formats": ["keras"]}}


def test_a_batch_size_the_processes_do_not_divide_is_refused(runner, tmp_path) -> None:
    # 16 rows in 3 processes: 5 each would leave row 15 of every batch untrained
    config = tmp_path / "d.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    result = runner.invoke(app, ["fit", str(config), "--processes", "3"])
    assert result.exit_code == 2, result.output
    assert "fit.batch_size: expected a multiple of 3 (each of the 3 processes trains an " \
           "equal share of every batch); received 16. Use fit.batch_size=15 or " \
           "fit.batch_size=18." in " ".join(result.output.split())
    assert not (tmp_path / "runs").exists()  # refused before anything was made
    with pytest.raises(ConfigError, match=r"received 2\. Use fit\.batch_size=3\.$"):
        distributed.check_batch_size(2, 3)
    distributed.check_batch_size(18, 3)
    distributed.check_batch_size(7, 1)


def test_processes_started_by_hand_need_a_seed(tmp_path) -> None:
    from nettrain.config.load import load_config

    config = tmp_path / "d.yaml"
    config.write_text(yaml.safe_dump({k: v for k, v in CONFIG.items() if k != "seed"}))
    loaded = load_config(config, [])
    with pytest.raises(ConfigError, match="seed: expected a seed, the same in each of the 2 "
                                          "processes .* Add seed=N"):
        distributed.check_config(loaded, 16, 2, by_hand=True)
    distributed.check_config(loaded, 16, 2, by_hand=False)  # the launcher hands one out


def test_each_process_feeds_its_share_and_every_row_is_trained() -> None:
    # 2 global batches of 18 rows in 3 processes: each feeds 6 rows of each batch, and the
    # processes' shares, side by side, are the batches
    x = np.arange(36).reshape(36, 1)
    order = np.random.default_rng(0).permutation(36)
    shares = [jax_fused._steps(x, order, 2, 3, i) for i in range(3)]
    assert [share.shape for share in shares] == [(2, 6, 1)] * 3
    assert (np.concatenate(shares, axis=1) == x[order].reshape(2, 18, 1)).all()


def test_the_advice_after_a_failure_reads_the_run_directory(tmp_path) -> None:
    again = "nettrain fit d.yaml --processes 2"
    run = tmp_path / "run"
    run.mkdir()
    # nothing written (a process failed before training): the empty directory made for
    # the fit goes, and the advice is the fit itself, not a resume of nothing
    assert _go_on(run, 2, again, made=True) == \
        f"No epoch was trained and nothing was written. Start again: {again}"
    assert not run.exists()
    run.mkdir()
    (run / "run.json").write_text('{"status": "failed", "epochs_completed": 0}')
    assert _go_on(run, 2, again, made=True) == (
        f"No epoch was completed. Start it again, in the same directory {run}: "
        f"nettrain fit --resume {run} --processes 2")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.keras").write_bytes(b"")
    assert _go_on(run, 2, again, made=True) == (
        f"The run directory {run} keeps its completed epochs. Continue with: "
        f"nettrain fit --resume {run} --processes 2")


def test_a_scratch_folder_is_the_launchers_when_it_made_one(tmp_path, monkeypatch) -> None:
    made = tmp_path / "made"
    made.mkdir()
    monkeypatch.setenv(distributed.SCRATCH_VARIABLE, str(made))
    assert distributed.scratch_dir(1, None) == (made, made / "run")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    assert distributed.scratch_dir(1, tmp_path / "run") == (made, made / "run")
    assert (made / "run" / "run.json").is_file()


def _env(folder: Path, **extra: str) -> dict[str, str]:
    """The fits' environment: not the tests' own KERAS_BACKEND (TensorFlow), as a user's;
    a temporary folder of their own, where no scratch folder may be left."""
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    (folder / "tmp").mkdir(exist_ok=True)
    return {**env, "PYTHONPATH": str(REPO), "NETTRAIN_RUNS": str(folder / "runs"),
            "TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(folder / "tmp"), **extra}


def _scratch_left(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "tmp").glob("nettrain-process-*"))


def _nettrain(*args: str) -> list[str]:
    return [sys.executable, "-m", "nettrain", *args]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("dist")
    config = folder / "d.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    two = subprocess.Popen(_nettrain("fit", str(config), "--processes", "2", "--run-dir",
                                     str(folder / "two")), cwd=folder, env=_env(folder),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    one = subprocess.run(_nettrain("fit", str(config), "--run-dir", str(folder / "one")),
                         cwd=folder, env=_env(folder, KERAS_BACKEND="jax"),
                         capture_output=True, text=True, timeout=600, check=False)
    out, err = two.communicate(timeout=600)
    return {"folder": folder, "two": (two.returncode, out, err),
            "one": (one.returncode, one.stdout, one.stderr)}


def test_two_processes_train_the_weights_of_one_on_the_global_batch(fitted: dict) -> None:
    code, out, err = fitted["two"]
    assert code == 0, err[-3000:]
    assert fitted["one"][0] == 0, fitted["one"][2][-3000:]
    # process 0 alone printed the run directory and wrote it; nothing of process 1 is left
    assert out.strip() == str(fitted["folder"] / "two")
    assert sorted(p.name for p in (fitted["folder"] / "runs").glob("*")) == []
    assert _scratch_left(fitted["folder"]) == []
    assert "Training fused on JAX: the epoch's batches on the device" in err
    import keras  # model.keras files load under any backend: this process's will do

    two, one = (keras.saving.load_model(fitted["folder"] / name / "model.keras").get_weights()
                for name in ("two", "one"))
    diff = max(float(abs(a - b).max()) for a, b in zip(two, one))
    assert diff < 1e-6, diff


def test_a_killed_process_stops_the_run_which_resumes(fitted: dict) -> None:
    # No seed: the launcher draws one and hands it to both processes (which would otherwise
    # build differing weights and fail), and the run records it.
    folder = fitted["folder"]
    config = folder / "long.yaml"
    config.write_text(yaml.safe_dump({**{k: v for k, v in CONFIG.items() if k != "seed"},
                                      "name": "long",
                                      "fit": {"epochs": 300, "batch_size": 16,
                                              "checkpoint_every_seconds": 0}}))
    run = folder / "long-run"
    launcher = subprocess.Popen(_nettrain("fit", str(config), "--processes", "2", "--run-dir",
                                          str(run)), cwd=folder, env=_env(folder),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = run / "checkpoints" / "last.keras"
    deadline = time.monotonic() + 300
    while not last.is_file() and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert last.is_file(), "no epoch was checkpointed"
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
    # each process trains on JAX without TensorFlow loaded (before, Keras's set_random_seed
    # imported it in each: 3 CPU seconds and a few hundred MB a process, for nothing)
    loaded = {pid: [line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text()
                    .splitlines() if "tensorflow" in line] for pid in children}
    assert len(loaded) == 2 and not any(loaded.values()), loaded
    second = next(pid for pid in children if "--process-id\x001\x00" in
                  Path(f"/proc/{pid}/cmdline").read_text())
    os.kill(int(second), signal.SIGKILL)
    _, err = launcher.communicate(timeout=120)
    assert launcher.returncode == 1, err[-3000:]
    said = " ".join(err.split())
    assert "Error: Process 1 of 2 was killed by signal 9; the other processes were stopped, " \
           "so the run stopped." in said
    assert f"Continue with: nettrain fit --resume {run} --processes 2" in said
    assert _scratch_left(folder) == []  # process 1's, though it was killed
    seed = yaml.safe_load((run / "run.json").read_text())["seed"]
    assert isinstance(seed, int)
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == seed
    resumed = subprocess.run(_nettrain("fit", "--resume", str(run), "fit.epochs=20"),
                             cwd=folder, env=_env(folder, KERAS_BACKEND="jax"),
                             capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming" in resumed.stderr
    assert yaml.safe_load((run / "run.json").read_text())["status"] == "completed"


def test_the_backend_policy_refuses_another_backend_for_several_processes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fit --processes asks the one backend policy: backend: torch, or KERAS_BACKEND=torch,
    is refused naming the key, before any process starts (before, backend: torch was set,
    then refused as "received KERAS_BACKEND=torch", a variable the user never set)."""
    from typer.testing import CliRunner

    from nettrain.cli import app

    config = tmp_path / "d.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "backend": "torch"}))
    result = CliRunner().invoke(app, ["fit", str(config), "--processes", "2"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    message = " ".join(result.output.split())
    assert "backend (line 1): expected a backend that can run this config (training over " \
        "several processes runs on JAX's distributed runtime (jax.distributed), at " \
        "--processes); received 'torch'. Use backend: auto (which picks jax for this config) " \
        "or jax, or leave out --processes" in message
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    config.write_text(yaml.safe_dump(CONFIG))
    result = CliRunner().invoke(app, ["fit", str(config), "--processes", "2"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "KERAS_BACKEND: expected a backend that can run this config (training over " \
        "several processes runs on JAX's distributed runtime" in " ".join(result.output.split())
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------- the launcher's end, its processes' end


def _words(text: str):
    import tempfile

    file = tempfile.TemporaryFile()
    file.write(text.encode())
    return file


NAN = ("Training stopped: the loss became NaN or infinite in epoch 2 (by batch 12); the last "
       "good checkpoint is from epoch 1.")


@pytest.mark.parametrize("ended, first, asked, words, record, code, printed", [
    # a NaN: each process stops on it, process 1 first; process 0 said it: once
    ([1, 1], 1, [], f"Error: {NAN}\nThe run directory /tmp/x keeps ...",
     {"status": "failed", "error": NAN}, 1, ""),
    # process 1 failed on its own, process 0 then in a collective: both are said
    ([1, 1], 1, [], "Error: MemoryError: out of memory",
     {"status": "failed", "error": "Training failed: gloo: connection closed by peer"}, 1,
     "Process 1 of 2 ended first, with exit code 1 (Error: MemoryError: out of memory)."),
    # Ctrl-C or SIGTERM to the launcher: process 0 saved and said how to go on
    ([130, 130], 1, [signal.SIGINT], "", {"status": "interrupted"}, 130, ""),
    # a second Ctrl-C stopped them before process 0 could save: the launcher says it
    ([None, 130], 1, [signal.SIGINT], "", {"status": "running"}, 130,
     "Interrupted: the processes were stopped. Continue with: RESUME"),
    # SIGTERM to process 1 alone: they stop together, process 0 speaks
    ([130, 130], 1, [], "", {"status": "interrupted"}, 130, ""),
    # every process ended well, though a stop came at the end
    ([0, 0], None, [signal.SIGTERM], "", {"status": "completed"}, None, ""),
], ids=["nan", "worker-error", "stop", "forced", "worker-stopped", "done"])
def test_process_0_speaks_for_the_run_once(capsys, ended, first, asked, words, record, code,
                                           printed) -> None:
    said = [None, _words(words)]
    if code is None:
        distributed._outcome(2, ended, first, asked, said, lambda: "Continue with: RESUME",
                             lambda: record)
    else:
        with pytest.raises(SystemExit) as stop:
            distributed._outcome(2, ended, first, asked, said, lambda: "Continue with: RESUME",
                                 lambda: record)
        assert stop.value.code == code
    assert capsys.readouterr().err.strip() == printed


def test_a_killed_process_stops_the_run_with_the_advice() -> None:
    from nettrain.errors import RunError

    with pytest.raises(RunError, match=r"^Process 1 of 2 was killed by signal 9; the other "
                                       r"processes were stopped, so the run stopped\. Go on\.$"):
        distributed._outcome(2, [None, -9], None, [], [None, _words("")], lambda: "Go on.",
                             dict)


def test_scratch_folders_no_process_owns_are_swept(tmp_path, monkeypatch) -> None:
    """A kill -9 of the launcher and of its process leaves the scratch folder: the next
    launch removes it, and only it (the owner lock is free when its owners died)."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    owned, fd = distributed._new_scratch(1)  # held by this process, as a living one holds it
    dead = tmp_path / "nettrain-process-1-dead"
    dead.mkdir()
    (dead / distributed.OWNER).write_text("")  # no process holds its lock
    other = tmp_path / "nettrain-process-1-other"  # not a folder nettrain marked: left alone
    other.mkdir()
    try:
        distributed.sweep_scratch()
        assert owned.is_dir() and other.is_dir() and not dead.exists()
    finally:
        distributed._OWNED.remove(fd)
        os.close(fd)
    distributed.sweep_scratch()
    assert not owned.exists()


def test_a_launchers_process_is_told_to_stop_when_the_launcher_is_gone(monkeypatch) -> None:
    """Where Linux's parent-death signal is not to be had, the process watches a pipe of the
    launcher's: its end (the launcher died, even by kill -9) is a SIGTERM. A process whose
    launcher died before it could follow it stops at once."""
    import threading

    told = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda number, frame: told.set())
    try:
        read, write = os.pipe()
        distributed._watch_pipe(read)
        os.close(write)
        assert told.wait(60)
        told.clear()
        monkeypatch.setattr(distributed, "_die_with_parent", lambda: True)
        monkeypatch.setenv(distributed.LAUNCHER_VARIABLE, f"{os.getppid() + 10**7}:-1")
        distributed.follow_launcher()
        assert told.wait(60)
        assert distributed.LAUNCHER_VARIABLE not in os.environ  # not for its own children
    finally:
        signal.signal(signal.SIGTERM, previous)
