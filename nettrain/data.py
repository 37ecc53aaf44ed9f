"""Data: every source becomes numpy arrays split into train / validation / test.

Learned preprocessing (scaling, flattening, normalization) is not applied here: the model
builder puts it inside the model as layers, so a saved model takes raw inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nettrain.config import BUILTIN_DATASETS, Config, DataConfig
from nettrain.errors import ConfigError, DataError, Problem, did_you_mean

SPLITS = ("train", "validation", "test")


@dataclass
class Data:
    """Arrays per split, plus what ``predict`` needs to read inputs and name outputs."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    features: list[str] | None = None    # input column names, when the source has them
    classes: list[str] | None = None     # class names, for a classifier
    target: list[str] | None = None      # target column names (a CSV may hold them)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def splits(self) -> list[str]:
        return [s for s in SPLITS if s in self.x]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x["train"].shape[1:])

    def describe(self) -> dict[str, Any]:
        """What travels with the model in the run directory (``dataset.json``)."""
        return {"input_shape": list(self.input_shape), "features": self.features,
                "classes": self.classes, "target": self.target,
                "samples": {s: int(len(self.x[s])) for s in self.splits}}


def load_data(config: Config) -> Data:
    """Load the config's data source and split it with the config's seed.

    Example: ``load_data(load_config("configs/iris.yaml")).x["train"].shape`` -> ``(105, 4)``.
    """
    data_cfg = config.data
    classify = config.is_classifier
    loader = {"dataset": _load_dataset, "csv": _load_csv, "npz": _load_npz}[data_cfg.source]
    parts, info = loader(data_cfg, classify)
    x, y = parts.pop("train")
    if classify:
        y, classes = _class_indices(y, info.get("classes"), parts)
        info["classes"] = classes
    x = np.asarray(x, dtype="float32")
    y = np.asarray(y, dtype="int64" if classify else "float32")
    out_x, out_y = _split(x, y, data_cfg, config.seed, has_test="test" in parts)
    for name, (px, py) in parts.items():
        out_x[name] = np.asarray(px, dtype="float32")
        out_y[name] = np.asarray(py, dtype="int64" if classify else "float32")
    if classify and data_cfg.one_hot:
        n = len(info["classes"])
        out_y = {s: np.eye(n, dtype="float32")[v.reshape(-1)] for s, v in out_y.items()}
    if not classify and out_y["train"].ndim == 1:
        out_y = {s: v.reshape(-1, 1) for s, v in out_y.items()}
    return Data(out_x, out_y, features=info.get("features"),
                classes=info.get("classes") if classify else None,
                target=info.get("target"))


def _class_indices(y: np.ndarray, names: list[str] | None,
                   other: dict[str, tuple]) -> tuple[np.ndarray, list[str]]:
    """Map class labels to 0..n-1 and return the class names, in the order of the indices."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"A classifier needs one label per sample; the labels have shape "
                        f"{y.shape}. Use integer labels or class names (set data.one_hot: true "
                        "for categorical_crossentropy).")
    if names is not None:  # labels are already indices into known names
        return y.astype("int64"), [str(n) for n in names]
    values = np.unique(np.concatenate([y] + [np.asarray(p[1]).reshape(-1) for p in other.values()]))
    if np.issubdtype(values.dtype, np.integer) and values.min() >= 0:
        # integer labels keep their values as indices: 0..max
        return y.astype("int64"), [str(i) for i in range(int(values.max()) + 1)]
    if np.issubdtype(values.dtype, np.floating):
        if not np.all(values == np.round(values)):
            raise DataError(f"A classifier needs class labels; the target has fractional "
                            f"values such as {values[values != np.round(values)][0]}. Use a "
                            "regression loss (mse) for a numeric target.")
        values = values.astype("int64")
        if values.min() >= 0:
            return y.astype("int64"), [str(i) for i in range(int(values.max()) + 1)]
    lookup = {v: i for i, v in enumerate(values.tolist())}
    for key, (px, py) in other.items():
        other[key] = (px, np.array([lookup[v] for v in np.asarray(py).reshape(-1).tolist()]))
    return np.array([lookup[v] for v in y.tolist()]), [str(v) for v in values.tolist()]


def _split(x: np.ndarray, y: np.ndarray, cfg: DataConfig, seed: int | None,
           has_test: bool) -> tuple[dict, dict]:
    """Hold out ``test_split`` and ``validation_split`` (fractions of all samples)."""
    if has_test and cfg.test_split:
        raise ConfigError(Problem("data.test_split", "no test_split: this source has its own "
                                  "test part", str(cfg.test_split), "Remove data.test_split."))
    n = len(x)
    n_test = int(round(n * cfg.test_split))
    n_val = int(round(n * cfg.validation_split))
    if (cfg.test_split and n_test == 0) or (cfg.validation_split and n_val == 0) \
            or n - n_test - n_val < 1:
        raise DataError(f"The data has {n} samples: too few for validation_split "
                        f"{cfg.validation_split} and test_split {cfg.test_split}.")
    order = np.random.default_rng(seed).permutation(n) if (n_test or n_val) else np.arange(n)
    test, val, train = np.split(order, [n_test, n_test + n_val])
    xs, ys = {"train": x[train], }, {"train": y[train]}
    if n_val:
        xs["validation"], ys["validation"] = x[val], y[val]
    if n_test:
        xs["test"], ys["test"] = x[test], y[test]
    return xs, ys


# --------------------------------------------------------------------------- sources


def _load_dataset(cfg: DataConfig, classify: bool) -> tuple[dict, dict]:
    name = cfg.dataset
    if name in BUILTIN_DATASETS:
        return _builtin(name)
    return _keras_dataset(name)


def _builtin(name: str) -> tuple[dict, dict]:
    if name == "xor":
        x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32")
        y = np.array([0, 1, 1, 0])
        return {"train": (x, y)}, {"features": ["x1", "x2"], "classes": ["0", "1"],
                                   "target": ["y"]}
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    info = {"features": [str(f) for f in bunch.feature_names], "target": ["target"]}
    if "target_names" in bunch:
        info["classes"] = [str(c) for c in bunch.target_names]
    else:  # diabetes: a regression target
        info["target"] = ["disease_progression"]
    return {"train": (bunch.data, bunch.target)}, info


# Where Keras's cache keeps each downloadable set (relative to KERAS_HOME) and where it
# comes from: what the user must put in place when there is no network.
KERAS_FILES = {
    "mnist": ("datasets/mnist.npz",
              "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"),
    "fashion_mnist": ("datasets/fashion-mnist/",
                      "https://storage.googleapis.com/tensorflow/tf-keras-datasets/ (the four "
                      "train-/t10k- .gz files)"),
    "cifar10": ("datasets/cifar-10-batches-py-target",
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "cifar100": ("datasets/cifar-100-python-target",
                 "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
    "boston_housing": ("datasets/boston_housing.npz",
                       "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
                       "boston_housing.npz"),
}


def keras_home() -> Path:
    """Keras's cache folder: $KERAS_HOME, else ~/.keras (as ``keras.utils.get_file`` uses)."""
    home = Path(os.environ.get("KERAS_HOME") or Path("~/.keras").expanduser())
    if not os.access(home if home.exists() else home.parent, os.W_OK):
        home = Path("/tmp/.keras")
    return home


