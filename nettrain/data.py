"""Data: every source becomes inputs and labels split into train / validation / test.

Inputs are a float32 array, or (a CSV with ``categorical`` columns) a mapping from column name
to a one-column array, which the model takes as named inputs. Learned preprocessing (scaling,
flattening, normalization, category vocabularies) is not applied here: the model builder puts
it inside the model as layers, fitted on the training split only, so a saved model takes raw
inputs. A CSV too large for memory streams instead (:mod:`nettrain.stream`).
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from nettrain.config import BUILTIN_DATASETS, Config, DataConfig
from nettrain.errors import (ConfigError, DataError, Problem, UsageError, did_you_mean,
                             plain_tf_text)

SPLITS = ("train", "validation", "test")
Inputs = Union[np.ndarray, dict[str, np.ndarray]]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# The Keras input dtype of each kind of named input column.
# What numpy raises for a damaged .npz (a zip archive): when it opens it, and when it reads
# an array from it (a cut file, a changed byte).
NPZ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)

INPUT_DTYPES = {"numeric": "float32", "integer": "int64", "string": "string"}
# The name of the one input of a model of arrays (not named columns) in its SavedModel's
# serving signature (see saving.save_model).
SERVING_INPUT = "inputs"


@dataclass
class Data:
    """Inputs and labels per split, plus what ``predict`` needs to read inputs and name outputs."""

    x: dict[str, Inputs]
    y: dict[str, np.ndarray]
    w: dict[str, np.ndarray] = field(default_factory=dict)  # sample weights, when declared
    info: dict[str, Any] = field(default_factory=dict)     # features, classes, target, ...
    stream: Any = None  # a nettrain.stream.CsvStream: the splits are read pass by pass

    @property
    def splits(self) -> list[str]:
        return [s for s in SPLITS if s in (self.stream.counts if self.stream else self.x)]

    def sample(self, n: int = 2) -> tuple[Inputs, np.ndarray]:
        """The first ``n`` training inputs and labels (for checks before training)."""
        if self.stream:
            return self.stream.first(n)
        return take(self.x["train"], np.arange(min(n, self.size("train")))), \
            self.y["train"][:n]

    def class_counts(self) -> np.ndarray:
        """How many training samples each class has (index = class)."""
        if self.stream:
            return self.stream.class_counts
        y = np.asarray(self.y["train"])
        labels = y.argmax(axis=-1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)
        return np.bincount(labels.astype("int64"), minlength=len(self.classes or []))

    def vocabulary(self, column: str) -> list:
        """The categories of a column in the training split."""
        if self.stream:
            return self.stream.vocabularies[column]
        name = input_names(list(self.columns or [column]))[column]
        return sorted(set(self.x["train"][name].reshape(-1).tolist()), key=str)

    def train_inputs(self) -> Any:
        """The training inputs to adapt preprocessing on: an array, or a tf.data.Dataset."""
        if self.stream:
            return self.stream.dataset("train", 1024).map(lambda x, *rest: x)
        return self.x["train"]

    @property
    def classes(self) -> list[str] | None:
        return self.info.get("classes")

    @property
    def columns(self) -> dict[str, str] | None:
        """For named inputs: column -> 'numeric' | 'string' | 'integer' (categorical kinds)."""
        return self.info.get("columns")

    @property
    def input_names(self) -> dict[str, str]:
        """For named inputs: column -> the name of the model input that takes it."""
        return input_names(list(self.columns or []))

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.stream:
            return (len(self.stream.features),)
        x = self.x["train"]
        if isinstance(x, dict):
            return (len(x),)
        return tuple(int(d) for d in x.shape[1:])

    @property
    def label_shape(self) -> tuple[int, ...]:
        return tuple(self.sample(1)[1].shape[1:])

    def size(self, split: str) -> int:
        return self.stream.counts[split] if self.stream else size(self.x[split])

    def describe(self) -> dict[str, Any]:
        """What travels with the model in the run directory (``dataset.json``)."""
        return {"input_shape": list(self.input_shape),
                "samples": {s: self.size(s) for s in self.splits}, **self.info,
                "model_inputs": model_inputs(self.input_shape, self.columns)}


def size(x: Inputs) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def take(x: Inputs, index: np.ndarray) -> Inputs:
    """Rows ``index`` of an array or of every column of a mapping."""
    return {k: v[index] for k, v in x.items()} if isinstance(x, dict) else x[index]


def load_data(config: Config) -> Data:
    """Load the config's data source and split it with the config's seed.

    Example: ``load_data(load_config("configs/iris.yaml")).x["train"].shape`` -> ``(105, 4)``.
    """
    try:
        return _load_data(config)
    except ConfigError as exc:  # name the config file and the lines of the keys
        if exc.source is not None:
            raise
        raise config.error(exc.problems) from None


def load_labelled(path: str | Path, config: Config, info: dict[str, Any]) -> Data:
    """New labelled data for a trained run, read as its training data was: one split, ``test``.

    Args:
        path: a CSV with the run's feature and target columns (by name, in any order; other
            columns are ignored), an .npz with arrays ``x`` and ``y``, or a folder with one
            sub-folder per class (some of the run's class names; no other).
        config: the run's config (delimiter, missing values, image size...).
        info: the run's ``dataset.json`` (its columns, classes, input shape).

    Labels are class names or indices of the run's classes (an .npz may hold them one-hot).
    Raises UsageError for data of the wrong kind for the model (a missing column, a class the
    run lacks, another input shape), DataError for data that cannot be read.
    """
    path = Path(path)
    key, classify = "--data", config.is_classifier
    if not path.exists():
        raise UsageError(f"{key}: {path} does not exist; expected a CSV with the target "
                         "column, an .npz with arrays x and y, or a folder of class folders.")
    kind = "images" if path.is_dir() else path.suffix.lower().lstrip(".")
    takes = ("images (a folder with one sub-folder per class, or an .npz)" if info.get("images")
             else "named columns (a CSV with a header row)" if info.get("columns")
             else "a CSV with a header row, or an .npz" if info.get("features")
             else "an .npz with arrays x and y")
    allowed = {"images": ("images", "npz"), "columns": ("csv",)}
    fits = next((kinds for name, kinds in allowed.items() if info.get(name)),
                ("csv", "npz") if info.get("features") else ("npz",))
    if kind not in fits:
        raise UsageError(f"{key}: this model takes {takes}; received {path}.")
    cfg = config.data
    if kind == "csv":
        frame = read_frame(_existing(path, key), cfg.delimiter, key)
        targets = list(info.get("target") or cfg.targets)
        weight = [cfg.sample_weight] if cfg.sample_weight else []
        try:
            check_columns(list(frame.columns), info["features"] + targets + weight, path.name,
                          "the run's training data", cfg.delimiter, extra_allowed=True)
        except DataError as exc:  # the file is readable: it is the wrong file for this run
            raise UsageError(f"{key}: {exc} It has: {', '.join(frame.columns)}.") from None
        cfg = cfg.model_copy(update={"target": targets, "features": info["features"]})
        x, y, w, _ = _table_parts(frame, cfg, path.name, info, PREDICT_ADVICE,
                                  f"Fill it, or drop the row (the run's data.missing is "
                                  f"{cfg.missing}).")
    elif kind == "npz":
        x, y, w, read = _read_npz(path, cfg, key, None)
        shape = list(info.get("input_shape") or [])
        if shape and read["sample_shape"] != shape:
            raise UsageError(f"{key}: the inputs x of {path.name} have shape "
                             f"{read['sample_shape']} per sample; the model takes {shape}.")
    else:
        options = info["images"]
        cfg = cfg.model_copy(update={"image_size": options["image_size"],
                                     "color_mode": options["color_mode"]})
        x, y, w, read = _read_images(path, cfg, key, None)
        unknown = [c for c in read["classes"] if c not in info["classes"]]
        if unknown:
            raise UsageError(f"{key}: {path} has class folders the run lacks: "
                             f"{', '.join(unknown)}; its classes are "
                             f"{', '.join(info['classes'])}.")
        y = np.array([info["classes"].index(read["classes"][i]) for i in y], dtype="int64")
    if classify and kind != "images":  # image labels are the run's class indices already
        y = _run_classes(y, info["classes"], f"{key}: {path.name}")
    elif not classify and not np.issubdtype(np.asarray(y).dtype, np.number):
        raise UsageError(f"{key}: the labels of {path.name} must be numbers (the model is a "
                         "regression model); they hold values such as "
                         f"{np.asarray(y).reshape(-1)[0]!r}.")
    y = _labels(y, classify, cfg.one_hot, info)
    targets = info.get("target") or []
    if not classify and len(targets) and (y.ndim != 2 or y.shape[1] != len(targets)):
        raise UsageError(f"{key}: the labels of {path.name} have shape {list(y.shape[1:])} "
                         f"per sample; the model predicts {len(targets)} value"
                         f"{'s' if len(targets) != 1 else ''} ({', '.join(targets)}).")
    data = Data({"test": x}, {"test": y}, {"test": w} if w is not None else {}, info)
    if data.size("test") == 0:
        raise DataError(f"{key}: {path} holds no samples.")
    return data


def _run_classes(y: np.ndarray, classes: list[str], name: str) -> np.ndarray:
    """Labels (class names, indices, or one-hot rows) as indices of a run's ``classes``;
    a label that is not one of them is a UsageError naming it."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == len(classes) > 1 and np.isin(y, (0, 1)).all() \
            and (y.sum(axis=1) == 1).all():
        return y.argmax(axis=1)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise UsageError(f"{name}: a classifier needs one label per sample (a class name or "
                         f"index, or a one-hot row of {len(classes)}); the labels have shape "
                         f"{list(y.shape)}.")
    if y.dtype.kind in "iuf" and np.all(y == np.round(y)):
        text = [str(int(v)) for v in y.tolist()]
    else:
        text = [str(v) for v in y.tolist()]
    lookup = {c: i for i, c in enumerate(classes)}
    if all(t in lookup for t in text):
        return np.array([lookup[t] for t in text], dtype="int64")
    if y.dtype.kind in "iuf" and all(t.lstrip("-").isdigit() and 0 <= int(t) < len(classes)
                                     for t in text):
        return np.array([int(t) for t in text], dtype="int64")  # indices of named classes
    unknown = sorted({t for t in text if t not in lookup})
    raise UsageError(f"{name}: labels that are not classes of the run: "
                     f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}; its "
                     f"classes are {', '.join(classes[:20])}"
                     f"{' ...' if len(classes) > 20 else ''}. Give class names, or their "
                     f"indices 0 to {len(classes) - 1} (not both in one file).")


