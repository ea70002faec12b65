"""Snapshots: frozen file tables that share the pool's objects (copy-on-write).

Facts followed (reference/truenas-api.md §4 Snapshots; pool.snapshot.*.json):
- `create {"dataset", "name" | "naming_schema", "recursive", "exclude"}` returns
  the entry `{id "pool/ds@name", name, snapshot_name, dataset, pool, type
  "SNAPSHOT", createtxg (string), properties}`; properties are `{value, rawvalue,
  source, parsed}` with nothing else; `creation.parsed` is a datetime ($date);
- `delete "pool/ds@s" {"defer", "recursive"}` returns true; ZFS refuses to destroy
  a snapshot that has clones ("snapshot has dependent clones");
- `rollback "pool/ds@s" {"recursive", "recursive_clones", "force",
  "recursive_rollback"}` returns null. These are `zfs rollback`'s flags:
  `recursive` (-r) destroys snapshots newer than the target, `recursive_clones`
  (-R) also destroys their clones, `force` (-f) unmounts; without -r a rollback to
  anything but the newest snapshot fails with "more recent snapshots or bookmarks
  exist". `recursive_rollback` (TrueNAS's own) rolls back every descendant dataset
  too, and fails if one of them lacks a snapshot of that name;
- `clone {"snapshot", "dataset_dst", "dataset_properties"}` returns true; the clone
  is a new dataset of the same pool whose `origin` is the snapshot.
Chosen: errnos (EEXIST for a duplicate, EBUSY for dependents and newer snapshots)
and the error wording follow `zfs` messages; middleware's exact wrapping is unknown.
"""

from __future__ import annotations

import copy
import errno
import time
from typing import TYPE_CHECKING

from fakes.truenas.ejson import Timestamp
from fakes.truenas.errors import CallError, ValidationErrors
from fakes.truenas.models import datasets
from fakes.truenas.models.datasets import COMPONENT
from fakes.truenas.models.props import nicebytes

if TYPE_CHECKING:
    from fakes.truenas.models.pools import Pool


def split_id(snapshot_id: str) -> tuple[str, str]:
    if not isinstance(snapshot_id, str) or snapshot_id.count("@") != 1:
        raise ValidationErrors([(None, f"{snapshot_id!r} is not a snapshot name "
                                 "(dataset@name)", errno.EINVAL)])
    dataset, name = snapshot_id.split("@")
    return dataset, name


def key(rel: str, name: str) -> str:
    return f"{rel}@{name}"


def full_id(pool: Pool, snap_key: str) -> str:
    rel, name = snap_key.split("@", 1)
    return f"{pool.full_name(rel)}@{name}"


def of_dataset(pool: Pool, rel: str) -> list[str]:
    """The dataset's snapshot keys, oldest first."""
    snaps = pool.meta["snapshots"]
    return sorted((k for k, s in snaps.items() if s["dataset"] == rel),
                  key=lambda k: (snaps[k]["createtxg"], snaps[k]["created"]))


def name_problem(name: str) -> str | None:
    if not name or len(name) > 255 or not COMPONENT.match(name) or name in (".", ".."):
        return ("Snapshot name may only contain letters, numbers, '_', '-', '.', ':' and "
                "space")
    return None


def create(pool: Pool, rel: str, name: str, *, recursive: bool, exclude: list[str],
           now: float, user_props: dict | None = None, task_id: int | None = None) -> list[str]:
    """Snapshot a dataset (and its descendants, atomically); caller commits."""
    pool.require_writable()
    targets = [rel]
    if recursive:
        excluded = set(exclude)
        targets += [d for d in datasets.descendants(pool, rel)
                    if pool.full_name(d) not in excluded]
    snaps = pool.meta["snapshots"]
    for target in targets:
        if key(target, name) in snaps:
            raise CallError(f"Failed to snapshot {pool.full_name(target)}@{name}: dataset "
                            "already exists", errno.EEXIST)
    txg = pool.meta["txg"] + 1
    for target in targets:
        snaps[key(target, name)] = {
            "dataset": target, "name": name, "created": now, "createtxg": txg,
            "files": copy.deepcopy(pool.meta["datasets"][target]["files"]),
            "owners": owners_of(pool.meta["datasets"][target]),
            "user_props": dict(user_props or {}), "task_id": task_id,
        }
    return [key(target, name) for target in targets]


def owners_of(record: dict) -> dict:
    """The directories' owners of a dataset (its root's, and those inside it that
    were changed; models/files.py `_dir_owner`): part of a snapshot as the files are.
    A ZFS snapshot is the whole file system at a txg, and a directory is a znode with
    its owner like a file (OpenZFS on-disk format, ZPL: znode_phys_t's zp_uid and
    zp_gid for every object of the file system, directories included)."""
    return {"root": copy.deepcopy(record.get("owner", {})),
            "dirs": copy.deepcopy(record.get("dir_owners", {}))}


def restore_owners(record: dict, owners: dict | None) -> None:
    """Put a snapshot's directory owners back on its dataset (a snapshot kept from
    before owners were part of it leaves them as they are)."""
    if owners is None:
        return
    record["owner"] = copy.deepcopy(owners.get("root", {}))
    record["dir_owners"] = copy.deepcopy(owners.get("dirs", {}))


def clones_of(pool: Pool, snap_keys: list[str]) -> list[str]:
    wanted = set(snap_keys)
    return sorted(r for r, ds in pool.meta["datasets"].items() if ds.get("origin") in wanted)


