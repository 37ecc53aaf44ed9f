"""The config's callbacks: which ones are refused, what they may monitor, where they write.

People share configs like code, so a config's callbacks may write only inside the run
directory: every path argument is taken relative to it, and an absolute path, one that leaves
it (``..``, a symlink) or one that would replace a file nettrain writes is a config error.
``validate`` checks all of this; :func:`place` puts the paths under the run directory at fit
time (and checks for symlinks there, which only exist once the directory does).
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
from pathlib import Path
from typing import Any

from nettrain.config.fields import spec_kwargs, spec_name
from nettrain.config.schema import Config
from nettrain.errors import Problem, did_you_mean
from nettrain.run import directory as rundir

# The arguments of Keras callbacks that name a file or a folder to write.
PATHS = {"CSVLogger": {"filename": "file"}, "ModelCheckpoint": {"filepath": "file"},
         "TensorBoard": {"log_dir": "folder"}, "OrbaxCheckpoint": {"directory": "folder"}}

# The format spec a {name} in a callback path may have: a number's sign, width, precision and
# type, never a fill character or 'c' (Keras formats ModelCheckpoint's filepath, so
# '..{epoch:/>3}' would become '..//1', a path out of the run directory).
_NUMBER_FORMAT = re.compile(r"[+\- ]?0?(?P<width>\d*)(\.(?P<precision>\d+))?[deEfFgG%]?")

# The most bytes one name of a path may have (Linux, macOS and Windows file systems): a
# longer file name fails when Keras writes it, after an epoch of training.
NAME_MAX = 255
# What a {name} of a callback path is filled in with to measure it: the run's last epoch for
# {epoch}, a large batch number, and a metric's value with a sign and six digits.
_BATCH, _VALUE = 999999, -123456.789

# Callbacks a config may not use, each with the reason and the way nettrain does it instead.
REFUSED = {
    "BackupAndRestore": "no BackupAndRestore: nettrain checkpoints the run in the run "
                        "directory itself (and BackupAndRestore deletes its folder at the end)",
    "RemoteMonitor": "no RemoteMonitor: it sends the training logs over the network",
    "LambdaCallback": "no LambdaCallback: it runs Python code, which a config cannot hold",
    "LearningRateScheduler": "no LearningRateScheduler: its schedule is Python code, which a "
                             "config cannot hold",
}
_INSTEAD = {
    "BackupAndRestore": "Remove it: an interrupted run continues with nettrain fit --resume "
                        "RUN_DIR.",
    "LearningRateScheduler": "Give the optimizer a schedule instead, e.g. learning_rate: "
                             "{ExponentialDecay: {initial_learning_rate: 0.01, decay_steps: "
                             "100, decay_rate: 0.9}}, or use ReduceLROnPlateau.",
}

# What nettrain itself writes at the top of a run directory.
_RESERVED = (rundir.CONFIG, rundir.DATASET, rundir.SPLIT, rundir.RUN, rundir.SUMMARY,
             rundir.HISTORY, rundir.METRICS, rundir.EVALUATION, rundir.KERAS_FILE,
             rundir.JSON_FILE, rundir.WEIGHTS_FILE, rundir.SAVED_MODEL, "checkpoints")


def check(config: Config) -> list[Problem]:
    """Every problem of ``fit.callbacks`` that needs no Keras object: refused callbacks,
    path arguments outside the run directory, TensorBoard without its package."""
    problems: list[Problem] = []
    written: dict[str, str] = {}  # each path a callback writes -> its key
    for i, spec in enumerate(config.fit.callbacks):
        name, kwargs = spec_name(spec), spec_kwargs(spec)
        path = f"fit.callbacks[{i}].{name}"
        if name in REFUSED:
            problems.append(Problem(path, REFUSED[name], None,
                                    _INSTEAD.get(name, "Remove it.")))
            continue
        if name == "TensorBoard" and importlib.util.find_spec("tensorboard") is None:
            problems.append(Problem(
                path, "the tensorboard package, which writes TensorBoard's logs",
                "not installed", "Install it with: pip install 'nettrain[tensorboard]' "
                "(or pip install tensorboard), or remove the callback."))
        for argument in PATHS.get(name, {}):
            if argument in kwargs:
                problem = _check_path(kwargs[argument], f"{path}.{argument}",
                                      config.fit.epochs)
                problems += [problem] if problem else []
                if problem is None:
                    problem = _check_shared(kwargs[argument], f"{path}.{argument}", written)
                    problems += [problem] if problem else []
    return problems


def _check_shared(value: str, key: str, written: dict[str, str]) -> Problem | None:
    """Two callbacks may not write one path (they would write over each other)."""
    normal = os.path.normpath(value)
    if normal in written:
        return Problem(key, "a path no other callback writes", f"'{value}', which "
                       f"{written[normal]} writes too", "Choose another name, e.g. "
                       f"'{Path(value).stem}-2{Path(value).suffix}'.")
    written[normal] = key
    return None


def _check_path(value: Any, key: str, epochs: int = 1) -> Problem | None:
    expected = "a path inside the run directory, relative to it (e.g. 'logs/epochs.csv')"
    if not isinstance(value, str) or not value.strip():
        return Problem(key, expected, repr(value))
    if os.path.isabs(value) or value.startswith("~"):
        return Problem(key, expected, f"'{value}', outside the run directory",
                       f"Write a relative path, e.g. '{Path(value).name}'.")
    parts = Path(os.path.normpath(value)).parts
    if not parts or parts[0] in ("..", "."):
        return Problem(key, expected, f"'{value}', outside the run directory",
                       f"Remove the '..', e.g. '{Path(value).name}'.")
    for field, spec, conversion in _fields(value):
        if conversion or not _NUMBER_FORMAT.fullmatch(spec):
            shown = "{" + field + (f"!{conversion}" if conversion else "") + \
                (f":{spec}" if spec else "") + "}"
            return Problem(key, f"{expected}; a {{name}} in it formats a number only (width, "
                           "precision, type)", f"'{shown}' in '{value}', which can turn into "
                           "other characters ('/', '..')",
                           "Write e.g. '{epoch:02d}' or '{val_loss:.4f}'.")
    problem = _check_length(value, key, expected, epochs)
    if problem:
        return problem
    if parts[0].startswith("."):
        return Problem(key, f"{expected}, not a hidden name (nettrain's lock and temporary "
                       "files)", f"'{value}'",
                       f"Choose another name, e.g. '{Path(value).name.lstrip('.') or 'log'}'.")
    if parts[0] in _RESERVED:
        return Problem(key, f"{expected}, not a file nettrain writes",
                       f"'{value}' (nettrain writes {parts[0]} itself)",
                       f"Choose another name, e.g. 'callbacks/{Path(value).name}'.")
    return None


def _check_length(value: str, key: str, expected: str, epochs: int) -> Problem | None:
    """Each name of the path ``value`` at most NAME_MAX bytes once Keras fills in its
    ``{...}`` (ModelCheckpoint formats its filepath at the end of each epoch). A width or a
    precision over NAME_MAX is refused without formatting it (``{epoch:0999999999d}`` would be
    a gigabyte). ``value``'s format specs are numbers' (see ``_NUMBER_FORMAT``)."""
    expected += f", each name in it at most {NAME_MAX} bytes once Keras fills in its {{...}}"
    suggestion = "Write a shorter name, e.g. 'ck-{epoch:02d}.keras'."
    filled = ""
    fields = False
    for literal, field, spec, _ in _parse(value):
        filled += literal
        if field is None:
            continue
        fields = True
        shown = "{" + field + (f":{spec}" if spec else "") + "}"
        size = _NUMBER_FORMAT.fullmatch(spec or "")
        for part in ("width", "precision"):
            number = size.group(part) if size else None
            if number and int(number) > NAME_MAX:
                return Problem(key, expected, f"'{shown}' in '{value}', a {part} of "
                               f"{int(number)}", suggestion)
        sample = epochs if field == "epoch" else _BATCH if field == "batch" else _VALUE
        try:
            filled += format(sample, spec or "")
        except ValueError as exc:  # '{epoch:.2d}', '{loss:d}': Keras fails after an epoch
            return Problem(key, f"{expected}; a format Python can apply to "
                           f"{'a whole number' if isinstance(sample, int) else 'a fraction'}",
                           f"'{shown}' in '{value}' ({exc})",
                           "Write e.g. '{epoch:02d}' or '{val_loss:.4f}'.")
    for name in Path(filled).parts:
        size = len(name.encode("utf-8", "surrogateescape"))
        if size > NAME_MAX:
            values = f" once filled in (with epoch {epochs} and a value of {_VALUE})" \
                if fields else ""
            return Problem(key, expected, f"'{value}', whose name '{name[:10]}…' is {size} "
                           f"bytes{values}", suggestion)
    return None


def check_monitors(config: Config, callbacks: list[Any], logged: list[str],
                   validation: bool) -> list[Problem]:
    """Every callback's ``monitor`` (given or Keras's default), and every ``{name}`` in a
    callback's path (``m-{epoch:02d}-{val_loss:.2f}.keras``), must be a name the run logs.

    Args:
        callbacks: the constructed callbacks, in the order of ``fit.callbacks``.
        logged: the names Keras logs for training (``loss``, ``accuracy``, ...).
        validation: whether there is a validation part (which logs ``val_`` + each name).

    Example: ``val_acc`` with ``logged=['loss', 'accuracy']`` -> a Problem that suggests
    ``val_accuracy``.
    """
    names = _log_names(logged, validation)
    problems = []
    for i, (spec, callback) in enumerate(zip(config.fit.callbacks, callbacks)):
        name, kwargs = spec_name(spec), spec_kwargs(spec)
        monitor = getattr(callback, "monitor", None)
        if isinstance(monitor, str) and monitor not in names:
            given = "monitor" in kwargs
            key = f"fit.callbacks[{i}].{name}" + (".monitor" if given else "")
            received = f"'{monitor}'" + ("" if given else f" (the default of {name})")
            problems.append(_unlogged(key, monitor, received, names, logged, validation))
        for argument in PATHS.get(name, {}):
            value = kwargs.get(argument)
            fields = _placeholders(value) if isinstance(value, str) else []
            for field in fields:
                if field not in names and field not in ("epoch", "batch"):
                    problems.append(_unlogged(
                        f"fit.callbacks[{i}].{name}.{argument}", field,
                        f"'{{{field}}}' in '{value}'", ["epoch", "batch", *names], logged,
                        validation))
    return problems


def check_modes(config: Config, callbacks: list[Any], model: Any, logged: list[str],
                validation: bool) -> list[Problem]:
    """A monitor with ``mode: auto`` needs a metric whose direction Keras knows (not, e.g.,
    ``true_positives``); Keras finds out only at the end of the first epoch, so ask it now
    (:func:`nettrain.model.direction.of_model`, the answer fit records).
    A monitor the run does not log is :func:`check_monitors`'s problem, not asked here."""
    from nettrain.model import direction

    names = _log_names(logged, validation)
    problems = []
    known: dict[str, str] | None = None
    for i, (spec, callback) in enumerate(zip(config.fit.callbacks, callbacks)):
        if getattr(callback, "mode", None) != "auto" or \
                not hasattr(callback, "_set_monitor_op") or callback.monitor not in names:
            continue
        known = direction.of_model(model) if known is None else known
        if direction.of(callback.monitor, known) is None:
            problems.append(Problem(
                f"fit.callbacks[{i}].{spec_name(spec)}.mode",
                f"'max' or 'min': Keras cannot tell whether '{callback.monitor}' should go up "
                "or down", "'auto'" + ("" if "mode" in spec_kwargs(spec) else " (the default)"),
                f"Add mode: max (or mode: min) to {spec_name(spec)}."))
    return problems


