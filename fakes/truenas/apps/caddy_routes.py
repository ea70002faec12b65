"""What the fake Caddy does with a request: the routes and the three handlers.

Behaviour followed (Caddy v2.8.4 source, modules/caddyhttp):
- server.go: a handler error with no `errors` routes is answered with its status code
  and an empty body; Go's server answers a malformed request with a plain 400.
- routes.go: the matching routes' handlers form one chain, in order; a route without
  `match` matches every request; `terminal` stops after its route; routes sharing a
  `group` run only the first matching one. All three emulated handlers respond (they
  never call the next handler, except file_server with pass_thru), so the first
  matching route that has one of them answers.
- When nothing writes a response, Caddy answers an empty 200 (documented:
  caddy.community "Why Caddy emits empty 200 OK responses by default").
- staticresp.go: headers have placeholders replaced (unknown ones become empty), the
  body only known ones; a body without Content-Type gets text/plain (or
  application/json when it is JSON); status_code may itself be a placeholder.
- fileserver/staticfiles.go: the file is root + the cleaned request path
  (SanitizedPathJoin: `..` never leaves root); missing -> 404; a directory is served
  only through an index file (no browse = no listing); only GET and HEAD (405 with
  Allow); Content-Type by extension only, none for a file without one (no sniffing).
- reverseproxy: the first upstream's `dial` (Caddy picks at random among several; the
  fake takes the first, deterministic), hop-by-hop headers dropped both ways, Host
  passed through as received, X-Forwarded-For (client IP: incoming values are not
  trusted), X-Forwarded-Proto and X-Forwarded-Host set; dial timeout 3 s -> 504,
  refused or unresolvable -> 502, no upstream -> 503; the response is streamed back;
  protocol upgrades (101, WebSocket) are spliced through.
- A reload closes the old server's idle connections (Caddy's graceful shutdown).
- rewrite/rewrite.go (`strip_path_prefix`, the only rewrite field emulated): the
  prefix gets a leading `/`; the escaped path is cleaned (slashes merged unless the
  prefix has `//`); the prefix is trimmed when the path starts with it, compared
  case-insensitively and in unescaped form except where the prefix itself uses a
  `%xx` escape; the result is anchored at `/` (current Caddy's canonicalizePath;
  2.8.4 leaves the path empty and Go sends "/" upstream: the same on the wire). The
  handler never responds: the chain goes on with the rewritten request, which later
  matchers and the proxied request line see (`{http.request.orig_uri}` is not kept).
Limits of the fake: a directory requested without a trailing slash is not redirected
(the fake's file access cannot tell a directory from a missing file: 404).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mimetypes
import posixpath
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import replace as replace_fields
from urllib.parse import unquote

import h11

from fakes.truenas.apps.caddy_config import (
    CONTAINER_WORKDIR,
    FileServer,
    ReverseProxy,
    Rewrite,
    Server,
    StaticResponse,
    replace,
)
from fakes.truenas.apps.caddy_http import (
    DIAL_TIMEOUT,
    HOP_HEADERS,
    IDLE_TIMEOUT,
    AbortConnection,
    Exchange,
    HandlerError,
    Headers,
    Host,
    PlainStream,
    Request,
    Stream,
    _clean_for_match,
    go_clean,
    next_event,
    parse_request,
    placeholder,
    route_matches,
)

log = logging.getLogger(__name__)


async def serve_connection(stream: Stream, host: Host, port: int, server: Server,
                           remote: tuple[str, int],
                           idle_timeout: float | None = IDLE_TIMEOUT) -> None:
    """Requests on one accepted connection, until either side closes it. Without
    `idle_timeout` nothing here needs an event loop (for in-memory requests)."""
    conn = h11.Connection(h11.SERVER)
    scheme = "https" if server.tls is not None else "http"
    first = True
    while True:
        try:
            if idle_timeout is None:
                event = await next_event(conn, stream)
            else:
                event = await asyncio.wait_for(next_event(conn, stream), idle_timeout)
        except h11.RemoteProtocolError:
            await _bad_request(conn, stream)
            return
        except (TimeoutError, ConnectionError, ssl.SSLError):
            return
        if not isinstance(event, h11.Request):
            return                                   # ConnectionClosed, or nothing more
        exchange = Exchange(conn, stream, parse_request(event, scheme, remote))
        if not first:
            # A reload shuts the old server down gracefully: its idle connections close
            # and the client's retry on a new connection gets the new config. The fake
            # answers this request with the new config at once and then closes.
            await host.refresh()
            current = host.current_server(port)
            if current is not server:
                if current is None or (current.tls is None) != (server.tls is None):
                    stream.abort()
                    return
                server = current
                exchange.headers.set("Connection", ["close"])
        first = False
        try:
            await handle(server, exchange, host)
        except AbortConnection:
            stream.abort()
            return
        if conn.our_state is h11.SWITCHED_PROTOCOL:
            return
        if conn.our_state is h11.MUST_CLOSE or not await _drain(exchange):
            await stream.close()
            return
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            await stream.close()
            return


async def _drain(exchange: Exchange) -> bool:
    try:
        return await exchange.drain()
    except (AbortConnection, h11.RemoteProtocolError, ConnectionError, ssl.SSLError):
        return False


async def _bad_request(conn: h11.Connection, stream: Stream) -> None:
    """Go's server answers a malformed request with a plain 400 and closes."""
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        stream.abort()
        return
    body = b"400 Bad Request"
    with contextlib.suppress(h11.LocalProtocolError, ConnectionError, OSError):
        data = conn.send(h11.Response(status_code=400, reason=b"Bad Request", headers=[
            ("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close"),
            ("Content-Length", str(len(body)))]))
        data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        await stream.send(data)
    await stream.close()


