"""pool.dataset.* (reference/truenas-api.md §4 Datasets; pool.dataset.*.json).

create returns the entry; query takes `(filters, options)` and lists every
dataset, each with its children nested (`options.extra.flat: false` lists only
the pools' root datasets); delete returns true, or null when the dataset was
already gone; update sets or (with "INHERIT") clears local properties.
"""

from __future__ import annotations

import errno

from fakes.truenas.errors import CallError, ValidationErrors
from fakes.truenas.events import publish
from fakes.truenas.methods.common import get_instance_of as _get_instance
from fakes.truenas.methods.common import instance_not_found
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
    Union,
    parse,
)
from fakes.truenas.methods.query import QUERY_ARGS, QUERY_OPTIONS, filter_list
from fakes.truenas.models import datasets, props

PROP_VALUE = Union([Str(), Int()], nullable=True)
PROP_FIELDS = {name: Field(PROP_VALUE, NOT_GIVEN) for name in props.SETTABLE}
USER_PROPERTY = Obj({"key": Field(Str()), "value": Field(Str())})
CREATE = Obj({
    "name": Field(Str()),
    "type": Field(Str(["FILESYSTEM", "VOLUME"]), "FILESYSTEM"),
    "create_ancestors": Field(Bool(), False),
    "user_properties": Field(List(USER_PROPERTY), lambda: []),
    "encryption": Field(Bool(), False),
    "inherit_encryption": Field(Bool(), True),
    "encryption_options": Field(Obj(extra=True), NOT_GIVEN),
    "share_type": Field(Str(["GENERIC", "MULTIPROTOCOL", "NFS", "SMB", "APPS"]), "GENERIC"),
    "force_size": Field(Bool(), NOT_GIVEN),
    "sparse": Field(Bool(), NOT_GIVEN),
    **PROP_FIELDS,
})
UPDATE = Obj({
    "user_properties": Field(List(USER_PROPERTY), NOT_GIVEN),
    "user_properties_update": Field(List(Obj(extra=True)), NOT_GIVEN),
    "force_size": Field(Bool(), NOT_GIVEN),
    **{k: v for k, v in PROP_FIELDS.items() if k not in ("casesensitivity", "volblocksize")},
})
DELETE_OPTIONS = Obj({"recursive": Field(Bool(), False), "force": Field(Bool(), False)})


def local_props(data: dict) -> dict[str, str]:
    """API property values -> ZFS rawvalues set locally ("INHERIT"/null: not set)."""
    local = {}
    for name in props.SETTABLE:
        value = data.get(name)
        if value is None or value == "INHERIT":
            continue
        local[name] = props.raw_from_api(name, value)
    return local


def _entries(node, flat: bool = True) -> list[dict]:
    entries = []
    for pool in sorted(node.storage.pools.values(), key=lambda p: p.name):
        rels = sorted(pool.meta["datasets"]) if flat else [""]
        entries += [datasets.entry(pool, rel) for rel in rels]
    return entries


def query(node, params, ctx):
    filters, options = parse(params, QUERY_ARGS)
    flat = options["extra"].get("flat", True)
    return filter_list(_entries(node, flat=bool(flat)), filters, options)


def get_instance(node, params, ctx):
    name, options = parse(params, [("id", Str(), MISSING), ("options", QUERY_OPTIONS, EMPTY)])
    return _get_instance(_entries(node), "id", name, "Dataset", options)


def create(node, params, ctx):
    (data,) = parse(params, [("data", CREATE, MISSING)])
    name = data["name"]
    attribute = "pool_dataset_create.name"
    if data["type"] == "VOLUME" and "volsize" not in data:
        raise ValidationErrors([("data.volsize", "Field required", errno.EINVAL)])
    if "/" not in name:
        raise ValidationErrors([(attribute, "You need a full name, e.g. pool/newdataset",
                                 errno.EINVAL)])
    problem = datasets.name_problem(name)
    if problem:
        raise ValidationErrors([(attribute, problem, errno.EINVAL)])
    if data["encryption"]:
        raise CallError("The fake TrueNAS does not model encrypted datasets", errno.ENOTSUP)
    storage = node.storage
    pool = storage.pools.get(name.split("/", 1)[0])
    if pool is None:
        raise ValidationErrors([(attribute, f"Parent dataset ({name.split('/', 1)[0]}) does "
                                 "not exist.", errno.ENOENT)])
    user_props = {}
    for prop in data["user_properties"]:
        if ":" not in prop["key"]:
            raise ValidationErrors([("pool_dataset_create.user_properties",
                                     f"User property {prop['key']!r} must contain ':'",
                                     errno.EINVAL)])
        user_props[prop["key"]] = prop["value"]
    rel = pool.rel_name(name)
    datasets.create(pool, rel, dataset_type=data["type"], local=local_props(data),
                    user_props=user_props, create_ancestors=data["create_ancestors"],
                    now=storage.now(), attribute=attribute)
    pool.commit()
    entry = datasets.entry(pool, rel)
    # plugins/pool_/dataset.py do_create: send_event('pool.dataset.query', 'ADDED', ...)
    publish(node, "pool.dataset.query", "added", id=name, fields=entry)
    return entry


def update(node, params, ctx):
    name, data = parse(params, [("id", Str(), MISSING), ("data", UPDATE, MISSING)])
    found = node.storage.find_dataset(name)
    if found is None:
        raise instance_not_found("Dataset", name)      # get_instance(id_) raises it
    pool, rel = found
    pool.require_writable()
    record = pool.meta["datasets"][rel]
    for key in props.SETTABLE:
        if key in data:
            if data[key] == "INHERIT" or data[key] is None:
                record["props"].pop(key, None)
            else:
                record["props"][key] = props.raw_from_api(key, data[key])
    for prop in data.get("user_properties", []):
        record["user_props"][prop["key"]] = prop["value"]
    for prop in data.get("user_properties_update", []):
        if prop.get("remove"):
            record["user_props"].pop(prop.get("key"), None)
        elif "key" in prop and "value" in prop:
            record["user_props"][prop["key"]] = prop["value"]
    pool.commit()
    entry = datasets.entry(pool, rel)
    # plugins/pool_/dataset.py do_update: send_event('pool.dataset.query', 'CHANGED', ...)
    publish(node, "pool.dataset.query", "changed", id=name, fields=entry)
    return entry


def delete(node, params, ctx):
    name, options = parse(params, [("id", Str(), MISSING), ("options", DELETE_OPTIONS, EMPTY)])
    found = node.storage.find_dataset(name)
    if found is None:
        return None
    pool, rel = found
    datasets.delete(pool, rel, recursive=options["recursive"])
    pool.commit()
    # plugins/zfs_/zfs_events.py: the ZFS history event of a destroy sends
    # pool.dataset.query REMOVED (once per destroyed dataset there; once here).
    publish(node, "pool.dataset.query", "removed", id=name)
    return True


METHODS = {
    "pool.dataset.query": query,
    "pool.dataset.get_instance": get_instance,
    "pool.dataset.create": create,
    "pool.dataset.update": update,
    "pool.dataset.delete": delete,
}
