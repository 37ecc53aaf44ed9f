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
