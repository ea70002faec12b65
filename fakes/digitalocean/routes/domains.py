"""Domains and domain records."""

from __future__ import annotations

from fakes.digitalocean.api import Call, Reply
from fakes.digitalocean.api import to_dict as _to_dict
from fakes.digitalocean.models import DigitalOceanBackend


def create(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(201, {"domain": backend.domains.create(call.body).to_dict()})


def list_(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, call.page("domains", backend.domains.all(), _to_dict))


def get(backend: DigitalOceanBackend, call: Call) -> Reply:
    return Reply(200, {"domain": backend.domains.get(call.params["domain_name"]).to_dict()})


def delete(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.domains.delete(call.params["domain_name"])
    return Reply(204)


def list_records(backend: DigitalOceanBackend, call: Call) -> Reply:
    found = backend.domains.list_records(
        call.params["domain_name"], call.query.get("name"), call.query.get("type")
    )
    return Reply(200, call.page("domain_records", found, _to_dict))


def create_record(backend: DigitalOceanBackend, call: Call) -> Reply:
    record = backend.domains.create_record(call.params["domain_name"], call.body)
    return Reply(201, {"domain_record": record.to_dict()})


def get_record(backend: DigitalOceanBackend, call: Call) -> Reply:
    record = backend.domains.get_record(call.params["domain_name"], call.params["record_id"])
    return Reply(200, {"domain_record": record.to_dict()})


def _update(backend: DigitalOceanBackend, call: Call, partial: bool) -> Reply:
    record = backend.domains.update_record(
        call.params["domain_name"], call.params["record_id"], call.body, partial=partial
    )
    return Reply(200, {"domain_record": record.to_dict()})


def put_record(backend: DigitalOceanBackend, call: Call) -> Reply:
    return _update(backend, call, partial=False)


def patch_record(backend: DigitalOceanBackend, call: Call) -> Reply:
    return _update(backend, call, partial=True)


def delete_record(backend: DigitalOceanBackend, call: Call) -> Reply:
    backend.domains.delete_record(call.params["domain_name"], call.params["record_id"])
    return Reply(204)


RECORD = "/v2/domains/{domain_name}/records/{record_id:int}"
ROUTES = [
    ("POST", "/v2/domains", create),
    ("GET", "/v2/domains", list_),
    ("GET", "/v2/domains/{domain_name}", get),
    ("DELETE", "/v2/domains/{domain_name}", delete),
    ("GET", "/v2/domains/{domain_name}/records", list_records),
    ("POST", "/v2/domains/{domain_name}/records", create_record),
    ("GET", RECORD, get_record),
    ("PUT", RECORD, put_record),
    ("PATCH", RECORD, patch_record),
    ("DELETE", RECORD, delete_record),
]
