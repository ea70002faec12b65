"""Published ports and service names: what the engine's networking does, on the node.

Facts followed:
- a container's published ports are bound when it starts; one already bound by a
  container is refused by Docker's allocator, `Bind for 0.0.0.0:80 failed: port is
  already allocated`; one held by another process on the host (TrueNAS's own UI on
  80/443) fails in the proxy, `failed to bind host port for 0.0.0.0:80:<container
  ip>:80/tcp: address already in use`; both reach the user as
  `driver failed programming external connectivity on endpoint <container>
  (<id>): ...` (moby; the exact prefix varies between Docker releases [I]);
- with no host port Docker picks a free one from the ephemeral range (32768-60999,
  Linux's default ip_local_port_range);
- a port bound to 127.0.0.1 is reachable from the host only; a host IP the host
  does not have is refused (`cannot assign requested address`);
- `network_mode: host` ignores `ports` and the process listens on the host;
- containers on one Docker network find each other by service name, alias or
  container name (Docker's embedded DNS), for running containers only.
- Docker's embedded DNS answers a service name for every container attached to a
  network the asking container is attached to, whatever project created it;
- a container port that is not published is still reachable from containers on a
  shared network, and from nowhere else.
The fake serves published TCP ports through `node.network.publish(port, service,
owner="app:<name>")` (fakes/truenas/server.py); UDP and loopback-only bindings are
recorded (they show in app.query and clash as they would) but not served. The
fake has no container network of its own: a name resolves to the node's address
and the host port the target publishes for that container port, or, for a port
the target's image listens on without publishing it, to an internal listener the
runtime opens for it (node address, a free port of the ephemeral range, owner
"internal:<app>"). The cloud firewall never opens such a port (no rule names it);
the node's own traffic bypasses the firewall (server.py), so containers reach it
and outsiders do not. Unlike Docker, a client on the host itself could reach an
internal listener; nothing in the fake's world connects from the node's address
but the node's own containers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fakes.truenas.apps.containers import Bound
from fakes.truenas.apps.images import closing_service
from fakes.truenas.apps.syntax import PortBinding

if TYPE_CHECKING:
    from fakes.truenas.apps.containers import Container
    from fakes.truenas.apps.runtime import AppsRuntime

log = logging.getLogger(__name__)

EPHEMERAL = range(32768, 61000)
WILDCARDS = ("", "0.0.0.0", "::")
LOOPBACK = ("127.0.0.1", "::1")


class PortTaken(OSError):
    pass


class LocalNetwork:
    """Stand-in for `node.network` when the node has no listeners (model tests, a
    node built without the fleet): records who holds which port, serves nothing."""

    def __init__(self) -> None:
        self.owners: dict[int, str] = {}

    def publish(self, port: int, service: Any, owner: str) -> int:
        if port in self.owners:
            raise PortTaken(f"port {port} is already used by {self.owners[port]}")
        self.owners[port] = owner
        return port

    def withdraw(self, owner: str) -> None:
        self.owners = {p: o for p, o in self.owners.items() if o != owner}

    def published(self) -> dict[int, str]:
        return dict(self.owners)


def owner_of(app_name: str) -> str:
    return f"app:{app_name}"


def internal_owner(app_name: str) -> str:
    return f"internal:{app_name}"


def _overlap(a: str, b: str) -> bool:
    return a in WILDCARDS or b in WILDCARDS or a == b


class Ports:
    def __init__(self, runtime: AppsRuntime) -> None:
        self.runtime = runtime
        self.local = LocalNetwork()

    @property
    def network(self) -> Any:
        return self.runtime.node.network or self.local

    def _endpoint(self, container: Container, detail: str) -> str:
        return (f"driver failed programming external connectivity on endpoint "
                f"{container.name} ({container.id[:12]}): {detail}")

    def _in_use(self, me: Container, port: int, proto: str, ip: str,
                mine: list[Bound]) -> bool:
        holders = [b for c in self.runtime.all_containers() if c is not me and c.running
                   for b in c.bound] + mine
        return any(b.host_port == port and b.binding.protocol == proto
                   and _overlap(b.host_ip, ip) for b in holders)

    def _free_port(self, me: Container, proto: str, ip: str, mine: list[Bound],
                   candidates: range) -> int | None:
        taken = self.network.published()
        for port in candidates:
            if port not in taken and not self._in_use(me, port, proto, ip, mine):
                return port
        return None

    # --- a container's start ---------------------------------------------------------
    def allocate(self, container: Container) -> str | None:
        """Docker's port allocator for the container's bindings; None or why not."""
        service = container.service
        container.bound = []
        if service.network_mode is not None:
            return None         # host, none, service:x: `ports` do not apply
        address = self.runtime.node.address
        mine: list[Bound] = []
        for binding in service.ports:
            ip = binding.host_ip or "0.0.0.0"
            if ip not in WILDCARDS and ip not in LOOPBACK and ip != address:
                return self._endpoint(container, f"failed to bind host port for "
                                      f"{ip}:{binding.host_port or 0}: cannot assign "
                                      "requested address")
            port = binding.host_port or None        # 0 also means "any free port"
            if port is None:
                candidates = (range(binding.host_port_range[0], binding.host_port_range[1] + 1)
                              if binding.host_port_range else EPHEMERAL)
                port = self._free_port(container, binding.protocol, ip, mine, candidates)
                if port is None:
                    return self._endpoint(container, "all ports are allocated")
            elif self._in_use(container, port, binding.protocol, ip, mine):
                return self._endpoint(container, f"Bind for {ip}:{port} failed: port is "
                                      "already allocated")
            mine.append(Bound(binding, ip, port))
        container.bound = mine
        return None

    def _served(self, bound: Bound) -> bool:
        ip = bound.host_ip
        return bound.binding.protocol == "tcp" and (ip in WILDCARDS
                                                    or ip == self.runtime.node.address)

    def publish(self, container: Container) -> str | None:
        """Serve the container's TCP bindings on the node; None or why not."""
        if container.service.network_mode == "host":
            container.bound = [Bound(PortBinding(port), "0.0.0.0", port, reported=False)
                               for port in sorted(container.services)]
        owner = owner_of(container.app.name)
        for bound in container.bound:
            if not self._served(bound):
                continue
            service = container.services.get(bound.binding.container_port) or closing_service()
            try:
                bound.world_port = self.network.publish(bound.host_port, service, owner)
            except OSError as exc:
                log.info("app %s: port %s: %s", container.app.name, bound.host_port, exc)
                for other in container.bound:
                    other.world_port = None
                container.bound = []
                self.resync(container.app)
                ip = bound.host_ip
                if self.runtime.node.network is None or "already used by app:" in str(exc):
                    detail = f"Bind for {ip}:{bound.host_port} failed: port is already allocated"
                else:
                    detail = (f"failed to bind host port for {ip}:{bound.host_port}:"
                              f"172.16.0.2:{bound.binding.container_port}/tcp: address "
                              "already in use")
                return self._endpoint(container, detail)
        self._serve_internal(container)
        return None

    def _serve_internal(self, container: Container) -> None:
        """Serve the container ports its image listens on but does not publish, for
        the containers that share a network with it."""
        container.internal = {}
        if container.service.network_mode is not None:
            return              # host: already on the host; none/service:x: no network
        published = {b.binding.container_port for b in container.bound
                     if b.world_port is not None and b.binding.protocol == "tcp"}
        owner = internal_owner(container.app.name)
        for port, service in sorted(container.services.items()):
            if port in published:
                continue
            taken = set(self.network.published())
            for node_port in EPHEMERAL:
                if node_port in taken or self._in_use(
                        container, node_port, "tcp", "0.0.0.0", []):
                    continue
                try:
                    container.internal[port] = self.network.publish(node_port, service, owner)
                except OSError:
                    continue        # held by someone else on the host: try the next one
                break
            else:
                log.warning("app %s: no free port for %s's internal port %s",
                            container.app.name, container.name, port)

    def withdraw_app(self, app: Any) -> None:
        """Every listener of the app (published and internal) closes."""
        self.network.withdraw(owner_of(app.name))
        self.network.withdraw(internal_owner(app.name))

    def resync(self, app: Any) -> None:
        """Withdraw the app's listeners and serve again those of its running
        containers (the network withdraws by owner only)."""
        network = self.network
        self.withdraw_app(app)
        for container in app.containers.values():
            for bound in container.bound:
                bound.world_port = None
                if not container.running or not self._served(bound):
                    continue
                service = (container.services.get(bound.binding.container_port)
                           or closing_service())
                try:
                    bound.world_port = network.publish(bound.host_port, service,
                                                       owner_of(app.name))
                except OSError as exc:   # taken in between by someone else
                    log.warning("app %s: could not serve port %s again: %s", app.name,
                                bound.host_port, exc)
            if container.running:
                self._serve_internal(container)
            else:
                container.internal = {}

    def release(self, container: Container) -> None:
        container.bound = []
        self.resync(container.app)

    # --- names ---------------------------------------------------------------------
    def peer(self, me: Container, dial: str) -> tuple[Container, int] | None:
        """The running container `"host:port"` reaches from `me` (its own app's first,
        then any app's, on a network they share) and the container port."""
        host, sep, port_text = dial.rpartition(":")
        if not sep or not port_text.isdecimal():
            return None
        my_networks = me.app.network_names(me.service)
        mine_first = sorted(self.runtime.all_containers(), key=lambda c: c.app is not me.app)
        for other in mine_first:
            if not other.running:
                continue
            theirs = other.app.network_names(other.service)
            shared = set(my_networks) & set(theirs)
            names = {other.service.name, other.name}
            for network in shared:
                names.update(theirs[network])
            if shared and host in names:
                return other, int(port_text)
        return None

    def resolve(self, me: Container, dial: str) -> tuple[str, int] | None:
        found = self.peer(me, dial)
        if found is None:
            return None
        other, port = found
        for bound in other.bound:
            if (bound.binding.container_port == port and bound.world_port is not None
                    and bound.binding.protocol == "tcp"):
                return self.runtime.node.address, bound.world_port
        if port in other.internal:
            return self.runtime.node.address, other.internal[port]
        return None
