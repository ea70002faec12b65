"""Unit tests of infra's DigitalOcean client functions, with `responses` standing in
for the API (one client function at a time; the spec itself always runs over HTTPS)."""

from __future__ import annotations

import json

import pytest
import responses

from infra.digitalocean import DigitalOcean
from infra.errors import CloudError, NotFound, WaitTimeout
from infra.secrets import Secret
from infra.target import Target, Timing

API = "https://api.test"
TOKEN = "dop_v1_" + "c0ffee" * 10


@pytest.fixture
def do() -> DigitalOcean:
    target = Target("real", API, Secret(TOKEN), None,
                    Timing(poll_interval=0.001, min_deadline=0.05, backoff=0.001))
    return DigitalOcean(target)


def _error(status: int, error_id: str, message: str, request_id: str = "req-1") -> dict:
    return {"status": status, "json": {"id": error_id, "message": message,
                                       "request_id": request_id}}


DROPLET = {"id": 7, "name": "alpha-truenas", "tags": ["truenas-site:alpha"]}


@responses.activate
def test_a_create_answered_500_after_the_work_is_found_not_repeated(do: DigitalOcean) -> None:
    # pydo would retry this POST on its own (reference/digitalocean-api.md §4); we look first.
    responses.post(f"{API}/v2/droplets", **_error(500, "server_error", "oops"))
    responses.get(f"{API}/v2/droplets", json={"droplets": [DROPLET], "meta": {"total": 1}})
    c = do.client
    result = do.create_once(
        "create droplet", lambda: c.droplets.create({"name": "alpha-truenas"}),
        lambda: {"droplet": d} if (d := c.droplets.list(tag_name="x")["droplets"]) else None,
    )
    assert result == {"droplet": [DROPLET]}
    assert do.log.by_method() == {"POST": 1, "GET": 1}


@responses.activate
def test_a_create_refused_before_the_work_is_retried_until_it_succeeds(do: DigitalOcean) -> None:
    responses.post(f"{API}/v2/droplets", **_error(503, "service_unavailable", "busy"))
    responses.post(f"{API}/v2/droplets", status=202, json={"droplet": DROPLET, "links": {}})
    responses.get(f"{API}/v2/droplets", json={"droplets": [], "meta": {"total": 0}})
    c = do.client
    result = do.create_once(
        "create droplet", lambda: c.droplets.create({"name": "alpha-truenas"}),
        lambda: None if not c.droplets.list()["droplets"] else "found",
    )
    assert result["droplet"]["id"] == 7
    assert do.log.by_method() == {"POST": 2, "GET": 1}


@responses.activate
def test_a_409_for_a_resource_that_is_not_ours_is_raised(do: DigitalOcean) -> None:
    responses.post(f"{API}/v2/volumes", **_error(409, "conflict", "already exists"))
    with pytest.raises(CloudError) as refused:
        do.create_once("create volume", lambda: do.client.volumes.create({"name": "v"}),
                       lambda: None)
    assert refused.value.status == 409
    assert len(responses.calls) == 1


@responses.activate
def test_404_returned_as_data_by_pydo_becomes_not_found(do: DigitalOcean) -> None:
    # droplets.get lists 404 among its OK codes, so pydo returns the body (reference §4)
    responses.get(f"{API}/v2/droplets/9", **_error(404, "not_found", "gone", "req-404"))
    with pytest.raises(NotFound) as missing:
        do.call("get droplet", do.client.droplets.get, 9)
    assert missing.value.request_id == "req-404"


@responses.activate
def test_errors_carry_message_and_request_id_but_never_the_token(do: DigitalOcean) -> None:
    responses.post(f"{API}/v2/volumes",
                   **_error(422, "unprocessable_entity", "size too big", "req-422"))
    with pytest.raises(CloudError) as refused:
        do.call("create volume", do.client.volumes.create, {"name": "v"})
    text = str(refused.value)
    assert "size too big" in text and "req-422" in text and "422" in text
    assert TOKEN not in text and TOKEN not in repr(refused.value)
    assert TOKEN not in repr(do.target)


@responses.activate
def test_reads_are_retried_on_429_honouring_retry_after(do: DigitalOcean) -> None:
    responses.get(f"{API}/v2/account", status=429, headers={"retry-after": "0"},
                  json={"id": "too_many_requests", "message": "API rate limit exceeded."})
    responses.get(f"{API}/v2/account", json={"account": {"email": "a@b.test"}})
    assert do.call("get account", do.client.account.get)["account"]["email"] == "a@b.test"
    assert len(responses.calls) == 2


@responses.activate
def test_list_all_follows_pages(do: DigitalOcean) -> None:
    def page(request):
        number = int(request.params.get("page", 1))
        links = {"pages": {"next": f"{API}/v2/tags?page={number + 1}"}} if number < 3 else {}
        return 200, {}, json.dumps({"tags": [{"name": f"t{number}"}], "links": links,
                                    "meta": {"total": 3}})

    responses.add_callback(responses.GET, f"{API}/v2/tags", callback=page)
    tags = do.list_all("list tags", do.client.tags.list, "tags")
    assert [t["name"] for t in tags] == ["t1", "t2", "t3"]
    assert all("per_page=200" in call.request.url for call in responses.calls)


def test_waits_are_bounded_and_say_what_they_waited_for(do: DigitalOcean) -> None:
    with pytest.raises(WaitTimeout, match="the droplet to boot"):
        do.wait_until("the droplet to boot", lambda: False, real_seconds=0.0)


@responses.activate
def test_an_errored_action_fails_the_wait(do: DigitalOcean) -> None:
    responses.get(f"{API}/v2/actions/5", json={"action": {
        "id": 5, "status": "errored", "type": "attach_volume"}})
    with pytest.raises(CloudError, match="errored"):
        do.wait_action(5, "attach volume")


@responses.activate
def test_the_client_reads_its_remaining_rate_limit_budget(do: DigitalOcean) -> None:
    responses.get(f"{API}/v2/account", json={"account": {}},
                  headers={"ratelimit-limit": "5000", "ratelimit-remaining": "12",
                           "ratelimit-reset": "1700000000"})
    do.call("get account", do.client.account.get)
    assert do.ratelimit_remaining == 12