def _load_data(config: Config) -> Data:
    cfg = config.data
    classify = config.is_classifier
    if cfg.stratify and not classify:
        raise ConfigError(Problem("data.stratify", "stratify only for a classifier (a "
                                  "cross-entropy or hinge loss)", "true"))
    from nettrain.stream import CsvStream, should_stream

    if should_stream(cfg):
        for key in ("stratify", "validation", "test"):
            if getattr(cfg, key):
                raise ConfigError(Problem(f"data.{key}", f"no {key} with a streamed CSV (rows "
                                          "are split by a hash of their row number)",
                                          str(getattr(cfg, key)),
                                          "Use validation_split and test_split, or stream: "
                                          "false."))
        stream = CsvStream(_existing(Path(cfg.csv), "data.csv"), cfg, config.seed,
                           classify).open()
        info = {"features": stream.features, "target": cfg.targets, "streamed": True}
        if cfg.categorical:
            info["columns"] = stream.kinds
        if classify:
            info["classes"] = stream.classes
        return Data({}, {}, {}, info, stream=stream)
    parts, info = _load_source(cfg, classify, config.seed)
    if classify:
        parts, info["classes"] = _class_indices(parts, info.get("classes"))
    else:
        info.pop("classes", None)
    x, y, w = parts.pop("train")
    index = _split_index(size(x), y if classify else None, cfg, config.seed,
                         has=set(parts))
    data = Data({}, {}, {}, info)
    for split, rows in index.items():
        data.x[split], data.y[split] = take(x, rows), y[rows]
        if w is not None:
            data.w[split] = w[rows]
    for split, (px, py, pw) in parts.items():
        data.x[split], data.y[split] = px, py
        if pw is not None:
            data.w[split] = pw
    for split in data.splits:
        data.y[split] = _labels(data.y[split], classify, cfg.one_hot, info)
    return data


