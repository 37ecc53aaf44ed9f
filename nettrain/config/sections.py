"""The sections of a config other than ``sweep:``: data, model, compile, fit and save, each a
strict pydantic model that says what it expects. No TensorFlow here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from nettrain.config.fields import (
    BUILTIN_DATASETS,
    INT32_MAX,
    KERAS_DATASETS,
    SOURCES,
    Count,
    ImageSide,
    Index,
    KerasSpec,
    _schema,
    _Section,
    refuse,
    refuse_all,
    short_repr,
)
from nettrain.config.finetune import FineTuneConfig
from nettrain.config.series import INTERPOLATE, TimeseriesConfig
from nettrain.config.series import problems as series_problems
from nettrain.config.textcols import check_text, config_problems
from nettrain.errors import did_you_mean

# Synthetic data is made in memory: n_samples x n_features float64 values at most.
MAX_SYNTHETIC_VALUES = 100_000_000


class SyntheticConfig(_Section):
    """The ``data.synthetic`` section: random data made with the run's seed (scikit-learn's
    generators)."""

    n_samples: Count = 100
    """How many samples to make."""
    n_features: Count = 10
    """How many input features each sample has."""
    n_classes: int = Field(2, ge=2, le=INT32_MAX)
    """How many classes, for a classifier (a classification loss)."""
    n_outputs: Count = 1
    """How many target values, for regression."""
    noise: float = Field(0.1, ge=0)
    """The standard deviation of the noise added to the targets."""
    random: bool = False
    """Plain uniform X and y with no relation between them, like a tutorial's rand(100, 10)."""

    @model_validator(mode="after")
    def _fits_in_memory(self) -> SyntheticConfig:
        if self.n_samples * max(self.n_features, self.n_outputs) > MAX_SYNTHETIC_VALUES:
            raise refuse(f"n_samples x n_features at most {MAX_SYNTHETIC_VALUES:,} (the data is "
                         "made in memory)", f"{self.n_samples:,} x {self.n_features:,}",
                         field="n_samples")
        return self


BOOL_OR_AUTO = _schema({"type": "boolean"}, {"const": "auto"})


def _check_target(value: Any) -> Any:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise refuse("a column name, or a list of column names", short_repr(value))


MISSING_POLICIES = ("error", "drop", "zero", "mean", "median", "most_frequent", INTERPOLATE)
NUMBER_FILLS = ("mean", "median")  # only for numeric (not categorical) columns


def _missing_policy(value: Any, where: str = "") -> None:
    if value in MISSING_POLICIES:
        return
    close = did_you_mean(str(value), MISSING_POLICIES)
    raise refuse(f"one of {', '.join(MISSING_POLICIES)}{where}", short_repr(value),
                 f"Did you mean '{close}'?" if close else None)


def _check_missing(value: Any) -> Any:
    """One policy for every column, or a mapping column -> policy (see DataConfig.missing)."""
    if isinstance(value, dict) and value:
        for column, policy in value.items():
            if not isinstance(column, str):
                raise refuse("column names as keys", short_repr(column))
            _missing_policy(policy, f" for the column {column!r}")
        return value
    if isinstance(value, str):
        _missing_policy(value)
        return value
    raise refuse(f"one of {', '.join(MISSING_POLICIES)}, or a mapping column -> one of them "
                 "({age: median, city: most_frequent})", short_repr(value))


def _bool_or_auto(value: Any) -> Any:
    if isinstance(value, bool) or value == "auto":
        return value
    raise refuse("true, false or 'auto'", short_repr(value))


# Keys that only mean something with some sources: key -> the sources it goes with.
_SOURCE_KEYS = {"target": ("csv",), "features": ("csv",), "categorical": ("csv",),
                "text": ("csv",), "sample_weight": ("csv",), "image_size": ("images",),
                "color_mode": ("images",), "num_words": ("dataset",), "maxlen": ("dataset",),
                "validation": ("csv", "npz", "images"), "test": ("csv", "npz", "images")}