async def handle(server: Server, exchange: Exchange, host: Host) -> None:
    req = exchange.request
    lookup = placeholder(req, host.environment)
    try:
        if not await _run_routes(server, exchange, host, lookup):
            await exchange.respond(200)            # nothing answered: Caddy's empty 200
    except HandlerError as err:
        if exchange.started:
            raise AbortConnection(str(err)) from None
        exchange.headers = _fresh_headers(exchange)
        for name, value in err.headers.items():
            exchange.headers.set(name, [value])
        await exchange.respond(err.status)
    except (AbortConnection, ConnectionError, ssl.SSLError, h11.ProtocolError):
        raise AbortConnection("connection failed") from None
    except Exception:
        log.exception("fake Caddy: handler failed")
        if exchange.started:
            raise AbortConnection("handler failed") from None
        exchange.headers = _fresh_headers(exchange)
        await exchange.respond(500)


def _fresh_headers(exchange: Exchange) -> Headers:
    """The headers an error response starts from: what a handler set is dropped, a
    decided `Connection: close` stays."""
    fresh = Headers({"Server": ["Caddy"]})
    if exchange.headers.get("Connection") == "close":
        fresh.set("Connection", ["close"])
    return fresh


async def _run_routes(server: Server, exchange: Exchange, host: Host,
                      lookup: Callable[[str], str | None]) -> bool:
    """True once a handler has written the response."""
    groups: set[str] = set()
    for route in server.routes:
        if route.group and route.group in groups:
            continue
        if not route_matches(route, exchange.request, lookup):
            continue
        if route.group:
            groups.add(route.group)
        for handler in route.handle:
            if await _HANDLERS[type(handler)](handler, exchange, host, lookup):
                return True
        if route.terminal:
            break
    return False


# ---------------------------------------------------------------------------------------
# Handlers: each returns True when it wrote the response


async def _static_response(h: StaticResponse, exchange: Exchange, host: Host,
                           lookup: Callable[[str], str | None]) -> bool:
    if h.abort:
        raise AbortConnection("static_response abort")
    if h.close:
        exchange.headers.set("Connection", ["close"])
    for name, values in h.headers:
        exchange.headers.set(replace(name, lookup, unknown_as_empty=True),
                             [replace(v, lookup, unknown_as_empty=True) for v in values])
    body = replace(h.body, lookup, unknown_as_empty=False)
    if body and exchange.headers.get("Content-Type") is None:
        exchange.headers.set("Content-Type", [_body_type(body)])
    status = 200
    if h.status_code is not None:
        text = replace(h.status_code, lookup, unknown_as_empty=True)
        try:
            status = int(text)
        except ValueError:
            raise HandlerError(500) from None
    if 100 <= status < 200:
        raise HandlerError(500)        # informational statuses are not emulated
    await exchange.respond(status, body.encode("utf-8"))
    return True


def _body_type(body: str) -> str:
    content = body.strip()
    if len(content) > 2 and ((content[0], content[-1]) in (("{", "}"), ("[", "]"))):
        try:
            json.loads(content)
            return "application/json"
        except ValueError:
            pass
    return "text/plain; charset=utf-8"


