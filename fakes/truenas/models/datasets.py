"""Datasets: a pool's filesystems (and volumes), their properties and usage.

Facts followed (reference/truenas-api.md §4 Datasets, pool.dataset.*.json):
- `pool.dataset.create {"name": "tank/ds", "type": "FILESYSTEM", ...}` returns the
  entry; `id == name`; mountpoint `/mnt/<name>`; volumes (`type: "VOLUME"`, with
  `volsize`) have no mountpoint;
- the parent must exist: `pool_dataset_create.name: Parent dataset (...) does not
  exist.` unless `create_ancestors`; a duplicate is EEXIST;
- `pool.dataset.delete "tank/ds" {"recursive", "force"}` returns true; ZFS refuses
  to destroy a dataset with children or snapshots unless recursive ("filesystem has
  children"), a snapshot with clones ("snapshot has dependent clones"), and the
  root dataset of a pool (that is `pool.export` with destroy);
- names: ZFS's rules (components of letters, digits, `_ - . :` and space; not "."
  or ".."; at most 255 characters; no `@` or `#`).
The pool's root dataset exists from pool creation on, named like the pool.
"""

from __future__ import annotations

import errno
import re
from typing import TYPE_CHECKING

from fakes.truenas.ejson import Timestamp
from fakes.truenas.errors import CallError, ValidationErrors
from fakes.truenas.models import props
from fakes.truenas.models.topology import new_guid

if TYPE_CHECKING:
    from fakes.truenas.models.pools import Pool

