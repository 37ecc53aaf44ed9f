"""An estimate of a training job's work (training rows x epochs x parameters) from its config
alone, before anything is read or imported, for ``backend: auto``
(:mod:`nettrain.backends.select`).

Only sizes are looked at: a file's length, an npz member's header, an image folder's file
count; the loaders (:mod:`nettrain.data`) own the data itself. ``None`` where a size cannot be
told cheaply (a missing file, an unknown layer's width).

Example: ``estimate(config)`` -> ``Work(rows=1294, epochs=60, parameters=9610)`` for
configs/digits_mlp.yaml; ``.total`` is about 7.5e8.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nettrain.config.fields import IMAGE_SUFFIXES

# Rows and input width of the named datasets (scikit-learn's and Keras's, as loaded).
DATASETS = {"xor": (4, 2), "iris": (150, 4), "digits": (1797, 64),
            "breast_cancer": (569, 30), "wine": (178, 13), "diabetes": (442, 10),
            "mnist": (60000, 784), "fashion_mnist": (60000, 784), "cifar10": (50000, 3072),
            "cifar100": (50000, 3072), "boston_housing": (404, 13), "imdb": (25000, None),
            "reuters": (8982, None)}
_CHANNELS = {"rgb": 3, "grayscale": 1, "rgba": 4, None: 3}


@dataclass(frozen=True)
class Work:
    """How much a fit trains: rows of the training split, epochs, parameters (None: unknown)."""

    rows: int | None
    epochs: int
    parameters: int | None

    @property
    def total(self) -> int | None:
        """rows x epochs x parameters: a step's cost grows with the parameters, an epoch's
        with the rows."""
        if self.rows is None or self.parameters is None:
            return None
        return self.rows * self.epochs * self.parameters

    def __str__(self) -> str:
        def count(n: int | None) -> str:
            return "?" if n is None else f"{n:,}"

        return f"{count(self.rows)} rows x {self.epochs} epoch{'s' * (self.epochs != 1)} x " \
               f"{count(self.parameters)} parameters"


def estimate(config: Any) -> Work:
    """The work of fitting ``config``: its training rows (the source's rows less the
    validation and test shares), ``fit.epochs`` and the parameters of its Dense layers."""
    rows, width = _source(config.data)
    if rows is not None:
        held = config.data.validation_split + config.data.test_split \
            if config.data.validation is None else config.data.test_split
        rows = max(1, round(rows * (1 - held)))
    if config.model.input_shape:
        width = math.prod(config.model.input_shape)
    return Work(rows, config.fit.epochs, _parameters(config.model.layers, width))


def _source(data: Any) -> tuple[int | None, int | None]:
    """(rows, input width) of the data source, each None when not cheap to tell."""
    try:
        if data.dataset is not None:
            return DATASETS.get(data.dataset, (None, None))
        if data.synthetic is not None:
            return data.synthetic.n_samples, data.synthetic.n_features
        if data.csv is not None:
            return _csv(Path(data.csv), data)
        if data.npz is not None:
            return _npz(Path(data.npz))
        if data.images is not None:
            return _images(Path(data.images), data)
    except (OSError, ValueError, zipfile.BadZipFile):
        pass
    return None, None


def _csv(path: Path, data: Any) -> tuple[int | None, int | None]:
    """Rows from the file's size and the length of its first lines; width from its header."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(1 << 16)
    lines = head.splitlines()
    if len(lines) < 2:
        return 0, None
    body = lines[1:] if size <= len(head) else lines[1:-1]  # the last may be cut
    rows = len(body) if size <= len(head) else \
        round((size - len(lines[0])) / (sum(map(len, body)) / len(body) + 1))
    columns = lines[0].decode(errors="replace").split(data.delimiter)
    targets = [data.target] if isinstance(data.target, str) else list(data.target or [])
    width = len(data.features) if data.features else \
        len(columns) - len(targets) - (data.sample_weight is not None)
    series = getattr(data, "timeseries", None)
    if series is not None:  # a sample is a window of rows of the inputs, the target's included
        inputs = len(set(data.features) | set(targets)) if data.features else len(columns) - 1
        rows, width = max(0, rows - series.window), inputs * series.window
    if data.categorical or data.text:
        width = None  # one-hot (and text's) widths are the vocabularies': unknown before reading
    return rows, width


def _npz(path: Path) -> tuple[int | None, int | None]:
    """The shape of ``x`` (or ``x_train``) from its header in the archive."""
    import numpy as np

    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        name = next((n for n in ("x_train.npy", "x.npy") if n in names), None)
        if name is None:
            return None, None
        with archive.open(name) as member:
            version = np.lib.format.read_magic(member)
            # NumPy's public readers of the two header versions it writes for arrays of
            # numbers (3.0 is for field names beyond latin-1: not told cheaply)
            read = {(1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read is None:
                return None, None
            shape = read(member)[0]
    return (shape[0], math.prod(shape[1:])) if shape else (None, None)


def _images(folder: Path, data: Any) -> tuple[int | None, int | None]:
    rows = sum(1 for _, _, files in os.walk(folder) for f in files
               if f.lower().endswith(IMAGE_SUFFIXES))
    height, width = data.image_size or (256, 256)
    return rows, height * width * _CHANNELS.get(data.color_mode, 3)


def _parameters(layers: list[Any], width: int | None) -> int | None:
    """The parameters of the Dense layers, from the input width on (None: unknown)."""
    if width is None:
        return None
    total = 0
    for layer in layers:
        name, arguments = (next(iter(layer.items())) if isinstance(layer, dict)
                           else (str(layer), None))
        if name == "Dense":
            units = (arguments or {}).get("units") if isinstance(arguments, dict) else arguments
            if not isinstance(units, int):
                return None
            total += width * units + units
            width = units
    return total
