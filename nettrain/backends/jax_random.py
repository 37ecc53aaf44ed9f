"""Keras's random draws on JAX (the initializers' uniform, normal and truncated normal) drawn
on a flat shape and reshaped: the same numbers, from fewer seconds of XLA compiling.

XLA:CPU takes about 0.9 CPU seconds to compile ``jax.random.uniform`` for a (500, 10) kernel,
against 0.2 for the same 5,000 numbers drawn flat (and 0.25 for (10, 500)): the short minor
axis of a classifier's last Dense layer makes its threefry program slow to compile. A cold JAX
process (nothing in its compile cache, :mod:`nettrain.backends.compile_cache`) pays that once
for each such shape before training starts. JAX numbers the draws of a shape in row-major
order, so drawing ``prod(shape)`` numbers and reshaping them gives the very numbers Keras's
own call gives (tests/test_compile_cache.py checks them against the functions replaced).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

NAMES = ("uniform", "normal", "truncated_normal")


def install() -> bool:
    """Replace Keras's JAX draws of :data:`NAMES` with their flat-drawn versions, once a
    process (call after Keras's import, on the JAX backend); False when Keras moved them (its
    own functions then run as they are)."""
    try:
        from keras.src.backend.jax import random
    except ImportError:
        return False
    if not all(callable(getattr(random, name, None)) for name in NAMES):
        return False
    for name in NAMES:
        function = getattr(random, name)
        if not getattr(function, "_nettrain_flat", False):
            setattr(random, name, flat(function))
    return True


def flat(draw: Callable[..., Any]) -> Callable[..., Any]:
    """``draw(shape, ...)`` drawn for ``(prod(shape),)`` and reshaped to ``shape`` (a shape
    of fewer than two axes as it is)."""

    @functools.wraps(draw)
    def drawn(shape: Any, *args: Any, **kwargs: Any) -> Any:
        shape = tuple(shape)
        if len(shape) < 2:
            return draw(shape, *args, **kwargs)
        return draw((math.prod(shape),), *args, **kwargs).reshape(shape)

    drawn._nettrain_flat = True  # type: ignore[attr-defined]
    return drawn
