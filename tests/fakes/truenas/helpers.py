"""Test helpers the fake TrueNAS app tests share: host files a container reads, an
asyncio loop on its own thread serving stream services (like the node's), and an HTTP
backend that echoes what reached it."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class HostFiles:
    """The node's files under /mnt (what read_host_file reads)."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def read(self, path: str) -> bytes | None:
        with self._lock:
            return self._files.get(path)

    def write(self, path: str, data: bytes | str) -> None:
        with self._lock:
            self._files[path] = data.encode() if isinstance(data, str) else data



class LoopThread:
    """An asyncio loop on its own thread serving the instance's services, like the node's
    network does; close() stops every listener, connection and task it started."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[asyncio.AbstractServer] = []
        self.writers: set[asyncio.StreamWriter] = set()

    def call(self, coroutine: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def serve(self, services: dict[int, Any]) -> dict[int, int]:
        async def start() -> dict[int, int]:
            ports = {}
            for port, service in services.items():
                async def handle(reader, writer, service=service):
                    self.writers.add(writer)
                    try:
                        await service.handler(reader, writer)
                    finally:
                        self.writers.discard(writer)
                        writer.close()

                server = await asyncio.start_server(handle, "127.0.0.1", 0,
                                                    ssl=service.ssl_context)
                self.servers.append(server)
                ports[port] = server.sockets[0].getsockname()[1]
            return ports

        return self.call(start())

    def close(self) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()
            for writer in list(self.writers):
                writer.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


class EchoBackend:
    """A backend (the `uro` service) that answers with what it received, as JSON."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def _echo(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                payload = json.dumps({"method": self.command, "path": self.path,
                                      "headers": [[k.lower(), v] for k, v in self.headers.items()],
                                      "body": body}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("X-Backend", "uro")
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _echo

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
