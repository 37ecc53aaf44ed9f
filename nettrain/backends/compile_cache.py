"""Where a JAX process keeps the programs XLA compiled, between runs: the user's cache folder,
so a second run of the same job (a rerun, a resume, predict after fit) skips the compiles.

A JAX run of the seed MNIST MLP compiles 62 programs (the initializers, the ops of the loss
check and the reload check one by one, the training step, its short last batch, the test
step's two shapes): about 5 CPU seconds of a 2-core machine, which TensorFlow's process does
not spend. With the cache a second run loads them (benchmarks/fit_phases.py; the figures are
in the comment of :data:`nettrain.backends.select.JAX_WORK`).

JAX's own setting wins: ``JAX_COMPILATION_CACHE_DIR`` in the environment names another
folder, or, set empty, keeps the cache off.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

# Every program is kept (JAX's default keeps only those that took over a second: here the
# many small ones are most of the time); the folder stays under MAX_BYTES (least recently used
# programs go first) where the filelock package is installed, which JAX's eviction needs.
MIN_COMPILE_SECONDS = 0.0
MAX_BYTES = 2**30
VARIABLE = "JAX_COMPILATION_CACHE_DIR"


def folder() -> Path | None:
    """The cache folder of this process: ``JAX_COMPILATION_CACHE_DIR`` when set (empty: None,
    no cache), else ``nettrain/jax`` under ``XDG_CACHE_HOME`` (default ``~/.cache``)."""
    if VARIABLE in os.environ:
        return Path(os.environ[VARIABLE]) if os.environ[VARIABLE] else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nettrain" / "jax"


def enable() -> Path | None:
    """Turn JAX's persistent compilation cache on in :func:`folder` (call after JAX's import,
    on the JAX backend); return the folder, or None when it is off or cannot be written (the
    run then compiles as before: a cache is never a reason to fail)."""
    where = folder()
    if where is None:
        return None
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(where, os.W_OK):
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(where))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    if importlib.util.find_spec("filelock") is not None:  # JAX's eviction locks the folder
        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)  # without: no cache
    return where
