"""The `cockroachdb/cockroach` image (v25.1.x), as the fake runs it.

Facts followed (reference/anchors-and-vsekai.md §4 "External facts": SQL on 26257, HTTP on
8080; `/health?ready=1` gives 200 when ready and 503 otherwise, plain `/health`
checks liveness only; CockroachDB docs for `cockroach start-single-node`):
- the command is `start-single-node` (or `start`) with flags; `--listen-addr` and
  `--http-addr` (host:port) choose the SQL and HTTP ports (defaults 26257, 8080);
- without `--insecure` the node needs certificates in `--certs-dir` (default
  `${HOME}/.cockroach-certs`, `/cockroach/cockroach-certs` in the image) and exits
  when it finds none [message paraphrased from memory];
- the store is `--store` (default `cockroach-data` in the working directory,
  `/cockroach/cockroach-data` in the image).
Chosen, not known: the node is ready READY_SECONDS virtual seconds after it starts
(503 on `/health?ready=1` before); the JSON bodies are the fake's own shape.
What is not modelled: the fake speaks no pgwire. Port 26257 accepts a TCP
connection once the node is ready and closes it when the client sends anything
(before that it accepts and closes at once); another container's model-level
`ask("<host>:26257", ...)` gets b"" when ready and None before. There are no
databases, users or SQL. The store holds only the fake's marker file
(`fake-cluster.json`, a cluster id kept across restarts), so a dataset rollback or
a restart shows as the same or another cluster id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from typing import Any

from fakes.truenas.apps.http_service import HttpRequest, HttpResponse, http_service
from fakes.truenas.apps.images import ContainerFailed, ImageBehaviour, RunningContainer
from fakes.truenas.server import StreamService

READY_SECONDS = 5.0
SQL_PORT = 26257
HTTP_PORT = 8080
STORE = "/cockroach/cockroach-data"
CERTS_DIR = "/cockroach/cockroach-certs"
MARKER = "fake-cluster.json"
COMMANDS = ("start-single-node", "start")


def _flag(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def _port(addr: str | None, default: int) -> int:
    if not addr:
        return default
    _, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ContainerFailed(f"ERROR: invalid address {addr!r}: missing port in address")
    return int(port)


class Cockroach(ImageBehaviour):
    def start(self, container: RunningContainer) -> dict[int, Any]:
        args = list(container.command)
        if not args or args[0] not in COMMANDS:
            shown = args[0] if args else ""
            raise ContainerFailed(f'ERROR: unknown command "{shown}" for "cockroach"')
        if "--insecure" not in args:
            certs = _flag(args, "--certs-dir") or CERTS_DIR
            if container.read_file(f"{certs}/node.crt") is None:
                raise ContainerFailed(
                    "ERROR: cannot load certificates.\nCheck your certificate settings, "
                    "set --certs-dir, or use --insecure for insecure clusters.")
        sql_port = _port(_flag(args, "--listen-addr"), SQL_PORT)
        http_port = _port(_flag(args, "--http-addr"), HTTP_PORT)
        store = _flag(args, "--store") or STORE
        if store.startswith("path="):
            store = store[len("path="):].split(",", 1)[0]
        container.state.update(started=container.now(), cluster=self._cluster(container,
                                                                                store))

        async def console(request: HttpRequest) -> HttpResponse:
            return self._http(container, request)

        async def sql(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if self.ready(container):
                with contextlib.suppress(ConnectionError, TimeoutError):
                    await reader.read(1)       # no pgwire: hang up on the first message
            writer.close()

        return {sql_port: StreamService(sql), http_port: http_service(console)}

    def _cluster(self, container: RunningContainer, store: str) -> str:
        """The cluster id in the store (made on first start), or a fresh one when the
        store is not on a mount (it dies with the container)."""
        path = f"{store}/{MARKER}"
        raw = container.read_file(path)
        if raw:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                return str(json.loads(raw)["cluster_id"])
        cluster = secrets.token_hex(16)
        host = container.host_path(path)
        if host is not None:
            with contextlib.suppress(Exception):
                container.write_host_file(host, json.dumps({"cluster_id": cluster}).encode())
        return cluster

    def ready(self, container: RunningContainer) -> bool:
        return container.running and container.now() - container.state["started"] >= READY_SECONDS

    def healthy(self, container: RunningContainer) -> bool:
        return self.ready(container)      # the healthcheck curls /health?ready=1

    def answer(self, container: RunningContainer, port: int, request: bytes) -> bytes | None:
        if port == HTTP_PORT:
            return b""
        return b"" if self.ready(container) else None

    def _http(self, container: RunningContainer, request: HttpRequest) -> HttpResponse:
        if request.path == "/health":
            ready = request.query.get("ready", ["false"])[-1].lower() in ("1", "true")
            if ready and not self.ready(container):
                return HttpResponse.json(503, {"error": "node is not ready", "code": 14})
            return HttpResponse.json(200, {"nodeId": 1,
                                           "clusterId": container.state["cluster"]})
        if request.path == "/":
            return HttpResponse(200, b"<!DOCTYPE html><title>Cockroach Console</title>\n",
                                {"Content-Type": "text/html; charset=utf-8"})
        return HttpResponse(404, b"404 page not found\n",
                            {"Content-Type": "text/plain; charset=utf-8"})


BEHAVIOUR = Cockroach()
