"""Volume snapshots (and the droplet snapshots `/v2/snapshots` also lists).

Facts followed (reference/digitalocean-api.md §2, §5): volume snapshot ids are strings;
a duplicate snapshot name is 409 (csi-digitalocean); at most 25 snapshots per
volume [inferred from DigitalOcean's docs]; `min_disk_size` is the volume's size.
A snapshot really copies the volume's backing bytes, so a volume restored from it
(`POST /v2/volumes` with `snapshot_id`) holds what the volume held then.
"""

from __future__ import annotations

import itertools
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fakes.clock import iso
from fakes.digitalocean.errors import conflict, not_found, unprocessable
from fakes.digitalocean.models import validation as v

if TYPE_CHECKING:
    from fakes.digitalocean.models.backend import DigitalOceanBackend
    from fakes.digitalocean.models.droplets import Droplet
    from fakes.digitalocean.models.volumes import Volume

MAX_PER_VOLUME = 25


@dataclass
class Snapshot:
    id: str
    name: str
    resource_id: str
    resource_type: str
    regions: list[str]
    created_at: float
    min_disk_size: int
    size_gigabytes: float
    tags: list[str]
    backing_dir: Path | None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "regions": list(self.regions),
            "created_at": iso(self.created_at),
            "resource_id": self.resource_id,
            "resource_type": self.resource_type,
            "min_disk_size": self.min_disk_size,
            "size_gigabytes": self.size_gigabytes,
            "tags": list(self.tags),
        }


def _used_gigabytes(directory: Path) -> float:
    used = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    return round(used / 2**30, 2)


class SnapshotStore:
    def __init__(self, backend: DigitalOceanBackend) -> None:
        self.backend = backend
        self.snapshots: dict[str, Snapshot] = {}
        self._droplet_ids = itertools.count(150_000_001)

    def all(self) -> list[Snapshot]:
        return list(self.snapshots.values())

    def list(self, resource_type: str | None = None) -> list[Snapshot]:
        return [s for s in self.all() if resource_type in (None, s.resource_type)]

    def get(self, snapshot_id: str) -> Snapshot:
        snapshot = self.snapshots.get(snapshot_id)
        if snapshot is None:
            raise not_found()
        return snapshot

    def get_volume_snapshot(self, snapshot_id: str) -> Snapshot:
        snapshot = self.get(snapshot_id)
        if snapshot.resource_type != "volume":
            raise not_found()
        return snapshot

    def for_volume(self, volume_id: str) -> list[Snapshot]:
        return [s for s in self.all() if s.resource_id == volume_id]

    def create_for_volume(self, volume: Volume, body: dict) -> Snapshot:
        body = v.as_object(body)
        v.require(body, "name")
        name = v.string(body, "name")
        if any(s.name == name for s in self.for_volume(volume.id)):
            raise conflict(f"a snapshot named {name} already exists for this volume")
        if len(self.for_volume(volume.id)) >= MAX_PER_VOLUME:
            raise unprocessable(f"a volume can have at most {MAX_PER_VOLUME} snapshots")
        tags = v.tag_names(body)
        self.backend.tags.ensure(tags)
        snapshot_id = str(uuid.uuid4())
        backing = self.backend.storage_dir / "snapshots" / snapshot_id
        shutil.copytree(volume.backing_dir, backing)
        snapshot = Snapshot(
            id=snapshot_id, name=name, resource_id=volume.id, resource_type="volume",
            regions=[volume.region_slug], created_at=self.backend.clock.now(),
            min_disk_size=volume.size_gigabytes, size_gigabytes=_used_gigabytes(backing),
            tags=tags, backing_dir=backing,
        )
        self.snapshots[snapshot.id] = snapshot
        return snapshot

    def add_droplet_snapshot(self, droplet: Droplet, name: str) -> Snapshot:
        snapshot = Snapshot(
            id=str(next(self._droplet_ids)), name=name, resource_id=str(droplet.id),
            resource_type="droplet", regions=[droplet.region_slug],
            created_at=self.backend.clock.now(), min_disk_size=droplet.image.min_disk_size or 25,
            size_gigabytes=2.36, tags=[], backing_dir=None,
        )
        self.snapshots[snapshot.id] = snapshot
        return snapshot

    def delete(self, snapshot_id: str) -> None:
        snapshot = self.get(snapshot_id)
        del self.snapshots[snapshot.id]
        if snapshot.backing_dir is not None:
            shutil.rmtree(snapshot.backing_dir, ignore_errors=True)
