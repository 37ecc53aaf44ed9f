"""The whole config: the sweep section and :class:`Config`, validated once into a frozen,
strict object that every later step takes, never a raw dict. No TensorFlow here.

Keras names are checked later, in :mod:`nettrain.model.keras_names`, because that needs Keras;
when the schema refuses a config, its ConfigError carries a :class:`nettrain.config.load.Draft`
so :mod:`nettrain.model.draft` can still check the Keras names of what parsed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
)

from nettrain.config.applications import fine_tune_problems
from nettrain.config.annotated import _annotated_rows, _key_text
from nettrain.config.fields import (
    Count,
    Seed,
    _non_finite,
    _Section,
    refuse,
    refuse_all,
    short_repr,
    spec_kwargs,
    spec_name,
)
from nettrain.config.reading import locate
from nettrain.config.sections import (
    CompileConfig,
    DataConfig,
    FitConfig,
    ModelConfig,
    SaveConfig,
    TrackingConfig,
    _schema,
)
from nettrain.errors import ConfigError, Problem, did_you_mean
from nettrain.text import redacted

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

# Keras dtype policies a run may train under (``keras.mixed_precision.set_global_policy``).
PRECISION_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")

# The Keras backends a config may ask for (nettrain.backends.select owns what each can run).
BACKENDS = ("auto", "tensorflow", "jax", "torch")


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
    """The value to optimize: a history.csv column (val_accuracy) or a test metric
    (test_accuracy); default val_loss, or loss without a validation part."""
    direction: Literal["auto", "maximize", "minimize"] = "auto"
    """maximize or minimize the metric; auto asks Keras, as EarlyStopping does."""
    trials: Count = 20
    """How many finished trials the sweep reaches (completed, pruned or failed)."""
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    """How Optuna draws the next values: tpe, random or grid."""
    pruner: Literal["none", "median", "hyperband"] = "median"
    """Stops unpromising trials after an epoch: none, median or hyperband."""
    params: dict[str, Annotated[Any, BeforeValidator(_check_param)]] = Field(min_length=1)
    """Dotted config key -> a list (a choice) or {uniform | log_uniform | int_uniform:
    [low, high], step: ...}."""

    @field_validator("params")
    @classmethod
    def _not_where_runs_go(cls, params: dict[str, Any]) -> dict[str, Any]:
        # a trial's tracking store would come from the config file, unnamed by the user
        # (see nettrain.tracking.store.check): a sweep searches the model and its training
        refused = [key for key in params if key.split(".", 1)[0].strip() == "tracking"]
        if refused:
            raise refuse("keys of the model and its training (a sweep does not search where "
                         "runs are logged)", refused[0], "Remove it; name the store with "
                         "nettrain sweep ... --track URI")
        return params


class Config(_Section):
    """A whole, validated config. Frozen: nothing changes it after loading."""

    name: str = Field(pattern=NAME_PATTERN)
    """The run's name: runs go to runs/<name>/<date>-<time> (default: the config file's
    name)."""
    seed: Seed | None = None
    """The same seed gives the same splits and run (default: a random one, recorded)."""
    deterministic: bool = False
    """TensorFlow op determinism: the same run twice gives the same weights (turns XLA
    off)."""
    distribute: Annotated[Any, BeforeValidator(_check_distribute), _schema(
        {"const": "mirrored"}, {"type": "null"})] = None
    """mirrored: train on all local GPUs (tf.distribute.MirroredStrategy)."""
    mixed_precision: Literal[PRECISION_POLICIES] = "float32"  # type: ignore[valid-type]
    """The Keras dtype policy: float32, mixed_float16 or mixed_bfloat16."""
    data: DataConfig
    """Where the data comes from (exactly one source), the splits and the preprocessing."""
    model: ModelConfig
    """The layers of a keras.Sequential model."""
    compile: CompileConfig
    """The arguments of keras.Model.compile: optimizer, loss, metrics."""
    fit: FitConfig = FitConfig()
    """The arguments of keras.Model.fit: epochs, batch_size, callbacks."""
    save: SaveConfig = SaveConfig()
    """The formats the trained model is saved in."""
    backend: Literal[BACKENDS] = "auto"  # type: ignore[valid-type]
    """The Keras backend that trains: auto (the installed one that runs the whole job soonest,
    start-up included: TensorFlow for small jobs), tensorflow, jax or torch; --backend on the
    command line sets it too."""
    sweep: SweepConfig | None = None
    """nettrain sweep's search: the metric, the number of trials and the values to try (fit
    ignores it)."""
    tracking: TrackingConfig | None = None
    """Log each run (and sweep) to MLflow: tracking: {mlflow: {uri: ..., experiment: ...}}
    (default: no tracking)."""
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
        problems += fine_tune_problems(fit, info.data.get("model"))
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

    def _dump(self) -> dict[str, Any]:
        """The config as plain values, its URIs without their secrets: what is written or
        shown (a password stays in this object, for the store it opens)."""
        data = self.model_dump(mode="json", exclude_none=True)
        if isinstance(self.fit.class_weight, dict):  # JSON mode makes class indices strings
            data["fit"]["class_weight"] = dict(self.fit.class_weight)
        return redacted(data)

    def to_yaml(self) -> str:
        """The resolved config as YAML; ``nettrain fit`` on it repeats the run. A URI's
        secret is written ``***`` (:func:`nettrain.text.redacted`): a tracking URI's password
        comes from MLflow's variables then (see :mod:`nettrain.tracking.store`)."""
        return yaml.safe_dump(self._dump(), sort_keys=False, default_flow_style=None)

    def origin(self, key: tuple) -> str:
        """Where the value at the key path ``key`` came from: ``'command line'`` (an override
        set it), ``'file'`` (the config file has the key, and no override replaced it) or
        ``'default'`` (neither: the schema's default, or the name taken from the file name).

        Example: after ``load_config("configs/xor.yaml", ["fit.epochs=3"])``,
        ``origin(("fit", "epochs"))`` is ``'command line'`` and ``origin(("fit",
        "shuffle"))`` is ``'default'``.
        """
        key = _key_text(key)
        overridden = set(map(_key_text, self._overridden))
        if key in overridden:
            return "command line"
        if any(key[:n] in overridden for n in range(len(key))):
            return "default"  # inside a value an override replaced, which did not set it
        return "file" if key in set(map(_key_text, self._lines)) else "default"

    def to_annotated_yaml(self) -> str:
        """The resolved config as YAML (what :meth:`to_yaml` writes), each value followed by a
        comment saying where it came from (:meth:`origin`): file, command line or default.

        Sections are blocks; every other value is one line (a Keras object, a list of names).
        A one-line value with parts of several origins names the parts that differ:
        ``- Dense: {units: 256, activation: tanh}  # file; command line: Dense.units``.
        """
        rows: list[tuple[str, str | None]] = []
        _annotated_rows(self, self._dump(), (), "", rows, self.origin)
        width = min(max(len(text) for text, note in rows if note), 56)
        source = f" of {self._source}" if self._source else ""
        lines = [f"# The resolved config{source}.",
                 "# After each value, where it came from: file, command line or default."]
        lines += [f"{text.ljust(width)}  # {note}" if note else text for text, note in rows]
        return "\n".join(lines) + "\n"


SECTIONS: dict[str, type[BaseModel]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in Config.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
}
