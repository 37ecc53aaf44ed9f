"""Keras model files that load and predict under every Keras backend: the compile config
they carry says ``steps_per_execution: 1``.

Training groups batches into calls of the compiled step (``compile.steps_per_execution``,
decided by :mod:`nettrain.data.steps`), and Keras saves that number with the model. The
PyTorch backend refuses any other value than 1 when the file is loaded compiled and asked to
predict (``keras.saving.load_model(path)`` then ``model.predict``), so every ``.keras`` file,
checkpoint and ``model.json`` nettrain writes stores 1: nettrain itself never reads the number
back (evaluate compiles afresh, a resume loads only the weights).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def any_backend(model: Any) -> Iterator[Any]:
    """Within the block, ``model.get_compile_config()`` (what ``model.save`` and
    ``model.to_json`` write) says ``steps_per_execution: 1``; the model itself, its compiled
    step and its training are untouched.

    Example::

        with any_backend(model):
            model.save("model.keras")
    """
    original = model.get_compile_config

    def compile_config() -> Any:
        config = original()
        if isinstance(config, dict) and config.get("steps_per_execution", 1) != 1:
            config = {**config, "steps_per_execution": 1}
        return config

    model.get_compile_config = compile_config  # Keras's hook for what the file carries
    try:
        yield model
    finally:
        del model.get_compile_config
