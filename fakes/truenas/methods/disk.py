"""disk.* (truenas-api.md §4 disk.query; disk.query.json).

`disk.query` takes `(filters, options)`; `options.extra.pools: true` fills each
entry's `pool` (otherwise null). `disk.get_unused` (what middleware's own tests
call) lists the disks no pool uses, boot disk excluded.
"""

from __future__ import annotations

from fakes.truenas.methods.common import get_instance as _get_instance
from fakes.truenas.methods.params import EMPTY, MISSING, Bool, Str, parse
from fakes.truenas.methods.query import QUERY_ARGS, QUERY_OPTIONS, filter_list


def query(node, params, ctx):
    filters, options = parse(params, QUERY_ARGS)
    with_pools = bool(options["extra"].get("pools"))
    return filter_list(node.storage.disk_entries(with_pools), filters, options)


def get_instance(node, params, ctx):
    identifier, options = parse(params, [("id", Str(), MISSING), ("options", QUERY_OPTIONS, EMPTY)])
    with_pools = bool(options["extra"].get("pools"))
    return _get_instance(node.storage.disk_entries(with_pools), "identifier", identifier,
                         "Disk", options)


def get_unused(node, params, ctx):
    parse(params, [("join_partitions", Bool(), False)])
    return [entry for entry in node.storage.disk_entries(with_pools=True)
            if entry["pool"] is None]


METHODS = {
    "disk.query": query,
    "disk.get_instance": get_instance,
    "disk.get_unused": get_unused,
}
