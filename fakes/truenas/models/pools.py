"""A pool imported on a node: its vdevs, metadata, objects, health and entry.

Facts followed (reference/truenas-api.md §4 pool.create / pool.query, pool.query.json):
- entry fields `id, name, guid, status, path "/mnt/<name>", scan, expand,
  is_upgraded, healthy, warning, status_code, status_detail, size, allocated,
  free, freeing, dedup_table_size, dedup_table_quota, fragmentation, *_str,
  autotrim {value, rawvalue, parsed, source}, topology {data, log, cache, spare,
  special, dedup}`; `*_str` carry the numbers as strings;
- status ONLINE | DEGRADED | UNAVAIL; `healthy` is false unless ONLINE without
  permanent errors; status_code/status_detail follow libzfs's zpool_status names
  (REMOVED_DEV, MISSING_DEV_NR, RESILVERING, CORRUPT_DATA); the detail wording is
  libzfs's, paraphrased: the exact strings TrueNAS shows were not checked.
Every change ends with `commit()`: a new txg, unreferenced objects freed, and the
metadata and labels written to every online member.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from fakes.truenas.errors import CallError
from fakes.truenas.models.layout import encode_meta
from fakes.truenas.models.objects import ObjectStore
from fakes.truenas.models.topology import Member, Vdev, new_guid, pool_status

if TYPE_CHECKING:
    from fakes.truenas.models.scan import Scan
    from fakes.truenas.models.storage import NodeStorage

META_VERSION = 1
EMPTY_SCAN = {"function": None, "state": None, "start_time": None, "end_time": None,
              "percentage": None, "bytes_to_process": None, "bytes_processed": None,
              "bytes_issued": None, "pause": None, "errors": None, "total_secs_left": None}


def new_meta(now: float) -> dict:
    return {"version": META_VERSION, "txg": 0, "created": now, "next_inode": 2,
            "datasets": {}, "snapshots": {}, "objects": {}, "last_scan": None}


class Pool:
    def __init__(self, storage: NodeStorage, pool_id: int, name: str, guid: str,
                 vdevs: list[Vdev], meta: dict) -> None:
        self.storage = storage
        self.id = pool_id
        self.name = name
        self.guid = guid
        self.vdevs = vdevs
        self.meta = meta
        self.objects = ObjectStore(self)
        self.scan: Scan | None = None
        self.permanent_errors: set[str] = set()

    # --- names -------------------------------------------------------------
    @property
    def path(self) -> str:
        return f"/mnt/{self.name}"

    def full_name(self, rel: str) -> str:
        return f"{self.name}/{rel}" if rel else self.name

    def rel_name(self, full: str) -> str | None:
        if full == self.name:
            return ""
        if full.startswith(self.name + "/"):
            return full[len(self.name) + 1:]
        return None

    @property
    def layout(self) -> str:
        return "MIRROR" if any(v.type == "MIRROR" for v in self.vdevs) else "STRIPE"

    # --- health ------------------------------------------------------------
    @property
    def leaves(self) -> list[Member]:
        return [leaf for vdev in self.vdevs for leaf in vdev.leaves]

    @property
    def status(self) -> str:
        return pool_status(self.vdevs)

    @property
    def healthy(self) -> bool:
        return self.status == "ONLINE" and not self.permanent_errors

    def status_code(self) -> tuple[str, str | None]:
        status = self.status
        if status == "UNAVAIL":
            return ("MISSING_DEV_NR", "One or more devices are missing from the system and "
                    "there are insufficient replicas for the pool to continue functioning.")
        if self.scan is not None and self.scan.function == "RESILVER" and self.scan.running:
            return ("RESILVERING", "One or more devices is currently being resilvered. "
                    "The pool will continue to function, possibly in a degraded state.")
        if status == "DEGRADED":
            return ("REMOVED_DEV", "One or more devices has been removed. Sufficient "
                    "replicas exist for the pool to continue functioning in a degraded state.")
        if self.permanent_errors:
            return ("CORRUPT_DATA", "One or more devices has experienced an error resulting "
                    "in data corruption. Applications may be affected.")
        return ("OK", None)

    def unavailable_reason(self) -> str:
        missing = [vdev for vdev in self.vdevs if vdev.status == "UNAVAIL"]
        names = ", ".join(
            f"{'mirror' if v.type == 'MIRROR' else 'disk'} of "
            + "+".join(m.serial for m in v.members) for v in missing)
        return (f"Pool {self.name} is UNAVAIL: every member of {names} is missing, so "
                "its data cannot be read")

    def require_readable(self) -> None:
        if self.status == "UNAVAIL":
            raise CallError(f"[Errno 5] Input/output error: {self.unavailable_reason()}",
                            errno.EIO)

    def require_writable(self) -> None:
        self.require_readable()

    # --- persistence -------------------------------------------------------
    def referenced(self) -> set[str]:
        refs: set[str] = set()
        for dataset in self.meta["datasets"].values():
            refs.update(f["oid"] for f in dataset["files"].values())
        for snapshot in self.meta["snapshots"].values():
            refs.update(f["oid"] for f in snapshot["files"].values())
        # the part of a stream a cut-off `zfs recv -s` keeps (models/zstream.py)
        refs.update(state["oid"] for state in self.meta.get("receiving", {}).values())
        return refs

    def label(self, vdev: Vdev, leaf: Member, exported: bool = False) -> dict:
        node = self.storage.node
        return {
            "pool_name": self.name, "pool_guid": self.guid, "vdev_guid": vdev.guid,
            "member_guid": leaf.guid, "partuuid": leaf.partuuid, "serial": leaf.serial,
            "topology_type": self.layout, "topology": [v.describe() for v in self.vdevs],
            "exported": exported, "hostname": node.hostname, "hostid": node.droplet_id,
            "txg": self.meta["txg"],
        }

    def commit(self, exported: bool = False) -> None:
        """A new txg: free unreferenced objects, write metadata + labels to online leaves."""
        self.meta["txg"] += 1
        self.objects.collect(self.referenced())
        encoded = encode_meta(self.meta)      # the same bytes for every member
        for vdev in self.vdevs:
            for leaf in vdev.online_leaves:
                leaf.store.write_meta(encoded)
                leaf.store.write_label(self.label(vdev, leaf, exported=exported))

    def next_inode(self) -> int:
        inode = self.meta["next_inode"]
        self.meta["next_inode"] = inode + 1
        return inode

    # --- sizes and entry ---------------------------------------------------
    @property
    def size(self) -> int:
        return sum(vdev.capacity for vdev in self.vdevs)

    @property
    def allocated(self) -> int:
        return self.objects.allocated()

    @property
    def free(self) -> int:
        return max(0, self.size - self.allocated)

    def scan_entry(self) -> dict:
        if self.scan is not None:
            return self.scan.entry()
        return dict(self.meta.get("last_scan") or EMPTY_SCAN)

    def topology(self) -> dict:
        return {"data": [vdev.entry(i) for i, vdev in enumerate(self.vdevs)],
                "log": [], "cache": [], "spare": [], "special": [], "dedup": []}

    def to_entry(self) -> dict:
        code, detail = self.status_code()
        size, allocated, free = self.size, self.allocated, self.free
        return {
            "id": self.id, "name": self.name, "guid": self.guid, "status": self.status,
            "path": self.path, "scan": self.scan_entry(), "expand": None,
            "is_upgraded": True, "healthy": self.healthy, "warning": False,
            "status_code": code, "status_detail": detail,
            "size": size, "allocated": allocated, "free": free, "freeing": 0,
            "dedup_table_size": 0, "dedup_table_quota": "auto",
            "fragmentation": "0", "size_str": str(size), "allocated_str": str(allocated),
            "free_str": str(free), "freeing_str": "0",
            "autotrim": {"value": "off", "rawvalue": "off", "parsed": "off",
                         "source": "DEFAULT"},
            "topology": self.topology(),
        }


def build_vdevs(layout: list[tuple[str, list]]) -> list[Vdev]:
    """Data vdevs from [(type, [Disk, ...]), ...]: STRIPE splits into single disks."""
    vdevs: list[Vdev] = []
    for vdev_type, disks in layout:
        if vdev_type == "STRIPE":
            for disk in disks:
                member = Member.new(disk)
                vdevs.append(Vdev(type="DISK", guid=member.guid, members=[member]))
        else:
            vdevs.append(Vdev(type=vdev_type, guid=new_guid(),
                              members=[Member.new(disk) for disk in disks]))
    return vdevs
