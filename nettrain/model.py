"""The model builder: config + data -> a compiled ``keras.Sequential``.

Preprocessing from ``data:`` becomes the model's first layers (Flatten, Rescaling, an adapted
Normalization), so every saved format takes raw inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nettrain.config import Config, spec_name
from nettrain.data import Data
from nettrain.errors import ConfigError, Problem
from nettrain.keras_objects import (
    CALLBACKS, LAYERS, LOSSES, METRICS, OPTIMIZERS, Registry, ResolveError, resolve,
)


@dataclass
class Compiled:
    """The compile arguments, resolved to Keras objects (or names Keras resolves itself)."""

    optimizer: Any
    loss: Any
    metrics: list[Any]
    weighted_metrics: list[Any]

    def kwargs(self, config: Config) -> dict[str, Any]:
        c = config.compile
        return {"optimizer": self.optimizer, "loss": self.loss, "metrics": self.metrics,
                "weighted_metrics": self.weighted_metrics or None,
                "loss_weights": c.loss_weights, "run_eagerly": c.run_eagerly,
                "steps_per_execution": c.steps_per_execution, "jit_compile": c.jit_compile}


@dataclass
class Resolved:
    """Every Keras object a config names, constructed (so bad names and arguments fail early)."""

    layers: list[Any]
    compiled: Compiled
    callbacks: list[Any]


def resolve_all(config: Config) -> Resolved:
    """Construct every Keras object of the config; one ConfigError lists every problem."""
    problems: list[Problem] = []

    def collect(spec: Any, registry: Registry, path: str) -> Any:
        try:
            return resolve(spec, registry, path)
        except ResolveError as exc:
            problems.extend(exc.problems)
            return None

    layers = [collect(s, LAYERS, f"model.layers[{i}]") for i, s in enumerate(config.model.layers)]
    compiled = _compiled(config, collect)
    callbacks = [collect(s, CALLBACKS, f"fit.callbacks[{i}]")
                 for i, s in enumerate(config.fit.callbacks)]
    if problems:
        raise config.error(problems)
    return Resolved(layers, compiled, callbacks)


def resolve_compiled(config: Config) -> Compiled:
    """Only the compile arguments (for evaluating a saved model)."""
    problems: list[Problem] = []

    def collect(spec: Any, registry: Registry, path: str) -> Any:
        try:
            return resolve(spec, registry, path)
        except ResolveError as exc:
            problems.extend(exc.problems)

    compiled = _compiled(config, collect)
    if problems:
        raise config.error(problems)
    return compiled


def _compiled(config: Config, collect: Any) -> Compiled:
    c = config.compile
    return Compiled(
        optimizer=collect(c.optimizer, OPTIMIZERS, "compile.optimizer"),
        loss=collect(c.loss, LOSSES, "compile.loss"),
        metrics=[collect(s, METRICS, f"compile.metrics[{i}]") for i, s in enumerate(c.metrics)],
        weighted_metrics=[collect(s, METRICS, f"compile.weighted_metrics[{i}]")
                          for i, s in enumerate(c.weighted_metrics)],
    )


def preprocess(x: np.ndarray, config: Config) -> np.ndarray:
    """What the Flatten and Rescaling layers do, in numpy (to adapt Normalization on)."""
    if config.data.flatten:
        x = x.reshape(len(x), -1)
    if config.data.scale:
        x = x / np.float32(config.data.scale)
    return x


def build_model(config: Config, data: Data, resolved: Resolved | None = None) -> Any:
    """Build and compile the Sequential model for ``data``; check that the two fit.

    Example: ``build_model(cfg, load_data(cfg)).count_params()`` -> ``41`` for xor.yaml.
    """
    import keras

    resolved = resolved or resolve_all(config)
    shape = data.input_shape
    flat = (int(np.prod(shape)),) if config.data.flatten else shape
    if config.model.input_shape is not None and tuple(config.model.input_shape) != flat:
        raise ConfigError(Problem(
            "model.input_shape", f"the shape of one input sample, {list(flat)}"
            + (" after data.flatten" if config.data.flatten else ""),
            f"{config.model.input_shape}",
            "Leave input_shape out to take it from the data, or add data.flatten: true or a "
            "Reshape layer."))
    front: list[Any] = []
    if config.data.flatten:
        front.append(keras.layers.Flatten(name="flatten_input"))
    if config.data.scale:
        front.append(keras.layers.Rescaling(1.0 / config.data.scale, name="scale_input"))
    if config.data.normalize:
        norm = keras.layers.Normalization(name="normalize_input")
        norm.adapt(preprocess(data.x["train"], config))  # the training split only
        front.append(norm)
    model = keras.Sequential([keras.Input(shape=shape), *front, *resolved.layers],
                             name=_model_name(config.name))
    _check_output(config, data, model)
    model.compile(**resolved.compiled.kwargs(config))
    _check_loss(config, data, model)
    return model


def _model_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)


def _last_layer_path(config: Config, arg: str = "units") -> str:
    i = len(config.model.layers) - 1
    return f"model.layers[{i}].{spec_name(config.model.layers[i])}.{arg}"


def _check_output(config: Config, data: Data, model: Any) -> None:
    out = tuple(model.output_shape[1:])
    if config.is_classifier and data.classes is not None:
        n = len(data.classes)
        units = out[-1] if out else 1
        if (units > 1 and units != n) or (units == 1 and n > 2):
            raise ConfigError(Problem(
                _last_layer_path(config), f"{n} outputs, one per class "
                f"({', '.join(data.classes[:10])}{', ...' if n > 10 else ''})",
                f"{units}", f"Set the last layer's units to {n}."))
        if units == 1 and "binary" not in spec_name(config.compile.loss).lower() \
                and "hinge" not in spec_name(config.compile.loss).lower():
            raise ConfigError(Problem(
                "compile.loss", "binary_crossentropy for a model with one sigmoid output",
                f"'{spec_name(config.compile.loss)}'",
                "Use loss: binary_crossentropy, or 2 softmax units."))
    elif not config.is_classifier:
        want = tuple(data.y["train"].shape[1:])
        if out != want:
            raise ConfigError(Problem(
                _last_layer_path(config), f"an output of shape {list(want)} like the targets",
                f"{list(out)}", f"Set the last layer's units to {want[-1] if want else 1}."))


def _check_loss(config: Config, data: Data, model: Any) -> None:
    """Run the loss on two samples so a label/output mismatch fails now, not in fit."""
    x, y = data.x["train"][:2], data.y["train"][:2]
    try:
        model.compute_loss(x=x, y=y, y_pred=model(x), training=False)
    except Exception as exc:  # Keras raises ValueError, TF raises InvalidArgumentError
        loss = spec_name(config.compile.loss)
        hint = None
        if loss.lower().replace("_", "") == "categoricalcrossentropy" and y.ndim == 1:
            hint = "Set data.one_hot: true, or use loss: sparse_categorical_crossentropy."
        raise ConfigError(Problem(
            "compile.loss", f"labels of shape {list(y.shape[1:])} to fit loss '{loss}' and the "
            f"model's output {list(model.output_shape[1:])}",
            " ".join(str(exc).split())[:300], hint)) from None
