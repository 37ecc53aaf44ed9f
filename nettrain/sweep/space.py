"""A sweep's search space: the ``sweep.params`` of a config, checked, drawn and applied.

Each key of ``sweep.params`` is a dotted override of the config (``fit.batch_size``), so a
trial's config is the base config with the drawn values applied exactly as ``KEY=VALUE`` on
the command line would apply them, then validated the same way. :func:`check_space` tries
each key with the values at the ends of its range (every choice of a list) before any trial
runs, so a key that does not exist or a value the config refuses is a config error naming
``sweep.params.<key>`` and its line. No TensorFlow at import; the Keras checks load it.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from typing import Any

from nettrain.config.fields import format_path, short_repr
from nettrain.config.load import validate_config
from nettrain.config.overrides import apply_override, parse_override
from nettrain.config.reading import yaml_load
from nettrain.config.schema import Config
from nettrain.errors import ConfigError, Problem, did_you_mean

# Values Optuna stores as they are; any other choice (a list, a mapping) is stored as its JSON.
_SCALARS = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class Param:
    """One entry of ``sweep.params``.

    ``key`` is the dotted override as written, ``name`` the shortest tail of it that no other
    key ends with (``learning_rate``, ``layers.0.Dense.units``): Optuna's name for the value,
    shown in tables and plots. A choice has ``choices``; a range has ``kind`` (uniform,
    log_uniform, int_uniform), ``low``, ``high`` and maybe ``step``.
    """

    key: str
    name: str
    choices: tuple[Any, ...] | None = None
    kind: str | None = None
    low: float = 0.0
    high: float = 0.0
    step: float | None = None

    @property
    def parts(self) -> list[str | int]:
        return parse_override(f"{self.key}=")[0]

    def labels(self) -> list[Any]:
        """The choices as Optuna stores them (JSON text for a list or a mapping)."""
        return [_label(c) for c in self.choices or ()]

    def value(self, stored: Any) -> Any:
        """The config value of a value Optuna stored (the inverse of :meth:`labels`)."""
        if self.choices is None:
            return stored
        return copy.deepcopy(dict(zip(self.labels(), self.choices)).get(stored, stored))

    def suggest(self, trial: Any) -> Any:
        """Draw this value for an Optuna trial; return it as the config takes it."""
        if self.choices is not None:
            return self.value(trial.suggest_categorical(self.name, self.labels()))
        if self.kind == "int_uniform":
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=int(self.step or 1))
        return trial.suggest_float(self.name, self.low, self.high, step=self.step,
                                   log=self.kind == "log_uniform")

    def grid(self) -> list[Any]:
        """Every value the grid sampler tries (a range needs a step)."""
        if self.choices is not None:
            return self.labels()
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        values = [self.low + i * self.step for i in range(count)]
        return [int(v) for v in values] if self.kind == "int_uniform" else \
            [round(v, 12) for v in values]

    def probes(self) -> list[tuple[Any, str]]:
        """The values :func:`check_space` tries, each with what it is: every choice, or the
        two ends of a range (the last value on the step for a range with a step)."""
        if self.choices is not None:
            return [(c, f"choice {i + 1} of {len(self.choices)}")
                    for i, c in enumerate(self.choices)]
        written = f"{self.kind} [{self.low:g}, {self.high:g}]"
        high = self.grid()[-1] if self.step else self.high
        return [(self.low, f"the low end of {written}"), (high, f"the high end of {written}")]

    def describe(self) -> str:
        if self.choices is not None:
            return short_repr(list(self.choices), 60)
        step = f" step {self.step:g}" if self.step else ""
        return f"{self.kind} [{self.low:g}, {self.high:g}]{step}"


def _label(choice: Any) -> Any:
    return choice if isinstance(choice, _SCALARS) else json.dumps(choice, sort_keys=True)


def space(config: Config) -> list[Param]:
    """The params of ``config.sweep``, in the order written."""
    assert config.sweep is not None
    keys = list(config.sweep.params)
    params = []
    for key in keys:
        spec = config.sweep.params[key]
        name = _short_name(key, keys)
        if isinstance(spec, list):
            params.append(Param(key, name, choices=tuple(spec)))
        else:
            kind = next(k for k in spec if k != "step")
            low, high = spec[kind]
            params.append(Param(key, name, kind=kind, low=low, high=high, step=spec["step"]))
    return params


def _short_name(key: str, keys: list[str]) -> str:
    """The shortest tail of ``key`` that no other key ends with and that does not start with
    a list index: ``compile.optimizer.Adam.learning_rate`` -> ``learning_rate``."""
    parts = key.split(".")
    for n in range(1, len(parts) + 1):
        tail = ".".join(parts[-n:])
        if parts[-n].isdigit() and n < len(parts):
            continue
        if not any(other != key and (other == tail or other.endswith("." + tail))
                   for other in keys):
            return tail
    return key


def grid_size(params: list[Param]) -> int:
    return math.prod(len(p.grid()) for p in params)


def trial_config(base: Config, values: dict[str, Any]) -> Config:
    """``base`` without its sweep section, with ``values`` (key -> value) applied as overrides
    and validated: the config a trial trains, which ``nettrain fit`` repeats. Raises
    ConfigError, as an override on the command line would."""
    data = yaml_load(base.to_yaml())
    data.pop("sweep", None)
    for key, value in values.items():
        apply_override(data, parse_override(f"{key}=")[0], copy.deepcopy(value))
    return validate_config(data, source="the trial's config")


def check_space(config: Config, keras: bool = True) -> None:
    """Refuse a search space that cannot work, before any trial runs.

    Every key is applied with each value of :meth:`Param.probes` and the config validated as
    a trial's would be; with ``keras`` the Keras objects are also constructed (an unknown
    argument such as ``unitz``, a Dropout rate of 1.5), which loads TensorFlow. Each problem
    is reported at ``sweep.params.<key>`` with its line. Values that only fail together (two
    splits above 1 in sum) are found when a trial draws them: that trial fails, the sweep
    goes on.
    """
    assert config.sweep is not None
    problems: list[Problem] = []
    params = space(config)
    if config.sweep.sampler == "grid":
        problems += [_at(config, p.key, Problem(
            "", "a list of values, or a range with a step (the grid sampler tries every "
            "combination)", p.describe(), "Add a step, e.g. {uniform: [0.0, 0.5], step: 0.1}"))
            for p in params if p.choices is None and p.step is None]
    for param in params:
        found: dict[str, list[tuple[Problem, Any, str]]] = {}
        probes = param.probes()
        for value, role in probes:
            for problem in _probe(config, param, value, keras):
                found.setdefault(str(problem), []).append((problem, value, role))
        for hits in found.values():
            problem, value, role = hits[0]
            every = len(hits) == len(probes)  # the key itself is wrong, whatever its value
            problems.append(_at(config, param.key, problem,
                                None if every else f"{short_repr(value)}, {role}"))
    if problems:
        raise ConfigError(problems, source=config._source)


def _probe(config: Config, param: Param, value: Any, keras: bool) -> list[Problem]:
    try:
        trial = trial_config(config, {param.key: value})
        if keras:
            from nettrain.model.builder import resolve_all

            resolve_all(trial)
    except ConfigError as exc:
        return [p if isinstance(p, Problem) else Problem(param.key, str(p))
                for p in exc.problems]
    return []


def _at(config: Config, key: str, problem: Problem, value: str | None = None) -> Problem:
    """``problem`` (found in a trial's config) reported at ``sweep.params.<key>``: where the
    search space says it, with the line; when it is about another key than ``key`` that key
    is named, and ``value`` says which drawn value caused it."""
    line = config._lines.get(("sweep", "params", key))
    where = f"sweep.params.{key}" + (" (set on the command line)"
                                     if _set_on_command_line(config, key) else
                                     f" (line {line})" if line else "")
    inner = problem.path.removeprefix("override ").strip()
    path = format_path(tuple(parse_override(f"{key}=")[0]))
    same = not inner or inner == key or path == inner
    above = path.startswith(inner + ".")  # the object the key is an argument of (a layer)
    expected = problem.expected if same or above else f"{problem.expected} (at {inner})"
    received = None if above and value is not None else problem.received
    if value is not None:
        shown = received not in (None, value.split(", ")[0])
        received = value + (f" ({received})" if shown else "")
    return Problem(where, expected, received, problem.suggestion, line=line,
                   key=("sweep", "params", key))


def _set_on_command_line(config: Config, key: str) -> bool:
    return any(o[:2] == ("sweep", "params") or o == ("sweep",) for o in config._overridden)


def check_metric(config: Config, model: Any, data: Any) -> tuple[str, str]:
    """The sweep's metric and direction (``maximize``/``minimize``) for a built model.

    The metric must be a name the run logs in ``history.csv`` (``loss``, ``val_accuracy``) or a
    test metric (``test_accuracy``, with a test part); ``direction: auto`` asks Keras which
    way it improves, as EarlyStopping's ``mode: auto`` does. A pruner needs a value each
    epoch, so not a test metric. Raises ConfigError at ``sweep.metric`` or ``sweep.pruner``.
    """
    from nettrain.data.pipeline import to_tensors
    from nettrain.model import direction as directions

    sweep = config.sweep
    assert sweep is not None
    x, y = data.sample(2)
    logged = list(model.compute_metrics(x, y, model(to_tensors(x)), sample_weight=None))
    model.reset_metrics()
    validation, test = "validation" in data.splits, "test" in data.splits
    names = [*logged, *(f"val_{n}" for n in logged if validation),
             *(f"test_{n}" for n in logged if test)]
    metric = sweep.metric or ("val_loss" if validation else "loss")
    if metric not in names:
        hint = None
        for prefix, split, key in (("val_", validation, "validation_split"),
                                   ("test_", test, "test_split")):
            if metric.startswith(prefix) and not split and metric[len(prefix):] in logged:
                hint = f"Set data.{key} (e.g. 0.2), or use '{metric[len(prefix):]}'"
        close = did_you_mean(metric, names)
        hint = hint or (f"Did you mean '{close}'?" if close else
                        "Use one of these, or add the metric to compile.metrics")
        raise config.error([Problem("sweep.metric", "a metric of history.csv or a test metric "
                                    f"({', '.join(names)})", f"'{metric}'", hint)])
    if metric.startswith("test_") and sweep.pruner != "none":
        raise config.error([Problem(
            "sweep.pruner", "none with a test metric (a pruner compares a value of each "
            "epoch; the test part is measured once, at the end)", f"'{sweep.pruner}'",
            f"Set pruner: none, or sweep on '{'val_' + metric[5:] if validation else metric[5:]}'")])
    direction = sweep.direction
    if direction == "auto":  # Keras's answer, as fit records it for the run
        way = directions.of(metric, directions.of_model(model))
        if way is None:
            raise config.error([Problem(
                "sweep.direction", f"maximize or minimize: Keras cannot tell whether "
                f"'{metric}' should go up or down", "'auto'" + (
                    "" if "direction" in sweep.model_fields_set else " (the default)"),
                "Add direction: maximize (or minimize) to sweep")])
        direction = "maximize" if way == directions.MAX else "minimize"
    return metric, direction


def metric_value(metrics: dict[str, dict[str, float]], metric: str) -> float | None:
    """The value of ``metric`` in a run's metrics.json (the final model's numbers, as fit's
    table shows them): ``val_accuracy`` -> validation accuracy, ``test_loss`` -> test loss,
    ``accuracy`` -> train accuracy."""
    for prefix, split in (("val_", "validation"), ("test_", "test")):
        if metric.startswith(prefix):
            return metrics.get(split, {}).get(metric[len(prefix):])
    return metrics.get("train", {}).get(metric)
