"""Model formats: save a trained model into a run directory, each format checked by reloading
it, and load it back safely (Keras safe mode; a SavedModel only when asked for by name).

Formats: ``keras`` (``model.keras``), ``json`` (``model.json`` + ``model.weights.h5``) and
``savedmodel`` (``saved_model/``, ``model.export``). The Keras files load and predict under
every Keras backend (:mod:`nettrain.run.portable`).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nettrain.errors import NettrainError, RunError, UsageError
from nettrain.run.directory import (
    CONFIG,
    DATASET,
    JSON_FILE,
    KERAS_FILE,
    SAVED_MODEL,
    WEIGHTS_FILE,
    damaged,
)
from nettrain.run import writing
from nettrain.run.portable import any_backend
from nettrain.run.record import RunRecord
from nettrain.text import command


def save_model(model: Any, run_dir: Path, formats: list[str], sample: Any = None,
               info: dict[str, Any] | None = None) -> list[str]:
    """Save ``model`` in each format; each lands whole (:mod:`nettrain.run.writing`).

    Args:
        model: the trained model.
        run_dir: where the files go.
        formats: keras, json and/or savedmodel.
        sample: a few inputs (default none); when given, each format is reloaded before it is
            moved into place and must predict them as ``model`` does, or it is not saved.
        info: the run's dataset description (what a SavedModel needs to reload).

    Returns the names written into ``run_dir``.
    """
    written: list[str] = []
    with writing.scratch(run_dir / "model") as tmp:  # .model.partial-HOST-PID-...
        for fmt in formats:
            names = write(model, fmt, tmp)
            if sample is not None:
                _check_reload(model, tmp, fmt, sample, info or {})
            for name in names:  # weights before model.json: model.json last marks it whole
                writing.put(tmp / name, run_dir / name)
            written += names
    return written


def write(model: Any, fmt: str, folder: Path) -> list[str]:
    """Write ``model`` in one format into ``folder`` (keras: ``model.keras``; json:
    ``model.weights.h5`` + ``model.json``; savedmodel: ``saved_model/``); return the names.

    A ``.keras`` file and ``model.json`` load and predict under every Keras backend
    (:func:`nettrain.run.portable.any_backend`).
    """
    writers: dict[str, Callable[[Path], list[str]]] = {
        "keras": lambda tmp: (model.save(tmp / KERAS_FILE), [KERAS_FILE])[1],
        "json": lambda tmp: (_save_json(model, tmp), [WEIGHTS_FILE, JSON_FILE])[1],
        "savedmodel": lambda tmp: (_export(model, tmp / SAVED_MODEL), [SAVED_MODEL])[1],
    }
    with any_backend(model):
        return writers[fmt](folder)


def _check_reload(model: Any, folder: Path, fmt: str, sample: Any, info: dict[str, Any]) -> None:
    """Never save a model that predicts differently after reloading."""
    import numpy as np

    expected = _outputs(model, sample)
    try:
        reloaded, _ = load_model(folder, fmt, info) if not _foreign_graph(fmt) else \
            (_serving_function(folder / SAVED_MODEL), None)
    except RunError as exc:  # not "damaged": the file was just written, by this model
        raise RunError(f"The {fmt} format of this model does not reload "
                       f"({getattr(exc, 'reason', exc)}); it was not saved. Choose another "
                       "format in save.formats.") from None
    got = _outputs(reloaded, sample) if not _foreign_graph(fmt) else \
        np.asarray(reloaded(sample))
    rtol, atol = tolerance(model)
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=rtol, atol=atol):
        raise RunError(f"The {fmt} format of this model predicts differently after reloading "
                       f"(largest difference {np.max(np.abs(got - expected)):.3g}); it was not "
                       "saved. Choose another format in save.formats.")


def _outputs(model: Any, sample: Any) -> Any:
    """``model``'s outputs for ``sample`` (numpy), in inference. On JAX its forward pass is
    one compiled program, the same for a model and its reloaded copy (so the copy's is read
    from the compile cache, :mod:`nettrain.backends.compile_cache`), rather than each op
    compiled on its own when called eagerly (a cold run of the MNIST MLP: 14 programs, about
    0.2 CPU s more)."""
    import keras

    from nettrain.data.pipeline import to_tensors

    state = None
    if keras.backend.backend() == "jax":
        try:
            state = ([v.value for v in model.trainable_variables],
                     [v.value for v in model.non_trainable_variables])
        except TypeError:  # a fit stopped mid-epoch (Ctrl-C) left variables it had purged
            pass           # without a value (a dropout seed): the eager call reads only its own
    if state is None:
        return keras.ops.convert_to_numpy(model(to_tensors(sample), training=False))
    import jax

    def forward(trainable: Any, other: Any, x: Any) -> Any:
        return model.stateless_call(trainable, other, x, training=False)[0]

    return keras.ops.convert_to_numpy(jax.jit(forward)(*state, sample))  # numpy: no staging


def tolerance(model: Any) -> tuple[float, float]:
    """(rtol, atol): how far a written file's outputs ``a`` may be from the model's ``b``, as
    ``numpy.allclose`` compares (``|a - b| <= atol + rtol * |b|``), for the reload check of
    every save and the default of ``nettrain export``. A float32 model rounds to about 7
    digits (ONNX and TFLite differ from TensorFlow by 1 to 2 units in the last place: 0.0156
    on outputs near 1e5, 1.6e-7 relative); a 16-bit compute dtype (mixed precision) to about
    3, differently in another graph."""
    half = any(getattr(layer, "compute_dtype", None) in ("float16", "bfloat16")
               for layer in [model, *model.layers])
    return HALF_TOLERANCE if half else FLOAT32_TOLERANCE


FLOAT32_TOLERANCE = (1e-4, 1e-5)  # (rtol, atol), see tolerance
HALF_TOLERANCE = (1e-2, 1e-2)


def _foreign_graph(fmt: str) -> bool:
    """A SavedModel written off TensorFlow (JAX, through jax2tf): Keras's TFSMLayer, which
    loads it as a layer, runs only on TensorFlow, so its reload is checked in TensorFlow."""
    import keras

    return fmt == "savedmodel" and keras.backend.backend() != "tensorflow"


def _serving_function(folder: Path) -> Any:
    """The ``serve`` function of the SavedModel in ``folder``, called on numpy inputs."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(folder))  # held by the function: its variables live
    return lambda x: loaded.serve(tf.constant(x)).numpy()


