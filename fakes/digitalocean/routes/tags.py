"""Tags and tagging resources."""

from __future__ import annotations

from fakes.digitalocean.api import Call, Reply
from fakes.digitalocean.models import DigitalOceanBackend
from fakes.digitalocean.models.validation import as_object, require


def create(backend: DigitalOceanBackend, call: Call) -> Reply:
    body = as_object(call.body)
    require(body, "name")
    return Reply(201, {"tag": backend.tags.create(body["name"])})


def list_(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, call.page("tags", backend.tags.list()))


def get(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, {"tag": backend.tags.get(call.params["tag_id"])})


def delete(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.tags.delete(call.params["tag_id"])
    return Reply(204)


def assign(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.tags.assign(call.params["tag_id"], as_object(call.body).get("resources"))
    return Reply(204)


def unassign(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.tags.unassign(call.params["tag_id"], as_object(call.body).get("resources"))
    return Reply(204)


ROUTES = [
    ("POST", "/v2/tags", create),
    ("GET", "/v2/tags", list_),
    ("GET", "/v2/tags/{tag_id}", get),
    ("DELETE", "/v2/tags/{tag_id}", delete),
    ("POST", "/v2/tags/{tag_id}/resources", assign),
    ("DELETE", "/v2/tags/{tag_id}/resources", unassign),
]
