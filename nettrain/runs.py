"""The run directory: created once, written atomically, read back by evaluate and predict.

A run directory holds ``config.yaml`` (the resolved config), ``dataset.json`` (input columns,
class names), ``run.json`` (status and versions), ``summary.txt``, ``history.csv``,
``metrics.json`` and the model in each format of ``save.formats``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nettrain.config import Config, read_yaml, validate_config
from nettrain.errors import ConfigError, NettrainError, Problem, RunError, UsageError

# File names inside a run directory.
CONFIG = "config.yaml"
DATASET = "dataset.json"
RUN = "run.json"
SUMMARY = "summary.txt"
HISTORY = "history.csv"
METRICS = "metrics.json"
EVALUATION = "evaluation.json"
KERAS_FILE = "model.keras"
JSON_FILE = "model.json"
WEIGHTS_FILE = "model.weights.h5"
SAVED_MODEL = "saved_model"


_UMASK = os.umask(0)
os.umask(_UMASK)


def runs_root() -> Path:
    """Where run directories go: $NETTRAIN_RUNS, else ./runs."""
    return Path(os.environ.get("NETTRAIN_RUNS", "runs"))


def check_new_dir(path: Path) -> Path:
    """Refuse an explicit run directory that already holds anything (nothing in it is touched)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--run-dir {path}: expected a new or empty directory; it is a file. "
                         "Choose another path.")
    if path.exists() and any(path.iterdir()):
        raise UsageError(f"--run-dir {path}: expected a new or empty directory; it already "
                         "holds files, which are left untouched. Choose another directory.")
    return path


def create_run_dir(config: Config, run_dir: str | Path | None = None) -> Path:
    """Make a new, empty run directory; never reuse one that holds anything.

    Args:
        config: the run's config (its ``name`` names the folder under ``runs/``).
        run_dir: an explicit directory (default: ``runs/<name>/<date>-<time>``). It may exist
            only if it is empty.
    """
    if run_dir is not None:
        path = check_new_dir(Path(run_dir))
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--run-dir {path}: cannot create it ({exc.strerror}).") from None
        return path
    parent = runs_root() / config.name
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()  # atomic: fails if another run took this name
            return path
        except FileExistsError:
            continue
    raise RunError(f"Could not create a new run directory under {parent}.")


