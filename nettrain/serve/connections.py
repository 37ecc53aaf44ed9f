"""The REST server's connections held to account: a client that does not finish its request's
headers in time is let go, past a number of open connections the one waiting longest for a
client is closed to make room, and running out of file descriptors is said in one line, not
in a traceback for every failed accept.

(Imported only by a server: uvicorn is the serve extra's.)
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

# Descriptors kept for what is not a REST connection (the model's files, gRPC, temporary files)
# when the default connection limit is set from the process's limit.
RESERVED_FDS = 128
MOST_CONNECTIONS = 10_000


def default_limit() -> int:
    """The most REST connections by default: what the descriptor limit (ulimit -n) leaves
    after :data:`RESERVED_FDS`, at most :data:`MOST_CONNECTIONS`, at least 16."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MOST_CONNECTIONS
    return max(16, min(MOST_CONNECTIONS, soft - RESERVED_FDS))


def protocol(timeout: float, limit: int) -> type:
    """uvicorn's httptools protocol, with a deadline for each request's headers (``timeout``
    seconds from the connection or from the request's first byte: without one, 1,100
    connections that stopped mid-headers held every descriptor for ever) and at most
    ``limit`` connections: a new one past it closes the oldest connection that waits for its
    client (headers not finished, or idle between requests), or, with none, is answered 503."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    busy = (b'{"error":"the server has as many connections as it takes (nettrain serve '
            b'--max-connections), all with a request in progress: try again shortly."}')

    class Protocol(HttpToolsProtocol):
        _due: Any = None
        _since = 0.0

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._since = self.loop.time()
            self._arm()
            if len(self.connections) > limit and not self._make_room():
                transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: "
                                b"application/json\r\nconnection: close\r\ncontent-length: "
                                + str(len(busy)).encode() + b"\r\n\r\n" + busy)
                transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def _arm(self) -> None:
            self._disarm()
            self._due = self.loop.call_later(timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._due is not None:
                self._due.cancel()
                self._due = None

        def _too_slow(self) -> None:
            self._due = None
            if not self.transport.is_closing():
                self.transport.close()

        def _waiting(self) -> bool:
            """Waiting for the client: its headers unfinished, or idle between requests."""
            return self._due is not None or self.timeout_keep_alive_task is not None

        def _make_room(self) -> bool:
            others = [c for c in self.connections if c is not self and
                      isinstance(c, Protocol) and c._waiting() and
                      not c.transport.is_closing()]
            if not others:
                return False
            oldest = min(others, key=lambda c: c._since)
            oldest._disarm()
            oldest.transport.close()
            return True

    return Protocol


def quiet_accept_errors(loop: Any, every: float = 60.0) -> None:
    """Make ``loop`` say in one line (again at most once every ``every`` seconds) that
    accepting connections failed for want of descriptors, instead of asyncio's traceback for
    each failed accept (2,048 a second: 112 MB of log in a minute)."""
    last: list[float] = []

    def handler(loop: Any, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if context.get("message") != "socket.accept() out of system resource":
            loop.default_exception_handler(context)
            return
        now = loop.time()
        if last and now - last[0] < every:
            return
        last[:] = [now]
        why = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else str(exc)
        hint = "free some memory"
        if getattr(exc, "errno", None) in (errno.EMFILE, errno.ENFILE):
            import resource

            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            hint = f"raise the limit (ulimit -n is {soft}) or lower --max-connections"
        print(f"nettrain serve: cannot accept new connections ({why}): they wait until some "
              f"close; {hint}.", file=sys.stderr, flush=True)

    loop.set_exception_handler(handler)