def _keras_dataset(name: str) -> tuple[dict, dict]:
    import contextlib
    import io

    import keras

    relative, origin = KERAS_FILES[name]
    target = keras_home() / relative
    try:
        # Keras prints "Downloading data from ..." to stdout; keep stdout for our output.
        with contextlib.redirect_stdout(io.StringIO()):
            (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as exc:  # Keras raises a bare Exception for a failed download
        raise DataError(
            f"Could not load the Keras dataset '{name}': {' '.join(str(exc).split())}\n"
            f"With no network, put the genuine file at {target} (downloaded from {origin}); "
            "Keras checks its sha256, so a hand-made file is deleted."
        ) from None
    info: dict[str, Any] = {}
    if name == "boston_housing":
        info["target"] = ["MEDV"]
    return {"train": (x_train, y_train), "test": (x_test, y_test)}, info


def _existing(path: str, key: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"data.{key}: the file {p} does not exist.")
    return p


def _load_csv(cfg: DataConfig, classify: bool) -> tuple[dict, dict]:
    import pandas as pd

    path = _existing(cfg.csv, "csv")
    try:
        frame = pd.read_csv(path, sep=cfg.delimiter)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"data.csv: cannot read {path} as CSV: {exc}") from None
    columns = [str(c) for c in frame.columns]
    if cfg.target not in columns:
        close = did_you_mean(cfg.target, columns)
        raise ConfigError(Problem("data.target", f"a column of {path.name} ({', '.join(columns)})",
                                  f"'{cfg.target}'", f"Did you mean '{close}'?" if close else None))
    features = cfg.features or [c for c in columns if c != cfg.target]
    missing = [f for f in features if f not in columns]
    if missing:
        raise ConfigError(Problem("data.features", f"columns of {path.name} ({', '.join(columns)})",
                                  f"unknown columns {missing}"))
    x = numeric_frame(frame[features], path.name)
    y_col = frame[cfg.target]
    _no_missing(frame[[cfg.target]], path.name)
    if classify:
        y = y_col.to_numpy()
        if y.dtype == object:
            y = y.astype(str)
    else:
        y = numeric_frame(frame[[cfg.target]], path.name)
    return {"train": (x, y)}, {"features": features, "target": [cfg.target]}


def _no_missing(frame: Any, name: str) -> None:
    holes = np.argwhere(frame.isna().to_numpy())
    if len(holes):
        row, col = holes[0]
        raise DataError(f"{name}: missing value at row {row + 2}, column '{frame.columns[col]}' "
                        f"({len(holes)} missing in all). Fill or drop those rows first.")


def numeric_frame(frame: Any, name: str) -> np.ndarray:
    """A DataFrame's values as float32, or a DataError naming the first non-numeric cell."""
    import pandas as pd

    _no_missing(frame, name)
    for column in frame.columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise DataError(f"{name}: column '{column}' must be numeric; row {row + 2} holds "
                            f"{frame[column].iloc[row]!r}.")
    return frame.to_numpy(dtype="float32")


def _load_npz(cfg: DataConfig, classify: bool) -> tuple[dict, dict]:
    path = _existing(cfg.npz, "npz")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (ValueError, OSError) as exc:
        raise DataError(f"data.npz: cannot read {path} as .npz: {exc}") from None
    if {"x", "y"} <= arrays.keys():
        parts = {"train": (arrays["x"], arrays["y"])}
    elif {"x_train", "y_train"} <= arrays.keys():
        parts = {"train": (arrays["x_train"], arrays["y_train"])}
        if {"x_test", "y_test"} <= arrays.keys():
            parts["test"] = (arrays["x_test"], arrays["y_test"])
    else:
        raise DataError(f"data.npz: {path.name} must hold arrays x and y (or x_train, y_train, "
                        f"x_test, y_test); it holds {sorted(arrays)}.")
    for split, (x, y) in parts.items():
        if len(x) != len(y):
            raise DataError(f"data.npz: {path.name} has {len(x)} {split} inputs but "
                            f"{len(y)} labels.")
    return parts, {}