COMPONENT = re.compile(r"^[A-Za-z0-9_.: -]+$")
MAX_NAME = 255


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid dataset name, or None."""
    if not name or len(name) > MAX_NAME:
        return f"Dataset name must be 1 to {MAX_NAME} characters long"
    for component in name.split("/"):
        if not component:
            return "Dataset name has an empty component"
        if component in (".", ".."):
            return "Dataset name components cannot be '.' or '..'"
        if not COMPONENT.match(component):
            return ("Dataset name may only contain letters, numbers, '_', '-', '.', ':' "
                    "and space")
    return None


def new_record(pool: Pool, dataset_type: str, now: float, local: dict[str, str],
               user_props: dict[str, str] | None = None, origin: str | None = None,
               files: dict | None = None) -> dict:
    return {"type": dataset_type, "created": now, "createtxg": pool.meta["txg"] + 1,
            "guid": new_guid(), "props": dict(local), "user_props": dict(user_props or {}),
            "origin": origin, "files": dict(files or {})}


def create_root(pool: Pool, now: float) -> None:
    pool.meta["datasets"][""] = new_record(pool, "FILESYSTEM", now, props.ROOT_LOCAL)


def parent_of(rel: str) -> str:
    return rel.rsplit("/", 1)[0] if "/" in rel else ""


def children(pool: Pool, rel: str) -> list[str]:
    return sorted(r for r in pool.meta["datasets"] if r and parent_of(r) == rel)


def descendants(pool: Pool, rel: str) -> list[str]:
    prefix = rel + "/" if rel else ""
    return sorted(r for r in pool.meta["datasets"] if r != rel and r.startswith(prefix))


def create(pool: Pool, rel: str, *, dataset_type: str, local: dict[str, str],
           user_props: dict[str, str], create_ancestors: bool, now: float,
           attribute: str = "pool_dataset_create.name") -> None:
    """Add a dataset (its ancestors too if asked); the caller commits."""
    pool.require_writable()
    datasets = pool.meta["datasets"]
    full = pool.full_name(rel)
    if rel in datasets:
        raise ValidationErrors([(attribute, f"Path {full} already exists", errno.EEXIST)])
    parent = parent_of(rel)
    if parent not in datasets:
        if not create_ancestors:
            raise ValidationErrors([(attribute, f"Parent dataset ({pool.full_name(parent)}) "
                                     "does not exist.", errno.ENOENT)])
        missing = []
        while parent not in datasets:
            missing.append(parent)
            parent = parent_of(parent)
        for ancestor in reversed(missing):
            datasets[ancestor] = new_record(pool, "FILESYSTEM", now, {})
    if datasets[parent]["type"] == "VOLUME":
        raise ValidationErrors([(attribute, f"Parent dataset ({pool.full_name(parent)}) "
                                 "is a volume and cannot have children.", errno.EINVAL)])
    datasets[rel] = new_record(pool, dataset_type, now, local, user_props)


def delete(pool: Pool, rel: str, *, recursive: bool) -> None:
    """Destroy a dataset (recursively: its children and snapshots); caller commits."""
    pool.require_writable()
    full = pool.full_name(rel)
    if rel == "":
        raise CallError(f"cannot destroy '{full}': the root dataset of a pool is destroyed "
                        "with pool.export and destroy=true", errno.EINVAL)
    doomed = [rel, *descendants(pool, rel)]
    snapshots = [key for key, snap in pool.meta["snapshots"].items()
                 if snap["dataset"] in doomed]
    if not recursive and (len(doomed) > 1 or snapshots):
        listed = [pool.full_name(r) for r in doomed[1:]] + [
            f"{pool.full_name(key.split('@')[0])}@{key.split('@', 1)[1]}" for key in snapshots]
        raise CallError(f"cannot destroy '{full}': filesystem has children\nuse '-r' to "
                        "destroy the following datasets:\n" + "\n".join(listed), errno.EBUSY)
    clones = [r for r, ds in pool.meta["datasets"].items()
              if ds.get("origin") in snapshots and r not in doomed]
    if clones:
        raise CallError(f"cannot destroy '{full}': snapshot has dependent clones\nuse '-R' "
                        "to destroy the following datasets:\n"
                        + "\n".join(pool.full_name(r) for r in clones), errno.EBUSY)
    for key in snapshots:
        del pool.meta["snapshots"][key]
    for r in doomed:
        del pool.meta["datasets"][r]


# --- properties and usage ---------------------------------------------------
def effective(pool: Pool, rel: str, name: str) -> tuple[str, str, str | None]:
    """(rawvalue, source, source_info) of a settable property."""
    datasets = pool.meta["datasets"]
    if name in datasets[rel]["props"]:
        return datasets[rel]["props"][name], "LOCAL", None
    if name not in props.NOT_INHERITED:
        ancestor = rel
        while ancestor:
            ancestor = parent_of(ancestor)
            if name in datasets[ancestor]["props"]:
                return datasets[ancestor]["props"][name], "INHERITED", pool.full_name(ancestor)
    return props.SETTABLE[name][0], "DEFAULT", None


def _object_sizes(pool: Pool, files: dict) -> dict[str, int]:
    table = pool.meta["objects"]
    return {f["oid"]: table[f["oid"]]["size"] for f in files.values() if f["oid"] in table}


def used_by_dataset(pool: Pool, rel: str) -> int:
    return sum(_object_sizes(pool, pool.meta["datasets"][rel]["files"]).values())


def used_by_snapshots(pool: Pool, rel: str) -> int:
    live = _object_sizes(pool, pool.meta["datasets"][rel]["files"])
    held: dict[str, int] = {}
    for snap in pool.meta["snapshots"].values():
        if snap["dataset"] == rel:
            held.update(_object_sizes(pool, snap["files"]))
    return sum(size for oid, size in held.items() if oid not in live)


def used(pool: Pool, rel: str) -> int:
    return (used_by_dataset(pool, rel) + used_by_snapshots(pool, rel)
            + sum(used(pool, child) for child in children(pool, rel)))


def check_space(pool: Pool, rel: str, growth: int) -> None:
    """Refuse a write of `growth` more bytes that breaks a quota or readonly."""
    raw, _, _ = effective(pool, rel, "readonly")
    if raw == "on":
        raise CallError(f"[Errno 30] Read-only file system: {pool.full_name(rel)}",
                        errno.EROFS)
    if growth <= 0:
        return
    ancestor: str | None = rel
    while ancestor is not None:
        quota = int(pool.meta["datasets"][ancestor]["props"].get("quota", "0"))
        if quota and used(pool, ancestor) + growth > quota:
            raise CallError(f"[Errno 122] Disk quota exceeded: {pool.full_name(ancestor)}",
                            errno.EDQUOT)
        ancestor = parent_of(ancestor) if ancestor else None


def entry(pool: Pool, rel: str) -> dict:
    """The pool.dataset.query entry, with its children nested."""
    record = pool.meta["datasets"][rel]
    full = pool.full_name(rel)
    shaped = {}
    for name in props.SETTABLE:
        if name in ("volsize", "volblocksize") and record["type"] != "VOLUME":
            continue
        raw, source, info = effective(pool, rel, name)
        shaped[name] = props.shape(name, raw, source, info)
    by_dataset = used_by_dataset(pool, rel)
    by_snapshots = used_by_snapshots(pool, rel)
    by_children = sum(used(pool, child) for child in children(pool, rel))
    total = by_dataset + by_snapshots + by_children
    quota = int(record["props"].get("quota", "0"))
    available = pool.free if not quota else max(0, min(pool.free, quota - total))
    origin = record.get("origin")
    if origin:
        origin_rel, snap = origin.split("@", 1)
        origin = f"{pool.full_name(origin_rel)}@{snap}"
    shaped.update({
        "used": props.statistic(total),
        "usedbydataset": props.statistic(by_dataset),
        "usedbysnapshots": props.statistic(by_snapshots),
        "usedbychildren": props.statistic(by_children),
        "usedbyrefreservation": props.statistic(0),
        "available": props.statistic(available),
        "creation": props.creation(record["created"], Timestamp(int(record["created"]))),
        "origin": props.fixed(origin, origin or "", origin or ""),
        "compressratio": props.fixed("1.00", "1.00", "1.00x"),
        "encryption_algorithm": props.fixed(None, "off", None),
        "key_format": props.fixed(None, "none", None),
        "pbkdf2iters": props.fixed("0", "0"),
    })
    if record["type"] == "VOLUME":
        shaped["sparse"] = props.fixed(False, "false", "false")
    return {
        "id": full, "name": full, "type": record["type"], "pool": pool.name,
        "encrypted": False, "encryption_root": None, "key_loaded": False, "locked": False,
        "mountpoint": None if record["type"] == "VOLUME" else f"/mnt/{full}",
        "children": [entry(pool, child) for child in children(pool, rel)],
        "user_properties": {k: {"parsed": v, "rawvalue": v, "value": v, "source": "LOCAL",
                                "source_info": None}
                            for k, v in record["user_props"].items()},
        **shaped,
    }
