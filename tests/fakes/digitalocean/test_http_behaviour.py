"""What every client of DigitalOcean's HTTP API sees, checked against the fake.

Facts: reference/digitalocean-api.md §3 (errors, auth, rate limits), §5 (asynchronous delete,
custom image import), and the fake's own admin API (fakes/admin.py) for what only a
fake can do. Most tests use a world whose clock runs at wall speed, so nothing
happens between two calls unless the test moves the clock: transient states (a
deleted droplet that still answers, an image that is `pending`) are then certain.
"""

from __future__ import annotations

import uuid

import pytest
import requests

from fakes.world import World

pytestmark = pytest.mark.fake_only

TIMEOUT = 10  # wall seconds for any one HTTP call
RATELIMIT_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")
SIZE, IMAGE, REGION = "s-1vcpu-1gb", "ubuntu-24-04-x64", "nyc3"


class Api:
    """Plain HTTPS calls, as any client makes them, plus the fake's admin API."""

    def __init__(self, world: World, token: str | None = None) -> None:
        self.world = world
        self.http = requests.Session()
        self.http.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`
        self.http.verify = str(world.ca.ca_path)
        if token is not None:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.http.request(method, self.world.endpoint + path, timeout=TIMEOUT,
                                 **kwargs)

    def admin(self, method: str, path: str, secret: str | None = None,
              **kwargs) -> requests.Response:
        secret = self.world.admin_secret if secret is None else secret
        return self.http.request(method, f"{self.world.endpoint}/_admin{path}",
                                 headers={"X-Admin-Secret": secret}, timeout=TIMEOUT,
                                 **kwargs)

    def advance(self, seconds: float) -> None:
        self.admin("POST", "/clock/advance", json={"seconds": seconds}).raise_for_status()

    def close(self) -> None:
        self.http.close()


def start_world(directory, speed: float = 1.0):
    """A fresh world; at speed 1 the virtual clock moves only when a test moves it
    (plus the wall time the test takes, a fraction of a second)."""
    return World(directory, speed=speed, acme=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    with start_world(tmp_path_factory.mktemp("http-world")) as started:
        yield started


@pytest.fixture
def api(world):
    client = Api(world, world.token)
    yield client
    client.close()


@pytest.fixture
def own_world(tmp_path):
    """For tests that change world-wide settings (rate limits, faults)."""
    with start_world(tmp_path / "world") as started:
        client = Api(started, started.token)
        yield started, client
        client.close()


def assert_error(response: requests.Response, status: int, error_id: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["id"] == error_id
    assert body["message"]
    # The body's request_id is the x-request-id header (godo falls back to the header).
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def active_droplet(api: Api, name: str, **extra) -> dict:
    created = api.call("POST", "/v2/droplets", json={
        "name": name, "region": REGION, "size": SIZE, "image": IMAGE, **extra})
    assert created.status_code == 202, created.text
    droplet_id = created.json()["droplet"]["id"]
    api.advance(60)  # a droplet boots in 30-60 s
    droplet = api.call("GET", f"/v2/droplets/{droplet_id}").json()["droplet"]
    assert droplet["status"] == "active"
    return droplet


# --- authentication, request ids, rate limit headers ------------------------------
@pytest.mark.parametrize("authorization", [
    None, "Bearer dop_v1_" + "0" * 64, "Basic c3BlYzpzcGVj", "Bearer ",
], ids=["no header", "unknown token", "basic auth", "empty bearer"])
def test_a_request_without_a_valid_bearer_token_is_401_unauthorized(world, authorization):
    stranger = Api(world)
    headers = {"Authorization": authorization} if authorization else {}
    response = stranger.call("GET", "/v2/account", headers=headers)
    body = assert_error(response, 401, "unauthorized")
    assert body["message"] == "Unable to authenticate you."
    stranger.close()


def test_the_bearer_token_opens_the_api(api):
    response = api.call("GET", "/v2/account")
    assert response.status_code == 200
    assert response.json()["account"]["status"] == "active"


def test_every_response_carries_its_own_x_request_id(world, api):
    stranger = Api(world)
    responses = [
        api.call("GET", "/v2/account"),
        api.call("GET", f"/v2/volumes/{uuid.uuid4()}"),
        api.call("POST", "/v2/volumes", json={"name": "Bad Name", "region": REGION,
                                              "size_gigabytes": 1}),
        stranger.call("GET", "/v2/account"),
    ]
    stranger.close()
    assert [r.status_code for r in responses] == [200, 404, 422, 401]
    ids = [r.headers["x-request-id"] for r in responses]
    assert len(set(ids)) == len(ids)
    for request_id in ids:
        uuid.UUID(request_id)


def test_every_authenticated_response_carries_ratelimit_headers(api):
    responses = [
        api.call("GET", "/v2/regions"),                                     # 200
        api.call("POST", "/v2/tags", json={"name": "ratelimit-headers"}),   # 201
        api.call("DELETE", "/v2/tags/ratelimit-headers"),                   # 204
        api.call("GET", "/v2/droplets/1"),                                  # 404
        api.call("POST", "/v2/tags", json={"name": "no spaces allowed"}),   # 400
        api.call("POST", "/v2/volumes", json={"name": "x"}),                # 422
        api.call("POST", "/v2/tags", data=b"{", headers={"Content-Type": "application/json"}),
        api.call("GET", "/v2/no-such-collection"),                          # 404
    ]
    assert [r.status_code for r in responses] == [200, 201, 204, 404, 400, 422, 400, 404]
    for response in responses:
        for header in RATELIMIT_HEADERS:
            assert int(response.headers[header]) >= 0, (response.url, header)
        assert int(response.headers["ratelimit-limit"]) == 5000  # per hour, per token
    remaining = [int(r.headers["ratelimit-remaining"]) for r in responses]
    assert remaining == list(range(remaining[0], remaining[0] - len(responses), -1)), \
        "each request uses one from the hourly quota"


# --- rate limiting -------------------------------------------------------------------
def test_a_burst_over_the_per_minute_limit_is_429_with_retry_after_per_token(own_world):
    world, api = own_world
    configured = api.admin("POST", "/ratelimit", json={"per_minute": 5})
    assert configured.json()["per_minute"] == 5
    # A second token on the same account has its own quota (the limit is per token).
    other_token = "dop_v1_" + uuid.uuid4().hex * 2
    with world.backend.lock:
        world.digitalocean.tokens.add(other_token)
    other = Api(world, other_token)

    statuses = [api.call("GET", "/v2/account").status_code for _ in range(5)]
    assert statuses == [200] * 5
    limited = api.call("GET", "/v2/account")
    body = assert_error(limited, 429, "too_many_requests")
    assert body["message"] == "API rate limit exceeded."
    assert int(limited.headers["retry-after"]) >= 1
    for header in RATELIMIT_HEADERS:
        assert header in limited.headers

    assert other.call("GET", "/v2/account").status_code == 200, "other token unaffected"
    api.advance(61)  # the oldest requests leave the one-minute window
    assert api.call("GET", "/v2/account").status_code == 200
    other.close()


# --- the admin API ---------------------------------------------------------------------
@pytest.mark.parametrize("secret", ["", "wrong-secret", "token"],
                         ids=["missing", "wrong", "the api token"])
def test_the_admin_api_refuses_a_wrong_secret(world, api, secret):
    if secret == "token":
        secret = world.token
    refused = api.admin("POST", "/ratelimit", secret=secret, json={"per_minute": 1})
    assert refused.status_code == 401
    assert "secret" in refused.json()["error"]
    assert api.admin("GET", "/clock", secret=secret).status_code == 401
    # Nothing changed: more than one request a minute still goes through.
    assert [api.call("GET", "/v2/account").status_code for _ in range(3)] == [200] * 3


def test_an_after_mode_fault_answers_500_twice_though_the_volumes_were_created(own_world):
    _world, api = own_world
    fault = api.admin("POST", "/faults", json={
        "method": "POST", "path": "/v2/volumes", "status": 500, "count": 2, "mode": "after"})
    assert fault.status_code == 200, fault.text

    def create(name: str) -> requests.Response:
        return api.call("POST", "/v2/volumes",
                        json={"name": name, "region": REGION, "size_gigabytes": 10})

    assert_error(create("first"), 500, "server_error")
    assert_error(create("second"), 500, "server_error")
    assert create("third").status_code == 201, "the fault is used up after two"

    names = sorted(v["name"] for v in api.call("GET", "/v2/volumes").json()["volumes"])
    assert names == ["first", "second", "third"], "mode=after did the work anyway"
    # Which is why blindly retrying a failed POST is dangerous:
    assert_error(create("first"), 409, "conflict")


# --- malformed requests and unknown paths ------------------------------------------------
@pytest.mark.parametrize("payload", [b"{", b"not json", b'["a", "list"]'],
                         ids=["truncated", "not json", "not an object"])
def test_a_body_that_is_not_a_json_object_is_400_bad_request(api, payload):
    response = api.call("POST", "/v2/volumes", data=payload,
                        headers={"Content-Type": "application/json"})
    body = assert_error(response, 400, "bad_request")
    assert body["message"] == "error parsing request body"


@pytest.mark.parametrize("method, path", [
    ("GET", "/v2/no-such-collection"),
    ("POST", "/v2/droplets/1/no-such-thing"),
    ("DELETE", "/v2/volumes/snapshots"),
])
def test_an_unknown_v2_path_is_a_json_404_not_found(api, method, path):
    assert_error(api.call(method, path), 404, "not_found")


# --- asynchronous behaviour on the virtual clock -------------------------------------------
def test_a_deleted_droplet_still_answers_until_it_is_really_gone(api):
    droplet = active_droplet(api, "short-lived")
    path = f"/v2/droplets/{droplet['id']}"

    deleted = api.call("DELETE", path)
    assert deleted.status_code == 204
    assert deleted.content == b""
    still_there = api.call("GET", path)
    assert still_there.status_code == 200, "delete is asynchronous (terraform waits for 404)"

    api.advance(30)
    assert_error(api.call("GET", path), 404, "not_found")


def import_image(api: Api, name: str, url: str) -> str:
    created = api.call("POST", "/v2/images", json={
        "name": name, "url": url, "region": REGION, "distribution": "Unknown"})
    assert created.status_code == 202, created.text
    image = created.json()["image"]
    assert (image["status"], image["type"], image["error_message"]) == ("NEW", "custom", "")
    return f"/v2/images/{image['id']}"


def poll_image(api: Api, path: str, for_seconds: float, every: float = 10.0) -> list[dict]:
    """What a client polling every `every` virtual seconds sees, until the import is
    over (available, or an error_message) or `for_seconds` have passed."""
    seen, waited = [], 0.0
    while waited < for_seconds:
        api.advance(every)
        waited += every
        seen.append(api.call("GET", path).json()["image"])
        if seen[-1]["status"] == "available" or seen[-1]["error_message"]:
            break
    return seen


def test_a_custom_image_import_goes_new_then_pending_then_available(api):
    path = import_image(api, "truenas-scale", "https://downloads.example.org/truenas.img.gz")
    seen = poll_image(api, path, for_seconds=1800)  # an import takes minutes
    statuses = [image["status"] for image in seen]
    assert "pending" in statuses
    assert statuses[-1] == "available"
    assert statuses.index("pending") < statuses.index("available")
    assert seen[-1]["error_message"] == ""
    assert seen[-1]["regions"] == [REGION]


def test_an_xz_compressed_image_import_ends_with_an_error_message(api):
    # The URL is only fetched after the 202: the create itself succeeds.
    path = import_image(api, "truenas-xz", "https://downloads.example.org/truenas.img.xz")
    seen = poll_image(api, path, for_seconds=1800)
    assert seen[-1]["error_message"], "a failed import says why"
    assert "available" not in [image["status"] for image in seen]
    assert seen[-1]["regions"] == []


def test_one_long_clock_jump_runs_every_stage_that_falls_inside_it(api):
    path = import_image(api, "truenas-jump", "https://downloads.example.org/truenas.img.gz")
    api.advance(3600)  # an hour: queueing plus import are long over
    assert api.call("GET", path).json()["image"]["status"] == "available"


def test_a_failed_host_turns_the_droplet_off_then_it_disappears_leaving_its_volume(api):
    volume = api.call("POST", "/v2/volumes", json={
        "name": "survivor", "region": REGION, "size_gigabytes": 10}).json()["volume"]
    droplet = active_droplet(api, "doomed", volumes=[volume["id"]])
    path = f"/v2/droplets/{droplet['id']}"

    failed = api.admin("POST", f"/droplets/{droplet['id']}/host-failure")
    assert failed.json() == {"droplet_id": droplet["id"], "status": "off"}
    assert api.call("GET", path).json()["droplet"]["status"] == "off"

    api.advance(600)
    assert_error(api.call("GET", path), 404, "not_found")
    survivor = api.call("GET", f"/v2/volumes/{volume['id']}")
    assert survivor.status_code == 200, "losing a droplet never deletes its volumes"
    assert survivor.json()["volume"]["droplet_ids"] == []


@pytest.mark.parametrize("path", ["/v2/account/keys/{id}", "/v2/images/{id}"])
@pytest.mark.parametrize("identifier", ["³", "٣", "１２", "²⁵"])
def test_an_id_of_digits_other_than_ascii_is_not_found_not_a_server_error(api, path,
                                                                          identifier):
    """Found by the schemathesis fuzz test (GET /v2/account/keys/%C2%B3 answered 500):
    str.isdigit() accepts '³', which int() refuses. The API's Go backend takes ASCII
    digits as an id and looks anything else up by fingerprint or slug: 404 here."""
    assert_error(api.call("GET", path.format(id=identifier)), 404, "not_found")