def _labels(y: np.ndarray, classify: bool, one_hot: bool, info: dict) -> np.ndarray:
    if classify:
        y = np.asarray(y, dtype="int64")
        return np.eye(len(info["classes"]), dtype="float32")[y] if one_hot else y
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.number):
        raise DataError(f"A regression target must be numeric; it holds values such as "
                        f"{y.reshape(-1)[0]!r}. For class names use a classification loss "
                        "(sparse_categorical_crossentropy).")
    y = y.astype("float32")
    return y.reshape(-1, 1) if y.ndim == 1 else y


def _load_source(cfg: DataConfig, classify: bool, seed: int | None) -> tuple[dict, dict]:
    """The source's parts: ``{'train': (x, y, w), 'test': ...}`` and its info."""
    if cfg.source == "dataset":
        if cfg.dataset in BUILTIN_DATASETS:
            return _builtin(cfg.dataset)
        return _keras_dataset(cfg)
    if cfg.source == "synthetic":
        return _synthetic(cfg, classify, seed)
    read = {"csv": _read_csv, "npz": _read_npz, "images": _read_images}[cfg.source]
    x, y, w, info = read(Path(cfg.path), cfg, "data." + cfg.source, info=None)
    parts = {"train": (x, y, w)}
    parts.update(info.pop("parts", {}))
    for split in ("validation", "test"):
        path = getattr(cfg, split)
        if path is not None:  # an explicit file of the same kind, read like the training one
            px, py, pw, _ = read(Path(path), cfg, f"data.{split}", info=info)
            parts[split] = (px, py, pw)
    info.pop("sample_shape", None)
    return parts, info


def _class_indices(parts: dict[str, tuple], names: list[str] | None) -> \
        tuple[dict[str, tuple], list[str]]:
    """Map every split's class labels to 0..n-1; return them and the class names in order.

    Known class names (built-in sets, image folders) mean the labels are indices already.
    Integer labels keep their values (0..max). Other labels (strings such as 'setosa') are
    sorted and numbered; a label in validation or test data that training lacks is an error.
    """
    out = {}
    for split, (x, y, w) in parts.items():
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"A classifier needs one label per sample; the {split} labels have "
                            f"shape {list(y.shape)}. Use integer labels or class names.")
        out[split] = (x, y, w)
    if names is not None:
        return out, [str(n) for n in names]
    train = out["train"][1]
    values = np.unique(train)
    if np.issubdtype(values.dtype, np.number):
        if not np.all(values == np.round(values)):
            bad = values[values != np.round(values)][0]
            raise DataError(f"A classifier needs class labels; the target holds fractional "
                            f"values such as {bad}. Use a regression loss (mse) for a numeric "
                            "target.")
        if values.min() >= 0:
            n = int(values.max()) + 1
            for split, (_, y, _) in out.items():
                unknown = sorted({int(v) for v in y.tolist()} - set(range(n)))
                if unknown:
                    raise DataError(f"The {split} data has class labels that training lacks: "
                                    f"{unknown[:5]}. Training classes: 0..{n - 1}.")
            return ({s: (x, y.astype("int64"), w) for s, (x, y, w) in out.items()},
                    [str(i) for i in range(n)])
    lookup = {v: i for i, v in enumerate(values.tolist())}
    for split, (x, y, w) in out.items():
        unknown = sorted({v for v in y.tolist() if v not in lookup})
        if unknown:
            raise DataError(f"The {split} data has class labels that training lacks: "
                            f"{unknown[:5]}. Training classes: {list(lookup)[:20]}.")
        out[split] = (x, np.array([lookup[v] for v in y.tolist()], dtype="int64"), w)
    return out, [str(v) for v in values.tolist()]


