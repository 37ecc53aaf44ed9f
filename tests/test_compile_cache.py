"""Where a JAX run keeps its compiled programs (nettrain.backends.compile_cache): the user's
cache folder unless JAX's own variable says otherwise. The end-to-end check (a JAX fit leaves
its programs there) is in tests/test_backends.py's main_job fixture, which already runs one."""

from __future__ import annotations

from pathlib import Path

from nettrain.backends import compile_cache


def test_the_cache_is_under_the_users_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.folder() == tmp_path / "nettrain" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache.folder() == tmp_path / "home" / ".cache" / "nettrain" / "jax"


def test_jaxs_own_variable_wins_and_empty_keeps_the_cache_off(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "mine"))
    assert compile_cache.folder() == tmp_path / "mine"
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "")
    assert compile_cache.folder() is None


def test_a_folder_that_cannot_be_made_leaves_the_cache_off(monkeypatch, tmp_path):
    # a file where the folder should be: the run compiles as before, it never fails for this
    (tmp_path / "nettrain").write_text("not a folder")
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.folder() == Path(tmp_path, "nettrain", "jax")
    assert compile_cache.enable() is None


def test_without_filelock_the_cache_still_works_unbounded(tmp_path):
    """JAX's eviction (jax_compilation_cache_max_size) needs the filelock package: without it
    JAX's cache fails to start (RuntimeError, turned into a warning) and nothing is kept. Where
    filelock is missing the cache is kept unbounded, and a compile is kept."""
    import os
    import subprocess
    import sys

    code = ("import sys\nsys.modules['filelock'] = None  # as if not installed\n"
            "import jax\nfrom nettrain.backends import compile_cache\n"
            "print(compile_cache.enable())\n"
            "print(int(jax.jit(lambda v: v * 3 + 1)(2)), jax.config.jax_compilation_cache_max_size)")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    kept = [p.name for p in (tmp_path / "nettrain" / "jax").iterdir()]
    assert any(name.startswith("jit_") for name in kept), (kept, done.stderr[-2000:])
    assert done.stdout.split() == [str(tmp_path / "nettrain" / "jax"), "7", "-1"], done.stdout


def test_the_tests_keep_the_jax_programs_of_their_processes_out_of_the_users_home(
        tmp_path_factory):
    """The session's folder (tests/conftest.py), which the JAX processes the tests start read
    from their environment: the tests share no state with the user's ~/.cache."""
    where = compile_cache.folder()
    assert where is not None and where.name == "jax-cache"
    assert tmp_path_factory.getbasetemp().parent in where.parents or \
        where.parent == tmp_path_factory.getbasetemp()
    assert Path.home() / ".cache" not in where.parents


def test_on_jax_the_initializers_draw_flat_the_very_numbers_keras_draws(tmp_path):
    """nettrain.backends.jax_random: after Keras's import on JAX (select.settle, as every
    command runs it) the uniform, normal and truncated normal draws are made flat and
    reshaped (a (500, 10) kernel's program compiles in a fraction of the time): the initial
    weights of a seeded model are those Keras's own functions give, bit for bit."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, keras\n"
        "from keras.src.backend.jax import random\n"
        "from nettrain.backends import select\n"
        "def weights():\n"
        "    keras.utils.set_random_seed(3)\n"
        "    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(5),\n"
        "        keras.layers.Dense(4, kernel_initializer='he_normal'),\n"
        "        keras.layers.Dense(3, kernel_initializer='random_normal')])\n"
        "    return model.get_weights()\n"
        "before = weights()\n"
        "select.settle()\n"
        "flat = [getattr(random, n)._nettrain_flat for n in ('uniform', 'normal', "
        "'truncated_normal')]\n"
        "after = weights()\n"
        "print(flat, all(np.array_equal(a, b) for a, b in zip(before, after)),\n"
        "      any(np.abs(a).max() > 0 for a in after))\n")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "JAX_COMPILATION_CACHE_DIR": str(tmp_path),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == "[True, True, True] True True", done.stdout
