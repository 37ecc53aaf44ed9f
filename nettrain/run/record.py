"""The run record (``run.json``): what ran, where, on what data, from which commit, and how it
ended; :class:`RunRecord` is its one writer.

Each status change (started, resumed, completed, failed, interrupted) and each note another
stage adds (the sweep's result) is one atomic write made under the run's lock
(:func:`nettrain.run.lock.holding`): fit, which holds the lock while it trains, writes at once;
any other process takes the lock for the write, or is refused while a trainer holds it. So no
change is written past another's. Nothing else writes run.json, and every reader reads it
through :meth:`RunRecord.read` (a damaged record is :class:`Damaged`, the same for all). No
value is written with a URI's secret (:func:`nettrain.text.redacted`).

No TensorFlow here; ``versions()`` imports Keras and its backend lazily.
"""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from nettrain import __version__
from nettrain.config.schema import Config
from nettrain.errors import RunError, UsageError
from nettrain.run import lock
from nettrain.run.directory import RUN, Unreadable, damaged, json_object, now, write_json
from nettrain.text import redacted

__all__ = ["Damaged", "RunRecord", "backend", "git_commit", "now", "start", "versions"]


class Damaged(RunError):
    """run.json cannot be read, or holds no JSON object (exit 1): the message names the file
    and says what to do; ``note`` says what is wrong in a few words, as ``nettrain runs``
    shows it (``run.json is not valid JSON (line 1, column 24)``)."""

    def __init__(self, file: Path, what: str) -> None:
        self.note = f"{RUN} {what}"
        super().__init__(str(damaged(file, what.removeprefix("is "))))


def backend() -> str:
    """The Keras backend this process runs (``tensorflow``, ``jax`` or ``torch``)."""
    import keras

    return keras.backend.backend()


def versions() -> dict[str, str]:
    """nettrain's, Keras's, the backend's (``tensorflow``, ``jax`` or ``torch``) and Python's
    versions; a backend's module is imported only when it is the one that runs."""
    import importlib

    import keras

    name = backend()
    return {"nettrain": __version__, "keras": keras.__version__,
            name: importlib.import_module(name).__version__,
            "python": platform.python_version()}


def git_commit(config_path: str | None) -> dict[str, Any] | None:
    """The commit of the git repository that holds the config file, and whether it is dirty."""
    if not config_path or not Path(config_path).is_file():
        return None
    folder = Path(config_path).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                                  text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    changed = git("status", "--porcelain", "--", str(Path(config_path).resolve()))
    return {"commit": commit, "config_changed": bool(changed)}


def start(config: Config, data_sha256: dict[str, str]) -> dict[str, Any]:
    """The record of a run that starts now; ``data_sha256`` is its data's fingerprint
    (:func:`nettrain.data.fingerprint.data_files`)."""
    record: dict[str, Any] = {
        "status": "running", "started": now(), "ended": None, "command": sys.argv,
        "host": socket.gethostname(), "backend": backend(), "versions": versions(),
        "seed": config.seed,
        "deterministic": config.deterministic, "data_sha256": data_sha256,
        "data_config": config.data.model_dump(mode="json", exclude_none=True)}
    from nettrain.backends import select

    chosen = select.chosen()
    if chosen is not None and chosen.name == record["backend"]:
        record["backend_why"] = chosen.why  # the policy's reason, as the summary says it
    git = git_commit(getattr(config, "_source", None))
    if git:
        record["git"] = git
    return record


# The keys the record's own status changes write: a note (``annotate``) never changes them.
OWN = frozenset({"status", "started", "ended", "command", "host", "backend", "backend_why",
                 "versions", "seed",
                 "deterministic", "data_sha256", "data_config", "git", "replicas", "resumed",
                 "error", "saved", "epochs_completed", "directions"})