def _split_index(n: int, y: np.ndarray | None, cfg: DataConfig, seed: int | None,
                 has: set[str]) -> dict[str, np.ndarray]:
    """Row indices of train, validation and test: fractions of all samples, drawn with the seed."""
    from sklearn.model_selection import train_test_split

    if "test" in has and cfg.test_split:
        raise ConfigError(Problem("data.test_split", "no test_split: this source has its own "
                                  "test part", str(cfg.test_split), "Remove data.test_split."))
    n_test = int(round(n * cfg.test_split))
    n_val = int(round(n * cfg.validation_split))
    if (cfg.test_split and n_test == 0) or (cfg.validation_split and n_val == 0) \
            or n - n_test - n_val < 1:
        raise DataError(f"The data has {n} samples: too few for validation_split "
                        f"{cfg.validation_split} and test_split {cfg.test_split}.")
    index = {"train": np.arange(n)}
    try:
        for split, count in (("test", n_test), ("validation", n_val)):
            if count:
                rest = index["train"]
                strata = y[rest] if cfg.stratify and y is not None else None
                index["train"], index[split] = train_test_split(
                    rest, test_size=count, random_state=seed, shuffle=True, stratify=strata)
    except ValueError as exc:  # stratify with a class too small for the split
        counts = np.bincount(y.astype("int64")) if y is not None else []
        rare = [i for i, c in enumerate(counts) if 0 < c < 2]
        raise ConfigError(Problem(
            "data.stratify", "every class with at least 2 samples, to stratify the split",
            f"class{'es' if len(rare) != 1 else ''} {rare} with 1 sample" if rare
            else " ".join(str(exc).split()),
            "Set data.stratify: false, or drop the rare class from the data.")) from None
    return {s: np.sort(i) if s != "train" else i for s, i in index.items()}


# --------------------------------------------------------------------------- sources


def _builtin(name: str) -> tuple[dict, dict]:
    if name == "xor":
        x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32")
        y = np.array([0, 1, 1, 0])
        return {"train": (x, y, None)}, {"features": ["x1", "x2"], "classes": ["0", "1"],
                                         "target": ["y"]}
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    info: dict[str, Any] = {"features": [str(f) for f in bunch.feature_names],
                            "target": ["target"]}
    if "target_names" in bunch:
        info["classes"] = [str(c) for c in bunch.target_names]
    return {"train": (bunch.data.astype("float32"), bunch.target, None)}, info


def _synthetic(cfg: DataConfig, classify: bool, seed: int | None) -> tuple[dict, dict]:
    from sklearn import datasets

    s = cfg.synthetic
    if s.random:
        rng = np.random.default_rng(seed)
        x = rng.random((s.n_samples, s.n_features))
        y = rng.integers(0, s.n_classes, s.n_samples) if classify \
            else rng.random((s.n_samples, s.n_outputs))
    elif classify:
        informative = min(s.n_features, max(2, int(np.ceil(np.log2(s.n_classes * 2)))))
        x, y = datasets.make_classification(
            n_samples=s.n_samples, n_features=s.n_features, n_informative=informative,
            n_redundant=0, n_classes=s.n_classes, n_clusters_per_class=1,
            flip_y=min(s.noise, 1.0), random_state=seed)
    else:
        x, y = datasets.make_regression(n_samples=s.n_samples, n_features=s.n_features,
                                        n_targets=s.n_outputs, noise=s.noise, random_state=seed)
    features = [f"x{i}" for i in range(s.n_features)]
    info = {"features": features, "target": ["y"] if classify or s.n_outputs == 1
            else [f"y{i}" for i in range(s.n_outputs)]}
    if classify:
        info["classes"] = [str(i) for i in range(s.n_classes)]
    return {"train": (x.astype("float32"), y, None)}, info


