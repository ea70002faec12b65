"""A pool's life on a node: create, export, find importable pools, import.

Facts followed (reference/truenas-api.md §4 pool.create and §7; pool.create.json,
pool.export.json, pool.import_find.json, pool.import_pool.json):
- pool.create takes disks by device name (`sdb`); vdev types STRIPE, MIRROR,
  RAIDZ1-3, DRAID1-3; minimum disks per type (STRIPE 1, MIRROR 2, RAIDZ1 3, RAIDZ2
  4, RAIDZ3 5) reported at `pool_create.topology.data.<i>.disks`; disks that do not
  exist or are in use (the boot disk, another pool's members), and duplicate
  serials unless `allow_duplicate_serials`, are refused under
  `pool_create.topology` (disk.check_disks_availability); a duplicate name is
  `pool_create.name` EEXIST; creating a pool formats its disks;
- pool.export `{cascade, restart_services, destroy}` returns null; destroy wipes
  the members; cascade deletes what is attached to the pool (here: periodic
  snapshot tasks), otherwise those are disabled until the pool is imported again;
- pool.import_find returns `[{name, guid, status, hostname}]` from the labels of
  the disks the node sees; pool.import_pool `{guid, name?}` returns true; TrueNAS
  imports pools last used by another host (a droplet that died cannot export).
The fake models STRIPE and MIRROR vdevs only. RAIDZ and dRAID are valid TrueNAS
layouts, so they are not rejected as invalid input: pool.create fails with a
CallError (ENOTSUP) that says the fake does not model them. Likewise for cache,
log, spare, special and dedup vdevs and for encrypted pools.
"""

from __future__ import annotations

import errno
import re
from typing import TYPE_CHECKING

from fakes.truenas.errors import CallError, ValidationErrors
from fakes.truenas.models import datasets
from fakes.truenas.models.layout import MemberStore, read_label
from fakes.truenas.models.pools import Pool, build_vdevs, new_meta
from fakes.truenas.models.scan import start_resilver
from fakes.truenas.models.topology import Vdev, new_guid, pool_status

if TYPE_CHECKING:
    from fakes.truenas.models.disks import Disk
    from fakes.truenas.models.storage import NodeStorage

MIN_DISKS = {"STRIPE": 1, "MIRROR": 2, "RAIDZ1": 3, "RAIDZ2": 4, "RAIDZ3": 5,
             "DRAID1": 2, "DRAID2": 3, "DRAID3": 4}
MODELLED = ("STRIPE", "MIRROR")
POOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]*$")
RESERVED = re.compile(r"^(mirror|raidz|draid|spare|log|c[0-9])")
MAX_POOL_NAME = 50


def pool_name_problem(name: str) -> str | None:
    if not name or len(name) > MAX_POOL_NAME:
        return f"Pool name must be 1 to {MAX_POOL_NAME} characters long"
    if not POOL_NAME.match(name):
        return ("Pool name must begin with a letter and contain only letters, numbers, "
                "'_', '-', '.' and ':'")
    if RESERVED.match(name) or name in ("boot-pool", "freenas-boot"):
        return f"Pool name {name!r} is reserved"
    return None


def create_pool(storage: NodeStorage, name: str, data_vdevs: list[dict], *,
                allow_duplicate_serials: bool = False,
                other_vdevs: dict[str, list] | None = None, encryption: bool = False,
                attribute: str = "pool_create") -> Pool:
    """`data_vdevs` as in pool.create: [{"type": "MIRROR", "disks": ["sda", "sdb"]}]."""
    other_vdevs = other_vdevs or {}
    verrors = ValidationErrors()
    problem = pool_name_problem(name)
    if problem:
        verrors.add(f"{attribute}.name", problem)
    elif name in storage.pools:
        verrors.add(f"{attribute}.name", "A pool with this name already exists.", errno.EEXIST)
    if not data_vdevs:
        verrors.add(f"{attribute}.topology.data", "At least one data vdev is required.")
    for i, vdev in enumerate(data_vdevs):
        needed = MIN_DISKS.get(vdev["type"], 1)
        if len(vdev["disks"]) < needed:
            verrors.add(f"{attribute}.topology.data.{i}.disks",
                        f"You need at least {needed} disk(s) for this vdev type.")
    names = [d for vdev in data_vdevs for d in vdev["disks"]]
    missing = [n for n in names if storage.disks.by_name(n) is None]
    found = [storage.disks.by_name(n) for n in names if storage.disks.by_name(n) is not None]
    in_use = [d.name for d in found if storage.disk_pool(d) is not None]
    repeated = sorted({n for n in names if names.count(n) > 1})
    serials = [d.serial for d in found]
    if missing:
        verrors.add(f"{attribute}.topology",
                    f"The following disks were not found in system: {', '.join(missing)}.")
    if in_use:
        verrors.add(f"{attribute}.topology",
                    f"The following disks are already in use: {', '.join(in_use)}.")
    if repeated:
        verrors.add(f"{attribute}.topology",
                    f"Disks must appear only once in the topology: {', '.join(repeated)}.")
    if not allow_duplicate_serials and len(set(serials)) != len(serials):
        dup = sorted({s for s in serials if serials.count(s) > 1})
        verrors.add(f"{attribute}.topology",
                    f"Disks have duplicate serial numbers: {', '.join(dup)}.")
    verrors.check()
    unmodelled = sorted({v["type"] for v in data_vdevs if v["type"] not in MODELLED})
    if unmodelled:
        raise CallError(f"The fake TrueNAS does not model {', '.join(unmodelled)} vdevs "
                        "(only STRIPE and MIRROR data vdevs)", errno.ENOTSUP)
    extras = sorted(kind for kind, vdevs in other_vdevs.items() if vdevs)
    if extras:
        raise CallError(f"The fake TrueNAS does not model {', '.join(extras)} vdevs",
                        errno.ENOTSUP)
    if encryption:
        raise CallError("The fake TrueNAS does not model encrypted pools", errno.ENOTSUP)
    layout = []
    for vdev in data_vdevs:
        disks = [storage.disks.by_name(n) for n in vdev["disks"]]
        for disk in disks:
            MemberStore(disk.backing_dir).wipe()      # pool.create formats its disks
        layout.append((vdev["type"], disks))
    now = storage.now()
    pool = Pool(storage, storage.next_pool_id(), name, new_guid(), build_vdevs(layout),
                new_meta(now))
    datasets.create_root(pool, now)
    storage.pools[name] = pool
    pool.commit()
    return pool


