"""Droplets: creation, boot on the virtual clock, actions, asynchronous deletion.

Facts followed (reference/digitalocean-api.md):
- create answers 202 with status `new`; a create from a custom image needs an SSH key
  (§5, the custom image limits); networks appear only once `active` (§5,
  terraform's source comment); name pattern and 64 KiB user_data (droplet_create.yml);
- delete answers 204 but the droplet still GETs until it is really gone (§5,
  terraform `waitForDropletDestroy`); deleting a droplet detaches, never deletes,
  its volumes (§5);
- a droplet with an action in progress is `locked` and refuses new actions with
  422 "Droplet already has a pending event" (§5, csi-digitalocean).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fakes.clock import iso
from fakes.digitalocean import catalog
from fakes.digitalocean.errors import not_found, unprocessable
from fakes.digitalocean.models import validation as v

if TYPE_CHECKING:
    from fakes.digitalocean.models.backend import DigitalOceanBackend
    from fakes.digitalocean.models.images import Image

NAME = re.compile(r"^[a-zA-Z0-9]?[a-z0-9A-Z.\-]*[a-z0-9A-Z]$")
USER_DATA_LIMIT = 64 * 1024
MAX_PER_CREATE = 10

# droplet_actions_post_by_tag.yml: "Only a sub-set of action types are supported".
TAG_ACTION_TYPES = frozenset({"power_cycle", "power_on", "power_off", "shutdown",
                              "enable_ipv6", "enable_backups", "disable_backups", "snapshot"})

# Virtual durations, in seconds, modelled on what DigitalOcean takes.
BOOT_SECONDS = 45.0        # "a droplet boots in ~30-60 s" (DESIGN.md)
DESTROY_SECONDS = 8.0      # gone from GET a few seconds after the 204
POWER_SECONDS = 12.0
HOST_FAILURE_GONE_SECONDS = 90.0


@dataclass
class Droplet:
    id: int
    name: str
    region_slug: str
    size_slug: str
    image: Image
    created_at: float
    tags: list[str]
    user_data: str | None
    ssh_keys: list
    status: str = "new"
    volume_ids: list[str] = field(default_factory=list)
    public_ipv4: str | None = None
    private_ipv4: str | None = None
    deleting: bool = False
    host_failed: bool = False
    snapshot_ids: list[int] = field(default_factory=list)

    def to_dict(self, locked: bool) -> dict:
        size = catalog.SIZES[self.size_slug]
        networks: dict = {"v4": [], "v6": []}
        if self.public_ipv4:
            networks["v4"].append(
                {"ip_address": self.public_ipv4, "netmask": "255.0.0.0",
                 "gateway": "127.0.0.1", "type": "public"}
            )
        if self.private_ipv4:
            networks["v4"].append(
                {"ip_address": self.private_ipv4, "netmask": "255.255.0.0",
                 "gateway": "", "type": "private"}
            )
        return {
            "id": self.id,
            "name": self.name,
            "memory": size["memory"],
            "vcpus": size["vcpus"],
            "disk": size["disk"],
            "disk_info": size["disk_info"],
            "locked": locked,
            "status": self.status,
            "kernel": None,
            "created_at": iso(self.created_at),
            "features": ["droplet_agent", "private_networking"],
            "backup_ids": [],
            "next_backup_window": None,
            "snapshot_ids": list(self.snapshot_ids),
            "image": self.image.to_dict(),
            "volume_ids": list(self.volume_ids),
            "size": dict(size),
            "size_slug": self.size_slug,
            "networks": networks,
            "region": catalog.region_dict(self.region_slug),
            "tags": list(self.tags),
            "vpc_uuid": "5a4981aa-9653-4bd1-bef5-d6bff52042e4",
        }


class DropletStore:
    def __init__(self, backend: DigitalOceanBackend) -> None:
        self.backend = backend
        self._ids = itertools.count(411_000_001)
        self.droplets: dict[int, Droplet] = {}

    # --- queries -----------------------------------------------------------
    def all(self) -> list[Droplet]:
        return list(self.droplets.values())

    def get(self, droplet_id: int) -> Droplet:
        droplet = self.droplets.get(droplet_id)
        if droplet is None:
            raise not_found()
        return droplet

    def list(self, tag_name: str | None = None, name: str | None = None) -> list[Droplet]:
        found = self.all()
        if tag_name:
            found = [d for d in found if tag_name in d.tags]
        if name:
            found = [d for d in found if d.name == name]
        return found

    def to_dict(self, droplet: Droplet) -> dict:
        return droplet.to_dict(locked=self.backend.actions.droplet_busy(droplet.id))

    # --- create ------------------------------------------------------------
    def create(self, body: dict) -> tuple[list[Droplet], list]:
        body = v.as_object(body)
        names = self._names(body)
        size_slug = v.string(body, "size")
        region = v.string(body, "region") or "nyc3"
        v.require(body, "size", "image")
        if size_slug not in catalog.SIZES:
            raise unprocessable(f"You specified an invalid size for Droplet creation: {size_slug}")
        if region not in catalog.REGIONS or not catalog.REGIONS[region]["available"]:
            raise unprocessable(f"You specified an invalid region for Droplet creation: {region}")
        image = self.backend.images.resolve_for_droplet(body["image"], region)
        size = catalog.SIZES[size_slug]
        if image.min_disk_size and image.min_disk_size > size["disk"]:
            raise unprocessable(
                f"The image requires a disk of at least {image.min_disk_size} GB; "
                f"{size_slug} has {size['disk']} GB"
            )
        tags = v.tag_names(body)
        user_data = v.string(body, "user_data")
        if user_data is not None and len(user_data.encode()) > USER_DATA_LIMIT:
            raise unprocessable("user_data must be 64 KiB or less")
        ssh_keys = [key.id for key in self.backend.ssh_keys.resolve(body.get("ssh_keys"))]
        if image.type == "custom" and not ssh_keys:
            # DigitalOcean's custom image limits: "You must add an SSH key when creating
            # Droplets from a custom image" (reference/digitalocean-api.md §5). The real
            # API's status and wording for this refusal are unknown; 422 is what it
            # answers to other invalid creates.
            raise unprocessable("You must add an SSH key when creating a Droplet from a "
                                "custom image")
        volume_ids = v.string_list(body, "volumes")
        if volume_ids and len(names) > 1:
            raise unprocessable("Invalid volume allocations")
        volumes = self.backend.volumes.check_attachable_at_create(volume_ids, region)
        limit = self.backend.account["droplet_limit"]
        if len(self.droplets) + len(names) > limit:
            raise unprocessable(
                f"creating this/these droplet(s) will exceed your droplet limit ({limit})"
            )

        self.backend.tags.ensure(tags)
        created, actions = [], []
        for name in names:
            droplet = Droplet(
                id=next(self._ids), name=name, region_slug=region, size_slug=size_slug,
                image=image, created_at=self.backend.clock.now(), tags=list(tags),
                user_data=user_data, ssh_keys=list(ssh_keys),
            )
            self.droplets[droplet.id] = droplet
            for volume in volumes:
                self.backend.volumes.bind(volume, droplet)
            actions.append(
                self.backend.actions.start(
                    "create", resource_type="droplet", resource_id=droplet.id,
                    region_slug=region, duration=BOOT_SECONDS,
                    on_done=lambda d=droplet: self._booted(d),
                    on_error=lambda d=droplet: self._failed_to_boot(d),
                    busy_droplet_id=droplet.id,
                )
            )
            created.append(droplet)
        self.backend.notify_firewall_changed()  # its tags may put it behind a firewall
        return created, actions

    def _names(self, body: dict) -> list[str]:
        if "names" in body:
            names = v.string_list(body, "names")
            if not names or len(names) > MAX_PER_CREATE:
                raise unprocessable(f"names must hold 1 to {MAX_PER_CREATE} names")
        else:
            v.require(body, "name")
            names = [v.string(body, "name")]
        for name in names:
            if len(name) > 255 or not NAME.match(name):
                raise unprocessable(
                    f"Name {name!r} is invalid: only letters, numbers, dots and dashes, "
                    "starting and ending with a letter or number"
                )
        return names

    def _booted(self, droplet: Droplet) -> None:
        if droplet.id not in self.droplets or droplet.deleting:
            return
        droplet.status = "active"
        droplet.public_ipv4 = self.backend.public_addresses.allocate()
        droplet.private_ipv4 = self.backend.private_addresses.allocate()
        self.backend.on_droplet_active(droplet)
        # Its addresses now resolve rules naming it (or its tags) as a source.
        self.backend.notify_firewall_changed()

    def _failed_to_boot(self, droplet: Droplet) -> None:
        # An errored create leaves a droplet that never came up; DigitalOcean
        # removes it. What the real API shows in between is not documented.
        self._remove(droplet)

    # --- delete ------------------------------------------------------------
    def delete(self, droplet_id: int) -> None:
        droplet = self.get(droplet_id)
        self._begin_destroy(droplet)

    def delete_by_tag(self, tag_name: str) -> None:
        for droplet in self.list(tag_name=tag_name):
            self._begin_destroy(droplet)

    def _begin_destroy(self, droplet: Droplet) -> None:
        if droplet.deleting:
            return
        droplet.deleting = True
        self.backend.on_droplet_down(droplet)
        self.backend.actions.abort_for_droplet(droplet.id)
        self.backend.volumes.release_all(droplet)
        self.backend.actions.start(
            "destroy", resource_type="droplet", resource_id=droplet.id,
            region_slug=droplet.region_slug, duration=DESTROY_SECONDS,
            on_done=lambda: self._remove(droplet),
        )

    def _remove(self, droplet: Droplet) -> None:
        self.backend.volumes.release_all(droplet)
        self.backend.on_droplet_gone(droplet)
        self.droplets.pop(droplet.id, None)
        self.backend.notify_firewall_changed()

    # --- host failure (admin fault) ----------------------------------------
    def fail_host(self, droplet_id: int) -> Droplet:
        """The hypervisor dies: the droplet goes off at once, then away."""
        droplet = self.get(droplet_id)
        droplet.host_failed = True
        droplet.status = "off"
        self.backend.on_droplet_down(droplet)
        self.backend.actions.abort_for_droplet(droplet.id)
        self.backend.clock.call_later(
            HOST_FAILURE_GONE_SECONDS, lambda: self._remove(droplet)
        )
        return droplet

    # --- actions -----------------------------------------------------------
    def check_tag_action(self, body: object) -> dict:
        """The body of `POST /v2/droplets/actions?tag_name=`: an object whose `type` is
        one of the kinds the API performs in bulk (droplet_actions_post_by_tag.yml
        lists them). The real refusal's wording is unknown."""
        body = v.as_object(body)
        v.require(body, "type")
        action_type = v.string(body, "type")
        if action_type not in TAG_ACTION_TYPES:
            raise unprocessable(f"{action_type!r} is not an action that can be performed "
                                "on Droplets by tag")
        if action_type == "snapshot":
            v.string(body, "name")
        return body

    def post_action(self, droplet_id: int, body: dict):
        droplet = self.get(droplet_id)
        body = v.as_object(body)
        action_type = v.string(body, "type")
        if droplet.deleting:
            raise not_found()
        if self.backend.actions.droplet_busy(droplet.id):
            raise unprocessable("Droplet already has a pending event.")
        if droplet.host_failed:
            raise unprocessable("The Droplet's host is unavailable.")
        handler = {
            "power_off": lambda: self._power(droplet, "off", "power_off"),
            "shutdown": lambda: self._power(droplet, "off", "shutdown"),
            "power_on": lambda: self._power(droplet, "active", "power_on"),
            "reboot": lambda: self._power(droplet, "active", "reboot"),
            "power_cycle": lambda: self._power(droplet, "active", "power_cycle"),
            "rename": lambda: self._rename(droplet, body),
            "resize": lambda: self._resize(droplet, body),
            "rebuild": lambda: self._rebuild(droplet, body),
            "snapshot": lambda: self._snapshot(droplet, body),
        }.get(action_type)
        if handler is None:
            no_op = {"enable_backups", "disable_backups", "password_reset", "enable_ipv6",
                     "change_kernel", "restore"}
            if action_type not in no_op:
                raise unprocessable(f"{action_type!r} is not a valid droplet action type")
            handler = lambda: self._simple(droplet, action_type)  # noqa: E731
        return handler()

    def _simple(self, droplet: Droplet, action_type: str):
        return self.backend.actions.start(
            action_type, resource_type="droplet", resource_id=droplet.id,
            region_slug=droplet.region_slug, duration=POWER_SECONDS,
            busy_droplet_id=droplet.id,
        )

    def _power(self, droplet: Droplet, target: str, action_type: str):
        if droplet.status == "new":
            raise unprocessable("Droplet already has a pending event.")

        def done() -> None:
            was_off = droplet.status == "off"
            droplet.status = target
            # What runs on the droplet stops, or boots again (the fake TrueNAS).
            if target == "off":
                self.backend.on_droplet_down(droplet)
            elif was_off or action_type in ("reboot", "power_cycle"):
                self.backend.on_droplet_down(droplet)
                self.backend.on_droplet_active(droplet)

        return self.backend.actions.start(
            action_type, resource_type="droplet", resource_id=droplet.id,
            region_slug=droplet.region_slug, duration=POWER_SECONDS, on_done=done,
            busy_droplet_id=droplet.id,
        )

    def _rename(self, droplet: Droplet, body: dict):
        name = v.string(body, "name")
        if not name or not NAME.match(name):
            raise unprocessable("name is invalid")
        droplet.name = name
        return self.backend.actions.record_completed(
            "rename", resource_type="droplet", resource_id=droplet.id,
            region_slug=droplet.region_slug,
        )

    def _resize(self, droplet: Droplet, body: dict):
        size_slug = v.string(body, "size")
        if size_slug not in catalog.SIZES:
            raise unprocessable(f"You specified an invalid size: {size_slug}")
        if droplet.status != "off":
            raise unprocessable("Droplet must be powered off to resize")

        def done() -> None:
            droplet.size_slug = size_slug

        return self.backend.actions.start(
            "resize", resource_type="droplet", resource_id=droplet.id,
            region_slug=droplet.region_slug, duration=60.0, on_done=done,
            busy_droplet_id=droplet.id,
        )

    def _rebuild(self, droplet: Droplet, body: dict):
        image = self.backend.images.resolve_for_droplet(body.get("image"), droplet.region_slug)

        def done() -> None:
            droplet.image = image
            droplet.status = "active"

        return self.backend.actions.start(
            "rebuild", resource_type="droplet", resource_id=droplet.id,
            region_slug=droplet.region_slug, duration=BOOT_SECONDS, on_done=done,
            busy_droplet_id=droplet.id,
        )

    def _snapshot(self, droplet: Droplet, body: dict):
        name = v.string(body, "name") or f"{droplet.name}-snapshot"

        def done() -> None:
            snapshot = self.backend.snapshots.add_droplet_snapshot(droplet, name)
            droplet.snapshot_ids.append(int(snapshot.id))

        return self.backend.actions.start(
            "snapshot", resource_type="droplet", resource_id=droplet.id,
            region_slug=droplet.region_slug, duration=120.0, on_done=done,
            busy_droplet_id=droplet.id,
        )
