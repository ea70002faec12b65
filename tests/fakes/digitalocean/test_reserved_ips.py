"""The fake's reserved IPs, driven over HTTPS with pydo like a real client would."""

from __future__ import annotations

import ipaddress
import json

import pydo
import pytest

from fakes.world import World
from tests.fake_clients import refused, settle
from tests.reference import openapi_subset_spec


def assign(client: pydo.Client, ip: str, droplet_id: int) -> dict:
    return client.reserved_ips_actions.post(
        ip, body={"type": "assign", "droplet_id": droplet_id})["action"]


def assigned_droplet(client: pydo.Client, ip: str) -> int | None:
    droplet = client.reserved_ips.get(ip)["reserved_ip"]["droplet"]
    return droplet["id"] if droplet else None


def _account_cleaner(world: World, client: pydo.Client):
    made: list[int] = []

    def make(region: str = "nyc3") -> int:
        body = {"name": f"rip-test-{len(made)}", "size": "s-1vcpu-1gb",
                "image": "ubuntu-24-04-x64", "region": region}
        droplet_id = client.droplets.create(body=body)["droplet"]["id"]
        made.append(droplet_id)
        settle(world)
        return droplet_id

    def cleanup() -> None:
        # Each test starts from an account with no reserved IPs (the limit is 3).
        settle(world)
        for reserved in client.reserved_ips.list(per_page=200)["reserved_ips"]:
            client.reserved_ips.delete(reserved["ip"])
        for droplet_id in made:
            client.droplets.destroy(droplet_id)
        settle(world)

    return make, cleanup


@pytest.fixture
def new_droplet(world: World, client: pydo.Client):
    make, cleanup = _account_cleaner(world, client)
    yield make
    cleanup()


@pytest.fixture
def new_slow_droplet(slow_world: World, slow_client: pydo.Client):
    make, cleanup = _account_cleaner(slow_world, slow_client)
    yield make
    cleanup()


# --- create -------------------------------------------------------------------------

def test_an_ip_reserved_to_a_region_is_unassigned(world, client, new_droplet):
    created = client.reserved_ips.create(body={"region": "fra1"})
    reserved = created["reserved_ip"]

    assert ipaddress.ip_address(reserved["ip"]) in world.backend.reserved_addresses.network
    assert reserved["region"]["slug"] == "fra1"
    assert reserved["droplet"] is None
    assert reserved["locked"] is False
    assert created["links"] == {}
    assert client.reserved_ips.get(reserved["ip"])["reserved_ip"] == reserved
    assert reserved["ip"] in [r["ip"] for r in client.reserved_ips.list()["reserved_ips"]]


def test_an_ip_created_for_a_droplet_is_assigned_once_its_action_completes(
        world, client, new_droplet):
    droplet = new_droplet(region="ams3")
    created = client.reserved_ips.create(body={"droplet_id": droplet})
    reserved = created["reserved_ip"]

    assert reserved["region"]["slug"] == "ams3"   # the droplet's region
    assert reserved["droplet"] is None            # not yet: the assign is in progress
    assert reserved["locked"] is True
    assert [link["id"] for link in created["links"]["droplets"]] == [droplet]
    (link,) = created["links"]["actions"]
    assert link["rel"] == "assign_ip"

    settle(world, 10)
    after = client.reserved_ips.get(reserved["ip"])["reserved_ip"]
    assert after["droplet"]["id"] == droplet
    assert after["locked"] is False

    action = client.reserved_ips_actions.get(reserved["ip"], link["id"])["action"]
    assert action["status"] == "completed"
    assert action["type"] == "assign_ip"
    assert action["resource_type"] == "reserved_ip"
    assert action["resource_id"] == int(ipaddress.IPv4Address(reserved["ip"]))
    assert client.actions.get(link["id"])["action"]["status"] == "completed"


