"""Data: every source becomes inputs and labels split into train / validation / test.

Inputs are a float32 array, or (a CSV with ``categorical`` columns) a mapping from column name
to a one-column array, which the model takes as named inputs. Learned preprocessing (scaling,
flattening, normalization, category vocabularies) is not applied here: the model builder puts
it inside the model as layers, fitted on the training split only, so a saved model takes raw
inputs. A CSV too large for memory streams instead (:mod:`nettrain.data.stream`).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from nettrain.config.fields import BUILTIN_DATASETS
from nettrain.config.schema import Config
from nettrain.config.sections import DataConfig
from nettrain.data import stream as streaming
from nettrain.data.columns import named_inputs
from nettrain.data.csvfile import CsvRule, read_csv
from nettrain.data.dataset import Data, SplitRows, size, take
from nettrain.data.labels import index_classes, label_source
from nettrain.data.sources import (
    _builtin,
    _existing,
    _keras_dataset,
    _read_images,
    _read_npz,
    _synthetic,
)
from nettrain.data.tabular import (
    PREDICT_ADVICE,
    _read_csv,
    _table_parts,
    categorical_columns,
    check_columns,
)
from nettrain.errors import ConfigError, DataError, DataProblems, InputError, Problem, UsageError


def load_data(config: Config, recorded: dict[str, Any] | None = None) -> Data:
    """Load the config's data source and split it with the config's seed.

    ``recorded``: the ``dataset.json`` of the run the data is loaded again for (evaluate,
    resume), whose CSV reading rule applies (see :mod:`nettrain.data.csvfile`); default: a
    new run's.

    Example: ``load_data(load_config("configs/iris.yaml")).x["train"].shape`` -> ``(105, 4)``.
    """
    try:
        return _load_data(config, CsvRule.of(recorded))
    except ConfigError as exc:  # name the config file and the lines of the keys
        if exc.source is not None:
            raise
        raise config.error(exc.problems) from None
    except DataProblems as exc:  # a config key's problem among the cells': its line too
        if not any(isinstance(p, Problem) for p in exc.problems):
            raise
        raise DataProblems(exc.source, [config.error([p]).problems[0] if isinstance(p, Problem)
                                        else p for p in exc.problems]) from None


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
    if kind == "csv" and info.get("timeseries"):  # windows of the file's rows in time order
        from nettrain.data.timeseries import labelled_series

        return labelled_series(path, info, cfg.missing, cfg.delimiter)
    if kind == "csv":
        rows = LabelledCsv(_existing(path, key), cfg, info, classify).open()
        if not rows.counts["test"]:
            raise DataError(f"{key}: {path} holds no samples.")
        return Data({}, {}, {}, info, stream=rows)
    if kind == "npz":
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
    y = _run_labels(y, classify, cfg, info, path.name, indices=kind == "images")
    data = Data({"test": x}, {"test": y}, {"test": w} if w is not None else {}, info)
    if data.size("test") == 0:
        raise DataError(f"{key}: {path} holds no samples.")
    return data


class LabelledCsv(streaming.Chunked):
    """A labelled CSV for ``evaluate --data``, read ``CHUNK_ROWS`` rows at a time
    (:data:`nettrain.data.stream.CHUNK_ROWS`) by the run's reading rule, as one split, test:
    memory stays flat in the number of rows. :meth:`open` checks the header and every row
    (the messages of a file read whole, exit codes included) and counts them; each pass of
    :meth:`dataset` reads the file again."""

    def __init__(self, path: Path, cfg: DataConfig, info: dict[str, Any], classify: bool):
        self.path, self.info, self.classify = path, info, classify
        self.cfg = cfg.model_copy(update={"target": list(info.get("target") or cfg.targets),
                                          "features": info["features"]})
        self.counts = {"test": 0}

    def open(self) -> LabelledCsv:
        self.counts["test"] = sum(len(y) for _, y, _ in self.arrays("test"))
        return self

    def _check_columns(self, columns: list[str]) -> None:
        """The file's columns (of its first chunk: a malformed row there is named first, as
        predict names it) hold the run's features and targets, by name."""
        cfg = self.cfg
        weight = [cfg.sample_weight] if cfg.sample_weight else []
        try:
            check_columns(columns, self.info["features"] + cfg.targets + weight, self.path.name,
                          "the run's training data", cfg.delimiter, extra_allowed=True)
        except InputError as exc:  # the file is readable: it is the wrong file for this run
            raise UsageError(f"--data: {exc}") from None

    def arrays(self, split: str = "test", epoch: int = 0, shuffle: bool = False) -> \
            Iterator[tuple[Any, np.ndarray, np.ndarray | None]]:
        """(x, y, w) of each chunk, as the model takes them (rows in the file's order)."""
        from nettrain.data.dataset import size

        cfg, rows = self.cfg, streaming.CHUNK_ROWS
        for frame in read_csv(self.path, cfg.delimiter, "--data", CsvRule.of(self.info),
                              categorical_columns(cfg, self.info), rows):
            first = not len(frame) or frame.index[0] == 0
            if first:
                self._check_columns(list(frame.columns))
            part = not (first and len(frame) < rows)  # more rows than this chunk
            x, y, w, _ = _table_parts(frame, cfg, self.path.name, self.info, PREDICT_ADVICE,
                                      f"Fill it, or drop the row (the run's data.missing is "
                                      f"{cfg.missing}).", part=part)
            if size(x):
                yield x, _run_labels(y, self.classify, cfg, self.info, self.path.name), w


