"""The one rule: every Keras object in a config is a name, or a one-key mapping name -> kwargs.

Names resolve through Keras's own modules (``keras.layers``, ``keras.optimizers``, ...), so
every class Keras has works with no per-class code. Objects are constructed here, during
validation, and Keras's ValueError/TypeError become :class:`~nettrain.errors.Problem` s that
name the key path, what was expected, what was received and the closest name.
"""

from __future__ import annotations

import inspect
import os
import re
import warnings
from dataclasses import dataclass
from typing import Any

from nettrain.config.applications import APPLICATIONS
from nettrain.config.fields import short_repr, spec_kwargs, spec_name
from nettrain.errors import Problem, did_you_mean


def _keras_attribute(dotted: str) -> Any:
    """``'optimizers.schedules'`` -> ``keras.optimizers.schedules``."""
    import keras

    found: Any = keras
    for part in dotted.split("."):
        found = getattr(found, part)
    return found


@dataclass(frozen=True)
class Registry:
    """Where one kind of Keras object lives, and how its names may be written."""

    kind: str            # "layer", "optimizer", ... (for messages)
    module: str          # attribute of ``keras``: "layers", "optimizers", ...
    base: str | None     # class every object must derive from (attribute of the module)
    functions: bool = False  # bare lowercase names may be functions (losses, activations)
    ignore_case: bool = False  # keras.optimizers.get is case-insensitive
    hidden: tuple[str, ...] = ()  # refused in a config, so never suggested

    def keras_module(self) -> Any:
        return _keras_attribute(self.module)

    def base_class(self) -> type | None:
        return None if self.base is None else _keras_attribute(self.base)

    def names(self) -> dict[str, Any]:
        """Every public name of this kind: class names, and function names where allowed."""
        module, base = self.keras_module(), self.base_class()
        found = {}
        for name in dir(module):
            if name.startswith("_"):
                continue
            obj = getattr(module, name)
            if inspect.isclass(obj) and (base is None or issubclass(obj, base)) and obj is not base:
                found[name] = obj
            elif self.functions and inspect.isfunction(obj) and name not in ("get", "serialize",
                                                                                "deserialize"):
                found[name] = obj
        return found


# Layers a config may not use: they load a file or run code that is not in the config, and
# would do it while validate builds the model. A config is shared like a document, not a
# program (see the README's safety section).
REFUSED_LAYERS = {
    "TFSMLayer": "it loads a file (a TensorFlow SavedModel) and runs its graph, a program",
    "Lambda": "it runs a Python function (code), which a config cannot hold",
    "JaxLayer": "it runs JAX functions (code), which a config cannot hold",
    "FlaxLayer": "it runs a Flax module (code), which a config cannot hold",
    "TorchModuleWrapper": "it runs a PyTorch module (code), which a config cannot hold",
}
LAYERS = Registry("layer", "layers", "layers.Layer",
                  hidden=(*REFUSED_LAYERS, "InputLayer"))
OPTIMIZERS = Registry("optimizer", "optimizers", "optimizers.Optimizer", ignore_case=True)
LOSSES = Registry("loss", "losses", "losses.Loss", functions=True)
METRICS = Registry("metric", "metrics", "metrics.Metric", functions=True)
# nettrain.model.callbacks.REFUSED says why each is refused.
CALLBACKS = Registry("callback", "callbacks", "callbacks.Callback",
                     hidden=("BackupAndRestore", "RemoteMonitor", "LambdaCallback",
                             "LearningRateScheduler"))
ACTIVATIONS = Registry("activation", "activations", None, functions=True)
INITIALIZERS = Registry("initializer", "initializers", "initializers.Initializer")
REGULARIZERS = Registry("regularizer", "regularizers", "regularizers.Regularizer")
CONSTRAINTS = Registry("constraint", "constraints", "constraints.Constraint")
SCHEDULES = Registry("learning-rate schedule", "optimizers.schedules",
                     "optimizers.schedules.LearningRateSchedule")

# Keyword arguments whose values are themselves Keras objects, by argument name. A mapping
# value of such an argument is resolved by the same rule (``{L2: {l2: 0.01}}``); a string is
# left for Keras, which resolves strings itself ('he_normal', 'relu', 'l2').
NESTED = {"kernel_regularizer": REGULARIZERS, "bias_regularizer": REGULARIZERS,
          "activity_regularizer": REGULARIZERS, "recurrent_regularizer": REGULARIZERS,
          "depthwise_regularizer": REGULARIZERS, "pointwise_regularizer": REGULARIZERS,
          "beta_regularizer": REGULARIZERS, "gamma_regularizer": REGULARIZERS,
          "embeddings_regularizer": REGULARIZERS,
          "learning_rate": SCHEDULES, "activation": LAYERS, "recurrent_activation": LAYERS,
          "layer": LAYERS, "backward_layer": LAYERS, "loss": LOSSES}
