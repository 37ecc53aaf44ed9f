"""Checks that the model's last layer, loss, metrics and learning rate fit the data and each
other, with a suggestion for each mismatch.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import numpy as np

from nettrain.config.fields import spec_kwargs, spec_name
from nettrain.config.schema import Config
from nettrain.data.dataset import Data
from nettrain.errors import ConfigError, Problem, plain_tf_text


def _last_layer_path(config: Config, arg: str = "units") -> str:
    i = len(config.model.layers) - 1
    return f"model.layers[{i}].{spec_name(config.model.layers[i])}.{arg}"


def _check_output(config: Config, data: Data, model: Any) -> None:
    out = tuple(model.output_shape[1:])
    if config.is_classifier and data.classes is not None:
        n = len(data.classes)
        loss = spec_name(config.compile.loss)
        _check_classes(config, data)
        if n > 20 and n > data.size("train") / 10:
            raise ConfigError(Problem(
                "compile.loss", f"a regression loss: the target has {n} different values in "
                f"{data.size('train')} training samples, too many to be classes",
                f"'{loss}', a classification loss", "The target looks like a number to "
                "predict. Use loss: mse with one output (a last layer with units: 1 and no "
                "activation)."))
        if len(out) > 1:
            raise ConfigError(_output_rank(config, out, f"[{n}], one value per class"))
        if n > 2 and "binary" in loss.lower():
            raise ConfigError(Problem(
                "compile.loss", "a loss for more than two classes", f"'{loss}' for {n} classes",
                f"Use sparse_categorical_crossentropy with {n} softmax units."))
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
        _check_probabilities(config, model)
    elif not config.is_classifier:
        want = data.label_shape
        if len(out) > max(len(want), 1):
            raise ConfigError(_output_rank(config, out, f"{list(want) or [1]} like the targets"))
        if out != want:
            raise ConfigError(Problem(
                _last_layer_path(config), f"an output of shape {list(want)} like the targets",
                f"{list(out)}", f"Set the last layer's units to {want[-1] if want else 1}."))


def _check_classes(config: Config, data: Data) -> None:
    """A classifier tells at least two classes apart."""
    classes = data.classes or []
    if len(classes) >= 2:
        return
    cfg = config.data
    if cfg.source == "images":
        raise ConfigError(Problem(
            "data.images", "a folder with at least two classes (one sub-folder each)",
            "one class: " + ", ".join(f"'{cfg.images.rstrip('/')}/{c}'" for c in classes),
            "Add a folder of images for each other class to tell apart."))
    key = "data.target" if cfg.source == "csv" else f"data.{cfg.source}"
    raise ConfigError(Problem(
        key, "labels of at least two classes", f"one class: {', '.join(classes) or 'none'}",
        "A classifier needs examples of two classes or more; for a number to predict use "
        "loss: mse."))


def _output_rank(config: Config, out: tuple, want: str) -> Problem:
    """The last layer's outputs have more dimensions than one value per target."""
    i = len(config.model.layers) - 1
    return Problem(
        f"model.layers[{i}].{spec_name(config.model.layers[i])}",
        f"outputs of shape {want} per sample", f"outputs of shape {list(out)} (the layer "
        f"works on the last axis of an input of shape {list(out[:-1])} + features)",
        "Add a Flatten layer before it (or GlobalAveragePooling1D/2D), so that it sees one "
        "vector per sample.")


# Layers that pass their input's values on unchanged (at inference): the activation that
# decides the outputs is the one before them.
_SAME_VALUES = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                "Flatten", "Reshape", "Permute", "Identity", "ActivityRegularization"}
# Layers that are an activation function.
_ACTIVATION_LAYERS = ("Softmax", "ReLU", "ELU", "LeakyReLU", "PReLU")
# What each cross-entropy takes: a probability per output.
_PROBABILITIES = {"sigmoid": "a probability per unit", "hard_sigmoid": "a probability per unit",
                  "softmax": "probabilities that sum to 1"}