@pytest.mark.parametrize(("body", "field"), [
    ({}, "droplet_id or region is required"),
    ({"region": "nyc3", "droplet_id": 1}, "not both"),
    ({"region": "atlantis1"}, "region"),
    ({"region": "nyc2"}, "region"),          # exists, but not available
    ({"droplet_id": 999_999_999}, "droplet_id"),
    ({"droplet_id": "one"}, "droplet_id"),
    ({"region": "nyc3", "project_id": "not-a-uuid"}, "project_id"),
])
def test_an_invalid_create_is_refused_naming_the_field(client, new_droplet, body, field):
    status, message = refused(client.reserved_ips.create, body=body)
    assert status == 422
    assert field in message


def test_the_droplet_must_be_active(world, client, new_droplet):
    droplet = new_droplet()
    client.droplet_actions.post(droplet, body={"type": "power_off"})
    settle(world)
    status, message = refused(client.reserved_ips.create, body={"droplet_id": droplet})
    assert status == 422
    assert "droplet_id" in message and "active" in message

    ip = client.reserved_ips.create(body={"region": "nyc3"})["reserved_ip"]["ip"]
    status, message = refused(assign, client, ip, droplet)
    assert status == 422 and "active" in message


def test_a_droplet_has_at_most_one_reserved_ip(world, client, new_droplet):
    droplet = new_droplet()
    first = client.reserved_ips.create(body={"droplet_id": droplet})["reserved_ip"]["ip"]
    status, message = refused(client.reserved_ips.create, body={"droplet_id": droplet})
    assert status == 422 and first in message

    settle(world, 10)
    spare = client.reserved_ips.create(body={"region": "nyc3"})["reserved_ip"]["ip"]
    status, message = refused(assign, client, spare, droplet)
    assert status == 422 and "only one" in message


def test_the_account_limit_is_enforced(world, client, new_droplet):
    with world.backend.lock:
        limit = world.backend.account["reserved_ip_limit"]
    for _ in range(limit):
        client.reserved_ips.create(body={"region": "nyc3"})
    status, message = refused(client.reserved_ips.create, body={"region": "nyc3"})
    assert status == 422 and "limit" in message


# --- actions --------------------------------------------------------------------------

def test_assign_reassign_and_unassign(world, client, new_droplet):
    first, second = new_droplet(), new_droplet()
    ip = client.reserved_ips.create(body={"region": "nyc3"})["reserved_ip"]["ip"]

    action = assign(client, ip, first)
    assert (action["status"], action["type"]) == ("in-progress", "assign_ip")
    settle(world, 10)
    assert assigned_droplet(client, ip) == first

    assign(client, ip, second)                    # moves it: no unassign needed
    settle(world, 10)
    assert assigned_droplet(client, ip) == second

    unassigned = client.reserved_ips_actions.post(ip, body={"type": "unassign"})["action"]
    assert unassigned["type"] == "unassign_ip"
    settle(world, 10)
    assert assigned_droplet(client, ip) is None

    status, message = refused(client.reserved_ips_actions.post, ip, body={"type": "unassign"})
    assert (status, message) == (422, "The reserved IP is not assigned to a Droplet.")
    actions = client.reserved_ips_actions.list(ip)
    assert [a["type"] for a in actions["actions"]] == ["assign_ip", "assign_ip", "unassign_ip"]
    assert {a["status"] for a in actions["actions"]} == {"completed"}
    assert actions["meta"]["total"] == 3


def test_an_ip_stays_in_its_region(client, new_droplet):
    elsewhere = new_droplet(region="sfo3")
    ip = client.reserved_ips.create(body={"region": "nyc3"})["reserved_ip"]["ip"]
    status, message = refused(assign, client, ip, elsewhere)
    assert status == 422 and "same region" in message


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "move"}, "type"),
    ({"type": "assign"}, "droplet_id"),
    ({"type": "assign", "droplet_id": 999_999_999}, "droplet_id"),
])
def test_an_invalid_action_is_refused_naming_the_field(client, new_droplet, body, field):
    ip = client.reserved_ips.create(body={"region": "nyc3"})["reserved_ip"]["ip"]
    status, message = refused(client.reserved_ips_actions.post, ip, body=body)
    assert status == 422 and field in message