def _sanitized_join(root: str, request_path: str) -> str:
    """caddyhttp.SanitizedPathJoin: the cleaned request path, always below root."""
    rel = go_clean("/" + request_path)[1:]
    joined = posixpath.join(root, rel) if rel else root
    joined = go_clean(joined)
    if request_path.endswith("/") and len(request_path) > 1:
        joined += "/"
    return joined


async def _file_server(h: FileServer, exchange: Exchange, host: Host,
                       lookup: Callable[[str], str | None]) -> bool:
    req = exchange.request
    root = replace(h.root, lookup, unknown_as_empty=True) or "."
    if not root.startswith("/"):
        root = posixpath.join(CONTAINER_WORKDIR, root)
    filename = _sanitized_join(root, req.path)
    if filename.endswith("/"):
        candidates = [posixpath.join(filename, name) for name in h.index_names]
    else:
        candidates = [filename]
    found: tuple[str, bytes] | None = None
    for candidate in candidates:
        data = await host.read_file_async(candidate)
        if data is not None:
            found = (candidate, data)
            break
    if found is None:
        if h.pass_thru:
            return False
        raise HandlerError(404)
    if req.method not in ("GET", "HEAD"):
        raise HandlerError(405, {"Allow": "GET, HEAD"})
    name, data = found
    exchange.headers.add("Vary", "Accept-Encoding")
    exchange.headers.set("Accept-Ranges", ["bytes"])
    content_type = _content_type(name)
    if content_type:
        exchange.headers.set("Content-Type", [content_type])
    await exchange.respond(200, data)
    return True


def _content_type(name: str) -> str | None:
    """Go's mime.TypeByExtension: by extension only; text types carry charset=utf-8."""
    ext = posixpath.splitext(name)[1].lower()
    if not ext:
        return None
    guessed = mimetypes.types_map.get(ext)
    if guessed and guessed.startswith("text/"):
        guessed += "; charset=utf-8"
    return guessed


async def _reverse_proxy(h: ReverseProxy, exchange: Exchange, host: Host,
                         lookup: Callable[[str], str | None]) -> bool:
    if not h.dials:
        raise HandlerError(503)
    dial = replace(h.dials[0], lookup, unknown_as_empty=True)
    address = await host.resolve_upstream_async(dial)
    if address is None:
        raise HandlerError(502)                 # "lookup uro: no such host"
    # In Docker the proxy reaches its upstream over the app's bridge network, never
    # through the droplet's cloud firewall. The fake reaches it on the node's own
    # address, so it connects from that address too: the node can tell the connection
    # is its own traffic.
    local = (address[0], 0) if address[0].startswith("127.") else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(*address, local_addr=local), DIAL_TIMEOUT)
    except TimeoutError:
        raise HandlerError(504) from None
    except OSError:
        raise HandlerError(502) from None
    try:
        await _proxy(exchange, reader, writer)
    finally:
        writer.transport.abort()
    return True


async def _rewrite(h: Rewrite, exchange: Exchange, host: Host,
                   lookup: Callable[[str], str | None]) -> bool:
    prefix = replace(h.strip_path_prefix, lookup, unknown_as_empty=True)
    if not prefix:
        return False
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    req = exchange.request
    escaped = _clean_for_match(req.raw_path, "//" not in prefix)
    trimmed = trim_path_prefix(escaped, prefix)
    if trimmed != escaped:
        raw_path = trimmed if trimmed.startswith("/") else "/" + trimmed
        exchange.request = replace_fields(
            req, raw_path=raw_path, path=unquote(raw_path),
            target=raw_path + ("?" + req.query if req.query else ""))
    return False


def trim_path_prefix(escaped_path: str, prefix: str) -> str:
    """rewrite.go trimPathPrefix: lock-step, case-insensitive, unescaped comparison
    except where the prefix itself has a %xx escape."""
    i_path = i_prefix = 0
    while i_path < len(escaped_path) and i_prefix < len(prefix):
        ch = escaped_path[i_path]
        if ch == "%" and prefix[i_prefix] != "%" and len(escaped_path) >= i_path + 3:
            ch = unquote(escaped_path[i_path:i_path + 3])
            i_path += 2
        if ch.lower() != prefix[i_prefix].lower():
            return escaped_path
        i_path += 1
        i_prefix += 1
    return escaped_path[i_path:] if i_prefix >= len(prefix) else escaped_path


