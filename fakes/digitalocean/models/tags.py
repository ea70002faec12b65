"""Tags and tagging resources (tags_*.yml).

A tag exists once created explicitly or once any resource is created with it.
Tagged resources keep their own `tags` lists; this store only owns the names and
finds resources through the backend.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from fakes.digitalocean.errors import TagServiceError, not_found, unprocessable
from fakes.digitalocean.models.validation import TAG_NAME, check_tag_name

if TYPE_CHECKING:
    from fakes.digitalocean.models.backend import DigitalOceanBackend

# resource_type in the request -> key in the tag's `resources` summary, and the path of
# that kind of resource in `last_tagged_uri`. The keys follow the OpenAPI examples of
# tags_list/tags_get (`images`, `databases`) and godo's TaggedResources (digitalocean/godo
# tags.go @3fce660: json "images", "databases", "last_tagged_uri"); the schema's
# `imgages` property is a typo nobody sends (issue 10).
RESOURCE_KINDS = {
    "droplet": "droplets",
    "image": "images",
    "volume": "volumes",
    "volume_snapshot": "volume_snapshots",
}
PATHS = {"droplets": "droplets", "images": "images", "volumes": "volumes",
         "volume_snapshots": "snapshots"}


class TagStore:
    def __init__(self, backend: DigitalOceanBackend) -> None:
        self.backend = backend
        self.names: dict[str, None] = {}  # insertion-ordered set
        # (tag, group, resource id) -> when it was tagged through /resources; a resource
        # created with the tag counts as tagged at its creation.
        self._tagged_at: dict[tuple[str, str, str], tuple[float, int]] = {}
        self._sequence = itertools.count(1)

    def ensure(self, tags: list[str]) -> None:
        for tag in tags:
            check_tag_name(tag)
            self.names.setdefault(tag, None)

    def create(self, name: object, origin: str) -> dict:
        if not isinstance(name, str) or not name:
            raise TagServiceError("tag-name is required")
        if len(name) > 255:
            raise TagServiceError(f'tag-name "{name[:32]}..." is longer than 255 characters')
        if not TAG_NAME.match(name):
            raise TagServiceError(f'tag-name "{name}" contains invalid characters')
        self.names.setdefault(name, None)
        return self.to_dict(name, origin)

    def get(self, name: str, origin: str) -> dict:
        if name not in self.names:
            raise not_found()
        return self.to_dict(name, origin)

    def all(self) -> list[str]:
        return list(self.names)

    def delete(self, name: str) -> None:
        if name not in self.names:
            raise not_found()
        for resource in self._all_resources():
            if name in resource.tags:
                resource.tags.remove(name)
        del self.names[name]
        self._tagged_at = {k: v for k, v in self._tagged_at.items() if k[0] != name}
        self.backend.notify_firewall_changed()  # droplets lost a tag firewalls may use

    def assign(self, name: str, resources: list[dict]) -> None:
        if name not in self.names:
            raise not_found()
        for kind, entity in self._resolve(resources):
            if name not in entity.tags:
                entity.tags.append(name)
                key = (name, RESOURCE_KINDS[kind], str(entity.id))
                self._tagged_at[key] = (self.backend.clock.now(), next(self._sequence))
        self.backend.notify_firewall_changed()  # a tagged droplet may gain a firewall

    def unassign(self, name: str, resources: list[dict]) -> None:
        if name not in self.names:
            raise not_found()
        for kind, entity in self._resolve(resources):
            if name in entity.tags:
                entity.tags.remove(name)
                self._tagged_at.pop((name, RESOURCE_KINDS[kind], str(entity.id)), None)
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
            entities.append((kind, entity))
        return entities

    def _all_resources(self) -> list:
        b = self.backend
        return [
            *b.droplets.all(),
            *b.images.private(),
            *b.volumes.all(),
            *b.snapshots.all(),
        ]

    def _groups(self, name: str) -> dict[str, list]:
        b = self.backend
        return {
            "droplets": [d for d in b.droplets.all() if name in d.tags],
            "images": [i for i in b.images.private() if name in i.tags],
            "volumes": [v for v in b.volumes.all() if name in v.tags],
            "volume_snapshots": [s for s in b.snapshots.all() if name in s.tags],
        }

    def to_dict(self, name: str, origin: str) -> dict:
        """`origin`: scheme://host[:port] of the API, for `last_tagged_uri`."""
        resources: dict = {"count": 0}
        latest: tuple[tuple[float, int], str] | None = None
        for group, members in self._groups(name).items():
            summary: dict = {"count": len(members)}
            stamped = [(self._tagged_at.get((name, group, str(m.id)), (m.created_at, 0)), m)
                       for m in members]
            if stamped:
                when, member = max(stamped, key=lambda pair: pair[0])
                summary["last_tagged_uri"] = f"{origin}/v2/{PATHS[group]}/{member.id}"
                if latest is None or when > latest[0]:
                    latest = (when, summary["last_tagged_uri"])
            resources[group] = summary
            resources["count"] += len(members)
        # The fake account has no database clusters (tags_list example lists the key).
        resources["databases"] = {"count": 0}
        if latest is not None:
            resources["last_tagged_uri"] = latest[1]
        return {"name": name, "resources": resources}
