"""The config: schema, loading, command-line overrides. No TensorFlow here.

A config file is parsed once with a bounded ``yaml.SafeLoader`` (:func:`read_yaml`), overrides
(``fit.epochs=5``) are applied to the raw mapping, and the result is validated once into a
frozen, strict :class:`Config`. Every later step takes that object, never a raw dict. Keras
names are checked later, in :mod:`nettrain.keras_objects`, because that needs Keras; when the
schema refuses a config, its ConfigError carries a :class:`Draft` so :mod:`nettrain.checks` can
still check the Keras names of what parsed.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    PrivateAttr,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from nettrain.errors import ConfigError, Problem, did_you_mean

# Built-in datasets that ship with the install (through scikit-learn, or made here).
BUILTIN_DATASETS = ("xor", "iris", "digits", "breast_cancer", "wine", "diabetes")
# Keras's downloadable datasets, loaded through ``keras.datasets`` and its cache.
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100", "boston_housing", "imdb",
                  "reuters")
SOURCES = ("dataset", "csv", "npz", "images", "synthetic")


def refuse(expected: str, received: Any = None, hint: str | None = None,
           field: str | None = None) -> PydanticCustomError:
    """The error a validator raises: what was expected, what was received, a suggestion.

    The parts travel in the error's context and are read back by :func:`_problem`; pydantic's
    message template is only ``{expected}``, so braces in the text (``{SGD: {...}}``) and in
    the user's values are never read as placeholders. ``field`` names a key below the one
    validated (a model validator's errors are reported at the model itself); ``received`` is
    shown as written (give a repr for a value).
    """
    ctx = {"received": received, "hint": hint, "field": field}
    ctx = {key: value for key, value in ctx.items() if value is not None}
    return PydanticCustomError("nettrain", "{expected}", {**ctx, "expected": expected})


def refuse_all(errors: list[PydanticCustomError]) -> PydanticCustomError:
    """One error standing for several :func:`refuse` errors: a validator that checks several
    keys reports every problem it finds (pydantic takes one error from a validator)."""
    if len(errors) == 1:
        return errors[0]
    return PydanticCustomError("nettrain_all", "{expected}", {
        "problems": [e.context for e in errors], "expected": f"{len(errors)} problems"})


def argument_example(path: tuple, name: str, value: Any, argument: str = "argument") -> str:
    """How to write a Keras object's argument, as YAML at ``path``: ``- Dropout: {rate: 0.2}``.

    ``path`` ends with the object's name; the line starts with ``- `` in a list, else the key.
    """
    start = "- " if len(path) > 1 and isinstance(path[-2], int) else \
        f"{path[-2]}: " if len(path) > 1 else ""
    arguments = f"{{{argument}: {json.dumps(value, default=str)}}}"
    return f"{start}{name}: {arguments}" if start.startswith("-") else \
        f"{start}{{{name}: {arguments}}}"


def _non_finite(value: Any,
                path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], float]]:
    """Where ``value`` (nested mappings and lists) holds ``.nan`` or ``.inf``: no Keras
    argument means them, and they would train silently to NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite(item, (*path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _non_finite(item, (*path, str(i)))


def normalize_spec(value: Any) -> Any:
    """A Keras object is a bare name or a one-key mapping from the name to its arguments.

    Returns the name, or ``{name: {arguments}}`` with ``None`` arguments made ``{}``; raises
    the schema's error otherwise. Example: ``normalize_spec({'Flatten': None})`` ->
    ``{'Flatten': {}}``.
    """
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, dict) and len(value) == 1:
        (name, kwargs), = value.items()
        if isinstance(name, str) and (kwargs is None or isinstance(kwargs, dict)):
            for where, number in _non_finite(kwargs or {}):
                raise refuse("a finite number", repr(number), field=".".join((name, *where)))
            return {name: dict(kwargs or {})}
        if isinstance(name, str):
            raise PydanticCustomError("keras_arguments", "{expected}", {
                "field": name, "name": name, "value": kwargs,
                "expected": f"the arguments of {name} as a mapping of argument names to values"})
    if isinstance(value, dict) and len(value) > 1:
        raise refuse(f"one Keras name per list item (a one-key mapping); this mapping has "
                     f"{len(value)} keys: {', '.join(map(str, value))}",
                     hint="Start each object on its own '- ' line")
    raise refuse("a Keras name such as 'adam' or a one-key mapping such as "
                 "{SGD: {learning_rate: 0.1}}", short_repr(value))



KerasSpec = Annotated[Any, BeforeValidator(normalize_spec)]


def spec_name(spec: str | dict[str, Any]) -> str:
    """The Keras name of a spec: ``'adam'`` -> ``'adam'``, ``{SGD: {...}}`` -> ``'SGD'``."""
    return spec if isinstance(spec, str) else next(iter(spec))


def spec_kwargs(spec: str | dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a spec (empty for a bare name)."""
    return {} if isinstance(spec, str) else dict(next(iter(spec.values())) or {})


class _Section(BaseModel):
    # Strict: a value has the type it says (``epochs: true`` is not 1, ``batch_size: 1e20`` is
    # not a whole number, ``shuffle: 1`` is not true); floats are finite.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# What Keras, TensorFlow and numpy accept: sizes and counts are int32, a seed is uint32.
INT32_MAX = 2**31 - 1
Count = Annotated[int, Field(gt=0, le=INT32_MAX)]
Index = Annotated[int, Field(ge=0, le=INT32_MAX)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
ImageSide = Annotated[int, Field(gt=0, le=16_384)]
# Synthetic data is made in memory: n_samples x n_features float64 values at most.
MAX_SYNTHETIC_VALUES = 100_000_000


class SyntheticConfig(_Section):
    """``data.synthetic``: random data made with the run's seed (scikit-learn's generators)."""

    n_samples: Count = 100
    n_features: Count = 10
    n_classes: int = Field(2, ge=2, le=INT32_MAX)  # classifiers (the loss decides)
    n_outputs: Count = 1                           # regression
    noise: float = Field(0.1, ge=0)
    random: bool = False  # plain uniform X and y, like the tutorial's rand(100, 10)

    @model_validator(mode="after")
    def _fits_in_memory(self) -> SyntheticConfig:
        if self.n_samples * max(self.n_features, self.n_outputs) > MAX_SYNTHETIC_VALUES:
            raise refuse(f"n_samples x n_features at most {MAX_SYNTHETIC_VALUES:,} (the data is "
                         "made in memory)", f"{self.n_samples:,} x {self.n_features:,}",
                         field="n_samples")
        return self


def _check_target(value: Any) -> Any:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise refuse("a column name, or a list of column names", short_repr(value))


def _bool_or_auto(value: Any) -> Any:
    if isinstance(value, bool) or value == "auto":
        return value
    raise refuse("true, false or 'auto'", short_repr(value))


# Keys that only mean something with some sources: key -> the sources it goes with.
_SOURCE_KEYS = {"target": ("csv",), "features": ("csv",), "categorical": ("csv",),
                "sample_weight": ("csv",), "image_size": ("images",),
                "color_mode": ("images",), "num_words": ("dataset",), "maxlen": ("dataset",),
                "validation": ("csv", "npz", "images"), "test": ("csv", "npz", "images")}


class DataConfig(_Section):
    """``data:``: exactly one source, then the splits and the preprocessing."""

    dataset: str | None = None
    csv: str | None = None
    npz: str | None = None
    images: str | None = None
    synthetic: SyntheticConfig | None = None
    # csv
    target: Annotated[Any, BeforeValidator(_check_target)] = None
    features: list[str] | None = None
    categorical: list[str] | None = None
    sample_weight: str | None = None
    missing: Literal["error", "drop", "zero"] = "error"
    delimiter: str = ","
    stream: Annotated[Any, BeforeValidator(_bool_or_auto)] = "auto"
    # images
    image_size: list[ImageSide] | None = Field(None, min_length=2, max_length=2)
    color_mode: Literal["rgb", "grayscale", "rgba"] | None = None
    # imdb, reuters
    num_words: Count | None = None
    maxlen: Count | None = None
    # splits
    validation: str | None = None
    test: str | None = None
    validation_split: float = Field(0.0, ge=0.0, lt=1.0)
    test_split: float = Field(0.0, ge=0.0, lt=1.0)
    stratify: bool = False
    # preprocessing, inside the model
    scale: float | None = Field(None, gt=0)
    normalize: bool = False
    flatten: bool = False
    reshape: list[Count] | None = None
    one_hot: bool = False

    @property
    def source(self) -> str:
        return next(s for s in SOURCES if getattr(self, s) is not None)

    @property
    def path(self) -> str | None:
        """The source file or folder (None for a named dataset or synthetic data)."""
        return getattr(self, self.source) if self.source in ("csv", "npz", "images") else None

    @property
    def targets(self) -> list[str]:
        """The target column(s) of a CSV, as a list."""
        if self.target is None:
            return []
        return [self.target] if isinstance(self.target, str) else list(self.target)

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        problems = list(self._problems())
        if problems:
            raise refuse_all(problems)
        return self

    def _problems(self) -> Iterator[PydanticCustomError]:
        """Every way the keys of this section do not go together."""
        given = [s for s in SOURCES if getattr(self, s) is not None]
        if len(given) != 1:
            yield refuse(f"exactly one data source ({', '.join(SOURCES)})",
                         ", ".join(given) if given else "none",
                         field=given[1] if len(given) > 1 else "dataset")
        known = BUILTIN_DATASETS + KERAS_DATASETS
        if self.dataset is not None and self.dataset not in known:
            close = did_you_mean(self.dataset, known)
            yield refuse(f"one of {', '.join(known)}", f"'{self.dataset}'",
                         f"Did you mean '{close}'?" if close else None, field="dataset")
        if self.csv is not None and self.target is None:
            yield refuse("the name of the target column (required with csv)", field="target")
        if len(given) == 1:
            for key, sources in _SOURCE_KEYS.items():
                if getattr(self, key) is not None and self.source not in sources:
                    yield refuse(f"{key} only with the source {' or '.join(sources)}",
                                 f"source '{self.source}'", field=key)
        if (self.num_words or self.maxlen) and self.dataset not in ("imdb", "reuters"):
            yield refuse("num_words and maxlen only with dataset imdb or reuters",
                         field="num_words" if self.num_words else "maxlen")
        for explicit in ("validation", "test"):
            if getattr(self, explicit) is not None and getattr(self, f"{explicit}_split"):
                yield refuse(f"either {explicit} (a file) or {explicit}_split (a fraction), "
                             "not both", field=f"{explicit}_split")
        if self.validation_split + self.test_split >= 1.0:
            yield refuse("validation_split + test_split below 1",
                         f"{self.validation_split + self.test_split}", field="test_split")


class ModelConfig(_Section):
    """``model:``: the layers of a ``keras.Sequential``, each written by the one rule."""

    input_shape: list[Count] | None = None
    layers: list[KerasSpec] = Field(min_length=1)


class CompileConfig(_Section):
    """``compile:``: the arguments of ``keras.Model.compile``."""

    optimizer: KerasSpec = "rmsprop"
    loss: KerasSpec
    metrics: list[KerasSpec] = []
    weighted_metrics: list[KerasSpec] = []
    loss_weights: list[float] | None = None
    run_eagerly: bool = False
    # auto: as many batches per call of the compiled step as fit in about 32 (see
    # :func:`steps_per_execution`); a number is passed to Keras as it is.
    steps_per_execution: Annotated[Any, BeforeValidator(_count_or_auto)] = "auto"
    jit_compile: Annotated[Any, BeforeValidator(_bool_or_auto)] = "auto"


def _count_or_auto(value: Any) -> Any:
    if value == "auto" or (type(value) is int and 0 < value <= INT32_MAX):
        return value
    raise refuse("a whole number of at least 1, or 'auto'", short_repr(value))


def _check_verbose(value: Any) -> Any:
    if value == "auto" or (type(value) is int and value in (0, 1, 2)):
        return value
    raise refuse("0, 1, 2 or 'auto'", short_repr(value))


def _check_class_weight(value: Any) -> Any:
    if value is None or value == "balanced":
        return value
    if isinstance(value, dict) and value and all(
            type(k) is int and 0 <= k <= INT32_MAX for k in value) and all(
            type(v) in (int, float) and 0 <= v < math.inf for v in value.values()):
        return {k: float(v) for k, v in value.items()}
    raise refuse("'balanced' or a mapping from class index to a finite weight such as "
                 "{0: 1.0, 1: 5.0}", short_repr(value))


class FitConfig(_Section):
    """``fit:``: the arguments of ``keras.Model.fit`` (the data comes from ``data:``)."""

    epochs: Count = 1
    batch_size: Count | None = None
    verbose: Annotated[Any, BeforeValidator(_check_verbose)] = "auto"
    callbacks: list[KerasSpec] = []
    shuffle: bool = True
    class_weight: Annotated[Any, BeforeValidator(_check_class_weight)] = None
    initial_epoch: Index = 0
    steps_per_epoch: Count | None = None
    validation_steps: Count | None = None
    validation_batch_size: Count | None = None
    validation_freq: Count = 1
    # nettrain's own (not an argument of model.fit): write checkpoints/last.keras at the end
    # of an epoch when at least this many seconds passed since the last write (0: after every
    # epoch); always when training ends, stops (a callback, a NaN, Ctrl-C, SIGTERM) or fails.
    checkpoint_every_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 30.0


class SaveConfig(_Section):
    """``save:``: the formats written into the run directory."""

    formats: list[Literal["json", "keras", "savedmodel"]] = Field(["keras"], min_length=1)

    @field_validator("formats")
    @classmethod
    def _unique(cls, formats: list[str]) -> list[str]:
        if len(set(formats)) != len(formats):
            raise refuse("each format once", short_repr(formats))
        return formats


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

# Keras dtype policies a run may train under (``keras.mixed_precision.set_global_policy``).
PRECISION_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def _check_distribute(value: Any) -> Any:
    if value is None or value == "mirrored":
        return value
    if value == "multi_worker":
        raise refuse("'mirrored' (all local GPUs); 'multi_worker' is refused: "
                     "MultiWorkerMirroredStrategy fails inside Keras 3's fit "
                     "(keras-team/keras#20585), so nettrain does not offer it half-working",
                     "'multi_worker'", "Use distribute: mirrored on one machine")
    raise refuse("'mirrored' (all local GPUs) or nothing", short_repr(value))


def is_classification_loss(loss: str | dict[str, Any]) -> bool:
    """Whether a loss spec names a classification loss (cross-entropy or hinge)."""
    name = spec_name(loss).lower()
    return "crossentropy" in name or "hinge" in name


# How a sweep draws each value: a list is a choice; a range is one of these, with [low, high].
RANGES = ("uniform", "log_uniform", "int_uniform")


def _check_param(value: Any) -> Any:
    """One entry of ``sweep.params``: a non-empty list (a choice), or ``{uniform: [a, b]}``,
    ``{log_uniform: [a, b]}``, ``{int_uniform: [a, b]}``, each with an optional ``step``.

    Returns the list, or ``{kind: [low, high], 'step': step}`` (step None when not given).
    """
    example = "a list of choices such as [32, 64], or a range such as {uniform: [0.0, 0.5]}"
    if isinstance(value, list):
        if not value:
            raise refuse(example, "[] (no choices)")
        for where, number in _non_finite(value):
            raise refuse("finite numbers", repr(number))
        return value
    if not isinstance(value, dict):
        raise refuse(example, short_repr(value))
    kinds = [k for k in value if k in RANGES]
    unknown = [k for k in value if k not in (*RANGES, "step")]
    if unknown or len(kinds) != 1:
        key = str(unknown[0]) if unknown else None
        close = did_you_mean(key, (*RANGES, "step")) if key else None
        raise refuse(f"one of {', '.join(RANGES)} (and an optional step)",
                     f"'{key}'" if key else short_repr(value),
                     f"Did you mean '{close}'?" if close else None, field=key)
    kind, = kinds
    bounds, step = value[kind], value.get("step")
    number = int if kind == "int_uniform" else (int, float)
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(
            isinstance(b, number) and not isinstance(b, bool) and math.isfinite(b)
            for b in bounds)):
        what = "whole numbers" if kind == "int_uniform" else "finite numbers"
        raise refuse(f"[low, high], two {what}", short_repr(bounds), field=kind)
    low, high = bounds
    if not low < high:
        raise refuse("low below high", short_repr(bounds), field=kind)
    if kind == "log_uniform" and low <= 0:
        raise refuse("a low above 0 (log_uniform draws on a log scale)", short_repr(bounds),
                     "Use uniform for a range from 0", field=kind)
    if step is not None:
        if not (isinstance(step, number) and not isinstance(step, bool) and 0 < step < math.inf):
            raise refuse("a step above 0" + (", a whole number" if number is int else ""),
                         short_repr(step), field="step")
        if kind == "log_uniform":
            raise refuse("no step with log_uniform (Optuna cannot step on a log scale)",
                         short_repr(step), "Use a list of values instead", field="step")
    return {kind: [low, high], "step": step}


class SweepConfig(_Section):
    """``sweep:``: what ``nettrain sweep`` searches; ``fit`` ignores it, ``validate`` checks it.

    Each key of ``params`` is a dotted override of the config (``fit.batch_size``,
    ``model.layers.0.Dense.units``) and each value how to draw it (see :func:`_check_param`).
    ``metric`` is a name of ``history.csv`` (``val_accuracy``) or a test metric
    (``test_accuracy``); by default ``val_loss`` (``loss`` without a validation part).
    ``direction: auto`` asks Keras which way the metric improves, as EarlyStopping does.
    """

    metric: str | None = Field(None, min_length=1)
    direction: Literal["auto", "maximize", "minimize"] = "auto"
    trials: Count = 20
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    pruner: Literal["none", "median", "hyperband"] = "median"
    params: dict[str, Annotated[Any, BeforeValidator(_check_param)]] = Field(min_length=1)


class Config(_Section):
    """A whole, validated config. Frozen: nothing changes it after loading."""

    name: str = Field(pattern=NAME_PATTERN)
    seed: Seed | None = None
    deterministic: bool = False  # TensorFlow op determinism (turns XLA off)
    distribute: Annotated[Any, BeforeValidator(_check_distribute)] = None
    mixed_precision: Literal[PRECISION_POLICIES] = "float32"  # type: ignore[valid-type]
    data: DataConfig
    model: ModelConfig
    compile: CompileConfig
    fit: FitConfig = FitConfig()
    save: SaveConfig = SaveConfig()
    sweep: SweepConfig | None = None  # nettrain sweep's search; fit ignores it
    # Where the config came from, for messages: the file, each key's line, the overrides.
    _source: str | None = PrivateAttr(None)
    _lines: dict[tuple, int] = PrivateAttr(default_factory=dict)
    _overridden: set[tuple] = PrivateAttr(default_factory=set)

    # Keys of two sections that must go together are checked on the later section, with the
    # earlier ones that validated (``info.data``), so a mistake in another section hides none.
    @field_validator("compile")
    @classmethod
    def _compile_goes_with_deterministic(cls, compile: CompileConfig,
                                         info: ValidationInfo) -> CompileConfig:
        if info.data.get("deterministic") and compile.jit_compile is True:
            raise refuse("'auto' or false with deterministic: true (op determinism turns "
                         "XLA off)", "true", field="jit_compile")
        return compile

    @field_validator("fit")
    @classmethod
    def _fit_goes_with_compile(cls, fit: FitConfig, info: ValidationInfo) -> FitConfig:
        compile = info.data.get("compile")
        if compile is None:
            return fit
        problems = []
        if fit.class_weight is not None and not is_classification_loss(compile.loss):
            problems.append(refuse("class_weight only with a classification loss",
                                   f"loss '{spec_name(compile.loss)}'", field="class_weight"))
        schedule = spec_kwargs(compile.optimizer).get("learning_rate")
        for i, callback in enumerate(fit.callbacks):
            if spec_name(callback) == "ReduceLROnPlateau" and isinstance(schedule, dict):
                problems.append(refuse(
                    "a number as the optimizer's learning_rate with ReduceLROnPlateau (Keras "
                    "cannot lower a schedule)", f"the schedule {spec_name(schedule)}",
                    "Use one or the other", field=f"callbacks.{i}.ReduceLROnPlateau"))
        if problems:
            raise refuse_all(problems)
        return fit

    def with_absolute_paths(self) -> Config:
        """The config with its data paths made absolute (they are relative to the folder
        nettrain runs in), so the run's config.yaml works from anywhere."""
        paths = {key: str(Path(value).expanduser().absolute())
                 for key in ("csv", "npz", "images", "validation", "test")
                 if (value := getattr(self.data, key)) is not None}
        if not paths:
            return self
        config = self.model_copy(update={"data": self.data.model_copy(update=paths)})
        config._source, config._lines = self._source, self._lines
        config._overridden = self._overridden
        return config

    def error(self, problems: list[Problem]) -> ConfigError:
        """A ConfigError for problems found after validation, with file and line numbers."""
        located = [locate(p, self._lines, self._overridden) for p in problems]
        return ConfigError(located, source=self._source)

    @property
    def is_classifier(self) -> bool:
        """Whether the loss is a classification loss (cross-entropy or hinge)."""
        return is_classification_loss(self.compile.loss)

    def to_yaml(self) -> str:
        """The resolved config as YAML; ``nettrain fit`` on it repeats the run."""
        data = self.model_dump(mode="json", exclude_none=True)
        if isinstance(self.fit.class_weight, dict):  # JSON mode makes class indices strings
            data["fit"]["class_weight"] = dict(self.fit.class_weight)
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


SECTIONS: dict[str, type[BaseModel]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in Config.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
}


# ----------------------------------------------------------------------------- loading


# Bounds on what a config file may hold: a config is a few hundred values, so these refuse only
# hostile or broken input (an alias bomb, a runaway generator) before it costs memory or time.
MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 32          # nested mappings and lists, aliases expanded
MAX_VALUES = 10_000     # keys, values and list items, aliases expanded


class YamlRefused(yaml.MarkedYAMLError):
    """YAML that parses but that a config may not hold, at a position in the text."""

    def __init__(self, mark: yaml.Mark, expected: str, received: str,
                 suggestion: str | None = None):
        super().__init__(problem=f"expected {expected}; received {received}", problem_mark=mark)
        self.expected, self.received, self.suggestion = expected, received, suggestion


class SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (nothing in a file can run code) with fixes and bounds for configs.

    ``1e-3`` is a float, as in YAML 1.2 and Python (YAML 1.1 wants ``1.0e-3`` and reads
    ``1e-3`` as a string); a key written twice in one mapping is an error, not last-one-wins;
    nesting deeper than MAX_DEPTH, keys that are lists or mappings, and values Python cannot
    hold (a 5000-digit number, February 30th) are refused with their position. Use it through
    :func:`parse_yaml`, which also bounds what aliases expand to.
    """

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        # The composer recurses once per level: bound it before Python's stack does.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlRefused(self.peek_event().start_mark,
                                  f"nesting at most {MAX_DEPTH} levels deep", "deeper nesting")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:  # int(), datetime() and float() refused it
            raise YamlRefused(node.start_mark, "a YAML value Python can hold",
                              f"{short_repr(node.value)} ({exc})",
                              "Put it in quotes if it is text") from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<: *anchor': merged by SafeLoader; a key written here replaces it
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise YamlRefused(key_node.start_mark, "a key that is a name (text or a number)",
                                  f"a {kind} as a key")
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"the key '{key}' is written twice (first on line {seen[key].line + 1}); "
                    "keep one", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def parse_yaml(text: str) -> tuple[Any, dict[tuple, int]]:
    """Parse YAML text once, safely; return the value and the line of every key path.

    The text is composed into nodes once; the nodes are checked (what aliases expand to), then
    constructed into the value and walked for the line numbers. The value is a tree: each use of
    an anchor is its own copy, so changing one (an override) leaves the others alone.

    Example: ``parse_yaml("fit:\\n  epochs: 3\\n")`` -> ``({'fit': {'epochs': 3}},
    {('fit',): 1, ('fit', 'epochs'): 2})``.
    """
    loader = SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _expanded_size(node, {})
        value = loader.construct_document(node)
    finally:
        loader.dispose()
    return _tree(value), _line_numbers(node)


def _expanded_size(node: yaml.Node, sizes: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """How many values and how many levels ``node`` has with its aliases expanded.

    ``sizes`` remembers each node (an anchor is counted once however often it is used), so the
    count costs the size of the text, not of the expansion; past a bound it stops.
    """
    known = sizes.get(id(node))
    if known is not None:
        if known == (-1, -1):
            raise YamlRefused(node.start_mark, "an anchor used outside itself",
                              "an alias inside its own anchor (a value that contains itself)")
        return known
    if isinstance(node, yaml.ScalarNode):
        return 1, 0
    sizes[id(node)] = (-1, -1)
    children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) \
        else node.value
    count, depth = 1, 0
    for child in children:
        child_count, child_depth = _expanded_size(child, sizes)
        count, depth = count + child_count, max(depth, child_depth + 1)
        if count > MAX_VALUES or depth > MAX_DEPTH:
            raise YamlRefused(
                node.start_mark, f"aliases that expand to at most {MAX_VALUES:,} values, "
                f"{MAX_DEPTH} levels deep",
                "a value whose aliases expand past that (each use of an alias copies its anchor)")
    sizes[id(node)] = count, depth
    return count, depth


def _tree(value: Any) -> Any:
    """``value`` with every mapping and list copied, so none is shared (bounded by the checks)."""
    if isinstance(value, dict):
        return {k: _tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tree(v) for v in value]
    return value


def yaml_load(text: str) -> Any:
    """Parse YAML text safely (see :func:`parse_yaml`)."""
    return parse_yaml(text)[0]


def read_yaml(path: Path) -> tuple[dict[str, Any], dict[tuple, int]]:
    """Read a YAML mapping safely; also return the line number of every key path.

    Everything wrong with the file is a ConfigError naming the file and, where known, the line:
    missing, not a regular file, larger than MAX_FILE_BYTES, not UTF-8, bad YAML, or YAML a
    config may not hold (see :class:`SafeLoader` and :func:`parse_yaml`).
    """
    if not path.exists():
        raise ConfigError(Problem("config", "an existing YAML file", f"'{path}' (no such file)"))
    if path.is_dir():
        raise ConfigError(Problem("config", "a YAML file", f"'{path}' (a directory)"))
    if not path.is_file():
        raise ConfigError(Problem("config", "a YAML file", f"'{path}' (not a regular file)"))
    with path.open("rb") as file:
        raw = file.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(Problem(str(path), f"a config file of at most "
                                  f"{MAX_FILE_BYTES // 10**6} MB", "a larger file",
                                  "Is this the config file?"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(raw, exc.start)
        raise ConfigError(Problem(
            f"{path}:{line}:{column}", "a UTF-8 text file",
            f"the byte 0x{raw[exc.start]:02x} at line {line}, which is not UTF-8",
            "Save the file as UTF-8")) from None
    try:
        data, lines = parse_yaml(text)
    except yaml.reader.ReaderError as exc:  # a control character: a position, no mark
        line, column = _position(text, exc.position)
        raise ConfigError(Problem(f"{path}:{line}:{column}", "printable text",
                                  f"the character {chr(exc.character)!r}", "Remove it")) from None
    except YamlRefused as exc:
        mark = exc.problem_mark
        raise ConfigError(Problem(f"{path}:{mark.line + 1}:{mark.column + 1}", exc.expected,
                                  exc.received, exc.suggestion)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            Problem(f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path),
                    "valid YAML", f"a syntax error at {where}: {problem}",
                    "Check the indentation and the ':' after each key.")
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(Problem(str(path), "a mapping of sections (name, data, model, ...)",
                                  type(data).__name__))
    return data, lines


def _position(text: str | bytes, offset: int) -> tuple[int, int]:
    """The 1-based line and column of ``offset`` in ``text``."""
    newline = "\n" if isinstance(text, str) else b"\n"
    line_start = text.rfind(newline, 0, offset) + 1
    return text.count(newline, 0, offset) + 1, offset - line_start + 1


def _line_numbers(node: yaml.Node | None, path: tuple = ()) -> dict[tuple, int]:
    """Map every key path of a composed YAML document to its 1-based line."""
    lines: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            lines[sub] = key.start_mark.line + 1
            lines.update(_line_numbers(value, sub))
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            lines[(*path, i)] = value.start_mark.line + 1
            lines.update(_line_numbers(value, (*path, i)))
    return lines


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """``'fit.epochs=5'`` -> ``(['fit', 'epochs'], 5)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(Problem("override", "KEY=VALUE, e.g. fit.epochs=5", f"'{text}'"))
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
    if any(p == "" for p in parts):
        raise ConfigError(Problem("override", "a dotted key such as fit.epochs", f"'{key}'"))
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(Problem(f"override {key}", "a YAML value", short_repr(raw),
                                  " ".join(str(getattr(exc, "problem", "") or "").split())
                                  or None)) from None
    return parts, value


def apply_override(data: dict[str, Any], parts: list[str | int], value: Any) -> None:
    """Set ``value`` at the dotted path ``parts`` of ``data`` (in place).

    A missing last key is added (the schema then refuses it if it does not exist, with a
    suggestion). A missing intermediate key is refused unless it is a config section. A bare
    Keras name is expanded when an override sets one of its arguments:
    ``compile.optimizer=adam`` + ``compile.optimizer.adam.learning_rate=0.1``.
    """
    dotted = ".".join(map(str, parts))
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(map(str, parts[:depth])) or "the config"
        if isinstance(node, list):
            if not isinstance(part, int) or not -len(node) <= part < len(node):
                raise ConfigError(Problem(
                    f"override {dotted}", f"an index below {len(node)} into {where}",
                    f"'{part}'"))
        elif isinstance(node, dict):
            if isinstance(part, int) and part not in node:
                part = str(part)
            if last:
                node[part] = value
                return
            if part not in node:
                if depth == 0 and part in SECTIONS:
                    node[part] = {}
                else:
                    close = did_you_mean(str(part), map(str, node))
                    raise ConfigError(Problem(
                        f"override {dotted}", f"a key that exists in {where}",
                        f"'{part}' (it has {', '.join(map(str, node)) or 'no keys'})",
                        f"Did you mean '{close}'?" if close else None))
            child = node[part]
            if isinstance(child, str) and depth + 1 < len(parts) - 1 \
                    and str(parts[depth + 1]).lower() == child.lower():
                node[part] = child = {parts[depth + 1]: {}}
            elif child is None:
                node[part] = child = {}
        else:
            raise ConfigError(Problem(
                f"override {dotted}", f"{where} to be a mapping or a list",
                f"{type(node).__name__} {node!r}"))
        if last:
            node[part] = value
            return
        node = node[part]


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, override and validate a config file; raise ConfigError listing every mistake.

    Args:
        path: the YAML file.
        overrides: ``dotted.key=value`` strings, applied in order (default none).

    Example: ``load_config("configs/xor.yaml", ["fit.epochs=5"])``.
    """
    path = Path(path)
    data, lines = read_yaml(path)
    data = copy.deepcopy(data)
    overridden: set[tuple] = set()
    for text in overrides:
        parts, value = parse_override(text)
        try:
            apply_override(data, parts, value)
        except ConfigError as exc:
            raise ConfigError(exc.problems, source=str(path)) from None
        overridden.add(tuple(parts))
    data.setdefault("name", _default_name(path))
    config = validate_config(data, source=str(path), lines=lines, overridden=overridden)
    return config.with_absolute_paths()


def _default_name(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-._") or "run"
    return "run" if stem == "config" else stem


def validate_config(
    data: dict[str, Any],
    source: str | None = None,
    lines: dict[tuple, int] | None = None,
    overridden: set[tuple] | None = None,
) -> Config:
    """Validate a raw mapping into a Config, reporting every mistake at once."""
    try:
        config = Config.model_validate(data)
        config._source, config._lines = source, lines or {}
        config._overridden = overridden or set()
        return config
    except ValidationError as exc:
        problems = _problems_from(exc, data, lines or {}, overridden or set())
        draft = Draft(data, source, lines or {}, overridden or set(),
                      tuple(p.key for p in problems if p.key is not None))
        raise ConfigError(problems, source=source, draft=draft) from None


@dataclass(frozen=True)
class Draft:
    """A config the schema refused: the raw mapping (file plus overrides) and where its keys
    are, for checks that run on the parts that parsed (see :mod:`nettrain.checks`).

    ``refused`` holds the key paths the schema refused (a value inside one of them, or a
    container of one, did not parse).
    """

    data: dict[str, Any]
    source: str | None
    lines: dict[tuple, int]
    overridden: set[tuple]
    refused: tuple[tuple, ...]

    def parsed(self, key: tuple) -> bool:
        """Whether the value at ``key`` parsed: the schema refused nothing in it or above it."""
        return not any(r[: len(key)] == key or key[: len(r)] == r for r in self.refused)

    def locate(self, problem: Problem) -> Problem:
        """``problem`` with its file line (see :func:`locate`)."""
        return locate(problem, self.lines, self.overridden)


def locate(problem: Problem, lines: dict[tuple, int], overridden: set[tuple]) -> Problem:
    """``problem`` (its path a dotted key, ``model.layers[1].Dense``) with the line it is on."""
    key = _parse_path(problem.path)
    return replace(problem, path=_where(key, lines, overridden),
                   line=_line(key, lines, overridden),
                   key=key)


# Keys that belong to another section than the one they were written in.
_MOVED = {("fit", "validation_split"): "data.validation_split",
          ("fit", "validation_data"): "data.validation_split or data.test_split",
          ("compile", "epochs"): "fit.epochs", ("fit", "optimizer"): "compile.optimizer",
          ("fit", "loss"): "compile.loss", ("fit", "metrics"): "compile.metrics"}


def _problems_from(exc: ValidationError, data: dict, lines: dict[tuple, int],
                   overridden: set[tuple]) -> list[Problem]:
    problems = []
    errors = []
    for err in exc.errors():  # one error of refuse_all stands for several
        errors += [{**err, "type": "nettrain", "ctx": ctx} for ctx in err["ctx"]["problems"]] \
            if err["type"] == "nettrain_all" else [err]
    for err in errors:
        loc = tuple(err["loc"])
        ctx = err.get("ctx") or {}
        if "field" in ctx:  # a dotted field names a key below a section: fit.class_weight
            loc = (*loc, *(int(p) if p.isdigit() else p for p in str(ctx["field"]).split(".")))
        problems.append(_problem(err, loc, data, lines, overridden))
    return problems


def format_path(loc: tuple) -> str:
    """``('model', 'layers', 1, 'Dense')`` -> ``'model.layers[1].Dense'``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _parse_path(path: str) -> tuple:
    """``'model.layers[1].Dense'`` -> ``('model', 'layers', 1, 'Dense')`` (inverse of format_path)."""
    return tuple(int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path))


def _where(loc: tuple, lines: dict[tuple, int], overridden: set[tuple]) -> str:
    path = format_path(loc)
    if _overrides(loc, overridden):
        return f"{path} (set on the command line)"
    line = _line(loc, lines, overridden)
    return path if line is None else f"{path} (line {line})"


def _overrides(loc: tuple, overridden: set[tuple]) -> bool:
    return any(loc[: len(o)] == o or o[: len(loc)] == loc for o in overridden)


def _line(loc: tuple, lines: dict[tuple, int], overridden: set[tuple]) -> int | None:
    """The file line of ``loc``, or of the nearest key above it; None if set by an override."""
    if _overrides(loc, overridden):
        return None
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _problem(err: dict, loc: tuple, data: dict, lines: dict[tuple, int],
             overridden: set[tuple]) -> Problem:
    return replace(_problem_text(err, loc, _where(loc, lines, overridden)),
                   line=_line(loc, lines, overridden), key=loc)


def _problem_text(err: dict, loc: tuple, where: str) -> Problem:
    kind = err["type"]
    if kind == "extra_forbidden":
        parent, key = loc[:-1], str(loc[-1])
        model = _section_model(parent)
        allowed = list(model.model_fields) if model else []
        moved = _MOVED.get((*map(str, parent), key)) if len(parent) == 1 else None
        close = did_you_mean(key, allowed)
        hint = (f"'{key}' belongs in {moved}" if moved
                else f"Did you mean '{close}'?" if close else None)
        return Problem(where, f"one of the keys {', '.join(allowed)}",
                       f"unknown key '{key}'", hint)
    if kind == "missing":
        return Problem(where, "a value (this key is required)", "nothing",
                       _missing_hint(loc))
    ctx = err.get("ctx") or {}
    if kind == "nettrain":  # raised by a validator here: the parts are in the context
        return Problem(where, ctx["expected"], ctx.get("received"), ctx.get("hint"))
    if kind == "keras_arguments":
        return Problem(where, ctx["expected"], short_repr(ctx["value"]),
                       f"Write e.g. {argument_example(loc, ctx['name'], ctx['value'])}")
    received = short_repr(err.get("input"))
    if kind == "string_pattern_mismatch" and loc == ("name",):
        return Problem(where, "a name of letters, digits, '.', '_' and '-' (it names a folder "
                       "under runs/)", received)
    if kind in _EXPECTED:
        return Problem(where, _EXPECTED[kind], received)
    return Problem(where, err["msg"].removeprefix("Input should be "), received)


# What pydantic's error types expect, in the words of a config.
_EXPECTED = {
    "int_type": "a whole number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list, e.g. [accuracy] or one '- item' per line",
    "dict_type": "a mapping (indented key: value lines)",
    "model_type": "a mapping (indented key: value lines)",
    "model_attributes_type": "a mapping (indented key: value lines)",
}


def _section_model(parent: tuple) -> type[BaseModel] | None:
    if not parent:
        return Config
    if len(parent) == 1:
        return SECTIONS.get(str(parent[0]))
    return None


def _missing_hint(loc: tuple) -> str | None:
    examples = {
        ("data",): "e.g. data: {dataset: iris}",
        ("model",): "e.g. model: {layers: [{Dense: {units: 1}}]}",
        ("compile",): "e.g. compile: {optimizer: adam, loss: mse}",
        ("compile", "loss"): "e.g. loss: categorical_crossentropy",
        ("model", "layers"): "e.g. layers: [{Dense: {units: 1}}]",
    }
    return examples.get(tuple(map(str, loc)))


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
