"""Schema-driven fuzzing of the running fake DigitalOcean (issue 10, the fuzz tier).

schemathesis generates requests for every operation of the vendored OpenAPI subset
(reference/digitalocean-openapi-subset.json) that the fake implements: valid requests
(positive mode), requests that break the schema (negative mode), and valid requests whose
path names resources that exist (a droplet, volume, domain record, firewall, SSH key,
image, snapshot, tag, reserved IP and action made first), so that the handlers' own
checks run, not only their 404s. Every response is
checked: no server error, a status code the operation documents (or `default`), the
documented content type, and a body that matches the response schema. There are no
exceptions: every failure kind found so far was a defect of the fake and is fixed.

Positive examples per operation (negative gets a third, seeded half): 3 on a developer
run (about 30 s here, most of it schemathesis building each operation's strategies, so
fewer examples would save little), 6 in the deep hypothesis profile (tests/budget.py),
or `SCHEMATHESIS_EXAMPLES`. The test prints the
cases run, the statuses seen and the failures by kind (`pytest -s` shows them).
"""

from __future__ import annotations

import os
import re
from collections import Counter

import pytest
import requests
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fakes.digitalocean.api import route_table
from tests.budget import examples
from tests.reference import openapi_subset

pytestmark = pytest.mark.fake_only

POSITIVE_EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES") or examples(fast=3, deep=6))
NEGATIVE_EXAMPLES = max(1, POSITIVE_EXAMPLES // 3)
SEEDED_EXAMPLES = max(2, POSITIVE_EXAMPLES // 2)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# schemathesis's failure classes, by the kind the issue counts.
KINDS = {"ServerError": "server error", "UndefinedStatusCode": "undocumented status",
         "JsonSchemaError": "schema violation", "UndefinedContentType": "content type",
         "MalformedMediaType": "content type"}


def _template(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _implemented() -> set[tuple[str, str]]:
    return {(method, _template(path)) for path, handlers in route_table().items()
            for method in handlers}


class Tally:
    def __init__(self) -> None:
        self.cases = 0
        self.statuses: Counter[int] = Counter()
        self.failures: Counter[str] = Counter()
        self.examples: list[str] = []

    def record(self, label: str, case, response) -> None:
        self.cases += 1
        self.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                kind = KINDS.get(type(failure).__name__, type(failure).__name__)
                self.failures[kind] += 1
                if len(self.examples) < 10:
                    self.examples.append(f"{label} -> {response.status_code} ({kind}): "
                                         f"{str(failure).splitlines()[0]}; body "
                                         f"{response.text[:200]!r}; curl: "
                                         f"{case.as_curl_command()}")

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        failures = ", ".join(f"{k}: {n}" for k, n in sorted(self.failures.items())) or "none"
        return f"{self.cases} cases ({statuses}); failures: {failures}"


def _fuzz(operation, mode, examples: int, send, tally: Tally,
          path_parameters: dict | None = None) -> None:
    @given(case=operation.as_strategy(mode, path_parameters=path_parameters))
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    def fuzz(case) -> None:
        tally.record(operation.label, case, send(case))

    fuzz()


def _seed(world, session: requests.Session) -> dict:
    """One resource of each kind, made through the API; path parameter name -> its id."""
    def post(path: str, body: dict) -> dict:
        response = session.post(world.endpoint + path, json=body, timeout=10,
                                verify=str(world.ca.ca_path),
                                headers={"Authorization": f"Bearer {world.token}"})
        assert response.status_code < 300, (path, response.text)
        return response.json()

    volume = post("/v2/volumes", {"name": "seed-volume", "size_gigabytes": 1,
                                  "region": "nyc3", "tags": ["seed"]})["volume"]
    created = post("/v2/droplets", {"name": "seed", "size": "s-1vcpu-1gb", "region": "nyc3",
                                    "image": "debian-12-x64", "tags": ["seed"]})
    post("/v2/domains", {"name": "seed.example.test"})
    record = post("/v2/domains/seed.example.test/records",
                  {"type": "A", "name": "www", "data": "203.0.113.1", "ttl": 300})
    firewall = post("/v2/firewalls", {"name": "seed-fw", "inbound_rules": [
        {"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0"]}}]})
    public = Ed25519PrivateKey.generate().public_key().public_bytes(
        Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    key = post("/v2/account/keys", {"name": "seed", "public_key": public})["ssh_key"]
    image = post("/v2/images", {"name": "seed-image", "region": "nyc3",
                                "url": "https://images.example.test/seed.img"})["image"]
    snapshot = post(f"/v2/volumes/{volume['id']}/snapshots", {"name": "seed-snap"})
    reserved = post("/v2/reserved_ips", {"region": "nyc3"})["reserved_ip"]
    resize = post(f"/v2/volumes/{volume['id']}/actions",
                  {"type": "resize", "size_gigabytes": 2, "region": "nyc3"})["action"]
    return {"droplet_id": created["droplet"]["id"], "volume_id": volume["id"],
            "domain_name": "seed.example.test", "domain_record_id": record["domain_record"]["id"],
            "firewall_id": firewall["firewall"]["id"], "ssh_key_identifier": key["id"],
            "image_id": image["id"], "snapshot_id": snapshot["snapshot"]["id"],
            "tag_id": "seed", "reserved_ip": reserved["ip"],
            "action_id": created["links"]["actions"][0]["id"], "volume_action_id": resize["id"]}


@pytest.fixture(scope="module")
def schema():
    return schemathesis.openapi.from_dict(openapi_subset())


def test_every_implemented_operation_answers_within_its_schema(world, schema, capsys):
    implemented = _implemented()
    operations = [op for op in (r.ok() for r in schema.get_all_operations())
                  if (op.method.upper(), _template(op.path)) in implemented]
    # Every route of the fake is an operation of the document (nothing fuzzed is made up,
    # and nothing the fake serves escapes the fuzzer).
    assert len(operations) == len(implemented), sorted(
        implemented - {(op.method.upper(), _template(op.path)) for op in operations})

    session = requests.Session()
    session.trust_env = False
    headers = {"Authorization": f"Bearer {world.token}"}
    tally = Tally()

    def send(case):
        return case.call(base_url=world.endpoint, session=session, headers=headers,
                         verify=str(world.ca.ca_path))

    for operation in operations:
        _fuzz(operation, schemathesis.GenerationMode.POSITIVE, POSITIVE_EXAMPLES, send, tally)
        _fuzz(operation, schemathesis.GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, send, tally)
    known = _seed(world, session)
    # Reads before deletes, so that the seeded resources are there for most of them.
    for operation in sorted(operations, key=lambda op: op.method.upper() == "DELETE"):
        names = re.findall(r"\{([^}]+)\}", operation.path)
        if names:
            ids = {name: known[name] for name in names if name in known}
            if operation.path.startswith("/v2/volumes/{volume_id}/actions/"):
                ids["action_id"] = known["volume_action_id"]
            _fuzz(operation, schemathesis.GenerationMode.POSITIVE, SEEDED_EXAMPLES, send, tally,
                  ids)
    session.close()
    with capsys.disabled():
        print(f"\nschemathesis on the fake DigitalOcean, {len(operations)} operations: "
              f"{tally.summary()}")
    assert not tally.failures, tally.summary() + "\n  " + "\n  ".join(tally.examples)
    assert tally.cases >= len(operations)
