"""Writing an output file (a run's files, predictions, an export): whole or not at all, and
never over a file nettrain did not make.

Every writer goes through here (:func:`replacing` for a file, :func:`scratch` and :func:`put`
for a file or folder built in steps). What a path names decides how it is written:

- nothing yet, or a regular file (an earlier output): the new one is built beside it under a
  temporary name and moved onto it with ``os.replace``, so a crash leaves the old file or the
  new one, never half; a link is followed (the link stays, its target is replaced, keeping
  its permissions);
- a character device or a FIFO (``/dev/null``, a named pipe, a terminal), or an open file
  descriptor (``/dev/stdout``, ``/proc/self/fd/1``): written in place once whole, never
  replaced (a descriptor's file is appended to, as the shell opened it);
- a folder, a socket or a block device (a disk): refused (:class:`nettrain.errors.UsageError`).

A temporary says what it is and whose it is (``.big.out.partial-HOST-PID-xxxxxxxx.tmp``). A
writer killed with ``kill -9`` cannot remove it, so each write of a path first removes the
temporaries of that path left by processes of this host that no longer run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nettrain.errors import RunError, UsageError

STDOUT = "-"  # an --output of '-' is standard output


@dataclass(frozen=True)
class Output:
    """Where an output goes: ``path`` with its links followed, and how it is written."""

    path: Path
    stream: bool = False     # a device, FIFO or descriptor: written in place, never replaced
    exists: bool = False     # a regular file is there (it is replaced)


@functools.cache
def _umask() -> int:
    """The process's umask (reading it means setting it; done once, on first use)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    for test, what in ((stat.S_ISDIR, "a folder"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISBLK, "a block device (a disk)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISFIFO, "a FIFO")):
        if test(mode):
            return what
    return None if stat.S_ISREG(mode) else "not a regular file"


def _descriptor(path: Path) -> bool:
    """Whether ``path`` is, or links to, an open file descriptor (``/dev/stdout``,
    ``/dev/fd/1``, ``/proc/self/fd/1``): a file some process holds open, to write into."""
    name = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on links followed
        if re.match(r"^/(proc/[^/]+|dev)/fd/[^/]+$", name):
            return True
        try:
            link = os.readlink(name)
        except OSError:
            return False
        name = os.path.normpath(os.path.join(os.path.dirname(name), link))
    return False


def output(path: str | Path, key: str | None = None, folder: bool = False) -> Output:
    """Where writing ``path`` goes ('-': standard output), or a UsageError naming ``key``
    (default: the path) for a path nothing is written to: a socket, a block device, a folder
    (unless the output is a ``folder`` too)."""
    if str(path) == STDOUT:
        return Output(Path(STDOUT), stream=True)
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:  # nothing there, or a link to nothing: create it (its target)
        return Output(Path(os.path.realpath(path)))
    except OSError as exc:
        raise UsageError(f"{key or 'output'}: cannot use {path} ({exc.strerror}).") from None
    what = _kind(mode)
    if what in ("a character device", "a FIFO") or what != "a folder" and _descriptor(path):
        return Output(path, stream=True)
    if what is not None and not (folder and what == "a folder"):
        raise UsageError(f"{key or 'output'}: {path} is {what}; nettrain writes only files, "
                         "devices such as /dev/null and FIFOs. Give the path of a file.")
    return Output(Path(os.path.realpath(path)), exists=True)


def is_stdout(path: str | Path | None) -> bool:
    """Whether ``path`` is '-' or this process's standard output (``/dev/stdout``), which a
    command writes as it writes its standard output (rows as they come)."""
    if path is None:
        return False
    if str(path) == STDOUT:
        return True
    try:
        return output(path).stream and os.path.samestat(os.stat(path), os.fstat(1))
    except (OSError, UsageError):
        return False


def check(path: str | Path, key: str, folder: bool = False) -> Output:
    """Refuse, before any slow work, an output that cannot be written: a folder, socket or
    disk (see :func:`output`), a missing folder, a folder nettrain cannot create files in (a
    read-only filesystem, no permission). Each is a UsageError naming ``key``."""
    out = output(path, key, folder)
    if out.stream:
        return out
    parent = out.path.parent if Path(path).is_symlink() else Path(path).parent  # as given
    if not parent.is_dir():
        raise UsageError(f"{key}: the folder {parent} does not exist. Create it first "
                         f"(mkdir -p {parent}), or give a {'path' if folder else 'file'} in "
                         "an existing folder.")
    try:  # a real try: os.access says yes on a read-only filesystem mounted for root, /sys...
        os.rmdir(tempfile.mkdtemp(dir=parent, prefix=f"{_prefix(out.path)}{_host()}-"
                                                    f"{os.getpid()}-"))
    except OSError as exc:
        raise UsageError(f"{key}: cannot write in the folder {parent} ({exc.strerror}). Give "
                         "a path in a folder you can write to.") from None
    return out


