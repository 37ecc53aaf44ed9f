"""The export formats: how each is written from a run's model, how its own runtime loads it and
predicts, and which models it cannot carry (said before anything is converted).

| format     | written by                               | checked in                         |
| ---------- | ---------------------------------------- | ---------------------------------- |
| savedmodel | ``model.export`` (nettrain's own writer) | ``tf.saved_model.load``            |
| onnx       | ``python -m tf2onnx.convert``            | ``onnxruntime.InferenceSession``   |
| tflite     | ``tf.lite.TFLiteConverter``, builtin ops | ``ai_edge_litert`` ``Interpreter`` |
| keras      | ``model.save`` (nettrain's own writer)   | ``keras.saving.load_model``, under each installed backend |
"""

from __future__ import annotations

import contextlib
import importlib.util
import keyword
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nettrain.data.columns import SERVING_INPUT, names_of
from nettrain.errors import RunError, UsageError
from nettrain.model import saving
from nettrain.run.directory import KERAS_FILE, SAVED_MODEL

PIP = "pip install 'nettrain[export]'"
OUTPUT = "output_0"  # the SavedModel's serving output, kept by every conversion


@dataclass(frozen=True)
class Format:
    """One export format: its default file name, what it needs installed, and its runtime."""

    name: str
    file: str                   # the default name under RUN/export/
    packages: tuple[str, ...]   # import names the converter and the runtime need
    runtime: str                # in words, for the messages


FORMATS = {
    "savedmodel": Format("savedmodel", SAVED_MODEL, (), "tf.saved_model.load"),
    "onnx": Format("onnx", "model.onnx", ("tf2onnx", "onnx", "onnxruntime"), "onnxruntime"),
    "tflite": Format("tflite", "model.tflite", ("ai_edge_litert",),
                     "the LiteRT interpreter (ai-edge-litert)"),
    "keras": Format("keras", KERAS_FILE, (), "keras.saving.load_model"),
}


def check_installed(fmt: Format) -> None:
    """Refuse a format whose converter or runtime is not installed, saying the pip command."""
    missing = [name for name in fmt.packages if not _installed(name)]
    if missing:
        names = ", ".join(name.replace("_", "-") for name in missing)
        raise UsageError(f"--format {fmt.name} needs {names}, which {'is' if len(missing) == 1 else 'are'} "
                         f"not installed. Install the export extra: {PIP}")


