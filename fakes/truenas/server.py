"""The listeners of one fake TrueNAS node: WSS on 443 and plain HTTP/WS on 80.

Routes (middleware 25.10 `main.py` and `apps/file_app.py`; truenas-api.md §1, §4
Files, §8):
- `/api/current` and `/api/v25.10.2`: JSON-RPC 2.0 over WebSocket (`rpc.py`);
- `GET /api/versions`: the versions this node serves (only `v25.10.2`: a real
  25.10.2 also serves the 25.04.x and older 25.10.x shapes, which the fake does
  not, so it does not list them);
- `POST /_upload`: multipart, first part `data` = `{"method", "params"}`, then one
  `file` part; answers `{"job_id": N}`. The status codes follow `file_app.py`:
  405 when the parts are missing or out of order, 400 for bad JSON, 422 without
  `method` or for an unknown method, 401 without or with bad credentials, 403 for
  an invalid token, 412 for a CallError, 500 for anything else. Only one file part
  is taken (middleware takes up to 5; `filesystem.put` needs one);
- `GET /_download/{job_id}?auth_token=…`: the job's output once it has finished
  (middleware streams it while the job runs; the bytes are the same).

nginx on a real node serves the same on 80 and 443. Over 80 the transport is not
secure, which is what makes `auth.login_ex` revoke an API key sent there.
`/_upload` with `Bearer <key>` over 80 does not revoke it: `restful.py`
authenticates REST-style credentials without that check.

Threading: both listeners run on one asyncio loop on the node's own thread. The
loop never takes the world's lock: every model call goes to a worker thread, and
job/event listeners only enqueue text with `call_soon_threadsafe`. So the server
can be stopped from a hook that holds the world's lock: `stop()` asks the loop to
close the listening sockets and waits for that (a few ms) but never joins the
thread, whose last step (executor shutdown) may wait for a worker blocked on the
lock. `join()` is for callers that do not hold the lock.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

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
STANDARD_PORTS = {"https": 443, "http": 80}
DOWNLOAD_WAIT_SECONDS = 120.0      # wall time a /_download waits for its job to end


class NodeServer:
    """Binds at once (so a port clash fails in the caller), serves on its own thread."""

    def __init__(self, node: Any, cert_dir: Path, ports: dict[str, int] | None = None) -> None:
        self.node = node
        self.cert_dir = cert_dir
        self.tokens = TokenStore()
        self.cert: ServerCert | None = None
        self.error: BaseException | None = None
        wanted = dict(ports or STANDARD_PORTS)
        self._sockets: dict[str, socket.socket] = {}
        try:
            for scheme in ("https", "http"):
                self._sockets[scheme] = _listen(node.address, wanted[scheme])
        except BaseException:
            self._close_sockets()
            raise
        self.ports = {scheme: sock.getsockname()[1] for scheme, sock in self._sockets.items()}
        self.app = build_app(self)
        self._state = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[uvicorn.Server] = []
        self._stopping = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"truenas-{node.address}")

    @property
    def address(self) -> str:
        return self.node.address

    def url(self, scheme: str = "wss", path: str = "/api/current") -> str:
        port = self.ports["https" if scheme in ("wss", "https") else "http"]
        default = {"wss": 443, "https": 443, "ws": 80, "http": 80}[scheme]
        host = self.address if port == default else f"{self.address}:{port}"
        return f"{scheme}://{host}{path}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    # --- lifecycle ---------------------------------------------------------------
    def start(self) -> NodeServer:
        """Returns at once; connections made before the loop runs wait in the backlog."""
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """True once both listeners serve (the certificate exists by then)."""
        return self._ready.wait(timeout) and self.error is None and not self._stopping

    def stop(self, timeout: float = 2.0) -> None:
        """Stop answering: new connections are refused and open ones are closed."""
        with self._state:
            if self._stopping:
                return
            self._stopping = True
            loop = self._loop
        if loop is None:          # still making its certificate: nothing serves yet
            self._close_sockets()
            return
        closed = threading.Event()

        def close_now() -> None:
            try:
                for server in self._servers:
                    server.should_exit = server.force_exit = True
                    for listener in getattr(server, "servers", []):
                        listener.close()
                    for connection in list(server.server_state.connections):
                        # a client that already sent its close frame makes this raise
                        # (InvalidState); the other connections must still close
                        with contextlib.suppress(Exception):
                            connection.shutdown()
            finally:
                self._close_sockets()
                closed.set()

        try:
            loop.call_soon_threadsafe(close_now)
        except RuntimeError:      # the loop has already finished
            self._close_sockets()
            return
        if not closed.wait(timeout):
            log.warning("fake TrueNAS %s: listeners did not close in %.1f s",
                        self.address, timeout)

    def join(self, timeout: float = 10.0) -> None:
        """Wait for the thread to end. Never call this while holding the world's lock."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    # --- the node's thread -------------------------------------------------------
    def _run(self) -> None:
        try:
            self.cert = node_certificate(self.cert_dir)
            asyncio.run(self._serve(self.cert))
        except BaseException as exc:  # noqa: BLE001 - reported, and the thread must end
            if not self._stopping:
                self.error = exc
                log.exception("fake TrueNAS %s: server failed", self.address)
        finally:
            self._close_sockets()
            self._ready.set()

    async def _serve(self, cert: ServerCert) -> None:
        with self._state:
            if self._stopping:
                return
            self._loop = asyncio.get_running_loop()
        common: dict[str, Any] = {
            "log_level": "warning", "log_config": None, "access_log": False,
            "lifespan": "off", "ws": "websockets-sansio", "timeout_graceful_shutdown": 1,
            # Clients on loopback come from 127.0.0.1, which uvicorn trusts for
            # X-Forwarded-Proto by default: a plain ws:// client could then claim TLS
            # and escape the API key revocation. nginx answers as "nginx".
            "proxy_headers": False, "server_header": False, "headers": [("Server", "nginx")],
        }
        self._servers = [
            uvicorn.Server(uvicorn.Config(self.app, ssl_certfile=str(cert.cert_path),
                                          ssl_keyfile=str(cert.key_path), **common)),
            uvicorn.Server(uvicorn.Config(self.app, **common)),
        ]
        tasks = [asyncio.create_task(server.serve(sockets=[self._sockets[scheme]]))
                 for server, scheme in zip(self._servers, ("https", "http"), strict=True)]
        while not all(s.started for s in self._servers) and not any(t.done() for t in tasks):
            await asyncio.sleep(0.005)
        self._ready.set()
        await asyncio.gather(*tasks)

    def _close_sockets(self) -> None:
        for sock in self._sockets.values():
            with contextlib.suppress(OSError):
                sock.close()


def _listen(address: str, port: int) -> socket.socket:
    # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (serving.py).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


# --- the app ---------------------------------------------------------------------
def build_app(server: NodeServer) -> Starlette:
    node = server.node

    async def rpc(websocket: WebSocket) -> None:
        await websocket.accept()
        loop = asyncio.get_running_loop()
        outbox: asyncio.Queue[str | None] = asyncio.Queue()

        def send_text(text: str) -> None:
            with contextlib.suppress(RuntimeError):   # the loop is gone: nobody to tell
                loop.call_soon_threadsafe(outbox.put_nowait, text)

        session = RpcSession(node, server.tokens, send_text,
                             secure=websocket.url.scheme == "wss")
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
        return JSONResponse([API_VERSION])

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
        username = await asyncio.to_thread(_authenticate, server, *credentials)
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
        WebSocketRoute(f"/api/{API_VERSION}", rpc),
        Route("/api/versions", versions, methods=["GET"]),
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


def _authenticate(server: NodeServer, kind: str, value: Any) -> str | Response:
    """The username the credentials stand for, or the refusal (restful.py `authenticate`)."""
    if kind == "TOKEN":
        token = server.tokens.take(value)
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
