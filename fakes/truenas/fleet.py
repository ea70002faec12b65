"""The fake TrueNAS nodes of a world: one per running droplet built from a TrueNAS image.

Which droplets run TrueNAS: a droplet runs TrueNAS when its image is a custom
image whose import URL or name contains "truenas" (any case). DigitalOcean has
no TrueNAS image of its own; a site imports one (reference/truenas-api.md §7), and a
droplet from any other image is plain Linux to this world. This is a convention
of the fake, published in world.json as `truenas.image_url_marker`.

What follows the droplet (DigitalOcean backend hooks, all under the world's lock):
- active (booted, or powered on again): a node boots at the droplet's public
  address, BOOTING and then READY (node.py), with the image's API key for
  `truenas_admin`, every volume already attached plugged in as a disk (serial =
  volume name, DigitalOcean's `scsi-0DO_Volume_<name>`, §7), and its listeners up;
- volume attached / detached: the disk is hot-plugged / pulled;
- down (host failure, power off, delete requested): the node stops answering at
  once; gone (the droplet is removed): it is forgotten.
What lives on the droplet's boot disk survives a power cycle: the node's
self-signed certificate and its API keys (a key revoked for being sent over
plain ws:// stays revoked), system.general and docker.config; the apps' files are
on their pool (apps/persist.py), and Docker brings the apps back once that pool is
imported (apps/runtime.py).

Listeners bind 443 and 80 on the droplet's own loopback address
(reference/this-machine.md §4). Where ports below 1024 cannot be bound (not root), the
world uses one pair of free high ports instead, and world.json says which
(`network.port_map`); a node whose ports are taken on its address (two worlds in
one process hand out the same addresses) falls back to free ports of its own,
listed by `GET /_admin/truenas/nodes`.

A node of one's own (issue 15 §6: a site on hardware the forker already runs) is
booted through the admin API, not through DigitalOcean: `boot_own_node` gives it an
address of the world's internet (the account's public range, so that no droplet
ever gets it), its own API key (as an owner creates one in the UI), the world's
admin password, and disks of the given serials and sizes, as `sda`, `sdb`... in the
order given (Linux names SCSI disks in probe order; chosen: they look like the
volumes do, SCSI with model "Volume", since a home box's drive models are whatever
its owner bought). No cloud firewall applies to it
(the owner's router is not modelled); its names resolve through the world's DNS as
the owner's own DNS provider would answer them (fakes/dns/server.py, outside names).

The droplet's cloud firewall is enforced on every listener (server.py): the fleet
hands each node its droplet's inbound policy and refreshes it whenever the
account's firewalls, tags or droplets change.

What a node reaches of the world (`node.world_services`): the DigitalOcean API
endpoint (for the ACME `digitalocean` DNS authenticator, which on a real node
calls api.digitalocean.com) and the CA bundle that endpoint and the ACME server
are served with.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fakes.clock import VirtualClock
from fakes.truenas.models import keychain, replication
from fakes.truenas.server import SSH_PORT, STANDARD_PORTS, NodeServer

if TYPE_CHECKING:
    from fakes.digitalocean.models.backend import DigitalOceanBackend
    from fakes.digitalocean.models.droplets import Droplet
    from fakes.digitalocean.models.volumes import Volume
    from fakes.truenas.node import TrueNASNode

log = logging.getLogger(__name__)

IMAGE_MARKER = "truenas"
ADMIN_USERNAME = "truenas_admin"
PROBE_ADDRESS = "127.0.0.1"


def new_api_key(key_id: int = 1) -> str:
    """An API key as TrueNAS shows it once: `<id>-<64 letters and digits>` [I]."""
    alphabet = string.ascii_letters + string.digits
    return f"{key_id}-" + "".join(secrets.choice(alphabet) for _ in range(64))


def new_password() -> str:
    """The admin password an image was installed with (the installer's
    `authentication` for truenas_admin)."""
    return secrets.token_urlsafe(18)


def is_truenas_image(image) -> bool:
    if image is None or image.type != "custom":
        return False
    text = f"{image.url or ''} {image.name or ''}".lower()
    return IMAGE_MARKER in text


@dataclass(frozen=True)
class WorldServices:
    """What a node can reach of the world besides its own disks."""

    digitalocean_endpoint: str = ""
    ca_bundle: str = ""


@dataclass
class FleetNode:
    droplet_id: int
    node: TrueNASNode
    server: NodeServer

    def describe(self) -> dict:
        return {
            "droplet_id": self.droplet_id,
            "hostname": self.node.hostname,
            "address": self.node.address,
            "state": self.node.state,
            "serving": self.server.running,
            "ports": dict(self.server.ports),
            "certificate": str(self.server.cert.cert_path) if self.server.cert else None,
        }


@dataclass
class _BootDisk:
    """What a droplet keeps across power cycles."""

    api_keys: dict[str, str]
    directory: Path
    state: dict = field(default_factory=dict)    # API key entries, the EULA (api_key.py)


@dataclass
class TrueNASFleet:
    state_dir: Path
    backend: DigitalOceanBackend
    clock: VirtualClock
    api_key: str
    username: str = ADMIN_USERNAME
    # truenas_admin's password, the same for every image of this world (an image is
    # built with one; world.json publishes it for tests and tools).
    admin_password: str = field(default_factory=new_password)
    # False: every image has the world's API key baked in (a convenience of the fake).
    # True: images are as a fresh install leaves them, the password and no API key,
    # so a client must log in with the password and create its own key.
    fresh_images: bool = False
    services: WorldServices = field(default_factory=WorldServices)
    ports: dict[str, int] = field(init=False)
    ssh_port: int = field(init=False)
    nodes: dict[int, FleetNode] = field(init=False, default_factory=dict)
    errors: list[str] = field(init=False, default_factory=list)
    _boot_disks: dict[int, _BootDisk] = field(init=False, default_factory=dict)
    _retired: list[NodeServer] = field(init=False, default_factory=list)
    # A fault only the fake can make (admin API): the network between the internet
    # and every droplet drops these ports, as an ISP filtering port 80 would.
    dropped_ports: set[int] = field(init=False, default_factory=set)
    # Nodes of one's own (no droplet): keyed in `nodes` by negative ids, so that they
    # never meet a droplet's id; their API keys, by id.
    own_keys: dict[int, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir)
        plan = _port_plan()
        # sshd's port 22 (replication, fakes/truenas/ssh.py) is mapped like 443 and 80
        # but kept apart: `ports` stays the UI's
        self.ssh_port = plan.pop("ssh")
        self.ports = plan
        backend = self.backend
        backend.droplet_active_hooks.append(self._droplet_active)
        backend.droplet_down_hooks.append(self._droplet_down)
        backend.droplet_gone_hooks.append(self._droplet_gone)
        backend.volume_attached_hooks.append(self._volume_attached)
        backend.volume_detached_hooks.append(self._volume_detached)
        hooks = getattr(backend, "firewall_changed_hooks", None)
        if hooks is not None:
            hooks.append(self._firewalls_changed)

    def describe(self) -> dict:
        """The world.json section: what a client needs to reach any node."""
        return {"api_key": None if self.fresh_images else self.api_key,
                "username": self.username, "admin_password": self.admin_password,
                "image_url_marker": IMAGE_MARKER, "ports": dict(self.ports)}

    @property
    def port_map(self) -> dict[int, int]:
        """Droplet port -> host port, for the ports this world maps."""
        return {443: self.ports["https"], 80: self.ports["http"], SSH_PORT: self.ssh_port}

    def node_for(self, droplet_id: int) -> FleetNode | None:
        return self.nodes.get(droplet_id)

    def describe_nodes(self) -> list[dict]:
        return [entry.describe() for entry in self.nodes.values()]

    # --- hooks (called under the world's lock) -------------------------------------
    def _droplet_active(self, droplet: Droplet) -> None:
        if not is_truenas_image(droplet.image) or not droplet.public_ipv4:
            return
        current = self.nodes.get(droplet.id)
        if current is not None and current.server.running:
            return
        with self._reported(f"booting TrueNAS on droplet {droplet.id}"):
            self._boot(droplet)

    def _boot(self, droplet: Droplet) -> None:
        from fakes.truenas.apps.runtime import restore_at_boot
        from fakes.truenas.models.ui_settings import apply_at_boot
        from fakes.truenas.node import TrueNASNode

        disk = self._boot_disks.get(droplet.id)
        if disk is None:
            baked = {} if self.fresh_images else {self.api_key: self.username}
            disk = _BootDisk(baked, self.state_dir / str(droplet.id))
            self._boot_disks[droplet.id] = disk
        node = TrueNASNode(
            droplet_id=droplet.id, hostname=droplet.name, address=droplet.public_ipv4,
            clock=self.clock, lock=self.backend.lock, state_dir=disk.directory / "node",
            api_keys=disk.api_keys, admin_password=self.admin_password,
            boot_state=disk.state,
        )
        node.world_services = self.services
        node.dial = self.dial
        for volume in self.backend.volumes.attached_to(droplet.id):
            self._plug(node, volume)
        server = _bind(node, disk.directory / "certificate", {**self.ports, "ssh": self.ssh_port})
        server.set_inbound_policy(self._policy_for(droplet.id))
        if keychain.ssh_enabled(node):        # the SSH service comes back at boot
            server.start_ssh()
        replication.at_boot(node)
        apply_at_boot(node)
        restore_at_boot(node)         # after the listeners: apps publish ports on them
        self.nodes[droplet.id] = FleetNode(droplet.id, node, server.start())

    # --- nodes of one's own (admin API) ---------------------------------------------
    def boot_own_node(self, disks: list[tuple[str, int]], hostname: str = "truenas",
                      physmem: int = 8 * 2**30) -> FleetNode:
        """A TrueNAS node not made through DigitalOcean, with `disks` ((serial, size in
        bytes), in probe order) besides its boot disk, and `physmem` bytes of RAM
        (system.info). Call under the world's lock."""
        from fakes.truenas.apps.runtime import restore_at_boot
        from fakes.truenas.models.ui_settings import apply_at_boot
        from fakes.truenas.node import TrueNASNode

        serials = [serial for serial, _size in disks]
        if not disks or len(set(serials)) != len(serials):
            raise ValueError("an own node needs at least one disk, each serial once")
        if any(size < 2**30 for _serial, size in disks):
            raise ValueError("a disk is at least 1 GiB")
        if physmem < 2**30:
            raise ValueError("a node has at least 1 GiB of memory")
        node_id = -(len(self.own_keys) + 1)
        key = new_api_key()
        directory = self.state_dir / f"own{-node_id}"
        node = TrueNASNode(
            droplet_id=node_id, hostname=hostname,
            address=self.backend.public_addresses.allocate(), clock=self.clock,
            lock=self.backend.lock, state_dir=directory / "node",
            api_keys={key: self.username}, admin_password=self.admin_password,
            physmem=physmem,
        )
        node.world_services = self.services
        node.dial = self.dial
        for serial, size in disks:
            backing = directory / "disks" / serial
            backing.mkdir(parents=True, exist_ok=True)
            node.plug_disk(serial, size, backing)
        server = _bind(node, directory / "certificate", {**self.ports, "ssh": self.ssh_port})
        server.set_inbound_policy(self._policy_for(node_id))
        apply_at_boot(node)
        restore_at_boot(node)
        self.own_keys[node_id] = key
        self.nodes[node_id] = FleetNode(node_id, node, server.start())
        return self.nodes[node_id]

    def stop_own_node(self, node_id: int) -> None:
        """Power an own node off for good (its disks go with it)."""
        entry = self.nodes.get(node_id)
        if node_id not in self.own_keys or entry is None:
            raise KeyError(f"no own node {node_id}")
        self.nodes.pop(node_id)
        if entry.server.running:
            self._halt(entry)

    def dial(self, host: str, port: int) -> tuple[str, int]:
        """Where a connection from one node to `host:port` goes on this machine: a
        node's droplet port is served on the host port the world maps it to (the
        NAT a real network does not need). Unknown hosts: as asked (refused)."""
        for entry in list(self.nodes.values()):
            if entry.node.address == host and entry.server.running:
                served = entry.server.listening_port(port)
                return host, served if served is not None else self._unused_port(port)
        return host, port

    def _unused_port(self, port: int) -> int:
        # nothing listens on that droplet port: a port the world maps but nobody
        # binds on this address, so the connection is refused as it would be
        return self.port_map.get(port, port)

    def _policy_for(self, droplet_id: int):
        if droplet_id in self.own_keys or droplet_id < 0:
            # No cloud firewall stands before an own node; only the network's faults.
            return _DroppingPorts(None, frozenset(self.dropped_ports)) \
                if self.dropped_ports else None
        inbound_policy = getattr(self.backend, "inbound_policy", None)
        policy = inbound_policy(droplet_id) if inbound_policy is not None else None
        if self.dropped_ports:
            return _DroppingPorts(policy, frozenset(self.dropped_ports))
        return policy

    def drop_inbound_port(self, port: int) -> None:
        self.dropped_ports.add(port)
        self._firewalls_changed()

    def clear_dropped_ports(self) -> None:
        self.dropped_ports.clear()
        self._firewalls_changed()

    def _firewalls_changed(self) -> None:
        for entry in self.nodes.values():
            entry.server.set_inbound_policy(self._policy_for(entry.droplet_id))

    def _droplet_down(self, droplet: Droplet) -> None:
        entry = self.nodes.get(droplet.id)
        if entry is not None and entry.server.running:
            with self._reported(f"stopping TrueNAS on droplet {droplet.id}"):
                self._halt(entry)

    def _droplet_gone(self, droplet: Droplet) -> None:
        entry = self.nodes.pop(droplet.id, None)
        self._boot_disks.pop(droplet.id, None)
        if entry is not None:
            with self._reported(f"stopping TrueNAS on droplet {droplet.id}"):
                self._halt(entry)

    def _volume_attached(self, volume: Volume, droplet: Droplet) -> None:
        entry = self.nodes.get(droplet.id)
        if entry is not None and entry.server.running:
            with self._reported(f"plugging volume {volume.name} into droplet {droplet.id}"):
                self._plug(entry.node, volume)

    def _volume_detached(self, volume: Volume, droplet: Droplet) -> None:
        entry = self.nodes.get(droplet.id)
        if entry is not None and entry.server.running:
            with self._reported(f"pulling volume {volume.name} from droplet {droplet.id}"):
                entry.node.unplug_disk(volume.name)

    # --- helpers -------------------------------------------------------------------
    @staticmethod
    def _plug(node: TrueNASNode, volume: Volume) -> None:
        node.plug_disk(volume.name, volume.size_gigabytes * 2**30, volume.backing_dir)

    def _halt(self, entry: FleetNode) -> None:
        entry.server.stop()           # never joins: we hold the world's lock
        self._retired.append(entry.server)
        if entry.node.state != "SHUTTING_DOWN":
            entry.node.shut_down()

    @contextlib.contextmanager
    def _reported(self, what: str):
        """A failing node must not break the DigitalOcean fake that called the hook
        (the hook may run on the world's clock thread): log it and keep it for the
        admin API instead."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001
            log.exception("fake TrueNAS: %s failed", what)
            self.errors.append(f"{what}: {type(exc).__name__}: {exc}")

    def stop_all(self) -> None:
        """Stop every node and wait for its thread; call without the world's lock."""
        with self.backend.lock:
            for entry in list(self.nodes.values()):
                if entry.server.running:
                    self._halt(entry)
            retired, self._retired = self._retired, []
        for server in retired:
            server.join()


