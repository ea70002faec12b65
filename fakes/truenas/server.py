"""The network presence of one fake TrueNAS node: every listener on its address.

A node answers on its droplet's own loopback address: the TrueNAS UI and API (owner
"ui", `serve_ui`; its routes are `build_app`'s) and the ports apps publish (owner
"app:<name>", `publish`), each behind the droplet's cloud firewall
(`_FirewalledSocket`). A port below 1024 that this process may not bind is served on
the host port the world maps it to (world.json `network.port_map`). How the
listeners share one loop with the world's lock is on `NodeServer`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from fakes.tls import ServerCert
from fakes.truenas import ejson
from fakes.truenas.certs import node_certificate
from fakes.truenas.errors import ENOMETHOD, CallError, MethodNotFound, RpcError
from fakes.truenas.jobs import Job
from fakes.truenas.node import TRUENAS_VERSION, CallContext
from fakes.truenas.rpc import CloseRequest, RpcSession, node_methods
from fakes.truenas.tokens import TokenStore

log = logging.getLogger(__name__)

API_VERSION = "v" + TRUENAS_VERSION
# The version directories of middlewared/api on stable/goldeye, oldest first.
API_VERSIONS = ("v24.10", "v25.04.0", "v25.04.1", "v25.04.2", "v25.10.0", "v25.10.1",
                API_VERSION)
HIDDEN_VERSIONS = ("v24.10",)
STANDARD_PORTS = {"https": 443, "http": 80}
SSH_PORT = 22
SSH_OWNER = "ssh"
UI_OWNER = "ui"
DOWNLOAD_WAIT_SECONDS = 120.0      # wall time a /_download waits for its job to end
CLOSE_WAIT_SECONDS = 2.0


class PortInUse(OSError):
    """The node port is already published by another owner, or its host port is taken."""


class InboundPolicy(Protocol):
    def allows(self, source_ip: str, port: int) -> bool: ...


@dataclass(frozen=True)
class StreamService:
    """A raw TCP (or TLS, with `ssl_context`) service: `handler(reader, writer)`."""

    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    ssl_context: ssl.SSLContext | None = None


@dataclass(frozen=True)
class AsgiService:
    """An ASGI app served by uvicorn (HTTP/1.1 and WebSocket), TLS when given a cert.
    `certfile=None` with `default_cert=True` means the node's own self-signed one."""

    app: Any
    certfile: Path | None = None
    keyfile: Path | None = None
    default_cert: bool = False


