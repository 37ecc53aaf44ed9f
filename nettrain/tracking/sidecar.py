"""Logging ``nettrain fit``'s run to MLflow from a process of its own, so that the work of
tracking (importing MLflow and Keras, opening the store, the upload) runs on another core
while the run imports Keras and trains: :class:`SidecarLogger` is the run's side, :func:`main`
the process's (``python -m nettrain.tracking.sidecar``), a :class:`RunLogger` fed with JSON
lines.

The run's process alone writes run.json: the sidecar sends what to write (its
:meth:`RunLogger.note`) and its warnings, and the run's process writes and says them. The
sidecar is in a session of its own (Ctrl-C at the terminal does not reach it): the run's process
decides how the MLflow run ends, and passes Ctrl-C on while the upload is under way (the
MLflow run ends KILLED). If the run's process goes away without a word (a kill), the sidecar
ends the MLflow run KILLED. If the sidecar goes away, the run's process uploads itself, as
``nettrain track`` does.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from nettrain.config.schema import Config
from nettrain.tracking import store
from nettrain.tracking.logger import RunLogger, sample, warm_requirements, write_note

_ENDED = None  # what the reading thread queues when the sidecar's output ends
# How long the run's process waits for a sidecar that does not end when told to.
_EXIT_SECONDS = 30.0


class SidecarLogger:
    """The run's side: :class:`RunLogger`'s ``started``, ``callback``, ``epoch`` and
    ``finish``, done by the sidecar process that it starts at once (before Keras's import).

    After :meth:`finish`, ``run_id``, ``experiment_id``, ``broken`` and ``model_uri`` are the
    sidecar's (what :func:`nettrain.cli.track.logged_note` reads)."""

    def __init__(self, config: Config, echo: Any = print) -> None:
        self.config, self.echo = config, echo
        self.place = store.where(config)
        self.path: Path | None = None
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.broken: str | None = None
        self.model_uri: str | None = None
        self.messages: queue.Queue = queue.Queue()
        # the GPUs stay the run's: the sidecar loads the model on the CPU
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}
        self.child: subprocess.Popen | None = subprocess.Popen(
            [sys.executable, "-m", "nettrain.tracking.sidecar"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
            start_new_session=True)
        threading.Thread(target=self._read, name="nettrain-sidecar", daemon=True).start()
        self._send(config=config.model_dump(mode="json", exclude_unset=True))

    def started(self, path: Path, data: Any = None) -> None:
        """The run directory exists (fit's hook): the sidecar opens the MLflow run."""
        self.path = Path(path)
        self._send(started=str(self.path), example=_encoded(sample(data))
                   if data is not None else None)

    callback = RunLogger.callback  # a Keras callback that hands each epoch to :meth:`epoch`

    def epoch(self, epoch: int, logs: dict[str, Any]) -> None:
        values = {}
        for key, value in logs.items():
            try:
                values[key] = float(value)
            except (TypeError, ValueError):
                continue
        self._send(epoch=epoch, logs=values)
        self._heard(wait=False)

    def finish(self, path: Path | None = None, status: str | None = None) -> bool:
        """Have the sidecar upload the run directory and end the MLflow run (``status``: how,
        else as the run ended); wait for it, and write what it says into run.json. Ctrl-C
        meanwhile is passed on (the MLflow run ends KILLED), then raised here."""
        self.path = Path(path) if path is not None else self.path
        if self.child is None:
            return self.broken is None
        if self.path is None:  # no run directory yet: nothing to upload
            self._close()
            return False
        self._send(finish=str(self.path), status=status)
        interrupted = False
        while True:
            try:
                done = self._heard(wait=True)
                break
            except KeyboardInterrupt:
                interrupted = True
                if self.child.poll() is None:
                    self.child.send_signal(signal.SIGINT)
        self._close()
        if done is None:  # the sidecar is gone: upload here (as `nettrain track` does)
            logger = RunLogger(self.config, echo=self.echo)
            ok = logger.finish(self.path, status)
            self.run_id, self.experiment_id = logger.run_id, logger.experiment_id
            self.broken, self.model_uri = logger.broken, logger.model_uri
            return ok
        for key in ("run_id", "experiment_id", "broken", "model_uri"):
            setattr(self, key, done.get(key))
        if interrupted:
            raise KeyboardInterrupt
        return bool(done.get("ok"))

    # ------------------------------------------------------------------ the pipes

    def _send(self, **message: Any) -> None:
        if self.child is None or self.child.stdin is None:
            return
        try:
            self.child.stdin.write(json.dumps(message) + "\n")
            self.child.stdin.flush()
        except (OSError, ValueError):  # the sidecar is gone: finish says so and uploads
            pass

    def _read(self) -> None:
        """The reading thread: the sidecar's messages, one a line, into the queue."""
        assert self.child is not None and self.child.stdout is not None
        for line in self.child.stdout:
            try:
                self.messages.put(json.loads(line))
            except ValueError:
                continue
        self.messages.put(_ENDED)

    def _heard(self, wait: bool) -> dict[str, Any] | None:
        """Act on the sidecar's messages (a warning: say it; a note: write it into run.json);
        with ``wait``, until its answer to ``finish`` (None: it ended without one)."""
        while True:
            try:
                message = self.messages.get(block=wait)
            except queue.Empty:
                return None
            if message is _ENDED:
                self.messages.put(_ENDED)  # ended for good
                return None
            if "warning" in message:
                self.echo(message["warning"])
            if "note" in message:
                write_note(self.path, message["note"], self.echo)
            if "done" in message:
                return message["done"]

    def _close(self) -> None:
        """Close the sidecar's input (it ends) and wait for it to end."""
        child, self.child = self.child, None
        if child is None:
            return
        try:
            if child.stdin is not None:
                child.stdin.close()
        except OSError:
            pass
        try:
            child.wait(_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _encoded(example: Any) -> Any:
    """The input example as JSON (None: it is not JSON's, the sidecar reads the data)."""
    try:
        if isinstance(example, dict):
            return {"columns": {k: _encoded(v) for k, v in example.items()}}
        return {"dtype": str(example.dtype), "values": example.tolist()}
    except Exception:  # noqa: BLE001
        return None


def _decoded(example: Any) -> Any:
    import numpy as np

    if not isinstance(example, dict):
        return None
    if "columns" in example:
        columns = {k: _decoded(v) for k, v in example["columns"].items()}
        return None if any(v is None for v in columns.values()) else columns
    return np.asarray(example["values"], dtype=example["dtype"])


class _Logger(RunLogger):
    """The sidecar's :class:`RunLogger`: what run.json should say goes to the run's process."""

    def __init__(self, config: Config, say: Any) -> None:
        super().__init__(config, echo=lambda text: say(warning=text))
        self.say = say

    def _record(self, uploaded: bool) -> None:
        self.say(note=self.note(uploaded))


def main() -> None:
    """The sidecar: open the store and import Keras while the run's process starts, then
    follow its messages (``started``, ``epoch``, ``finish``) until ``finish`` or its end."""
    out = sys.stdout
    sys.stdout = sys.stderr  # the pipe carries the messages alone (MLflow prints)
    lock = threading.Lock()

    def say(**message: Any) -> None:
        with lock:
            out.write(json.dumps(message) + "\n")
            out.flush()

    first = sys.stdin.readline()
    if not first:
        return
    logger = _Logger(Config.model_validate(json.loads(first)["config"]), say)
    try:  # the failure, if any, is the opening's to say
        logger.client = store.client(logger.place.uri)
        warm_requirements()
    except Exception:  # noqa: BLE001
        logger.client = None
    try:
        from nettrain.backends import startup

        # the model's upload needs Keras: imported while the run trains, as the run imports it
        with startup.importing():
            import keras  # noqa: F401

        from nettrain.model import saving  # noqa: F401
    except Exception:  # noqa: BLE001
        pass
    for line in sys.stdin:
        message = json.loads(line)
        if "started" in message:
            logger.started(Path(message["started"]))
            logger.example = _decoded(message.get("example"))
        elif "epoch" in message:
            logger.epoch(message["epoch"], message["logs"])
        elif "finish" in message:
            try:
                ok = logger.finish(Path(message["finish"]), message.get("status"))
            except KeyboardInterrupt:  # passed on by the run's process: ended KILLED
                ok = False
            say(done={"ok": ok, "run_id": logger.run_id, "experiment_id": logger.experiment_id,
                      "broken": logger.broken, "model_uri": logger.model_uri})
            # all is in the store and said: end now (the backends' teardown takes a second,
            # and the run's process waits for this one to end)
            os._exit(0)
    # the run's process went away without finishing (killed): never left RUNNING
    logger._opened()
    if logger.run_id is not None:
        logger._end("KILLED")


if __name__ == "__main__":
    main()