class DataConfig(_Section):
    """The ``data:`` section: exactly one source, then the splits and the preprocessing."""

    dataset: Annotated[str | None, _schema(
        {"enum": [*BUILTIN_DATASETS, *KERAS_DATASETS]}, {"type": "null"})] = None
    """A built-in dataset by name (xor, iris, digits, breast_cancer, wine, diabetes need no
    network; Keras's sets download once)."""
    csv: str | None = None
    """A CSV file with a header row (a path relative to the folder nettrain runs in)."""
    npz: str | None = None
    """An .npz file with arrays x and y (or x_train, y_train, x_test, y_test)."""
    images: str | None = None
    """A folder of images with one sub-folder per class."""
    synthetic: SyntheticConfig | None = None
    """Random data made with the run's seed, for trying a network."""
    # csv
    target: Annotated[Any, BeforeValidator(_check_target), _schema(
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
        {"type": "null"})] = None
    """(csv) The target column, or a list of columns for multi-output regression."""
    features: list[str] | None = None
    """(csv) The input columns (default: every column but the target)."""
    categorical: list[str] | None = None
    """(csv) Columns of categories, one-hot encoded inside the model."""
    text: Annotated[Any, BeforeValidator(check_text), _schema(
        {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]},
         "minItems": 1}, {"type": "null"})] = None
    """(csv) Free-text columns, vectorised inside the model by a TextVectorization adapted on
    the training split: [review], or per column {review: {output_mode: int, sequence_length:
    200, max_tokens: 20000, ngrams: 2, standardize: lower}} (see nettrain.config.textcols)."""
    sample_weight: str | None = None
    """(csv) A column of per-row sample weights."""
    missing: Annotated[Any, BeforeValidator(_check_missing), _schema(
        {"enum": list(MISSING_POLICIES)},
        {"type": "object", "additionalProperties": {"enum": list(MISSING_POLICIES)}})] = "error"
    """(csv) An empty cell: error (name its row and column), drop its row, zero, or a value
    learned on the training split: mean, median (numeric columns), most_frequent. One policy
    for every column, or per column ({age: median, city: most_frequent}; a column left out is
    'error'). A missing target is never filled: its row is dropped with a note (refused
    with 'error'). With data.timeseries, interpolate fills gaps in time order (the target's
    too, as an input; a row without its target is never a label)."""
    delimiter: str = ","
    """(csv) The column separator."""
    stream: Annotated[Any, BeforeValidator(_bool_or_auto), BOOL_OR_AUTO] = "auto"
    """(csv) Read the file in chunks instead of whole (auto: files over 256 MiB)."""
    # images
    image_size: list[ImageSide] | None = Field(None, min_length=2, max_length=2)
    """(images) Every image is resized to [height, width] (default [256, 256])."""
    color_mode: Literal["rgb", "grayscale", "rgba"] | None = None
    """(images) The channels images are read with (default rgb)."""
    # imdb, reuters
    num_words: Count | None = None
    """(imdb, reuters) Keep only the most frequent words."""
    maxlen: Count | None = None
    """(imdb, reuters) Pad or cut every sequence to this length."""
    # splits
    validation: str | None = None
    """A file (or folder) of the same kind as the source, for validation."""
    test: str | None = None
    """A file (or folder) of the same kind as the source, for test."""
    validation_split: float = Field(0.0, ge=0.0, lt=1.0)
    """The fraction of all samples held out for validation."""
    test_split: float = Field(0.0, ge=0.0, lt=1.0)
    """The fraction of all samples held out for test (when the source has no test part)."""
    stratify: bool = False
    """Keep each class's share in every split."""
    # preprocessing, inside the model
    scale: float | None = Field(None, gt=0)
    """Divide the inputs by this number (a Rescaling layer inside the model): 255 for
    8-bit pixels."""
    normalize: bool = False
    """A Normalization layer adapted on the training split, saved inside the model."""
    flatten: bool = False
    """Flatten each input to one dimension (28x28 -> 784)."""
    reshape: list[Count] | None = None
    """Reshape each input, e.g. [8, 8, 1] to give 64 pixels to a Conv2D."""
    one_hot: bool = False
    """One-hot encode integer class labels (for categorical_crossentropy)."""
    timeseries: TimeseriesConfig | None = None
    """(csv) A series: windows of the previous rows in time order, split by time."""

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
        yield from self._missing_problems()
        if len(given) == 1:
            yield from series_problems(self)
        yield from config_problems(self.text, self.features, self.categorical, self.targets,
                                   self.sample_weight, self.missing)
        if self.validation_split + self.test_split >= 1.0:
            yield refuse("validation_split + test_split below 1",
                         f"{self.validation_split + self.test_split}", field="test_split")


    def _missing_problems(self) -> Iterator[PydanticCustomError]:
        """data.missing against the columns the config names: a target is never filled, and
        mean or median need numbers (a categorical column is text, or category codes)."""
        categorical = self.categorical or []
        if isinstance(self.missing, str):
            if self.missing in NUMBER_FILLS and categorical:
                yield refuse(f"a policy that fills every column: {self.missing} fills numbers "
                             f"only, and {', '.join(map(repr, categorical))} "
                             f"{'is' if len(categorical) == 1 else 'are'} categorical",
                             repr(self.missing),
                             f"Give a policy per column, e.g. {{<a numeric column>: "
                             f"{self.missing}, {categorical[0]}: most_frequent}}.",
                             field="missing")
            return
        for column, policy in self.missing.items():
            series = self.timeseries is not None and policy == INTERPOLATE
            if column in self.targets and policy not in ("drop", "error") and not series:
                yield refuse(f"drop or error for the target {column!r} (a row without its "
                             "target has no label: it is never filled)", repr(policy),
                             f"Remove {column!r} from data.missing: its rows are dropped.",
                             field="missing")
            elif column in categorical and policy in NUMBER_FILLS:
                yield refuse(f"a policy for the categorical column {column!r}: {policy} needs "
                             "numbers", repr(policy),
                             f"Use {{{column}: most_frequent}} (or zero: a category of its "
                             "own).", field="missing")
            elif self.features is not None and column not in self.features + self.targets + \
                    [self.sample_weight]:
                close = did_you_mean(column, self.features + self.targets)
                yield refuse(f"columns of data.features or data.target as keys "
                             f"({', '.join(self.features + self.targets)})", repr(column),
                             f"Did you mean '{close}'?" if close else None, field="missing")


