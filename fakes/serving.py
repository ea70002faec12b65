"""Run an ASGI app over HTTPS with uvicorn on a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from email.utils import formatdate

import uvicorn

from fakes.tls import ServerCert


class DatedBy:
    """ASGI middleware: every response's `Date` is read from `now` (Unix seconds).

    An origin server with a clock sends its time in `Date` (RFC 9110 §6.6.1), in whole
    seconds; a fake world's clock is virtual, so its servers tell that time, not this
    machine's (clients read the target's clock from it: infra/target.py `now`)."""

    def __init__(self, app, now: Callable[[], float]) -> None:
        self.app = app
        self.now = now

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def dated(message) -> None:
            if message["type"] == "http.response.start":
                headers = [(name, value) for name, value in message.get("headers", [])
                           if name.lower() != b"date"]
                headers.append((b"date", formatdate(self.now(), usegmt=True).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, dated)


class HttpsServer:
    def __init__(self, app, host: str, cert: ServerCert, port: int = 0,
                 now: Callable[[], float] | None = None) -> None:
        """`now`: the clock the `Date` header tells (default: uvicorn's, this machine's)."""
        self.host = host
        # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (else Nagle +
        # delayed ACK hold every response body back ~40 ms).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            DatedBy(app, now) if now else app,
            ssl_certfile=str(cert.cert_path), ssl_keyfile=str(cert.key_path),
            log_level="warning", access_log=False, lifespan="off",
            timeout_keep_alive=30, date_header=now is None,
            # llhttp, not h11: the same HTTP/1.1, about a fifth less serving CPU per request
            http="httptools",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"https-{host}:{self.port}",
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"HTTPS server on {self.host}:{self.port} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        # Don't wait for idle keep-alive clients: a TLS close waits up to 30 s for them.
        self._server.force_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
