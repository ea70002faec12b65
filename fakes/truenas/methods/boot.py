"""boot.get_state: the boot pool as `pool.query` shows a pool, without `id` and `guid`
(middleware 25.10 `plugins/boot.py` get_state -> `pool.pool_normalize_info('boot-pool')`;
`api/v25_10_2/boot.py` BootGetState = PoolEntry minus id, guid).

The boot pool is one partition of the droplet's own disk, `vda` (partition 3 on a
real install; the fake's leaf names the device `vda3` for that reason). Its
allocation is not modelled: `allocated` is a fixed few GiB, what a fresh 25.10
install uses as far as known [I].
"""

from __future__ import annotations

import uuid

from fakes.truenas.methods.params import parse
from fakes.truenas.models.disks import BOOT_POOL

BOOT_ALLOCATED = 3 * 2**30


def get_state(node, params, ctx):
    parse(params, [])
    disk = node.storage.disks.boot
    partuuid = str(uuid.uuid5(uuid.NAMESPACE_OID, f"boot-partition:{disk.serial}"))
    guid = str(uuid.uuid5(uuid.NAMESPACE_OID, f"boot-vdev:{disk.serial}").int >> 64 or 1)
    stats = {"timestamp": 0, "read_errors": 0, "write_errors": 0, "checksum_errors": 0,
             "ops": [0] * 7, "bytes": [0] * 7, "size": disk.size, "allocated": BOOT_ALLOCATED,
             "fragmentation": 0, "self_healed": 0, "configured_ashift": 12,
             "logical_ashift": 9, "physical_ashift": 12}
    leaf = {"name": partuuid, "type": "DISK", "path": f"/dev/disk/by-partuuid/{partuuid}",
            "guid": guid, "status": "ONLINE", "stats": stats, "children": [],
            "device": f"{disk.name}3", "disk": disk.name, "unavail_disk": None}
    free = disk.size - BOOT_ALLOCATED
    return {
        "name": BOOT_POOL, "status": "ONLINE", "path": f"/{BOOT_POOL}", "scan": None,
        "expand": None, "is_upgraded": True, "healthy": True, "warning": False,
        "status_code": "OK", "status_detail": None, "size": disk.size,
        "allocated": BOOT_ALLOCATED, "free": free, "freeing": 0, "dedup_table_size": 0,
        "dedup_table_quota": "auto", "fragmentation": "0", "size_str": str(disk.size),
        "allocated_str": str(BOOT_ALLOCATED), "free_str": str(free), "freeing_str": "0",
        "autotrim": {"value": "off", "rawvalue": "off", "parsed": "off", "source": "DEFAULT"},
        "topology": {"data": [leaf], "log": [], "cache": [], "spare": [], "special": [],
                     "dedup": []},
    }


METHODS = {"boot.get_state": get_state}
