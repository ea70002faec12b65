"""pool.snapshot.* and their zfs.snapshot.* aliases (reference/truenas-api.md §4 Snapshots,
§8; pool.snapshot.*.json).

25.10 made `pool.snapshot.*` public and `zfs.snapshot.*` private; releases up to
25.04 only have `zfs.snapshot.*`, with the same argument shapes, so the aliases
serve clients written for either.
`query` lists every snapshot (by pool, dataset, then age); `options.extra.holds`
adds `holds`, `options.extra.retention` adds `retention` (when a periodic
snapshot task will drop the snapshot).
"""

from __future__ import annotations

import errno

from fakes.truenas.errors import CallError, ValidationErrors
from fakes.truenas.events import publish
from fakes.truenas.methods.common import query_methods
from fakes.truenas.methods.dataset import local_props
from fakes.truenas.methods.params import (
    EMPTY,
    MISSING,
    NOT_GIVEN,
    Bool,
    Field,
    List,
    Obj,
    Str,
    parse,
)
from fakes.truenas.models import cron, datasets, snapshots

CREATE = Obj({
    "dataset": Field(Str()),
    "name": Field(Str(), NOT_GIVEN),
    "naming_schema": Field(Str(), NOT_GIVEN),
    "recursive": Field(Bool(), False),
    "exclude": Field(List(Str()), lambda: []),
    "properties": Field(Obj(extra=True), lambda: {}),
    "vmware_sync": Field(Bool(), False),
})
DELETE_OPTIONS = Obj({"defer": Field(Bool(), False), "recursive": Field(Bool(), False)})
ROLLBACK_OPTIONS = Obj({"recursive": Field(Bool(), False),
                        "recursive_clones": Field(Bool(), False),
                        "force": Field(Bool(), False),
                        "recursive_rollback": Field(Bool(), False)})
CLONE = Obj({"snapshot": Field(Str()), "dataset_dst": Field(Str()),
             "dataset_properties": Field(Obj(extra=True), lambda: {})})


def _entries(node, extra: dict) -> list[dict]:
    storage = node.storage
    entries = []
    for pool in sorted(storage.pools.values(), key=lambda p: p.name):
        for rel in sorted(pool.meta["datasets"]):
            for key in snapshots.of_dataset(pool, rel):
                retention = None
                if extra.get("retention"):
                    retention = storage.tasks.retention_of(pool, key)
                entry = snapshots.entry(pool, key, holds=bool(extra.get("holds")),
                                        retention=retention)
                if extra.get("retention") and retention is None:
                    entry["retention"] = None
                entries.append(entry)
    return entries


query, get_instance = query_methods(_entries, "id", Str(), "Snapshot")


def _find(node, snapshot_id: str):
    """(pool, snapshot key) or CallError ENOENT."""
    dataset, name = snapshots.split_id(snapshot_id)
    found = node.storage.find_dataset(dataset)
    if found is not None:
        pool, rel = found
        key = snapshots.key(rel, name)
        if key in pool.meta["snapshots"]:
            return pool, key
    raise CallError(f"Snapshot {snapshot_id} not found", errno.ENOENT)


def create(node, params, ctx):
    (data,) = parse(params, [("data", CREATE, MISSING)])
    attribute = "pool_snapshot_create"
    has_name, has_schema = "name" in data, "naming_schema" in data
    if has_name == has_schema:
        raise ValidationErrors([(f"{attribute}.naming_schema",
                                 "You must specify either name or naming schema"
                                 if not has_name else
                                 "You can only specify either name or naming schema",
                                 errno.EINVAL)])
    storage = node.storage
    found = storage.find_dataset(data["dataset"])
    if found is None:
        raise ValidationErrors([(f"{attribute}.dataset",
                                 f"Dataset {data['dataset']} does not exist", errno.ENOENT)])
    pool, rel = found
    now = storage.now()
    if has_schema:
        problem = cron.schema_problem(data["naming_schema"])
        if problem:
            raise ValidationErrors([(f"{attribute}.naming_schema", problem, errno.EINVAL)])
        name = cron.format_name(data["naming_schema"], now)
    else:
        name = data["name"]
    problem = snapshots.name_problem(name)
    if problem:
        raise ValidationErrors([(f"{attribute}.name", problem, errno.EINVAL)])
    user_props = {k: str(v) for k, v in data["properties"].items()}
    keys = snapshots.create(pool, rel, name, recursive=data["recursive"],
                            exclude=data["exclude"], now=now, user_props=user_props)
    pool.commit()
    entry = snapshots.entry(pool, keys[0])
    for namespace in _event_namespaces(ctx):
        publish(node, f"{namespace}.query", "added", id=entry["id"], fields=entry)
    return entry


def delete(node, params, ctx):
    snapshot_id, options = parse(params, [("id", Str(), MISSING),
                                          ("options", DELETE_OPTIONS, EMPTY)])
    pool, key = _find(node, snapshot_id)
    snapshots.delete(pool, key, recursive=options["recursive"])
    pool.commit()
    for namespace in _event_namespaces(ctx):
        extra = {"recursive": options["recursive"]} if namespace == "pool.snapshot" else {}
        publish(node, f"{namespace}.query", "removed", id=snapshot_id, **extra)
    return True


def rollback(node, params, ctx):
    snapshot_id, options = parse(params, [("id", Str(), MISSING),
                                          ("options", ROLLBACK_OPTIONS, EMPTY)])
    pool, key = _find(node, snapshot_id)
    snapshots.rollback(pool, key, recursive=options["recursive"],
                       recursive_clones=options["recursive_clones"],
                       recursive_rollback=options["recursive_rollback"])
    pool.commit()
    return None


def clone(node, params, ctx):
    (data,) = parse(params, [("data", CLONE, MISSING)])
    pool, key = _find(node, data["snapshot"])
    destination = data["dataset_dst"]
    attribute = "pool_snapshot_clone.dataset_dst"
    problem = datasets.name_problem(destination)
    if problem:
        raise ValidationErrors([(attribute, problem, errno.EINVAL)])
    rel = pool.rel_name(destination)
    if rel is None or rel == "":
        raise ValidationErrors([(attribute, f"{destination}: a clone must be a new dataset "
                                 f"in the snapshot's pool ({pool.name})", errno.EINVAL)])
    snapshots.clone(pool, key, rel, node.storage.now(), local_props(data["dataset_properties"]))
    pool.commit()
    return True


def _event_namespaces(ctx) -> tuple[str, ...]:
    """pool.snapshot.create/delete call zfs.snapshot.create/delete, a CRUDService
    whose wrapper sends zfs.snapshot.query ADDED/REMOVED (crud_service.py), then
    send pool.snapshot.query ADDED/REMOVED themselves (plugins/pool_/snapshot.py
    do_create, do_delete with extra `recursive`); zfs.snapshot.* alone sends the first."""
    return ("zfs.snapshot", "pool.snapshot") if ctx.method.startswith("pool.") \
        else ("zfs.snapshot",)


METHODS = {}
for _namespace in ("pool.snapshot", "zfs.snapshot"):
    METHODS.update({
        f"{_namespace}.query": query,
        f"{_namespace}.get_instance": get_instance,
        f"{_namespace}.create": create,
        f"{_namespace}.delete": delete,
        f"{_namespace}.rollback": rollback,
        f"{_namespace}.clone": clone,
    })
