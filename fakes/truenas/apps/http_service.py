"""A small HTTP/1.1 server for image behaviours (cockroach's console, uro, GoCD).

`http_service(handler)` is a StreamService: each request on a connection is parsed
with h11 and given to `async handler(request) -> Response`; keep-alive as the client
asks. Plain HTTP only (the images the fake serves this way listen in plain HTTP
inside the container). A handler that raises is answered 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import h11

from fakes.truenas.server import StreamService

log = logging.getLogger(__name__)
IDLE_SECONDS = 30.0           # wall time an idle keep-alive connection stays open
MAX_BODY = 1 << 20


@dataclass
class HttpRequest:
    method: str
    path: str                              # unescaped, without the query
    query: dict[str, list[str]]
    headers: dict[str, str]                # lower-cased names
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Any, content_type: str = "application/json",
             headers: dict[str, str] | None = None) -> HttpResponse:
        return cls(status, json.dumps(value).encode(),
                   {"Content-Type": content_type, **(headers or {})})


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


def http_service(handler: Handler) -> StreamService:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_BODY)
        try:
            while True:
                request = await _read_request(conn, reader)
                if request is None:
                    return
                try:
                    response = await handler(request)
                except Exception:  # noqa: BLE001 - a handler bug is a 500, not a dead loop
                    log.exception("fake HTTP service: handler failed")
                    response = HttpResponse(500, b"internal error\n")
                headers = [("Content-Length", str(len(response.body))),
                           *response.headers.items()]
                data = conn.send(h11.Response(status_code=response.status, headers=headers))
                data += conn.send(h11.Data(data=response.body)) if response.body else b""
                data += conn.send(h11.EndOfMessage())
                writer.write(data)
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (h11.ProtocolError, ConnectionError, TimeoutError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    return StreamService(serve)


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader
                        ) -> HttpRequest | None:
    request: HttpRequest | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await asyncio.wait_for(reader.read(65536), IDLE_SECONDS)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            target = urlsplit(event.target.decode("latin-1"))
            request = HttpRequest(
                method=event.method.decode("ascii"), path=unquote(target.path or "/"),
                query=parse_qs(target.query, keep_blank_values=True),
                headers={k.decode("latin-1").lower(): v.decode("latin-1")
                         for k, v in event.headers})
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            if request is not None:
                request.body = bytes(body)
            return request
        else:                          # ConnectionClosed, PAUSED
            return None
