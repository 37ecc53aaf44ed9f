"""The :class:`Data` of a run: inputs and labels split into train / validation / test, and
the kinds of inputs the model takes (arrays, or named columns of a table).
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from nettrain.config.fields import IMAGE_SUFFIXES
from nettrain.data.columns import model_inputs, names_of
from nettrain.run import writing

SPLITS = ("train", "validation", "test")
Inputs = Union[np.ndarray, dict[str, np.ndarray]]
# The Keras input dtype of each kind of named input column.
# What numpy raises for a damaged .npz (a zip archive): when it opens it, and when it reads
# an array from it (a cut file, a changed byte).
NPZ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


@dataclass
class Data:
    """Inputs and labels per split, plus what ``predict`` needs to read inputs and name outputs."""

    x: dict[str, Inputs]
    y: dict[str, np.ndarray]
    w: dict[str, np.ndarray] = field(default_factory=dict)  # sample weights, when declared
    info: dict[str, Any] = field(default_factory=dict)     # features, classes, target, ...
    stream: Any = None  # a nettrain.data.stream.Chunked CSV: the splits are read pass by pass
    rows: SplitRows | None = None  # which source rows went to each split (split.csv)
    notes: list[str] = field(default_factory=list)  # lines for the user (rows dropped)

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
        name = self.input_names[column]
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
        """For named inputs: column -> 'numeric' | 'string' | 'integer' (categorical kinds) |
        'text' (data.text)."""
        return self.info.get("columns")

    @property
    def input_names(self) -> dict[str, str]:
        """For named inputs: column -> the name of the model input that takes it, as chosen
        when the data was first read (``info["model_inputs"]``, see
        :func:`nettrain.data.columns.names_of`)."""
        return names_of(self.info)

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
                "model_inputs": model_inputs(self.input_shape, self.columns, self.input_names)}


def size(x: Inputs) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def take(x: Inputs, index: np.ndarray | slice) -> Inputs:
    """Rows ``index`` of an array or of every column of a mapping."""
    return {k: v[index] for k, v in x.items()} if isinstance(x, dict) else x[index]


SPLIT_NAMES = ("train", "validation", "test", "dropped")  # split.csv's values, by code


@dataclass
class SplitRows:
    """Which rows of the source went to each split, as ``split.csv`` of a run directory
    records them: one row per source row, ``row`` (0-based, as ``pandas.read_csv(...).iloc``
    takes it), for a CSV its ``line`` (the header is line 1), for images the file's ``path``,
    and ``split`` (train, validation, test, or dropped: no target, or data.missing: drop)."""

    codes: np.ndarray                 # per source row: its index in SPLIT_NAMES
    lines: bool = False               # rows of a CSV file
    paths: list[str] | None = None    # rows that are files

    @classmethod
    def of(cls, total: int, index: dict[str, np.ndarray], rows: np.ndarray | None = None,
           **kinds: Any) -> SplitRows:
        """``total`` source rows, of which row ``rows[i]`` (default: ``i``) is position ``i``
        of the loaded data, split by positions ``index`` (split -> positions)."""
        codes = np.full(total, SPLIT_NAMES.index("dropped"), dtype=np.int8)
        for split, positions in index.items():
            codes[positions if rows is None else rows[positions]] = SPLIT_NAMES.index(split)
        return cls(codes, **kinds)

    def write(self, path: Any, chunk: int = 1_000_000) -> None:
        """Write the CSV at ``path`` (through a temporary file), ``chunk`` rows at a time."""
        import pandas as pd

        names = np.array(SPLIT_NAMES)
        with writing.replacing(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            for start in range(0, max(len(self.codes), 1), chunk):
                row = np.arange(start, min(start + chunk, len(self.codes)))
                columns: dict[str, Any] = {"row": row}
                if self.lines:
                    columns["line"] = row + 2
                if self.paths is not None:
                    columns["path"] = self.paths[start:start + chunk]
                columns["split"] = names[self.codes[row]]
                f.write(pd.DataFrame(columns).to_csv(index=False, header=start == 0))