def export_pool(storage: NodeStorage, pool: Pool, *, cascade: bool, destroy: bool) -> None:
    if pool.scan is not None and pool.scan.state == "SCANNING":
        pool.scan.stop()
    storage.tasks.pool_leaving(pool, delete=cascade or destroy)
    if destroy:
        for leaf in pool.leaves:
            if leaf.online:
                leaf.store.wipe()
    else:
        pool.commit(exported=True)
    del storage.pools[pool.name]


# --- finding and importing ---------------------------------------------------
def _labels(storage: NodeStorage) -> dict[str, list[tuple[Disk, dict]]]:
    imported = {pool.guid for pool in storage.pools.values()}
    groups: dict[str, list[tuple[Disk, dict]]] = {}
    for disk in storage.disks.by_serial.values():
        label = read_label(disk.backing_dir)
        if label is not None and label["pool_guid"] not in imported:
            groups.setdefault(label["pool_guid"], []).append((disk, label))
    for found in groups.values():
        found.sort(key=lambda item: item[1]["txg"], reverse=True)
    return groups


def _assemble(found: list[tuple[Disk, dict]]) -> list[Vdev]:
    """The newest label's topology, with each member attached to the disk holding it."""
    best = found[0][1]
    vdevs = [Vdev.from_description(v) for v in best["topology"]]
    holders: dict[str, Disk] = {}
    for disk, label in found:       # newest first: a stale copy never wins
        holders.setdefault(label["member_guid"], disk)
    for vdev in vdevs:
        for leaf in vdev.leaves:
            if leaf.guid in holders:
                leaf.attach(holders[leaf.guid])
    return vdevs


def import_find(storage: NodeStorage) -> list[dict]:
    result = []
    for guid, found in _labels(storage).items():
        best = found[0][1]
        result.append({"name": best["pool_name"], "guid": guid,
                       "status": pool_status(_assemble(found)),
                       "hostname": best["hostname"]})
    return sorted(result, key=lambda entry: entry["name"])


def import_pool(storage: NodeStorage, guid: str, name: str | None) -> Pool:
    found = _labels(storage).get(guid)
    if not found:
        raise ValidationErrors([("pool_import.guid",
                                 f"Pool with guid {guid!r} not found for import.",
                                 errno.ENOENT)])
    best = found[0][1]
    new_name = name or best["pool_name"]
    problem = pool_name_problem(new_name)
    if problem:
        raise ValidationErrors([("pool_import.name", problem, errno.EINVAL)])
    if new_name in storage.pools:
        raise ValidationErrors([("pool_import.name",
                                 f"A pool named {new_name} is already imported.",
                                 errno.EEXIST)])
    vdevs = _assemble(found)
    if pool_status(vdevs) == "UNAVAIL":
        raise CallError(f"cannot import '{best['pool_name']}': one or more devices is "
                        "currently unavailable", errno.ENXIO)
    meta = None
    for _disk, label in found:
        leaf = next((leaf for vdev in vdevs for leaf in vdev.leaves
                     if leaf.guid == label["member_guid"] and leaf.online), None)
        if leaf is not None:
            meta = leaf.store.read_meta()
            if meta is not None:
                break
    if meta is None:
        raise CallError(f"cannot import '{best['pool_name']}': no member holds readable "
                        "pool metadata", errno.EIO)
    pool = Pool(storage, storage.next_pool_id(), new_name, guid, vdevs, meta)
    for leaf in pool.leaves:
        if leaf.online:
            leaf.store.drop_objects(pool.objects.extra_on(leaf))
            leaf.stale = bool(pool.objects.missing_on(leaf))
    storage.pools[new_name] = pool
    pool.commit()
    storage.tasks.pool_arrived(pool)
    if any(leaf.stale for leaf in pool.leaves):
        start_resilver(pool)
    return pool
