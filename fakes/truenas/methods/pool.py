"""pool.* (reference/truenas-api.md §4 pool.create, pool.query, pool.replace, Scrub; the
pool.*.json schemas).

Jobs: pool.create, pool.replace, pool.scrub, pool.export, pool.import_find and
pool.import_pool. Argument types are checked before the job exists (an immediate
-32602, as pydantic does); the plugin's own checks run inside the job, so they
fail the job (exc_info.type "VALIDATION"), as they do in middleware.
"""

from __future__ import annotations

from fakes.truenas.events import publish
from fakes.truenas.methods.common import instance_not_found, query_methods, submit
from fakes.truenas.methods.params import (
    EMPTY,
    MISSING,
    NOT_GIVEN,
    Bool,
    Field,
    Int,
    List,
    Obj,
    Str,
    parse,
)
from fakes.truenas.models import replace as replacing
from fakes.truenas.models import scan

DATA_TYPES = ["RAIDZ1", "RAIDZ2", "RAIDZ3", "MIRROR", "STRIPE", "DRAID1", "DRAID2", "DRAID3"]


def _vdev(types: list[str]) -> Obj:
    return Obj({"type": Field(Str(types)), "disks": Field(List(Str())),
                "draid_data_disks": Field(Int(nullable=True), NOT_GIVEN),
                "draid_spare_disks": Field(Int(), NOT_GIVEN)})


POOL_CREATE = Obj({
    "name": Field(Str()),
    "encryption": Field(Bool(), False),
    "encryption_options": Field(Obj({
        "generate_key": Field(Bool(), False), "pbkdf2iters": Field(Int(), 350000),
        "algorithm": Field(Str(), "AES-256-GCM"), "passphrase": Field(Str(nullable=True), None),
        "key": Field(Str(nullable=True), None)}), EMPTY),
    "topology": Field(Obj({
        "data": Field(List(_vdev(DATA_TYPES))),
        "special": Field(List(_vdev(["MIRROR", "STRIPE"])), lambda: []),
        "dedup": Field(List(_vdev(["MIRROR", "STRIPE"])), lambda: []),
        "cache": Field(List(_vdev(["STRIPE"])), lambda: []),
        "log": Field(List(_vdev(["MIRROR", "STRIPE"])), lambda: []),
        "spares": Field(List(Str()), lambda: []),
    })),
    "allow_duplicate_serials": Field(Bool(), False),
    "checksum": Field(Str(nullable=True), None),
    "deduplication": Field(Str(["ON", "VERIFY", "OFF"], nullable=True), None),
    "dedup_table_quota": Field(Str(["AUTO", "CUSTOM"], nullable=True), "AUTO"),
    "dedup_table_quota_value": Field(Int(nullable=True), None),
})
REPLACE_OPTIONS = Obj({"label": Field(Str()), "disk": Field(Str()),
                       "force": Field(Bool(), False),
                       "preserve_settings": Field(Bool(), True),
                       "preserve_description": Field(Bool(), True)})
EXPORT_OPTIONS = Obj({"cascade": Field(Bool(), False), "restart_services": Field(Bool(), False),
                      "destroy": Field(Bool(), False)})
IMPORT_ARGS = Obj({"guid": Field(Str()), "name": Field(Str(nullable=True), None)})


def _pool(node, pool_id):
    pool = node.storage.pool_by_id(pool_id)
    if pool is None:
        raise instance_not_found("Pool", pool_id)
    return pool


def _entries(node, extra: dict | None = None):
    return [p.to_entry() for p in sorted(node.storage.pools.values(), key=lambda p: p.id)]


query, get_instance = query_methods(_entries, "id", Int(), "Pool")


def create(node, params, ctx):
    (data,) = parse(params, [("data", POOL_CREATE, MISSING)])
    topology = data["topology"]

    def start(job):
        pool = node.storage.create_pool(
            data["name"], topology["data"],
            allow_duplicate_serials=data["allow_duplicate_serials"],
            other_vdevs={k: topology[k] for k in ("special", "dedup", "cache", "log", "spares")},
            encryption=data["encryption"])
        entry = pool.to_entry()
        # plugins/pool_/pool.py do_create: send_event('pool.query', 'ADDED', ...)
        publish(node, "pool.query", "added", id=entry["id"], fields=entry)
        job.succeed(entry)

    return submit(node, ctx, "pool.create", params, start,
                  description=f"Creating pool {data['name']}")


def replace(node, params, ctx):
    pool_id, options = parse(params, [("id", Int(), MISSING),
                                      ("options", REPLACE_OPTIONS, MISSING)])

    def start(job):
        replacing.replace(node.storage, _pool(node, pool_id), options["label"],
                          options["disk"], options["force"], job)

    return submit(node, ctx, "pool.replace", params, start,
                  description=f"Replacing disk {options['label']}")


def scrub(node, params, ctx):
    pool_id, action = parse(params, [("id", Int(), MISSING),
                                     ("action", Str(["START", "STOP", "PAUSE"]), MISSING)])

    def start(job):
        pool = _pool(node, pool_id)
        if action == "START":
            scan.start_scrub(pool, job)
        else:
            scan.stop_scrub(pool, action)
            job.succeed(None)

    return submit(node, ctx, "pool.scrub", params, start, transient=True,
                  description=f"Scrub of pool {pool_id}")


def export(node, params, ctx):
    pool_id, options = parse(params, [("id", Int(), MISSING), ("options", EXPORT_OPTIONS, EMPTY)])

    def start(job):
        node.storage.export_pool(_pool(node, pool_id), cascade=options["cascade"],
                                 destroy=options["destroy"])
        # plugins/pool_/export.py: send_event('pool.query', 'REMOVED', id=oid)
        publish(node, "pool.query", "removed", id=pool_id)
        job.succeed(None)

    return submit(node, ctx, "pool.export", params, start, description="Exporting pool")


def import_find(node, params, ctx):
    parse(params, [])
    return submit(node, ctx, "pool.import_find", params,
                  lambda job: job.succeed(node.storage.import_find()))


def import_pool(node, params, ctx):
    (data,) = parse(params, [("pool_import", IMPORT_ARGS, MISSING)])

    def start(job):
        entry = node.storage.import_pool(data["guid"], data["name"]).to_entry()
        # plugins/pool_/import_pool.py: send_event('pool.query', 'ADDED', ...)
        publish(node, "pool.query", "added", id=entry["id"], fields=entry)
        job.succeed(True)

    return submit(node, ctx, "pool.import_pool", params, start, description="Importing pool")


def flatten_topology(node, params, ctx):
    (topology,) = parse(params, [("topology", Obj(extra=True), MISSING)])
    flat, stack = [], [v for key in ("data", "log", "cache", "spare", "special", "dedup")
                      for v in topology.get(key, [])]
    while stack:
        vdev = stack.pop(0)
        flat.append(vdev)
        stack.extend(vdev.get("children", []))
    return flat


METHODS = {
    "pool.query": query,
    "pool.get_instance": get_instance,
    "pool.create": create,
    "pool.replace": replace,
    "pool.scrub": scrub,
    "pool.export": export,
    "pool.import_find": import_find,
    "pool.import_pool": import_pool,
    "pool.flatten_topology": flatten_topology,
}
