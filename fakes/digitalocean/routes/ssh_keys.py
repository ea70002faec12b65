"""SSH keys: `/v2/account/keys`, each key by id or fingerprint."""

from __future__ import annotations

from fakes.digitalocean.api import Call, Reply, to_dict
from fakes.digitalocean.models import DigitalOceanBackend


def list_(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, call.page("ssh_keys", backend.ssh_keys.all(), to_dict))


def create(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(201, {"ssh_key": backend.ssh_keys.create(call.body).to_dict()})


def get(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, {"ssh_key": backend.ssh_keys.get(call.params["key"]).to_dict()})


def update(backend: DigitalOceanBackend, call: Call) -> Reply:
    key = backend.ssh_keys.update(call.params["key"], call.body)
    return Reply(200, {"ssh_key": key.to_dict()})


def delete(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.ssh_keys.delete(call.params["key"])
    return Reply(204)


KEY = "/v2/account/keys/{key}"
ROUTES = [
    ("GET", "/v2/account/keys", list_),
    ("POST", "/v2/account/keys", create),
    ("GET", KEY, get),
    ("PUT", KEY, update),
    ("DELETE", KEY, delete),
]