class RunRecord:
    """The record (``run.json``) of the run directory ``path``: its methods are the run's
    status changes, each one atomic write under the run's lock.

    Example: ``RunRecord(run).completed(saved=["model.keras"], epochs_completed=10)``.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.file = self.path / RUN

    @property
    def exists(self) -> bool:
        """Whether the run has a record (a run from before records, or not started: no)."""
        return self.file.is_file()

    def read(self) -> dict[str, Any]:
        """What the record says now (``{}`` when there is none: before the run started).
        Raises :class:`Damaged` when it cannot be read or holds no JSON object."""
        try:
            return json_object(self.file)
        except FileNotFoundError:
            return {}
        except Unreadable as exc:
            raise Damaged(self.file, exc.what) from None

    def started(self, config: Config, data_sha256: dict[str, str], replicas: int) -> None:
        """A new run starts: the whole record (see :func:`start`), status running."""
        with lock.holding(self.path):
            self._write(start(config, data_sha256), replicas=replicas)

    def resumed(self, from_epoch: int, changes: dict[str, tuple[Any, Any]]) -> None:
        """``fit --resume`` goes on after epoch ``from_epoch`` with ``changes`` (config key ->
        (was, now)): running again, the resume added to the list ``resumed``."""
        with lock.holding(self.path):
            record = self.read()
            resumes = [*record.get("resumed", []), {
                "at": now(), "from_epoch": from_epoch, "command": sys.argv,
                "host": socket.gethostname(),
                "changes": {k: list(v) for k, v in changes.items()}}]
            self._write(record, status="running", ended=None, resumed=resumes, error=None)

    def decided(self, directions: dict[str, str]) -> None:
        """Which way each value the run logs improves (``{'loss': 'min', 'auc': 'max'}``), as
        Keras answered for the compiled model (:func:`nettrain.model.direction.of_model`): fit
        records it once, so nothing that reads the run decides it again."""
        self._change(directions=dict(directions))

    def completed(self, saved: list[str], epochs_completed: int) -> None:
        """Trained, evaluated and saved in the formats ``saved``."""
        self._change(status="completed", ended=now(), saved=saved,
                     epochs_completed=epochs_completed)

    def failed(self, error: str, epochs_completed: int, saved: list[str] | None = None) -> None:
        """Training, evaluating or saving failed with ``error``; ``saved``: the model files of
        the last good epoch, when they were saved (a NaN loss)."""
        self._change(status="failed", ended=now(), error=error,
                     epochs_completed=epochs_completed, **({"saved": saved} if saved else {}))

    def interrupted(self, epochs_completed: int, saved: list[str]) -> None:
        """Stopped by Ctrl-C; the model of the last completed epoch saved as ``saved``."""
        self._change(status="interrupted", ended=now(), epochs_completed=epochs_completed,
                     saved=saved)

    def annotate(self, **notes: Any) -> None:
        """Add notes of another stage (``sweep={...}``: the sweep's study, trial and metric).

        Raises ValueError for a key of the record's own, and UsageError (exit 2) when
        another process trains the run: the record is left as it was.
        """
        own = sorted(OWN & set(notes))
        if own:
            raise ValueError(f"annotate: {', '.join(own)} belong to the run's status changes; "
                             "a note takes another key")
        try:
            self._change(**notes)
        except lock.Held as exc:
            raise UsageError(
                f"Cannot write the note {', '.join(map(repr, notes))} in {self.file}: "
                f"{self.path} is being trained by another process "
                f"({lock.describe(exc.holder)}), which writes its record. {self.file} is "
                "left as it was. Wait for that process to end, then try again.") from None

    def _change(self, **changes: Any) -> None:
        """Read, change and write the record, all under the run's lock."""
        with lock.holding(self.path):
            self._write(self.read(), **changes)

    def _write(self, record: dict[str, Any], **changes: Any) -> None:
        # Every value without the secrets of its URIs: the command line (--track
        # http://user:password@host), an error, a note.
        write_json(self.file, redacted({**record, **changes}))
