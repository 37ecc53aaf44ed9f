"""The arrays ``nettrain predict`` reads besides a CSV: a .npy (mapped, not read whole) or the
``x`` of a .npz, in chunks of finite float32 rows, and image files or folders resized as in
training (:mod:`nettrain.engine.predict` owns what is done with them)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nettrain.data.dataset import IMAGE_SUFFIXES, NPZ_ERRORS
from nettrain.data.sources import complex_problem, images_to_numpy, images_under
from nettrain.errors import DataError, InputError, UsageError

CHUNK_ROWS = 65_536  # rows read, predicted and written at a time (a CSV's too)


def read_arrays(path: Path) -> np.ndarray:
    """A .npy array (mapped from the disk, not read whole), or the array ``x`` (or ``x_test``,
    or the only one) of a .npz; of real numbers (UsageError for complex ones)."""
    npy = path.suffix.lower() == ".npy"
    try:
        loaded = np.load(path, allow_pickle=False, mmap_mode="r" if npy else None)
        if npy:
            name, array = "x", loaded
        else:
            with loaded:
                files = sorted(loaded.files)
                name = next((k for k in ("x", "x_test") if k in files),
                            files[0] if len(files) == 1 else None)
                array = loaded[name] if name is not None else None
    except NPZ_ERRORS as exc:
        raise DataError(f"INPUT: cannot read {path}: {exc}") from None
    if array is None:
        raise DataError(f"{path.name}: expected an array named x (or x_test); it holds {files}.")
    problem = complex_problem(name, array, path, "INPUT")
    if problem:
        raise UsageError(str(problem))
    return array


def array_chunks(x: np.ndarray, name: str, rows: int | None = None) -> Iterator[np.ndarray]:
    """Rows of an array, ``rows`` at a time, as finite float32 (else a DataError naming the
    first bad value's index)."""
    rows = rows or CHUNK_ROWS
    if x.ndim == 0 or len(x) == 0:
        raise InputError(f"{name}: no rows to predict (an empty array).")
    if x.ndim == 1:  # one sample (see fit_shape)
        rows = len(x)
    for start in range(0, len(x), rows):
        with np.errstate(over="ignore", invalid="ignore"):
            # a copy: a read-only view of a mapped .npy is refused by torch's compiled call
            chunk = np.array(x[start:start + rows], dtype="float32")
        if not np.isfinite(chunk).all():
            at = np.argwhere(~np.isfinite(chunk))[0]
            at[0] += start
            raise InputError(f"{name}: the input at index {at.tolist()} is "
                            f"{x[tuple(at)]}, not a finite 32-bit number. Replace NaN, "
                            "infinite and huge (over about 3.4e38) values first.")
        yield chunk


def read_images(path: Path, options: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """An image file, or a folder of images (searched recursively, links followed, each
    folder once: :func:`nettrain.data.sources.images_under`), resized as in training."""
    import keras

    image_size, color_mode = tuple(options["image_size"]), options["color_mode"]
    files = [path] if path.is_file() else images_under(path)
    if not files:
        raise DataError(f"INPUT: no images ({', '.join(IMAGE_SUFFIXES)}) in {path}.")
    # The reader of training takes a folder: link the files into one, in their order.
    tmp = Path(tempfile.mkdtemp(prefix="nettrain-predict-"))
    shown: dict[str, str] = {}
    try:
        for i, file in enumerate(files):
            link = tmp / f"{i:09d}{file.suffix.lower()}"
            link.symlink_to(file.resolve())
            shown[str(link)] = str(file)
        dataset = keras.utils.image_dataset_from_directory(
            tmp, labels=None, batch_size=None, shuffle=False, image_size=image_size,
            color_mode=color_mode, verbose=False)
        paths = [shown[p] for p in dataset.file_paths]
        x, _ = images_to_numpy(dataset, with_labels=False, shown=shown)
    except ValueError as exc:
        raise DataError(f"INPUT: no images ({', '.join(IMAGE_SUFFIXES)}) in {path}: "
                        f"{exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return x, paths