class ModelConfig(_Section):
    """The ``model:`` section: the layers of a ``keras.Sequential``, each written by the one
    rule."""

    input_shape: list[Count] | None = None
    """The shape of one input sample (default: taken from the data)."""
    layers: list[KerasSpec] = Field(min_length=1)
    """The layers in order, each a Keras layer name or {Name: {arguments}}:
    - Dense: {units: 10, activation: softmax}."""


class CompileConfig(_Section):
    """The ``compile:`` section: the arguments of ``keras.Model.compile``."""

    optimizer: KerasSpec = "rmsprop"
    """A Keras optimizer: adam, or {SGD: {learning_rate: 0.1, momentum: 0.9}}."""
    loss: KerasSpec
    """A Keras loss: a cross-entropy or hinge loss makes a classifier, anything else
    regression."""
    metrics: list[KerasSpec] = []
    """Keras metrics: [accuracy], [mae]."""
    weighted_metrics: list[KerasSpec] = []
    """Keras metrics weighted by the sample or class weights."""
    loss_weights: list[float] | None = None
    """Weights of the losses of a model with several outputs."""
    run_eagerly: bool = False
    """Run the model eagerly (slow; for debugging)."""
    # auto: as many batches per call of the compiled step as fit in about 32 (see
    # :func:`steps_per_execution`); a number is passed to Keras as it is.
    steps_per_execution: Annotated[Any, BeforeValidator(_count_or_auto), _schema(
        {"type": "integer", "minimum": 1, "maximum": INT32_MAX}, {"const": "auto"})] = "auto"
    """Batches per call of the compiled training step (auto: about 32 samples' worth)."""
    jit_compile: Annotated[Any, BeforeValidator(_bool_or_auto), BOOL_OR_AUTO] = "auto"
    """Compile the model with XLA (auto: where Keras finds it works)."""


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
    """The ``fit:`` section: the arguments of ``keras.Model.fit`` (the data comes from
    ``data:``)."""

    epochs: Count = 1
    """How many passes over the training data."""
    batch_size: Count | None = None
    """Samples per gradient step (default 32)."""
    verbose: Annotated[Any, BeforeValidator(_check_verbose), _schema(
        {"enum": [0, 1, 2]}, {"const": "auto"})] = "auto"
    """0 silent, 1 Keras's per-batch bar (costs speed), 2 one line per epoch, auto."""
    callbacks: list[KerasSpec] = []
    """Keras callbacks: - EarlyStopping: {monitor: val_loss, patience: 5}."""
    shuffle: bool = True
    """Shuffle the training data before each epoch."""
    class_weight: Annotated[Any, BeforeValidator(_check_class_weight), _schema(
        {"const": "balanced"},
        {"type": "object", "minProperties": 1, "propertyNames": {"pattern": "^[0-9]+$"},
         "additionalProperties": {"type": "number", "minimum": 0}},
        {"type": "null"})] = None
    """'balanced', or a weight per class index such as {0: 1.0, 1: 5.0} (classifiers)."""
    initial_epoch: Index = 0
    """The epoch to start counting from."""
    steps_per_epoch: Count | None = None
    """Batches per epoch (default: the whole training split)."""
    validation_steps: Count | None = None
    """Validation batches per evaluation (default: the whole validation split)."""
    validation_batch_size: Count | None = None
    """Samples per validation batch (default: batch_size)."""
    validation_freq: Count = 1
    """Evaluate on the validation split every this many epochs."""
    # nettrain's own (not an argument of model.fit): write checkpoints/last.keras at the end
    # of an epoch when at least this many seconds passed since the last write (0: after every
    # epoch); always when training ends, stops (a callback, a NaN, Ctrl-C, SIGTERM) or fails.
    checkpoint_every_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 30.0
    """Write checkpoints/last.keras after an epoch when this many seconds passed since the
    last write (0: every epoch); always when training ends or stops."""
    # nettrain's own: two phases of one run (see nettrain.engine.phases)
    fine_tune: FineTuneConfig | None = None
    """Train the head first, then unfreeze the keras.applications backbone:
    {after: 5, unfreeze: all, learning_rate: 1.0e-5}."""



