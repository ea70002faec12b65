"""The fake's cloud firewalls, driven over HTTPS with pydo like a real client would."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pydo
import pytest

from fakes.world import World
from tests.fake_clients import refused, settle
from tests.reference import openapi_subset_spec

EVERYWHERE = ["0.0.0.0/0", "::/0"]
HTTPS_IN = {"protocol": "tcp", "ports": "443", "sources": {"addresses": EVERYWHERE}}
ALL_OUT = {"protocol": "tcp", "ports": "0", "destinations": {"addresses": EVERYWHERE}}


def _droplet_factory(world: World, client: pydo.Client):
    made: list[int] = []

    def make(tags: list[str] | None = None, region: str = "nyc3") -> int:
        body = {"name": f"fw-test-{len(made)}", "size": "s-1vcpu-1gb",
                "image": "ubuntu-24-04-x64", "region": region, "tags": tags or []}
        droplet_id = client.droplets.create(body=body)["droplet"]["id"]
        made.append(droplet_id)
        settle(world)
        return droplet_id

    def cleanup() -> None:
        for droplet_id in made:
            client.droplets.destroy(droplet_id)
        settle(world)

    return make, cleanup


@pytest.fixture
def new_droplet(world: World, client: pydo.Client):
    make, cleanup = _droplet_factory(world, client)
    yield make
    cleanup()


@pytest.fixture
def new_slow_droplet(slow_world: World, slow_client: pydo.Client):
    make, cleanup = _droplet_factory(slow_world, slow_client)
    yield make
    cleanup()


def create(client: pydo.Client, **fields) -> dict:
    body = {"name": "web-firewall", "inbound_rules": [HTTPS_IN], **fields}
    return client.firewalls.create(body=body)["firewall"]


# --- create, status, rules ------------------------------------------------------

def test_a_new_firewall_is_waiting_until_applied_then_succeeded(world, client, new_droplet):
    droplet = new_droplet()
    created = create(client, droplet_ids=[droplet])

    uuid.UUID(created["id"])
    datetime.strptime(created["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert created["status"] == "waiting"
    assert created["pending_changes"] == [
        {"droplet_id": droplet, "removing": False, "status": "waiting"}
    ]

    settle(world, 10)
    applied = client.firewalls.get(created["id"])["firewall"]
    assert applied["status"] == "succeeded"
    assert applied["pending_changes"] == []
    assert applied["droplet_ids"] == [droplet]
    assert applied["inbound_rules"] == [HTTPS_IN]
    assert created["id"] in [f["id"] for f in client.firewalls.list()["firewalls"]]


def test_rules_come_back_as_the_api_writes_them(client):
    firewall = create(
        client,
        inbound_rules=[
            {"protocol": "tcp", "ports": "all", "sources": {"addresses": ["10.0.0.0/8"]}},
            {"protocol": "udp", "ports": "8000-9000", "sources": {"tags": ["fw-peers"]}},
            {"protocol": "icmp", "sources": {"addresses": ["192.0.2.1", "2001:db8::/32"]}},
        ],
        outbound_rules=[ALL_OUT],
    )
    assert [r["ports"] for r in firewall["inbound_rules"]] == ["0", "8000-9000", "0"]
    assert firewall["inbound_rules"][1]["sources"] == {"tags": ["fw-peers"]}
    assert firewall["outbound_rules"] == [ALL_OUT]
    # Tags a rule names exist afterwards, like tags given at droplet creation.
    assert client.tags.get("fw-peers")["tag"]["name"] == "fw-peers"


def _without(body: dict, **changes) -> dict:
    merged = {**body, **changes}
    return {k: value for k, value in merged.items() if value is not None}


def _inbound(**rule) -> dict:
    return {"inbound_rules": [rule]}


@pytest.mark.parametrize(("changes", "field"), [
    ({"name": None}, "name"),
    ({"name": "-starts-with-a-dash"}, "name"),
    ({"name": "has space"}, "name"),
    ({"inbound_rules": None}, "inbound_rules or outbound_rules"),
    ({"inbound_rules": []}, "inbound_rules or outbound_rules"),
    (_inbound(protocol="sctp", ports="22", sources={"addresses": EVERYWHERE}),
     "inbound_rules[0].protocol"),
    (_inbound(protocol="tcp", sources={"addresses": EVERYWHERE}), "inbound_rules[0].ports"),
    (_inbound(protocol="udp", ports="70000", sources={"addresses": EVERYWHERE}),
     "inbound_rules[0].ports"),
    (_inbound(protocol="tcp", ports="9000-8000", sources={"addresses": EVERYWHERE}),
     "inbound_rules[0].ports"),
    (_inbound(protocol="tcp", ports="http", sources={"addresses": EVERYWHERE}),
     "inbound_rules[0].ports"),
    (_inbound(protocol="tcp", ports="22"), "inbound_rules[0].sources"),
    (_inbound(protocol="tcp", ports="22", destinations={"addresses": EVERYWHERE}),
     "inbound_rules[0].sources"),
    (_inbound(protocol="tcp", ports="22", sources={}), "inbound_rules[0].sources"),
    (_inbound(protocol="tcp", ports="22", sources={"addresses": ["10.0.0.300"]}),
     "inbound_rules[0].sources.addresses"),
    ({"outbound_rules": [{"protocol": "tcp", "ports": "80",
                          "sources": {"addresses": EVERYWHERE}}]},
     "outbound_rules[0].destinations"),
    ({"tags": ["not a tag!"]}, "tag name"),
])
def test_an_invalid_firewall_is_refused_naming_the_field(client, changes, field):
    body = _without({"name": "valid-firewall", "inbound_rules": [HTTPS_IN]}, **changes)
    status, message = refused(client.firewalls.create, body=body)
    assert status == 422
    assert field in message


def test_droplets_a_firewall_names_must_exist(client):
    missing = 999_999_999
    status, message = refused(client.firewalls.create, body={
        "name": "web-firewall", "inbound_rules": [HTTPS_IN], "droplet_ids": [missing]})
    assert (status, "droplet_ids") == (422, message.split(":")[0])
    status, message = refused(client.firewalls.create, body=_inbound(
        protocol="tcp", ports="22", sources={"droplet_ids": [missing]}) | {"name": "x-fw"})
    assert status == 422
    assert "inbound_rules[0].sources.droplet_ids" in message


# --- update and sub-resources -----------------------------------------------------

def test_put_replaces_the_whole_firewall_and_rolls_it_out_again(world, client, new_droplet):
    droplet = new_droplet()
    firewall = create(client, droplet_ids=[droplet], tags=["fw-front"],
                      outbound_rules=[ALL_OUT])
    settle(world, 10)

    replaced = client.firewalls.update(firewall["id"], body={
        "name": "renamed-firewall", "inbound_rules": [HTTPS_IN]})["firewall"]
    assert replaced["name"] == "renamed-firewall"
    assert replaced["droplet_ids"] == []      # left out, so reset
    assert replaced["tags"] == []
    assert replaced["outbound_rules"] == []
    assert replaced["status"] == "waiting"
    assert replaced["pending_changes"] == [
        {"droplet_id": droplet, "removing": True, "status": "waiting"}
    ]
    settle(world, 10)
    assert client.firewalls.get(firewall["id"])["firewall"]["status"] == "succeeded"

    status, message = refused(client.firewalls.update, firewall["id"],
                              body={"inbound_rules": [HTTPS_IN]})
    assert (status, message) == (422, "name is required")


def test_droplets_and_tags_are_added_and_removed(world, client, new_droplet):
    first, second = new_droplet(), new_droplet()
    firewall = create(client)

    assert client.firewalls.assign_droplets(firewall["id"],
                                            body={"droplet_ids": [first, second]}) is None
    assert client.firewalls.add_tags(firewall["id"], body={"tags": ["fw-new-tag"]}) is None
    got = client.firewalls.get(firewall["id"])["firewall"]
    assert got["droplet_ids"] == [first, second]
    assert got["tags"] == ["fw-new-tag"]
    assert client.tags.get("fw-new-tag")["tag"]["name"] == "fw-new-tag"

    client.firewalls.delete_droplets(firewall["id"], body={"droplet_ids": [first]})
    client.firewalls.delete_tags(firewall["id"], body={"tags": ["fw-new-tag"]})
    settle(world, 10)
    got = client.firewalls.get(firewall["id"])["firewall"]
    assert (got["droplet_ids"], got["tags"], got["status"]) == ([second], [], "succeeded")

    status, message = refused(client.firewalls.assign_droplets, firewall["id"],
                              body={"droplet_ids": [999_999_999]})
    assert status == 422 and message.startswith("droplet_ids")
    status, message = refused(client.firewalls.add_tags, firewall["id"], body={"tags": []})
    assert (status, message) == (422, "tags is required")


def test_a_removal_is_a_pending_change_until_applied(slow_world, slow_client,
                                                     new_slow_droplet):
    droplet = new_slow_droplet()
    firewall = create(slow_client, droplet_ids=[droplet])
    settle(slow_world, 10)

    slow_client.firewalls.delete_droplets(firewall["id"], body={"droplet_ids": [droplet]})
    in_flight = slow_client.firewalls.get(firewall["id"])["firewall"]
    assert in_flight["status"] == "waiting"
    assert in_flight["pending_changes"] == [
        {"droplet_id": droplet, "removing": True, "status": "waiting"}
    ]
    settle(slow_world, 10)
    done = slow_client.firewalls.get(firewall["id"])["firewall"]
    assert (done["status"], done["pending_changes"]) == ("succeeded", [])


def test_rules_are_added_and_removed(world, client):
    firewall = create(client)
    ssh = {"protocol": "tcp", "ports": "22", "sources": {"addresses": ["198.51.100.0/24"]}}

    assert client.firewalls.add_rules(firewall["id"], body={
        "inbound_rules": [ssh], "outbound_rules": [ALL_OUT]}) is None
    got = client.firewalls.get(firewall["id"])["firewall"]
    assert got["inbound_rules"] == [HTTPS_IN, ssh]
    assert got["outbound_rules"] == [ALL_OUT]

    # A rule matches whatever the order of its addresses.
    https_reordered = {**HTTPS_IN, "sources": {"addresses": list(reversed(EVERYWHERE))}}
    client.firewalls.delete_rules(firewall["id"], body={"inbound_rules": [https_reordered]})
    got = client.firewalls.get(firewall["id"])["firewall"]
    assert got["inbound_rules"] == [ssh]
    assert got["outbound_rules"] == [ALL_OUT]

    status, message = refused(client.firewalls.add_rules, firewall["id"], body={
        "inbound_rules": [{"protocol": "tcp", "ports": "0-1", "sources": {"tags": ["a"]}}]})
    assert status == 422 and "inbound_rules[0].ports" in message


def test_delete_removes_the_firewall(client):
    firewall = create(client)
    assert client.firewalls.delete(firewall["id"]) is None
    assert client.firewalls.get(firewall["id"])["id"] == "not_found"


def test_unknown_firewalls_and_droplets_are_404(client):
    unknown = str(uuid.uuid4())
    # pydo lists 404 as an expected answer for these, so it returns the error body.
    assert client.firewalls.get(unknown)["id"] == "not_found"
    assert client.firewalls.delete(unknown)["id"] == "not_found"
    assert client.firewalls.update(unknown, body={"name": "x-fw"})["id"] == "not_found"
    assert client.firewalls.assign_droplets(unknown, body={"droplet_ids": [1]})[
        "id"] == "not_found"
    assert client.firewalls.add_rules(unknown, body={"inbound_rules": [HTTPS_IN]})[
        "id"] == "not_found"
    assert client.droplets.list_firewalls(999_999_999)["id"] == "not_found"


# --- which firewalls cover a droplet ------------------------------------------------

def test_the_firewalls_of_a_droplet_are_found_by_id_and_by_tag(world, client, new_droplet):
    tagged = new_droplet(tags=["fw-edge"])
    other = new_droplet()
    by_id = create(client, name="by-id", droplet_ids=[tagged])
    by_tag = create(client, name="by-tag", tags=["fw-edge"])
    unrelated = create(client, name="unrelated", droplet_ids=[other])

    listed = client.droplets.list_firewalls(tagged)
    ids = {f["id"] for f in listed["firewalls"]}
    assert ids == {by_id["id"], by_tag["id"]}
    assert listed["meta"]["total"] == 2
    assert unrelated["id"] not in ids
    # The tag's droplets are part of the rollout too.
    assert by_tag["pending_changes"] == [
        {"droplet_id": tagged, "removing": False, "status": "waiting"}
    ]

    with world.backend.lock:
        droplet = world.backend.droplets.get(tagged)
        covering = {f.id for f in world.backend.firewalls.applies_to(droplet)}
    assert covering == ids


def test_a_destroyed_droplet_drops_out_of_its_firewalls(world, client, new_droplet):
    doomed, kept = new_droplet(), new_droplet()
    firewall = create(client, droplet_ids=[doomed, kept])
    settle(world, 10)

    client.droplets.destroy(doomed)
    settle(world, 30)
    assert client.firewalls.get(firewall["id"])["firewall"]["droplet_ids"] == [kept]


# --- the published schema -----------------------------------------------------------

@pytest.fixture(scope="module")
def openapi():
    return openapi_subset_spec()


def conforms(openapi, method: str, path: str, status: int, body: dict) -> None:
    from openapi_core.testing import MockRequest, MockResponse

    request = MockRequest("https://api.digitalocean.com", method.lower(), path)
    response = MockResponse(json.dumps(body).encode(), status_code=status,
                            content_type="application/json")
    openapi.validate_response(request, response)


def test_answers_validate_against_the_published_schema(openapi, world, client, new_droplet):
    droplet = new_droplet(tags=["fw-schema"])
    created = client.firewalls.create(body={
        "name": "schema-firewall", "inbound_rules": [HTTPS_IN], "outbound_rules": [ALL_OUT],
        "droplet_ids": [droplet], "tags": ["fw-schema"]})
    path = f"/v2/firewalls/{created['firewall']['id']}"
    conforms(openapi, "POST", "/v2/firewalls", 202, created)
    updated = client.firewalls.update(created["firewall"]["id"], body={
        "name": "schema-firewall", "inbound_rules": [HTTPS_IN], "droplet_ids": [droplet]})
    conforms(openapi, "PUT", path, 200, updated)
    settle(world, 10)
    conforms(openapi, "GET", path, 200, client.firewalls.get(created["firewall"]["id"]))
    conforms(openapi, "GET", "/v2/firewalls", 200, client.firewalls.list())
    conforms(openapi, "GET", f"/v2/droplets/{droplet}/firewalls", 200,
             client.droplets.list_firewalls(droplet))
    conforms(openapi, "GET", path, 404, client.firewalls.get(str(uuid.uuid4())))