def _run_labels(y: np.ndarray, classify: bool, cfg: DataConfig, info: dict[str, Any],
                name: str, indices: bool = False) -> np.ndarray:
    """New labels of ``--data`` file ``name`` as the run's model is scored on them: class
    names or indices of the run's classes (``indices``: they are already), or numbers."""
    key = "--data"
    if classify and not indices:
        y = _run_classes(y, info["classes"], f"{key}: {name}")
    elif not classify and not np.issubdtype(np.asarray(y).dtype, np.number):
        raise UsageError(f"{key}: the labels of {name} must be numbers (the model is a "
                         "regression model); they hold values such as "
                         f"{np.asarray(y).reshape(-1)[0]!r}.")
    y = _labels(y, classify, cfg.one_hot, info)
    targets = info.get("target") or []
    if not classify and len(targets) and (y.ndim != 2 or y.shape[1] != len(targets)):
        raise UsageError(f"{key}: the labels of {name} have shape {list(y.shape[1:])} "
                         f"per sample; the model predicts {len(targets)} value"
                         f"{'s' if len(targets) != 1 else ''} ({', '.join(targets)}).")
    return y


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


def _load_data(config: Config, rule: CsvRule) -> Data:
    cfg = config.data
    classify = config.is_classifier
    if cfg.stratify and not classify:
        raise ConfigError(Problem("data.stratify", "stratify only for a classifier (a "
                                  "cross-entropy or hinge loss)", "true"))
    if cfg.timeseries is not None:  # windows in time order, split by time
        from nettrain.data.timeseries import load_series

        return load_series(cfg, classify, rule)
    from nettrain.data.stream import CsvStream, should_stream

    if should_stream(cfg):
        if cfg.text:  # a TextVectorization adapts on the training texts held in memory
            raise ConfigError(Problem("data.stream", "no stream with data.text (the text "
                                      "columns' vocabulary is learned from the whole "
                                      "training split)", str(cfg.stream), "stream: false."))
        for key in ("stratify", "validation", "test"):
            if getattr(cfg, key):
                raise ConfigError(Problem(f"data.{key}", f"no {key} with a streamed CSV (rows "
                                          "are split by a hash of their row number)",
                                          str(getattr(cfg, key)),
                                          "Use validation_split and test_split, or stream: "
                                          "false."))
        stream = CsvStream(_existing(Path(cfg.csv), "data.csv"), cfg, config.seed,
                           classify, rule).open()
        info = {"features": stream.features, "target": cfg.targets, "streamed": True,
                "csv_reading": rule.to_json(), "missing": stream.missing.to_json()}
        if cfg.categorical:
            info["columns"] = stream.kinds
            info["model_inputs"] = named_inputs(stream.kinds, rule.input_names(stream.features))
        if classify:
            info["classes"] = stream.classes
        return Data({}, {}, {}, info, stream=stream, rows=stream.rows, notes=stream.notes)
    drawn: dict[str, dict[str, np.ndarray]] = {}

    def draw(n: int, labels: np.ndarray | None) -> np.ndarray:
        """The training rows of a CSV, drawn before its fills are learned on them."""
        has = {s for s in ("validation", "test") if getattr(cfg, s) is not None}
        drawn["index"] = _split_index(n, labels if classify else None, cfg, config.seed, has)
        return drawn["index"]["train"]

    parts, info = _load_source(cfg, classify, config.seed, rule, draw)
    notes = info.pop("notes", [])
    kept, dropped = info.pop("kept_rows", None), info.pop("dropped_rows", None)
    paths = info.pop("source_rows", None)
    if classify:
        parts, info["classes"] = _class_indices(parts, info.get("classes"), label_source(
            cfg.source, str(cfg.path or cfg.dataset), cfg.target))
    else:
        info.pop("classes", None)
    x, y, w = parts.pop("train")
    index = drawn.get("index") or _split_index(size(x), y if classify else None, cfg,
                                               config.seed, has=set(parts))
    total = size(x) + (len(dropped) if dropped is not None else 0)
    placed = SplitRows.of(total, index, kept, lines=kept is not None, paths=paths)
    data = Data({}, {}, {}, info, rows=placed, notes=notes)
    for split, rows in index.items():
        if len(index) == 1 and np.array_equal(rows, np.arange(size(x))):
            rows = slice(None)  # the whole source, in order: no copy of it (MNIST: 188 MB)
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