def _log_names(logged: list[str], validation: bool) -> list[str]:
    """The names a run logs: ``logged``, and ``val_`` + each with a validation part."""
    return [*logged, *(f"val_{n}" for n in logged)] if validation else list(logged)


def _placeholders(text: str) -> list[str]:
    """The names in a Keras path template: ``'m-{epoch:02d}.keras'`` -> ``['epoch']``."""
    return [field for field, _, _ in _fields(text)]


def _fields(text: str) -> list[tuple[str, str, str | None]]:
    """The ``(name, format spec, conversion)`` of each ``{...}`` in a Keras path template:
    ``'m-{epoch:02d}.keras'`` -> ``[('epoch', '02d', None)]``."""
    return [(field, spec or "", conversion) for _, field, spec, conversion in _parse(text)
            if field is not None]


def _parse(text: str) -> list[tuple[str, str | None, str | None, str | None]]:
    """``string.Formatter().parse`` of a Keras path template: ``(literal, name, spec,
    conversion)`` items; one literal item for a text with an unmatched brace, which Keras
    writes as it is."""
    import string

    try:
        return list(string.Formatter().parse(text))
    except ValueError:
        return [(text, None, None, None)]


def _unlogged(key: str, name: str, received: str, names: list[str], logged: list[str],
              validation: bool) -> Problem:
    if name.startswith("val_") and not validation and name[4:] in logged:
        return Problem(key, "a metric the run computes: the data has no validation part",
                       received, f"Set data.validation_split (e.g. 0.1), or monitor "
                       f"'{name[4:]}'.")
    close = did_you_mean(name, names)
    return Problem(key, f"a metric the run logs ({', '.join(names)})", received,
                   f"Did you mean '{close}'?" if close else
                   "Use one of these, or add the metric to compile.metrics.")


