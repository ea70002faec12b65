"""pool.replace: a new disk takes a leaf's place, filled by a resilver.

Facts followed (reference/truenas-api.md §4 pool.replace, §7; plugins/pool_/replace_disk.py):
- `pool.replace <pool id> {"label": <leaf guid or device name>, "disk": <disk
  identifier>, "force", "preserve_settings", "preserve_description"}` is a job
  returning true when the resilver is done;
- `options.disk` not found is ENOENT; a disk in use by a pool is EBUSY; a disk
  that is not clean needs `force` (`options.force`); `options.label` not found is
  ENOENT. The exact message wording is chosen, not checked;
- a replacement smaller than the vdev's smallest member is refused by ZFS
  ("device is too small").
While it resilvers the old and new leaves form a "replacing" vdev; at the end the
old leaf is detached and its label cleared if its disk is still plugged.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from fakes.truenas.errors import CallError, ValidationErrors
from fakes.truenas.models.layout import MemberStore, read_label
from fakes.truenas.models.scan import start_resilver
from fakes.truenas.models.topology import Member

if TYPE_CHECKING:
    from fakes.truenas.jobs import Job
    from fakes.truenas.models.pools import Pool
    from fakes.truenas.models.storage import NodeStorage
    from fakes.truenas.models.topology import Vdev


def find_slot(pool: Pool, label: str) -> tuple[Vdev, Member] | None:
    """The slot a label names: a leaf guid, a partition ("sdb1") or a disk ("sdb")."""
    wanted = label.removeprefix("/dev/")
    for vdev in pool.vdevs:
        for slot in vdev.members:
            if wanted == slot.guid:
                return vdev, slot
            disk = slot.disk
            if disk is not None and wanted in (disk.name, f"{disk.name}1"):
                return vdev, slot
    return None


def replace(storage: NodeStorage, pool: Pool, label: str, identifier: str, force: bool,
            job: Job) -> None:
    verrors = ValidationErrors()
    disk = storage.disks.by_identifier(identifier)
    if disk is None:
        verrors.add("options.disk", f"Disk {identifier!r} not found.", errno.ENOENT)
    elif disk.boot or storage.disk_pool(disk) is not None:
        verrors.add("options.disk", f"Disk {identifier!r} is already in use.", errno.EBUSY)
    elif not force and read_label(disk.backing_dir) is not None:
        verrors.add("options.force", "Disk is not clean, partitions were found.")
    found = find_slot(pool, label)
    if found is None:
        verrors.add("options.label", f"Label {label} not found.", errno.ENOENT)
    verrors.check()
    assert disk is not None and found is not None
    vdev, slot = found
    if slot.replacement is not None:
        raise CallError(f"cannot replace {label}: it is already being replaced", errno.EBUSY)
    if disk.size < vdev.capacity:
        raise CallError(f"cannot replace {label} with {disk.name}: device is too small",
                        errno.EINVAL)
    pool.require_writable()
    MemberStore(disk.backing_dir).wipe()
    new = Member.new(disk)
    new.stale = True
    slot.replacement = new
    pool.commit()
    start_resilver(pool, waiter=job, guid=new.guid)
