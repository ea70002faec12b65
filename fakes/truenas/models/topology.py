"""A pool's data vdevs and their members (leaves), with ZFS's status rules.

Facts followed (reference/truenas-api.md §4 pool.query and §7; plugins/pool_/topology.py):
- topology nodes are `{name, type, path, guid, status, stats, children, device,
  disk, unavail_disk}`; vdev types "MIRROR" | "DISK" | ...; leaf path
  `/dev/disk/by-partuuid/<uuid>`, device "sdb1", disk "sdb"; guids are strings;
- a leaf whose disk went away while the pool was imported is REMOVED; one not found
  at import is UNAVAIL; a mirror with a member missing is DEGRADED; a top-level vdev
  with no usable member is UNAVAIL, and then so is the pool;
- while `pool.replace` resilvers, ZFS shows a "replacing" vdev holding the old and
  the new leaf; when the resilver ends the old leaf is detached.
Layouts: STRIPE = one single-disk top-level vdev per disk; MIRROR = one mirror vdev.
A leaf that is online but still missing data (a reattached stale disk, or a
replacement being resilvered) receives writes but does not count as healthy.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fakes.truenas.models.layout import MemberStore

if TYPE_CHECKING:
    from fakes.truenas.models.disks import Disk


def new_guid() -> str:
    """A ZFS guid: a random nonzero 64-bit number, shown as a decimal string."""
    return str(secrets.randbits(64) or 1)


def _stats(member: Member | None = None) -> dict:
    return {
        "timestamp": 0, "read_errors": member.read_errors if member else 0,
        "write_errors": member.write_errors if member else 0,
        "checksum_errors": member.checksum_errors if member else 0,
        "ops": [0] * 7, "bytes": [0] * 7,
        "size": member.size if member else 0, "allocated": 0, "fragmentation": 0,
        "self_healed": member.self_healed if member else 0,
        "configured_ashift": 12, "logical_ashift": 9, "physical_ashift": 12,
    }


@dataclass
class Member:
    guid: str
    partuuid: str
    serial: str
    size: int
    disk: Disk | None = None          # the plugged disk holding this member's label
    last_disk: dict | None = None     # disk.query entry of the disk last seen here
    stale: bool = False               # online but missing data: resilver pending
    missing_status: str = "REMOVED"   # REMOVED (unplugged while imported) | UNAVAIL
    replacement: Member | None = None  # the new leaf while pool.replace resilvers
    read_errors: int = 0
    write_errors: int = 0
    checksum_errors: int = 0
    self_healed: int = 0
    _store: MemberStore | None = field(default=None, repr=False)

    @classmethod
    def new(cls, disk: Disk) -> Member:
        member = cls(guid=new_guid(), partuuid=str(uuid.uuid4()), serial=disk.serial,
                     size=disk.size)
        member.attach(disk)
        return member

    @property
    def online(self) -> bool:
        return self.disk is not None

    @property
    def healthy(self) -> bool:
        return self.online and not self.stale

    @property
    def store(self) -> MemberStore:
        assert self.disk is not None and self.disk.backing_dir is not None
        if self._store is None or self._store.backing_dir != self.disk.backing_dir:
            self._store = MemberStore(self.disk.backing_dir)
        return self._store

    def attach(self, disk: Disk) -> None:
        self.disk = disk
        self._store = None
        self.last_disk = disk.to_entry(pool=None, zfs_guid=self.guid)

    def detach(self, status: str = "REMOVED") -> None:
        self.disk = None
        self._store = None
        self.missing_status = status

    def describe(self) -> dict:
        """How the label records this member (and a replacement in progress)."""
        described = {"guid": self.guid, "partuuid": self.partuuid, "serial": self.serial,
                     "size": self.size}
        if self.replacement is not None:
            described["replacement"] = self.replacement.describe()
        return described

    @classmethod
    def from_description(cls, described: dict) -> Member:
        member = cls(guid=described["guid"], partuuid=described["partuuid"],
                     serial=described["serial"], size=int(described["size"]),
                     missing_status="UNAVAIL")
        if described.get("replacement"):
            member.replacement = cls.from_description(described["replacement"])
        return member

    def leaf(self) -> dict:
        disk = self.disk
        return {
            "name": self.partuuid,
            "type": "DISK",
            "path": f"/dev/disk/by-partuuid/{self.partuuid}",
            "guid": self.guid,
            "status": "ONLINE" if self.online else self.missing_status,
            "stats": _stats(self),
            "children": [],
            "device": f"{disk.name}1" if disk else None,
            "disk": disk.name if disk else None,
            "unavail_disk": None if disk else self.last_disk,
        }

    def slot_entry(self) -> dict:
        """This leaf, or the "replacing" vdev while a replacement resilvers."""
        if self.replacement is None:
            return self.leaf()
        children = [self.leaf(), self.replacement.leaf()]
        return {
            "name": "replacing", "type": "REPLACING", "path": None,
            "guid": str(int(self.guid) ^ int(self.replacement.guid) or 1),
            "status": "ONLINE" if self.slot_healthy else "DEGRADED",
            "stats": _stats(), "children": children, "unavail_disk": None,
        }

    @property
    def slot_healthy(self) -> bool:
        return self.healthy or (self.replacement is not None and self.replacement.healthy)

    @property
    def slot_members(self) -> list[Member]:
        return [self] + ([self.replacement] if self.replacement else [])


@dataclass
class Vdev:
    type: str                 # "MIRROR" | "DISK"
    guid: str
    members: list[Member]     # slots: each member may carry a replacement

    @property
    def leaves(self) -> list[Member]:
        """Every leaf, replacements included: who receives writes and may serve reads."""
        return [leaf for slot in self.members for leaf in slot.slot_members]

    @property
    def online_leaves(self) -> list[Member]:
        return [leaf for leaf in self.leaves if leaf.online]

    @property
    def capacity(self) -> int:
        return min(member.size for member in self.members)

    @property
    def status(self) -> str:
        healthy = [slot.slot_healthy for slot in self.members]
        if all(healthy):
            return "ONLINE"
        # A missing disk leaves a mirror DEGRADED while some leaf can still serve it.
        if any(leaf.online for leaf in self.leaves) and any(healthy):
            return "DEGRADED"
        if any(leaf.online for leaf in self.leaves) and self.type == "DISK":
            return "DEGRADED"   # a single disk still holding data, resilver pending
        return "UNAVAIL"

    def entry(self, index: int) -> dict:
        if self.type == "DISK":
            return self.members[0].slot_entry()
        return {
            "name": f"mirror-{index}", "type": self.type, "path": None, "guid": self.guid,
            "status": self.status, "stats": _stats(),
            "children": [slot.slot_entry() for slot in self.members], "unavail_disk": None,
        }

    def describe(self) -> dict:
        return {"type": self.type, "guid": self.guid,
                "members": [member.describe() for member in self.members]}

    @classmethod
    def from_description(cls, description: dict) -> Vdev:
        members = [Member.from_description(m) for m in description["members"]]
        return cls(type=description["type"], guid=description["guid"], members=members)


def pool_status(vdevs: list[Vdev]) -> str:
    statuses = [vdev.status for vdev in vdevs]
    if "UNAVAIL" in statuses:
        return "UNAVAIL"
    if "DEGRADED" in statuses:
        return "DEGRADED"
    return "ONLINE"
