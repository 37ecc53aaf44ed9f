"""The process-wide settings a run trains under: seeds, op determinism, precision, devices.

These are the only TensorFlow-specific calls of training (``tf.config``, ``tf.distribute``);
everything else is written against ``keras``. On JAX and PyTorch TensorFlow is not imported
here (:mod:`nettrain.backends.select` refuses the TensorFlow-only keys there).
"""

from __future__ import annotations

import contextlib
from typing import Any

from nettrain.config.schema import Config


def apply(config: Config, echo: Any = print) -> None:
    """Seed everything, set op determinism and the dtype policy, before building the model.

    ``keras.utils.set_random_seed`` seeds Python's, NumPy's and TensorFlow's generators, so the
    same seed builds the same initial weights, splits, shuffles and dropout masks.
    """
    import keras

    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    # Always set, so one run's policy never leaks into the next in the same process.
    keras.mixed_precision.set_global_policy(config.mixed_precision)
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
        echo("deterministic: true: TensorFlow op determinism is on, which turns XLA off "
             "(compile.jit_compile 'auto' resolves to false).")
    elif tf_config.is_op_determinism_enabled():
        # A process that trained a deterministic config before (tests, notebooks); TF has
        # no public switch back.
        tf_config.disable_op_determinism()


def strategy(config: Config) -> Any:
    """The tf.distribute strategy of ``distribute:``, or None for the default device."""
    if config.distribute != "mirrored":
        return None
    import tensorflow as tf

    # All local GPUs; on a machine without one, all logical CPU devices (one unless the
    # process split its CPU with tf.config.set_logical_device_configuration).
    devices = [d.name for d in tf.config.list_logical_devices("GPU")] or \
        [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


def scope(strategy: Any) -> Any:
    """The strategy's scope (model, optimizer and checkpoint loading go inside it)."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()
