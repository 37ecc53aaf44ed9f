"""Keeps the backends' native log lines (TensorFlow, absl, XLA, CUDA, gloo) off the terminal
of a nettrain process; ``--debug`` shows them.

Their C++ code writes to file descriptor 2 whenever it likes (TensorFlow's import logs before
absl is initialised, which no environment variable silences; jax2tf imports TensorFlow late;
gloo announces its peers), so :func:`install` puts a filter on descriptor 2 itself: a pipe
read by a thread that passes every line on except those in the log formats of :data:`NOISE`.
Python's own ``sys.stderr`` (rich's consoles, tracebacks) is moved to a copy of the real
descriptor 2, so it still reads as the terminal (live progress bars) and skips the filter.
Python loggers of those libraries (``WARNING:absl:...``) are set to show errors only.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading
from typing import IO, Any

# A line of a backend's native log (kept off the terminal), else passed on: absl/glog's
# "I0000 00:00:... file.cc:12] ..." at levels I, W and E (F, fatal, is kept: the process dies
# of it), TensorFlow's older "2024-... I tensorflow/...", absl's note before its
# initialisation, TensorFlow's CPU-instructions note, gloo's "[Gloo] Rank 0 is connected".
NOISE = re.compile(
    r"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\s:]+:\d+\] "
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] [^\s:]+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: .*rebuild TensorFlow"
    r"|\[Gloo\] "
    r"|(?:DEBUG|INFO|WARNING):(?:absl|tensorflow|jax[\w.]*):)")
# The Python loggers of the backends, set to errors only (a logger's filter sees only its own
# records, so the jax modules that warn are named).
LOGGERS = ("absl", "tensorflow", "jax", "jax._src.xla_bridge", "jax._src.distributed")

_state: dict[str, Any] = {"terminal": None, "thread": None}


def install() -> None:
    """Filter this process's descriptor 2 (once; not under a test runner that replaced
    ``sys.stderr``, whose descriptor 2 is its own)."""
    if _state["terminal"] is not None or sys.stderr is not sys.__stderr__:
        return
    try:
        if sys.stderr.fileno() != 2:
            return
    except (AttributeError, OSError, ValueError):
        return
    for name in LOGGERS:  # absl sets its logger's level when imported: a filter stays
        logging.getLogger(name).setLevel(logging.ERROR)
        logging.getLogger(name).addFilter(_errors_only)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's own switch, after init
    os.environ.setdefault("GLOG_minloglevel", "2")
    sys.stderr.flush()
    real = os.dup(2)
    read, write = os.pipe()
    _state["pipe"] = os.fstat(read).st_ino
    os.dup2(write, 2)
    os.close(write)
    terminal = os.fdopen(real, "w", buffering=1, encoding=sys.stderr.encoding,
                         errors=sys.stderr.errors)
    sys.stderr = terminal
    _state["terminal"] = terminal
    thread = threading.Thread(target=_pass_on, args=(read, real), name="nettrain-stderr",
                              daemon=True)
    thread.start()
    _state["thread"] = thread
    atexit.register(_uninstall)


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def terminal() -> IO[str] | None:
    """The real stderr when the filter is installed (for a child process that should write to
    the terminal itself: ``fit --processes``'s process 0), else None (inherit)."""
    return _state["terminal"]


def _pass_on(read: int, real: int) -> None:
    """Copy descriptor 2's lines to the real stderr, leaving out the noise."""
    pending = b""
    while True:
        try:
            chunk = os.read(read, 65536)
        except OSError:
            break
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        kept = b"".join(line + b"\n" for line in lines
                        if not NOISE.match(line.decode("utf-8", "replace")))
        if kept:
            _write(real, kept)
    if pending and not NOISE.match(pending.decode("utf-8", "replace")):
        _write(real, pending)
    os.close(read)


def _write(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass


def _uninstall() -> None:
    """At exit: the real stderr back on descriptor 2 (what native code writes while the
    process ends is shown), and the lines still in the pipe passed on."""
    thread = _state["thread"]
    if thread is None:
        return
    try:
        sys.stderr.flush()
        for fd in (1, 2):  # 1 too where native stdout was sent to stderr (distributed.join)
            if os.fstat(fd).st_ino == _state["pipe"]:
                os.dup2(_state["terminal"].fileno(), fd)  # the pipe's last writer gone: EOF
    except (OSError, ValueError):
        return
    thread.join(timeout=1)
