"""Where data comes from besides a CSV: the built-in datasets, synthetic data, Keras's datasets
(from its cache), npz arrays and image folders.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from nettrain.config.sections import DataConfig
from nettrain.data.dataset import IMAGE_SUFFIXES, NPZ_ERRORS
from nettrain.errors import (
    ConfigError,
    DataError,
    Problem,
    RunError,
    UsageError,
    plain_tf_text,
)

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


def not_cached(what: str, target: Path | str, origin: str, note: str | None = None) -> \
        DataError:
    """The error for a file of Keras's cache that is not there and cannot be downloaded (a
    dataset, an application's weights): the exact file, the folder it goes in, where from.

    Example: ``not_cached("Could not load ...", home / "models/w.h5", url)`` -> "...\nWith no
    network, put the genuine file at /home/u/.keras/models/w.h5 (downloaded from url)."
    """
    return DataError(f"{what}\nWith no network, put the genuine file at {target} (downloaded "
                     f"from {origin})" + (f"; {note}." if note else "."))


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
        raise not_cached(f"Could not load the Keras dataset '{name}': "
                         f"{' '.join(str(exc).split())}", target, origin,
                         "Keras checks its sha256, so a hand-made file is deleted" if name in
                         _CHECKED else None) from None
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
    for name in ("x", "y", "x_train", "y_train", "x_test", "y_test"):
        problem = complex_problem(name, arrays.get(name), path, key)
        if problem:
            raise (UsageError if key.startswith("--") else ConfigError)(problem)
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


def complex_problem(name: str, array: Any, path: Path, key: str) -> Problem | None:
    """The problem of an array of complex numbers (float32 would keep only their real part,
    silently); None for any other array (or none).

    Example: ``complex_problem("x", x, Path("d.npz"), "data.npz")`` for a complex ``x`` names
    the array and the file, and how to keep what it holds.
    """
    if array is None or not np.iscomplexobj(array):
        return None
    return Problem(key, "arrays of real numbers", f"array '{name}' of {path}, which holds "
                   f"complex numbers ({array.dtype})",
                   f"Keep the real part ({name}.real), or give the real and imaginary parts as "
                   f"two features (np.concatenate([{name}.real, {name}.imag], axis=-1)).")


def image_options(cfg: DataConfig) -> dict[str, Any]:
    return {"image_size": tuple(cfg.image_size or (256, 256)),
            "color_mode": cfg.color_mode or "rgb"}


def class_folders(path: Path) -> list[str]:
    """The class folders of an image folder as ``image_dataset_from_directory`` finds them:
    its sub-folders and links to folders, but for those whose names start with a dot; sorted."""
    return sorted(entry.name for entry in os.scandir(path)
                  if entry.is_dir() and not entry.name.startswith("."))


def image_files(path: Path, classes: list[str] | None = None) -> list[Path]:
    """The files ``keras.utils.image_dataset_from_directory(path, class_names=classes)`` reads,
    in its order (unshuffled), as its ``index_directory`` lists them (``follow_links=False``).

    In each class folder (default: :func:`class_folders`), itself maybe a link to a folder:
    every file named with an image suffix (any case), in its sub-folders too but not in a
    sub-folder that is a link; a link to a file counts (it is read as its target). Other
    files (``.DS_Store``, a README) and files beside the class folders are not read.
    """
    files: list[Path] = []
    for name in class_folders(path) if classes is None else classes:
        for root, _, names in sorted(os.walk(path / name), key=lambda walked: walked[0]):
            files += [Path(root) / f for f in sorted(names)
                      if f.lower().endswith(IMAGE_SUFFIXES)]
    return files


def images_under(path: Path) -> list[Path]:
    """The image files of a folder and its sub-folders, links to folders followed (predict's
    input), in the order ``image_dataset_from_directory(path, labels=None)`` reads them. A
    folder reached a second time (a link to itself or to a folder above it, two links to one
    folder) is not read again: each image is read once, and a loop ends."""
    seen: set[str] = set()
    walked = []
    for root, folders, names in os.walk(path, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # os.walk descends before it could be pruned: skip it here
            folders[:] = []
            continue
        seen.add(real)
        folders[:] = sorted(f for f in folders  # in order: the first of two links is read
                            if os.path.realpath(os.path.join(root, f)) not in seen)
        walked.append((root, names))
    return [Path(root) / name for root, names in sorted(walked, key=lambda w: w[0])
            for name in sorted(names) if name.lower().endswith(IMAGE_SUFFIXES)]


def reads_image(relative: Path) -> bool:
    """Whether a file at ``relative`` (a path inside an image folder) is one that
    :func:`image_files` may list: in a class folder, named with an image suffix."""
    return len(relative.parts) >= 2 and not relative.parts[0].startswith(".") \
        and relative.name.lower().endswith(IMAGE_SUFFIXES)


def _read_images(path: Path, cfg: DataConfig, key: str, info: dict | None) -> tuple:
    """A folder with one sub-folder per class, read by keras.utils.image_dataset_from_directory.

    The files it reads are :func:`image_files` (what the data fingerprint hashes); a Keras
    that reads others is refused, so that a run never trains on files its record does not
    cover.
    """
    import keras

    path = _existing(path, key)
    if not path.is_dir():
        raise DataError(f"{key}: {path} is not a folder; expected one sub-folder per class.")
    classes = class_folders(path)
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
    listed = [str(file) for file in image_files(path, classes)]
    if list(dataset.file_paths) != listed:
        odd = sorted(set(dataset.file_paths) ^ set(listed)) or ["(the order)"]
        raise RunError(f"{key}: Keras {keras.__version__} reads other files of {path} than "
                       f"nettrain fingerprints ({len(dataset.file_paths)} and {len(listed)}; "
                       f"first difference: {odd[0]}), so a change to them could go unnoticed. "
                       "This is a nettrain bug: please report it with your Keras version.")
    try:
        x, y = images_to_numpy(dataset, with_labels=True)
    except DataError as exc:
        raise DataError(f"{key}: {exc}") from None
    if len(x) == 0:
        raise DataError(f"{key}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders "
                        f"of {path}.")
    if info is None:
        info = {"classes": classes, "images": {"image_size": list(options["image_size"]),
                                               "color_mode": options["color_mode"]},
                "source_rows": listed}  # each row's file, for split.csv (taken out)
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