def _check_probabilities(config: Config, model: Any) -> None:
    """A cross-entropy loss takes probabilities: the activation that decides the outputs (the
    last layer's, or a final Activation/Softmax layer's) must be sigmoid for a binary loss and
    softmax for a categorical one, unless the loss says ``from_logits: true``."""
    loss = spec_name(config.compile.loss)
    if "crossentropy" not in loss.lower() or spec_kwargs(config.compile.loss).get("from_logits"):
        return
    want = ("sigmoid", "hard_sigmoid") if "binary" in loss.lower() else ("softmax",)
    i, layer, activation = _output_activation(config, model)
    if activation in want:
        return
    name = spec_name(config.model.layers[i])
    has_argument = "activation" in inspect.signature(type(layer).__init__).parameters
    key = f"model.layers[{i}].{name}" + (".activation" if has_argument else "")
    received = "no activation (linear outputs)" if activation in (None, "linear") else \
        f"'{activation}', which does not give probabilities"
    if activation == "softmax":
        received = "'softmax' on one unit, which is always 1"
    logits = (f", or write the loss as {{{_class_name(loss)}: {{from_logits: true}}}}"
              if activation in (None, "linear") else "")
    raise ConfigError(Problem(
        key, f"{want[0]}: loss '{loss}' takes probabilities ({_PROBABILITIES[want[0]]})",
        received, f"Set activation: {want[0]}{logits}." if has_argument else
        f"{'Replace it with' if name in _ACTIVATION_LAYERS else 'Add a last layer'} - "
        f"Activation: {{activation: {want[0]}}}{logits}."))


def _output_activation(config: Config, model: Any) -> tuple[int, Any, str | None]:
    """The layer whose activation decides the model's outputs, its index in ``model.layers``
    of the config, and the activation's name (None: a layer without one, such as
    BatchNormalization)."""
    return output_activation(model, len(config.model.layers))


def saved_classifier(model: Any) -> bool | None:
    """Whether a model saved on its own (no run directory says) is a classifier, from the
    activation that decides its outputs: softmax, or a sigmoid on one unit (a binary
    classifier's probability), is one; None where its layers do not say (a SavedModel)."""
    try:
        _, _, activation = output_activation(model)
        units = int(np.prod(model.output_shape[1:]))
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    if activation is None:
        return None
    return (activation == "softmax" and units > 1) or \
        (activation in ("sigmoid", "hard_sigmoid") and units == 1)


def output_activation(model: Any, layers: int | None = None) -> tuple[int, Any, str | None]:
    """The layer whose activation decides the model's outputs among its last ``layers``
    (default: all), its index among them, and the activation's name (None: a layer without
    one)."""
    inner = model
    while getattr(inner.layers[-1], "layers", None):
        inner = inner.layers[-1]  # the Sequential of the config's layers inside a table model
    built = inner.layers[-layers:] if layers else inner.layers
    i = len(built) - 1
    while i > 0 and type(built[i]).__name__ in _SAME_VALUES:
        i -= 1
    layer = built[i]
    kind = type(layer).__name__
    if kind in _ACTIVATION_LAYERS:
        return i, layer, kind.lower()
    activation = getattr(layer, "activation", None)
    if activation is None:
        return i, layer, None
    return i, layer, getattr(activation, "__name__", type(activation).__name__.lower())


def _class_name(loss: str) -> str:
    return "".join(part.capitalize() for part in loss.split("_")) if loss.islower() else loss


def _learning_rate(config: Config) -> list[Problem]:
    """A learning rate of 0 or below trains nothing or climbs the loss, with exit 0."""
    rate = spec_kwargs(config.compile.optimizer).get("learning_rate")
    if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate <= 0:
        return [Problem(f"compile.optimizer.{spec_name(config.compile.optimizer)}.learning_rate",
                        "a learning rate above 0", f"{rate}",
                        "A rate of 0 learns nothing and a negative one climbs the loss: "
                        "e.g. learning_rate: 0.001.")]
    return []


