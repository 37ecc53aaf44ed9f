"""Stopping cleanly: a NaN loss, and Ctrl-C or SIGTERM noted where they arrive so a run (or a
sweep trial) ends interrupted and resumable, never half-written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class _NaN(Exception):
    def __init__(self, guard: Any, checkpoint: Any):
        kept = (f"the last good checkpoint is from epoch {checkpoint.completed}"
                if checkpoint.completed else "no epoch completed, so there is no checkpoint")
        super().__init__(f"Training stopped: the loss became NaN or infinite in epoch "
                         f"{guard.epoch + 1} (by batch {guard.batch + 1}); {kept}.")


class StopNotes:
    """Notes each Ctrl-C or SIGTERM while it lives (until ``restore``), then lets the handler
    in place (the CLI's: raise KeyboardInterrupt) act. The KeyboardInterrupt can get lost:
    raised inside TensorFlow's C++ code it can come out as another error (a SystemError from
    ``listobject.c``), and raised while the garbage collector runs a weakref callback Python
    prints it and goes on. ``noted`` says that it was a stop all the same; ``check`` raises
    the stop that was lost."""

    def __init__(self) -> None:
        import signal

        self.noted: list[int] = []
        self._previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(signum)
            if callable(handler):  # only signals that already stop Python with an exception
                with contextlib.suppress(ValueError):  # ValueError: not the main thread
                    signal.signal(signum, self._note)
                    self._previous[signum] = handler

    def _note(self, signum: int, frame: Any) -> None:
        self.noted.append(signum)
        self._previous[signum](signum, frame)

    def check(self) -> None:
        if self.noted:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Within the block (the save of a stopped run) Ctrl-C and SIGTERM are only noted: a
        second Ctrl-C, or a launcher's SIGTERM that follows the terminal's, must not cut the
        save that makes the stop clean."""
        import signal

        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            if callable(signal.getsignal(signum)):
                with contextlib.suppress(ValueError):  # not the main thread: as it was
                    previous[signum] = signal.signal(
                        signum, lambda number, frame: self.noted.append(number))
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def restore(self) -> None:
        import signal

        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
