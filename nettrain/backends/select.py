"""Which Keras backend a process runs (TensorFlow, JAX or PyTorch): ``backend:`` in the config,
``--backend`` on the command line, ``auto`` resolved to the fastest installed backend that can
run the config, and ``KERAS_BACKEND`` set before Keras is first imported.

Keras fixes its backend when ``keras`` is first imported, once per process. So every command
that trains, evaluates or predicts calls :func:`use` before its first ``import keras``
(``nettrain.cli.common._load_keras``), and a sweep's trial processes inherit the choice in
their environment. In a process where Keras is already loaded (a notebook, the tests' CliRunner)
``auto`` keeps the loaded backend when it can run the config, and an explicit other backend is
refused with a message saying to start a new process.

What a backend can run is decided from the config alone (:func:`cannot_run`), with no import:

- ``data.categorical`` columns become StringLookup/IntegerLookup layers on string tensors,
  which only TensorFlow has;
- ``distribute: mirrored`` is a ``tf.distribute`` strategy, ``deterministic: true`` is
  TensorFlow's op determinism;
- ``save.formats: [savedmodel]`` is ``model.export``: TensorFlow, or JAX through jax2tf (both
  need TensorFlow installed); PyTorch's export fails in Keras 3.15.

Example::

    choice = choose(config, requested="auto")   # Choice(name='jax', why='...')
    use(choice.name)                            # before the first import of keras
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Any

from nettrain.errors import ConfigError, Problem, UsageError

NAMES = ("tensorflow", "jax", "torch")
CHOICES = ("auto", *NAMES)

# ``auto``'s order, fastest first, from benchmarks/backend_order.py on the 2-core machine
# (plain model.fit, samples/s after the first epoch; the numbers are in README.md):
# JAX trains the seed MLP and the small CNN fastest, TensorFlow next, PyTorch (CPU) last.
ORDER = ("jax", "tensorflow", "torch")
# ... but XLA's convolutions on CPU are slow: a model with Conv layers trains fastest on
# TensorFlow.
CONVOLUTION_ORDER = ("tensorflow", "jax", "torch")

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


def cannot_run(config: Any, name: str, loading: bool = False) -> list[tuple[str, str]]:
    """Why backend ``name`` cannot run ``config``: (config key, reason) pairs, empty when it
    can. From the config alone: nothing is read or imported. ``loading``: only load its
    trained model and run it (evaluate, predict), where only the string inputs count."""
    if name == "tensorflow":
        return []
    reasons = []
    if config.data.categorical:
        reasons.append(("data.categorical", "categorical columns are encoded by "
                        "StringLookup/IntegerLookup layers on string tensors, which only "
                        "TensorFlow runs"))
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


def choose(config: Any | None, requested: str | None = None, loading: bool = False) -> Choice:
    """The backend to run ``config`` on (None: a model without its config, any backend).

    Args:
        config: the validated config (its ``backend`` key), or None.
        requested: ``--backend`` of the command line, which wins over the config's key.
        loading: only to load the trained model and run it (see :func:`cannot_run`).

    Raises ConfigError (exit 2) when the backend asked for cannot run the config or is not
    installed, naming the key and what to do.
    """
    key = "--backend" if requested else "backend"
    wanted = requested or (getattr(config, "backend", None) if config is not None else None) \
        or "auto"
    if wanted not in CHOICES:
        raise UsageError(f"{key}: expected one of {', '.join(CHOICES)}; received {wanted!r}.")
    if wanted != "auto":
        _check(config, wanted, key, loading)
        return Choice(wanted, f"{key}: {wanted}")
    if (env := os.environ.get("KERAS_BACKEND")) in NAMES and loaded() is None and \
            installed(env) and (config is None or not cannot_run(config, env, loading)):
        return Choice(env, f"auto: KERAS_BACKEND={env} in the environment")
    now = loaded()
    if now in NAMES and (config is None or not cannot_run(config, now, loading)):
        return Choice(now, f"auto: Keras was already loaded on {now} in this process")
    return fastest(config, loading)


def order(config: Any | None) -> tuple[str, ...]:
    """The backends fastest first for ``config``: :data:`ORDER`, except that a model with
    convolution layers trains fastest on TensorFlow (:data:`CONVOLUTION_ORDER`)."""
    if config is not None and any("Conv" in _layer_name(layer)
                                  for layer in config.model.layers):
        return CONVOLUTION_ORDER
    return ORDER


def _layer_name(layer: Any) -> str:
    return next(iter(layer)) if isinstance(layer, dict) else str(layer)


def fastest(config: Any | None, loading: bool = False) -> Choice:
    """``auto`` on its own: the first backend of :func:`order` that is installed and can run
    ``config`` (the environment and the loaded Keras aside)."""
    ranked = order(config)
    for name in ranked:
        if installed(name) and (config is None or not cannot_run(config, name, loading)):
            skipped = [n for n in ranked[:ranked.index(name)] if installed(n)]
            why = "auto: the fastest installed backend" + \
                (" for convolutions" if ranked is CONVOLUTION_ORDER else "") if not skipped \
                else f"auto: {', '.join(skipped)} cannot run this config " \
                     f"({_reasons(config, skipped[0], loading)})"
            return Choice(name, why)
    raise UsageError("No Keras backend that can run this config is installed: "
                     f"pip install '{EXTRAS['tensorflow']}'.")


def _reasons(config: Any, name: str, loading: bool = False) -> str:
    return "; ".join(f"{key}: {why}" for key, why in cannot_run(config, name, loading))


def _check(config: Any | None, name: str, key: str, loading: bool = False) -> None:
    """Refuse backend ``name`` for ``config`` when it is not installed or cannot run it."""
    problems = []
    if not installed(name):
        problems.append(Problem(key, f"an installed backend ({', '.join(n for n in NAMES if installed(n))})",
                                repr(name), f"pip install '{EXTRAS[name]}', or backend: auto"))
    for where, why in cannot_run(config, name, loading) if config is not None else []:
        with contextlib.suppress(UsageError):
            auto = fastest(config, loading).name
        problems.append(Problem(key, f"a backend that can run this config ({why}, at {where})",
                                repr(name), f"Use backend: auto (which picks {auto} for this "
                                f"config) or tensorflow, or change {where}"))
    if not problems:
        return
    if config is not None and hasattr(config, "error") and key == "backend":
        raise config.error(problems)
    raise (UsageError if key == "--backend" else ConfigError)(problems)


def tensorflow_needed(config: Any | None) -> bool:
    """Whether a run of ``config`` off TensorFlow still needs TensorFlow imported: images are
    read by ``image_dataset_from_directory`` (tf.data), the savedmodel format is written by
    TensorFlow, the TensorBoard callback writes TensorFlow summaries. None: a model without
    its config (unknown, so yes)."""
    if config is None:
        return True
    callbacks = {next(iter(c)) if isinstance(c, dict) else c for c in config.fit.callbacks}
    return bool(config.data.images or config.data.categorical or "TensorBoard" in callbacks
                or "savedmodel" in config.save.formats)


_keep_out = {"tensorflow": False}  # set by use(): after Keras's import, hide TensorFlow


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
    return name


def settle() -> None:
    """Right after ``import keras``: when :func:`use` found TensorFlow unneeded, Keras's lazy
    TensorFlow module reads as not installed. Keras imports TensorFlow wherever it can (to
    seed its generator in ``set_random_seed``, to recognise its types when saving), which
    costs a JAX or PyTorch process 3-5 s and a few hundred MB for nothing it uses."""
    if not _keep_out["tensorflow"] or "tensorflow" in sys.modules:
        return
    from keras.src.utils import module_utils  # Keras's switch: no public one exists

    if module_utils.tensorflow._available is None:
        module_utils.tensorflow._available = False


def environment(name: str) -> dict[str, str]:
    """The environment variables a child process needs to run backend ``name`` (a sweep's
    trial processes)."""
    return {"KERAS_BACKEND": name}
