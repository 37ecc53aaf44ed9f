"""Shared fixtures: every test runs in its own folder, with run directories under it."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from nettrain.backends.startup import long_lived
from postgres import postgres_server, postgres_url, psycopg_driver  # noqa: F401  (fixtures)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The tests' own process runs Keras on TensorFlow (backend: auto keeps KERAS_BACKEND);
# tests/test_backends.py runs the other backends in processes of their own.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


@pytest.hookimpl(hookwrapper=True)
def pytest_collection(session: pytest.Session) -> Iterator[None]:
    """Collection imports TensorFlow, Keras and the test modules: objects that live to the
    end. The collector is off while they import and they are frozen after (gc.freeze), as for
    nettrain's own processes, so that no collection walks them (see
    _frozen_after_each_module); the garbage they left is collected first."""
    with long_lived(collect=True):
        yield


# The files of most CPU seconds (-n 0, a loaded 2-core machine), heaviest first: under
# --dist loadfile they are handed out before the others. xdist orders files by their number of
# tests, which put test_signals.py (6 tests, ~210 s of processes) near the end, where one
# worker trained on alone while the other had finished.
FIRST = ("test_backends.py", "test_signals.py", "test_docs.py", "test_backbones.py")


@pytest.hookimpl(optionalhook=True)  # hooks of pytest-xdist, which may not be installed
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than pytest-xdist's count (the cores). A worker also waits
    on what its tests started (nettrain processes until they checkpoint, servers, a sweep's
    trials) while those need no core of it: with a worker a core the two cores were 1.8 busy.
    The suite, -n 2 then -n 3 one after the other on an otherwise idle 2-core machine:
    11:30 and 10:39. pytest-xdist's own PYTEST_XDIST_AUTO_NUM_WORKERS still sets the number."""
    from xdist.plugin import pytest_xdist_auto_num_workers as cores

    return cores(config) + (0 if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") else 1)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class HeavyFirst(LoadFileScheduling):
        def _assign_work_unit(self, node) -> None:
            for name in reversed(FIRST):
                for scope in [s for s in self.workqueue if Path(s).name == name]:
                    self.workqueue.move_to_end(scope, last=False)
            super()._assign_work_unit(node)

    return HeavyFirst(config, log)


@pytest.fixture(scope="module", autouse=True)
def _frozen_after_each_module() -> Iterator[None]:
    """After a test file, its garbage is collected and what is left (what Keras, TensorFlow
    and the module fixtures keep for the process) is frozen: a long-lived xdist worker's heap
    grows to gigabytes, and every full collection walked all of it (a test of test_layout.py
    that parses 111 files with ast, 0.3 s alone, took 37-45 s late in a full run)."""
    yield
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def _jax_cache_of_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """JAX processes the tests start keep XLA's programs in one folder of this session (JAX's
    own JAX_COMPILATION_CACHE_DIR, which nettrain.backends.compile_cache reads; the xdist
    workers share it), not in the user's ~/.cache/nettrain/jax: the tests share no state with
    the user's home, and a program compiled by one test's process is loaded by the next."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "jax-cache"
    folder.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JAX_COMPILATION_CACHE_DIR", str(folder))
        yield


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outputs go to tmp_path: runs/ under it, Keras's cache in it (never the network's)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NETTRAIN_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def tiny_config(**sections) -> dict:
    """A small, fast classifier on iris; sections given replace the defaults."""
    config = {
        "name": "tiny",
        "seed": 0,
        "data": {"dataset": "iris", "validation_split": 0.2, "test_split": 0.2},
        "model": {"layers": [{"Dense": {"units": 8, "activation": "relu"}},
                             {"Dense": {"units": 3, "activation": "softmax"}}]},
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy",
                    "metrics": ["accuracy"]},
        "fit": {"epochs": 2, "batch_size": 16, "verbose": 0},
    }
    config.update(sections)
    return config


def write_npz(path: Path, n: int = 40, shape=(4,), classes: int = 3, seed: int = 0, **extra):
    rng = np.random.default_rng(seed)
    x = rng.random((n, *shape)).astype("float32")
    y = rng.integers(0, classes, n)
    np.savez(path, x=x, y=y, **extra)
    return x, y


def fit_once(folder: Path, config: dict, *then: list[str]) -> Path:
    """Train ``config`` into ``folder/run`` with the CLI (from ``folder``), then run each
    further command given; return the run directory. For module-scoped fixtures."""
    from nettrain.cli import app

    old = os.getcwd()
    os.chdir(folder)
    try:
        run = folder / "run"
        for command in (["fit", str(write_config(folder / "c.yaml", config)), "--run-dir",
                         str(run)], *then):
            result = CliRunner().invoke(app, command)
            assert result.exit_code == 0, result.output
    finally:
        os.chdir(old)
    return run
