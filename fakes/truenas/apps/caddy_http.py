"""HTTP/1.1 plumbing of the fake Caddy: byte streams (plain, TLS), requests, responses,
placeholders and matchers. What is done with a request is caddy_routes.py.

Behaviour followed (Caddy v2.8.4 source, modules/caddyhttp):
- server.go ServeHTTP: every response carries `Server: Caddy`; Go's server adds `Date`
  and a Content-Length for a response it has whole.
- matchers.go: `host` is case-insensitive, `*` stands for exactly one label; `path` is
  case-insensitive on the cleaned, unescaped path: exact, `prefix*`, `*suffix`,
  `*substring*`, otherwise a glob (Go's path.Match: `*` never crosses `/`); patterns
  with `%` escapes compare against the raw path (the fake does not mix the two spaces
  the way Caddy does).
- replacer.go / caddyhttp replacer: the `{http.request.*}` and `{env.*}` placeholders
  listed in `placeholder`.
Limits of the fake: HTTP/1.1 only (no h2/h3).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import re
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Protocol
from urllib.parse import unquote, urlsplit

import h11

from fakes.truenas.apps.caddy_config import (
    MatcherSet,
    Route,
    Server,
    replace,
)

log = logging.getLogger(__name__)

READ_CHUNK = 65536
DIAL_TIMEOUT = 3.0            # reverseproxy/httptransport.go default dial_timeout
HANDSHAKE_TIMEOUT = 30.0      # the fake's own bound, so that no task waits forever
IDLE_TIMEOUT = 300.0          # Caddy's default idle_timeout (5 min)
MAX_DRAIN = 256 * 1024        # like Go's server: past this, close instead of draining

# Go's net/http/httputil hopHeaders, as reverseproxy.go uses them
HOP_HEADERS = frozenset({"connection", "proxy-connection", "keep-alive", "proxy-authenticate",
                         "proxy-authorization", "te", "trailer", "transfer-encoding",
                         "upgrade"})


class HandlerError(Exception):
    """caddyhttp.Error: answered with this status and an empty body."""

    def __init__(self, status: int, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.headers = dict(headers or {})


class AbortConnection(Exception):
    """The response cannot be completed: drop the connection."""


# ---------------------------------------------------------------------------------------
# Byte streams: plain, or TLS done here over memory BIOs (so the handshake can wait for a
# config reload first, and so bytes the client sent early are never lost)


class Stream(Protocol):
    async def recv(self) -> bytes: ...
    async def send(self, data: bytes) -> None: ...
    def abort(self) -> None: ...
    async def close(self) -> None: ...


class PlainStream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def recv(self) -> bytes:
        return await self._reader.read(READ_CHUNK)

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    def abort(self) -> None:
        self._writer.transport.abort()

    async def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            if self._writer.can_write_eof():
                self._writer.write_eof()
        self._writer.close()


class TlsStream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 context: ssl.SSLContext) -> None:
        self._reader = reader
        self._writer = writer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)

    async def handshake(self) -> None:
        """Raises ssl.SSLError (after sending the alert) or ConnectionError."""
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
            except ssl.SSLError:
                with contextlib.suppress(OSError):
                    await self._flush()          # the alert tells the client why
                raise
        await self._flush()

    async def recv(self) -> bytes:
        while True:
            try:
                return self._tls.read(READ_CHUNK)
            except ssl.SSLWantReadError:
                await self._flush()
                try:
                    await self._fill()
                except ConnectionError:
                    return b""
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    async def send(self, data: bytes) -> None:
        self._tls.write(data)
        await self._flush()

    def abort(self) -> None:
        self._writer.transport.abort()

    async def close(self) -> None:
        with contextlib.suppress(ssl.SSLError, OSError):
            self._tls.unwrap()
        with contextlib.suppress(OSError, ConnectionError):
            await self._flush()
        self._writer.close()

    async def _fill(self) -> None:
        data = await self._reader.read(READ_CHUNK)
        if not data:
            raise ConnectionResetError("the client closed the connection")
        self._incoming.write(data)

    async def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            self._writer.write(pending)
            await self._writer.drain()


# ---------------------------------------------------------------------------------------
# Requests


@dataclass
class Request:
    method: str
    target: str                       # the request-target as sent (Go's RequestURI)
    path: str                         # unescaped (Go's URL.Path)
    raw_path: str
    query: str
    headers: list[tuple[str, str]]    # names lower-cased (h11)
    host: str                         # Host as sent, port included
    http_version: str
    scheme: str
    remote: tuple[str, int]

    def header(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    @property
    def hostname(self) -> str:
        """Host without its port ({http.request.host}, what the host matcher compares)."""
        host = self.host
        if host.startswith("["):
            return host[1:host.index("]")] if "]" in host else host
        name, sep, port = host.rpartition(":")
        return name if sep and port.isdigit() else host

    @property
    def port(self) -> str:
        host = self.host.rsplit("]", 1)[-1]
        _, sep, port = host.rpartition(":")
        return port if sep and port.isdigit() else ""


def parse_request(event: h11.Request, scheme: str, remote: tuple[str, int]) -> Request:
    target = event.target.decode("latin-1")
    headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers]
    host = next((v for k, v in headers if k == "host"), "")
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)          # absolute-form: Go takes Host from the URL
        host = parts.netloc or host
        raw_path, query = parts.path or "/", parts.query
    else:
        raw_path, _, query = target.partition("?")
    return Request(method=event.method.decode("ascii").upper(), target=target,
                   path=unquote(raw_path), raw_path=raw_path, query=query, headers=headers,
                   host=host, http_version=event.http_version.decode("ascii"),
                   scheme=scheme, remote=remote)


def placeholder(req: Request, env: Mapping[str, str]) -> Callable[[str], str | None]:
    """The placeholders of Caddy's HTTP replacer (caddyhttp/replacer.go) the fake knows."""

    def lookup(key: str) -> str | None:
        simple = {
            "http.request.host": req.hostname,
            "http.request.hostport": req.host,
            "http.request.port": req.port,
            "http.request.uri": req.target,
            "http.request.orig_uri": req.target,
            "http.request.uri.path": req.path,
            "http.request.orig_uri.path": req.path,
            "http.request.uri.query": req.query,
            "http.request.method": req.method,
            "http.request.scheme": req.scheme,
            "http.request.proto": f"HTTP/{req.http_version}",
            "http.request.remote": f"{req.remote[0]}:{req.remote[1]}",
            "http.request.remote.host": req.remote[0],
            "http.request.remote.port": str(req.remote[1]),
        }
        if key in simple:
            return simple[key]
        if key.startswith("http.request.header."):
            values = req.header(key[len("http.request.header."):])
            return ",".join(values)
        if key.startswith("env."):
            return env.get(key[4:], "")
        return None

    return lookup


