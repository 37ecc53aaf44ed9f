"""Joining requests that arrive together into one call of the model: an asyncio queue, a
short window and a maximum number of rows per call.

Each request hands in its inputs (already checked, so one request cannot fail another; a
joined call that fails anyway is run again a request at a time) and awaits its own rows of
the outputs. The model runs in one worker thread, so the event loop
keeps reading requests meanwhile; those that arrive while the model runs form the next call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from nettrain.data.dataset import Inputs, size


@dataclass
class _Job:
    x: Inputs
    rows: int
    done: asyncio.Future


def _joined(parts: list[Inputs]) -> Inputs:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


class Batcher:
    """Calls ``run`` (inputs -> outputs, one row per input row) on the inputs of requests
    that arrive within ``window_ms`` of the first, up to ``max_rows`` rows a call (a request
    with more rows runs alone).

    Example: ``batcher = Batcher(model_call, 1.0, 1024); await batcher.start();
    out = await batcher(x)``; ``await batcher.close()`` after the last request.
    """

    def __init__(self, run: Callable[[Inputs], np.ndarray], window_ms: float, max_rows: int):
        self.run, self.window, self.max_rows = run, window_ms / 1000, max_rows
        self.calls = self.rows = 0  # model calls so far (a batch each), and their rows
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._held: _Job | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="nettrain-model")
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._serve())

    async def __call__(self, x: Inputs) -> np.ndarray:
        done = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(x, size(x), done))
        return await done

    async def close(self) -> None:
        """Stop after the jobs already handed in (call when no more requests come)."""
        if self._task:
            while not self._queue.empty() or self._held:
                await asyncio.sleep(0.01)
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def _next(self, timeout: float | None) -> _Job | None:
        if self._held:
            job, self._held = self._held, None
            return job
        if timeout is None:
            return await self._queue.get()
        if not self._queue.empty():
            return self._queue.get_nowait()
        if timeout <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._next(None)
            jobs, rows, until = [first], first.rows, loop.time() + self.window
            while rows < self.max_rows:
                job = await self._next(until - loop.time())
                if job is None:
                    break
                if rows + job.rows > self.max_rows:
                    self._held = job  # the first of the next call
                    break
                jobs.append(job)
                rows += job.rows
            await self._call(loop, jobs)

    async def _call(self, loop: Any, jobs: list[_Job]) -> None:
        jobs = [j for j in jobs if not j.done.cancelled()]  # its client went away
        if not jobs:
            return
        self.calls += 1
        self.rows += sum(j.rows for j in jobs)
        try:
            out = await loop.run_in_executor(self._executor, self.run, _joined([j.x for j in jobs]))
        except Exception as exc:  # noqa: BLE001  (each request answers it)
            if len(jobs) > 1:  # not one request's fault alone: each runs again by itself,
                for job in jobs:  # so that only the one that fails is answered with it
                    await self._call(loop, [job])
                return
            for job in jobs:
                if not job.done.done():
                    job.done.set_exception(exc)
            return
        start = 0
        for job in jobs:
            if not job.done.done():
                job.done.set_result(out[start:start + job.rows])
            start += job.rows
