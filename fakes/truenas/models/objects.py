"""Data objects spread over a pool's vdevs, with ZFS's end-to-end checksums.

- A new object goes to ONE top-level vdev (the one with the most free space, as
  ZFS's allocator favours emptier vdevs) and to every online leaf of that vdev.
- Every read checks the bytes against the sha256 in the pool's object table. A bad
  or missing copy on one leaf is skipped, and the read is served by another leaf;
  ZFS then rewrites the bad copy from the good one (self-healing) and counts a
  checksum error on that leaf. If no leaf holds good bytes the data is lost, and
  the read fails with EIO naming the file: data loss is reported, never hidden.
- `missing_on(leaf)` is what a resilver must copy to a leaf; `scrub_leaf` is
  what a scrub checks and repairs.
"""

from __future__ import annotations

import errno
import uuid
from typing import TYPE_CHECKING

from fakes.truenas.errors import CallError
from fakes.truenas.models.layout import sha256

if TYPE_CHECKING:
    from fakes.truenas.models.pools import Pool
    from fakes.truenas.models.topology import Member, Vdev


class ObjectStore:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    @property
    def table(self) -> dict[str, dict]:
        return self.pool.meta["objects"]

    def vdev_of(self, oid: str) -> Vdev:
        return self.pool.vdevs[self.table[oid]["vdev"]]

    def allocated(self, vdev_index: int | None = None) -> int:
        return sum(rec["size"] for rec in self.table.values()
                   if vdev_index is None or rec["vdev"] == vdev_index)

    # --- write -------------------------------------------------------------
    def put(self, data: bytes) -> str:
        pool = self.pool
        pool.require_writable()
        candidates = [i for i, vdev in enumerate(pool.vdevs) if vdev.online_leaves]
        index = max(candidates, key=lambda i: pool.vdevs[i].capacity - self.allocated(i))
        if pool.vdevs[index].capacity - self.allocated(index) < len(data):
            raise CallError(f"[Errno 28] No space left on device: pool {pool.name}",
                            errno.ENOSPC)
        oid = uuid.uuid4().hex
        checksum = sha256(data)
        for leaf in pool.vdevs[index].online_leaves:
            leaf.store.put_object(oid, data, checksum)
        self.table[oid] = {"vdev": index, "size": len(data), "sha256": checksum}
        return oid

    # --- read --------------------------------------------------------------
    def read_copy(self, leaf: Member, oid: str) -> bytes | None:
        """The leaf's copy if its bytes match the checksum, else None."""
        data = leaf.store.get_object(oid)
        if data is None or sha256(data) != self.table[oid]["sha256"]:
            return None
        return data

    def get(self, oid: str, what: str) -> bytes:
        """An object's bytes from any leaf holding a good copy; heals bad copies."""
        pool = self.pool
        pool.require_readable()
        rec = self.table[oid]
        vdev = self.vdev_of(oid)
        # Healthy leaves first: a stale leaf may simply not hold the object yet.
        leaves = sorted(vdev.online_leaves, key=lambda leaf: leaf.stale)
        bad: list[Member] = []
        for leaf in leaves:
            data = self.read_copy(leaf, oid)
            if data is not None:
                for other in bad:
                    other.checksum_errors += 1
                    other.self_healed += rec["size"]
                    other.store.put_object(oid, data, rec["sha256"])
                pool.permanent_errors.discard(oid)
                return data
            if leaf.store.get_object(oid) is not None or not leaf.stale:
                bad.append(leaf)
        for leaf in bad:
            leaf.checksum_errors += 1
        pool.permanent_errors.add(oid)
        raise CallError(
            f"[Errno 5] Input/output error: {what}: permanent error, no member of "
            f"pool {pool.name} holds a good copy of this data", errno.EIO)

    # --- resilver and scrub ------------------------------------------------
    def expected_on(self, leaf: Member) -> dict[str, dict]:
        index = next(i for i, vdev in enumerate(self.pool.vdevs) if leaf in vdev.leaves)
        return {oid: rec for oid, rec in self.table.items() if rec["vdev"] == index}

    def missing_on(self, leaf: Member) -> dict[str, dict]:
        """Objects the leaf should hold but whose manifest says it does not."""
        manifest = leaf.store.manifest
        return {oid: rec for oid, rec in self.expected_on(leaf).items()
                if manifest.get(oid, {}).get("sha256") != rec["sha256"]}

    def extra_on(self, leaf: Member) -> list[str]:
        expected = self.expected_on(leaf)
        return [oid for oid in leaf.store.manifest if oid not in expected]

    def good_copy(self, oid: str, exclude: Member | None = None) -> bytes | None:
        """The object's bytes from an online leaf (other than `exclude`) whose copy
        matches the checksum, else None."""
        for leaf in self.vdev_of(oid).online_leaves:
            if leaf is not exclude:
                data = self.read_copy(leaf, oid)
                if data is not None:
                    return data
        return None

    def resilver_leaf(self, leaf: Member) -> list[str]:
        """Copy to `leaf` what it lacks from its vdev's other leaves.

        Returns the objects no other leaf could supply (lost on this vdev)."""
        lost = []
        for oid, rec in self.missing_on(leaf).items():
            data = self.good_copy(oid, exclude=leaf)
            if data is None:
                lost.append(oid)
                continue
            leaf.store.put_object(oid, data, rec["sha256"])
        leaf.store.drop_objects(self.extra_on(leaf))
        return lost

    def scrub_leaf(self, leaf: Member) -> tuple[int, int, list[str]]:
        """Verify every object the leaf should hold; repair bad copies from a good one.

        Returns (bad copies found, bytes repaired, objects that could not be repaired)."""
        found = repaired = 0
        lost = []
        for oid, rec in self.expected_on(leaf).items():
            if self.read_copy(leaf, oid) is not None:
                continue
            found += 1
            leaf.checksum_errors += 1
            data = self.good_copy(oid, exclude=leaf)
            if data is None:
                lost.append(oid)
                continue
            leaf.store.put_object(oid, data, rec["sha256"])
            leaf.self_healed += rec["size"]
            repaired += rec["size"]
        return found, repaired, lost

    # --- garbage -----------------------------------------------------------
    def collect(self, referenced: set[str]) -> None:
        """Free objects no live file, snapshot or clone refers to any more."""
        unreferenced = [oid for oid in self.table if oid not in referenced]
        if not unreferenced:
            return
        by_vdev: dict[int, list[str]] = {}
        for oid in unreferenced:
            by_vdev.setdefault(self.table.pop(oid)["vdev"], []).append(oid)
            self.pool.permanent_errors.discard(oid)
        for index, oids in by_vdev.items():
            for leaf in self.pool.vdevs[index].online_leaves:
                leaf.store.drop_objects(oids)
