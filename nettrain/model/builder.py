"""The model builder: config + data -> a compiled ``keras.Sequential``.

Preprocessing from ``data:`` becomes the model's first layers (Flatten, Rescaling, an adapted
Normalization), so every saved format takes raw inputs.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from nettrain.config.fields import spec_kwargs, spec_name
from nettrain.config.schema import Config
from nettrain.config.textcols import text_columns
from nettrain.data import steps
from nettrain.data.columns import INPUT_DTYPES
from nettrain.data.dataset import Data
from nettrain.errors import ConfigError, Problem
from nettrain.config.applications import is_application
from nettrain.model import backbone
from nettrain.model import callbacks as callbacks_module
from nettrain.model import text
from nettrain.model.keras_names import (
    CALLBACKS,
    LAYERS,
    LOSSES,
    METRICS,
    OPTIMIZERS,
    Registry,
    ResolveError,
    keras_warnings,
    resolve,
)
from nettrain.model.outputs import (
    _check_accuracy,
    _check_loss,
    _check_output,
    _keras_text,
    _learning_rate,
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
        ``steps_per_execution: auto``, which the step planner decides: see
        :mod:`nettrain.data.steps`)."""
        c = config.compile
        return {"optimizer": self.optimizer, "loss": self.loss, "metrics": self.metrics,
                "weighted_metrics": self.weighted_metrics or None,
                "loss_weights": c.loss_weights, "run_eagerly": c.run_eagerly,
                "steps_per_execution": steps.steps_per_execution(config, samples),
                "jit_compile": c.jit_compile}


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
            if registry is LAYERS and is_application(spec_name(spec)):
                return backbone.resolve(spec, path)  # built once the input shape is known
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
        series = _series_units(data) if data.info.get("timeseries") else None
        front = [series[0]] if series else []
        front += _front(config, data, shape)
        model = _stack(config, shape, front, resolved.layers, _model_name(config.name))
        if series:
            model.add(series[1])
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


def _series_units(data: Data) -> tuple[Any, Any]:
    """data.timeseries: a first layer that standardises each input column on the training
    windows, and a last one that brings the output back to the series' units (the training
    labels' mean and variance), so every saved model takes and gives the series' values."""
    import keras

    inputs = keras.layers.Normalization(axis=-1, name="standardize_series")
    inputs.adapt(data.x["train"])  # the training part only
    units = keras.layers.Normalization(axis=-1, invert=True, name="series_units")
    units.adapt(data.y["train"])
    return inputs, units


def _table_model(config: Config, data: Data, resolved: Resolved) -> Any:
    """Named inputs: numbers (normalized if asked) and categories (one-hot), concatenated."""
    import keras

    cfg = config.data
    for key in ("scale", "flatten", "reshape"):
        if getattr(cfg, key):
            raise ConfigError(Problem(f"data.{key}", f"no {key} with categorical columns "
                                      "(normalize: true scales the numeric columns)",
                                      str(getattr(cfg, key))))
    inputs, numeric, encoded, sequences = {}, [], [], []
    names = data.input_names  # column -> a name every save format takes
    texts = text_columns(cfg.text)
    for column, kind in data.columns.items():
        name = names[column]
        inputs[name] = keras.Input(shape=(1,), name=name, dtype=INPUT_DTYPES[kind])
        if kind == "numeric":
            numeric.append(inputs[name])
            continue
        if kind == "text":  # adapted on the training split only
            layer = text.encoder(texts[column], data.train_inputs()[name], name)
            (sequences if texts[column].output_mode == "int" else encoded).append(
                text.encoded(texts[column], layer, inputs[name], name))
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
    if sequences and len(parts + sequences) > 1:
        others = [c for c in data.columns if c not in texts or texts[c].output_mode != "int"]
        raise ConfigError(Problem(
            "data.text", "output_mode: int (token ids for Embedding, LSTM, Conv1D) on the "
            "model's only input: a sequence of ids cannot be joined with other columns",
            f"{len(sequences)} such column{'s' if len(sequences) > 1 else ''} beside "
            f"{', '.join(map(repr, others)) or 'another'}",
            "Use output_mode multi_hot or tf_idf beside other columns, or give the text "
            "column alone (data.features: [])."))
    parts += sequences
    features = parts[0] if len(parts) == 1 else \
        keras.layers.Concatenate(name="features")(parts)
    if config.model.input_shape is not None:
        raise ConfigError(Problem("model.input_shape", "no input_shape with categorical "
                                  "columns (one input per column)",
                                  str(config.model.input_shape), "Remove model.input_shape."))
    body = _stack(config, tuple(features.shape[1:]), [], resolved.layers, "layers",
                  encoded=True, dtype=features.dtype if sequences else None)
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
           name: str, encoded: bool = False, dtype: Any = None) -> Any:
    """A Sequential of the preprocessing and the config's layers, added one by one so that a
    layer that cannot take its input is named with the shapes (``encoded``: on a table's
    encoded columns; ``dtype``: int64 for a text column's token ids)."""
    import keras

    model = keras.Sequential([keras.Input(shape=shape, dtype=dtype), *front], name=name)
    for i, layer in enumerate(layers):
        before = tuple(model.output_shape) if model.layers else (None, *shape)
        layer_name = spec_name(config.model.layers[i])
        if isinstance(layer, backbone.Backbone):
            layer = layer.make(before[1:], i)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                model.add(layer)
            except (ValueError, TypeError) as exc:
                expected, received, hint = _input_mismatch(exc, layer, before)
                raise config.error([Problem(
                    f"model.layers[{i}].{layer_name}", expected, received,
                    hint or _shape_hint(layer, before, i, encoded))]) from None
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


def _shape_hint(layer: Any, before: tuple, index: int, encoded: bool = False) -> str | None:
    """For a layer that wants more dimensions than a flat input has: how to reshape it
    (``encoded``: the input is a table's encoded columns, where data.reshape is refused)."""
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
    layer_spec = f"{{Reshape: {{target_shape: {shape}}}}}"
    if index == 0 and not encoded:
        return f"Give it {rank - 1} dimensions per sample, e.g. data.reshape: {shape}."
    if index == 0:  # data.reshape is refused with categorical columns: a layer reshapes
        return (f"Give it {rank - 1} dimensions per sample, e.g. a first layer {layer_spec} "
                f"(the encoded columns are one vector of {size} values).")
    return f"Give it {rank - 1} dimensions per sample, e.g. a Reshape layer before it: " \
        f"{layer_spec}."


def _numeric_columns(x: Any, names: list[str]) -> Any:
    """The numeric columns of named inputs side by side (an array, or a dataset of them)."""
    import keras

    def join(batch: Any) -> Any:
        return keras.ops.concatenate([keras.ops.cast(batch[c], "float32") for c in names], axis=1)

    return x.map(join) if hasattr(x, "map") else np.concatenate([x[c] for c in names], axis=1)


def _model_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
