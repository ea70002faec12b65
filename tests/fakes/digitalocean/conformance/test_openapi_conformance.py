"""The fake DigitalOcean answers in the shapes DigitalOcean publishes.

Each test drives a piece of a real provisioning flow with pydo (the client infra/
uses), records every response pydo receives, and validates each one against the
published OpenAPI document. A failure names the operation and the schema error.
Facts: reference/digitalocean-api.md §2 (endpoints, statuses), §3 (errors, pagination), §5.
"""

from __future__ import annotations

import itertools
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
)

from tests.reference import OPENAPI_SUBSET

pytestmark = pytest.mark.fake_only

REGION = "nyc3"
SIZE = "s-1vcpu-1gb"
IMAGE = "ubuntu-24-04-x64"
POLL_SECONDS = 0.02          # 10 virtual seconds at the world's default speed
WAIT_DEADLINE_SECONDS = 15.0

_names = itertools.count(1)


@pytest.fixture(scope="module")
def spec_checker(spec_loader):
    return spec_loader(OPENAPI_SUBSET)


def unique(prefix: str) -> str:
    return f"cf-{prefix}-{next(_names)}"


# --- what a client does: poll, with a deadline ------------------------------------
def wait_for_action(client, action_id: int) -> dict:
    deadline = time.monotonic() + WAIT_DEADLINE_SECONDS
    while True:
        action = client.actions.get(action_id)["action"]
        if action["status"] != "in-progress":
            assert action["status"] == "completed", f"action {action_id} ended {action}"
            return action
        if time.monotonic() > deadline:
            raise AssertionError(f"action {action_id} ({action['type']}) still in progress")
        time.sleep(POLL_SECONDS)


def create_volume(client, name: str, size: int = 10, **extra) -> dict:
    body = {"name": name, "size_gigabytes": size, "region": REGION, **extra}
    return client.volumes.create(body)["volume"]


def create_active_droplet(client, name: str, **extra) -> dict:
    created = client.droplets.create(
        {"name": name, "region": REGION, "size": SIZE, "image": IMAGE, **extra}
    )
    assert created["droplet"]["status"] == "new"
    wait_for_action(client, created["links"]["actions"][0]["id"])
    droplet = client.droplets.get(created["droplet"]["id"])["droplet"]
    assert droplet["status"] == "active"
    return droplet


def next_page(listing: dict) -> int | None:
    url = listing.get("links", {}).get("pages", {}).get("next")
    return int(parse_qs(urlsplit(url).query)["page"][0]) if url else None


# --- read-only catalogue -----------------------------------------------------------
def test_account_regions_and_paged_sizes_match_the_published_schemas(conformance):
    client = conformance.client

    account = client.account.get()["account"]
    assert account["status"] == "active"
    assert client.regions.list()["regions"]

    sizes, page = [], 1
    while page is not None:
        listing = client.sizes.list(per_page=2, page=page)
        sizes += listing["sizes"]
        page = next_page(listing)
    assert len(sizes) == listing["meta"]["total"] > 2

    conformance.assert_all_conform({"account_get", "regions_list", "sizes_list"})


def test_a_custom_image_import_goes_new_then_pending_then_available(conformance):
    client = conformance.client
    image = client.images.create_custom({
        "name": unique("truenas"), "url": "https://downloads.example.org/truenas.img.gz",
        "region": REGION, "distribution": "Unknown", "tags": ["cf-conformance"],
    })["image"]
    statuses = [image["status"]]
    deadline = time.monotonic() + WAIT_DEADLINE_SECONDS
    while statuses[-1] != "available" and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        statuses.append(client.images.get(image["id"])["image"]["status"])
    assert statuses[0] == "NEW"
    assert "pending" in statuses
    assert statuses[-1] == "available"
    private = client.images.list(private=True)["images"]
    assert image["id"] in [i["id"] for i in private]

    conformance.assert_all_conform({"images_create_custom", "images_get", "images_list"})


