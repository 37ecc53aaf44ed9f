"""The model builder: config + data -> a compiled ``keras.Sequential``.

Preprocessing from ``data:`` becomes the model's first layers (Flatten, Rescaling, an adapted
Normalization), so every saved format takes raw inputs.
"""

from __future__ import annotations

import inspect
import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from nettrain import callbacks as callbacks_module
from nettrain.config import Config, spec_kwargs, spec_name
from nettrain.data import INPUT_DTYPES, Data
from nettrain.errors import ConfigError, Problem, plain_tf_text
from nettrain.keras_objects import (
    CALLBACKS, LAYERS, LOSSES, METRICS, OPTIMIZERS, Registry, ResolveError, keras_warnings,
    resolve,
)


@dataclass
class Compiled:
    """The compile arguments, resolved to Keras objects (or names Keras resolves itself)."""

    optimizer: Any
    loss: Any
    metrics: list[Any]
    weighted_metrics: list[Any]

    def kwargs(self, config: Config, samples: int | None = None) -> dict[str, Any]:
        """``model.compile``'s arguments; ``samples``: the training samples (for
        ``steps_per_execution: auto``)."""
        c = config.compile
        return {"optimizer": self.optimizer, "loss": self.loss, "metrics": self.metrics,
                "weighted_metrics": self.weighted_metrics or None,
                "loss_weights": c.loss_weights, "run_eagerly": c.run_eagerly,
                "steps_per_execution": steps_per_execution(config, samples),
                "jit_compile": c.jit_compile}


# With ``steps_per_execution: auto``, one call of the compiled training step runs up to this
# many batches: Python, the callbacks' batch hooks and the progress display then run once per
# call instead of once per batch.
MAX_STEPS_PER_EXECUTION = 32


