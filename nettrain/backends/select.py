"""Which Keras backend a process runs (TensorFlow, JAX or PyTorch): ``backend:`` in the config,
``--backend`` on the command line, ``auto`` resolved to the installed backend that can run the
config and runs the job soonest as a whole process (:func:`ranking`: the job's work against
JAX's longer start-up), and ``KERAS_BACKEND`` set before Keras is first imported.

Keras fixes its backend when ``keras`` is first imported, once per process. So every command
that imports Keras (fit, validate, evaluate, predict, serve, export, track, sweep) asks
:func:`choose`, the one policy, and calls :func:`use` before its first ``import keras``
(``nettrain.cli.common._use_backend``); a sweep's trial processes and ``fit --processes``'s
processes inherit the choice in their environment and ask again, getting the same answer.
In a process where Keras is already loaded (a notebook, the tests' CliRunner) ``auto`` keeps
the loaded backend when it can run the config, and an explicit other backend is refused with
a message saying to start a new process.

What a backend can run is decided from the config and the command alone (:func:`cannot_run`),
with no import:

- ``data.categorical`` and ``data.text`` columns become StringLookup/IntegerLookup and
  TextVectorization layers on string tensors, which only TensorFlow has; so do the layers
  Keras itself says need TensorFlow (:func:`tensorflow_layers`: Hashing, ...);
- ``distribute: mirrored`` is a ``tf.distribute`` strategy, ``deterministic: true`` is
  TensorFlow's op determinism;
- ``save.formats: [savedmodel]`` is ``model.export``: TensorFlow, or JAX through jax2tf (both
  need TensorFlow installed); PyTorch's export fails in Keras 3.15;
- several processes (``fit --processes``) train on JAX's distributed runtime;
- a SavedModel (``--format savedmodel``; export's onnx and tflite convert one) is TensorFlow's
  graph.

Example::

    choice = choose(config, requested="auto")   # Choice(name='tensorflow', why='auto: ...')
    use(choice.name)                            # before the first import of keras
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nettrain.config.applications import is_application
from nettrain.errors import ConfigError, Problem, UsageError

NAMES = ("tensorflow", "jax", "torch")
CHOICES = ("auto", *NAMES)

# ``auto``'s rule, from whole ``nettrain fit`` processes: start-up + imports + compile + steps.
# JAX's compiled steps of a dense model cost less than TensorFlow's, but a cold JAX process
# (nothing in its compile cache) compiles more around them: the initializers, the fused
# training step and its short last batch, the test step's two shapes, the reload check.
# ``benchmarks/fit_phases.py mnist:EPOCHS --backend jax`` (perf.py's MNIST_CONFIG: 60,000
# random samples, 397,510 parameters; an empty compile cache each JAX run; whole processes
# alternating, 2 pairs, load average 3-5 on the 2 cores; results/fit_phases_mnist*.json): an
# epoch 1.45 CPU s on TensorFlow, 0.95 on JAX; the rest about even (JAX starts 1 s sooner,
# without TensorFlow, and compiles about 1 s more). CPU seconds (user + system) on JAX
# against TensorFlow: 2 epochs (4.8e10 of work) 0.95x (wall 1.03x); 4 epochs (9.5e10) 0.87x
# (wall 0.73x); 8 epochs (1.9e11) 0.78x (wall: 13.9 and 25.5 s against 15.2 and 19.6). So
# JAX repays its start-up from about 5e10; the threshold sits twice above (under load a cold
# JAX process's wall time can grow more than its CPU time: its compiles use one thread).
# With its programs in the user's cache (a rerun, :mod:`nettrain.backends.compile_cache`) 8
# epochs took 0.66x, but ``auto`` decides for the first run. The examples in configs/ (below
# 1e9 of work) are start-up and compile: they stay on TensorFlow. So a job of less work
# (:mod:`nettrain.backends.work`: training rows x epochs x parameters) than JAX_WORK runs on
# TensorFlow (never slower than TensorFlow alone, and its results), a larger one on JAX.
JAX_WORK = 1e11
# How many times JAX_WORK a job needs on JAX when it imports TensorFlow too (images,
# savedmodel, TensorBoard): both imports, and jax2tf for savedmodel, double the extra start-up.
TENSORFLOW_TOO = 2
SMALL_ORDER = ("tensorflow", "jax", "torch")
LARGE_ORDER = ("jax", "tensorflow", "torch")
# XLA's convolutions on CPU are slow: a model with Conv layers trains fastest on TensorFlow.
CONVOLUTION_ORDER = SMALL_ORDER
ORDER = LARGE_ORDER  # a model alone (no config): the order of the fastest steps

# The module each backend needs importable (``find_spec`` finds it without importing it).
_MODULES = {"tensorflow": ("tensorflow",), "jax": ("jax", "jaxlib"), "torch": ("torch",)}
EXTRAS = {"tensorflow": "nettrain", "jax": "nettrain[jax]", "torch": "nettrain[torch]"}


@dataclass(frozen=True)
class Choice:
    """The backend a command runs on, and why (for the run record and the summary)."""

    name: str
    why: str


def installed(name: str) -> bool:
    """Whether backend ``name`` can be imported here (nothing is imported to find out)."""
    try:
        return all(importlib.util.find_spec(module) is not None for module in _MODULES[name])
    except (ImportError, ValueError):
        return False


def loaded() -> str | None:
    """The backend of the Keras already imported in this process, or None."""
    if "keras" not in sys.modules:
        return None
    return sys.modules["keras"].backend.backend()


def cannot_run(config: Any | None, name: str, loading: bool = False, *,
               processes: bool = False, graph: str | None = None) -> list[tuple[str, str]]:
    """Why backend ``name`` cannot run ``config`` (None: a model without its config): (key,
    reason) pairs, empty when it can. From the config and the command alone: nothing is read
    or imported. ``loading``: only load its trained model and run it (evaluate, predict,
    serve, export, track), where only the string inputs count; ``processes``: train over
    several processes (JAX's distributed runtime); ``graph``: the ``--format`` read or
    written as TensorFlow's graph (savedmodel; onnx and tflite convert one)."""
    reasons = []
    if processes and name != "jax":
        reasons.append(("--processes", "training over several processes runs on JAX's "
                        "distributed runtime (jax.distributed)"))
    if graph and name != "tensorflow":
        reasons.append(("--format", f"--format {graph} is TensorFlow's graph of the model, "
                        "which Keras reads and writes on the TensorFlow backend"))
    if name == "tensorflow" or config is None:
        return reasons
    if config.data.categorical:
        reasons.append(("data.categorical", "categorical columns are encoded by "
                        "StringLookup/IntegerLookup layers on string tensors, which only "
                        "TensorFlow runs"))
    if config.data.text:
        reasons.append(("data.text", "text columns are vectorised by TextVectorization, "
                        "with TensorFlow's string ops, which only TensorFlow runs"))
    tensorflow_only = tensorflow_layers()
    for i, layer in enumerate(config.model.layers):
        if _layer_name(layer) in tensorflow_only:
            reasons.append((f"model.layers.{i}", f"{_layer_name(layer)} is a TensorFlow "
                            f"layer (Keras: 'Layer {_layer_name(layer)} requires "
                            "TensorFlow'), which runs on TensorFlow tensors only"))
    if loading:
        return reasons
    if config.distribute == "mirrored":
        reasons.append(("distribute", "distribute: mirrored is TensorFlow's "
                        "MirroredStrategy"))
    if config.deterministic:
        reasons.append(("deterministic", "deterministic: true is TensorFlow's op "
                        "determinism"))
    if name == "torch" and config.compile.steps_per_execution not in ("auto", 1):
        reasons.append(("compile.steps_per_execution", "Keras runs one step per call on the "
                        "torch backend (steps_per_execution must be 1, or auto)"))
    if "savedmodel" in config.save.formats:
        if name == "torch":
            reasons.append(("save.formats", "the savedmodel format (model.export) fails on "
                            "the torch backend in Keras 3"))
        elif not installed("tensorflow"):
            reasons.append(("save.formats", "the savedmodel format needs TensorFlow "
                            "installed (JAX exports through jax2tf)"))
    return reasons


@functools.cache
def tensorflow_layers() -> frozenset[str]:
    """The Keras layers that run on TensorFlow only (TextVectorization, StringLookup,
    Hashing, ...), by Keras's own check: their source raises "Layer NAME requires
    TensorFlow" where TensorFlow is not available. Read from Keras's files, not imported."""
    try:
        spec = importlib.util.find_spec("keras")
    except (ImportError, ValueError):
        return frozenset()
    names: set[str] = set()
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for path in Path(folder, "src", "layers").rglob("*.py"):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace")
                if "requires TensorFlow" in text:
                    names.update(_REQUIRES_TENSORFLOW.findall(text))
    return frozenset(names)


_REQUIRES_TENSORFLOW = re.compile(r"Layer (\w+) requires TensorFlow")


@dataclass(frozen=True)
class _Task:
    """What the command does with its backend (the arguments of :func:`cannot_run`)."""

    loading: bool = False
    processes: bool = False
    graph: str | None = None

    def cannot(self, config: Any | None, name: str) -> list[tuple[str, str]]:
        return cannot_run(config, name, self.loading, processes=self.processes,
                          graph=self.graph)


def choose(config: Any | None, requested: str | None = None, loading: bool = False, *,
           recorded: str | None = None, processes: bool = False,
           graph: str | None = None) -> Choice:
    """The backend a command runs on: the one policy every command asks (fit, validate,
    evaluate, predict, serve, export, track, sweep and its trials, ``fit --processes``).

    In order: ``requested`` (``--backend``); a ``graph`` format asks for TensorFlow; the
    backend the run trained on (``recorded``) when the config's ``backend`` is auto or that
    one and it can still run here (a resume: that one, or a refusal naming its install); the
    config's ``backend``; else ``auto``: ``KERAS_BACKEND`` in the environment (with the
    reason of the nettrain process that set it, :data:`WHY_VARIABLE`), the Keras already
    loaded in this process, the installed one that runs the job soonest (:func:`fastest`),
    each only when it can run the config and the command.

    Args:
        config: the validated config (its ``backend`` key), or None (a model file alone).
        requested: ``--backend`` of the command line, which wins over the config's key.
        loading: only to load the trained model and run it (see :func:`cannot_run`).
        recorded: the backend the run trained on (run.json's ``backend``).
        processes: training over several processes, on JAX's distributed runtime.
        graph: the ``--format`` that is TensorFlow's graph (savedmodel, onnx, tflite).

    Raises ConfigError or UsageError (exit 2) when the backend asked for cannot run the
    config or is not installed, or none installed can: naming the key and what to do.
    """
    task = _Task(loading, processes, graph)
    key = "--backend" if requested else "backend"
    if requested is None and graph:  # the format is the request
        requested, key = "tensorflow", "--format"
    if processes and not installed("jax"):  # whatever else was asked: the install is missing
        raise UsageError(Problem(
            "--processes", "JAX installed (several processes train on JAX's distributed "
            "runtime)", "JAX is not installed here", f"Install it: pip install "
            f"'{EXTRAS['jax']}', or train in one process (leave out --processes)"))
    if processes and requested is None and recorded in NAMES and recorded != "jax":
        raise UsageError(Problem(
            "--processes", "a run that trained on jax (several processes train on JAX's "
            "distributed runtime)", f"a run that trained on {recorded} (run.json)",
            "Resume it without --processes: another backend would change its weights"))
    if recorded in NAMES and not loading and requested in (None, recorded) and \
            not installed(recorded):  # a resume trains on: only the run's backend goes on alike
        raise UsageError(Problem(
            "--resume", f"the backend the run trained on, {recorded} (run.json), installed: "
            "another backend would change its weights", f"{recorded} is not installed here",
            f"Install it: pip install '{EXTRAS[recorded]}'"))
    if requested is None and recorded in NAMES and installed(recorded) and \
            (loaded() in (None, recorded) or not loading) and \
            getattr(config, "backend", "auto") in ("auto", recorded) and \
            not task.cannot(config, recorded):
        return Choice(recorded, "the backend the run trained on")
    wanted = requested or getattr(config, "backend", None) or "auto"
    if wanted not in CHOICES:
        raise UsageError(f"{key}: expected one of {', '.join(CHOICES)}; received {wanted!r}.")
    if wanted != "auto":
        _check(config, wanted, key, task)
        return Choice(wanted, f"--format {graph}: TensorFlow's graph" if key == "--format"
                      else f"{key}: {wanted}")
    env = os.environ.get("KERAS_BACKEND")
    if processes and env and env != "jax":  # a contradiction the user settles, as before
        _check(config, env, "KERAS_BACKEND", task)
    if processes and installed("jax") and not task.cannot(config, "jax"):  # also the launcher's
        return Choice("jax", "auto: several processes train on JAX's distributed runtime")
    if env in NAMES and loaded() is None and installed(env) and not task.cannot(config, env):
        inherited = os.environ.get(WHY_VARIABLE, "").partition("\t")
        if inherited[0] == env and inherited[2]:  # nettrain's own choice, made in its parent
            return Choice(env, inherited[2])
        return Choice(env, f"auto: KERAS_BACKEND={env} in the environment")
    now = loaded()
    if now in NAMES and not task.cannot(config, now):
        return Choice(now, f"auto: Keras was already loaded on {now} in this process")
    return _fastest(config, task)


def order(config: Any | None) -> tuple[str, ...]:
    """The backends fastest first for ``config`` as a whole process: see :func:`ranking`."""
    return ranking(config)[0]


def ranking(config: Any | None) -> tuple[tuple[str, ...], str]:
    """The backends fastest first for fitting ``config`` as a whole process, and why in terms
    of the job: a model with convolution layers, or a job whose work is below :data:`JAX_WORK`
    (or unknown), runs soonest on TensorFlow; a larger dense job on JAX. None (a model file
    alone): the order of the fastest steps, :data:`ORDER`."""
    if config is None:
        return ORDER, "the fastest steps for a model alone"
    if any("Conv" in (name := _layer_name(layer)) or is_application(name)  # applications too
           for layer in config.model.layers):
        return CONVOLUTION_ORDER, "convolutions train fastest on TensorFlow (XLA's are " \
                                  "slow on CPU)"
    from nettrain.backends import work as job_work

    work = job_work.estimate(config)
    too = tensorflow_needed(config)
    threshold = JAX_WORK * (TENSORFLOW_TOO if too else 1)
    if work.total is None:
        return SMALL_ORDER, f"a job of unknown size ({work}): TensorFlow starts soonest"
    size = f"{work} = {_short(work.total)} of work"
    if work.total < threshold:
        return SMALL_ORDER, f"{size}, below the {_short(threshold)} from which JAX's faster " \
            f"steps repay its longer start-up{' (this run imports TensorFlow too)' * too}"
    return LARGE_ORDER, f"{size}, from {_short(threshold)} JAX's faster steps repay its " \
        f"longer start-up{' (this run imports TensorFlow too)' * too}"


def _short(number: float) -> str:
    """7.3e8 for 725362800: the size of a job in a few characters."""
    return re.sub(r"\.0(?=e)|(?<=e)\+?0*(?=\d)", "", f"{number:.1e}")


def _layer_name(layer: Any) -> str:
    return next(iter(layer)) if isinstance(layer, dict) else str(layer)


def fastest(config: Any | None, loading: bool = False) -> Choice:
    """``auto`` on its own: the first backend of :func:`order` that is installed and can run
    ``config`` (the environment and the loaded Keras aside)."""
    return _fastest(config, _Task(loading))


def _fastest(config: Any | None, task: _Task) -> Choice:
    ranked, because = ranking(config)
    for name in ranked:
        if installed(name) and not task.cannot(config, name):
            ahead = ranked[:ranked.index(name)]
            missing = [n for n in ahead if not installed(n)]
            refused = [n for n in ahead if installed(n)]
            why = f"auto: {because}" + \
                (f"; {', '.join(missing)} not installed" if missing else "") + \
                (f"; {', '.join(refused)} cannot run this config "
                 f"({_reasons(config, refused[0], task)})" if refused else "")
            return Choice(name, why)
    raise UsageError(f"No installed Keras backend can run this config: "
                     f"{_none_runs(config, task)}.")


def _reasons(config: Any, name: str, task: _Task) -> str:
    return "; ".join(f"{key}: {why}" for key, why in task.cannot(config, name))


def _none_runs(config: Any | None, task: _Task) -> str:
    """Why no installed backend runs ``config``, and what to install or change."""
    said = "; ".join(f"{name} is not installed" if not installed(name) else
                     f"{name}: {_reasons(config, name, task)}" for name in NAMES)
    would = [name for name in NAMES if not installed(name) and not task.cannot(config, name)]
    if would:
        return f"{said}. Install {' or '.join(repr(EXTRAS[n]) for n in would)} " \
               f"(pip install '{EXTRAS[would[0]]}'), which can"
    keys = sorted({key for name in NAMES for key, _ in task.cannot(config, name)})
    return f"{said}. Change {' or '.join(keys)}"


def _check(config: Any | None, name: str, key: str, task: _Task = _Task()) -> None:
    """Refuse backend ``name`` for ``config`` when it is not installed or cannot run it."""
    problems = []
    if name not in NAMES or not installed(name):
        problems.append(Problem(key, f"an installed backend "
                                f"({', '.join(n for n in NAMES if installed(n))})",
                                repr(name), f"pip install '{EXTRAS[name]}', or backend: auto"
                                if name in NAMES else "Give one of them"))
    reasons = task.cannot(config, name) if name in NAMES else []
    if reasons:
        try:
            auto: str | None = _fastest(config, task).name
        except UsageError:
            auto = None
        others = [n for n in NAMES if n != name and installed(n) and not task.cannot(config, n)]
    for where, why in reasons:
        change = f"leave out {where}" if where.startswith("--") else f"change {where}"
        if key == "KERAS_BACKEND":
            hint = f"Unset KERAS_BACKEND or set KERAS_BACKEND={auto}, or {change}" if auto \
                else f"{_none_runs(config, task)}"
        elif auto is None:
            hint = _none_runs(config, task)
        else:
            hint = f"Use backend: auto (which picks {auto} for this config)" + \
                "".join(f" or {n}" for n in others) + f", or {change}"
        problems.append(Problem(key, f"a backend that can run this config ({why}, at "
                                f"{where})", repr(name), hint))
    if not problems:
        return
    if config is not None and hasattr(config, "error") and key == "backend":
        raise config.error(problems)
    raise (UsageError if key.startswith("--") or key == "KERAS_BACKEND" else
           ConfigError)(problems)


def tensorflow_needed(config: Any | None) -> bool:
    """Whether a run of ``config`` off TensorFlow still needs TensorFlow imported: images are
    read by ``image_dataset_from_directory`` (tf.data), the savedmodel format is written by
    TensorFlow, the TensorBoard callback writes TensorFlow summaries. None: a model without
    its config (unknown, so yes)."""
    if config is None:
        return True
    callbacks = {next(iter(c)) if isinstance(c, dict) else c for c in config.fit.callbacks}
    return bool(config.data.images or config.data.categorical or config.data.text
                or "TensorBoard" in callbacks or "savedmodel" in config.save.formats)


_keep_out = {"tensorflow": False}  # set by use(): after Keras's import, hide TensorFlow
_chosen: dict[str, Choice | None] = {"choice": None}
# Set by use() with KERAS_BACKEND: "NAME<tab>why", so that a child process that inherits
# KERAS_BACKEND from nettrain says why its parent chose it, not that the environment set it.
WHY_VARIABLE = "NETTRAIN_BACKEND_WHY"


def use(choice: Choice | str, config: Any | None = None) -> str:
    """Make ``choice`` the backend of this process: ``KERAS_BACKEND`` before Keras is first
    imported. Raises UsageError when Keras already runs on another backend here.

    With ``config`` a run that needs no TensorFlow (:func:`tensorflow_needed`) off
    TensorFlow, :func:`settle` then keeps Keras from importing it."""
    name = choice.name if isinstance(choice, Choice) else choice
    _keep_out["tensorflow"] = name != "tensorflow" and config is not None and \
        not tensorflow_needed(config)
    now = loaded()
    if now is not None and now != name:
        raise UsageError(f"Keras is already loaded on {now} in this process, and a process "
                         f"keeps its first backend; {name} needs a new process (run nettrain "
                         "from the shell, or set KERAS_BACKEND before importing keras).")
    os.environ["KERAS_BACKEND"] = name
    why = choice.why if isinstance(choice, Choice) else None
    _chosen["choice"] = Choice(name, why) if why else None
    if why:  # a child process (a sweep's trial) inherits the reason with the variable
        os.environ[WHY_VARIABLE] = f"{name}\t{why}"
    else:
        os.environ.pop(WHY_VARIABLE, None)
    return name


def chosen() -> Choice | None:
    """The backend :func:`use` made this process's, and why (None: not chosen by the policy),
    for the run's record (run.json's ``backend_why``)."""
    return _chosen["choice"]


def settle() -> None:
    """Right after ``import keras``: when :func:`use` found TensorFlow unneeded, Keras's lazy
    TensorFlow module reads as not installed. Keras imports TensorFlow wherever it can (to
    seed its generator in ``set_random_seed``, to recognise its types when saving), which
    costs a JAX or PyTorch process 3-5 s and a few hundred MB for nothing it uses. A Keras
    that moved its private switch (:func:`tensorflow_switch`) is left as it is: TensorFlow
    may then load, which costs only that start-up time. On JAX, its compiled programs are
    kept between runs (:mod:`nettrain.backends.compile_cache`)."""
    if loaded() == "jax":
        from nettrain.backends import compile_cache, jax_random

        compile_cache.enable()
        jax_random.install()  # the initializers' draws: the same numbers, fewer compile seconds
    if not _keep_out["tensorflow"] or "tensorflow" in sys.modules:
        return
    lazy = tensorflow_switch()
    if lazy is not None and lazy._available is None:
        lazy._available = False


def tensorflow_switch() -> Any | None:
    """Keras's lazy TensorFlow module (``keras.src.utils.module_utils.tensorflow``) when it
    still has the private flag :func:`settle` sets (``_available``: None until asked); None
    when Keras moved or renamed it (no public switch exists). tests/test_backends.py fails
    when it is None, so a Keras upgrade that moves it is noticed."""
    try:
        from keras.src.utils import module_utils
    except ImportError:
        return None
    lazy = getattr(module_utils, "tensorflow", None)
    # its __dict__, not getattr: LazyModule.__getattr__ imports TensorFlow to look a name up
    if "_available" not in getattr(lazy, "__dict__", {}):
        return None
    return lazy


def environment(name: str) -> dict[str, str]:
    """The environment variables a child process needs to run backend ``name`` (a sweep's
    trial processes)."""
    return {"KERAS_BACKEND": name}
