"""One process at a time in a run directory: an OS file lock held while it trains. No TensorFlow.

``fit`` and ``fit --resume`` hold an exclusive ``flock`` on ``RUN/.lock`` from the moment they
start writing in the run directory until they end. The operating system releases the lock
when the process ends in any way (even ``kill -9``), so a lock is never left behind. The lock
file holds who has the lock (pid, host, command, since when); a process that ends normally
removes it, a killed one leaves it, and the next process takes it over.

A short write that must not race a trainer (the run record, :mod:`nettrain.run.record`) takes
the lock with :func:`holding`: for the thread that holds it already (fit writing its record)
it is held; any other thread or process takes it for the write, or is refused like a second
trainer.

A run directory may come from someone else, so before anything is written in it a symbolic
link in it that leads out of it (``.lock -> ~/.bashrc``, ``checkpoints -> /elsewhere``) is
refused: writing through it would change files outside the run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nettrain.errors import RunError, UsageError
from nettrain.run.directory import now
from nettrain.text import command

LOCK = ".lock"
# The run directories this process holds (resolved), each with the thread that took it.
_HELD: dict[Path, int] = {}


class Held(UsageError):
    """Another process (or thread) holds the run directory; ``holder`` says who, as
    :func:`holder` does."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


@contextlib.contextmanager
def locked(path: Path, new: bool = False, wait: float = 0.5) -> Iterator[None]:
    """Hold the run directory ``path`` for this process; refuse if another process holds it.

    Args:
        path: the run directory.
        new: the directory must hold nothing else (default False): a second ``fit --run-dir``
            of the same folder that started at the same moment is refused once it gets the lock.
        wait: how long to wait for a lock another holds, in seconds (default 0.5).

    Raises Held, a UsageError (exit 2) naming the holder: its pid, host, command and start
    time.

    Example: ``with locked(run): train(run)``.
    """
    _refuse_links_out(path)
    file = path / LOCK
    fd = _lock(file, wait)
    key = path.resolve()
    try:
        _HELD[key] = threading.get_ident()
        if new and any(p.name != LOCK for p in path.iterdir()):
            raise UsageError(f"--run-dir {path}: expected a new or empty directory; another "
                             "process has written in it since this one started. Choose "
                             "another directory.")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_me()).encode(), 0)
        yield
    finally:
        _HELD.pop(key, None)
        file.unlink(missing_ok=True)  # still held: no other process has this file open locked
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def holding(path: Path, wait: float = 2.0) -> Iterator[None]:
    """Hold the run directory ``path`` for a short write: nothing to do for the thread that
    holds it already (its writes are under the lock it holds); any other takes it, as
    :func:`locked` does, waiting up to ``wait`` seconds for other short writers (Held, exit 2,
    when another process trains the run).

    Example: ``with holding(run): write_json(run / "run.json", record)``.
    """
    if _HELD.get(path.resolve()) == threading.get_ident():
        yield
        return
    with locked(path, wait=wait):
        yield


def describe(holder: dict[str, Any]) -> str:
    """Who holds a run, in words: ``pid 412 on vm, since 2026-12-01T20:23:53+00:00: nettrain
    fit c.yaml`` (from :func:`holder` or :class:`Held`)."""
    if not holder:
        return "it has just started"
    return (f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}: "
            f"{holder.get('command')}")


def _lock(file: Path, wait: float) -> int:
    """Open and lock ``file``; return its descriptor. A file removed by the holder that just
    ended (after this process opened it) is not the lock any more: open it again."""
    while True:
        try:
            fd = os.open(file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            raise RunError(f"Cannot write in the run directory {file.parent} "
                           f"({exc.strerror}).") from None
        try:
            _flock_soon(fd, wait)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise Held(
                f"{file.parent} is being trained by another process ({describe(holder)}). "
                "Two processes cannot train one run. Wait for it to end, or stop it "
                f"(kill {holder.get('pid', 'PID')}) and then continue the run: "
                f"{command('nettrain', 'fit', '--resume', file.parent)}", holder) from None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(file)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _flock_soon(fd: int, wait: float = 0.5) -> None:
    """Lock ``fd`` exclusively; BlockingIOError when it stays held for ``wait`` seconds.

    ``holder`` (``nettrain runs``) holds a shared lock for an instant to test the lock; a
    trainer that starts in that instant waits for it instead of failing.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def holder(path: Path) -> dict[str, Any] | None:
    """Who trains the run directory ``path`` now: None when no process holds its lock, else
    what the holder wrote in the lock file (pid, host, command, since; ``{}`` while it starts,
    or when the lock file cannot be read).

    Only reads: a missing lock file is not created, and the shared lock taken to test it is
    let go at once.
    """
    try:
        fd = os.open(path / LOCK, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError:  # unreadable (another user's run): it cannot be told; assume held
        return {}
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd)
    finally:
        os.close(fd)  # also lets go of the shared lock
    return None


def _refuse_links_out(path: Path) -> None:
    """Raise RunError naming the first symbolic link in ``path`` (at any depth) that leads
    out of it, or that leads nowhere."""
    root = path.resolve()
    for folder, dirs, files in os.walk(path):  # does not follow links to folders
        for name in sorted(dirs + files):
            link = Path(folder) / name
            if link.is_symlink() and not link.resolve().is_relative_to(root):
                raise RunError(
                    f"{link} is a symbolic link to {os.readlink(link)}, outside the run "
                    "directory, so writing the run would change a file elsewhere. Remove the "
                    "link (copy what it leads to into the run directory if the run needs it), "
                    "then run again.")


def _me() -> dict[str, Any]:
    command = ["nettrain", *sys.argv[1:]] if sys.argv else []
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": shlex.join(command),
            "since": now()}


def _holder(fd: int) -> dict[str, Any]:
    """What the holder wrote in the lock file (empty while it has not written yet)."""
    try:
        holder = json.loads(os.pread(fd, 65536, 0) or b"{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}
