"""Reserved IPs: regional addresses that can be assigned to one droplet at a time.

Facts followed:
- create takes either `{"droplet_id": N}` (assigned to that droplet, in its
  region) or `{"region": slug}` (reservedIPs_create, reference/digitalocean-api.md §2);
  the answer is 202 with the reserved IP and, when assigning, links to the droplet
  and the `assign_ip` action, while the IP shows `droplet: null, locked: true`
  (the spec's "Assigning to Droplet" example);
- object `{ip, region, droplet (the whole droplet or null), locked, project_id}`;
  `locked` means "pending actions preventing new ones from being submitted";
- actions are `{"type": "assign", "droplet_id": N}` and `{"type": "unassign"}`
  (reserved_ip_actions.yml), answered 201 with an action whose `resource_id` is
  an integer (action.yml), here the address as a 32-bit number; the assign
  action's type is `assign_ip` (the rel of the create example's action link),
  and `unassign_ip` for unassign is assumed by symmetry;
- one reserved IP per droplet (§5); an IP moves between droplets "within the same
  datacenter" and deleting one "unassigns it and permanently removes it from your
  account" (DigitalOcean's reserved IP how-to pages); assigning an assigned IP
  moves it (terraform's reserved IP update assigns without unassigning first);
  unassigning an unassigned IP is refused with 422 (inferred: terraform's delete
  unassigns first and lets a 422 from that pass as "possibly out of sync");
- the account's `reserved_ip_limit` caps how many exist.

Not known from the reference, chosen here: the 422 texts; that the droplet must
be active (terraform waits for it before assigning); that a missing droplet is 422
rather than 404; that a locked IP refuses delete as it refuses actions; the
action durations; what an assign whose droplet disappears
mid-action reports (the action completes, the IP stays unassigned). Projects are
not modelled: `project_id` is a fixed default unless a uuid is given.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fakes.digitalocean import catalog
from fakes.digitalocean.errors import not_found, unprocessable
from fakes.digitalocean.models import validation as v

if TYPE_CHECKING:
    from fakes.digitalocean.models.actions import Action
    from fakes.digitalocean.models.backend import DigitalOceanBackend
    from fakes.digitalocean.models.droplets import Droplet

# Not documented anywhere we have read; a few seconds is a guess.
ASSIGN_SECONDS = 4.0
UNASSIGN_SECONDS = 3.0


@dataclass
class ReservedIP:
    ip: str
    region_slug: str
    project_id: str
    droplet_id: int | None = None
    # The droplet an assign in progress is moving the IP to.
    assigning_to: int | None = None
    action: Action | None = None

    @property
    def resource_id(self) -> int:
        return int(ipaddress.IPv4Address(self.ip))

    @property
    def locked(self) -> bool:
        return self.action is not None and self.action.status == "in-progress"


class ReservedIPStore:
    def __init__(self, backend: DigitalOceanBackend) -> None:
        self.backend = backend
        self.reserved_ips: dict[str, ReservedIP] = {}
        self.default_project_id = str(uuid.uuid4())
        backend.droplet_gone_hooks.append(self._droplet_gone)

    # --- queries -----------------------------------------------------------
    def all(self) -> list[ReservedIP]:
        return list(self.reserved_ips.values())

    def get(self, ip: str) -> ReservedIP:
        reserved = self.reserved_ips.get(ip)
        if reserved is None:
            raise not_found()
        return reserved

    def held_by(self, droplet_id: int) -> ReservedIP | None:
        """The reserved IP a droplet has, or is being given."""
        for reserved in self.all():
            if droplet_id in (reserved.droplet_id, reserved.assigning_to):
                return reserved
        return None

    def actions(self, reserved: ReservedIP) -> list[Action]:
        return self.backend.actions.for_resource("reserved_ip", reserved.resource_id)

    def action(self, reserved: ReservedIP, action_id: int) -> Action:
        action = self.backend.actions.get(action_id)
        if (action is None or action.resource_type != "reserved_ip"
                or action.resource_id != reserved.resource_id):
            raise not_found()
        return action

    def to_dict(self, reserved: ReservedIP) -> dict:
        droplet = (self.backend.droplets.droplets.get(reserved.droplet_id)
                   if reserved.droplet_id is not None else None)
        return {
            "ip": reserved.ip,
            "region": catalog.region_dict(reserved.region_slug),
            "droplet": self.backend.droplets.to_dict(droplet) if droplet else None,
            "locked": reserved.locked,
            "project_id": reserved.project_id,
        }

    def action_dict(self, reserved: ReservedIP, action: Action) -> dict:
        # Reserved IP actions carry the IP's project too (reservedIPsActions_post).
        return {**action.to_dict(), "project_id": reserved.project_id}

    # --- create / delete ---------------------------------------------------
    def create(self, body: Any) -> tuple[ReservedIP, Action | None]:
        body = v.as_object(body)
        droplet_id = v.integer(body, "droplet_id")
        region = v.string(body, "region")
        if droplet_id is not None and region:
            raise unprocessable("give either droplet_id or region, not both")
        if droplet_id is None and not region:
            raise unprocessable("droplet_id or region is required")
        project_id = self._project_id(body)
        droplet = None
        if droplet_id is not None:
            droplet = self._assignable(droplet_id)
            region = droplet.region_slug
        elif region not in catalog.REGIONS or not catalog.REGIONS[region]["available"]:
            raise unprocessable(f"region {region!r} is not an available region")
        limit = self.backend.account["reserved_ip_limit"]
        if len(self.reserved_ips) >= limit:
            raise unprocessable(
                f"you have reached your reserved IP limit ({limit}); release one first"
            )
        reserved = ReservedIP(ip=self.backend.reserved_addresses.allocate(),
                              region_slug=region, project_id=project_id)
        self.reserved_ips[reserved.ip] = reserved
        action = self._assign(reserved, droplet) if droplet is not None else None
        return reserved, action

    def delete(self, ip: str) -> None:
        reserved = self.get(ip)
        if reserved.locked:
            raise unprocessable("The reserved IP has a pending event.")
        # Deleting an assigned IP unassigns it and removes it (DigitalOcean's
        # "How to Delete Reserved IPs"), so there is no refusal here.
        del self.reserved_ips[reserved.ip]

    # --- actions -----------------------------------------------------------
    def post_action(self, ip: str, body: Any) -> Action:
        reserved = self.get(ip)
        body = v.as_object(body)
        action_type = v.string(body, "type")
        if action_type not in ("assign", "unassign"):
            raise unprocessable("type must be assign or unassign")
        if reserved.locked:
            raise unprocessable("The reserved IP has a pending event.")
        if action_type == "unassign":
            return self._unassign(reserved)
        droplet_id = v.integer(body, "droplet_id")
        if droplet_id is None:
            raise unprocessable("droplet_id is required to assign a reserved IP")
        droplet = self._assignable(droplet_id, reserved)
        if droplet.region_slug != reserved.region_slug:
            raise unprocessable(
                f"droplet_id: the Droplet is in {droplet.region_slug} but the reserved IP "
                f"is in {reserved.region_slug}; they must be in the same region"
            )
        return self._assign(reserved, droplet)

    def _assignable(self, droplet_id: int, reserved: ReservedIP | None = None) -> Droplet:
        droplet = self.backend.droplets.droplets.get(droplet_id)
        if droplet is None or droplet.deleting:
            raise unprocessable(f"droplet_id: Droplet {droplet_id} does not exist")
        if droplet.status != "active":
            raise unprocessable(
                f"droplet_id: Droplet {droplet_id} is {droplet.status}; it must be active "
                "to be assigned a reserved IP"
            )
        holder = self.held_by(droplet.id)
        if holder is not None and holder is not reserved:
            raise unprocessable(
                f"droplet_id: Droplet {droplet_id} already has reserved IP {holder.ip}; "
                "a Droplet can have only one"
            )
        return droplet

    def _assign(self, reserved: ReservedIP, droplet: Droplet) -> Action:
        reserved.assigning_to = droplet.id

        def done() -> None:
            reserved.assigning_to = None
            target = self.backend.droplets.droplets.get(droplet.id)
            if reserved.ip in self.reserved_ips and target is not None and not target.deleting:
                reserved.droplet_id = droplet.id

        def failed() -> None:
            reserved.assigning_to = None

        reserved.action = self.backend.actions.start(
            "assign_ip", resource_type="reserved_ip", resource_id=reserved.resource_id,
            region_slug=reserved.region_slug, duration=ASSIGN_SECONDS,
            on_done=done, on_error=failed,
        )
        return reserved.action

    def _unassign(self, reserved: ReservedIP) -> Action:
        if reserved.droplet_id is None:
            raise unprocessable("The reserved IP is not assigned to a Droplet.")

        def done() -> None:
            reserved.droplet_id = None

        reserved.action = self.backend.actions.start(
            "unassign_ip", resource_type="reserved_ip", resource_id=reserved.resource_id,
            region_slug=reserved.region_slug, duration=UNASSIGN_SECONDS, on_done=done,
        )
        return reserved.action

    def _project_id(self, body: dict) -> str:
        project_id = v.string(body, "project_id")
        if project_id is None:
            return self.default_project_id
        try:
            return str(uuid.UUID(project_id))
        except ValueError:
            raise unprocessable("project_id must be a project's uuid") from None

    # --- droplets going away -------------------------------------------------
    def _droplet_gone(self, droplet: Droplet) -> None:
        for reserved in self.all():
            if reserved.droplet_id == droplet.id:
                reserved.droplet_id = None
