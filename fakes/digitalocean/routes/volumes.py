"""Volumes, volume actions (by id and by name) and volume snapshots."""

from __future__ import annotations

from fakes.digitalocean.api import Call, Reply
from fakes.digitalocean.api import to_dict as _to_dict
from fakes.digitalocean.errors import not_found
from fakes.digitalocean.models import DigitalOceanBackend
from fakes.digitalocean.models.validation import as_object


def create(backend: DigitalOceanBackend, call: Call) -> Reply:
    volume = backend.volumes.create(call.body)
    return Reply(201, {"volume": volume.to_dict()})


def list_(backend: DigitalOceanBackend, call: Call) -> Reply:
    found = backend.volumes.list(call.query.get("name"), call.query.get("region"))
    return Reply(200, call.page("volumes", found, _to_dict))


def get(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, {"volume": backend.volumes.get(call.params["volume_id"]).to_dict()})


def delete(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.volumes.delete(call.params["volume_id"])
    return Reply(204)


def delete_by_name(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.volumes.delete_by_name(call.query.get("name"), call.query.get("region"))
    return Reply(204)


def post_action_by_id(backend: DigitalOceanBackend, call: Call) -> Reply:
    # pydo appends ?per_page=20&page=1 to volume-action POSTs; ignored (reference §2).
    volume = backend.volumes.get(call.params["volume_id"])
    action = backend.volumes.post_action(volume, call.body)
    return Reply(202, {"action": action.to_dict()})


def post_action_by_name(backend: DigitalOceanBackend, call: Call) -> Reply:
    body = as_object(call.body)
    volume = backend.volumes.by_name(body.get("volume_name"), body.get("region"))
    action = backend.volumes.post_action(volume, body)
    return Reply(202, {"action": action.to_dict()})


def list_actions(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.volumes.get(call.params["volume_id"])
    # Volume actions carry resource_id null (volumeAction.yml), so the fake keeps
    # no per-volume index beyond type; list every volume action in the region.
    actions = [a for a in backend.actions.actions.values() if a.resource_type == "volume"]
    return Reply(200, call.page("actions", actions, _to_dict))


def get_action(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.volumes.get(call.params["volume_id"])
    action = backend.actions.get(call.params["action_id"])
    if action is None or action.resource_type != "volume":
        raise not_found()
    return Reply(200, {"action": action.to_dict()})


def create_snapshot(backend: DigitalOceanBackend, call: Call) -> Reply:
    volume = backend.volumes.get(call.params["volume_id"])
    snapshot = backend.snapshots.create_for_volume(volume, call.body)
    return Reply(201, {"snapshot": snapshot.to_dict()})


def list_snapshots(backend: DigitalOceanBackend, call: Call) -> Reply:
    volume = backend.volumes.get(call.params["volume_id"])
    found = backend.snapshots.for_volume(volume.id)
    return Reply(200, call.page("snapshots", found, _to_dict))


def get_snapshot(backend: DigitalOceanBackend, call: Call) -> Reply:
    snapshot = backend.snapshots.get_volume_snapshot(call.params["snapshot_id"])
    return Reply(200, {"snapshot": snapshot.to_dict()})


def delete_snapshot(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.snapshots.get_volume_snapshot(call.params["snapshot_id"])
    backend.snapshots.delete(call.params["snapshot_id"])
    return Reply(204)


ROUTES = [
    ("POST", "/v2/volumes/actions", post_action_by_name),
    ("GET", "/v2/volumes/snapshots/{snapshot_id}", get_snapshot),
    ("DELETE", "/v2/volumes/snapshots/{snapshot_id}", delete_snapshot),
    ("POST", "/v2/volumes", create),
    ("GET", "/v2/volumes", list_),
    ("DELETE", "/v2/volumes", delete_by_name),
    ("GET", "/v2/volumes/{volume_id}", get),
    ("DELETE", "/v2/volumes/{volume_id}", delete),
    ("POST", "/v2/volumes/{volume_id}/actions", post_action_by_id),
    ("GET", "/v2/volumes/{volume_id}/actions", list_actions),
    ("GET", "/v2/volumes/{volume_id}/actions/{action_id:int}", get_action),
    ("POST", "/v2/volumes/{volume_id}/snapshots", create_snapshot),
    ("GET", "/v2/volumes/{volume_id}/snapshots", list_snapshots),
]
