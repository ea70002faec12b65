"""Reserved IPs and reserved IP actions."""

from __future__ import annotations

from urllib.parse import urlsplit

from fakes.digitalocean.api import Call, Reply
from fakes.digitalocean.models import DigitalOceanBackend


def _origin(call: Call) -> str:
    parts = urlsplit(call.base_url)
    return f"{parts.scheme}://{parts.netloc}"


def create(backend: DigitalOceanBackend, call: Call) -> Reply:
    store = backend.reserved_ips
    reserved, action = store.create(call.body)
    links: dict = {}
    if action is not None:
        # Shape of the spec's "Assigning to Droplet" example (absolute hrefs).
        origin = _origin(call)
        links = {
            "droplets": [{"id": reserved.assigning_to, "rel": "droplet",
                          "href": f"{origin}/v2/droplets/{reserved.assigning_to}"}],
            "actions": [{"id": action.id, "rel": action.type,
                         "href": f"{origin}/v2/actions/{action.id}"}],
        }
    return Reply(202, {"reserved_ip": store.to_dict(reserved), "links": links})


def list_(backend: DigitalOceanBackend, call: Call) -> Reply:
    store = backend.reserved_ips
    return Reply(200, call.page("reserved_ips", store.all(), store.to_dict))


def get(backend: DigitalOceanBackend, call: Call) -> Reply:
    store = backend.reserved_ips
    return Reply(200, {"reserved_ip": store.to_dict(store.get(call.params["reserved_ip"]))})


def delete(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.reserved_ips.delete(call.params["reserved_ip"])
    return Reply(204)


def post_action(backend: DigitalOceanBackend, call: Call) -> Reply:
    store = backend.reserved_ips
    action = store.post_action(call.params["reserved_ip"], call.body)
    reserved = store.get(call.params["reserved_ip"])
    return Reply(201, {"action": store.action_dict(reserved, action)})


def list_actions(backend: DigitalOceanBackend, call: Call) -> Reply:
    store = backend.reserved_ips
    reserved = store.get(call.params["reserved_ip"])
    actions = [store.action_dict(reserved, a) for a in store.actions(reserved)]
    return Reply(200, call.page("actions", actions))


def get_action(backend: DigitalOceanBackend, call: Call) -> Reply:
    store = backend.reserved_ips
    reserved = store.get(call.params["reserved_ip"])
    action = store.action(reserved, call.params["action_id"])
    return Reply(200, {"action": store.action_dict(reserved, action)})


RESERVED_IP = "/v2/reserved_ips/{reserved_ip}"
ROUTES = [
    ("GET", f"{RESERVED_IP}/actions/{{action_id:int}}", get_action),
    ("GET", f"{RESERVED_IP}/actions", list_actions),
    ("POST", f"{RESERVED_IP}/actions", post_action),
    ("GET", "/v2/reserved_ips", list_),
    ("POST", "/v2/reserved_ips", create),
    ("GET", RESERVED_IP, get),
    ("DELETE", RESERVED_IP, delete),
]
