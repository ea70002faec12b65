"""The `redis` image on the fake node: a real `redis-server` (Debian's package, which
./dev installs), one child process per container (process.py says how).

Contract of the official image (docker-library/redis @e9204996, 7.4-rc/debian, the
newest 7.4 the stored snapshot holds): Dockerfile lines 143-150 VOLUME /data, WORKDIR
/data, ENTRYPOINT docker-entrypoint.sh, CMD redis-server; docker-entrypoint.sh lines
6-8 put `redis-server` before a first argument that is an option or a .conf file;
Dockerfile lines 88-90 build Redis with protected-mode off; with no config file
Redis's defaults apply: save points 3600 1 / 300 100 / 60 10000, `dump.rdb` in the
working directory, written on SAVE/BGSAVE, at the save points and on SIGTERM (what
`docker stop` sends).
What the fake changes, for its network and files only: `--port` (a port of this
machine, which the container's 6379 is spliced to), `--bind` (the node's address),
`--dir` (the container's /data: its mount mirrored to the app's dataset, so the RDB
file on the pool, in its snapshots and after a rollback is the real one Redis wrote
and reads back at start) and `--protected-mode no` (the image's default).
Differences the fake admits: Debian bookworm's redis-server is 7.0.x while the chart
pins 7.4.2 (RDB version 10, not 12: a 7.4 server reads it, not the other way round).
Without redis-server a redis container fails to start with REDIS_INSTALL_HINT.
The healthcheck (`redis-cli ping`) is a real PING; another container's in-model
`ask` is sent to the real server and its reply returned.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Any

from fakes.truenas.apps.images import ContainerFailed, ImageBehaviour, RunningContainer
from fakes.truenas.apps.process import (
    ChildProcess,
    MirrorThread,
    Mount,
    MountMirror,
    executable,
    free_port,
    splice_service,
    wait_listening,
)

PORT = 6379
DATA_DIR = "/data"
START_SECONDS = 10.0
REDIS_INSTALL_HINT = ("redis-server is not installed: apt-get install redis-server (Debian/"
                      "Ubuntu; ./dev installs it when it can)")


def redis_unavailable() -> str | None:
    """Why the fake node cannot run Redis (with how to install it), or None."""
    return None if executable("redis-server") else REDIS_INSTALL_HINT


def _exchange(address: tuple[str, int], request: bytes, timeout: float = 2.0) -> bytes | None:
    """Send `request` (RESP arrays or inline commands) and read one reply per command
    (None: refused). Reading stops at the last reply, never on a pause."""
    wanted = _commands(request)
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(request)
            data = b""
            while _replies(data) < wanted:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data
    except OSError:
        return None


def _commands(request: bytes) -> int:
    """How many commands a request holds (RESP arrays of bulk strings, or lines)."""
    count, at = 0, 0
    while at < len(request):
        if request[at:at + 1] == b"*":
            end = request.index(b"\r\n", at)
            items = int(request[at + 1:end])
            at = end + 2
            for _ in range(items):
                end = request.index(b"\r\n", at)
                size = int(request[at + 1:end])
                at = end + 2 + size + 2
        else:
            end = request.find(b"\n", at)
            line = request[at:len(request) if end < 0 else end].strip()
            at = len(request) if end < 0 else end + 1
            if not line:
                continue
        count += 1
    return count


def _replies(data: bytes) -> int:
    """How many complete RESP replies `data` starts with."""
    count, at = 0, 0
    while True:
        end = _reply_end(data, at)
        if end is None:
            return count
        count, at = count + 1, end


def _reply_end(data: bytes, at: int) -> int | None:
    line_end = data.find(b"\r\n", at)
    if line_end < 0:
        return None
    kind, value = data[at:at + 1], data[at + 1:line_end]
    after = line_end + 2
    if kind == b"$":
        size = int(value)
        return after if size < 0 else (after + size + 2 if len(data) >= after + size + 2
                                       else None)
    if kind == b"*":
        for _ in range(max(int(value), 0)):
            nested = _reply_end(data, after)
            if nested is None:
                return None
            after = nested
        return after
    return after                                 # +, -, :, and RESP3's simple types


class Redis(ImageBehaviour):
    def start(self, container: RunningContainer) -> dict[int, Any]:
        binary = executable("redis-server")
        if binary is None:
            raise ContainerFailed(REDIS_INSTALL_HINT, exit_code=127)
        argv = (list(container.entrypoint or []) + list(container.command)) or ["redis-server"]
        if argv[0].rsplit("/", 1)[-1] == "docker-entrypoint.sh":
            argv = argv[1:] or ["redis-server"]
        if argv[0].startswith("-") or argv[0].endswith(".conf"):
            argv = ["redis-server", *argv]          # docker-entrypoint.sh prepends it
        if argv[0].rsplit("/", 1)[-1] != "redis-server":
            raise ContainerFailed(f"the fake node runs the redis image's redis-server only, "
                                  f"not {argv[0]!r}")
        work = Path(container.work_dir)
        shutil.rmtree(work, ignore_errors=True)
        root, private = work / "root", work / "private"
        private.mkdir(parents=True)
        (root / DATA_DIR.lstrip("/")).mkdir(parents=True)
        mirror = MountMirror(
            root, [Mount(t, s, t in container.read_only) for t, s in container.mounts.items()],
            container.list_host_files, container.read_host_file, container.write_host_file,
            container.node_lock)
        mirror.sync()
        rest = [str(root / a.lstrip("/")) if a.endswith(".conf") and a.startswith("/") else a
                for a in argv[1:]]
        port = free_port(container.node_address)
        command = [binary, *rest, "--port", str(port), "--bind", container.node_address,
                   "--dir", str(root / DATA_DIR.lstrip("/")), "--protected-mode", "no",
                   "--daemonize", "no"]
        child = ChildProcess(command, private / "redis.log", {"PATH": "/usr/bin:/bin"},
                             root / DATA_DIR.lstrip("/")).start()
        address = (container.node_address, port)
        if not wait_listening(address, lambda: child.exit_code is None, START_SECONDS):
            code = child.stop(1.0)
            raise ContainerFailed(child.log_tail() or "redis-server exited",
                                  exit_code=code if code else 1)

        def tick() -> bool:
            if not container.state.get("redis"):
                return False
            changed = mirror.sync()
            code = child.exit_code
            if code is not None and container.state.pop("redis", None):
                mirror.sync()
                container.exit_async(code, child.log_tail())
            return changed

        thread = MirrorThread(tick, f"redis-{container.name}").start().poke_on_exit(child)
        container.state["on_pool_write"] = (mirror, mirror.sync)
        container.state["redis"] = {"child": child, "thread": thread, "mirror": mirror,
                                    "address": address}
        return {PORT: splice_service(lambda: address)}

    def healthy(self, container: RunningContainer) -> bool:
        running = container.state.get("redis")
        return bool(running) and _exchange(running["address"], b"PING\r\n") == b"+PONG\r\n"

    def answer(self, container: RunningContainer, port: int, request: bytes) -> bytes | None:
        running = container.state.get("redis")
        if port != PORT or not running:
            return None
        return _exchange(running["address"], request)

    def stop(self, container: RunningContainer) -> None:
        running = container.state.pop("redis", None)
        if not running:
            return
        running["thread"].stop(join=False)
        running["child"].stop()          # SIGTERM: Redis saves its dump, then exits
        running["mirror"].sync()         # ... and that dump reaches the pool


BEHAVIOUR = Redis()
