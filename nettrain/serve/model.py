"""The served model: a run loaded once, its TF Serving signature, and its two ways of being
asked: TF Serving's tensors (:meth:`Served.tensors`) and nettrain's own rows by column name,
CSV files or images (:meth:`Served.rows`, :meth:`Served.csv`, :meth:`Served.images`), which
go through what ``nettrain predict`` applies (:mod:`nettrain.engine.predict`)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from nettrain.data.columns import model_inputs, names_of
from nettrain.data.dataset import Inputs, size
from nettrain.engine import predict as predicting
from nettrain.serve import checks
from nettrain.serve.batching import Batcher
from nettrain.serve.tensors import OUTPUT, Spec

VERSION = "1"  # a run is one version of its model
T = TypeVar("T")
# A request's tensors under this many bytes are read and answered on the event loop: tens of
# microseconds, less than handing them to a worker thread.
INLINE_BYTES = 2048


class Served:
    """A run's model behind a :class:`Batcher`.

    Args:
        run: a run directory (or a saved model file).
        name: the model's name in TF Serving's URLs and ModelSpec (default: the config's).
        window_ms, max_rows: the batcher's window and largest call.
        request_rows: the most rows one request may have (``--max-rows``).
    """

    def __init__(self, run: Path, name: str | None, window_ms: float, max_rows: int,
                 fmt: str | None = None, request_rows: int = checks.MAX_ROWS):
        self.run = run
        self.predictor = predicting.load_run(run, fmt)
        info, model = self.predictor.info, self.predictor.model
        self.name = name or _config_name(run) or run.stem
        self.version = VERSION
        shape = info.get("input_shape") or list(model.input_shape[1:])
        self.inputs: Spec = model_inputs(shape, info.get("columns"), names_of(info))
        for input_name, spec in self.inputs.items():
            if spec["dtype"] == "string":
                spec["booleans"] = _booleans(model, input_name)
        self.request_rows = request_rows
        units = int(np.prod([d for d in model.output_shape[1:] if d is not None] or [1]))
        self.outputs: Spec = {OUTPUT: {"dtype": "float32", "shape": [None, units]}}
        self.batcher = Batcher(self._call, window_ms, max_rows)
        # A few threads: the work holds the GIL, so more would not be faster, only wait longer
        # for it (and so would the event loop).
        self._workers = ThreadPoolExecutor(2, thread_name_prefix="nettrain-request")

    async def work(self, fn: Callable[..., T], *args: Any, size: int | None = None) -> T:
        """``fn(*args)`` in a worker thread: where every request's CPU work runs (reading a
        body, pandas, checking inputs, writing the answer; the model in the batcher's own),
        so the event loop only moves bytes and ``/health`` answers while big requests run.

        ``size``: the bytes of a request's tensors (TF Serving's, no pandas); under
        :data:`INLINE_BYTES` ``fn`` runs here, costing less than the hand-over to a thread
        (which made 1-row requests at 8 clients about 2 ms slower)."""
        if size is not None and size < INLINE_BYTES:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._workers, fn, *args)

    async def close(self) -> None:
        """After the last request: the batcher's jobs done, the threads ended."""
        await self.batcher.close()
        self._workers.shutdown(wait=True)

    def _call(self, x: Inputs) -> np.ndarray:
        out = predicting.call_model(self.predictor, x, "request", whole=True)
        return np.asarray(out).reshape(len(out), -1)

    def warm(self) -> None:
        """One call before the first request, so it does not pay for tracing the model."""
        zeros = {n: np.full((1, *s["shape"][1:]), "" if s["dtype"] == "string" else 0,
                            dtype=object if s["dtype"] == "string" else s["dtype"])
                 for n, s in self.inputs.items()}
        self._call(zeros if len(zeros) > 1 or "inputs" not in zeros else zeros["inputs"])

    async def tensors(self, x: Inputs) -> np.ndarray:
        """The model's outputs for inputs read by :mod:`nettrain.serve.tensors`."""
        return await self.batcher(x)

    async def rows(self, rows: Callable[[], Any], name: str) -> Any:
        """Rows in memory (what ``rows()`` gives: a DataFrame of columns by name, or a list of
        arrays' rows) -> ``nettrain predict``'s output frame (class and probabilities, or
        values)."""
        p = self.predictor
        x = await self.work(lambda: predicting.rows_inputs(p, rows(), name))
        return await self.work(predicting.outputs, p, await self.batcher(x))

    async def csv(self, data: bytes, name: str) -> Any:
        """An uploaded CSV, read as ``nettrain predict`` reads a file."""
        import pandas as pd

        p, limit = self.predictor, self.request_rows

        def read(paths: list[Path]) -> list[Inputs]:
            chunks = []
            # limit + 1 rows a chunk: a first chunk over the limit says the file is
            for x in predicting.read_csv_chunks(paths[0], p.info, p.missing, p.delimiter,
                                                rows=limit + 1):
                chunks.append(x)
                checks.check_rows(sum(map(size, chunks)), limit, name, more=True)
            return chunks

        chunks = await self.work(_in_folder, [(_file_name(name), data)], read)
        outs = [await self.batcher(x) for x in chunks]
        return await self.work(lambda: pd.concat([predicting.outputs(p, o) for o in outs],
                                                 ignore_index=True))

    async def images(self, files: list[tuple[str, bytes]]) -> Any:
        """Uploaded images, resized as in training (``nettrain predict RUN photo.png``)."""
        named = [(f"{i:06d}-{Path(name).name}", data) for i, (name, data) in enumerate(files)]
        x, paths = await self.work(_in_folder, named, lambda paths: predicting.read_images(
            paths[0].parent, self.predictor.info["images"]))
        shown = [Path(p).name.split("-", 1)[1] for p in paths]
        return await self.work(predicting.outputs, self.predictor, await self.batcher(x), shown)


def _in_folder(files: list[tuple[str, bytes]], read: Callable[[list[Path]], T]) -> T:
    """``read`` of ``files`` (name, bytes) written to a temporary folder, removed after."""
    folder = Path(tempfile.mkdtemp(prefix="nettrain-serve-"))
    try:
        paths = [folder / name for name, _ in files]
        for path, (_, data) in zip(paths, files, strict=True):
            path.write_bytes(data)
        return read(paths)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _file_name(name: str) -> str:
    """An uploaded file's name as a file of the temporary folder ('..', '' name none)."""
    base = Path(name).name
    return base if base not in ("", ".", "..") else "upload.csv"


def _booleans(model: Any, name: str) -> dict[str, str]:
    """The texts a true/false category's training CSV held for JSON ``true`` and ``false``
    ('True', 'true', 'TRUE'...), read from its lookup's categories (the model's own record
    of them); a spelling given twice (both 'True' and 'true') is none."""
    try:
        vocabulary = model.get_layer(f"encode_{name}").get_vocabulary()
    except (ValueError, AttributeError):  # a model nettrain did not build
        return {}
    spelled = {}
    for word in ("true", "false"):
        found = [v for v in vocabulary if isinstance(v, str) and v.lower() == word]
        if len(found) == 1:
            spelled[word] = str(found[0])
    return spelled


def _config_name(run: Path) -> str | None:
    from nettrain.run import directory as rundir

    if not (run / rundir.CONFIG).is_file():
        return None
    return rundir.open_run(run).config.name
