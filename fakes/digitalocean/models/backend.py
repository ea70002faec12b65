"""One fake DigitalOcean account: the stores, the clock, and the hooks between them.

Every call into a store happens under `lock` (the HTTP adapter and the DNS server
run on different threads). Events scheduled on the clock fire under the same lock.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from fakes.clock import VirtualClock
from fakes.digitalocean.models import validation
from fakes.digitalocean.models.actions import ActionLog
from fakes.digitalocean.models.addresses import AddressPool
from fakes.digitalocean.models.domains import DomainStore
from fakes.digitalocean.models.droplets import Droplet, DropletStore
from fakes.digitalocean.models.firewall_policy import InboundPolicy, build_inbound_policy
from fakes.digitalocean.models.firewalls import FirewallStore
from fakes.digitalocean.models.images import ImageStore
from fakes.digitalocean.models.reserved_ips import ReservedIPStore
from fakes.digitalocean.models.snapshots import SnapshotStore
from fakes.digitalocean.models.ssh_keys import SshKeyStore
from fakes.digitalocean.models.tags import TagStore
from fakes.digitalocean.models.volumes import Volume, VolumeStore

# Listeners told when the account's hardware changes (the fake TrueNAS hot-plugs
# disks from these; the firewall enforcer follows droplets). "Down" is a droplet
# that stops running without being removed yet (host failure, power off, delete
# requested); "active" is one that runs again (booted, powered on, rebooted).
VolumeHook = Callable[[Volume, Droplet], None]
DropletHook = Callable[[Droplet], None]
# Told (under the lock) after any change that can alter some droplet's inbound
# policy; the listener reads `inbound_policy(droplet_id)` again for its droplets.
FirewallHook = Callable[[], None]


class DigitalOceanBackend:
    def __init__(self, clock: VirtualClock, storage_dir: Path, address_block: int = 10) -> None:
        """`address_block`: the second octet of this account's loopback ranges
        (public 127.B, reserved 127.B+1, private 127.B+2), so that two worlds on one
        machine never hand out the same droplet address."""
        if not 1 <= address_block <= 250:
            raise ValueError("address_block must be between 1 and 250")
        self.lock = threading.RLock()
        self.clock = clock
        self.storage_dir = storage_dir
        self.account = {
            "droplet_limit": 25,
            "floating_ip_limit": 3,
            "reserved_ip_limit": 3,
            "volume_limit": 100,
            "email": "spec@example.test",
            "name": "Spec Suite",
            "uuid": str(uuid.uuid4()),
            "email_verified": True,
            "status": "active",
            "status_message": "",
            "team": {"uuid": str(uuid.uuid4()), "name": "My Team"},
        }
        self.public_addresses = AddressPool(f"127.{address_block}.0.0/16")
        self.reserved_addresses = AddressPool(f"127.{address_block + 1}.0.0/16")
        self.private_addresses = AddressPool(f"127.{address_block + 2}.0.0/16")
        self.volume_attached_hooks: list[VolumeHook] = []
        self.volume_detached_hooks: list[VolumeHook] = []
        self.droplet_gone_hooks: list[DropletHook] = []
        self.droplet_active_hooks: list[DropletHook] = []
        self.droplet_down_hooks: list[DropletHook] = []
        self.firewall_changed_hooks: list[FirewallHook] = []
        self.actions = ActionLog(clock)
        self.tags = TagStore(self)
        self.ssh_keys = SshKeyStore()
        self.images = ImageStore(self)
        self.droplets = DropletStore(self)
        self.volumes = VolumeStore(self)
        self.snapshots = SnapshotStore(self)
        self.domains = DomainStore(self)
        self.firewalls = FirewallStore(self)
        self.reserved_ips = ReservedIPStore(self)

    # --- hooks between stores and the rest of the world ---------------------
    def on_volume_attached(self, volume: Volume, droplet: Droplet) -> None:
        for hook in self.volume_attached_hooks:
            hook(volume, droplet)

    def on_volume_detached(self, volume: Volume, droplet: Droplet) -> None:
        for hook in self.volume_detached_hooks:
            hook(volume, droplet)

    def on_droplet_active(self, droplet: Droplet) -> None:
        for hook in self.droplet_active_hooks:
            hook(droplet)

    def on_droplet_down(self, droplet: Droplet) -> None:
        for hook in self.droplet_down_hooks:
            hook(droplet)

    def on_droplet_gone(self, droplet: Droplet) -> None:
        for hook in self.droplet_gone_hooks:
            hook(droplet)

    def notify_firewall_changed(self) -> None:
        """Called by the stores, under the lock, after a change to firewalls, to
        droplets' tags, or to which droplets exist and their addresses."""
        for hook in list(self.firewall_changed_hooks):
            hook()

    def inbound_policy(self, droplet_id: int) -> InboundPolicy:
        """What the cloud firewalls let into droplet `droplet_id` now: an immutable
        snapshot, safe to read from any thread. A droplet that is gone (or unknown)
        keeps only the firewalls that still name its id."""
        with self.lock:
            droplet = self.droplets.droplets.get(droplet_id)
            return build_inbound_policy(
                droplet_id, droplet.tags if droplet is not None else (),
                self.firewalls.all(), self.droplets.all(),
            )

    def find_taggable(self, kind: str, resource_id: str):
        number = validation.numeric_id(resource_id)
        if kind == "droplet" and number is not None:
            return self.droplets.droplets.get(number)
        if kind == "image" and number is not None:
            image = self.images.images.get(number)
            return image if image is not None and not image.public else None
        if kind == "volume":
            return self.volumes.volumes.get(resource_id)
        if kind == "volume_snapshot":
            return self.snapshots.snapshots.get(resource_id)
        return None
