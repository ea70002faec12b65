"""Images: public base images and custom imports."""

from __future__ import annotations

from fakes.digitalocean.api import Call, Reply
from fakes.digitalocean.api import to_dict as _to_dict
from fakes.digitalocean.models import DigitalOceanBackend


def _image_id(call: Call) -> int | str:
    return call.params["image_id"]


def create_custom(backend: DigitalOceanBackend, call: Call) -> Reply:
    image = backend.images.create_custom(call.body)
    return Reply(202, {"image": image.to_dict()})


def list_(backend: DigitalOceanBackend, call: Call) -> Reply:
    private = call.query.get("private", "").lower() == "true"
    found = backend.images.list(call.query.get("type"), private, call.query.get("tag_name"))
    return Reply(200, call.page("images", found, _to_dict))


def get(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, {"image": backend.images.get(_image_id(call)).to_dict()})


def update(backend: DigitalOceanBackend, call: Call) -> Reply:
    image = backend.images.update(_image_id(call), call.body)
    return Reply(200, {"image": image.to_dict()})


def delete(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.images.delete(_image_id(call))
    return Reply(204)


ROUTES = [
    ("POST", "/v2/images", create_custom),
    ("GET", "/v2/images", list_),
    ("GET", "/v2/images/{image_id}", get),
    ("PUT", "/v2/images/{image_id}", update),
    ("DELETE", "/v2/images/{image_id}", delete),
]