@contextlib.contextmanager
def replacing(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file beside ``path`` to write; on success it is flushed to disk and moved
    onto ``path`` with ``os.replace``, so a crash leaves the old file or the new one, never half.

    Example: ``with replacing(run / "config.yaml") as tmp: tmp.write_text(text)``.
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str) -> None:
    """Write a text file so that a crash leaves the old file or the new one, never half."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object nettrain wrote; a damaged file raises RunError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise damaged(path, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise damaged(path, f"expected a JSON object; it holds {type(data).__name__} "
                            f"{json.dumps(data)[:60]}")
    return data


# What each file of a run directory is for, and what to do when it is damaged.
_ADVICE = {
    RUN: "It holds the run's status, data hashes and saved formats. Restore it from a copy "
         "of the run directory, or train again with the run's config.yaml.",
    DATASET: "It holds the columns and class names the model was trained with. Restore it "
             "from a copy of the run directory, or train again with the run's config.yaml.",
    CONFIG: "Restore it from a copy of the run directory (or the config you trained with).",
    EVALUATION: "It only holds earlier evaluations: move it aside and evaluate again.",
    METRICS: "It only holds the final metrics of fit: move it aside; "
             "'nettrain evaluate' measures them again.",
}


def damaged(path: Path, why: str, advice: str | None = None) -> RunError:
    """The error for a damaged file of a run directory: which file, what is wrong, what to do.

    Example: ``raise damaged(run / "run.json", "not valid JSON: ...")``.
    """
    advice = advice or _ADVICE.get(path.name, "Restore it from a copy of the run directory, "
                                              "or train again.")
    why = " ".join(why.split())
    why = why if len(why) <= 200 else why[:200].rsplit(" ", 1)[0] + " ..."
    return RunError(f"{path} is damaged ({why}). {advice}")


def update_json(path: Path, **changes: Any) -> None:
    data = read_json(path) if path.exists() else {}
    data.update(changes)
    write_json(path, data)


def save_model(model: Any, run_dir: Path, formats: list[str], sample: Any = None,
               info: dict[str, Any] | None = None) -> list[str]:
    """Save ``model`` in each format; each lands whole (temp folder, then ``os.replace``).

    Args:
        model: the trained model.
        run_dir: where the files go.
        formats: keras, json and/or savedmodel.
        sample: a few inputs (default none); when given, each format is reloaded before it is
            moved into place and must predict them as ``model`` does, or it is not saved.
        info: the run's dataset description (what a SavedModel needs to reload).

    Returns the names written into ``run_dir``.
    """
    writers: dict[str, Callable[[Path], list[str]]] = {
        "keras": lambda tmp: (model.save(tmp / KERAS_FILE), [KERAS_FILE])[1],
        "json": lambda tmp: (_save_json(model, tmp), [WEIGHTS_FILE, JSON_FILE])[1],
        "savedmodel": lambda tmp: (model.export(str(tmp / SAVED_MODEL), verbose=False),
                                   [SAVED_MODEL])[1],
    }
    written: list[str] = []
    tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=".saving-"))
    try:
        for fmt in formats:
            names = writers[fmt](tmp)
            if sample is not None:
                _check_reload(model, tmp, fmt, sample, info or {})
            for name in names:  # weights before model.json: model.json last marks it whole
                _move_into_place(tmp / name, run_dir / name)
            written += names
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return written


def _fsync(path: Path) -> None:
    """Flush a file, or every file under a folder, and the folder itself, to the disk."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        with open(file, "rb") as f:
            os.fsync(f.fileno())
    folder = os.open(path if path.is_dir() else path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _move_into_place(source: Path, target: Path) -> None:
    """``os.replace`` a whole file or folder; an existing folder (a resumed run saving again)
    is renamed aside first, because a folder cannot be replaced while it holds files."""
    _fsync(source)
    old = None
    if target.is_dir():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(source, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _fsync(target.parent)


def _check_reload(model: Any, folder: Path, fmt: str, sample: Any, info: dict[str, Any]) -> None:
    """Never save a model that predicts differently after reloading."""
    import numpy as np

    from nettrain.pipeline import to_tensors

    expected = np.asarray(model(to_tensors(sample), training=False))
    try:
        reloaded, _ = load_model(folder, fmt, info)
    except RunError as exc:  # not "damaged": the file was just written, by this model
        raise RunError(f"The {fmt} format of this model does not reload "
                       f"({getattr(exc, 'reason', exc)}); it was not saved. Choose another "
                       "format in save.formats.") from None
    got = np.asarray(reloaded(to_tensors(sample), training=False))
    # A 16-bit compute dtype (mixed precision) rounds to about 3 digits, differently in a
    # reloaded graph; float32 to about 7.
    half = any(getattr(layer, "compute_dtype", None) in ("float16", "bfloat16")
               for layer in [model, *model.layers])
    rtol, atol = (1e-2, 1e-2) if half else (1e-4, 1e-5)
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=rtol, atol=atol):
        raise RunError(f"The {fmt} format of this model predicts differently after reloading "
                       f"(largest difference {np.max(np.abs(got - expected)):.3g}); it was not "
                       "saved. Choose another format in save.formats.")


def _save_json(model: Any, folder: Path) -> None:
    model.save_weights(folder / WEIGHTS_FILE)
    (folder / JSON_FILE).write_text(model.to_json(), encoding="utf-8")


@dataclass
class Run:
    """A finished run read back from its directory."""

    path: Path
    config: Config
    dataset: dict[str, Any]


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


def open_run(path: str | Path) -> Run:
    """Read a run directory's config and dataset description (no model yet)."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"RUN: expected a run directory (made by 'nettrain fit'); received "
                         f"'{path}', which {'is not a directory' if path.exists() else 'does not exist'}.")
    if not (path / CONFIG).is_file():
        raise UsageError(f"RUN: '{path}' has no {CONFIG}; expected a run directory made by "
                         "'nettrain fit' (e.g. runs/<name>/<date>-<time>).")
    try:  # a run's config was valid when fit wrote it: now it is a damaged file, not a typo
        data, _ = read_yaml(path / CONFIG)
        config = validate_config(data, source=str(path / CONFIG))
    except (ConfigError, UnicodeDecodeError, RecursionError) as exc:
        problems = exc.problems if isinstance(exc, ConfigError) else [exc]
        why = "; ".join(str(p if isinstance(p, (str, Exception)) else
                            Problem(p.path.replace(str(path / CONFIG), "").lstrip(":") or
                                    "config", p.expected, p.received)) for p in problems[:3])
        # exit 2 like any config error: the file can be read as text and mended by hand
        raise UsageError(str(damaged(path / CONFIG, f"or edited: {why}"))) from None
    if not (path / DATASET).is_file():  # fit writes it before training: the run is damaged
        raise RunError(f"{path / DATASET} is missing: it holds the columns and class names the "
                       "model was trained with. Restore it from a copy of the run directory, "
                       f"or train again: nettrain fit {path / CONFIG}")
    dataset = read_json(path / DATASET)
    return Run(path, config, dataset)


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
    status = read_json(path / RUN).get("status") if (path / RUN).is_file() else None
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
                  + (f" (nettrain fit {run / CONFIG})." if run else "."))
        file = getattr(exc, "file", file)  # model.json's weights file
        error = damaged(file, f"or not a model nettrain can load safely: {exc}", advice)
        error.reason = " ".join(str(exc).split())[:200]  # type: ignore[attr-defined]
        raise error from None


_FILES = (("keras", KERAS_FILE), ("json", JSON_FILE), ("savedmodel", SAVED_MODEL))


def _latest_save(path: Path) -> list[str] | None:
    """The file names the run's last save wrote (run.json 'saved'), when it says."""
    record = read_json(path / RUN) if (path / RUN).is_file() else {}
    saved = record.get("saved")
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
        from nettrain.data import INPUT_DTYPES, input_names

        names = input_names(list(columns))
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