@dataclass(frozen=True)
class _DroppingPorts:
    """The droplet's firewall, behind a network that drops some ports entirely."""

    inner: object | None
    ports: frozenset[int]

    def allows(self, source_ip: str, port: int) -> bool:
        if port in self.ports:
            return False
        return self.inner is None or self.inner.allows(source_ip, port)


def _bind(node: TrueNASNode, cert_dir: Path, ports: dict[str, int]) -> NodeServer:
    try:
        return NodeServer(node, cert_dir, ports)
    except OSError as exc:
        log.warning("fake TrueNAS %s: ports %s unavailable (%s); using free ports",
                    node.address, ports, exc)
        return NodeServer(node, cert_dir, {"https": 0, "http": 0, "ssh": 0})


def _port_plan() -> dict[str, int]:
    """443/80 where this process may bind them, else one pair of free high ports."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((PROBE_ADDRESS, STANDARD_PORTS["https"]))
        except PermissionError:
            return _free_ports(len(STANDARD_PORTS) + 1, [*STANDARD_PORTS, "ssh"])
        except OSError:
            pass          # in use there: binding it is allowed, which is what we asked
    return {**STANDARD_PORTS, "ssh": SSH_PORT}


def _free_ports(count: int, names) -> dict[str, int]:
    # All held open together, so that the ports differ.
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((PROBE_ADDRESS, 0))
        return {name: sock.getsockname()[1] for name, sock in zip(names, sockets, strict=True)}
    finally:
        for sock in sockets:
            sock.close()
