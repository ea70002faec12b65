"""NodeStorage: everything a node keeps about disks, pools, datasets and files.

The one facade for the node (`plug_disk` / `unplug_disk` from the fleet), the
JSON-RPC methods, and the transport (`/_upload`, `/_download`). Callers hold
`node.lock`; clock callbacks fire with the world lock held, so nothing here takes
a lock of its own.

Hot-plug rules (reference/truenas-api.md §7): a plugged volume whose label names a pool that
is imported here and a leaf of it that is missing is reattached at once (unless
the label shows another host imported the pool since). If the
pool changed while it was away, the pool stays DEGRADED and a resilver of what
changed starts (as ZFS resilvers a returning device); if nothing changed it is
ONLINE again immediately. Any other labelled volume just shows up as a disk, and
`pool.import_find` offers its pool.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fakes.truenas import events
from fakes.truenas.models import files, lifecycle
from fakes.truenas.models.disks import BOOT_POOL, Disk, DiskTable
from fakes.truenas.models.layout import read_label
from fakes.truenas.models.scan import stale_leaves, start_resilver
from fakes.truenas.models.snapshot_tasks import SnapshotTasks

if TYPE_CHECKING:
    from fakes.truenas.models.pools import Pool
    from fakes.truenas.node import TrueNASNode


class NodeStorage:
    def __init__(self, node: TrueNASNode) -> None:
        self.node = node
        self.disks = DiskTable(boot_serial=f"boot-{node.droplet_id}")
        self.pools: dict[str, Pool] = {}
        self.tasks = SnapshotTasks(self)
        self._pool_ids = itertools.count(1)

    # --- context -----------------------------------------------------------
    @property
    def dead(self) -> bool:
        return self.node.state == "SHUTTING_DOWN"

    def now(self) -> float:
        return self.node.clock.now()

    def next_pool_id(self) -> int:
        return next(self._pool_ids)

    def emit_scan(self, pool: Pool) -> None:
        """`pool.scan` CHANGED `{scan, name}` with the pool's name as id, as
        middleware's zfs_events sends it, through the transport's event hub."""
        events.publish(self.node, "pool.scan", "changed", id=pool.name,
                       fields={"scan": pool.scan_entry(), "name": pool.name})

    # --- hot-plug (the fleet, from DigitalOcean volume attach/detach) -------
    def plug_disk(self, serial: str, size_bytes: int, backing_dir: Path) -> Disk:
        """A volume appears as the next free `sdX`; a returning pool member rejoins."""
        disk = self.disks.plug(serial, size_bytes, backing_dir)
        label = read_label(disk.backing_dir)
        pool = next((p for p in self.pools.values()
                     if label is not None and p.guid == label["pool_guid"]), None)
        if pool is None or label is None:
            return disk
        if label["hostid"] != self.node.droplet_id or label["txg"] > pool.meta["txg"]:
            # Another host imported the pool since (its label is newer): rejoining
            # with this node's older view would overwrite that host's data.
            return disk
        leaf = next((leaf for leaf in pool.leaves
                     if leaf.guid == label["member_guid"] and not leaf.online), None)
        if leaf is None:
            return disk
        leaf.attach(disk)
        leaf.store.drop_objects(pool.objects.extra_on(leaf))
        leaf.stale = leaf.stale or bool(pool.objects.missing_on(leaf))
        pool.commit()
        # ZFS resilvers on a device's return whenever some leaf's DTL is not empty
        # (vdev_resilver_needed), including a partner that came back first and
        # still lacks what only this member holds.
        if stale_leaves(pool):
            start_resilver(pool)
        return disk

    def unplug_disk(self, serial: str) -> None:
        """The volume is gone from this node: a pool leaf on it becomes REMOVED."""
        disk = self.disks.unplug(serial)
        if disk is None:
            return
        for pool in self.pools.values():
            for leaf in pool.leaves:
                if leaf.disk is disk:
                    leaf.detach("REMOVED")

    # --- disks ---------------------------------------------------------------
    def disk_pool(self, disk: Disk) -> str | None:
        if disk.boot:
            return BOOT_POOL
        for pool in self.pools.values():
            if any(leaf.disk is disk for leaf in pool.leaves):
                return pool.name
        return None

    def disk_entries(self, with_pools: bool) -> list[dict]:
        entries = []
        for disk in self.disks.all():
            guid = None
            if disk.backing_dir is not None:
                label = read_label(disk.backing_dir)
                guid = label["member_guid"] if label else None
            pool = self.disk_pool(disk) if with_pools else None
            entries.append(disk.to_entry(pool=pool, zfs_guid=guid))
        return entries

    # --- pools and datasets --------------------------------------------------
    def pool_by_id(self, pool_id: int) -> Pool | None:
        return next((p for p in self.pools.values() if p.id == pool_id), None)

    def find_dataset(self, name: str) -> tuple[Pool, str] | None:
        """(pool, dataset path relative to the pool) for a full dataset name."""
        if not isinstance(name, str):
            return None
        pool = self.pools.get(name.split("/", 1)[0])
        if pool is None:
            return None
        rel = pool.rel_name(name)
        if rel is None or rel not in pool.meta["datasets"]:
            return None
        return pool, rel

    def create_pool(self, name: str, data_vdevs: list[dict], **options: Any) -> Pool:
        return lifecycle.create_pool(self, name, data_vdevs, **options)

    def export_pool(self, pool: Pool, cascade: bool = False, destroy: bool = False) -> None:
        lifecycle.export_pool(self, pool, cascade=cascade, destroy=destroy)

    def import_find(self) -> list[dict]:
        return lifecycle.import_find(self)

    def import_pool(self, guid: str, name: str | None = None) -> Pool:
        pool = lifecycle.import_pool(self, guid, name)
        runtime = self.node.__dict__.get("_apps")    # Docker waiting for its pool at boot
        if runtime is not None:
            runtime.pool_imported(pool.name)
        return pool

    # --- files (filesystem.put / get / stat / listdir, /_upload, /_download) --
    def write_file(self, path: str, data: bytes, append: bool = False,
                   mode: int | None = None) -> None:
        files.write_file(self, path, data, append=append, mode=mode)
        runtime = self.node.__dict__.get("_apps")    # containers that mount it see it now
        if runtime is not None:
            runtime.host_file_written(path)

    def read_file(self, path: str) -> bytes:
        return files.read_file(self, path)

    def remove_file(self, path: str) -> None:
        """A process on the node unlinks the file (the API has no such method)."""
        files.remove_file(self, path)

    def chown(self, path: str, uid: int | None, gid: int | None, recursive: bool = False,
              traverse: bool = False) -> None:
        files.chown(self, path, uid, gid, recursive, traverse)

    def stat(self, path: str) -> dict:
        return files.stat(self, path)

    def listdir(self, path: str) -> list[dict]:
        return files.listdir(self, path)
