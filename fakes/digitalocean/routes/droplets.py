"""Droplets and droplet actions."""

from __future__ import annotations

from fakes.digitalocean.api import Call, Reply
from fakes.digitalocean.api import to_dict as _to_dict
from fakes.digitalocean.errors import not_found, unprocessable
from fakes.digitalocean.models import DigitalOceanBackend


def _action_links(call: Call, actions) -> dict:
    # Absolute, as the real API's links are (and as links.pages are).
    root = call.base_url.split("/v2/", 1)[0]
    return {"actions": [
        {"id": a.id, "rel": "create", "href": f"{root}/v2/actions/{a.id}"} for a in actions
    ]}


def create(backend: DigitalOceanBackend, call: Call) -> Reply:
    created, actions = backend.droplets.create(call.body)
    links = _action_links(call, actions)
    if isinstance(call.body, dict) and "names" in call.body:
        return Reply(202, {"droplets": [backend.droplets.to_dict(d) for d in created],
                           "links": links})
    return Reply(202, {"droplet": backend.droplets.to_dict(created[0]), "links": links})


def list_(backend: DigitalOceanBackend, call: Call) -> Reply:
    found = backend.droplets.list(call.query.get("tag_name"), call.query.get("name"))
    return Reply(200, call.page("droplets", found, backend.droplets.to_dict))


def get(backend: DigitalOceanBackend, call: Call) -> Reply:
    droplet = backend.droplets.get(call.params["droplet_id"])
    return Reply(200, {"droplet": backend.droplets.to_dict(droplet)})


def destroy(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.droplets.delete(call.params["droplet_id"])
    return Reply(204)


def destroy_by_tag(backend: DigitalOceanBackend, call: Call) -> Reply:
    tag = call.query.get("tag_name")
    if not tag:
        raise unprocessable("tag_name is required")
    backend.droplets.delete_by_tag(tag)
    return Reply(204)


def post_action(backend: DigitalOceanBackend, call: Call) -> Reply:
    action = backend.droplets.post_action(call.params["droplet_id"], call.body)
    return Reply(201, {"action": action.to_dict()})


def post_action_by_tag(backend: DigitalOceanBackend, call: Call) -> Reply:
    tag = call.query.get("tag_name")
    if not tag:
        raise unprocessable("tag_name is required")
    # The body is checked before any droplet is matched: a bad type is refused even
    # when no droplet carries the tag (issue 10).
    backend.droplets.check_tag_action(call.body)
    actions = [backend.droplets.post_action(d.id, call.body)
               for d in backend.droplets.list(tag_name=tag)]
    return Reply(201, {"actions": [a.to_dict() for a in actions]})


def list_actions(backend: DigitalOceanBackend, call: Call) -> Reply:
    droplet = backend.droplets.get(call.params["droplet_id"])
    actions = backend.actions.for_resource("droplet", droplet.id)
    return Reply(200, call.page("actions", actions, _to_dict))


def get_action(backend: DigitalOceanBackend, call: Call) -> Reply:
    droplet = backend.droplets.get(call.params["droplet_id"])
    action = backend.actions.get(call.params["action_id"])
    if action is None or action.resource_id != droplet.id:
        raise not_found()
    return Reply(200, {"action": action.to_dict()})


ROUTES = [
    ("POST", "/v2/droplets/actions", post_action_by_tag),
    ("POST", "/v2/droplets", create),
    ("GET", "/v2/droplets", list_),
    ("DELETE", "/v2/droplets", destroy_by_tag),
    ("GET", "/v2/droplets/{droplet_id:int}", get),
    ("DELETE", "/v2/droplets/{droplet_id:int}", destroy),
    ("POST", "/v2/droplets/{droplet_id:int}/actions", post_action),
    ("GET", "/v2/droplets/{droplet_id:int}/actions", list_actions),
    ("GET", "/v2/droplets/{droplet_id:int}/actions/{action_id:int}", get_action),
]