# Where Keras's cache keeps each downloadable set (relative to KERAS_HOME) and where it
# comes from: what the user must put in place when there is no network.
_GCS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
KERAS_FILES = {
    "mnist": ("datasets/mnist.npz", _GCS + "mnist.npz"),
    "fashion_mnist": ("datasets/fashion-mnist/ (the four files train-images-idx3-ubyte.gz, "
                      "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
                      "t10k-labels-idx1-ubyte.gz)", _GCS + "fashion-mnist/"),
    "cifar10": ("datasets/cifar-10-batches-py-target_archive (the .tar.gz, renamed)",
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "cifar100": ("datasets/cifar-100-python-target_archive (the .tar.gz, renamed)",
                 "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
    "boston_housing": ("datasets/boston_housing.npz", _GCS + "boston_housing.npz"),
    "imdb": ("datasets/imdb.npz", _GCS + "imdb.npz"),
    "reuters": ("datasets/reuters.npz", _GCS + "reuters.npz"),
}


# The sets whose download Keras checks against a sha256.
_CHECKED = ("mnist", "boston_housing", "imdb", "reuters", "cifar10", "cifar100")


def keras_home() -> Path:
    """Keras's cache folder: $KERAS_HOME, else ~/.keras (as ``keras.utils.get_file`` uses)."""
    home = Path(os.environ.get("KERAS_HOME") or Path("~/.keras").expanduser())
    if not os.access(home if home.exists() else home.parent, os.W_OK):
        home = Path("/tmp/.keras")
    return home


def _keras_dataset(cfg: DataConfig) -> tuple[dict, dict]:
    import contextlib
    import io

    import keras

    name = cfg.dataset
    relative, origin = KERAS_FILES[name]
    target = keras_home() / relative
    kwargs = {"num_words": cfg.num_words} if cfg.num_words else {}
    try:
        # Keras prints "Downloading data from ..." to stdout; keep stdout for our output.
        with contextlib.redirect_stdout(io.StringIO()):
            (x_train, y_train), (x_test, y_test) = \
                getattr(keras.datasets, name).load_data(**kwargs)
    except Exception as exc:  # Keras raises a bare Exception for a failed download
        raise DataError(
            f"Could not load the Keras dataset '{name}': {' '.join(str(exc).split())}\n"
            f"With no network, put the genuine file at {target} (downloaded from {origin})"
            + ("; Keras checks its sha256, so a hand-made file is deleted." if name in
               _CHECKED else ".")
        ) from None
    info: dict[str, Any] = {}
    if name in ("imdb", "reuters"):  # word-index sequences of any length -> fixed length
        maxlen = cfg.maxlen or 200
        pad = keras.utils.pad_sequences
        x_train, x_test = pad(x_train, maxlen=maxlen), pad(x_test, maxlen=maxlen)
    if name == "boston_housing":
        info["target"] = ["MEDV"]
    return {"train": (x_train, y_train, None), "test": (x_test, y_test, None)}, info


def _existing(path: Path, key: str) -> Path:
    path = path.expanduser()
    if not path.exists():
        raise DataError(f"{key}: {path} does not exist. (A relative path in a config is read "
                        f"from the folder nettrain runs in, here {Path.cwd()}.)")
    if not (path.is_file() or path.is_dir()):  # a device or a pipe may never end
        raise DataError(f"{key}: {path} is not a regular file (a device or a pipe, which "
                        "could be read for ever). Give a data file.")
    return path


def read_frame(path: Path, delimiter: str, key: str) -> Any:
    """A CSV file as a pandas DataFrame, or a DataError naming the file."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, sep=delimiter)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{key}: cannot read {path} as CSV: {exc}") from None
    frame.columns = [str(c) for c in frame.columns]
    return frame


def csv_features(columns: list[str], cfg: DataConfig, file: str) -> list[str]:
    """The input columns of a CSV with these ``columns``; every column the config names must
    exist (a ConfigError lists each one that does not, with the closest name)."""
    targets = cfg.targets
    weight = [cfg.sample_weight] if cfg.sample_weight else []
    features = cfg.features or [c for c in columns if c not in targets + weight]
    problems = [p for p in (
        _column_problem("target", targets, columns, file),
        _column_problem("features", features, columns, file),
        _column_problem("sample_weight", weight, columns, file),
        _column_problem("categorical", cfg.categorical or [], features, "the features"),
    ) if p]
    if problems:
        raise ConfigError(problems)
    return features


def _column_problem(key: str, names: list[str], columns: list[str], file: str) -> Problem | None:
    unknown = [n for n in names if n not in columns]
    if not unknown:
        return None
    close = did_you_mean(unknown[0], columns)
    hint = f"Did you mean '{close}'?" if close else None
    if len(columns) == 1:  # one column: the file is split by another character
        sep = next((c for c in ";\t|" if c in columns[0]), None)
        if sep:
            hint = f"The header holds '{sep}': set data.delimiter: {sep!r}."
    return Problem(f"data.{key}", f"column names of {file} ({', '.join(columns)})",
                   ", ".join(map(repr, unknown)), hint)


def _read_csv(path: Path, cfg: DataConfig, key: str, info: dict | None) -> tuple:
    """One CSV file: inputs, labels, sample weights and (for the training file) the info.

    ``info`` is the training file's info when reading an explicit validation or test file;
    then the same columns are required.
    """
    path = _existing(path, key)
    return _table_parts(read_frame(path, cfg.delimiter, key), cfg, path.name, info)


def _table_parts(frame: Any, cfg: DataConfig, name: str, info: dict | None,
                 advice: str | None = None,
                 missing_advice: str = "Set data.missing: drop or zero, or fill the file.") \
        -> tuple:
    """A CSV file's frame (file ``name``) as inputs, labels, sample weights and the info.
    ``advice`` ends the message for text in a numeric column, ``missing_advice`` the one for
    an empty cell (with ``data.missing: error``); default: advice for training data."""
    targets = cfg.targets
    weight = [cfg.sample_weight] if cfg.sample_weight else []
    if info is None:
        features = csv_features(list(frame.columns), cfg, name)
        kinds = column_kinds(frame, features, cfg.categorical or [])  # before filling holes
    else:  # an explicit validation/test file: training's columns, by name, and their kinds
        features, kinds = info["features"], info.get("columns") or \
            column_kinds(frame, info["features"], [])
        check_columns(list(frame.columns), features + targets + weight, name,
                      "the training file's", cfg.delimiter,
                      extra_allowed=cfg.features is not None)
    frame = fill_missing(frame[features + targets + weight], cfg.missing, text_columns(kinds),
                         name, missing_advice)
    x = table_inputs(frame, features, cfg.categorical or [], name, kinds,
                     advice or NUMBERS_ADVICE)
    if len(targets) > 1:  # multi-output regression
        y = numeric_frame(frame[targets], name, TARGET_ADVICE)
    elif _is_text(frame[targets[0]]):  # class names such as 'setosa'
        y = frame[targets[0]].astype(str).to_numpy()
    else:
        numeric_frame(frame[targets], name)  # finite numbers only
        y = frame[targets[0]].to_numpy()
    w = numeric_frame(frame[weight], name, WEIGHT_ADVICE)[:, 0] if weight else None
    if info is None:
        info = {"features": features, "target": targets}
        if cfg.categorical:
            info["columns"] = kinds
    return x, y, w, info


def check_columns(columns: list[str], expected: list[str], name: str, what: str,
                  delimiter: str, optional: tuple[str, ...] = (),
                  extra_allowed: bool = False) -> None:
    """Refuse a file that lacks one of the ``expected`` columns (or, unless ``extra_allowed``,
    has one more than them and ``optional``); their order does not matter: columns are
    always matched by name. A file split by another character than ``delimiter`` says so."""
    missing = [c for c in expected if c not in columns]
    extra = [] if extra_allowed else \
        [c for c in columns if c not in expected and c not in optional]
    if missing or extra:
        parts = ([f"missing {', '.join(map(repr, missing))}"] if missing else []) + \
            ([f"unexpected {', '.join(map(repr, extra))}"] if extra else [])
        sep = next((c for c in ",;\t|" if c != delimiter and c in columns[0]), None) \
            if len(columns) == 1 and missing else None
        hint = f" Its header holds {sep!r}: write it split by {delimiter!r}, the run's " \
            "data.delimiter." if sep else ""
        raise DataError(f"{name}: the columns differ from {what} ({'; '.join(parts)}). "
                        f"Expected the columns (in any order): {', '.join(expected)}.{hint}")


def _is_text(column: Any) -> bool:
    import pandas as pd

    return not pd.api.types.is_numeric_dtype(column)


def column_kinds(frame: Any, features: list[str], categorical: list[str]) -> dict[str, str]:
    """'numeric', or for a categorical column 'integer' or 'string' (its vocabulary's type)."""
    import pandas as pd

    kinds = {}
    for name in features:
        if name not in categorical:
            kinds[name] = "numeric"
        elif pd.api.types.is_integer_dtype(frame[name]) or _whole_floats(frame[name]):
            kinds[name] = "integer"  # a float column only because of empty cells: integers
        else:
            kinds[name] = "string"
    return kinds


def _whole_floats(column: Any) -> bool:
    import pandas as pd

    values = column.dropna()
    return pd.api.types.is_float_dtype(column) and bool((values == values.round()).all())


def text_columns(kinds: dict[str, str]) -> list[str]:
    """The columns whose empty cells ``missing: zero`` fills with '' (string categories)."""
    return [c for c, kind in kinds.items() if kind == "string"]


def fill_missing(frame: Any, policy: str, text: list[str], name: str,
                 advice: str = "Set data.missing: drop or zero, or fill the file.") -> Any:
    """Apply data.missing: 'error' names the first empty cell (and gives ``advice``), 'drop'
    drops its row, 'zero' fills numbers (and whole-number categories) with 0 and the ``text``
    columns (string categories; see :func:`text_columns`) with ''."""
    if policy == "drop":
        return frame.dropna()
    if policy == "zero":
        filled = frame.copy()
        for column in filled.columns:
            if filled[column].isna().any():
                if column in text or _is_text(filled[column]):  # as text: '' fits no float
                    filled[column] = filled[column].astype(object).fillna("")
                else:
                    filled[column] = filled[column].fillna(0)
        return filled
    holes = np.argwhere(frame.isna().to_numpy())
    if len(holes):
        row, col = holes[0]
        row = frame.index[row]  # the row number in the file (a streamed chunk starts later)
        raise DataError(f"{name}: missing value at row {row + 2}, column "
                        f"'{frame.columns[col]}' ({len(holes)} missing in all). {advice}")
    return frame


# What a non-number in a numeric column calls for: in training data, and at predict time.
NUMBERS_ADVICE = "List it in data.categorical to encode it as categories."
PREDICT_ADVICE = "The model was trained on numbers in this column: give a number."
# ... and in a target or sample-weight column, which cannot be categories.
TARGET_ADVICE = ("A regression target (data.target) must hold numbers; for class names use one "
                 "target column and a classification loss.")
WEIGHT_ADVICE = "Sample weights (data.sample_weight) must be numbers."
WHOLE_NUMBERS_ADVICE = "Its categories are whole numbers (as in the training rows): give one."
# Layer names a model with named inputs uses for itself (see model._table_model).
_RESERVED_NAMES = {"features", "numeric_inputs", "normalize_input", "layers"}


def input_names(columns: list[str]) -> dict[str, str]:
    """Column -> the name of its model input: the column name with every character other than
    an ASCII letter, digit, _, . or - made _, starting with a letter or digit, unique (and
    distinct from the model's own layer names), because TensorFlow refuses other names in a
    SavedModel's signature and Keras refuses '/'. A name that is fine stays as it is.

    Example: ``input_names(["my col", "my_col", "size"])`` ->
    ``{"my col": "my_col", "my_col": "my_col_2", "size": "size"}``.
    """
    used = set(_RESERVED_NAMES)
    names = {}
    for column in columns:
        base = re.sub(r"[^A-Za-z0-9_.\-]", "_", column) or "column"
        if not base[0].isalnum():
            base = "c" + base
        name, n = base, 1
        while name in used or f"encode_{name}" in used:
            n += 1
            name = f"{base}_{n}"
        used.update((name, f"encode_{name}"))
        names[column] = name
    return names


def model_inputs(input_shape: tuple[int, ...] | list[int],
                 columns: dict[str, str] | None) -> dict[str, dict[str, Any]]:
    """The model's inputs as a caller from Python gives them (``model.predict``, the
    SavedModel's ``signatures["serve"]``): input name -> dtype, shape (None: any number of
    rows) and, for named inputs, the column it takes.

    Example: ``model_inputs((4,), None)`` ->
    ``{"inputs": {"dtype": "float32", "shape": [None, 4]}}``;
    ``model_inputs((2,), {"my col": "string", "n": "numeric"})`` ->
    ``{"my_col": {"dtype": "string", "shape": [None, 1], "column": "my col"}, "n": ...}``.
    """
    if not columns:
        return {SERVING_INPUT: {"dtype": "float32", "shape": [None, *map(int, input_shape)]}}
    names = input_names(list(columns))
    return {names[column]: {"dtype": INPUT_DTYPES[kind], "shape": [None, 1], "column": column}
            for column, kind in columns.items()}


def table_inputs(frame: Any, features: list[str], categorical: list[str], name: str,
                 kinds: dict[str, str] | None = None, advice: str = NUMBERS_ADVICE) -> Inputs:
    """The feature columns as the model takes them: one float32 matrix, or (with categorical
    columns) a mapping from input name (:func:`input_names`) to a one-column array.

    ``kinds`` are the training columns' kinds (at predict time); default: read from ``frame``.
    ``advice`` ends the message for text in a numeric column.
    """
    if not categorical:
        return numeric_frame(frame[features], name, advice)
    kinds = kinds or column_kinds(frame, features, categorical)
    names = input_names(features)
    x = {}
    for column in features:
        if kinds[column] == "numeric":
            x[names[column]] = numeric_frame(frame[[column]], name, advice)
        elif kinds[column] == "integer":
            values = numeric_frame(frame[[column]], name, WHOLE_NUMBERS_ADVICE)
            fractional = values != np.round(values)
            if fractional.any():
                at = int(np.argmax(fractional.reshape(-1)))
                raise DataError(f"{name}: column '{column}' holds whole-number categories; row "
                                f"{frame.index[at] + 2} holds {frame[column].iloc[at]!r}. "
                                f"{WHOLE_NUMBERS_ADVICE}")
            x[names[column]] = values.astype("int64")
        else:
            x[names[column]] = frame[[column]].astype(str).to_numpy(dtype=object)
    return x


def numeric_frame(frame: Any, name: str, advice: str = NUMBERS_ADVICE) -> np.ndarray:
    """A DataFrame's values as float32, or a DataError naming the first non-numeric cell (and
    giving ``advice``), or the first value that is not a finite float32 (inf, 1e308)."""
    import pandas as pd

    fill_missing(frame, "error", [], name)
    for column in frame.columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            at = int(np.argmax(bad.to_numpy()))
            raise DataError(f"{name}: column '{column}' must be numeric; row "
                            f"{frame.index[at] + 2} holds {frame[column].iloc[at]!r}. {advice}")
    with np.errstate(over="ignore", invalid="ignore"):
        array = frame.to_numpy(dtype="float32")
    infinite = ~np.isfinite(array)
    if infinite.any():
        row, col = np.argwhere(infinite)[0]
        raise DataError(f"{name}: column '{frame.columns[col]}' row {frame.index[row] + 2} holds "
                        f"{frame.iloc[row, col]}, which is not a finite 32-bit number (at most "
                        "about 3.4e38 in size). Replace the value, or drop the row.")
    return array


def _read_npz(path: Path, cfg: DataConfig, key: str, info: dict | None) -> tuple:
    path = _existing(path, key)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not hasattr(loaded, "files"):
            raise ValueError("it holds one array (a .npy); an .npz with arrays x and y is "
                             "needed: np.savez(path, x=x, y=y)")
        with loaded as f:
            arrays = {k: f[k] for k in f.files}
    except NPZ_ERRORS as exc:
        raise DataError(f"{key}: cannot read {path} as .npz: {exc}") from None
    parts = {}
    if {"x", "y"} <= arrays.keys():
        x, y = arrays["x"], arrays["y"]
    elif {"x_train", "y_train"} <= arrays.keys():
        x, y = arrays["x_train"], arrays["y_train"]
        if {"x_test", "y_test"} <= arrays.keys():
            parts["test"] = (arrays["x_test"].astype("float32"), arrays["y_test"], None)
    else:
        raise DataError(f"{key}: {path.name} must hold arrays x and y (or x_train, y_train, "
                        f"x_test, y_test); it holds {sorted(arrays)}.")
    shape = (info or {}).get("sample_shape") or list(x.shape[1:])
    for name, (px, py) in {"train": (x, y), **{k: v[:2] for k, v in parts.items()}}.items():
        if len(px) != len(py):
            raise DataError(f"{key}: {path.name} has {len(px)} {name} inputs but {len(py)} "
                            "labels.")
        if list(px.shape[1:]) != list(shape):
            raise DataError(f"{key}: the {name} inputs of {path.name} have shape "
                            f"{list(px.shape[1:])} per sample; the training inputs "
                            f"{list(shape)}.")
        for what, array in (("inputs", px), ("labels", py)):
            if not np.issubdtype(array.dtype, np.floating):
                continue
            with np.errstate(over="ignore"):
                finite = np.isfinite(array.astype("float32"))
            if not finite.all():
                at = np.argwhere(~finite)[0]
                raise DataError(f"{key}: the {name} {what} of {path.name} hold "
                                f"{array[tuple(at)]} at index {at.tolist()}. Replace NaN, "
                                "infinite and huge (over about 3.4e38) values first.")
    new_info: dict[str, Any] = {"parts": parts, "sample_shape": list(x.shape[1:])} \
        if info is None else info
    return x.astype("float32"), y, None, new_info


def image_options(cfg: DataConfig) -> dict[str, Any]:
    return {"image_size": tuple(cfg.image_size or (256, 256)),
            "color_mode": cfg.color_mode or "rgb"}


def _read_images(path: Path, cfg: DataConfig, key: str, info: dict | None) -> tuple:
    """A folder with one sub-folder per class, read by keras.utils.image_dataset_from_directory."""
    import keras

    path = _existing(path, key)
    if not path.is_dir():
        raise DataError(f"{key}: {path} is not a folder; expected one sub-folder per class.")
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{key}: {path} has no class sub-folders; expected one sub-folder per "
                        f"class (e.g. {path}/cats/*.png, {path}/dogs/*.png).")
    if info is not None and classes != info["classes"]:
        raise DataError(f"{key}: the class folders {classes} differ from training's "
                        f"{info['classes']}.")
    options = image_options(cfg)
    try:
        dataset = keras.utils.image_dataset_from_directory(
            path, labels="inferred", label_mode="int", class_names=classes, batch_size=None,
            shuffle=False, verbose=False, **options)
    except (ValueError, OSError) as exc:
        raise DataError(f"{key}: cannot read the images in {path}: {exc}") from None
    try:
        x, y = images_to_numpy(dataset, with_labels=True)
    except DataError as exc:
        raise DataError(f"{key}: {exc}") from None
    if len(x) == 0:
        raise DataError(f"{key}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders "
                        f"of {path}.")
    if info is None:
        info = {"classes": classes, "images": {"image_size": list(options["image_size"]),
                                               "color_mode": options["color_mode"]}}
    return x, y, None, info


def images_to_numpy(dataset: Any, with_labels: bool, shown: dict[str, str] | None = None) -> \
        tuple[np.ndarray, np.ndarray | None]:
    """The images (and labels) of a dataset from ``image_dataset_from_directory`` as arrays.

    A file that cannot be decoded is a DataError naming it (``shown`` maps a file path to the
    path to show instead, for a file linked into a temporary folder).
    """
    import tensorflow as tf

    xs, ys = [], []
    try:
        for item in dataset.as_numpy_iterator():
            if with_labels:
                xs.append(item[0])
                ys.append(item[1])
            else:
                xs.append(item)
    except tf.errors.InvalidArgumentError as exc:
        raise _undecodable(list(dataset.file_paths), exc, shown or {}) from None
    x = np.stack(xs).astype("float32") if xs else np.zeros((0,), dtype="float32")
    return x, (np.array(ys) if with_labels else None)


def _undecodable(paths: list[str], exc: Exception, shown: dict[str, str]) -> DataError:
    """The DataError for a dataset that failed to decode: find the file, name it."""
    import tensorflow as tf

    for path in paths:
        try:
            tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
        except tf.errors.InvalidArgumentError as bad:
            why = plain_tf_text(str(bad.message))
            return DataError(f"cannot decode the image {shown.get(path, path)}: {why}. Remove or "
                             "replace the file (it is damaged, or not an image of its kind).")
    return DataError(f"cannot decode the images: {plain_tf_text(str(exc))[:300]}")