def _installed(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None  # None: an import of it failed before
    return importlib.util.find_spec(name) is not None


def cannot_carry(fmt: Format, info: dict[str, Any]) -> str | None:
    """Why ``fmt`` cannot carry a run's model, known from its dataset.json alone (before any
    conversion), or None.

    Measured with tf2onnx 1.17, onnxruntime and ai-edge-litert: a text category (a
    StringLookup, a string -> int64 table) converts to both ONNX and TFLite builtin ops; a
    whole-number category (an IntegerLookup, an int64 -> int64 table) converts to neither; a
    text column's TextVectorization neither (tf2onnx: StaticRegexReplace, StringSplitV2 and
    RaggedBincount unsupported; TFLite builtins: StringLower and those neither).
    """
    columns = info.get("columns") or {}
    foreign = _foreign_names(fmt, info)
    if foreign:
        return (f"it takes input{'s' if len(foreign) > 1 else ''} named "
                f"{', '.join(map(repr, foreign))} (named by an earlier nettrain), which "
                f"{fmt.name} cannot take as {'they are' if len(foreign) > 1 else 'it is'}"
                f"{' (tf2onnx lowercases names)' if fmt.name == 'onnx' else ''}. Train the "
                "run again with this nettrain, which names inputs for every format, or export "
                "--format keras")
    texts = [c for c, kind in columns.items() if kind == "text"]
    if fmt.name in ("onnx", "tflite") and texts:
        return (f"the text column{'s' if len(texts) > 1 else ''} {', '.join(texts)} "
                f"{'are' if len(texts) > 1 else 'is'} vectorised inside the model by a "
                "TextVectorization (TensorFlow's regex, split and ragged string ops), which "
                f"{fmt.name} has no {'builtin ' if fmt.name == 'tflite' else ''}ops for. Export "
                "--format savedmodel or keras instead: both take raw text")
    integers = [c for c, kind in columns.items() if kind == "integer"]
    if fmt.name == "onnx" and integers:
        return (f"the whole-number categorical column{'s' if len(integers) > 1 else ''} "
                f"{', '.join(integers)} {'are' if len(integers) > 1 else 'is'} looked up in an "
                "int64 -> int64 table (IntegerLookup), and tf2onnx converts only string -> "
                "int64 tables (text categories). Export --format savedmodel or keras instead")
    if fmt.name == "tflite" and integers:
        return (f"the whole-number categorical column{'s' if len(integers) > 1 else ''} "
                f"{', '.join(integers)} {'are' if len(integers) > 1 else 'is'} looked up in an "
                "int64 -> int64 hash table (IntegerLookup), which TFLite has only as TensorFlow "
                "ops (Select TF ops), not as builtin ops; text categories convert. Export "
                "--format savedmodel or keras instead")
    return None


def _foreign_names(fmt: Format, info: dict[str, Any]) -> list[str]:
    """The input names of an earlier run's model (see
    :func:`nettrain.data.columns.names_of`) that ``fmt`` cannot take: a Python keyword in a
    SavedModel's signature (so TFLite's and ONNX's too), and in ONNX any name TensorFlow's
    placeholders change (tf2onnx lowercases them: 'Origin' is 'origin' there)."""
    if fmt.name == "keras":
        return []
    return [name for name in names_of(info).values() if keyword.iskeyword(name) or
            fmt.name == "onnx" and not re.fullmatch(r"[a-z][a-z0-9_]*", name)]


def text_support(config: Any, info: dict[str, Any]) -> list[str]:
    """For ``validate``, a model with text columns: the backends that run it (the backend
    policy's :func:`nettrain.backends.select.cannot_run`) and the export formats that carry
    it (:func:`cannot_carry`). Empty without text columns."""
    from nettrain.backends.select import NAMES, cannot_run

    texts = [c for c, kind in (info.get("columns") or {}).items() if kind == "text"]
    if not texts:
        return []
    runs = [name for name in NAMES if not cannot_run(config, name, loading=True)]
    carried = [fmt.name for fmt in FORMATS.values() if cannot_carry(fmt, info) is None]
    refused = [name for name in FORMATS if name not in carried]
    return [f"Text column{'s' if len(texts) > 1 else ''} {', '.join(texts)}: a "
            "TextVectorization inside the model, so predict, evaluate --data and serve (REST "
            f"and gRPC) take raw text. It runs on {' and '.join(runs)} only; export formats "
            f"that take raw text: {', '.join(carried)}"
            + (f" (not {', '.join(refused)})." if refused else ".")]


def string_inputs(info: dict[str, Any]) -> list[str]:
    """The columns the model takes as text (a Keras model with them runs on TensorFlow only)."""
    return [c for c, kind in (info.get("columns") or {}).items() if kind in ("string", "text")]


def write(fmt: Format, model: Any, target: Path, work: Path) -> None:
    """Convert ``model`` to ``fmt`` at ``target`` (a file, or a folder for savedmodel);
    ``work`` is a scratch folder for the SavedModel the converters start from."""
    work.mkdir(exist_ok=True)
    if fmt.name in ("keras", "savedmodel"):
        names = saving.write(model, fmt.name, work)
        os.replace(work / names[0], target)
        return
    saved = work / SAVED_MODEL
    saving.write(model, "savedmodel", work)
    (_onnx if fmt.name == "onnx" else _tflite)(saved, target)


def _onnx(saved: Path, target: Path) -> None:
    """tf2onnx's documented SavedModel route (its command line, which freezes the graph and
    keeps the lookup tables of text categories); its log goes nowhere unless it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved),
         "--signature_def", "serve", "--output", str(target)],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode != 0 or not target.is_file():
        raise RunError(f"tf2onnx could not convert this model to ONNX: {_last_error(done.stderr)}."
                       " Export --format savedmodel or keras instead.")


def _last_error(text: str) -> str:
    """The last error line of a converter's log, shortened."""
    lines = [line.strip() for line in text.splitlines() if "Error" in line or "error" in line]
    line = lines[-1] if lines else text.strip()[-300:] or "no reason given"
    return " ".join(line.split())[:300].rstrip(" .")


def _tflite(saved: Path, target: Path) -> None:
    """TFLiteConverter with builtin ops only: a file any LiteRT interpreter runs without the
    TensorFlow ops library (Select TF ops)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serve"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        with _quiet():  # the converter prints each op it cannot convert; the error holds them
            target.write_bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001 - ConverterError and what MLIR raises
        text = str(exc)
        ops = re.search(r"TF Select ops: ([^\n]+)", text)
        why = (f"it needs TensorFlow ops that TFLite has no builtin op for: {ops.group(1)}"
               if ops else _last_error(text))
        raise RunError(f"This model does not convert to TFLite with builtin ops only: {why}. "
                       "Export --format savedmodel or onnx instead.") from None


def feeds(x: Any) -> dict[str, np.ndarray]:
    """The sample inputs by the SavedModel's input names (one named input per column, or
    ``inputs``), as numpy arrays."""
    named = x if isinstance(x, dict) else {SERVING_INPUT: x}
    # text columns as numpy str (an .npz holds them without pickle), not Python objects
    return {k: np.asarray(v).astype(str) if np.asarray(v).dtype == object else np.asarray(v)
            for k, v in named.items()}


def predictor(fmt: Format, path: Path) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """Load the written file in its own runtime: a function from inputs to outputs."""
    if fmt.name == "savedmodel":
        import tensorflow as tf

        serve = tf.saved_model.load(str(path)).signatures["serve"]
        return lambda x: serve(**{k: tf.constant(v) for k, v in x.items()})[OUTPUT].numpy()
    if fmt.name == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: session.run([OUTPUT], {k: v.astype(object) if v.dtype.kind == "U"
                                                else v for k, v in x.items()})[0]
    if fmt.name == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        with _quiet():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            runner = Interpreter(model_path=str(path)).get_signature_runner("serve")

        def run(x: dict[str, np.ndarray]) -> np.ndarray:
            with _quiet():
                return runner(**{k: v.astype(np.bytes_) if v.dtype.kind == "U" else v
                                 for k, v in x.items()})[OUTPUT]
        return run
    import keras
    import tensorflow as tf

    model = keras.saving.load_model(path, safe_mode=True)  # compiled, as a user loads it
    # tensors: Keras's numpy path takes no text arrays on TensorFlow either
    return lambda x: model.predict({k: tf.constant(v) for k, v in x.items()}
                                   if len(x) > 1 or SERVING_INPUT not in x
                                   else tf.constant(x[SERVING_INPUT]), verbose=0)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Send what native code writes to stderr (file descriptor 2) nowhere for the block."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def installed_backends() -> list[str]:
    """The Keras backends installed besides the one this process runs (which the backend
    policy chose: :func:`nettrain.backends.select.choose`)."""
    import keras

    from nettrain.backends import select

    return [b for b in select.NAMES if b != keras.backend.backend() and select.installed(b)]


def predict_under(backend: str, path: Path, x: dict[str, np.ndarray]) -> np.ndarray:
    """``path`` (a .keras file) loaded and predicted in a fresh process under ``backend``."""
    from nettrain.backends import select

    with tempfile.TemporaryDirectory(prefix="nettrain-export-") as folder:
        inputs, outputs = Path(folder) / "inputs.npz", Path(folder) / "outputs.npy"
        np.savez(inputs, **x)
        done = subprocess.run(
            [sys.executable, "-m", "nettrain.export", str(path), str(inputs), str(outputs)],
            capture_output=True, text=True,
            env={**os.environ, **select.environment(backend), "TF_CPP_MIN_LOG_LEVEL": "3"})
        if done.returncode != 0 or not outputs.is_file():
            raise RunError(f"The .keras file does not predict under the {backend} backend: "
                           f"{_last_error(done.stderr)}.")
        return np.load(outputs, allow_pickle=False)
