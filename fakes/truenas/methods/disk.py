"""disk.* (reference/truenas-api.md §4 disk.query; disk.query.json).

`disk.query` takes `(filters, options)`; `options.extra.pools: true` fills each
entry's `pool` (otherwise null). `disk.get_unused` (what middleware's own tests
call) lists the disks no pool uses, boot disk excluded.
"""

from __future__ import annotations

from fakes.truenas.methods.common import query_methods
from fakes.truenas.methods.params import Bool, Str, parse


def _disks(node, extra: dict) -> list[dict]:
    return node.storage.disk_entries(bool(extra.get("pools")))


query, get_instance = query_methods(_disks, "identifier", Str(), "Disk")


def get_unused(node, params, ctx):
    parse(params, [("join_partitions", Bool(), False)])
    return [entry for entry in node.storage.disk_entries(with_pools=True)
            if entry["pool"] is None]


METHODS = {
    "disk.query": query,
    "disk.get_instance": get_instance,
    "disk.get_unused": get_unused,
}