for _suffix, _registry in (("_initializer", INITIALIZERS), ("_constraint", CONSTRAINTS)):
    for _prefix in ("kernel", "bias", "recurrent", "depthwise", "pointwise", "beta", "gamma",
                    "moving_mean", "moving_variance", "embeddings"):
        NESTED[_prefix + _suffix] = _registry


# Arguments that read a file when given a string (Keras takes a path there).
FILE_ARGUMENTS = {"vocabulary": "a list of values (a string is a file path that Keras reads, "
                                "and a config may not load files)"}


def refused(spec: Any, path: str) -> list[Problem]:
    """Refused layers and file arguments anywhere in ``spec``, nested ones included
    (``Bidirectional: {layer: ...}``, Keras's ``{class_name: ..., config: ...}`` form).

    Example: ``refused({'TFSMLayer': {'filepath': 'm'}}, 'model.layers[0]')`` -> one Problem.
    """
    problems: list[Problem] = []
    if isinstance(spec, list):
        for i, item in enumerate(spec):
            problems += refused(item, f"{path}[{i}]")
    if not isinstance(spec, dict):
        return problems
    named = spec.get("class_name") if isinstance(spec.get("class_name"), str) else None
    if named in REFUSED_LAYERS:
        problems.append(_refusal(named, path))
    for key, value in spec.items():
        if key in REFUSED_LAYERS:
            problems.append(_refusal(key, f"{path}.{key}"))
            continue
        if key in FILE_ARGUMENTS and isinstance(value, str):
            problems.append(Problem(f"{path}.{key}", FILE_ARGUMENTS[key], f"'{value}'",
                                    "Write the values in the config as a list."))
        problems += refused(value, f"{path}.{key}")
    return problems


def _refusal(name: str, path: str) -> Problem:
    return Problem(path, "a layer that neither loads files nor runs code", f"{name}: "
                   f"{REFUSED_LAYERS[name]}", "Remove it, or write the computation with "
                   "built-in layers.")


def _string_registry(argument: str) -> Registry | None:
    """Which registry a string value of this keyword argument is a name in."""
    if argument.endswith("activation"):
        return ACTIVATIONS
    for suffix, registry in (("_initializer", INITIALIZERS), ("_regularizer", REGULARIZERS),
                             ("_constraint", CONSTRAINTS)):
        if argument.endswith(suffix):
            return registry
    return None