class _FirewalledSocket(socket.socket):
    """A listening socket whose accept() resets connections the policy refuses.

    Every accepted connection is checked against the droplet's inbound policy
    (DigitalOcean firewalls, fakes/digitalocean/models/firewall_policy.py) by source
    address and node port. A real DigitalOcean firewall drops the packets (the client
    times out); the fake resets the connection at once so that tests do not wait.
    Either way the port is unreachable from that source.

    asyncio's selector loop accepts with `sock.accept()` on the very object given to
    `create_server(sock=...)`, so refusing here happens before any TLS or HTTP."""

    def __init__(self, *args: Any, node_port: int = 0,
                 policy: Callable[[], InboundPolicy | None] = lambda: None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.node_port = node_port
        self._policy = policy

    def accept(self):
        while True:
            conn, addr = super().accept()       # BlockingIOError when none is waiting
            policy = self._policy()
            # Traffic between the node's own containers never crosses the cloud
            # firewall (it stays on the droplet); in the fake it comes from the
            # droplet's own address.
            own = addr[0] == self.getsockname()[0]
            if policy is None or own or policy.allows(addr[0], self.node_port):
                return conn, addr
            # SO_LINGER 0: close with a reset, as close to "refused" as a userspace
            # listener gets once the handshake is done
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()


@dataclass
class _Listener:
    port: int                      # the droplet's port
    host_port: int
    owner: str
    service: StreamService | AsgiService
    sock: _FirewalledSocket
    started: bool = False
    closed: bool = False
    uvicorn_server: uvicorn.Server | None = None
    asyncio_server: asyncio.AbstractServer | None = None
    writers: set = field(default_factory=set)


class NodeServer:
    """The node's listeners. Binds at once (so a port clash fails in the caller),
    serves on its own thread.

    The UI listens with WSS/HTTPS on `ui_httpsport` (443 at first boot) and WS/HTTP on
    `ui_port` (80), moved by `system.general.update` (reference/truenas-api.md §4 Web
    UI settings) through `serve_ui`.

    Threading: every listener runs on one asyncio loop on the node's own thread. The
    loop never takes the world's lock: model calls go to worker threads, and
    job/event listeners only enqueue text with `call_soon_threadsafe`. So listeners
    can be opened and closed from a hook that holds the world's lock: sockets are
    bound on the caller's thread (a port clash fails there), and closing asks the
    loop and waits for it (a few ms) but never joins the thread, whose last step
    (executor shutdown) may wait for a worker blocked on the lock. `join()` is for
    callers that do not hold the lock.

    `ports`: the host ports of the UI's https and http listeners at boot (443 and 80
    unless the world maps them; 0 = any free port). `port_map`: droplet port ->
    host port for the other mapped ports (world.json `network.port_map`)."""

    def __init__(self, node: Any, cert_dir: Path, ports: dict[str, int] | None = None,
                 port_map: dict[int, int] | None = None) -> None:
        self.node = node
        self.cert_dir = cert_dir
        self.tokens = TokenStore()
        self.cert: ServerCert | None = None
        self.error: BaseException | None = None
        wanted = dict(ports or STANDARD_PORTS)
        self.port_map: dict[int, int] = dict(port_map or {})
        self.port_map.update({STANDARD_PORTS[s]: wanted[s] for s in ("https", "http")})
        if "ssh" in wanted:           # sshd's port 22 (fakes/truenas/ssh.py)
            self.port_map[SSH_PORT] = wanted["ssh"]
        self.ui_ports = dict(STANDARD_PORTS)         # droplet ports the UI is on
        self._policy: InboundPolicy | None = None
        self._listeners: dict[int, _Listener] = {}
        self._state = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._ready = threading.Event()
        self._done: asyncio.Event | None = None
        self._ui_app = build_app(self)
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"truenas-{node.address}")
        node.network = self
        self.serve_ui(STANDARD_PORTS["http"], STANDARD_PORTS["https"])

    @property
    def address(self) -> str:
        return self.node.address

    @property
    def ports(self) -> dict[str, int]:
        """The host ports the UI answers on, by scheme."""
        with self._state:
            return {scheme: self._listeners[port].host_port
                    for scheme, port in self.ui_ports.items() if port in self._listeners}

    def url(self, scheme: str = "wss", path: str = "/api/current") -> str:
        port = self.ports["https" if scheme in ("wss", "https") else "http"]
        default = {"wss": 443, "https": 443, "ws": 80, "http": 80}[scheme]
        host = self.address if port == default else f"{self.address}:{port}"
        return f"{scheme}://{host}{path}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    # --- the node's network ---------------------------------------------------------
    def host_port(self, port: int) -> int:
        return self.port_map.get(port, port)

    def set_inbound_policy(self, policy: InboundPolicy | None) -> None:
        """The droplet's firewall, read by every accept (a snapshot: no lock needed)."""
        self._policy = policy

    def publish(self, port: int, service: StreamService | AsgiService, owner: str) -> int:
        """Serve `service` on the droplet's `port`; returns the host port."""
        with self._state:
            if self._stopping:
                raise PortInUse(f"{self.address}: the node is not running")
            holder = self._listeners.get(port)
            if holder is not None:
                raise PortInUse(f"port {port} on {self.address} is already used by "
                                f"{holder.owner}")
            sock = self._bind(port)
            listener = _Listener(port, sock.getsockname()[1], owner, service, sock)
            self._listeners[port] = listener
            loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._start_listener, listener)
        return listener.host_port

    def withdraw(self, owner: str) -> None:
        """Close the owner's listeners and the connections they hold."""
        with self._state:
            mine = [ln for ln in self._listeners.values() if ln.owner == owner]
            for listener in mine:
                del self._listeners[listener.port]
            loop = self._loop
        self._close(mine, loop)

    def published(self) -> dict[int, str]:
        with self._state:
            return {port: listener.owner for port, listener in self._listeners.items()}

    def listening_port(self, port: int) -> int | None:
        """The host port a droplet port is served on right now, or None."""
        with self._state:
            listener = self._listeners.get(port)
            return listener.host_port if listener is not None else None

    def start_ssh(self) -> None:
        """The node's sshd on port 22 (the SSH service started; fakes/truenas/ssh.py)."""
        from fakes.truenas import ssh

        with self._state:
            if SSH_PORT in self._listeners or self._stopping:
                return
        self.publish(SSH_PORT, ssh.service(self.node, lambda: self._policy), SSH_OWNER)

    def serve_ui(self, http_port: int, https_port: int, certfile: Path | None = None,
                 keyfile: Path | None = None) -> None:
        """(Re)start the UI on these droplet ports with this certificate (None: the
        node's own self-signed one). Like nginx restarting: open connections close."""
        if http_port == https_port:
            raise PortInUse(f"the UI cannot serve http and https on one port ({http_port})")
        self.withdraw(UI_OWNER)
        https = AsgiService(self._ui_app, certfile, keyfile, default_cert=certfile is None)
        self.publish(https_port, https, UI_OWNER)
        try:
            self.publish(http_port, AsgiService(self._ui_app), UI_OWNER)
        except BaseException:
            self.withdraw(UI_OWNER)
            raise
        self.ui_ports = {"https": https_port, "http": http_port}

    def _bind(self, port: int) -> _FirewalledSocket:
        # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (serving.py).
        sock = _FirewalledSocket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP,
                                 node_port=port, policy=lambda: self._policy)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.address, self.host_port(port)))
            sock.listen(128)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise PortInUse(f"cannot listen on {self.address}:{self.host_port(port)} "
                            f"(port {port}): {exc.strerror or exc}") from exc
        return sock

    # --- lifecycle ---------------------------------------------------------------
    def start(self) -> NodeServer:
        """Returns at once; connections made before the loop runs wait in the backlog."""
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """True once the UI serves (the certificate exists by then)."""
        return self._ready.wait(timeout) and self.error is None and not self._stopping

    def stop(self, timeout: float = CLOSE_WAIT_SECONDS) -> None:
        """Stop answering: new connections are refused and open ones are closed."""
        with self._state:
            if self._stopping:
                return
            self._stopping = True
            loop = self._loop
            every = list(self._listeners.values())
            self._listeners.clear()
        self._close(every, loop, timeout)
        if loop is not None and self._done is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._done.set)

    def join(self, timeout: float = 10.0) -> None:
        """Wait for the thread to end. Never call this while holding the world's lock."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    # --- the node's thread -------------------------------------------------------
    def _run(self) -> None:
        try:
            self.cert = node_certificate(self.cert_dir)
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported, and the thread must end
            if not self._stopping:
                self.error = exc
                log.exception("fake TrueNAS %s: server failed", self.address)
        finally:
            with self._state:
                leftovers = list(self._listeners.values())
            for listener in leftovers:
                _close_socket(listener.sock)
            self._ready.set()

    async def _serve(self) -> None:
        self._done = asyncio.Event()
        with self._state:
            if self._stopping:
                return
            self._loop = asyncio.get_running_loop()
            pending = list(self._listeners.values())
        for listener in pending:
            self._start_listener(listener)
        deadline = time.monotonic() + 10.0
        while not self._ui_started() and time.monotonic() < deadline and not self._stopping:
            await asyncio.sleep(0.005)
        self._ready.set()
        await self._done.wait()

    def _ui_started(self) -> bool:
        with self._state:
            mine = [ln for ln in self._listeners.values() if ln.owner == UI_OWNER]
        return bool(mine) and all(
            ln.uvicorn_server is not None and ln.uvicorn_server.started for ln in mine)

    def _start_listener(self, listener: _Listener) -> None:
        """On the loop: serve one bound socket."""
        if listener.started or listener.closed:
            return
        listener.started = True
        service = listener.service
        if isinstance(service, AsgiService):
            listener.uvicorn_server = _uvicorn(service, self.cert)
            asyncio.ensure_future(_quietly(listener.uvicorn_server.serve(sockets=[listener.sock]),
                                           self.address, listener))
        elif hasattr(service, "abort_all"):         # ssh.SocketService: serves the socket
            asyncio.ensure_future(_quietly(self._start_socket(listener, service), self.address,
                                           listener))
        else:
            asyncio.ensure_future(self._start_stream(listener, service))

    async def _start_stream(self, listener: _Listener, service: StreamService) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            listener.writers.add(writer)
            try:
                await service.handler(reader, writer)
            except Exception:  # noqa: BLE001 - one connection's failure is its own
                log.debug("fake TrueNAS %s: connection on %s failed", self.address,
                          listener.port, exc_info=True)
            finally:
                listener.writers.discard(writer)
                with contextlib.suppress(Exception):
                    writer.close()

        try:
            listener.asyncio_server = await asyncio.start_server(
                handle, sock=listener.sock, ssl=service.ssl_context)
        except (OSError, ValueError):
            if not listener.closed:     # else: closed before it served (`_release`)
                log.exception("fake TrueNAS %s: cannot serve port %s", self.address,
                              listener.port)
            return
        if listener.closed:
            _stop(listener.asyncio_server)

    async def _start_socket(self, listener: _Listener, service: Any) -> None:
        listener.asyncio_server = await service.start(listener.sock)
        if listener.closed:
            _stop(listener.asyncio_server)
            service.abort_all()

    def _close(self, listeners: list[_Listener], loop: asyncio.AbstractEventLoop | None,
               timeout: float = CLOSE_WAIT_SECONDS) -> None:
        if not listeners:
            return
        for listener in listeners:
            listener.closed = True
        if loop is None:
            for listener in listeners:
                _close_socket(listener.sock)
            return
        closed = threading.Event()

        def close_now(hops: int = 3) -> None:
            # What was answered before the close goes out first. A reply is queued on
            # this loop (RpcSession._send, under the node's lock) before anything that
            # lock held back, such as the UI restart a call asked for, can close its
            # connection; its writer task wakes a loop step after the queueing, so the
            # close waits a few steps, not a wall-time grace a loaded machine outlasts.
            if hops:
                loop.call_soon(close_now, hops - 1)
                return
            try:
                for listener in listeners:
                    _shut(listener)
            finally:
                for listener in listeners:
                    _release(listener.sock, loop)
                closed.set()

        try:
            loop.call_soon_threadsafe(close_now)
        except RuntimeError:      # the loop has already finished
            for listener in listeners:
                _close_socket(listener.sock)
            return
        if not closed.wait(timeout):
            log.warning("fake TrueNAS %s: listeners did not close in %.1f s",
                        self.address, timeout)


def _shut(listener: _Listener) -> None:
    """On the loop: stop accepting and close what the listener has open."""
    server = listener.uvicorn_server
    if server is not None:
        server.should_exit = server.force_exit = True
        for asyncio_server in getattr(server, "servers", []):
            asyncio_server.close()
        for connection in list(server.server_state.connections):
            # a client that already sent its close frame makes this raise
            # (InvalidState); the other connections must still close
            with contextlib.suppress(Exception):
                connection.shutdown()
    if listener.asyncio_server is not None:
        listener.asyncio_server.close()
    abort_all = getattr(listener.service, "abort_all", None)
    if abort_all is not None:
        abort_all()
    for writer in list(listener.writers):
        with contextlib.suppress(Exception):
            writer.transport.abort()


def _stop(server: Any) -> None:
    """Close a server that finished starting after its listener was closed: `_release`
    already stopped watching and closed the socket, which asyncio's close would
    look up again and refuse (descriptor -1)."""
    with contextlib.suppress(OSError, ValueError):
        server.close()


def _close_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def _release(sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
    """On the loop: stop watching a listening socket, then close it.

    A listener closed while its server is still starting (asyncio's `create_server`
    watches the socket a loop step before uvicorn records the server, so `_shut`
    cannot close that server) would otherwise be closed while the loop still watches
    its descriptor. The kernel forgets a closed descriptor, asyncio's selector map does
    not, and the next socket the loop watches with that number (a new listener, an
    accepted connection) is only re-labelled there, never watched: it accepts or
    reads nothing, and clients hang in the TLS handshake. CPython's selectors.py
    `_PollLikeSelector.modify` (unchanged events: no epoll_ctl) and
    base_events.py `create_server` (`await tasks.sleep(0)` after `_start_serving`)."""
    with contextlib.suppress(OSError, ValueError):
        if sock.fileno() != -1:
            loop.remove_reader(sock.fileno())
    _close_socket(sock)


async def _quietly(coroutine: Awaitable[Any], address: str,
                   listener: _Listener | None = None) -> None:
    try:
        await coroutine
    except Exception:  # noqa: BLE001 - a listener failing must not end the node's loop
        if listener is not None and listener.closed:
            # closed while starting (`_release`): uvicorn's shutdown then finds its
            # socket already closed; that is the close, not a failure
            log.debug("fake TrueNAS %s: listener on %s closed while starting", address,
                      listener.port, exc_info=True)
            return
        log.exception("fake TrueNAS %s: a listener failed", address)
        if listener is not None:
            # A server that failed to start has no port open (nginx that cannot load its
            # certificate): close the bound socket, or clients would queue in its
            # backlog and hang in the TLS handshake instead of being refused.
            listener.closed = True
            _release(listener.sock, asyncio.get_running_loop())


def _uvicorn(service: AsgiService, default_cert: ServerCert | None) -> uvicorn.Server:
    tls: dict[str, Any] = {}
    if service.default_cert and default_cert is not None:
        tls = {"ssl_certfile": str(default_cert.cert_path),
               "ssl_keyfile": str(default_cert.key_path)}
    elif service.certfile is not None:
        tls = {"ssl_certfile": str(service.certfile), "ssl_keyfile": str(service.keyfile)}
    return uvicorn.Server(uvicorn.Config(
        service.app, log_level="warning", log_config=None, access_log=False,
        lifespan="off", http="httptools", ws="websockets-sansio", timeout_graceful_shutdown=1,
        # Clients on loopback come from 127.0.0.1, which uvicorn trusts for
        # X-Forwarded-Proto by default: a plain ws:// client could then claim TLS
        # and escape the API key revocation. nginx answers as "nginx".
        proxy_headers=False, server_header=False, headers=[("Server", "nginx")], **tls))


# --- the app ---------------------------------------------------------------------
def build_app(server: NodeServer) -> Starlette:
    """The UI's routes (middleware 25.10 `main.py` and `apps/file_app.py`;
    reference/truenas-api.md §1, §4 Files, §8):

    - `/api/current` and `/api/<version>` for every version directory of 25.10's
      `middlewared/api/` (`v24.10`, `v25.04.0`-`.2`, `v25.10.0`-`.2`; `main.py`
      `_load_api_versions`/`_create_apis`): JSON-RPC 2.0 over WebSocket (`rpc.py`).
      Middleware serves the older versions through `LegacyAPIMethod`, which converts
      arguments and results between that version's models and the current ones; the
      fake answers every version with the current (v25.10.2) shapes, so a field that
      changed between versions is not converted (README, Fidelity);
    - `GET /api/versions`: those versions but `v24.10`, which `api_versions_handler`
      hides; `GET /api/boot_id`: `system.boot_id` as JSON, without authentication;
    - the legacy `/websocket` (DDP-style) protocol is not served (404);
    - `POST /_upload`: multipart, first part `data` = `{"method", "params"}`, then one
      `file` part; answers `{"job_id": N}`. The status codes follow `file_app.py`:
      405 when the parts are missing or out of order, 400 for bad JSON, 422 without
      `method` or for an unknown method, 401 without or with bad credentials, 403 for
      an invalid token, 412 for a CallError, 500 for anything else. Only one file
      part is taken (middleware takes up to 5; `filesystem.put` needs one);
    - `GET /_download/{job_id}?auth_token=…`: the job's output once it has finished
      (middleware streams it while the job runs; the bytes are the same).

    nginx on a real node serves the same on both UI ports. Over the http port the
    transport is not secure, which is what makes `auth.login_ex` revoke an API key
    sent there. `/_upload` with `Bearer <key>` over http does not revoke it:
    `restful.py` authenticates REST-style credentials without that check."""
    node = server.node

    async def rpc(websocket: WebSocket) -> None:
        await websocket.accept()
        loop = asyncio.get_running_loop()
        outbox: asyncio.Queue[str | None] = asyncio.Queue()

        def send_text(text: str) -> None:
            with contextlib.suppress(RuntimeError):   # the loop is gone: nobody to tell
                loop.call_soon_threadsafe(outbox.put_nowait, text)

        session = RpcSession(node, server.tokens, send_text,
                             secure=websocket.url.scheme == "wss",
                             origin=websocket.client.host if websocket.client else None)
        writer = asyncio.create_task(_pump(websocket, outbox))
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is None:
                    close = CloseRequest(1003, "Invalid websocket message type: BINARY")
                else:
                    close = await asyncio.to_thread(session.handle, text)
                if close is not None:
                    await outbox.put(None)       # what was answered goes out first
                    await writer
                    await websocket.close(close.code, close.reason)
                    return
        except WebSocketDisconnect:
            return
        finally:
            session.close()
            writer.cancel()

    async def versions(_request: Request) -> Response:
        return JSONResponse([v for v in API_VERSIONS if v not in HIDDEN_VERSIONS])

    async def boot_id(_request: Request) -> Response:
        def read() -> Any:
            with node.lock:
                return node.call("system.boot_id", [], CallContext())

        try:
            value = await asyncio.to_thread(read)
        except RpcError as exc:     # still booting: aiohttp answers 500 for an exception
            return PlainTextResponse(_as_text(exc), 500)
        return JSONResponse(value)

    async def upload(request: Request) -> Response:
        try:
            form = await request.form(max_files=5)
        except Exception:  # noqa: BLE001 - not multipart, or malformed
            return PlainTextResponse("No part found on payload", 405)
        parts = list(form.multi_items())
        if not parts:
            return PlainTextResponse("No part found on payload", 405)
        name, value = parts[0]
        if name != "data":
            return PlainTextResponse('"data" part must be the first on payload', 405)
        raw = value if isinstance(value, str) else await value.read()
        try:
            data = json.loads(raw)
        except ValueError as exc:
            return PlainTextResponse(str(exc), 400)
        if not isinstance(data, dict) or "method" not in data:
            return Response(status_code=422)
        credentials = _credentials(request)
        if isinstance(credentials, Response):
            return credentials
        if credentials is None:
            return PlainTextResponse("401: Unauthorized", 401)
        username = await asyncio.to_thread(_authenticate, server, *credentials,
                                           request.client.host if request.client else None)
        if isinstance(username, Response):
            return username
        if len(parts) < 2 or parts[1][0] != "file":
            return PlainTextResponse('"file" not found as second part on payload', 405)
        if len(parts) > 2:
            extra = parts[2][0]
            text = ("Too many uploaded files" if extra == "file"
                    else f"Unknown payload part {extra!r}")
            return PlainTextResponse(text, 405)
        file_part = parts[1][1]
        content = (file_part.encode() if isinstance(file_part, str)
                   else await file_part.read())
        return await asyncio.to_thread(_run_upload, server, data, username, content)

    async def download(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        token_value = request.query_params.get("auth_token")
        token = server.tokens.take(token_value) if token_value else None
        if token is None or token.attributes.get("job") != job_id:
            return Response(status_code=401)
        job: Job | None = node.jobs.get(job_id)
        if job is None:
            return Response(status_code=404)
        if not server.tokens.claim_download(job_id):
            return Response(status_code=410)
        deadline = time.monotonic() + DOWNLOAD_WAIT_SECONDS
        while not job.finished and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        filename = token.attributes.get("filename") or ""
        return Response(job.pipe_output or b"", media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    return Starlette(routes=[
        WebSocketRoute("/api/current", rpc),
        *(WebSocketRoute(f"/api/{version}", rpc) for version in API_VERSIONS),
        Route("/api/versions", versions, methods=["GET"]),
        Route("/api/boot_id", boot_id, methods=["GET"]),
        Route("/_upload", upload, methods=["POST", "PUT"]),
        Route("/_download/{job_id:int}", download, methods=["GET"]),
    ])


async def _pump(websocket: WebSocket, outbox: asyncio.Queue) -> None:
    while (text := await outbox.get()) is not None:
        try:
            await websocket.send_text(text)
        except Exception:  # noqa: BLE001 - the peer went away; the reader will see it
            return


def _credentials(request: Request) -> tuple[str, Any] | Response | None:
    """restful.py `parse_credentials`."""
    header = request.headers.get("authorization")
    if header is None:
        token = request.query_params.get("auth_token")
        return ("TOKEN", token) if token else None
    if header.startswith("Token "):
        return ("TOKEN", header.split(" ", 1)[1])
    if header.startswith("Basic "):
        try:
            username, password = base64.b64decode(header[6:]).decode().split(":", 1)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return Response(status_code=400)
        return ("LOGIN_PASSWORD", (username, password))
    if header.startswith("Bearer "):
        return ("API_KEY", header.split(" ", 1)[1])
    return None


def _authenticate(server: NodeServer, kind: str, value: Any,
                  origin: str | None = None) -> str | Response:
    """The username the credentials stand for, or the refusal (restful.py `authenticate`)."""
    if kind == "TOKEN":
        token = server.tokens.take(value, origin)
        if token is None:
            return PlainTextResponse("Invalid token", 403)
        return token.username
    if kind == "API_KEY":
        with server.node.lock:
            username = server.node.api_keys.get(value)
        if username is None:
            return PlainTextResponse("Invalid API key", 401)
        return username
    # The fake image has an API key but no password anybody knows.
    return PlainTextResponse("Bad username or password", 401)


def _run_upload(server: NodeServer, data: dict, username: str, content: bytes) -> Response:
    method, params = data["method"], data.get("params") or []
    try:
        with server.node.lock:
            if method not in node_methods():
                raise CallError(f"Method {method!r} not found", ENOMETHOD)
            job = server.node.call(method, list(params),
                                   CallContext(username=username, pipe_input=content))
    except MethodNotFound as exc:
        return PlainTextResponse(_as_text(exc), 422)
    except CallError as exc:
        return PlainTextResponse(_as_text(exc), 422 if exc.errno == ENOMETHOD else 412)
    except Exception as exc:  # noqa: BLE001 - file_app.py answers 500 with str(e)
        if not isinstance(exc, RpcError):
            log.exception("fake TrueNAS: upload to %s failed", method)
        return PlainTextResponse(_as_text(exc), 500)
    if not isinstance(job, Job):
        return PlainTextResponse(f"{method} is not a job", 500)
    return Response(ejson.dumps({"job_id": job.id}), media_type="application/json")


def _as_text(exc: Exception) -> str:
    """str() of the middleware exception: `[ERRNAME] message` for a CallError."""
    if isinstance(exc, CallError):
        return f"[{exc.data()['errname']}] {exc.message}"
    if isinstance(exc, RpcError):
        return str(exc.data().get("reason", exc))
    return str(exc)
