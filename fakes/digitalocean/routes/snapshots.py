"""`/v2/snapshots`: droplet and volume snapshots together."""

from __future__ import annotations

from fakes.digitalocean.api import Call, Reply
from fakes.digitalocean.api import to_dict as _to_dict
from fakes.digitalocean.models import DigitalOceanBackend


def list_(backend: DigitalOceanBackend, call: Call) -> Reply:
    found = backend.snapshots.list(call.query.get("resource_type"))
    return Reply(200, call.page("snapshots", found, _to_dict))


def get(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, {"snapshot": backend.snapshots.get(call.params["snapshot_id"]).to_dict()})


def delete(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.snapshots.delete(call.params["snapshot_id"])
    return Reply(204)


ROUTES = [
    ("GET", "/v2/snapshots", list_),
    ("GET", "/v2/snapshots/{snapshot_id}", get),
    ("DELETE", "/v2/snapshots/{snapshot_id}", delete),
]