class ResolveError(Exception):
    """Collects the problems found while resolving one object (and the objects nested in it)."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))


def lookup(name: str, registry: Registry, path: str) -> Any:
    """The Keras class or function called ``name`` in ``registry``, or ResolveError."""
    names = registry.names()
    if name in names:
        return names[name]
    if registry.ignore_case or registry.functions:
        lowered = {n.lower(): obj for n, obj in names.items()}
        if registry.ignore_case and name.lower() in lowered:
            return lowered[name.lower()]
    if registry.functions:  # suggest what a bare name may be: 'accuracy', not 'Accuracy'
        names = {**dict.fromkeys(string_names(registry)), **names}
    names = {n: obj for n, obj in names.items() if n not in registry.hidden}
    backbones = list(APPLICATIONS) if registry is LAYERS else []  # also a layer entry
    close = did_you_mean(name, [*names, *backbones])
    examples = ", ".join(sorted(names)[:6])
    raise ResolveError([Problem(
        path, f"a Keras {registry.kind} name (keras.{registry.module}: {examples}, ..."
        f"{'; or a keras.applications model: MobileNetV3Small, ...' if backbones else ''})",
        f"'{name}'", f"Did you mean '{close}'?" if close else None)])


def resolve(spec: Any, registry: Registry, path: str) -> Any:
    """Build the Keras object a spec names; raise ResolveError listing every problem.

    Args:
        spec: ``'adam'`` or ``{'SGD': {'learning_rate': 0.1}}``.
        registry: where the name lives (LAYERS, OPTIMIZERS, ...).
        path: the key path, for messages (``'compile.optimizer'``).

    A bare name of a function (``'mse'``, ``'relu'``) is returned as the string, which Keras
    resolves itself; anything else is constructed, so bad arguments fail here, not in ``fit``.

    Example: ``resolve({'Dense': {'units': 3}}, LAYERS, 'model.layers[0]')`` -> a Dense layer.
    """
    problems = refused(spec if isinstance(spec, dict) else {spec: {}}, path)
    if problems:  # before anything in it is looked up or constructed
        raise ResolveError(problems)
    name, kwargs = spec_name(spec), spec_kwargs(spec)
    if isinstance(spec, str) and registry.functions and _keras_gets(name, registry):
        return name  # an alias Keras resolves itself in compile ('accuracy', 'mse', 'acc')
    obj = lookup(name, registry, path if isinstance(spec, str) else f"{path}.{name}")
    if not inspect.isclass(obj):
        if kwargs:
            raise ResolveError([Problem(
                f"{path}.{name}", f"a bare name: '{name}' is a function and takes no arguments",
                f"arguments {sorted(kwargs)}",
                _class_hint(name, registry))])
        return name
    path = f"{path}.{name}"
    problems: list[Problem] = []
    for key, value in list(kwargs.items()):
        strings = _string_registry(key)
        if strings is not None and isinstance(value, str):
            problem = check_string(value, strings, f"{path}.{key}")
            problems += [problem] if problem else []
        nested = NESTED.get(key)
        if nested is not None and isinstance(value, dict) and len(value) == 1 \
                and isinstance(next(iter(value)), str) and next(iter(value))[:1].isupper():
            try:
                kwargs[key] = resolve(value, nested, f"{path}.{key}")
            except ResolveError as exc:
                problems += exc.problems
    problems += _unknown_kwargs(obj, kwargs, path)
    if problems:
        raise ResolveError(problems)
    _whole_numbers_as_floats(obj, kwargs)
    error: Exception | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            made = obj(**kwargs)
        except (TypeError, ValueError, KeyError) as exc:  # KeyError: a {class_name: ...}
            error = exc                                   # form Keras cannot read
    if error is not None:
        # Keras refused: name the argument when one is unknown to every class in the MRO.
        unknown = _unknown_kwargs(obj, kwargs, path, strict=False)
        if unknown:
            raise ResolveError(unknown) from None
        raise ResolveError([Problem(
            path, f"valid arguments for keras.{registry.module}.{name} (Keras says: "
            f"{_keras_message(error, name)})", short_repr(kwargs, 120))]) from None
    problems = keras_warnings(caught, path, kwargs)
    if problems:  # Keras took the arguments but ignores or reinterprets one of them
        raise ResolveError(problems)
    return made


# What to do about an argument Keras warns about (the default: remove it).
_WARNED = {
    "input_shape": "Remove it, and write model.input_shape: {value} (the shape comes from the "
                   "data when model.input_shape is left out).",
    "input_dim": "Remove it, and write model.input_shape: [{value}] (the shape comes from the "
                 "data when model.input_shape is left out).",
    "decay": "Remove it; to lower the learning rate over time give a schedule, e.g. "
             "learning_rate: {{InverseTimeDecay: {{initial_learning_rate: 0.01, decay_steps: "
             "100, decay_rate: 0.5}}}}.",
}


def keras_warnings(caught: list[Any], path: str, kwargs: dict[str, Any] | None = None) -> \
        list[Problem]:
    """Keras's UserWarnings while building from the config, as Problems (no file paths);
    any other warning caught is passed on as if it had not been caught.

    Args:
        caught: what ``warnings.catch_warnings(record=True)`` recorded.
        path: the key of the object being built (``model.layers[0].Dense``).
        kwargs: its arguments: a warning that names one of them is put at that key.

    Example: ``{SGD: {decay: 0.1}}`` -> ``compile.optimizer.SGD.decay: ... received Keras
    says: Argument `decay` is no longer supported and will be ignored. Remove it; ...``.
    """
    problems = []
    for warning in caught:
        # Keras's UserWarnings (some point at their caller, stacklevel=2); others, such as
        # TensorFlow's deprecation notes or a ResourceWarning, are not about the config
        if not issubclass(warning.category, UserWarning) or not any(
                f"{os.sep}{package}{os.sep}" in warning.filename
                for package in ("keras", "nettrain")):
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)  # as if it had not been caught
            continue
        text = " ".join(str(warning.message).split()).rstrip(".")
        named = [a for a in re.findall(r"`(\w+)", text) if a in (kwargs or {})]
        named = sorted(named, key=named.count, reverse=True)  # the one it is most about
        key = f"{path}.{named[0]}" if named else path
        advice = _WARNED.get(named[0], "Remove it.") if named else None
        if named:
            advice = advice.format(value=kwargs[named[0]])
        expected = "arguments that Keras uses as given" if named else \
            "a config Keras builds without warnings"
        problems.append(Problem(key, expected, f"Keras says: {text}", advice))
    return problems


def _whole_numbers_as_floats(cls: type, kwargs: dict[str, Any]) -> None:
    """``learning_rate: 1`` means 1.0: Keras refuses an int where its default is a float."""
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return
    for key, value in kwargs.items():
        if type(value) is int and key in params and isinstance(params[key].default, float):
            kwargs[key] = float(value)


def string_names(registry: Registry) -> list[str]:
    """Lowercase names Keras's ``get`` accepts: functions, and classes in snake_case."""
    names = [n for n, obj in registry.names().items() if not inspect.isclass(obj)]
    names += [re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", n).lower() for n, obj in
              registry.names().items() if inspect.isclass(obj)]
    return [n for n in dict.fromkeys(names) if _keras_gets(n, registry)]