def place(config: Config, callbacks: list[Any], run_dir: Path) -> None:
    """Rebuild, in ``callbacks``, each callback that writes files, with its paths (given or
    Keras's defaults, e.g. TensorBoard's ``logs``) under ``run_dir``.

    Raises ConfigError for a path that a symlink in the run directory leads out of it. (A
    resumed run's CSVLoggers append: :func:`nettrain.run.checkpoints.continue_logs`.)
    """
    from nettrain.model.keras_names import CALLBACKS, lookup, resolve

    root = run_dir.resolve()
    for i, spec in enumerate(config.fit.callbacks):
        name = spec_name(spec)
        if name not in PATHS:
            continue
        kwargs = spec_kwargs(spec)
        params = inspect.signature(lookup(name, CALLBACKS, name).__init__).parameters
        for argument, kind in PATHS[name].items():
            value = kwargs.get(argument, params[argument].default)
            target = run_dir / value
            if not target.resolve().is_relative_to(root):
                raise config.error([Problem(
                    f"fit.callbacks[{i}].{name}.{argument}",
                    "a path inside the run directory", f"'{value}', which leads to "
                    f"{target.resolve()} (a symlink in {run_dir})")])
            if kind == "file":
                target.parent.mkdir(parents=True, exist_ok=True)
            kwargs[argument] = str(target)
        callbacks[i] = resolve({name: kwargs}, CALLBACKS, f"fit.callbacks[{i}]")