def _load_source(cfg: DataConfig, classify: bool, seed: int | None,
                 rule: CsvRule, split: Any = None) -> tuple[dict, dict]:
    """The source's parts: ``{'train': (x, y, w), 'test': ...}`` and its info; a CSV is read
    by ``rule``, its fills learned on the rows ``split`` gives (see
    :func:`nettrain.data.tabular._table_parts`)."""
    if cfg.source == "dataset":
        if cfg.dataset in BUILTIN_DATASETS:
            return _builtin(cfg.dataset)
        return _keras_dataset(cfg)
    if cfg.source == "synthetic":
        return _synthetic(cfg, classify, seed)
    read = {"csv": partial(_read_csv, rule=rule, split=split), "npz": _read_npz,
            "images": _read_images}[cfg.source]
    x, y, w, info = read(Path(cfg.path), cfg, "data." + cfg.source, info=None)
    parts = {"train": (x, y, w)}
    parts.update(info.pop("parts", {}))
    for part in ("validation", "test"):
        path = getattr(cfg, part)
        if path is not None:  # an explicit file of the same kind, read like the training one
            px, py, pw, _ = read(Path(path), cfg, f"data.{part}", info=info)
            parts[part] = (px, py, pw)
    info.pop("sample_shape", None)
    return parts, info


def _class_indices(parts: dict[str, tuple], names: list[str] | None,
                   source: tuple[str, str, str]) -> tuple[dict[str, tuple], list[str]]:
    """Map every split's class labels to 0..n-1; return them and the class names in order.

    Known class names (built-in sets, image folders) mean the labels are indices already.
    Integer labels keep their values (0..max; a max far beyond the labels present is refused,
    naming ``source``: see :func:`nettrain.data.labels.index_classes`). Other labels (strings
    such as 'setosa') are sorted and numbered; a label in validation or test data that training lacks is an error.
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
            classes = index_classes(values.tolist(), *source)
            n = len(classes)
            for split, (_, y, _) in out.items():
                present = np.unique(y.astype("int64"))
                unknown = [int(v) for v in present[(present < 0) | (present >= n)]]
                if unknown:
                    raise DataError(f"The {split} data has class labels that training lacks: "
                                    f"{unknown[:5]}. Training classes: 0..{n - 1}.")
            return ({s: (x, y.astype("int64"), w) for s, (x, y, w) in out.items()}, classes)
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
        values, counts = np.unique(y, return_counts=True) if y is not None else ([], [])
        rare = [v for v, c in zip(np.asarray(values).tolist(), counts) if 0 < c < 2]
        raise ConfigError(Problem(
            "data.stratify", "every class with at least 2 samples, to stratify the split",
            f"class{'es' if len(rare) != 1 else ''} {rare} with 1 sample" if rare
            else " ".join(str(exc).split()),
            "Set data.stratify: false, or drop the rare class from the data.")) from None
    return {s: np.sort(i) if s != "train" else i for s, i in index.items()}