def steps_per_execution(config: Config, samples: int | None) -> int:
    """``compile.steps_per_execution``, with ``auto`` chosen from the batches of an epoch:
    the epoch split into equal calls of at most 32 batches (1 when the size is unknown, with
    ``run_eagerly`` and with ``distribute: mirrored``, which fails with more under Keras 3.15).

    Example: 60,000 samples in batches of 128 -> 469 batches -> 15 calls of 32 batches; 4
    samples in batches of 1 -> one call of 4.
    """
    value = config.compile.steps_per_execution
    if value != "auto":
        return value
    if config.compile.run_eagerly or config.distribute == "mirrored":
        return 1  # Keras runs several steps per call only in one graph on one device
    steps = config.fit.steps_per_epoch or (
        -(-samples // (config.fit.batch_size or 32)) if samples else 0)
    if not steps:
        return 1
    return -(-steps // -(-steps // MAX_STEPS_PER_EXECUTION))


@dataclass
class Resolved:
    """Every Keras object a config names, constructed (so bad names and arguments fail early)."""

    layers: list[Any]
    compiled: Compiled
    callbacks: list[Any]


class _Collector:
    """Resolves specs one by one, keeping every problem for one ConfigError at the end."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def __call__(self, spec: Any, registry: Registry, path: str) -> Any:
        try:
            return resolve(spec, registry, path)
        except ResolveError as exc:
            self.problems.extend(exc.problems)
            return None

    def check(self, config: Config) -> None:
        if self.problems:
            raise config.error(self.problems)


def resolve_all(config: Config) -> Resolved:
    """Construct every Keras object of the config; one ConfigError lists every problem."""
    collect = _Collector()
    inputs = _input_layers(config)
    collect.problems += inputs
    layers = [None if inputs else collect(s, LAYERS, f"model.layers[{i}]")
              for i, s in enumerate(config.model.layers)]
    compiled = _compiled(config, collect)
    collect.problems += _learning_rate(config)
    refused = callbacks_module.check(config)  # refused callbacks are never constructed
    collect.problems += refused
    callbacks = [None if refused else collect(s, CALLBACKS, f"fit.callbacks[{i}]")
                 for i, s in enumerate(config.fit.callbacks)]
    collect.check(config)
    return Resolved(layers, compiled, callbacks)


def _input_layers(config: Config) -> list[Problem]:
    """``Input``/``InputLayer`` in the layers: the model's input comes from the data."""
    problems = []
    for i, spec in enumerate(config.model.layers):
        name = spec_name(spec)
        if name not in ("Input", "InputLayer"):
            continue
        kwargs = spec_kwargs(spec)
        shape = next((kwargs[k] for k in ("shape", "input_shape") if k in kwargs), None)
        if shape is None and kwargs.get("batch_shape"):
            shape = list(kwargs["batch_shape"])[1:]
        problems.append(Problem(
            f"model.layers[{i}].{name}", "layers after the input: nettrain makes the input "
            "layer from the data (its shape is model.input_shape, or the data's)", name,
            f"Remove it, and write model.input_shape: {list(shape)}." if shape is not None
            else "Remove it; model.input_shape states the shape when the data does not."))
    return problems


def resolve_compiled(config: Config) -> Compiled:
    """Only the compile arguments (for evaluating a saved model)."""
    collect = _Collector()
    compiled = _compiled(config, collect)
    collect.check(config)
    return compiled


def _compiled(config: Config, collect: _Collector) -> Compiled:
    c = config.compile
    return Compiled(
        optimizer=collect(c.optimizer, OPTIMIZERS, "compile.optimizer"),
        loss=collect(c.loss, LOSSES, "compile.loss"),
        metrics=[collect(s, METRICS, f"compile.metrics[{i}]") for i, s in enumerate(c.metrics)],
        weighted_metrics=[collect(s, METRICS, f"compile.weighted_metrics[{i}]")
                          for i, s in enumerate(c.weighted_metrics)],
    )


def preprocess(x: Any, config: Config) -> Any:
    """What the Flatten, Reshape and Rescaling layers do (to adapt Normalization on).

    ``x`` is an array, or a tf.data.Dataset of input batches (a streamed CSV).
    """
    import keras

    cfg = config.data

    def apply(batch: Any) -> Any:
        if cfg.flatten:
            batch = keras.ops.reshape(batch, (-1, int(np.prod(batch.shape[1:]))))
        if cfg.reshape:
            batch = keras.ops.reshape(batch, (-1, *cfg.reshape))
        if cfg.scale:
            batch = batch / cfg.scale
        return batch

    return x.map(apply) if hasattr(x, "map") else apply(x)


def build_model(config: Config, data: Data, resolved: Resolved | None = None) -> Any:
    """Build and compile the model for ``data``; check that the two fit.

    The model is a ``keras.Sequential``: the preprocessing layers, then the config's layers.
    A CSV with categorical columns has named inputs, one per column; then the model is a
    functional ``keras.Model`` that encodes them (lookup layers with their vocabulary as an
    argument, so every save format keeps it) and feeds a Sequential of the config's layers.

    Example: ``build_model(cfg, load_data(cfg)).count_params()`` -> ``41`` for xor.yaml.
    """
    try:
        return _build_model(config, data, resolved or resolve_all(config))
    except ConfigError as exc:  # name the config file and the lines of the keys
        if exc.source is not None:
            raise
        raise config.error(exc.problems) from None


def _build_model(config: Config, data: Data, resolved: Resolved) -> Any:
    if data.columns:
        model = _table_model(config, data, resolved)
    else:
        shape = data.input_shape
        front = _front(config, data, shape)
        model = _stack(config, shape, front, resolved.layers, _model_name(config.name))
    _check_output(config, data, model)
    _check_accuracy(config, data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.compile(**resolved.compiled.kwargs(config, data.size("train")))
        logged = _check_loss(config, data, model)
    problems = keras_warnings(caught, "compile", config.compile.model_dump(exclude_unset=True))
    if problems:
        raise config.error(problems)
    validation = "validation" in data.splits
    problems += callbacks_module.check_monitors(config, resolved.callbacks, logged, validation)
    problems += callbacks_module.check_modes(config, resolved.callbacks, model, logged,
                                             validation)
    if problems:
        raise config.error(problems)
    return model


def _front(config: Config, data: Data, shape: tuple[int, ...]) -> list[Any]:
    """The preprocessing layers that data: asks for, Normalization adapted on train only."""
    import keras

    cfg = config.data
    now = (int(np.prod(shape)),) if cfg.flatten else shape
    if cfg.reshape:
        if int(np.prod(cfg.reshape)) != int(np.prod(now)):
            raise ConfigError(Problem(
                "data.reshape", f"a shape of {int(np.prod(now))} values, like one input "
                f"sample {list(now)}", f"{cfg.reshape} ({int(np.prod(cfg.reshape))} values)"))
        now = tuple(cfg.reshape)
    if config.model.input_shape is not None and tuple(config.model.input_shape) != now:
        raise ConfigError(Problem(
            "model.input_shape", f"the shape of one input sample, {list(now)}"
            + (" after data.flatten/reshape" if cfg.flatten or cfg.reshape else ""),
            f"{config.model.input_shape}",
            "Leave input_shape out to take it from the data, or set data.flatten or "
            "data.reshape."))
    front: list[Any] = []
    if cfg.flatten:
        front.append(keras.layers.Flatten(name="flatten_input"))
    if cfg.reshape:
        front.append(keras.layers.Reshape(tuple(cfg.reshape), name="reshape_input"))
    if cfg.scale:
        front.append(keras.layers.Rescaling(1.0 / cfg.scale, name="scale_input"))
    if cfg.normalize:
        norm = keras.layers.Normalization(name="normalize_input")
        norm.adapt(preprocess(data.train_inputs(), config))  # the training split only
        front.append(norm)
    return front


def _table_model(config: Config, data: Data, resolved: Resolved) -> Any:
    """Named inputs: numbers (normalized if asked) and categories (one-hot), concatenated."""
    import keras

    cfg = config.data
    for key in ("scale", "flatten", "reshape"):
        if getattr(cfg, key):
            raise ConfigError(Problem(f"data.{key}", f"no {key} with categorical columns "
                                      "(normalize: true scales the numeric columns)",
                                      str(getattr(cfg, key))))
    inputs, numeric, encoded = {}, [], []
    names = data.input_names  # column -> a name every save format takes
    for column, kind in data.columns.items():
        name = names[column]
        inputs[name] = keras.Input(shape=(1,), name=name, dtype=INPUT_DTYPES[kind])
        if kind == "numeric":
            numeric.append(inputs[name])
            continue
        vocabulary = data.vocabulary(column)  # the training split only
        lookup = keras.layers.IntegerLookup if kind == "integer" else keras.layers.StringLookup
        encoded.append(lookup(vocabulary=vocabulary, output_mode="one_hot",
                              oov_token=_oov_token(kind, vocabulary),
                              name=f"encode_{name}")(inputs[name]))
    parts = []
    if numeric:
        joined = numeric[0] if len(numeric) == 1 else \
            keras.layers.Concatenate(name="numeric_inputs")(numeric)
        if cfg.normalize:
            norm = keras.layers.Normalization(name="normalize_input")
            numbers = [names[c] for c, k in data.columns.items() if k == "numeric"]
            norm.adapt(_numeric_columns(data.train_inputs(), numbers))
            joined = norm(joined)
        parts.append(joined)
    parts += encoded
    features = parts[0] if len(parts) == 1 else \
        keras.layers.Concatenate(name="features")(parts)
    if config.model.input_shape is not None:
        raise ConfigError(Problem("model.input_shape", "no input_shape with categorical "
                                  "columns (one input per column)",
                                  str(config.model.input_shape), "Remove model.input_shape."))
    body = _stack(config, tuple(features.shape[1:]), [], resolved.layers, "layers")
    return keras.Model(inputs, body(features), name=_model_name(config.name))


def _oov_token(kind: str, vocabulary: list) -> Any:
    """An out-of-vocabulary token that is no category of the column: Keras's defaults (-1,
    '[UNK]') can be real values, and a category equal to the token merges with unseen ones."""
    if kind == "integer":
        return min([-1, *(int(v) - 1 for v in vocabulary)])
    token, taken = "[UNK]", set(vocabulary)
    while token in taken:
        token = f"[{token}]"
    return token


def _stack(config: Config, shape: tuple[int, ...], front: list[Any], layers: list[Any],
           name: str) -> Any:
    """A Sequential of the preprocessing and the config's layers, added one by one so that a
    layer that cannot take its input is named with the shapes."""
    import keras

    model = keras.Sequential([keras.Input(shape=shape), *front], name=name)
    for i, layer in enumerate(layers):
        before = tuple(model.output_shape) if model.layers else (None, *shape)
        layer_name = spec_name(config.model.layers[i])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                model.add(layer)
            except (ValueError, TypeError) as exc:
                expected, received, hint = _input_mismatch(exc, layer, before)
                raise config.error([Problem(
                    f"model.layers[{i}].{layer_name}", expected, received,
                    hint or _shape_hint(layer, before, i))]) from None
        problems = keras_warnings(caught, f"model.layers[{i}].{layer_name}")
        if problems:
            raise config.error(problems)
    return model


def _input_mismatch(exc: Exception, layer: Any, before: tuple) -> tuple[str, str, str | None]:
    """Expected, received and a hint for a layer that cannot take its input, in the config's
    terms (Keras says "expected min_ndim=4, found ndim=2" or "Computed output size would be
    zero or negative")."""
    text = _keras_text(exc)
    name, shape = type(layer).__name__, before[1:]
    rank = re.search(r"expected (min_|max_)?ndim=(\d+), found ndim=(\d+)", text)
    if rank:
        bound = {"min_": "at least ", "max_": "at most "}.get(rank.group(1) or "", "")
        want = int(rank.group(2)) - 1
        return (f"inputs with {bound}{want} dimension{'s' if want != 1 else ''} per sample "
                f"({name} works on them)", f"the output of the layers before it, of shape "
                f"{list(before)} ({len(shape)} dimension{'s' if len(shape) != 1 else ''} per "
                "sample)",
                None)
    if "output size would be zero or negative" in text:
        kernel = getattr(layer, "kernel_size", getattr(layer, "pool_size", None))
        return (f"inputs at least as large as its kernel_size "
                f"{list(kernel) if kernel is not None else ''}".rstrip(),
                f"the output of the layers before it, of shape {list(before)} (its output "
                "would be empty)", "Use a smaller kernel_size (or pool_size), or padding: same.")
    return (f"a layer that takes the output before it, of shape {list(before)}", text, None)


def _keras_text(exc: Exception) -> str:
    """A Keras error as one plain line: no colour codes, no dump of the call's arguments."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split("Arguments received by")[0]
    text = plain_tf_text(text)
    return text if len(text) <= 300 else text[:297] + "..."


def _shape_hint(layer: Any, before: tuple, index: int) -> str | None:
    """For a layer that wants more dimensions than a flat input has: how to reshape it."""
    spec = layer.input_spec[0] if isinstance(layer.input_spec, list) else layer.input_spec
    rank = getattr(spec, "ndim", None) or getattr(spec, "min_ndim", None)
    if rank is None or len(before) != 2 or rank <= 2:
        return None
    size = before[1]
    if rank == 3:
        shape = [size, 1]
    else:
        side = int(round(size ** 0.5))
        shape = [side, side, 1] if side * side == size else [size, 1, 1]
        shape += [1] * (rank - 4)
    where = "data.reshape" if index == 0 else "a Reshape layer before it"
    return f"Give it {rank - 1} dimensions per sample, e.g. {where}: {shape}."


def _numeric_columns(x: Any, names: list[str]) -> Any:
    """The numeric columns of named inputs side by side (an array, or a dataset of them)."""
    import keras

    def join(batch: Any) -> Any:
        return keras.ops.concatenate([keras.ops.cast(batch[c], "float32") for c in names], axis=1)

    return x.map(join) if hasattr(x, "map") else np.concatenate([x[c] for c in names], axis=1)


def _model_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)


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
    inner = model
    while getattr(inner.layers[-1], "layers", None):
        inner = inner.layers[-1]  # the Sequential of the config's layers inside a table model
    built = inner.layers[-len(config.model.layers):]
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
    from nettrain.pipeline import to_tensors

    x, y = data.sample(2)
    y_pred = model(to_tensors(x))
    try:
        model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
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
        logged = list(model.compute_metrics(x, y, y_pred, sample_weight=None))
    except Exception as exc:  # a metric that cannot take these labels or outputs
        raise ConfigError(Problem(
            "compile.metrics", f"metrics that take labels of shape {list(y.shape[1:])} and the "
            f"model's output {list(model.output_shape[1:])}", _keras_text(exc))) from None
    model.reset_metrics()  # fit starts from clean metric states
    return logged
