"""The fake DigitalOcean answers clients nobody here wrote, the way the real API does.

- certbot-dns-digitalocean's own client (certbot/certbot
  certbot-dns-digitalocean/.../dns_digitalocean.py @f769e35) adds and removes its TXT
  record through python-digitalocean, which sends paths with a trailing slash
  ("domains/%s/records/", "account/keys/") and a JSON body `{}` on DELETE;
- every /v2 path answers the same with and without one trailing slash, for every
  method, with no redirect (issue 10, item 1);
- a method a path does not serve, OPTIONS included, is answered after the auth gate, in
  DigitalOcean's JSON error body, with an Allow header naming every method it serves;
- tags, SSH keys, and droplet actions by tag, as the OpenAPI document and godo show them.
"""

from __future__ import annotations

import digitalocean
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes.world import World
from tests.budget import examples
from tests.fake_clients import settle

pytestmark = pytest.mark.fake_only

TIMEOUT = 10
REGION = "nyc3"


def new_public_key() -> str:
    return Ed25519PrivateKey.generate().public_key().public_bytes(
        Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + " compat-test"


@pytest.fixture(scope="module")
def http(world: World):
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`
    session.verify = str(world.ca.ca_path)
    session.headers["Authorization"] = f"Bearer {world.token}"

    def call(method: str, path: str, **kwargs) -> requests.Response:
        return session.request(method, world.endpoint + path, timeout=TIMEOUT,
                               allow_redirects=False, **kwargs)

    yield call
    session.close()


@pytest.fixture
def python_digitalocean(world: World, monkeypatch: pytest.MonkeyPatch):
    """python-digitalocean pointed at the world the way its README says: the token, and
    DIGITALOCEAN_END_POINT; requests trusts the world's CA through REQUESTS_CA_BUNDLE."""
    monkeypatch.setenv("DIGITALOCEAN_END_POINT", world.endpoint + "/v2/")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(world.ca.ca_path))
    monkeypatch.setenv("NO_PROXY", "*")
    return digitalocean.Manager(token=world.token)


# --- certbot's DigitalOcean DNS plugin, through python-digitalocean ----------------------
def test_certbots_dns_plugin_adds_and_removes_its_txt_record(world, http, python_digitalocean):
    # The plugin's own client (certbot-dns-digitalocean's _DigitalOceanClient, what its
    # authenticator calls for a dns-01 challenge), pointed at the world.
    from certbot_dns_digitalocean._internal.dns_digitalocean import _DigitalOceanClient

    assert http("POST", "/v2/domains", json={"name": "compat.example.test"}).status_code == 201
    plugin = _DigitalOceanClient(world.token)
    plugin.add_txt_record("compat.example.test", "_acme-challenge.compat.example.test",
                          "validation-token", 30)
    records = http("GET", "/v2/domains/compat.example.test/records?type=TXT").json()
    assert [(r["name"], r["data"], r["ttl"]) for r in records["domain_records"]] == \
        [("_acme-challenge", "validation-token", 30)]
    plugin.del_txt_record("compat.example.test", "_acme-challenge.compat.example.test",
                          "validation-token")
    records = http("GET", "/v2/domains/compat.example.test/records?type=TXT").json()
    assert records["domain_records"] == []


def test_python_digitalocean_lists_and_manages_ssh_keys(world, python_digitalocean):
    key = digitalocean.SSHKey(token=world.token, name="compat-key",
                              public_key=new_public_key())
    key.create()  # POST account/keys/ (the library keeps only the id)
    key.load()    # GET account/keys/<id>
    assert key.fingerprint.count(":") == 15
    listed = {k.id: k.fingerprint for k in python_digitalocean.get_all_sshkeys()}
    assert listed[key.id] == key.fingerprint
    loaded = digitalocean.SSHKey(token=world.token, fingerprint=key.fingerprint)
    loaded.load()  # GET account/keys/<fingerprint>
    assert loaded.id == key.id and loaded.name == "compat-key"
    key.destroy()  # DELETE account/keys/<id> with a JSON body {}
    assert key.id not in {k.id for k in python_digitalocean.get_all_sshkeys()}


def test_python_digitalocean_reads_the_account_droplets_and_images(world, python_digitalocean):
    assert python_digitalocean.get_account().status == "active"
    assert isinstance(python_digitalocean.get_all_droplets(), list)
    assert any(i.slug for i in python_digitalocean.get_distro_images())


# --- trailing slashes -----------------------------------------------------------------
READS = ["/v2/account", "/v2/droplets", "/v2/domains?per_page=200", "/v2/images?private=true",
         "/v2/snapshots", "/v2/firewalls", "/v2/account/keys", "/v2/tags", "/v2/regions",
         "/v2/sizes", "/v2/volumes", "/v2/reserved_ips", "/v2/actions"]


def _with_slash(path: str) -> str:
    base, _, query = path.partition("?")
    return f"{base}/?{query}" if query else f"{base}/"


@pytest.mark.parametrize("path", READS)
def test_a_read_answers_the_same_with_one_trailing_slash(http, path):
    plain, slashed = http("GET", path), http("GET", _with_slash(path))
    assert plain.status_code == slashed.status_code == 200
    key = next(iter(plain.json()))
    assert slashed.json()[key] == plain.json()[key]


def test_create_get_and_delete_answer_with_a_trailing_slash_and_never_redirect(http):
    created = http("POST", "/v2/tags/", json={"name": "slashed"})
    assert created.status_code == 201, created.text
    assert http("GET", "/v2/tags/slashed/").json()["tag"]["name"] == "slashed"
    volume = http("POST", "/v2/volumes/", json={"name": "slashed", "size_gigabytes": 1,
                                                "region": REGION})
    assert volume.status_code == 201, volume.text
    volume_id = volume.json()["volume"]["id"]
    assert http("DELETE", f"/v2/volumes/{volume_id}/").status_code == 204
    assert http("GET", f"/v2/volumes/{volume_id}/").status_code == 404
    assert http("DELETE", "/v2/tags/slashed/").status_code == 204


@settings(max_examples=examples(fast=10, deep=30), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
       path=st.sampled_from(["/v2/account", "/v2/droplets", "/v2/droplets/1",
                             "/v2/droplets/actions", "/v2/volumes/nope/actions",
                             "/v2/domains/none.example/records/1", "/v2/images/1",
                             "/v2/account/keys/1", "/v2/firewalls/x/rules", "/v2/no-such"]))
def test_any_method_on_any_path_answers_the_same_with_one_trailing_slash(http, method, path):
    plain, slashed = http(method, path), http(method, path + "/")
    assert plain.status_code == slashed.status_code
    assert plain.status_code not in (301, 302, 307, 308)
    assert plain.headers.get("allow") == slashed.headers.get("allow")
    if plain.status_code >= 400:
        assert plain.json()["id"] == slashed.json()["id"]


# --- methods a path does not serve ----------------------------------------------------
def test_options_lists_every_method_the_path_serves_in_a_json_405(http):
    response = http("OPTIONS", "/v2/droplets/1")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "DELETE"}
    body = response.json()
    assert body["id"] == "method_not_allowed" and body["request_id"]
    collection = http("PATCH", "/v2/droplets")
    assert set(collection.headers["allow"].split(", ")) == {"GET", "HEAD", "POST", "DELETE"}


def test_options_without_a_token_is_401_like_any_request(world):
    response = requests.options(world.endpoint + "/v2/droplets/1", timeout=TIMEOUT,
                                verify=str(world.ca.ca_path))
    assert response.status_code == 401
    assert response.json()["id"] == "unauthorized"


# --- tags --------------------------------------------------------------------------
def test_a_tag_counts_images_and_databases_and_points_at_the_last_tagged(http):
    assert http("POST", "/v2/tags", json={"name": "counted"}).status_code == 201
    empty = http("GET", "/v2/tags/counted").json()["tag"]["resources"]
    assert empty["images"] == {"count": 0} and empty["databases"] == {"count": 0}
    assert "imgages" not in empty and "last_tagged_uri" not in empty
    volume = http("POST", "/v2/volumes", json={"name": "counted", "size_gigabytes": 1,
                                               "region": REGION}).json()["volume"]
    tagged = http("POST", "/v2/tags/counted/resources", json={"resources": [
        {"resource_id": volume["id"], "resource_type": "volume"}]})
    assert tagged.status_code == 204
    resources = http("GET", "/v2/tags/counted").json()["tag"]["resources"]
    assert resources["count"] == 1
    assert resources["volumes"]["last_tagged_uri"].endswith(f"/v2/volumes/{volume['id']}")
    assert resources["last_tagged_uri"] == resources["volumes"]["last_tagged_uri"]


@pytest.mark.parametrize("name", ["no spaces", "здорово", "x" * 256, "", None])
def test_an_invalid_tag_name_is_the_documented_400(http, name):
    response = http("POST", "/v2/tags", json={"name": name})
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error", "messages", "root_causes"}
    assert body["error"] and isinstance(body["root_causes"], list)


# --- droplet actions by tag ----------------------------------------------------------------
@pytest.mark.parametrize("body", [{}, {"type": "rebuild"}, {"type": "teleport"}, []],
                         ids=["no type", "not for tags", "unknown", "not an object"])
def test_droplet_actions_by_tag_check_the_body_even_when_no_droplet_matches(http, body):
    response = http("POST", "/v2/droplets/actions?tag_name=nobody-has-this", json=body)
    assert response.status_code in (400, 422), response.text
    assert http("POST", "/v2/droplets/actions?tag_name=nobody-has-this",
                json={"type": "power_on"}).json() == {"actions": []}


# --- SSH keys, and the custom image rule -----------------------------------------------
def test_ssh_keys_are_found_and_deleted_by_id_or_by_fingerprint(http):
    public = new_public_key()
    created = http("POST", "/v2/account/keys", json={"name": "by-both", "public_key": public})
    assert created.status_code == 201
    key = created.json()["ssh_key"]
    assert key["public_key"] == public
    for identifier in (key["id"], key["fingerprint"]):
        assert http("GET", f"/v2/account/keys/{identifier}").json()["ssh_key"] == key
    again = http("POST", "/v2/account/keys", json={"name": "dup", "public_key": public})
    assert again.status_code == 422
    assert again.json()["message"] == "SSH Key is already in use on your account"
    renamed = http("PUT", f"/v2/account/keys/{key['fingerprint']}", json={"name": "renamed"})
    assert renamed.json()["ssh_key"]["name"] == "renamed"
    assert http("DELETE", f"/v2/account/keys/{key['fingerprint']}").status_code == 204
    assert http("GET", f"/v2/account/keys/{key['id']}").status_code == 404


@pytest.mark.parametrize("body", [
    {"name": "no-key"}, {"public_key": new_public_key()},
    {"name": "junk", "public_key": "ssh-ed25519 not-base64!"},
    {"name": "junk", "public_key": "hello"}, {"name": 5, "public_key": new_public_key()},
])
def test_an_ssh_key_needs_a_name_and_a_valid_public_key(http, body):
    response = http("POST", "/v2/account/keys", json=body)
    assert response.status_code == 422
    assert response.json()["id"] == "unprocessable_entity"


def test_a_droplet_from_a_custom_image_needs_an_ssh_key(world, http):
    image = http("POST", "/v2/images", json={
        "name": "needs-key", "url": "https://images.example.test/custom.img",
        "region": REGION, "distribution": "Unknown"}).json()["image"]
    settle(world, 600)
    body = {"name": "custom", "region": REGION, "size": "s-1vcpu-1gb", "image": image["id"]}
    refused = http("POST", "/v2/droplets", json=body)
    assert refused.status_code == 422
    assert "SSH key" in refused.json()["message"]
    unknown = http("POST", "/v2/droplets", json={**body, "ssh_keys": [12345]})
    assert unknown.status_code == 422
    key = http("POST", "/v2/account/keys", json={
        "name": "for-custom", "public_key": new_public_key()}).json()["ssh_key"]
    for reference in (key["id"], key["fingerprint"]):
        created = http("POST", "/v2/droplets", json={**body, "ssh_keys": [reference]})
        assert created.status_code == 202, created.text
    # A base image needs none.
    base = http("POST", "/v2/droplets", json={**body, "image": "debian-12-x64"})
    assert base.status_code == 202
