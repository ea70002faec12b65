"""The on-disk format a pool member keeps on its volume's backing directory.

A DigitalOcean volume is a real directory owned by the fake DigitalOcean (it
survives detach/attach and moves with the volume to another droplet). A pool
member writes, under `<backing_dir>/zpool/`:

- `label.json`: what ZFS keeps in a vdev label: pool name and guid, this member's
  guid and partition uuid, its top-level vdev's guid, the pool's whole data
  topology (so an import knows which members are missing), the `exported` flag,
  the hostname/hostid that last had the pool imported, and the txg of the last
  change this member received;
- `meta.json`: the pool's metadata (datasets, their file tables, snapshots, the
  object table with every object's vdev, size and sha256). Like ZFS metadata it is
  written to every member that is online;
- `objects/<xx>/<oid>`: immutable data objects. A file's content is one object; a
  snapshot or clone refers to the same objects (copy-on-write sharing, as in ZFS),
  so a rollback restores exactly the bytes that were there. An object lives on
  every member of ONE top-level vdev: on both sides of a mirror, on exactly one
  disk of a stripe (so losing that disk loses the data);
- `manifest.json`: this member's checksum manifest, `{oid: {sha256, size}}`: what
  the member was given. A scrub (and every read) compares the bytes on the member
  with the checksum in the pool's object table, so bit rot is detectable.

Writes go through a temporary file and `os.replace`, so a member never holds half
a label or half an object.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

ROOT = "zpool"
LABEL_VERSION = 1


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def encode_meta(meta: dict) -> bytes:
    return json.dumps(meta).encode()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class MemberStore:
    """One member's files on its volume's backing directory."""

    def __init__(self, backing_dir: Path) -> None:
        self.backing_dir = Path(backing_dir)
        self.root = self.backing_dir / ROOT
        self._manifest: dict[str, dict] | None = None

    # --- label -------------------------------------------------------------
    def read_label(self) -> dict | None:
        label = _read_json(self.root / "label.json")
        if not isinstance(label, dict) or label.get("version") != LABEL_VERSION:
            return None
        return label

    def write_label(self, label: dict) -> None:
        _write_atomic(self.root / "label.json",
                      json.dumps({**label, "version": LABEL_VERSION}, indent=1).encode())

    # --- pool metadata -----------------------------------------------------
    def read_meta(self) -> dict | None:
        meta = _read_json(self.root / "meta.json")
        return meta if isinstance(meta, dict) else None

    def write_meta(self, meta: dict | bytes) -> None:
        """`meta` as a dict, or already encoded (`encode_meta`: a commit writes the same
        metadata to every member and encodes it once)."""
        data = meta if isinstance(meta, bytes) else encode_meta(meta)
        _write_atomic(self.root / "meta.json", data)

    # --- objects and the checksum manifest ---------------------------------
    @property
    def manifest(self) -> dict[str, dict]:
        if self._manifest is None:
            loaded = _read_json(self.root / "manifest.json")
            self._manifest = loaded if isinstance(loaded, dict) else {}
        return self._manifest

    def _save_manifest(self) -> None:
        _write_atomic(self.root / "manifest.json", json.dumps(self.manifest).encode())

    def object_path(self, oid: str) -> Path:
        return self.root / "objects" / oid[:2] / oid

    def put_object(self, oid: str, data: bytes, checksum: str | None = None) -> None:
        _write_atomic(self.object_path(oid), data)
        self.manifest[oid] = {"sha256": checksum or sha256(data), "size": len(data)}
        self._save_manifest()

    def get_object(self, oid: str) -> bytes | None:
        """The member's copy of an object, or None if it does not hold one."""
        try:
            return self.object_path(oid).read_bytes()
        except OSError:
            return None

    def drop_objects(self, oids: list[str]) -> None:
        for oid in oids:
            with contextlib.suppress(OSError):
                self.object_path(oid).unlink()
            self.manifest.pop(oid, None)
        if oids:
            self._save_manifest()

    def used_bytes(self) -> int:
        return sum(int(entry.get("size", 0)) for entry in self.manifest.values())

    # --- whole member ------------------------------------------------------
    def wipe(self) -> None:
        """Forget every trace of a pool on this member (labelclear + discard)."""
        shutil.rmtree(self.root, ignore_errors=True)
        self._manifest = None


def read_label(backing_dir: Path) -> dict | None:
    return MemberStore(backing_dir).read_label()


def inject_bit_rot(backing_dir: Path, dataset: str, relative_path: str) -> None:
    """Flip bytes in ONE member's copy of a file (admin API fault, `@fake_only`).

    `backing_dir` is the member volume's backing directory; `dataset` is the full
    dataset name ("tank/data", or "tank" for the root dataset); `relative_path` is
    the file's path inside the dataset ("dir/file.bin"; "/mnt/tank/data/dir/file.bin"
    is accepted too). Only this member's copy of
    the object is changed and its manifest is left alone, exactly like silent
    corruption on one disk: the other mirror member still holds good bytes, a read
    or a scrub notices the checksum mismatch and repairs this copy. Objects are
    shared with snapshots, so the rot shows in every snapshot holding that content.

    Raises FileNotFoundError if this member holds no such file, ValueError for an
    empty file (there is no byte to flip).
    """
    store = MemberStore(backing_dir)
    label = store.read_label()
    meta = store.read_meta()
    if label is None or meta is None:
        raise FileNotFoundError(f"{backing_dir} holds no pool member")
    pool_name = label["pool_name"]
    if dataset != pool_name and not dataset.startswith(pool_name + "/"):
        raise FileNotFoundError(f"{dataset} is not on pool {pool_name}")
    rel = dataset[len(pool_name) + 1:] if dataset != pool_name else ""
    inner = relative_path.removeprefix(f"/mnt/{dataset}/").strip("/")
    record = meta.get("datasets", {}).get(rel, {}).get("files", {}).get(inner)
    if record is None:
        raise FileNotFoundError(f"{dataset}/{relative_path} does not exist on the pool")
    path = store.object_path(record["oid"])
    if not path.exists():
        raise FileNotFoundError(f"this member holds no copy of {dataset}/{relative_path}")
    data = bytearray(path.read_bytes())
    if not data:
        raise ValueError("an empty file has no byte to corrupt")
    for index in range(0, len(data), max(1, len(data) // 8)):
        data[index] ^= 0xFF
    path.write_bytes(bytes(data))
