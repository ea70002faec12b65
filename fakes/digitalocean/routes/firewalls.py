"""Cloud firewalls, their droplets/tags/rules, and the firewalls of a droplet."""

from __future__ import annotations

from fakes.digitalocean.api import Call, Reply
from fakes.digitalocean.api import to_dict as _to_dict
from fakes.digitalocean.models import DigitalOceanBackend


def _id(call: Call) -> str:
    return call.params["firewall_id"]


def create(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(202, {"firewall": backend.firewalls.create(call.body).to_dict()})


def list_(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, call.page("firewalls", backend.firewalls.all(), _to_dict))


def get(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, {"firewall": backend.firewalls.get(_id(call)).to_dict()})


def update(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, {"firewall": backend.firewalls.replace(_id(call), call.body).to_dict()})


def delete(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.firewalls.delete(_id(call))
    return Reply(204)


def add_droplets(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.firewalls.add_droplets(_id(call), call.body)
    return Reply(204)


def remove_droplets(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.firewalls.remove_droplets(_id(call), call.body)
    return Reply(204)


def add_tags(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.firewalls.add_tags(_id(call), call.body)
    return Reply(204)


def remove_tags(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.firewalls.remove_tags(_id(call), call.body)
    return Reply(204)


def add_rules(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.firewalls.add_rules(_id(call), call.body)
    return Reply(204)


def remove_rules(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.firewalls.remove_rules(_id(call), call.body)
    return Reply(204)


def list_for_droplet(backend: DigitalOceanBackend, call: Call) -> Reply:
    found = backend.firewalls.for_droplet(call.params["droplet_id"])
    return Reply(200, call.page("firewalls", found, _to_dict))


FIREWALL = "/v2/firewalls/{firewall_id}"
ROUTES = [
    ("GET", "/v2/droplets/{droplet_id:int}/firewalls", list_for_droplet),
    ("POST", f"{FIREWALL}/droplets", add_droplets),
    ("DELETE", f"{FIREWALL}/droplets", remove_droplets),
    ("POST", f"{FIREWALL}/tags", add_tags),
    ("DELETE", f"{FIREWALL}/tags", remove_tags),
    ("POST", f"{FIREWALL}/rules", add_rules),
    ("DELETE", f"{FIREWALL}/rules", remove_rules),
    ("POST", "/v2/firewalls", create),
    ("GET", "/v2/firewalls", list_),
    ("GET", FIREWALL, get),
    ("PUT", FIREWALL, update),
    ("DELETE", FIREWALL, delete),
]
