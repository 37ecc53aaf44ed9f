"""What a nettrain process pays once, at start-up: the import of large packages.

TensorFlow (3,300 modules, with Keras), MLflow and their like create millions of objects that
live as long as the process. While they import, Python's cyclic garbage collector runs its
collections over and over (1,110 of them during Keras's import) and finds no garbage; every
full collection afterwards walks them again, during training and at exit. :func:`long_lived`
keeps the collector off for the import and freezes (``gc.freeze``) what it created, so that
no later collection walks it.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """Around the import of a large package whose objects live as long as the process: the
    collector off while it imports, what it created frozen afterwards. Nested, only the
    outermost freezes; under a collector already off (a caller's own), it does nothing."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.freeze()
