"""fit --processes 2: data-parallel training on JAX's distributed runtime (loopback, gloo).

Real processes: the launcher, its two JAX processes and, for the reference, one JAX process
on the global batch. Both fits start together (module fixture), so the test pays one start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

CONFIG = {"name": "dist", "seed": 3,
          # 140 training rows in global batches of 16: 8 full ones, split 8 + 8 between the
          # processes, and a short one of 12 (6 + 6)
          "data": {"synthetic": {"n_samples": 200, "n_features": 6, "n_classes": 3},
                   "validation_split": 0.2, "test_split": 0.1},
          "model": {"layers": [{"Dense": {"units": 8, "activation": "relu"}},
                               {"Dense": {"units": 3, "activation": "softmax"}}]},
          "compile": {"optimizer": {"SGD": {"learning_rate": 0.1, "momentum": 0.9}},
                      "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
          "fit": {"epochs": 3, "batch_size": 16},
          "save": {"formats": ["keras"]}}



def _env(folder: Path, **extra: str) -> dict[str, str]:
    """The fits' environment: not the tests' own KERAS_BACKEND (TensorFlow), as a user's."""
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    return {**env, "PYTHONPATH": str(REPO), "NETTRAIN_RUNS": str(folder / "runs"),
            "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


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
    assert "Training fused on JAX: the epoch's batches on the device" in err
    import keras  # model.keras files load under any backend: this process's will do

    two, one = (keras.saving.load_model(fitted["folder"] / name / "model.keras").get_weights()
                for name in ("two", "one"))
    diff = max(float(abs(a - b).max()) for a, b in zip(two, one))
    assert diff < 1e-5, diff


def test_a_killed_process_stops_the_run_which_resumes(fitted: dict) -> None:
    folder = fitted["folder"]
    config = folder / "long.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "name": "long",
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
    second = next(pid for pid in children if "--process-id\x001\x00" in
                  Path(f"/proc/{pid}/cmdline").read_text())
    os.kill(int(second), signal.SIGKILL)
    _, err = launcher.communicate(timeout=120)
    assert launcher.returncode == 1, err[-3000:]
    said = " ".join(err.split())
    assert "Error: Process 1 of 2 was killed by signal 9; the other processes were stopped, " \
           "so the run stopped." in said
    assert f"Continue with: nettrain fit --resume {run} --processes 2" in said
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
