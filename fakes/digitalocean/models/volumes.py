"""Block storage volumes and their attach/detach/resize actions.

Facts followed (reference/digitalocean-api.md §2 and §5):
- name: lowercase letters, digits and `-`, starting with a letter, at most 64;
  size 1..16384 GiB; resize only grows; one name per region (409 on a duplicate);
- a volume attaches to one droplet, in its own region, at most 15 per droplet;
  422 "This volume is already attached", "Droplet already has a pending event",
  "cannot attach more volumes to the Droplet", "Attachment not found";
- deleting an attached volume is 409; deleting a droplet only detaches.
Each volume is backed by a directory on disk, so what it holds is real bytes that
the fake TrueNAS can keep pool data in, and that a snapshot really copies.
"""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fakes.clock import iso
from fakes.digitalocean import catalog
from fakes.digitalocean.errors import conflict, not_found, unprocessable
from fakes.digitalocean.models import validation as v

if TYPE_CHECKING:
    from fakes.digitalocean.models.backend import DigitalOceanBackend
    from fakes.digitalocean.models.droplets import Droplet

NAME = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
MAX_SIZE_GIB = 16384
MAX_VOLUMES_PER_DROPLET = 15
ATTACH_SECONDS = 6.0   # "volume attach seconds" (DESIGN.md)
RESIZE_SECONDS = 10.0


@dataclass
class Volume:
    id: str
    name: str
    region_slug: str
    size_gigabytes: int
    description: str
    created_at: float
    filesystem_type: str
    filesystem_label: str
    tags: list[str]
    backing_dir: Path
    droplet_id: int | None = None
    # An attach whose action is still in progress reserves the volume.
    attaching_to: int | None = None
    detaching: bool = False
    snapshot_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "region": catalog.region_dict(self.region_slug),
            "droplet_ids": [self.droplet_id] if self.droplet_id is not None else [],
            "name": self.name,
            "description": self.description,
            "size_gigabytes": self.size_gigabytes,
            "created_at": iso(self.created_at),
            "filesystem_type": self.filesystem_type,
            "filesystem_label": self.filesystem_label,
            "tags": list(self.tags),
        }