# --- volumes -----------------------------------------------------------------------
def test_volumes_are_created_listed_fetched_and_found_by_name(conformance):
    client = conformance.client
    name = unique("data")
    volume = create_volume(client, name, filesystem_type="ext4",
                           filesystem_label="data", tags=["cf-conformance"])
    uuid.UUID(volume["id"])  # volume ids are UUIDs (the spec's path format)

    assert volume["id"] in [v["id"] for v in client.volumes.list()["volumes"]]
    by_name = client.volumes.list(name=name, region=REGION)
    assert [v["id"] for v in by_name["volumes"]] == [volume["id"]]
    assert client.volumes.get(volume["id"])["volume"]["droplet_ids"] == []

    conformance.assert_all_conform({"volumes_create", "volumes_list", "volumes_get"})


def test_a_volume_resize_grows_it_through_a_volume_action(conformance):
    client = conformance.client
    volume = create_volume(client, unique("grow"), size=10)
    action = client.volume_actions.post_by_id(
        volume["id"], {"type": "resize", "size_gigabytes": 20, "region": REGION}
    )["action"]
    assert action["type"] == "resize"
    wait_for_action(client, action["id"])
    assert client.volumes.get(volume["id"])["volume"]["size_gigabytes"] == 20

    conformance.assert_all_conform({"volumeActions_post_byId", "actions_get"})


def test_volume_snapshots_are_listed_per_volume_and_under_v2_snapshots(conformance):
    client = conformance.client
    volume = create_volume(client, unique("snapped"))
    snapshot = client.volume_snapshots.create(
        volume["id"], {"name": unique("snap"), "tags": ["cf-conformance"]}
    )["snapshot"]
    assert snapshot["resource_id"] == volume["id"]
    assert snapshot["resource_type"] == "volume"

    per_volume = client.volume_snapshots.list(volume["id"])["snapshots"]
    assert [s["id"] for s in per_volume] == [snapshot["id"]]
    assert client.volume_snapshots.get_by_id(snapshot["id"])["snapshot"]["name"] == \
        snapshot["name"]
    all_volume_snapshots = client.snapshots.list(resource_type="volume")["snapshots"]
    assert snapshot["id"] in [s["id"] for s in all_volume_snapshots]
    assert client.snapshots.get(snapshot["id"])["snapshot"]["id"] == snapshot["id"]

    conformance.assert_all_conform({
        "volumeSnapshots_create", "volumeSnapshots_list", "volumeSnapshots_get_byId",
        "snapshots_list", "snapshots_get",
    })


def test_a_volume_restored_from_a_snapshot_is_a_new_volume_of_at_least_its_size(conformance):
    client = conformance.client
    original = create_volume(client, unique("source"), size=12)
    snapshot = client.volume_snapshots.create(original["id"], {"name": unique("snap")})
    snapshot = snapshot["snapshot"]
    assert snapshot["min_disk_size"] == 12

    restored = client.volumes.create({
        "name": unique("restored"), "region": REGION, "snapshot_id": snapshot["id"],
        "size_gigabytes": snapshot["min_disk_size"],
    })["volume"]
    assert restored["id"] != original["id"]
    assert restored["size_gigabytes"] == 12

    conformance.assert_all_conform({"volumeSnapshots_create", "volumes_create"})


# --- droplets and attachments ------------------------------------------------------
def test_a_droplet_created_with_volumes_and_tags_is_found_by_tag_and_by_name(conformance):
    client = conformance.client
    tag = unique("site")
    first, second = create_volume(client, unique("pool-a")), create_volume(client, unique("pool-b"))
    name = unique("node")
    droplet = create_active_droplet(client, name, tags=[tag],
                                    volumes=[first["id"], second["id"]])

    assert sorted(droplet["volume_ids"]) == sorted([first["id"], second["id"]])
    assert client.volumes.get(first["id"])["volume"]["droplet_ids"] == [droplet["id"]]
    assert droplet["networks"]["v4"], "an active droplet has its addresses"
    by_tag = client.droplets.list(tag_name=tag)
    assert [d["id"] for d in by_tag["droplets"]] == [droplet["id"]]
    assert by_tag["meta"]["total"] == 1
    assert [d["id"] for d in client.droplets.list(name=name)["droplets"]] == [droplet["id"]]

    conformance.assert_all_conform(
        {"volumes_create", "droplets_create", "actions_get", "droplets_get", "droplets_list"}
    )