def _prefix(path: Path) -> str:
    return f".{path.name}.partial-"


@functools.cache
def _host() -> str:
    """This host's name as it goes in a temporary's name (letters, digits, dots; 32 at most)."""
    import socket

    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:32] or "host"


def remove_stale_partials(path: Path) -> list[Path]:
    """Remove the temporaries of ``path`` (files and folders, see the module's docstring)
    whose writer, a process of this host, no longer runs; return them. Another host's, or a
    running process's, are kept."""
    mine = f"{_prefix(path)}{_host()}-"
    removed = []
    try:
        entries = [entry for entry in os.scandir(path.parent) if entry.name.startswith(mine)]
    except OSError:
        return removed
    for entry in entries:
        pid = entry.name[len(mine):].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed.append(path.parent / entry.name)
    return removed


def _running(pid: int) -> bool:
    """Whether the process ``pid`` of this host runs (one of another user counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


@contextlib.contextmanager
def scratch(path: str | Path) -> Iterator[Path]:
    """A new, empty folder to build the output ``path`` in (beside it, on its filesystem, so
    that :func:`put` renames; in the temporary folder for a device), removed afterwards.
    Stale temporaries of ``path`` are removed first."""
    out = output(path)
    where = Path(tempfile.gettempdir()) / "nettrain-output" if out.stream else out.path
    if out.stream:
        where.parent.mkdir(exist_ok=True)
    remove_stale_partials(where)
    folder = Path(tempfile.mkdtemp(dir=where.parent,
                                   prefix=f"{_prefix(where)}{_host()}-{os.getpid()}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def put(source: Path, path: str | Path) -> None:
    """Move a whole file or folder ``source`` (built in :func:`scratch`) onto ``path``: a
    file written in place into a device or descriptor, anything else by ``os.replace``. An
    existing folder (a resumed run saving again) is renamed aside first, because a folder
    cannot be replaced while it holds files; an existing file's permissions are kept."""
    out = output(path, folder=source.is_dir())
    if out.stream:
        if source.is_dir():
            raise UsageError(f"--output: {path} is a device or pipe; this output is a folder. "
                             "Give the path of a folder to create.")
        return _copy_into(source, out.path)
    target = out.path
    _fsync(source)
    if out.exists:
        _keep_owner(target, source)
    old = None
    if target.is_dir():
        old = target.with_name(f"{_prefix(target)}{_host()}-{os.getpid()}-old")
        os.replace(target, old)
    os.replace(source, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _fsync_folder(target.parent)  # the rename; the folder's other files are not ours


@contextlib.contextmanager
def replacing(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file to write, put onto ``path`` (see :func:`put`) when the block ends
    without an error; removed otherwise.

    Example: ``with replacing(run / "config.yaml") as tmp: tmp.write_text(text)``.
    """
    out = output(path)
    where = out.path.parent if not out.stream else Path(tempfile.gettempdir())
    name = out.path if not out.stream else Path("nettrain-output")
    remove_stale_partials(where / name.name)
    fd, temporary = tempfile.mkstemp(dir=where, suffix=suffix,
                                     prefix=f"{_prefix(name)}{_host()}-{os.getpid()}-")
    os.close(fd)
    tmp = Path(temporary)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        yield tmp
        put(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _copy_into(source: Path, device: Path) -> None:
    """Write a whole file into standard output ('-'), a device, a FIFO or a descriptor
    (appending: a shell's ``>>``)."""
    try:
        with open(source, "rb") as data:
            if str(device) == STDOUT:
                sys.stdout.flush()
                shutil.copyfileobj(data, sys.stdout.buffer, 1 << 20)
                sys.stdout.buffer.flush()
                return
            fd = os.open(device, os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0))
            with os.fdopen(fd, "wb") as sink:
                shutil.copyfileobj(data, sink, 1 << 20)
    except OSError as exc:
        raise RunError(f"Writing {'standard output' if str(device) == STDOUT else device} "
                       f"failed ({exc.strerror}).") from None


def _keep_owner(target: Path, new: Path) -> None:
    """Give the file about to replace ``target`` its permissions (and, as root, its owner)."""
    with contextlib.suppress(OSError):
        now = os.stat(target)
        os.chmod(new, stat.S_IMODE(now.st_mode))
        if os.geteuid() == 0:
            os.chown(new, now.st_uid, now.st_gid)


def _fsync(path: Path) -> None:
    """Flush a file, or every file under a folder, and the folder itself, to the disk."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        with open(file, "rb") as f:
            os.fsync(f.fileno())
    _fsync_folder(path if path.is_dir() else path.parent)


def _fsync_folder(path: Path) -> None:
    """Flush a folder's entries (a rename into it) to the disk; not the files in it."""
    folder = os.open(path, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
