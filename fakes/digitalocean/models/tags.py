"""Tags and tagging resources (tags_*.yml).

A tag exists once created explicitly or once any resource is created with it.
Tagged resources keep their own `tags` lists; this store only owns the names and
finds resources through the backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fakes.digitalocean.errors import not_found, unprocessable
from fakes.digitalocean.models.validation import check_tag_name

if TYPE_CHECKING:
    from fakes.digitalocean.models.backend import DigitalOceanBackend

# resource_type in the request -> key in the tag's `resources` summary
RESOURCE_KINDS = {
    "droplet": "droplets",
    "image": "imgages",  # sic: the published schema spells it this way (tags.yml)
    "volume": "volumes",
    "volume_snapshot": "volume_snapshots",
}


class TagStore:
    def __init__(self, backend: DigitalOceanBackend) -> None:
        self.backend = backend
        self.names: list[str] = []

    def ensure(self, tags: list[str]) -> None:
        for tag in tags:
            check_tag_name(tag)
            if tag not in self.names:
                self.names.append(tag)

    def create(self, name: str) -> dict:
        check_tag_name(name)
        self.ensure([name])
        return self.to_dict(name)

    def get(self, name: str) -> dict:
        if name not in self.names:
            raise not_found()
        return self.to_dict(name)

    def list(self) -> list[dict]:
        return [self.to_dict(name) for name in self.names]

    def delete(self, name: str) -> None:
        if name not in self.names:
            raise not_found()
        for resource in self._all_resources():
            if name in resource.tags:
                resource.tags.remove(name)
        self.names.remove(name)
        self.backend.notify_firewall_changed()  # droplets lost a tag firewalls may use

    def assign(self, name: str, resources: list[dict]) -> None:
        if name not in self.names:
            raise not_found()
        for entity in self._resolve(resources):
            if name not in entity.tags:
                entity.tags.append(name)
        self.backend.notify_firewall_changed()  # a tagged droplet may gain a firewall

    def unassign(self, name: str, resources: list[dict]) -> None:
        if name not in self.names:
            raise not_found()
        for entity in self._resolve(resources):
            if name in entity.tags:
                entity.tags.remove(name)
        self.backend.notify_firewall_changed()

    def _resolve(self, resources: list[dict]) -> list:
        if not isinstance(resources, list) or not resources:
            raise unprocessable("resources is required")
        entities = []
        for item in resources:
            if not isinstance(item, dict):
                raise unprocessable("each resource needs resource_id and resource_type")
            kind = item.get("resource_type")
            if kind not in RESOURCE_KINDS:
                raise unprocessable(f"resource_type {kind!r} cannot be tagged")
            entity = self.backend.find_taggable(kind, str(item.get("resource_id")))
            if entity is None:
                raise not_found(f"{kind} {item.get('resource_id')} not found")
            entities.append(entity)
        return entities

    def _all_resources(self) -> list:
        b = self.backend
        return [
            *b.droplets.all(),
            *b.images.private(),
            *b.volumes.all(),
            *b.snapshots.all(),
        ]

    def to_dict(self, name: str) -> dict:
        b = self.backend
        groups = {
            "droplets": [d for d in b.droplets.all() if name in d.tags],
            "imgages": [i for i in b.images.private() if name in i.tags],
            "volumes": [v for v in b.volumes.all() if name in v.tags],
            "volume_snapshots": [s for s in b.snapshots.all() if name in s.tags],
        }
        resources: dict = {"count": sum(len(g) for g in groups.values())}
        for key, members in groups.items():
            resources[key] = {"count": len(members)}
        return {"name": name, "resources": resources}