class VolumeStore:
    def __init__(self, backend: DigitalOceanBackend) -> None:
        self.backend = backend
        self.volumes: dict[str, Volume] = {}

    # --- queries -----------------------------------------------------------
    def all(self) -> list[Volume]:
        return list(self.volumes.values())

    def get(self, volume_id: str) -> Volume:
        volume = self.volumes.get(volume_id)
        if volume is None:
            raise not_found()
        return volume

    def list(self, name: str | None = None, region: str | None = None) -> list[Volume]:
        found = self.all()
        if name:
            found = [vol for vol in found if vol.name == name]
        if region:
            found = [vol for vol in found if vol.region_slug == region]
        return found

    def by_name(self, name: str | None, region: str | None) -> Volume:
        if not name:
            raise unprocessable("volume_name is required")
        matches = self.list(name=name, region=region)
        if not matches:
            raise not_found()
        if len(matches) > 1:
            raise unprocessable("region is required: a volume of that name exists in several")
        return matches[0]

    def attached_to(self, droplet_id: int) -> list[Volume]:
        return [vol for vol in self.all() if vol.droplet_id == droplet_id]

    # --- create / delete ---------------------------------------------------
    def create(self, body: dict) -> Volume:
        body = v.as_object(body)
        v.require(body, "name", "region")
        name = v.string(body, "name")
        region = v.string(body, "region")
        snapshot_id = v.string(body, "snapshot_id")
        size = v.integer(body, "size_gigabytes")
        snapshot = None
        if snapshot_id:
            snapshot = self.backend.snapshots.get_volume_snapshot(snapshot_id)
            if size is None:
                size = snapshot.min_disk_size
            if region not in snapshot.regions:
                raise unprocessable("The snapshot is not available in that region")
            if size < snapshot.min_disk_size:
                raise unprocessable(
                    f"size_gigabytes must be at least the snapshot's {snapshot.min_disk_size}"
                )
        if size is None:
            raise unprocessable("size_gigabytes is required")
        if not NAME.match(name):
            raise unprocessable(
                "Name must be lowercase letters, numbers and dashes, start with a letter "
                "and be at most 64 characters"
            )
        if not 1 <= size <= MAX_SIZE_GIB:
            raise unprocessable(f"size_gigabytes must be between 1 and {MAX_SIZE_GIB}")
        if region not in catalog.REGIONS or not catalog.REGIONS[region]["available"]:
            raise unprocessable(f"region {region!r} is not available for volumes")
        fs_type = v.string(body, "filesystem_type") or ""
        fs_label = v.string(body, "filesystem_label") or ""
        if fs_type and fs_type not in ("ext4", "xfs"):
            raise unprocessable("filesystem_type must be ext4 or xfs")
        if fs_label and len(fs_label) > (12 if fs_type == "xfs" else 16):
            raise unprocessable("filesystem_label is too long")
        if self.list(name=name, region=region):
            raise conflict(f"a volume named {name} already exists in {region}")
        if len(self.volumes) >= self.backend.account["volume_limit"]:
            raise unprocessable("you have reached your volume limit")
        tags = v.tag_names(body)
        self.backend.tags.ensure(tags)
        volume_id = str(uuid.uuid4())
        backing = self.backend.storage_dir / "volumes" / volume_id
        if snapshot is not None:
            shutil.copytree(snapshot.backing_dir, backing)
        else:
            backing.mkdir(parents=True)
        volume = Volume(
            id=volume_id, name=name, region_slug=region, size_gigabytes=size,
            description=v.string(body, "description") or "",
            created_at=self.backend.clock.now(), filesystem_type=fs_type,
            filesystem_label=fs_label, tags=tags, backing_dir=backing,
        )
        self.volumes[volume.id] = volume
        return volume

    def delete(self, volume_id: str) -> None:
        self._delete(self.get(volume_id))

    def delete_by_name(self, name: str | None, region: str | None) -> None:
        if not name or not region:
            raise unprocessable("name and region are required")
        self._delete(self.by_name(name, region))

    def _delete(self, volume: Volume) -> None:
        if volume.droplet_id is not None or volume.attaching_to is not None:
            raise conflict(
                "A volume that's attached to a Droplet cannot be deleted. "
                "Please detach it first before deleting."
            )
        del self.volumes[volume.id]
        shutil.rmtree(volume.backing_dir, ignore_errors=True)

    # --- attachment --------------------------------------------------------
    def check_attachable_at_create(self, volume_ids: list[str], region: str) -> list[Volume]:
        volumes = []
        for volume_id in volume_ids:
            volume = self.volumes.get(volume_id)
            if (volume is None or volume.region_slug != region
                    or volume.droplet_id is not None or volume.attaching_to is not None):
                raise unprocessable("Invalid volume allocations")  # doctl #321 wording
            volumes.append(volume)
        if len(volumes) > MAX_VOLUMES_PER_DROPLET:
            raise unprocessable("cannot attach more volumes to the Droplet")
        return volumes

    def bind(self, volume: Volume, droplet: Droplet) -> None:
        volume.droplet_id = droplet.id
        volume.attaching_to = None
        if volume.id not in droplet.volume_ids:
            droplet.volume_ids.append(volume.id)
        self.backend.on_volume_attached(volume, droplet)

    def unbind(self, volume: Volume) -> None:
        droplet_id = volume.droplet_id
        volume.droplet_id = None
        volume.detaching = False
        droplet = self.backend.droplets.droplets.get(droplet_id) if droplet_id else None
        if droplet is not None and volume.id in droplet.volume_ids:
            droplet.volume_ids.remove(volume.id)
        if droplet is not None:
            self.backend.on_volume_detached(volume, droplet)

    def release_all(self, droplet: Droplet) -> None:
        for volume in self.all():
            if volume.droplet_id == droplet.id:
                self.unbind(volume)
            if volume.attaching_to == droplet.id:
                volume.attaching_to = None

    def post_action(self, volume: Volume, body: dict):
        body = v.as_object(body)
        action_type = v.string(body, "type")
        if action_type == "attach":
            return self._attach(volume, body)
        if action_type == "detach":
            return self._detach(volume, body)
        if action_type == "resize":
            return self._resize(volume, body)
        raise unprocessable(f"{action_type!r} is not a valid volume action type")

    def _droplet_for(self, body: dict) -> Droplet:
        droplet_id = v.integer(body, "droplet_id")
        if droplet_id is None:
            raise unprocessable("droplet_id is required")
        droplet = self.backend.droplets.droplets.get(droplet_id)
        if droplet is None or droplet.deleting:
            raise not_found("Droplet not found")
        return droplet

    def _attach(self, volume: Volume, body: dict):
        droplet = self._droplet_for(body)
        if volume.region_slug != droplet.region_slug:
            # The exact real text is unknown (reference/digitalocean-api.md §5); 422 is documented.
            raise unprocessable("The volume and the Droplet must be in the same region")
        if volume.droplet_id is not None or volume.attaching_to is not None:
            raise unprocessable("This volume is already attached")
        if self.backend.actions.droplet_busy(droplet.id) or droplet.status == "new":
            raise unprocessable("Droplet already has a pending event.")
        if droplet.host_failed:
            raise unprocessable("The Droplet's host is unavailable.")
        attached = len(self.attached_to(droplet.id)) + sum(
            1 for other in self.all() if other.attaching_to == droplet.id
        )
        if attached >= MAX_VOLUMES_PER_DROPLET:
            raise unprocessable("cannot attach more volumes to the Droplet")
        volume.attaching_to = droplet.id

        def done() -> None:
            if volume.id in self.volumes and volume.attaching_to == droplet.id:
                self.bind(volume, droplet)

        def failed() -> None:
            volume.attaching_to = None

        return self.backend.actions.start(
            "attach_volume", resource_type="volume", resource_id=None,
            region_slug=volume.region_slug, duration=ATTACH_SECONDS,
            on_done=done, on_error=failed, busy_droplet_id=droplet.id,
        )

    def _detach(self, volume: Volume, body: dict):
        droplet = self._droplet_for(body)
        if volume.droplet_id != droplet.id:
            raise unprocessable("Attachment not found")
        if self.backend.actions.droplet_busy(droplet.id) or volume.detaching:
            raise unprocessable("Droplet already has a pending event.")
        volume.detaching = True

        def done() -> None:
            if volume.id in self.volumes and volume.droplet_id == droplet.id:
                self.unbind(volume)

        def failed() -> None:
            volume.detaching = False

        return self.backend.actions.start(
            "detach_volume", resource_type="volume", resource_id=None,
            region_slug=volume.region_slug, duration=ATTACH_SECONDS,
            on_done=done, on_error=failed, busy_droplet_id=droplet.id,
        )

    def _resize(self, volume: Volume, body: dict):
        size = v.integer(body, "size_gigabytes")
        if size is None:
            raise unprocessable("size_gigabytes is required")
        if size <= volume.size_gigabytes:
            raise unprocessable("Volumes can only be resized to a larger size")
        if size > MAX_SIZE_GIB:
            raise unprocessable(f"size_gigabytes must be at most {MAX_SIZE_GIB}")

        def done() -> None:
            volume.size_gigabytes = size

        return self.backend.actions.start(
            "resize", resource_type="volume", resource_id=None,
            region_slug=volume.region_slug, duration=RESIZE_SECONDS, on_done=done,
            busy_droplet_id=volume.droplet_id,
        )