def delete(pool: Pool, snap_key: str, *, recursive: bool) -> None:
    pool.require_writable()
    rel, name = snap_key.split("@", 1)
    doomed = [snap_key]
    if recursive:
        doomed += [key(d, name) for d in datasets.descendants(pool, rel)
                   if key(d, name) in pool.meta["snapshots"]]
    clones = clones_of(pool, doomed)
    if clones:
        raise CallError(f"cannot destroy snapshot {full_id(pool, snap_key)}: snapshot has "
                        "dependent clones\nuse '-R' to destroy the following datasets:\n"
                        + "\n".join(pool.full_name(c) for c in clones), errno.EBUSY)
    for doomed_key in doomed:
        del pool.meta["snapshots"][doomed_key]


def _rollback_one(pool: Pool, snap_key: str, recursive: bool, recursive_clones: bool) -> None:
    rel = pool.meta["snapshots"][snap_key]["dataset"]
    order = of_dataset(pool, rel)
    newer = order[order.index(snap_key) + 1:]
    if newer and not recursive:
        raise CallError(
            f"cannot rollback to '{full_id(pool, snap_key)}': more recent snapshots or "
            "bookmarks exist\nuse '-r' to force deletion of the following snapshots and "
            "bookmarks:\n" + "\n".join(full_id(pool, k) for k in newer), errno.EBUSY)
    clones = clones_of(pool, newer)
    if clones and not recursive_clones:
        raise CallError(
            f"cannot rollback to '{full_id(pool, snap_key)}': clones of previous snapshots "
            "exist\nuse '-R' to force deletion of the following clones and dependents:\n"
            + "\n".join(pool.full_name(c) for c in clones), errno.EBUSY)
    for clone in clones:
        datasets.delete(pool, clone, recursive=True)
    for newer_key in newer:
        del pool.meta["snapshots"][newer_key]
    pool.meta["datasets"][rel]["files"] = copy.deepcopy(pool.meta["snapshots"][snap_key]["files"])
    restore_owners(pool.meta["datasets"][rel], pool.meta["snapshots"][snap_key].get("owners"))


def rollback(pool: Pool, snap_key: str, *, recursive: bool, recursive_clones: bool,
             recursive_rollback: bool) -> None:
    """Put the dataset's files back exactly as they were; caller commits."""
    pool.require_writable()
    rel, name = snap_key.split("@", 1)
    targets = [snap_key]
    if recursive_rollback:
        lacking = [d for d in datasets.descendants(pool, rel)
                   if key(d, name) not in pool.meta["snapshots"]]
        if lacking:
            raise CallError(f"cannot rollback recursively to @{name}: "
                            + ", ".join(pool.full_name(d) for d in lacking)
                            + f" has no snapshot named {name}", errno.ENOENT)
        targets += [key(d, name) for d in datasets.descendants(pool, rel)]
    for target in targets:
        _rollback_one(pool, target, recursive or recursive_clones, recursive_clones)


def clone(pool: Pool, snap_key: str, dst_rel: str, now: float, local: dict[str, str]) -> None:
    """A new dataset holding the snapshot's files; caller commits."""
    pool.require_writable()
    datasets.create(pool, dst_rel, dataset_type="FILESYSTEM", local=local, user_props={},
                    create_ancestors=False, now=now,
                    attribute="pool_snapshot_clone.dataset_dst")
    record = pool.meta["datasets"][dst_rel]
    record["origin"] = snap_key
    record["files"] = copy.deepcopy(pool.meta["snapshots"][snap_key]["files"])
    restore_owners(record, pool.meta["snapshots"][snap_key].get("owners"))


# --- entries ---------------------------------------------------------------
def _prop(value: str, raw: str, parsed: object, source: str = "NONE") -> dict:
    return {"value": value, "rawvalue": raw, "source": source, "parsed": parsed}


def _size_prop(size: int) -> dict:
    return _prop(nicebytes(size), str(size), size)


def entry(pool: Pool, snap_key: str, holds: bool = False, retention: dict | None = None) -> dict:
    snap = pool.meta["snapshots"][snap_key]
    table = pool.meta["objects"]
    mine = {f["oid"] for f in snap["files"].values()}
    elsewhere: set[str] = {f["oid"] for ds in pool.meta["datasets"].values()
                           for f in ds["files"].values()}
    for other_key, other in pool.meta["snapshots"].items():
        if other_key != snap_key:
            elsewhere.update(f["oid"] for f in other["files"].values())
    unique = sum(table[o]["size"] for o in mine - elsewhere if o in table)
    referenced = sum(table[o]["size"] for o in mine if o in table)
    created = snap["created"]
    snapshot_id = full_id(pool, snap_key)
    result = {
        "id": snapshot_id, "name": snapshot_id, "snapshot_name": snap["name"],
        "dataset": pool.full_name(snap["dataset"]), "pool": pool.name, "type": "SNAPSHOT",
        "createtxg": str(snap["createtxg"]),
        "properties": {
            "creation": _prop(time.strftime("%a %b %e %H:%M %Y", time.gmtime(created)),
                              # ZFS keeps creation in whole seconds: parsed == rawvalue
                              str(int(created)), Timestamp(int(created))),
            "createtxg": _prop(str(snap["createtxg"]), str(snap["createtxg"]),
                               snap["createtxg"]),
            "used": _size_prop(unique),
            "referenced": _size_prop(referenced),
            "name": _prop(snapshot_id, snapshot_id, snapshot_id),
            **{k: _prop(v, v, v, "LOCAL") for k, v in snap["user_props"].items()},
        },
    }
    if holds:
        result["holds"] = {}
    if retention is not None:
        result["retention"] = retention
    return result