def check_string(value: str, registry: Registry, path: str) -> Problem | None:
    """A string argument Keras will resolve itself ('relu', 'he_normal'): is it known?"""
    if _keras_gets(value, registry):
        return None
    close = did_you_mean(value, string_names(registry))
    return Problem(path, f"a Keras {registry.kind} name (keras.{registry.module})",
                   f"'{value}'", f"Did you mean '{close}'?" if close else None)


def _keras_gets(name: str, registry: Registry) -> bool:
    try:
        registry.keras_module().get(name)
        return True
    except Exception:  # Keras's get raises ValueError, TypeError or KeyError for bad names
        return False


def _class_hint(name: str, registry: Registry) -> str | None:
    camel = "".join(part.capitalize() for part in name.split("_"))
    for candidate in registry.names():
        if candidate.lower() == camel.lower():
            return f"To pass arguments use the class: {{{candidate}: {{...}}}}"
    return None


def accepted_kwargs(cls: type, strict: bool = True) -> set[str] | None:
    """The keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the MRO.

    None when some class takes ``**kwargs`` without naming them (then Keras decides), unless
    ``strict`` is False: then the names found so far.
    """
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in params
                  if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
        if klass.__name__ == "Layer":
            # Layer.__init__ pops these from **kwargs itself.
            return names | {"input_shape", "input_dim", "batch_size", "batch_input_shape"}
    return None if strict else names


# Argument names of older Keras versions that tutorials still use.
_RENAMED = {"lr": "learning_rate", "alpha": "negative_slope", "nb_filter": "filters",
            "output_dim": "units", "init": "kernel_initializer",
            "W_regularizer": "kernel_regularizer"}


def _unknown_kwargs(cls: type, kwargs: dict[str, Any], path: str,
                    strict: bool = True) -> list[Problem]:
    accepted = accepted_kwargs(cls, strict)
    if accepted is None:
        return []
    shown = sorted(a for a in accepted if a not in ("input_shape", "input_dim", "batch_size",
                                                     "batch_input_shape"))
    problems = []
    for key in kwargs:
        if key not in accepted:
            close = _RENAMED.get(key) if _RENAMED.get(key) in accepted else \
                did_you_mean(key, accepted)
            problems.append(Problem(
                f"{path}.{key}", f"an argument of {cls.__name__} ({', '.join(shown)})",
                f"unknown argument '{key}'", f"Did you mean '{close}'?" if close else None))
    required = [p.name for p in inspect.signature(cls.__init__).parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and p.name != "self"]
    missing = [r for r in required if r not in kwargs]
    if missing and not problems:
        problems.append(Problem(
            path, f"the required argument{'s' if len(missing) > 1 else ''} "
                  f"{', '.join(missing)} of {cls.__name__}",
            "nothing", f"e.g. {{{cls.__name__}: {{{missing[0]}: ...}}}}"))
    return problems


def _keras_message(exc: Exception, name: str) -> str:
    """What Keras said, without its advice about Python code (custom objects, decorators)."""
    if isinstance(exc, KeyError):
        return f"a {{class_name: ..., config: ...}} mapping in the arguments lacks {exc}"
    text = " ".join(str(exc).split())
    text = re.sub(r" Make sure custom classes.*", "", text)
    return text if len(text) < 400 else text[:397] + "..."
