"""What a nettrain process pays once, at start-up: the import of Keras and other large
packages.

TensorFlow (3,300 modules, with Keras), MLflow and their like create millions of objects that
live as long as the process. While they import, Python's cyclic garbage collector runs its
collections over and over (1,110 of them during Keras's import) and finds no garbage; every
full collection afterwards walks them again, during training and at exit. :func:`long_lived`
keeps the collector off for the import and freezes (``gc.freeze``) what it created, so that
no later collection walks it. :func:`importing` is every process's import of Keras.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def long_lived(collect: bool = False) -> Iterator[None]:
    """Around the import of a large package whose objects live as long as the process: the
    collector off while it imports, what it created frozen afterwards. Nested, only the
    outermost freezes; under a collector already off (a caller's own), it does nothing.

    ``collect``: first collect what the import left as garbage, so that it is not frozen with
    the rest (after Keras's import, 4,057 objects in 0.33 CPU s): for a process that runs long
    after it, as a test worker does. A nettrain command skips it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        if collect:
            gc.collect()
        gc.freeze()


class _Hidden:
    """A finder that reads the top-level modules ``names`` as not installed (import and
    ``find_spec`` raise ModuleNotFoundError, as for a missing package)."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


# What Keras on TensorFlow imports wherever it is installed, for parts of Keras nettrain never
# calls: scikit-learn with SciPy (``keras.wrappers``, Keras's scikit-learn estimators) and
# matplotlib's pyplot (``keras.visualization``). A command that only loads a saved model and
# runs it (predict, serve, export) leaves them out: about 1 CPU second of its start-up. Not on
# JAX or PyTorch, which import SciPy or scikit-learn themselves.
UNUSED_BY_A_SAVED_MODEL = ("sklearn", "scipy", "matplotlib")


@contextlib.contextmanager
def importing(saved_model_only: bool = False) -> Any:
    """Around a process's first ``import keras``, the start-up every command that runs Keras
    pays (a fit, each sweep trial and ``--processes`` worker, ``predict``, ``serve``):

    - Python's garbage collector is off while Keras imports TensorFlow's 3,300 modules, and
      what they created is frozen afterwards (:func:`long_lived`): 1.6 of the
      README's main job's CPU seconds went to collections that found nothing.
    - On TensorFlow, JAX reads as not installed. TensorFlow imports ``jax.jit`` wherever JAX
      is installed (``tensorflow.lite.python.util``, for converting JAX functions to TFLite,
      which nettrain never does): 0.5 CPU seconds and 100 MB of every TensorFlow process beside
      JAX, for nothing. JAX imports as usual afterwards.
    - With ``saved_model_only`` (predict, serve, export), on TensorFlow, the packages of
      :data:`UNUSED_BY_A_SAVED_MODEL` read as not installed too; they import as usual
      afterwards, where a part of nettrain needs one."""
    if "keras" in sys.modules:  # imported already: nothing to speed up
        yield
        return
    hide = os.environ.get("KERAS_BACKEND") == "tensorflow" and \
        not {"jax", "tensorflow"} & set(sys.modules)
    unused = ("jax", "jaxlib", *(UNUSED_BY_A_SAVED_MODEL if saved_model_only else ()))
    finder = _Hidden(*(name for name in unused if name not in sys.modules))
    if hide:
        sys.meta_path.insert(0, finder)
    try:
        with long_lived():
            yield
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