def _connection_tokens(values: list[str]) -> set[str]:
    return {token.strip().lower() for value in values for token in value.split(",")
            if token.strip()}


def _upstream_request(req: Request) -> tuple[list[tuple[str, str]], bool]:
    """The headers sent upstream (reverseproxy.go prepareRequest + addForwardedHeaders)
    and whether the body is sent chunked."""
    tokens = _connection_tokens(req.header("connection"))
    upgrade = req.header("upgrade")[:1] if "upgrade" in tokens else []
    chunked = any("chunked" in v.lower() for v in req.header("transfer-encoding"))
    forwarded = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
    out = [(k, v) for k, v in req.headers
           if k not in HOP_HEADERS and k not in tokens and k not in forwarded]
    if any("trailers" in _connection_tokens([v]) for v in req.header("te")):
        out.append(("te", "trailers"))
    if upgrade:
        out += [("connection", "Upgrade"), ("upgrade", upgrade[0])]
    if chunked:
        out.append(("transfer-encoding", "chunked"))
    # the client is never a trusted proxy here, so its own X-Forwarded-* are replaced
    out += [("x-forwarded-for", req.remote[0]), ("x-forwarded-proto", req.scheme),
            ("x-forwarded-host", req.host)]
    if not any(k == "host" for k, _ in out):
        out.append(("host", req.host or "localhost"))
    return out, chunked


async def _proxy(exchange: Exchange, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
    req = exchange.request
    upstream = h11.Connection(h11.CLIENT)
    upstream_stream = PlainStream(reader, writer)
    headers, _ = _upstream_request(req)
    target = req.raw_path + ("?" + req.query if req.query else "")

    async def send(event: h11.Event) -> None:
        data = upstream.send(event)
        if data:
            await upstream_stream.send(data)

    try:
        await send(h11.Request(method=req.method, target=target, headers=headers))
        async for chunk in exchange.body():
            await send(h11.Data(data=chunk))
        await send(h11.EndOfMessage())
        while True:
            event = await next_event(upstream, upstream_stream)
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    await _splice(exchange, upstream, upstream_stream, event)
                    return
                continue                          # 100 Continue and the like
            break
    except (OSError, h11.ProtocolError, ConnectionError):
        raise HandlerError(502) from None
    if not isinstance(event, h11.Response):
        raise HandlerError(502)
    response_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
    tokens = _connection_tokens([v for k, v in response_headers if k.lower() == "connection"])
    for name, value in response_headers:
        if name.lower() not in HOP_HEADERS and name.lower() not in tokens:
            exchange.headers.add(name, value)    # copyHeader adds: Server gets both values
    await exchange.start(event.status_code)
    try:
        while True:
            event = await next_event(upstream, upstream_stream)
            if isinstance(event, h11.Data):
                await exchange.write(bytes(event.data))
                continue
            if isinstance(event, h11.EndOfMessage):
                break
            raise AbortConnection("the upstream response ended early")
    except (OSError, h11.ProtocolError, ConnectionError) as exc:
        # headers are out: nothing to do but cut the stream (reverseproxy.go
        # "aborting with incomplete response")
        raise AbortConnection("upstream failed mid-response") from exc
    await exchange.end()


async def _splice(exchange: Exchange, upstream: h11.Connection, upstream_stream: PlainStream,
                  event: h11.InformationalResponse) -> None:
    """A 101 from upstream: pass it on, then copy bytes both ways until either side ends."""
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
    from_client = await exchange.switch_protocols([("Server", "Caddy"), *headers])
    from_upstream = bytes(upstream.trailing_data[0])
    if from_client:
        await upstream_stream.send(from_client)
    if from_upstream:
        await exchange.stream.send(from_upstream)

    async def pump(recv: Callable[[], Awaitable[bytes]],
                   send: Callable[[bytes], Awaitable[None]]) -> None:
        with contextlib.suppress(OSError, ConnectionError, ssl.SSLError):
            while data := await recv():
                await send(data)

    tasks = [asyncio.ensure_future(pump(exchange.stream.recv, upstream_stream.send)),
             asyncio.ensure_future(pump(upstream_stream.recv, exchange.stream.send))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


_HANDLERS: dict[type, Callable[..., Awaitable[bool]]] = {
    StaticResponse: _static_response,
    FileServer: _file_server,
    ReverseProxy: _reverse_proxy,
    Rewrite: _rewrite,
}