def test_volumes_attach_and_detach_by_id_and_by_name(conformance):
    client = conformance.client
    droplet = create_active_droplet(client, unique("node"))
    volume = create_volume(client, unique("movable"))
    attach = {"type": "attach", "droplet_id": droplet["id"], "region": REGION}
    detach = {"type": "detach", "droplet_id": droplet["id"], "region": REGION}

    action = client.volume_actions.post_by_id(volume["id"], attach)["action"]
    assert (action["type"], action["resource_type"]) == ("attach_volume", "volume")
    wait_for_action(client, action["id"])
    assert client.volumes.get(volume["id"])["volume"]["droplet_ids"] == [droplet["id"]]
    assert client.volume_actions.get(volume["id"], action["id"])["action"]["status"] == \
        "completed"

    wait_for_action(client, client.volume_actions.post_by_id(volume["id"], detach)["action"]["id"])
    assert client.volumes.get(volume["id"])["volume"]["droplet_ids"] == []

    by_name = {"volume_name": volume["name"]}
    wait_for_action(client, client.volume_actions.post({**attach, **by_name})["action"]["id"])
    assert client.droplets.get(droplet["id"])["droplet"]["volume_ids"] == [volume["id"]]
    wait_for_action(client, client.volume_actions.post({**detach, **by_name})["action"]["id"])
    assert client.droplets.get(droplet["id"])["droplet"]["volume_ids"] == []

    conformance.assert_all_conform({
        "volumeActions_post_byId", "volumeActions_post", "volumeActions_get", "actions_get",
        "volumes_get", "droplets_get",
    })


def test_a_droplet_powers_off_and_on_through_droplet_actions(conformance):
    client = conformance.client
    droplet = create_active_droplet(client, unique("node"))

    off = client.droplet_actions.post(droplet["id"], {"type": "power_off"})["action"]
    assert (off["type"], off["resource_id"]) == ("power_off", droplet["id"])
    wait_for_action(client, off["id"])
    assert client.droplets.get(droplet["id"])["droplet"]["status"] == "off"

    on = client.droplet_actions.post(droplet["id"], {"type": "power_on"})["action"]
    wait_for_action(client, on["id"])
    assert client.droplets.get(droplet["id"])["droplet"]["status"] == "active"

    conformance.assert_all_conform({"dropletActions_post", "actions_get", "droplets_get"})


# --- tags and domains --------------------------------------------------------------
def test_tags_are_created_fetched_listed_and_assigned(conformance):
    client = conformance.client
    name = unique("tag")
    assert client.tags.create({"name": name})["tag"]["name"] == name
    volume = create_volume(client, unique("tagged"))
    client.tags.assign_resources(
        name, {"resources": [{"resource_id": volume["id"], "resource_type": "volume"}]}
    )
    tag = client.tags.get(name)["tag"]
    assert tag["resources"]["count"] == 1
    assert tag["resources"]["volumes"]["count"] == 1
    assert name in [t["name"] for t in client.tags.list(per_page=200)["tags"]]
    assert name in client.volumes.get(volume["id"])["volume"]["tags"]

    conformance.assert_all_conform(
        {"tags_create", "tags_assign_resources", "tags_get", "tags_list"}
    )