def _export(model: Any, folder: Path) -> None:
    """``model.export``: a SavedModel whose ``serve`` signature takes the named inputs of a
    model of columns, or else one input named ``inputs`` (Keras would name it after an inner
    tensor, ``keras_tensor_39``, a name that differs from model to model)."""
    import keras

    from nettrain.data.columns import SERVING_INPUT

    signature = None
    inputs = getattr(model, "inputs", None) if isinstance(model, keras.Sequential) else None
    if inputs and len(inputs) == 1:
        signature = [keras.InputSpec(shape=(None, *inputs[0].shape[1:]), dtype=inputs[0].dtype,
                                     name=SERVING_INPUT)]
    model.export(str(folder), verbose=False, input_signature=signature)


def _save_json(model: Any, folder: Path) -> None:
    model.save_weights(folder / WEIGHTS_FILE)
    (folder / JSON_FILE).write_text(model.to_json(), encoding="utf-8")


def saved_formats(path: Path) -> list[str]:
    """The model formats a run directory holds, in the order load_model tries them."""
    found = []
    if (path / KERAS_FILE).is_file():
        found.append("keras")
    if (path / JSON_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
        found.append("json")
    if (path / SAVED_MODEL).is_dir():
        found.append("savedmodel")
    return found


def load_model(path: Path, prefer: str | None = None, info: dict[str, Any] | None = None) -> \
        tuple[Any, str]:
    """Load the model from a run directory or a saved model path; return it and its format.

    A run directory is read in the order keras, json unless ``prefer`` names a format.
    Loading is in Keras's safe mode: nothing in the files can run code. A SavedModel is a
    program (loading it runs its graph), so it is loaded only when ``prefer`` is
    ``"savedmodel"``: the user asked for it with ``--format savedmodel``.
    """
    candidates: list[tuple[str, Path]]
    if path.is_dir() and (path / "saved_model.pb").is_file():
        if prefer != "savedmodel":
            raise UsageError(_untrusted(path, f"{path} is a SavedModel folder"))
        candidates = [("savedmodel", path)]
    elif path.is_dir():
        candidates = [("keras", path / KERAS_FILE), ("json", path / JSON_FILE),
                      ("savedmodel", path / SAVED_MODEL)]
        latest = _latest_save(path)
        if latest is not None:  # files of an earlier save (a resume changed save.formats)
            stale = [fmt for fmt, file in candidates if file.name not in latest]
            candidates = [c for c in candidates if c[0] not in stale]
            if prefer in stale and (path / dict(_FILES)[prefer]).exists():
                raise UsageError(f"--format {prefer}: the {prefer} files in {path} are from an "
                                 "earlier save (the run's last save.formats did not include "
                                 f"it); use --format {candidates[0][0]}." if candidates else
                                 f"--format {prefer}: the {prefer} files are stale.")
        if prefer:
            candidates = [c for c in candidates if c[0] == prefer]
        elif any(c[0] == "savedmodel" and c[1].is_dir() for c in candidates) and not any(
                c[1].exists() for c in candidates if c[0] != "savedmodel"):
            raise UsageError(_untrusted(path, f"the only model in {path} is {SAVED_MODEL}/"))
        else:
            candidates = [c for c in candidates if c[0] != "savedmodel"]
    elif path.suffix == ".keras":
        candidates = [("keras", path)]
    elif path.suffix == ".json":
        candidates = [("json", path)]
    else:
        raise UsageError(f"expected a run directory, a .keras file, a model.json or a "
                         f"SavedModel folder; received '{path}'.")
    for fmt, file in candidates:
        if file.exists():
            if fmt != "savedmodel" and not file.is_file():  # a pipe or a device never ends
                raise damaged(file, "not a regular file: a model is read only from a file")
            return _load(fmt, file, info or {}), fmt
    saved = saved_formats(path) if path.is_dir() else []
    if prefer and saved:
        raise UsageError(f"--format {prefer}: this run saved {', '.join(saved)}, not {prefer} "
                         f"(save.formats). Use --format {saved[0]}.")
    status = RunRecord(path).read().get("status") if path.is_dir() else None
    why = {"failed": "the run failed before saving (see run.json)",
           "interrupted": "the run was interrupted before its first epoch completed",
           "running": "the run is still training, or was killed: nettrain fit --resume "
                      f"{path}"}.get(status or "", "is this a run directory made by "
                                                   "'nettrain fit'?")
    raise RunError(f"No saved model in {path} (looked for {KERAS_FILE}, {JSON_FILE} + "
                   f"{WEIGHTS_FILE}, {SAVED_MODEL}/): {why}.")


def _untrusted(path: Path, what: str) -> str:
    return (f"Not loaded: {what}, and a SavedModel is a program: loading it runs the TensorFlow "
            "graph inside, which can read and write files. nettrain loads one only when you "
            "ask: add --format savedmodel if you trust where it came from (you made it, or "
            "someone you trust did).")


def _load(fmt: str, file: Path, info: dict[str, Any]) -> Any:
    """Load one saved format; a file that does not load is named as damaged, with a way on."""
    import keras

    try:
        if fmt == "keras":
            if not zipfile.is_zipfile(file):
                raise ValueError("not a whole .keras archive")
            return keras.saving.load_model(file, compile=False, safe_mode=True)
        if fmt == "json":
            return _load_json(file)
        return _load_saved_model(file, info)
    except NettrainError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever Keras, h5py or TensorFlow raise
        run = file.parent if file.parent.joinpath(CONFIG).is_file() else None
        others = [f for f in saved_formats(run) if f != fmt] if run else []
        trust = " (a SavedModel runs its own graph: only if you trust it)" \
            if others[:1] == ["savedmodel"] else ""
        advice = (f"Load another saved format: --format {others[0]}{trust}, or restore the "
                  "file from a copy of the run directory." if others else
                  "Restore it from a copy of the run directory, or train again"
                  + (f" ({command('nettrain', 'fit', run / CONFIG)})." if run else "."))
        file = getattr(exc, "file", file)  # model.json's weights file
        error = damaged(file, f"or not a model nettrain can load safely: {exc}", advice)
        error.reason = " ".join(str(exc).split())[:200]  # type: ignore[attr-defined]
        raise error from None


_FILES = (("keras", KERAS_FILE), ("json", JSON_FILE), ("savedmodel", SAVED_MODEL))


def _latest_save(path: Path) -> list[str] | None:
    """The file names the run's last save wrote (run.json 'saved'), when it says."""
    saved = RunRecord(path).read().get("saved")
    return saved if isinstance(saved, list) else None


def _load_json(file: Path) -> Any:
    import keras

    weights = file.with_name(WEIGHTS_FILE)
    if not weights.is_file():
        raise RunError(f"{file} has no weights beside it ({weights.name}).")
    spec = json.loads(file.read_text(encoding="utf-8"))
    if not isinstance(spec, dict):
        raise ValueError(f"expected a JSON object; it holds {type(spec).__name__}")
    model = keras.saving.deserialize_keras_object(spec, safe_mode=True)
    if not isinstance(model, keras.Model):
        raise ValueError(f"it describes a {type(model).__name__}, not a model")
    # An adapted Normalization layer must get its weights before its first call.
    try:
        model.load_weights(weights)
    except Exception as exc:  # noqa: BLE001 - h5py and Keras raise many kinds
        raise _WeightsError(weights, f"not the weights of {file.name}: {exc}") from None
    return model


class _WeightsError(ValueError):
    """model.json loaded, its weights file did not."""

    def __init__(self, file: Path, message: str):
        super().__init__(message)
        self.file = file


def _load_saved_model(folder: Path, info: dict[str, Any]) -> Any:
    """A SavedModel's serving function wrapped as a Keras model (for evaluate and predict)."""
    import keras

    # float32: under a mixed precision policy Keras cannot infer what the layer returns
    layer = keras.layers.TFSMLayer(str(folder), call_endpoint="serve", dtype="float32")
    columns = info.get("columns")
    if columns:  # named inputs, one per column
        from nettrain.data.columns import INPUT_DTYPES, names_of

        names = names_of(info)
        inputs = {names[c]: keras.Input(shape=(1,), name=names[c], dtype=INPUT_DTYPES[k])
                  for c, k in columns.items()}
        return keras.Model(inputs, layer(inputs))
    if info.get("input_shape") is not None:
        return keras.Sequential([keras.Input(shape=tuple(info["input_shape"])), layer])
    # A SavedModel on its own: its serving signature says what it takes.
    import tensorflow as tf

    args, kwargs = tf.saved_model.load(str(folder)).signatures["serve"].structured_input_signature
    specs = [*args, *kwargs.values()]
    if len(specs) != 1:
        raise RunError(f"{folder}: a SavedModel with named inputs needs its run's {DATASET} "
                       "(predict with the run directory).")
    return keras.Sequential([keras.Input(shape=tuple(specs[0].shape[1:])), layer])