def test_an_ip_is_locked_while_an_action_is_in_progress(slow_world, slow_client,
                                                        new_slow_droplet):
    droplet = new_slow_droplet()
    ip = slow_client.reserved_ips.create(body={"region": "nyc3"})["reserved_ip"]["ip"]
    assign(slow_client, ip, droplet)

    assert slow_client.reserved_ips.get(ip)["reserved_ip"]["locked"] is True
    status, message = refused(assign, slow_client, ip, droplet)
    assert (status, message) == (422, "The reserved IP has a pending event.")
    status, _ = refused(slow_client.reserved_ips.delete, ip)
    assert status == 422

    settle(slow_world, 10)
    after = slow_client.reserved_ips.get(ip)["reserved_ip"]
    assert (after["locked"], after["droplet"]["id"]) == (False, droplet)


# --- delete, 404s, droplets going away ------------------------------------------------

def test_deleting_an_assigned_ip_releases_it(world, client, new_droplet):
    droplet = new_droplet()
    ip = client.reserved_ips.create(body={"droplet_id": droplet})["reserved_ip"]["ip"]
    settle(world, 10)

    assert client.reserved_ips.delete(ip) is None
    assert client.reserved_ips.get(ip)["id"] == "not_found"
    # The droplet is free for another reserved IP.
    again = client.reserved_ips.create(body={"droplet_id": droplet})["reserved_ip"]
    assert again["ip"] != ip


def test_unknown_reserved_ips_and_actions_are_404(client, new_droplet):
    # pydo lists 404 as an expected answer for these, so it returns the error body.
    assert client.reserved_ips.get("127.254.255.250")["id"] == "not_found"
    assert client.reserved_ips.get("not-an-ip")["id"] == "not_found"
    assert client.reserved_ips.delete("127.254.255.250")["id"] == "not_found"
    assert client.reserved_ips_actions.post(
        "127.254.255.250", body={"type": "unassign"})["id"] == "not_found"
    assert client.reserved_ips_actions.list("127.254.255.250")["id"] == "not_found"

    ip = client.reserved_ips.create(body={"region": "nyc3"})["reserved_ip"]["ip"]
    assert client.reserved_ips_actions.get(ip, 1)["id"] == "not_found"
    droplet = new_droplet()
    other = client.reserved_ips.create(body={"region": "nyc3"})["reserved_ip"]["ip"]
    foreign = assign(client, other, droplet)
    assert client.reserved_ips_actions.get(ip, foreign["id"])["id"] == "not_found"


def test_a_destroyed_droplet_leaves_its_ip_unassigned(world, client, new_droplet):
    droplet = new_droplet()
    ip = client.reserved_ips.create(body={"droplet_id": droplet})["reserved_ip"]["ip"]
    settle(world, 10)
    assert assigned_droplet(client, ip) == droplet

    client.droplets.destroy(droplet)
    settle(world, 30)
    reserved = client.reserved_ips.get(ip)["reserved_ip"]
    assert reserved["droplet"] is None
    assert reserved["region"]["slug"] == "nyc3"   # still reserved to the region


# --- the published schema -------------------------------------------------------------

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
    droplet = new_droplet()
    for_droplet = client.reserved_ips.create(body={"droplet_id": droplet})
    conforms(openapi, "POST", "/v2/reserved_ips", 202, for_droplet)
    in_region = client.reserved_ips.create(body={"region": "nyc3"})
    conforms(openapi, "POST", "/v2/reserved_ips", 202, in_region)
    settle(world, 10)

    ip = for_droplet["reserved_ip"]["ip"]
    path = f"/v2/reserved_ips/{ip}"
    conforms(openapi, "GET", path, 200, client.reserved_ips.get(ip))   # with its droplet
    conforms(openapi, "GET", "/v2/reserved_ips", 200, client.reserved_ips.list())
    action = client.reserved_ips_actions.post(ip, body={"type": "unassign"})
    conforms(openapi, "POST", f"{path}/actions", 201, action)
    conforms(openapi, "GET", f"{path}/actions/{action['action']['id']}", 200,
             client.reserved_ips_actions.get(ip, action["action"]["id"]))
    conforms(openapi, "GET", f"{path}/actions", 200, client.reserved_ips_actions.list(ip))
    conforms(openapi, "GET", "/v2/reserved_ips/127.254.255.250", 404,
             client.reserved_ips.get("127.254.255.250"))