def _check_accuracy(config: Config, data: Data) -> None:
    """An accuracy metric on a regression target counts exact matches of numbers, so it
    reports about 0 with exit 0; it means something only for labels 0 and 1 (a sigmoid
    output trained with mse, say)."""
    if config.is_classifier:
        return
    specs = [(f"compile.{key}[{i}]", spec) for key in ("metrics", "weighted_metrics")
             for i, spec in enumerate(getattr(config.compile, key))]
    named = [(path, spec_name(spec)) for path, spec in specs
             if "accuracy" in spec_name(spec).lower() or spec_name(spec).lower() == "acc"]
    if not named:
        return
    labels = np.asarray(data.sample(1000)[1]).reshape(-1)
    other = labels[(labels != 0) & (labels != 1)]
    if len(other):
        raise config.error([Problem(
            path, "a metric for a regression target (the loss "
            f"'{spec_name(config.compile.loss)}' makes this a regression)",
            f"'{name}' on targets such as {float(other[0]):g} (accuracy counts exact matches "
            "of class labels, so it would report about 0)",
            "Use mae or mse as the metric, or a classification loss "
            "(sparse_categorical_crossentropy) for class labels.") for path, name in named])


def _check_loss(config: Config, data: Data, model: Any) -> list[str]:
    """Run the loss and metrics on two samples so a label/output mismatch fails now, not in
    fit; return the names Keras logs for them (``['loss', 'accuracy']``)."""
    import keras

    from nettrain.data.pipeline import to_tensors

    x, y = data.sample(2)
    run = _traced if keras.backend.backend() == "jax" else _called
    y_pred = run(model, to_tensors(x))
    try:
        run(model.compute_loss, x=x, y=y, y_pred=y_pred, training=False)
    except Exception as exc:  # Keras raises ValueError, TF raises InvalidArgumentError
        loss = spec_name(config.compile.loss)
        hint = None
        if loss.lower().replace("_", "") == "categoricalcrossentropy" and y.ndim == 1:
            hint = "Set data.one_hot: true, or use loss: sparse_categorical_crossentropy."
        elif loss.lower().replace("_", "").startswith("sparse") and y.ndim == 2:
            hint = "Remove data.one_hot: true, or use loss: categorical_crossentropy."
        elif "binary" in loss.lower() and model.output_shape[-1] == 2:
            hint = ("Use one sigmoid unit with binary_crossentropy, or 2 softmax units with "
                    "sparse_categorical_crossentropy.")
        raise ConfigError(Problem(
            "compile.loss", f"a loss that takes the labels and the model's output of shape "
            f"{list(model.output_shape[1:])}", f"'{loss}' with labels of shape "
            f"{list(y.shape[1:])}" + ("" if hint else f" (Keras says: {_keras_text(exc)})"),
            hint)) from None
    try:
        logged = list(run(model.compute_metrics, x, y, y_pred, sample_weight=None))
    except Exception as exc:  # a metric that cannot take these labels or outputs
        raise ConfigError(Problem(
            "compile.metrics", f"metrics that take labels of shape {list(y.shape[1:])} and the "
            f"model's output {list(model.output_shape[1:])}", _keras_text(exc))) from None
    model.reset_metrics()  # fit starts from clean metric states
    return logged


def _called(function: Any, *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


def _traced(function: Any, *args: Any, **kwargs: Any) -> Any:
    """``function`` traced on the arguments' shapes, not run, as Keras builds a model for fit
    (``backend.compute_output_spec``): the same errors at the same ops, and on JAX no XLA
    compile of each op run eagerly (about 30 programs, 1 CPU second of a cold run)."""
    import keras
    from keras.src import backend

    def symbolic(v: Any) -> Any:
        return keras.KerasTensor(v.shape, backend.standardize_dtype(v.dtype)) \
            if hasattr(v, "shape") and hasattr(v, "dtype") else v

    return backend.compute_output_spec(
        function, *keras.tree.map_structure(symbolic, args),
        **keras.tree.map_structure(symbolic, kwargs))


def _keras_text(exc: Exception) -> str:
    """A Keras error as one plain line: no colour codes, no dump of the call's arguments."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split("Arguments received by")[0]
    text = plain_tf_text(text)
    return text if len(text) <= 300 else text[:297] + "..."