SAVE_FORMATS = ("json", "keras", "savedmodel")  # what save.formats (and --format) name


class SaveConfig(_Section):
    """The ``save:`` section: the formats written into the run directory."""

    formats: list[Literal[SAVE_FORMATS]] = Field(["keras"], min_length=1)
    """keras: model.keras; json: model.json + model.weights.h5; savedmodel: saved_model/."""

    @field_validator("formats", mode="before")
    @classmethod
    def _any_case(cls, formats: Any) -> Any:
        """A format's name in any case (Keras, SavedModel), as the --format options take it."""
        if isinstance(formats, list):
            return [f.lower() if isinstance(f, str) and f.lower() in SAVE_FORMATS else f
                    for f in formats]
        return formats

    @field_validator("formats")
    @classmethod
    def _unique(cls, formats: list[str]) -> list[str]:
        if len(set(formats)) != len(formats):
            raise refuse("each format once", short_repr(formats))
        return formats


# The package the tracking: section needs, and how to get it (the 'mlflow' extra).
MLFLOW_INSTALL = "pip install 'nettrain[mlflow]'"


def mlflow_installed() -> bool:
    """Whether MLflow can be imported, found without importing it (tracking off costs
    nothing)."""
    import importlib.util

    try:
        return importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):  # a broken or blocked install
        return False


class MlflowConfig(_Section):
    """The ``tracking.mlflow`` section: where each run is logged in MLflow."""

    uri: str | None = Field(None, min_length=1)
    """The MLflow tracking URI: http://host:5000, sqlite:///path/mlflow.db, databricks, ...
    (default: MLFLOW_TRACKING_URI, else sqlite:///<runs folder>/mlflow.db, a local store that
    needs no server). A store outside the runs folder is one you name: --track URI, or the
    same URI in MLFLOW_TRACKING_URI (see the README's Security section)."""
    experiment: str | None = Field(None, min_length=1)
    """The MLflow experiment the runs go to (default: the config's name)."""

    @field_validator("uri")
    @classmethod
    def _a_uri(cls, uri: str | None) -> str | None:
        from nettrain.config import uris
        from nettrain.text import redacted

        wrong = uris.problem(uri) if uri is not None else None
        if wrong is not None:  # shown without its password (the hint repeats the URI)
            raise refuse(wrong[0], short_repr(redacted(uri)), redacted(wrong[1]))
        return uri


class TrackingConfig(_Section):
    """The ``tracking:`` section: log every run to an experiment tracker (MLflow): params,
    metrics per epoch, final metrics, the run's files and the model."""

    mlflow: MlflowConfig = MlflowConfig()
    """Log to MLflow (pip install 'nettrain[mlflow]')."""

    @model_validator(mode="after")
    def _mlflow_installed(self) -> TrackingConfig:
        if not mlflow_installed():
            raise refuse("MLflow installed, to log runs to it", "tracking: with no mlflow "
                         "package in this Python", f"Install it: {MLFLOW_INSTALL}; or remove "
                         "the tracking: section", field="mlflow")
        return self
