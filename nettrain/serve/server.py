"""Running ``nettrain serve``: the model loaded once, then the REST server (uvicorn) and the
gRPC server (grpc.aio) on one event loop, until Ctrl-C or SIGTERM: both then stop taking
requests, finish those in flight (up to ``grace`` seconds), and the process exits 0.

A body over ``max_body`` bytes is refused as soon as it is known to be over (by its
Content-Length, else as a chunked body arrives): 413 over REST (:class:`BodyLimit`, for
every route), RESOURCE_EXHAUSTED over gRPC. A client has ``timeout`` seconds for a request's
headers and for each pause in its body; at most ``max_connections`` REST connections are
open (:mod:`nettrain.serve.connections`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from nettrain.errors import RunError
from nettrain.serve.model import Served


@dataclass(frozen=True)
class Options:
    """Where and how to serve (``nettrain serve``'s options)."""

    host: str = "127.0.0.1"
    port: int = 8501
    grpc_port: int | None = 8500  # None: no gRPC server
    max_body: int = 16 * 2**20
    grace: float = 10.0
    timeout: float = 10.0  # for a request's headers, and each pause in its body
    max_connections: int | None = None  # None: from the descriptor limit (ulimit -n)


class BodyLimit:
    """ASGI middleware, the one owner of ``--max-body-bytes``: a request's body is read whole
    here, before the app sees it, and refused with 413 ``{"error": ...}`` when over ``limit``
    bytes: by its Content-Length when it says so, else (chunked) as the bytes arrive. Every
    route then reads a body already here; none checks the limit itself. A body that pauses
    longer than ``timeout`` seconds is answered 408, and its connection closed."""

    def __init__(self, app: Any, limit: int, timeout: float = 10.0):
        self.app, self.limit, self.timeout = app, limit, timeout

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(send)
        parts, seen = [], 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                return await _answer(send, 408, f"request body: nothing arrived for "
                                                f"{self.timeout:g} s (nettrain serve "
                                                "--client-timeout).", close=True)
            if message["type"] == "http.disconnect":
                return  # the client went away: nothing to answer
            part = message.get("body", b"")
            seen += len(part)
            if seen > self.limit:
                return await self._refuse(send)
            parts.append(part)
            if not message.get("more_body"):
                break
        whole: list[Any] = [{"type": "http.request", "body": b"".join(parts),
                             "more_body": False}]

        async def replay() -> Any:
            # the body once, then what the server says next (a disconnect)
            return whole.pop() if whole else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any) -> None:
        await _answer(send, 413, f"request body: over the limit of {self.limit:,} bytes "
                                 "(nettrain serve --max-body-bytes). Send fewer rows per "
                                 "request.")


async def _answer(send: Any, status: int, error: str, close: bool = False) -> None:
    import json

    body = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())] +
                ([(b"connection", b"close")] if close else [])})
    await send({"type": "http.response.body", "body": body})


def serve(served: Served, options: Options, ready: Callable[[Callable[[], None]], None]) -> None:
    """Serve until a signal; once both servers listen, ``ready`` is called with a function
    that stops them as a signal does, from any thread (a server started in a thread of its
    own, where signals cannot reach it)."""
    import gc

    # The loaded model's objects live as long as the process: keep them out of every
    # collection (serving's, and the one at exit, which took about 5 s).
    gc.collect()
    gc.freeze()
    asyncio.run(_serve(served, options, ready))


async def _serve(served: Served, options: Options,
                 ready: Callable[[Callable[[], None]], None]) -> None:
    import uvicorn

    from nettrain.serve import connections
    from nettrain.serve.http import make_app

    sock = _listen(options.host, options.port)
    grpc_server = await _start_grpc(served, options) if options.grpc_port else None
    await served.batcher.start()
    # httptools: HTTP parsed in C (h11, uvicorn's pure-Python parser, cost more CPU per
    # request than the model call); the asyncio loop, which grpc.aio shares.
    # (uvicorn's own limit_concurrency answers 503 to every request once half-open
    # connections fill it; connections.protocol closes those instead)
    limit = options.max_connections or connections.default_limit()
    config = uvicorn.Config(BodyLimit(make_app(served), options.max_body, options.timeout),
                            loop="asyncio", http=connections.protocol(options.timeout, limit),
                            log_level="warning", timeout_graceful_shutdown=int(options.grace),
                            lifespan="off")
    server = _Server(config)
    loop = asyncio.get_running_loop()
    connections.quiet_accept_errors(loop)
    draining: list[asyncio.Task] = []

    def stop() -> None:
        if server.should_exit:  # a second Ctrl-C: stop waiting for requests in flight
            server.force_exit = True
        server.should_exit = True
        if grpc_server is not None and not draining:
            draining.append(loop.create_task(grpc_server.stop(options.grace)))

    watcher = asyncio.create_task(_when_started(server, lambda: ready(
        lambda: loop.call_soon_threadsafe(stop))))
    with _signals(lambda signum, frame: loop.call_soon_threadsafe(stop)):
        await server.serve(sockets=[sock])
    watcher.cancel()
    if grpc_server is not None:
        await (draining[0] if draining else grpc_server.stop(options.grace))
    await served.close()


def _listen(host: str, port: int) -> Any:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP said, not left 0: asyncio sets TCP_NODELAY on an accepted connection only
    # when its socket says TCP. Without it a kept-alive connection's answer (headers, then
    # body) waited for the client's delayed ACK: 40-50 ms a request instead of 1-5.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RunError(f"--port: cannot listen on {host}:{port}: {exc.strerror}. Choose "
                       "another port (or --host).") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


async def _start_grpc(served: Served, options: Options) -> Any:
    import grpc

    from nettrain.serve.grpc_service import add_service

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", options.max_body),
                                      ("grpc.so_reuseport", 0)])
    add_service(server, served)
    try:
        if not server.add_insecure_port(f"{options.host}:{options.grpc_port}"):
            raise RuntimeError
    except RuntimeError:
        raise RunError(f"--grpc-port: cannot listen on {options.host}:{options.grpc_port} (in "
                       "use?): choose another port, or --grpc-port 0 for no gRPC.") from None
    await server.start()
    return server


async def _when_started(server: Any, ready: Callable[[], None]) -> None:
    while not server.started:
        await asyncio.sleep(0.05)
    ready()


class _Server:
    """uvicorn's Server, with the signals left to :func:`_serve` (uvicorn's own handler
    re-raises the signal after its shutdown, which would end the process before gRPC
    drains)."""

    def __new__(cls, config: Any) -> Any:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        return Server(config)


@contextlib.contextmanager
def _signals(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM call ``handler`` (a drain), instead of raising (in the main thread:
    no other receives signals)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = (signal.SIGINT, signal.SIGTERM)
    before = {s: signal.signal(s, handler) for s in handled}
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)
