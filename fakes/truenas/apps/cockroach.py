"""The `cockroachdb/cockroach` image (v25.1.x), as the fake runs it.

Contract, from the image's own start script, cockroachdb/cockroach
build/deploy/cockroach.sh @02dbd5658dff (the image's ENTRYPOINT, build/deploy/Dockerfile
@0116efa235b0, WORKDIR /cockroach):
- `start-single-node`: a `--listen-addr` whose host is not empty, `127.0.0.1` or
  `localhost`, or whose port is not 26257, makes the script print `error: hostname of
  listen_addr must be "127.0.0.1" or "localhost"` (or the port's message) and exit 1
  (parse_command_line; upstream issue cockroachdb/cockroach#84166). A host of
  127.0.0.1/localhost listens inside the container only: other containers cannot reach
  SQL then;
- on an EMPTY `cockroach-data` (run_single_node: `ls -A cockroach-data`) the script
  initialises: it creates `COCKROACH_DATABASE` (default `defaultdb`) when it does not
  exist; on a store that already holds data it just execs the node, and
  COCKROACH_DATABASE is not looked at;
- any other mode runs the binary with it (`exec $cockroach_entrypoint "$mode" "$@"`):
  `sql --host=<h>:<p> --execute=<statement>` is a one-shot client that exits 0 when the
  statement ran and 1 when it cannot connect.
CockroachDB docs: SQL on 26257, HTTP on 8080 (`--http-addr`), `/health?ready=1` 200 when
ready and 503 before; without `--insecure` the node needs certificates in `--certs-dir`.
Chosen, not known: the node is ready READY_SECONDS virtual seconds after it starts.
What is not modelled: pgwire. The fake store is one JSON file (`fake-cluster.json`:
cluster id and databases) in the store directory; inside the model another container
asks port 26257 with the fake's own lines (`answer`): b"" (does it accept?),
b"DATABASE? <name>" -> b"yes"/b"no", b"CREATE DATABASE IF NOT EXISTS <name>" -> b"OK".
`sql` understands that one statement only (and fails naming any other).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
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
LOCAL_HOSTS = ("", "127.0.0.1", "localhost")
SYSTEM_DATABASES = ("defaultdb", "postgres", "system")
CREATE = re.compile(r"^\s*CREATE DATABASE IF NOT EXISTS\s+([a-z_][a-z0-9_]*)\s*;?\s*$",
                    re.IGNORECASE)


def _flag(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        for name in names:
            if arg.startswith(f"{name}="):
                return arg.split("=", 1)[1]
            if arg == name and i + 1 < len(args):
                return args[i + 1]
    return None


def _port(addr: str | None, default: int) -> int:
    if not addr:
        return default
    _, sep, port = addr.rpartition(":")
    if not sep or not port.isdecimal():
        return default if not sep else _invalid(addr)
    return int(port)


def _invalid(addr: str) -> int:
    raise ContainerFailed(f"ERROR: invalid address {addr!r}: missing port in address")


def check_listen_addr(listen: str | None) -> None:
    """cockroach.sh parse_command_line for start-single-node."""
    if not listen:
        return
    host = listen.split(":", 1)[0]
    port = listen.rsplit(":", 1)[1] if ":" in listen else ""
    if host and host not in ("127.0.0.1", "localhost"):
        raise ContainerFailed('error: hostname of listen_addr must be "127.0.0.1" or '
                              '"localhost"')
    if port and port != str(SQL_PORT):
        raise ContainerFailed(f'error: port of listen_addr must be "{SQL_PORT}"')


class Cockroach(ImageBehaviour):
    def start(self, container: RunningContainer) -> dict[int, Any]:
        args = list(container.command)
        mode = args[0] if args else ""
        if mode == "sql":
            return self._sql(container, args[1:])
        if mode not in ("start-single-node", "start"):
            raise ContainerFailed(f'ERROR: unknown command "{mode}" for "cockroach"')
        listen = _flag(args, "--listen-addr")
        if mode == "start-single-node":
            check_listen_addr(listen)
        if "--insecure" not in args:
            certs = _flag(args, "--certs-dir") or CERTS_DIR
            if container.read_file(f"{certs}/node.crt") is None:
                raise ContainerFailed(
                    "ERROR: cannot load certificates.\nCheck your certificate settings, "
                    "set --certs-dir, or use --insecure for insecure clusters.")
        http_port = _port(_flag(args, "--http-addr"), HTTP_PORT)
        store = _flag(args, "--store") or STORE
        if store.startswith("path="):
            store = store[len("path="):].split(",", 1)[0]
        local_only = listen is not None and listen.split(":", 1)[0] in LOCAL_HOSTS[1:]
        database = (container.environment.get("COCKROACH_DATABASE") or "defaultdb"
                    if mode == "start-single-node" else None)
        container.state.update(started=container.now(), store=store, local_only=local_only)
        container.state["cluster"] = self._open_store(container, store, database)

        async def console(request: HttpRequest) -> HttpResponse:
            return self._http(container, request)

        async def sql(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if self.ready(container):
                with contextlib.suppress(ConnectionError, TimeoutError):
                    await reader.read(1)       # no pgwire: hang up on the first message
            writer.close()

        services: dict[int, Any] = {http_port: http_service(console)}
        if not local_only:
            services[SQL_PORT] = StreamService(sql)
        return services

    # --- the store -----------------------------------------------------------------
    def _open_store(self, container: RunningContainer, store: str,
                    database: str | None) -> dict:
        """The store's content; on an empty store, cockroach.sh's initialisation."""
        host = container.host_path(f"{store}/{MARKER}")
        listed = container.list_host_files(host.rsplit("/", 1)[0]) if host else None
        raw = container.read_file(f"{store}/{MARKER}")
        if raw:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                loaded = json.loads(raw)
                return {"cluster_id": str(loaded["cluster_id"]),
                        "databases": sorted(set(loaded["databases"]))}
        cluster = {"cluster_id": secrets.token_hex(16), "databases": list(SYSTEM_DATABASES)}
        if not listed and database is not None:
            # run_single_node on an empty cockroach-data: create_defaultdb
            cluster["databases"] = sorted({*SYSTEM_DATABASES, database})
        self._save(container, cluster)
        return cluster

    def _save(self, container: RunningContainer, cluster: dict) -> None:
        host = container.host_path(f"{container.state.get('store', STORE)}/{MARKER}")
        if host is not None:
            with contextlib.suppress(Exception):
                container.write_host_file(host, json.dumps(cluster).encode())

    # --- `cockroach sql`, the one-shot client -------------------------------------------
    def _sql(self, container: RunningContainer, args: list[str]) -> dict[int, Any]:
        host = _flag(args, "--host") or "localhost"
        statement = _flag(args, "--execute", "-e")
        if statement is None:
            raise ContainerFailed("the fake cockroach sql runs --execute statements only")
        if CREATE.match(statement) is None:
            raise ContainerFailed(f"the fake cockroach sql knows only CREATE DATABASE IF NOT "
                                  f"EXISTS <name>, not {statement!r}")
        dial = host if ":" in host else f"{host}:{SQL_PORT}"

        def run() -> None:
            reply = container.ask(dial, statement.encode())
            if reply == b"OK":
                container.exit(0, "CREATE DATABASE")
            else:
                container.exit(1, f"ERROR: cannot dial server.\nIs the server running?\n"
                                  f"dial tcp {dial}: connect: connection refused")

        container.call_later(0.5, run)
        return {}

    def ready(self, container: RunningContainer) -> bool:
        started = container.state.get("started")
        return (container.running and started is not None
                and container.now() - started >= READY_SECONDS)

    def healthy(self, container: RunningContainer) -> bool:
        return self.ready(container)      # the healthcheck curls /health?ready=1

    def answer(self, container: RunningContainer, port: int, request: bytes) -> bytes | None:
        if port == HTTP_PORT:
            return b""
        if port != SQL_PORT or container.state.get("local_only") or not self.ready(container):
            return None                   # nothing listens there for another container
        cluster = container.state["cluster"]
        text = request.decode(errors="replace")
        if text.startswith("DATABASE? "):
            return b"yes" if text[len("DATABASE? "):].strip() in cluster["databases"] else b"no"
        created = CREATE.match(text)
        if created is not None:
            cluster["databases"] = sorted({*cluster["databases"], created.group(1)})
            self._save(container, cluster)
            return b"OK"
        return b""

    def _http(self, container: RunningContainer, request: HttpRequest) -> HttpResponse:
        if request.path == "/health":
            ready = request.query.get("ready", ["false"])[-1].lower() in ("1", "true")
            if ready and not self.ready(container):
                return HttpResponse.json(503, {"error": "node is not ready", "code": 14})
            return HttpResponse.json(200, {"nodeId": 1,
                                           "clusterId": container.state["cluster"]["cluster_id"]})
        if request.path == "/":
            return HttpResponse(200, b"<!DOCTYPE html><title>Cockroach Console</title>\n",
                                {"Content-Type": "text/html; charset=utf-8"})
        return HttpResponse(404, b"404 page not found\n",
                            {"Content-Type": "text/plain; charset=utf-8"})


BEHAVIOUR = Cockroach()
