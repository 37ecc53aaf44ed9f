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
    the stop that was lost. Within ``deferred`` a first stop is only noted, for ``check`` to
    raise at the next safe point."""

    def __init__(self) -> None:
        import signal

        self.noted: list[int] = []
        self._previous: dict[int, Any] = {}
        self._deferring = False
        for signum in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(signum)
            if callable(handler):  # only signals that already stop Python with an exception
                with contextlib.suppress(ValueError):  # ValueError: not the main thread
                    signal.signal(signum, self._note)
                    self._previous[signum] = handler

    def _note(self, signum: int, frame: Any) -> None:
        self.noted.append(signum)
        if self._deferring and len(self.noted) == 1:
            return  # raised by the next check()
        self._previous[signum](signum, frame)

    def check(self) -> None:
        if self.noted:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Within the block (training, evaluating, saving: C++ code of TensorFlow, JAX or
        torch at work, which calls back into Python) a first Ctrl-C or SIGTERM is only noted,
        and raised as KeyboardInterrupt by the next ``check``: the fit's callbacks call it
        after each batch and each epoch, and the block calls it at its end. A Python handler
        runs at the next bytecode, which can be inside a callback from C++ code: an exception
        raised there came out as a SystemError, and once killed the process (SIGSEGV, exit
        -11 instead of 130, the run left marked running). A second Ctrl-C acts at once: the
        way out of a step that does not end."""
        self.check()
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        self.check()

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