# ---------------------------------------------------------------------------------------
# Matching (matchers.go)


def go_clean(path: str) -> str:
    """Go's path.Clean (posixpath.normpath keeps a leading `//`; Go does not)."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    return "/" + cleaned if rooted else (cleaned or ".")


def _clean_for_match(path: str, merge_slashes: bool) -> str:
    """caddyhttp.CleanPath: clean, keep a trailing slash; without merging, `//` stays."""
    marker = "\x00"
    source = path if merge_slashes else re.sub(r"(?<=/)(?=/)", marker, path)
    cleaned = go_clean(source)
    if cleaned != "/" and source.endswith("/"):
        cleaned += "/"
    return cleaned.replace(marker, "")


def _glob(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                if body.startswith("^"):
                    body = "^" + body[1:].replace("\\", "\\\\")
                else:
                    body = body.replace("\\", "\\\\")
                out.append(f"[{body}]")
                i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z")


def path_matches(pattern: str, request_path: str) -> bool:
    """MatchPath.Match for one (already lower-cased) pattern."""
    if pattern == "*":
        return True
    merge = "//" not in pattern
    path = _clean_for_match(request_path.lower(), merge)
    stars = pattern.count("*")
    if stars == 2 and pattern.startswith("*") and pattern.endswith("*"):
        return pattern[1:-1] in path
    if stars == 1 and pattern.startswith("*"):
        return path.endswith(pattern[1:])
    if stars == 1 and pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return _glob(pattern).match(path) is not None


def host_matches(pattern: str, hostname: str) -> bool:
    if "*" not in pattern:
        return pattern.lower() == hostname.lower()
    want = pattern.split(".")
    have = hostname.split(".")
    if len(want) != len(have):
        return False
    return all(w == "*" or w.lower() == h.lower() for w, h in zip(want, have, strict=True))


def _set_matches(ms: MatcherSet, req: Request, lookup: Callable[[str], str | None]) -> bool:
    if ms.hosts is not None and not any(
            host_matches(replace(h, lookup, unknown_as_empty=True), req.hostname)
            for h in ms.hosts):
        return False
    if ms.paths is not None:
        raw = req.raw_path
        if not any(path_matches(replace(p, lookup, unknown_as_empty=True).lower(),
                                raw if "%" in p else req.path) for p in ms.paths):
            return False
    return not (ms.methods is not None and req.method not in ms.methods)


def route_matches(route: Route, req: Request, lookup: Callable[[str], str | None]) -> bool:
    return not route.match or any(_set_matches(ms, req, lookup) for ms in route.match)


# ---------------------------------------------------------------------------------------
# One connection


class Host(Protocol):
    """What a connection needs from the Caddy instance that accepted it."""

    environment: Mapping[str, str]

    async def read_file_async(self, container_path: str) -> bytes | None: ...
    async def resolve_upstream_async(self, dial: str) -> tuple[str, int] | None: ...
    def current_server(self, port: int) -> Server | None: ...
    async def refresh(self) -> None: ...


@dataclass
class Headers:
    """An http.Header-like multimap, names canonicalised as Go does."""

    values: dict[str, list[str]] = field(default_factory=dict)

    @staticmethod
    def canon(name: str) -> str:
        return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))

    def set(self, name: str, values: list[str]) -> None:
        self.values[self.canon(name)] = list(values)

    def add(self, name: str, value: str) -> None:
        self.values.setdefault(self.canon(name), []).append(value)

    def get(self, name: str) -> str | None:
        found = self.values.get(self.canon(name))
        return found[0] if found else None

    def items(self) -> list[tuple[str, str]]:
        return [(k, v) for k, vs in self.values.items() for v in vs]


class Exchange:
    """One request on an h11 connection and the response being written to it."""

    def __init__(self, conn: h11.Connection, stream: Stream, request: Request) -> None:
        self.conn = conn
        self.stream = stream
        self.request = request
        self.headers = Headers({"Server": ["Caddy"]})
        self.started = False
        self.body_done = False

    async def _send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            await self.stream.send(data)

    async def body(self) -> AsyncIterator[bytes]:
        if self.body_done:
            return
        if self.conn.they_are_waiting_for_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
        while True:
            event = await next_event(self.conn, self.stream)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
                continue
            self.body_done = True
            if isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                return
            raise AbortConnection("the request body ended early")

    async def drain(self) -> bool:
        """Read what is left of the request body; False when too much (then close)."""
        total = 0
        async for chunk in self.body():
            total += len(chunk)
            if total > MAX_DRAIN:
                return False
        return True

    async def start(self, status: int) -> None:
        headers = self.headers
        if headers.get("Date") is None:
            headers.set("Date", [email.utils.formatdate(usegmt=True)])
        self.started = True
        await self._send(h11.Response(status_code=status, headers=headers.items(),
                                      reason=_reason(status)))

    async def write(self, data: bytes) -> None:
        if data and self.request.method != "HEAD":
            await self._send(h11.Data(data=data))

    async def end(self) -> None:
        await self._send(h11.EndOfMessage())

    async def respond(self, status: int, body: bytes = b"") -> None:
        if status not in (204, 304) and status >= 200:
            self.headers.set("Content-Length", [str(len(body))])
        await self.start(status)
        await self.write(body)
        await self.end()

    async def switch_protocols(self, headers: list[tuple[str, str]]) -> bytes:
        """Send a 101 and return the bytes the client sent past its request."""
        self.started = True
        await self._send(h11.InformationalResponse(status_code=101, headers=headers))
        return bytes(self.conn.trailing_data[0])


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


async def next_event(conn: h11.Connection, stream: Stream) -> h11.Event | type[h11.PAUSED]:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.recv())
            continue
        return event
