"""What the fake app runtime runs for the `caddy` image: Caddy 2.8.4, emulated.

`caddy run --config <file> [--watch]` (the ingress chart's command): the config is read
from the host file behind the container path (through the container's bind mounts),
judged and provisioned like Caddy does (caddy_config.py), and served as stream services
on the node's loop: HTTP/1.1 (caddy_http.py, caddy_routes.py), TLS where the config asks
for it (caddy_tls.py).

Lifecycle, following Caddy v2.8.4 cmd/commandfuncs.go cmdRun and cmd/main.go:
- start: a config that is missing, not JSON, or fails to load makes `caddy run` exit, so
  `load()` raises CaddyConfigError and the container crashes with that reason (the
  message paraphrases Caddy's);
- `--watch` (watchConfigFile): Caddy polls the file every second and compares its bytes;
  a change is loaded as a new config (load_files re-read then), a load that fails is
  logged and the old config keeps serving. Only a change of the config file's bytes
  reloads: new certificate files alone are not picked up. If the file cannot be read or
  is not valid JSON, the watcher logs it and stops watching for good (Caddy keeps serving
  the config it has).
  The fake checks on each new connection and before each further request on a kept-alive
  one, at most once per `check_interval` (50 ms): nothing can tell it apart from a
  poller, except that a change made and undone between two connections goes unseen.
- reload without downtime: the listeners stay; a new connection gets the new config
  (TLS contexts included) at once; an idle kept-alive connection of the old config is
  closed after its response, as Caddy's graceful shutdown of the old server does.
- ports: the services are made for the container ports the runtime publishes (or, if it
  gives none, the ports the config listens on). A published port the config does not
  listen on behaves like the runtime's stand-in for a port nothing listens on
  (images.accept_and_close: accepted, then closed). So a reload that adds a listener on
  a published port (the https server once the first certificate exists) serves at
  once; a listener on a port that is not published is unreachable, as in Docker.
- health: `caddy run` has no health endpoint of its own. A Compose healthcheck that
  fetches a URL with wget or curl (the ingress chart's `wget .../healthz`) is answered
  by the loaded config itself, in memory (`probe`); any other check passes while a
  config is loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import h11

from fakes.truenas.apps.caddy_config import (
    EMPTY,
    CaddyConfigError,
    Config,
    NotEmulated,
    Server,
    decode_json,
    parse_config,
)
from fakes.truenas.apps.caddy_http import HANDSHAKE_TIMEOUT, PlainStream, TlsStream, go_clean
from fakes.truenas.apps.caddy_routes import serve_connection
from fakes.truenas.apps.caddy_tls import check_key_pair, server_context
from fakes.truenas.apps.images import ContainerFailed, ImageBehaviour, RunningContainer
from fakes.truenas.server import StreamService

log = logging.getLogger(__name__)

CHECK_INTERVAL = 0.05          # wall seconds between two reads of the watched config

ReadHostFile = Callable[[str], bytes | None]
ResolveUpstream = Callable[[str], tuple[str, int] | None]

__all__ = ["BEHAVIOUR", "CaddyCommand", "CaddyConfigError", "CaddyImage", "CaddyInstance",
           "NotEmulated", "host_path", "parse_command"]


# ---------------------------------------------------------------------------------------
# The command line


@dataclass(frozen=True)
class CaddyCommand:
    config_path: str | None
    watch: bool


# the image's default CMD (Dockerfile of caddy:2.8.4): the Caddyfile, adapted
DEFAULT_COMMAND = ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]

_RUN_FLAGS_WITH_VALUE = {"--config": "config", "-c": "config", "--adapter": "adapter",
                         "-a": "adapter", "--envfile": "envfile", "--pidfile": "pidfile",
                         "--pingback": "pingback"}
_RUN_BOOL_FLAGS = {"--watch": "watch", "-w": "watch", "--resume": "resume", "-r": "resume",
                   "--environ": "environ", "-e": "environ"}


def parse_command(command: list[str] | None) -> CaddyCommand:
    """`caddy run` flags (cmd/commands.go). Raises CaddyConfigError the way the process
    would exit (unknown flag), or NotEmulated for what the fake does not do."""
    args = list(command or DEFAULT_COMMAND)
    if args and args[0].rsplit("/", 1)[-1] == "caddy":
        args = args[1:]
    if not args or args[0] != "run":
        raise NotEmulated(f"the fake caddy image emulates only `caddy run`, not {args[:1]}")
    values: dict[str, str] = {}
    flags: set[str] = set()
    rest = args[1:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        name, eq, inline = arg.partition("=")
        if name in _RUN_FLAGS_WITH_VALUE:
            if eq:
                value = inline
            elif i + 1 < len(rest):
                i += 1
                value = rest[i]
            else:
                raise CaddyConfigError(f"flag needs an argument: {name}")
            values[_RUN_FLAGS_WITH_VALUE[name]] = value
        elif name in _RUN_BOOL_FLAGS:
            if eq and inline.lower() not in ("true", "false", "1", "0"):
                raise CaddyConfigError(f'invalid argument "{inline}" for "{name}" flag')
            if not eq or inline.lower() in ("true", "1"):
                flags.add(_RUN_BOOL_FLAGS[name])
        else:
            raise CaddyConfigError(f"unknown flag: {name}")
        i += 1
    adapter = values.get("adapter", "")
    config = values.get("config") or None
    if (adapter and adapter != "json") or (not adapter and config and _is_caddyfile(config)):
        raise NotEmulated("the fake Caddy reads JSON configs only (config adapter "
                          f"{adapter or 'caddyfile'!r} is not emulated)")
    if "envfile" in values or "resume" in flags:
        raise NotEmulated("the fake Caddy does not emulate --envfile or --resume")
    return CaddyCommand(config_path=config, watch="watch" in flags)


def _is_caddyfile(path: str) -> bool:
    """cmd/main.go isCaddyfile: a file named Caddyfile* or *.caddyfile, unless *.json."""
    base = path.rsplit("/", 1)[-1].lower()
    if base.endswith(".json"):
        return False
    return base.startswith("caddyfile") or base.endswith(".caddyfile")


# ---------------------------------------------------------------------------------------
# Bind mounts


def host_path(container_path: str, mounts: Mapping[str, str]) -> str | None:
    """The host file behind a container path: the longest mount that contains it. None
    when no mount does (the image's own files, which the fake does not have)."""
    path = go_clean(container_path)
    best: tuple[str, str] | None = None
    for inside, outside in mounts.items():
        prefix = go_clean(inside)
        inside_mount = path == prefix or prefix == "/" or path.startswith(prefix + "/")
        if inside_mount and (best is None or len(prefix) > len(best[0])):
            best = (prefix, outside)
    if best is None:
        return None
    prefix, outside = best
    rest = path[len(prefix):] if prefix != "/" else path
    return outside.rstrip("/") + rest if rest else outside


# ---------------------------------------------------------------------------------------
# The instance


@dataclass(frozen=True)
class _Loaded:
    config: Config
    contexts: Mapping[int, ssl.SSLContext]      # TLS listeners' contexts, by port


class CaddyInstance:
    """One running `caddy run` process of a container."""

    def __init__(self, config_path: str | None, mounts: Mapping[str, str],
                 read_host_file: ReadHostFile, resolve_upstream: ResolveUpstream, *,
                 watch: bool = False, environment: Mapping[str, str] | None = None,
                 check_interval: float = CHECK_INTERVAL) -> None:
        self.config_path = config_path
        self.mounts = dict(mounts)
        self.environment = dict(environment or {})
        self._read_host_file = read_host_file
        self._resolve_upstream = resolve_upstream
        self._check_interval = check_interval
        self._lock = threading.Lock()           # one load/reload at a time
        self._loaded: _Loaded | None = None
        self._watch = watch
        self._watching = False
        self._last_raw: bytes | None = None
        self._next_check = 0.0
        self._pending: asyncio.Future | None = None
        self.reloads = 0
        self.last_reload_error: str | None = None

    @classmethod
    def from_command(cls, command: list[str] | None, mounts: Mapping[str, str],
                     read_host_file: ReadHostFile, resolve_upstream: ResolveUpstream, *,
                     environment: Mapping[str, str] | None = None,
                     check_interval: float = CHECK_INTERVAL) -> CaddyInstance:
        args = parse_command(command)
        return cls(args.config_path, mounts, read_host_file, resolve_upstream,
                   watch=args.watch, environment=environment, check_interval=check_interval)

    # --- what the runtime and the listeners ask -----------------------------------------

    def load(self) -> None:
        """Start: read and load the config; CaddyConfigError if `caddy run` would exit."""
        with self._lock:
            raw = b""
            if self.config_path is not None:
                raw = self._read_config()
                decode_json(raw)
            self._loaded = self._provision(raw)
            self._last_raw = raw
            self._watching = self._watch and self.config_path is not None

    def healthy(self) -> bool:
        return self._loaded is not None

    @property
    def watching(self) -> bool:
        """False once the watcher has given up (unreadable or non-JSON config file)."""
        return self._watching

    @property
    def config(self) -> Config:
        loaded = self._loaded
        return loaded.config if loaded is not None else EMPTY

    def services(self, ports: Iterable[int] | None = None) -> dict[int, StreamService]:
        """A stream service per container port (default: the ports the config listens on).
        TLS is done by the handler, so the services carry no ssl_context."""
        wanted = sorted(set(ports) if ports is not None else self.config.ports)
        return {port: StreamService(self._handler(port)) for port in wanted}

    def read_file(self, container_path: str) -> bytes | None:
        """A file as the container sees it (sync; takes the node's lock)."""
        path = host_path(container_path, self.mounts)
        return self._read_host_file(path) if path is not None else None

    def resolve_upstream(self, dial: str) -> tuple[str, int] | None:
        return self._resolve_upstream(dial)

    async def read_file_async(self, container_path: str) -> bytes | None:
        return await asyncio.to_thread(self.read_file, container_path)

    async def resolve_upstream_async(self, dial: str) -> tuple[str, int] | None:
        return await asyncio.to_thread(self._resolve_upstream, dial)

    def current_server(self, port: int) -> Server | None:
        loaded = self._loaded
        return loaded.config.servers.get(port) if loaded is not None else None

    # --- the watcher ---------------------------------------------------------------------

    def check_config(self, wait: bool = True) -> bool:
        """One step of `--watch` (sync, any thread but the loop's): True if a new config
        was loaded. `wait=False` skips the step when another thread is in it (a thread
        holding the node's lock must not wait for one that waits for that lock)."""
        if not self._lock.acquire(blocking=wait):
            return False
        try:
            if not self._watching or self.config_path is None:
                return False
            try:
                raw = self._read_config()
                decode_json(raw)
            except CaddyConfigError as exc:
                self._watching = False
                self.last_reload_error = str(exc)
                log.warning("fake Caddy watcher: unable to load latest config: %s; no longer "
                            "watching %s", exc, self.config_path)
                return False
            if raw == self._last_raw:
                return False
            self._last_raw = raw
            loaded = self._loaded
            if loaded is not None and raw == loaded.config.raw:
                return False            # caddy.Load: "config is unchanged", nothing re-read
            try:
                new = self._provision(raw)
            except CaddyConfigError as exc:
                self.last_reload_error = str(exc)
                log.warning("fake Caddy watcher: applying latest config: %s", exc)
                return False
            self._loaded = new
            self.reloads += 1
            self.last_reload_error = None
            log.info("fake Caddy: config file changed; reloaded %s", self.config_path)
            return True
        finally:
            self._lock.release()

    async def refresh(self) -> None:
        """On the loop: run the watcher's step if it is due (coalesced, throttled)."""
        if not self._watching:
            return
        loop = asyncio.get_running_loop()
        task = self._pending
        if task is None or task.done() or task.get_loop() is not loop:
            now = time.monotonic()
            if now < self._next_check:
                return
            self._next_check = now + self._check_interval
            task = asyncio.ensure_future(asyncio.to_thread(self.check_config))
            self._pending = task
        with contextlib.suppress(Exception):
            await asyncio.shield(task)

    # --- requests from inside the container (healthchecks) -------------------------------

    async def local_request(self, port: int, path: str = "/", method: str = "GET",
                            host: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
        """What `wget http://127.0.0.1:<port><path>` inside the container gets, without a
        socket: (status, headers with lower-case names, body). Plain HTTP only: a port
        with no plain-HTTP listener raises ConnectionRefusedError."""
        return await _local_request(self, port, path, method, host)

    def probe(self, url: str) -> int | None:
        """The status a healthcheck's GET of `url` gets, from a thread that holds the
        node's lock: answered right here, without an event loop (files are read on this
        thread). None when it cannot connect. A request that would need network I/O
        (reverse_proxy) cannot be answered this way and gets a 500."""
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
            # https to 127.0.0.1 sends no SNI, and certmagic then has no certificate
            return None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            status, _, _ = _run_inline(_local_request(
                _InlineHost(self), parts.port or 80, target, "GET", parts.hostname or ""))
        except ConnectionError:
            return None
        return status

    # --- inside ------------------------------------------------------------------------

    def _read_config(self) -> bytes:
        assert self.config_path is not None
        data = self.read_file(self.config_path)
        if data is None:
            raise CaddyConfigError(f"reading config from file: open {self.config_path}: no "
                                   "such file or directory")
        return data

    def _provision(self, raw: bytes) -> _Loaded:
        config = parse_config(raw, self.read_file, self.environment)
        for cert in config.certificates:
            check_key_pair(cert)
        contexts = {port: server_context(server.tls, config.certificates)
                    for port, server in config.servers.items() if server.tls is not None}
        return _Loaded(config=config, contexts=contexts)

    def _handler(self, port: int):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self.refresh()
            loaded = self._loaded
            server = loaded.config.servers.get(port) if loaded is not None else None
            if loaded is None or server is None:
                writer.close()      # nothing listens there: like images.accept_and_close
                return
            peer = writer.get_extra_info("peername") or ("", 0)
            remote = (str(peer[0]), int(peer[1]))
            context = loaded.contexts.get(port)
            if context is None:
                stream: PlainStream | TlsStream = PlainStream(reader, writer)
            else:
                stream = TlsStream(reader, writer, context)
                try:
                    await asyncio.wait_for(stream.handshake(), HANDSHAKE_TIMEOUT)
                except (ssl.SSLError, ConnectionError, TimeoutError, OSError):
                    writer.close()
                    return
            await serve_connection(stream, self, port, server, remote)

        return handle



class _InlineHost:
    """The instance as seen from a thread that already holds the node's lock (a
    healthcheck probe): files and names are read on this thread, not on workers."""

    def __init__(self, instance: CaddyInstance) -> None:
        self._instance = instance
        self.environment = instance.environment

    async def read_file_async(self, container_path: str) -> bytes | None:
        return self._instance.read_file(container_path)

    async def resolve_upstream_async(self, dial: str) -> tuple[str, int] | None:
        return self._instance.resolve_upstream(dial)

    def current_server(self, port: int) -> Server | None:
        return self._instance.current_server(port)

    async def refresh(self) -> None:
        self._instance.check_config(wait=False)


async def _local_request(host: CaddyInstance | _InlineHost, port: int, path: str,
                         method: str, hostname: str) -> tuple[int, dict[str, str], bytes]:
    await host.refresh()
    server = host.current_server(port)
    if server is None or server.tls is not None:
        raise ConnectionRefusedError(f"nothing serves plain HTTP on port {port}")
    client = h11.Connection(h11.CLIENT)
    request = client.send(h11.Request(method=method, target=path, headers=[
        ("Host", f"{hostname}:{port}"), ("User-Agent", "Wget"), ("Connection", "close")]))
    request += client.send(h11.EndOfMessage())
    stream = _MemoryStream(request)
    await serve_connection(stream, host, port, server, ("127.0.0.1", 0), idle_timeout=None)
    client.receive_data(bytes(stream.sent))
    client.receive_data(b"")
    status, headers, body = 0, {}, bytearray()
    while True:
        event = client.next_event()
        if isinstance(event, h11.Response):
            status = event.status_code
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
        elif isinstance(event, h11.Data):
            body += event.data
        else:
            break
    if not status:
        raise ConnectionResetError("the fake Caddy closed the connection without answering")
    return status, headers, bytes(body)


def _run_inline(coroutine: Any) -> Any:
    """Run a coroutine that never waits for I/O to its end, on this thread, without an
    event loop (there may be none, or one that this thread is already running)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise ConnectionResetError("the request would have to wait for I/O")


class _MemoryStream:
    """A connection that is a request already written and a buffer for the answer."""

    def __init__(self, incoming: bytes) -> None:
        self._incoming = incoming
        self.sent = bytearray()

    async def recv(self) -> bytes:
        data, self._incoming = self._incoming, b""
        return data

    async def send(self, data: bytes) -> None:
        self.sent += data

    def abort(self) -> None:
        return None

    async def close(self) -> None:
        return None


# ---------------------------------------------------------------------------------------
# The image behaviour (fakes/truenas/apps/images.py looks up `BEHAVIOUR`)


class CaddyImage(ImageBehaviour):
    """`caddy:<tag>` containers: a CaddyInstance per start."""

    def start(self, container: RunningContainer) -> dict[int, Any]:
        argv = (list(container.entrypoint) + list(container.command)
                if container.entrypoint is not None else (container.command or None))
        try:
            instance = CaddyInstance.from_command(
                argv, container.mounts, container.read_host_file, container.resolve_upstream,
                environment=container.environment)
            instance.load()
        except CaddyConfigError as exc:
            # caddy.ExitCodeFailedStartup is 1
            raise ContainerFailed(str(exc), exit_code=1) from None
        container.state["caddy"] = instance
        ports = set(instance.config.ports) | set(_published_ports(container))
        return dict(instance.services(ports))

    def healthy(self, container: RunningContainer) -> bool:
        instance = container.state.get("caddy")
        if not isinstance(instance, CaddyInstance) or not instance.healthy():
            return False
        check = _http_check(_healthcheck_test(container))
        if check is None:
            return True       # a check the fake cannot run: healthy while Caddy runs
        url, fail_from = check
        status = instance.probe(url)
        return status is not None and status < fail_from

    def stop(self, container: RunningContainer) -> None:
        container.state.pop("caddy", None)


BEHAVIOUR = CaddyImage()


def _published_ports(container: RunningContainer) -> list[int]:
    """The container ports Compose publishes (a reload may start listening on one)."""
    ports = getattr(container, "published_ports", None)
    if ports is None:
        # until RunningContainer says it: the Compose service it runs (containers.py)
        service = getattr(getattr(container, "_host", None), "service", None)
        ports = [b.container_port for b in getattr(service, "ports", ())
                 if getattr(b, "protocol", "tcp") == "tcp"]
    return [int(p) for p in ports]


def _healthcheck_test(container: RunningContainer) -> tuple[str, ...]:
    test = getattr(container, "healthcheck_test", None)
    if test is None:
        service = getattr(getattr(container, "_host", None), "service", None)
        check = getattr(service, "healthcheck", None)
        test = getattr(check, "test", None)
    return tuple(test or ())


def _http_check(test: tuple[str, ...]) -> tuple[str, int] | None:
    """A `wget`/`curl` healthcheck (busybox wget is in the caddy image): the URL and the
    first status that fails it. wget fails on any status from 300 up here: it would
    follow a redirect, and the only one Caddy's configs make is to https://127.0.0.1,
    where no SNI means no certificate. curl fails only with -f/--fail (from 400 up).
    Any other check is not run."""
    if not test or test[0] not in ("CMD", "CMD-SHELL"):
        return None
    words = list(test[1:]) if test[0] == "CMD" else shlex.split(" ".join(test[1:]))
    tool = words[0].rsplit("/", 1)[-1] if words else ""
    if tool not in ("wget", "curl"):
        return None
    url = next((w for w in words[1:] if w.startswith(("http://", "https://"))), None)
    if url is None:
        return None
    if tool == "wget":
        return url, 300
    fail = any(w == "--fail" or (w.startswith("-") and not w.startswith("--") and "f" in w)
               for w in words[1:])
    return url, 400 if fail else 1000