def test_domain_records_are_created_filtered_by_fqdn_fetched_patched_and_deleted(conformance):
    client = conformance.client
    domain = f"{unique('site')}.example.org"
    assert client.domains.create({"name": domain})["domain"]["name"] == domain

    apex = client.domains.create_record(
        domain, {"type": "A", "name": "@", "data": "203.0.113.10", "ttl": 300}
    )["domain_record"]
    challenge = client.domains.create_record(
        domain, {"type": "TXT", "name": "_acme-challenge", "data": "token-1", "ttl": 60}
    )["domain_record"]

    everything = client.domains.list_records(domain)
    assert {apex["id"], challenge["id"]} <= {r["id"] for r in everything["domain_records"]}
    # The name filter is fully qualified (reference/digitalocean-api.md §2).
    filtered = client.domains.list_records(domain, name=f"_acme-challenge.{domain}")
    assert [r["id"] for r in filtered["domain_records"]] == [challenge["id"]]

    assert client.domains.get_record(domain, apex["id"])["domain_record"]["data"] == \
        "203.0.113.10"
    patched = client.domains.patch_record(domain, apex["id"], {"data": "203.0.113.11"})
    assert patched["domain_record"]["data"] == "203.0.113.11"
    assert client.domains.delete_record(domain, challenge["id"]) is None
    assert client.domains.get(domain)["domain"]["name"] == domain

    conformance.assert_all_conform({
        "domains_create", "domains_create_record", "domains_list_records",
        "domains_get_record", "domains_patch_record", "domains_delete_record", "domains_get",
    })


# --- errors --------------------------------------------------------------------------
def test_missing_resources_answer_404_not_found_in_the_error_schema(conformance):
    client = conformance.client
    # pydo returns the error body for operations whose OK list includes 404 (§4).
    missing_volume = client.volumes.get(str(uuid.uuid4()))
    missing_droplet = client.droplets.get(1)
    for error in (missing_volume, missing_droplet):
        assert error["id"] == "not_found"
        assert error["message"] and error["request_id"]
    assert [e.status for e in conformance.exchanges] == [404, 404]

    conformance.assert_all_conform({"volumes_get", "droplets_get"})


def test_an_invalid_volume_create_answers_422_unprocessable_entity(conformance):
    client = conformance.client
    with pytest.raises(HttpResponseError) as caught:
        create_volume(client, "Not_A_Valid_Name")
    assert caught.value.status_code == 422
    assert caught.value.response.json()["id"] == "unprocessable_entity"

    conformance.assert_all_conform({"volumes_create"})


def test_deleting_an_attached_volume_answers_409_conflict(conformance):
    client = conformance.client
    volume = create_volume(client, unique("held"))
    create_active_droplet(client, unique("holder"), volumes=[volume["id"]])
    with pytest.raises(ResourceExistsError) as caught:
        client.volumes.delete(volume["id"])
    assert caught.value.status_code == 409
    assert caught.value.response.json()["id"] == "conflict"

    conformance.assert_all_conform({"volumes_delete"})


def test_a_bad_token_answers_401_unauthorized(conformance):
    stranger = conformance.client_with_token("dop_v1_" + "0" * 64)
    with pytest.raises(ClientAuthenticationError) as caught:
        stranger.account.get()
    assert caught.value.status_code == 401
    assert caught.value.response.json()["id"] == "unauthorized"

    conformance.assert_all_conform({"account_get"})


# --- the check itself has teeth --------------------------------------------------------
def test_the_schema_check_rejects_responses_the_real_api_never_sends(spec_checker):
    volume_path = f"/v2/volumes/{uuid.uuid4()}"
    assert spec_checker.failures_of("GET", "/v2/volumes", 200, {"volumes": []}), \
        "a collection without meta.total"
    assert spec_checker.failures_of("GET", volume_path, 404, {"message": "gone"}), \
        "an error body without id"
    assert spec_checker.failures_of("GET", "/v2/actions/1", 200,
                                    {"action": {"id": 1, "status": "finished"}}), \
        "an action status outside in-progress|completed|errored"
    assert not spec_checker.failures_of("GET", volume_path, 404,
                                        {"id": "not_found", "message": "gone"})
