"""Tags and tagging resources."""

from __future__ import annotations

from fakes.digitalocean.api import Call, Reply
from fakes.digitalocean.errors import TagServiceError
from fakes.digitalocean.models import DigitalOceanBackend
from fakes.digitalocean.models.validation import as_object


def create(backend: DigitalOceanBackend, call: Call) -> Reply:
    if not isinstance(call.body, dict):
        # tags_create documents only the tag service's 400 for a bad request.
        raise TagServiceError("the request body must be an object with a name")
    return Reply(201, {"tag": backend.tags.create(call.body.get("name"), call.origin)})


# An unparsable body too gets the operation's only documented error.
create.malformed_body = lambda: TagServiceError("the request body is not valid JSON")


def list_(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, call.page("tags", backend.tags.all(),
                                lambda name: backend.tags.to_dict(name, call.origin)))


def get(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, {"tag": backend.tags.get(call.params["tag_id"], call.origin)})


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
