"""Certificates, ACME DNS authenticators and the web UI settings of the fake TrueNAS.

Two levels:
- the methods called as the transport calls them (no network; a stand-in for the
  node's listeners where the UI would move): CSR creation, imports, the DNS mapping
  rules, the UI settings' validation, restart and rollback on the virtual clock;
- a whole fake world over WSS (marked `acme`, skipped without pebble): a real dns-01
  issuance by the node against the world's pebble through the world's DigitalOcean
  API, its failures, and the UI moving to the certificate and port it is given.

Facts: reference/truenas-api.md §4 "Certificates and ACME" and "Web UI settings",
certificate.*.json, acme.dns.authenticator.create.json, system.general.*.json and
middleware 25.10's plugins (cited in the fake's modules).
"""

from __future__ import annotations

import datetime
import errno
import itertools
import json
import logging
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from fakes.clock import VirtualClock
from fakes.truenas import ejson
from fakes.truenas.errors import ValidationErrors
from fakes.truenas.jobs import Job
from fakes.truenas.node import CallContext, TrueNASNode
from fakes.world import World
from tests import fake_clients
from tests.budget import examples
from tests.fakes.truenas import test_fleet as fleet
from tests.fakes.truenas.test_methods import conforms

TOKEN = "dop_v1_" + "f" * 64
UNREACHABLE_DIRECTORY = "https://127.0.0.1:9/dir"     # discard port: nothing answers
_ids = itertools.count(1)


# --- the node, without a network ---------------------------------------------------------
class StubNetwork:
    """Where the UI listens, as the node's listeners would report it (the lead's
    NodeServer has the same three calls)."""

    def __init__(self) -> None:
        self.ui = (80, 443, None, None)
        self.others: dict[int, str] = {}
        self.restarts = 0

    def published(self) -> dict[int, str]:
        return {self.ui[0]: "ui", self.ui[1]: "ui", **self.others}

    def serve_ui(self, http_port, https_port, certfile=None, keyfile=None) -> None:
        self.ui = (http_port, https_port, certfile, keyfile)
        self.restarts += 1


@pytest.fixture
def node(tmp_path) -> TrueNASNode:
    # speed 1: virtual time moves only when the test says so (delays, rollbacks)
    clock = VirtualClock(speed=1.0)
    node = TrueNASNode(droplet_id=1, hostname="nas", address="127.10.0.5", clock=clock,
                       lock=threading.RLock(), state_dir=tmp_path / "node", api_keys={})
    node.network = StubNetwork()
    clock.advance(100)                     # booted
    return node


def call(node, method, *params):
    with node.lock:
        result = node.call(method, list(params), CallContext(message_id=next(_ids)))
    ejson.dumps(result.to_dict() if isinstance(result, Job) else result)
    return result


def finished(job: Job) -> Job:
    assert job.wait(30), f"{job.method} did not finish"
    return job


def succeeded(job: Job):
    finished(job)
    assert job.state == "SUCCESS", (job.error, job.exc_info)
    return job.result


def failed_with(job: Job) -> list[list]:
    """The [attribute, message, errno] triples of a job that failed validation."""
    finished(job)
    assert job.state == "FAILED"
    assert job.exc_info["type"] == "VALIDATION", job.error
    return job.exc_info["extra"]


def make_csr(node, name="csr", common="nas.example.test", san=("nas.example.test",),
             **options) -> dict:
    return succeeded(call(node, "certificate.create", {
        "name": name, "create_type": "CERTIFICATE_CREATE_CSR", "key_type": "RSA",
        "key_length": 2048, "common": common, "san": list(san), "digest_algorithm": "SHA256",
        **options}))


def authenticator(node, name="do", token=TOKEN) -> dict:
    return call(node, "acme.dns.authenticator.create", {
        "name": name, "attributes": {"authenticator": "digitalocean",
                                     "digitalocean_token": token}})


def self_signed(common: str, key=None) -> tuple[str, str]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(common)]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


# --- certificates -------------------------------------------------------------------------
def test_a_fresh_node_serves_its_ui_with_truenas_default(node) -> None:
    [default] = call(node, "certificate.query")
    assert (default["id"], default["name"]) == (1, "truenas_default")
    assert default["cert_type_existing"] and not default["cert_type_CSR"]
    assert default["common"] == "localhost" and default["san"] == ["DNS:localhost"]
    config = call(node, "system.general.config")
    assert config["ui_certificate"]["id"] == 1
    assert (config["ui_port"], config["ui_httpsport"]) == (80, 443)
    conforms("certificate.query", [default])
    conforms("system.general.config", config)


@pytest.mark.parametrize("key", [{"key_type": "RSA", "key_length": 2048},
                                 {"key_type": "EC", "ec_curve": "SECP256R1"}])
def test_csr_creation_makes_a_key_and_a_signed_request(node, key) -> None:
    entry = make_csr(node, san=["nas.example.test", "www.example.test"], **key)
    assert entry["cert_type_CSR"] is True and entry["certificate"] is None
    assert entry["san"] == ["DNS:nas.example.test", "DNS:www.example.test"]
    assert entry["key_type"] == key["key_type"]
    request = x509.load_pem_x509_csr(entry["CSR"].encode())
    assert request.is_signature_valid
    private = serialization.load_pem_private_key(entry["privatekey"].encode(), None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert (request.public_key().public_bytes(serialization.Encoding.PEM, spki)
            == private.public_key().public_bytes(serialization.Encoding.PEM, spki))
    assert call(node, "certificate.get_instance", entry["id"])["CSR"] == entry["CSR"]
    conforms("certificate.create", entry)


def test_csr_rules_fail_the_job_under_the_plugins_names(node) -> None:
    job = call(node, "certificate.create", {"name": "a", "create_type": "CERTIFICATE_CREATE_CSR",
                                            "common": "x.example.test"})
    assert ["certificate_create.key_length", "RSA-based keys require an entry in this field.",
            errno.EINVAL] in failed_with(job)
    job = call(node, "certificate.create", {"name": "b", "create_type": "CERTIFICATE_CREATE_CSR",
                                            "key_length": 2048, "common": "x.example.test"})
    assert failed_with(job)[0][0] == "certificate_create_csr.san"
    make_csr(node, name="taken")
    job = call(node, "certificate.create", {"name": "taken", "key_length": 2048,
                                            "create_type": "CERTIFICATE_CREATE_CSR",
                                            "san": ["x.example.test"]})
    assert ["certificate_create.name", "A certificate with this name already exists",
            errno.EINVAL] in failed_with(job)


def test_argument_types_fail_at_once(node) -> None:
    for bad, attribute in (({"renew_days": 31}, "certificate_create.renew_days"),
                           ({"name": "no spaces"}, "certificate_create.name"),
                           ({"key_length": 1024}, "certificate_create.key_length")):
        with pytest.raises(ValidationErrors) as caught:
            call(node, "certificate.create", {"name": "x", "create_type":
                                              "CERTIFICATE_CREATE_ACME", **bad})
        assert caught.value.errors[0][0] == attribute


def test_an_import_whose_key_does_not_match_is_refused(node) -> None:
    certificate, _ = self_signed("site.example.test")
    _, other_key = self_signed("other.example.test")
    job = call(node, "certificate.create", {"name": "mismatch", "certificate": certificate,
                                            "privatekey": other_key,
                                            "create_type": "CERTIFICATE_CREATE_IMPORTED"})
    assert failed_with(job) == [["certificate_create.privatekey",
                                 "Private key does not match certificate: "
                                 "Certificate and private key do not match", errno.EINVAL]]
    assert "PRIVATE KEY" not in str(job.to_dict())           # arguments are redacted
    job = call(node, "certificate.create", {"name": "junk", "certificate": "not a cert",
                                            "privatekey": "nor a key",
                                            "create_type": "CERTIFICATE_CREATE_IMPORTED"})
    assert {e[0] for e in failed_with(job)} == {"certificate_create.certificate",
                                                 "certificate_create.privatekey"}


def test_an_import_with_its_own_key_shows_its_parsed_fields(node) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate, key_pem = self_signed("site.example.test", key)
    entry = succeeded(call(node, "certificate.create", {
        "name": "site", "certificate": certificate, "privatekey": key_pem,
        "create_type": "CERTIFICATE_CREATE_IMPORTED"}))
    parsed = x509.load_pem_x509_certificate(certificate.encode())
    assert entry["cert_type_existing"] and entry["parsed"] and not entry["expired"]
    assert entry["chain_list"] == [certificate.strip()]
    assert entry["san"] == ["DNS:site.example.test"]
    assert (entry["key_type"], entry["key_length"]) == ("RSA", 2048)
    assert entry["fingerprint"] == ":".join(f"{b:02X}" for b in parsed.fingerprint(hashes.SHA1()))
    assert entry["until"] == parsed.not_valid_after_utc.ctime()
    conforms("certificate.create", entry)


def test_the_ui_certificate_cannot_be_deleted(node) -> None:
    job = finished(call(node, "certificate.delete", 1))
    assert job.state == "FAILED"
    assert job.error == ("[EFAULT] Certificate is being used by following service(s):\n"
                         "1) UI Service\n")
    entry = make_csr(node)
    assert succeeded(call(node, "certificate.delete", entry["id"])) is True
    assert [c["id"] for c in call(node, "certificate.query")] == [1]


# --- DNS authenticators and the ACME request's checks -------------------------------------
def test_the_authenticator_token_is_stored_but_never_logged(node, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    entry = authenticator(node)
    assert entry["attributes"] == {"authenticator": "digitalocean", "digitalocean_token": TOKEN}
    assert call(node, "acme.dns.authenticator.query", [["name", "=", "do"]]) == [entry]
    csr = make_csr(node)
    job = finished(call(node, "certificate.create", {
        "name": "le", "create_type": "CERTIFICATE_CREATE_ACME", "csr_id": csr["id"],
        "tos": True, "acme_directory_uri": UNREACHABLE_DIRECTORY,
        "dns_mapping": {"nas.example.test": entry["id"]}}))
    assert job.state == "FAILED" and job.error.startswith("[EFAULT] Unable to retrieve directory")
    assert TOKEN not in caplog.text
    assert TOKEN not in str(job.to_dict())
    with pytest.raises(ValidationErrors) as caught:
        call(node, "acme.dns.authenticator.create", {"name": "x", "attributes": {
            "authenticator": "digitalocean", "digitalocean_token": TOKEN, "extra": TOKEN}})
    assert TOKEN not in caught.value.reason()
    assert call(node, "acme.dns.authenticator.delete", entry["id"]) is True
    assert call(node, "acme.dns.authenticator.query") == []


def test_dns_mapping_must_cover_every_name_of_the_csr(node) -> None:
    auth = authenticator(node)
    csr = make_csr(node, san=["nas.example.test", "www.example.test"])

    def acme(mapping):
        return call(node, "certificate.create", {
            "name": "le", "create_type": "CERTIFICATE_CREATE_ACME", "csr_id": csr["id"],
            "tos": True, "acme_directory_uri": UNREACHABLE_DIRECTORY, "dns_mapping": mapping})

    assert failed_with(acme({"nas.example.test": auth["id"]})) == [
        ["acme_create.dns_mapping",
         "Please provide DNS authenticator id for DNS:www.example.test", errno.EINVAL]]
    # middleware lists SAN names as "DNS:<name>": a bare SAN name is not one of the CSR's
    assert failed_with(acme({"nas.example.test": auth["id"],
                             "www.example.test": auth["id"]})) == [
        ["acme_create.dns_mapping", "www.example.test not specified in the CSR", errno.EINVAL]]
    assert failed_with(acme({"nas.example.test": 99, "DNS:www.example.test": auth["id"]}))[0] \
        == ["acme_create.dns_mapping",
            "Provided DNS Authenticator id for nas.example.test does not exist", errno.EINVAL]
    job = finished(acme({"nas.example.test": auth["id"], "DNS:www.example.test": auth["id"]}))
    assert job.error.startswith("[EFAULT] Unable to retrieve directory")   # past the checks


@settings(max_examples=examples(fast=8, deep=25), deadline=None)
@given(st.dictionaries(st.sampled_from(["nas.example.test", "DNS:nas.example.test",
                                        "DNS:www.example.test", "DNS:api.example.test",
                                        "www.example.test", "elsewhere.test"]),
                       st.sampled_from([1, 7]), max_size=6))
def test_dns_mapping_errors_are_exactly_the_uncovered_and_unknown_names(node_factory,
                                                                          mapping) -> None:
    node, csr_id = node_factory
    job = finished(call(node, "certificate.create", {
        "name": "le", "create_type": "CERTIFICATE_CREATE_ACME", "csr_id": csr_id, "tos": True,
        "acme_directory_uri": UNREACHABLE_DIRECTORY, "dns_mapping": mapping}))
    names = ["nas.example.test", "DNS:nas.example.test", "DNS:www.example.test",
             "DNS:api.example.test"]
    covered = dict(mapping)
    for key, value in mapping.items():
        covered.setdefault(key.split(":", 1)[-1] if ":" in key else f"DNS:{key}", value)
    expected = []
    for name in names:
        if name not in covered:
            expected.append(f"Please provide DNS authenticator id for {name}")
        elif covered[name] != 1:
            expected.append(f"Provided DNS Authenticator id for {name} does not exist")
    expected += [f"{key} not specified in the CSR" for key in mapping if key not in names]
    if expected:
        assert [e[1] for e in failed_with(job)] == expected
    else:
        assert job.error.startswith("[EFAULT] Unable to retrieve directory")


@pytest.fixture(scope="module")
def node_factory(tmp_path_factory):
    """One node with a 3-name CSR and authenticator 1, shared by the examples."""
    clock = VirtualClock(speed=1000)
    node = TrueNASNode(droplet_id=2, hostname="nas", address="127.10.0.6", clock=clock,
                       lock=threading.RLock(), state_dir=tmp_path_factory.mktemp("mapping"),
                       api_keys={})
    node.network = StubNetwork()
    clock.advance(100)
    authenticator(node)
    csr = make_csr(node, san=["nas.example.test", "www.example.test", "api.example.test"])
    return node, csr["id"]


# --- system.general -----------------------------------------------------------------------
def test_ui_settings_are_saved_at_once_and_applied_after_the_restart_delay(node) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate, key_pem = self_signed("nas.example.test", key)
    site = succeeded(call(node, "certificate.create", {
        "name": "site", "certificate": certificate, "privatekey": key_pem,
        "create_type": "CERTIFICATE_CREATE_IMPORTED"}))
    config = call(node, "system.general.update", {"ui_certificate": site["id"],
                                                  "ui_httpsport": 8443, "ui_port": 8080,
                                                  "ui_restart_delay": 3})
    assert config["ui_certificate"]["id"] == site["id"] and config["ui_httpsport"] == 8443
    assert node.network.ui[:2] == (80, 443)             # not yet
    node.clock.advance(3)
    http_port, https_port, certfile, keyfile = node.network.ui
    assert (http_port, https_port) == (8080, 8443)
    assert Path(certfile).read_text() == certificate
    assert Path(keyfile).stat().st_mode & 0o777 == 0o600
    conforms("system.general.update", config)
    # the UI now uses it: deleting it is refused
    assert finished(call(node, "certificate.delete", site["id"])).state == "FAILED"


def test_a_node_booting_again_serves_its_ui_where_the_settings_put_it(node, tmp_path) -> None:
    """nginx starts from the saved system.general settings: after a power cycle the UI
    is on the admin port with the site certificate, not back on 80/443."""
    from fakes.truenas.models.ui_settings import apply_at_boot

    certificate, key_pem = self_signed("nas.example.test")
    site = succeeded(call(node, "certificate.create", {
        "name": "site", "certificate": certificate, "privatekey": key_pem,
        "create_type": "CERTIFICATE_CREATE_IMPORTED"}))
    call(node, "system.general.update", {"ui_certificate": site["id"], "ui_httpsport": 8443,
                                         "ui_port": 8880, "ui_restart_delay": 1})
    node.clock.advance(1)
    # the same boot disk, a new node process
    again = TrueNASNode(droplet_id=1, hostname="nas", address="127.10.0.5", clock=node.clock,
                        lock=node.lock, state_dir=node.state_dir, api_keys={})
    again.network = StubNetwork()
    apply_at_boot(again)
    http_port, https_port, certfile, _ = again.network.ui
    assert (http_port, https_port) == (8880, 8443)
    assert Path(certfile).read_text() == certificate


def test_a_fresh_node_boots_with_its_ui_on_80_and_443(node) -> None:
    from fakes.truenas.models.ui_settings import apply_at_boot

    apply_at_boot(node)
    assert node.network.ui[:2] == (80, 443) and node.network.restarts == 0


def test_ui_settings_are_checked_field_by_field(node) -> None:
    node.network.others[9443] = "app:ingress"
    csr = make_csr(node)
    cases = [
        ({"ui_port": 8443, "ui_httpsport": 8443}, "general_settings.ui_port",
         'Must be different from "ui_httpsport"'),
        ({"ui_httpsport": 9443}, "general_settings.ui_httpsport",
         'The port is being used by following services:\n'
         '1) "0.0.0.0:9443" used by Applications (\'ingress\' application)'),
        ({"ui_certificate": 42}, "general_settings.ui_certificate",
         "Please specify a valid certificate which exists in the system"),
        ({"ui_certificate": csr["id"]}, "general_settings.ui_certificate",
         "Selected certificate must be a valid certificate and not a CSR or CA"),
        ({"timezone": "Mars/Olympus"}, "general_settings.timezone",
         "Timezone not known. Please select a valid timezone."),
    ]
    for change, attribute, message in cases:
        with pytest.raises(ValidationErrors) as caught:
            call(node, "system.general.update", change)
        assert caught.value.errors == [(attribute, message, errno.EINVAL)]
    assert call(node, "system.general.config")["ui_httpsport"] == 443


def test_a_rollback_timeout_restores_the_ui_unless_checked_in(node) -> None:
    call(node, "system.general.update", {"ui_httpsport": 8443, "ui_restart_delay": 0,
                                         "rollback_timeout": 60})
    node.clock.advance(1)
    assert node.network.ui[1] == 8443
    assert 0 < call(node, "system.general.checkin_waiting") <= 60
    node.clock.advance(60)
    assert node.network.ui[1] == 443
    assert call(node, "system.general.config")["ui_httpsport"] == 443
    assert call(node, "system.general.checkin_waiting") is None

    call(node, "system.general.update", {"ui_httpsport": 8443, "rollback_timeout": 60})
    call(node, "system.general.ui_restart", 0)
    node.clock.advance(1)
    assert call(node, "system.general.checkin") is None
    node.clock.advance(120)
    assert node.network.ui[1] == 8443


# --- a whole world: pebble, the DigitalOcean API, the node over WSS ---------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Speed 500: the authenticator's 60 s propagation delay is 0.12 s of wall time."""
    with World(tmp_path_factory.mktemp("certificates")) as started:
        if started.acme is None:
            pytest.skip(started.acme_unavailable)
        yield started


@pytest.fixture(scope="module")
def do_client(world):
    with fake_clients.connect(world) as client:
        client.domains.create({"name": "example.test"})
        yield client


@pytest.fixture(scope="module")
def droplet(world, do_client) -> dict:
    image = do_client.images.create_custom({"name": "scale", "url": fleet.IMAGE_URL,
                                            "region": fleet.REGION,
                                            "distribution": "Unknown"})["image"]
    fleet.advance(world, 400)
    created = fleet.boot_droplet(world, do_client, do_client.images.get(image["id"])["image"],
                                 "nas")
    fleet.advance(world, 100)               # middleware is READY
    return created


@pytest.fixture(scope="module")
def acme(world) -> dict:
    return json.loads(world.world_file.read_text())["acme"]


@pytest.fixture(scope="module")
def rpc(world, droplet):
    node = fleet.Node(world, droplet)
    with node.rpc() as connected:
        connected.result("core.set_options", {"legacy_jobs": False})   # jobs answer when done
        yield connected


@pytest.fixture(scope="module")
def do_authenticator(rpc, world) -> int:
    return rpc.result("acme.dns.authenticator.create", {"name": "do", "attributes": {
        "authenticator": "digitalocean", "digitalocean_token": world.token}})["id"]


def request_certificate(rpc, acme, auth_id: int, name: str, common: str,
                        *others: str) -> dict:
    """The TrueNAS-native dns-01 way: a CSR, then an ACME certificate for it."""
    csr = rpc.result("certificate.create", {
        "name": f"{name}-csr", "create_type": "CERTIFICATE_CREATE_CSR", "key_length": 2048,
        "common": common, "san": [common, *others]})
    mapping = {common: auth_id, **{f"DNS:{other}": auth_id for other in others}}
    return rpc.call("certificate.create", {
        "name": name, "create_type": "CERTIFICATE_CREATE_ACME", "csr_id": csr["id"],
        "tos": True, "acme_directory_uri": acme["directory"], "dns_mapping": mapping,
        "renew_days": 10})


def challenge_records(do_client) -> list[dict]:
    records = do_client.domains.list_records("example.test", per_page=200)["domain_records"]
    return [r for r in records if r["type"] == "TXT" and r["name"].startswith("_acme-challenge")]


def verifies(chain_pem: str, root_ca: str, hostname: str) -> bool:
    from cryptography.x509 import verification

    leaf, *intermediates = x509.load_pem_x509_certificates(chain_pem.encode())
    roots = x509.load_pem_x509_certificates(Path(root_ca).read_bytes())
    verifier = (verification.PolicyBuilder().store(verification.Store(roots))
                .build_server_verifier(x509.DNSName(hostname)))
    verifier.verify(leaf, intermediates)
    return True


@pytest.mark.acme
def test_dns01_issues_a_certificate_through_the_digitalocean_api(
        rpc, acme, do_client, do_authenticator) -> None:
    began = time.monotonic()
    answer = request_certificate(rpc, acme, do_authenticator, "site", "nas.example.test",
                                 "www.example.test")
    elapsed = time.monotonic() - began
    assert "error" not in answer, answer["error"]["data"]["reason"]
    entry = answer["result"]
    print(f"\ndns-01 issuance for 2 names: {elapsed:.2f} s wall")
    assert entry["cert_type_existing"] and not entry["cert_type_CSR"]
    assert entry["san"] == ["DNS:nas.example.test", "DNS:www.example.test"]
    assert entry["acme"]["directory"] == acme["directory"] + "/"
    assert entry["acme_uri"] and entry["renew_days"] == 10
    assert entry["domains_authenticators"] == {"nas.example.test": do_authenticator,
                                               "DNS:www.example.test": do_authenticator}
    assert len(entry["chain_list"]) >= 2
    assert verifies(entry["certificate"], acme["root_ca"], "www.example.test")
    assert challenge_records(do_client) == []        # the TXT records are removed
    conforms("certificate.create", entry)
    # deleting an ACME certificate revokes it with the ACME server first
    assert rpc.result("certificate.delete", entry["id"]) is True
    assert rpc.result("certificate.query", [["id", "=", entry["id"]]]) == []


@pytest.mark.acme
def test_dns01_for_a_name_outside_every_zone_fails_naming_it(
        rpc, acme, do_client, do_authenticator) -> None:
    answer = request_certificate(rpc, acme, do_authenticator, "nozone", "www.nozone.test")
    assert answer["error"]["data"]["reason"] == (
        "[EFAULT] Failed to perform digitalocean challenge for 'www.nozone.test' domain: "
        "Unable to determine base domain for www.nozone.test using names: "
        "['www.nozone.test', 'nozone.test', 'test'].")
    assert rpc.result("certificate.query", [["name", "=", "nozone"]]) == []


@pytest.mark.acme
def test_dns01_answered_elsewhere_fails_with_the_acme_problem(
        rpc, acme, do_client, do_authenticator) -> None:
    # _acme-challenge.away is delegated elsewhere: the TXT record the node writes is
    # never what the ACME server finds
    do_client.domains.create_record("example.test", {
        "type": "CNAME", "name": "_acme-challenge.away", "data": "void.example.test.",
        "ttl": 1800})
    answer = request_certificate(rpc, acme, do_authenticator, "away", "away.example.test")
    reason = answer["error"]["data"]["reason"]
    assert reason.startswith("[EFAULT] Certificate request for final order failed: ")
    assert "Authorization for identifier away.example.test failed." in reason
    assert "Challenge Type: dns-01" in reason
    assert "- Type: urn:ietf:params:acme:error:" in reason
    assert challenge_records(do_client) == []


@pytest.mark.acme
def test_the_ui_moves_to_the_admin_port_with_the_acme_certificate(
        world, rpc, acme, droplet, do_authenticator) -> None:
    answer = request_certificate(rpc, acme, do_authenticator, "admin", "admin.example.test")
    certificate = answer["result"]
    config = rpc.result("system.general.update", {
        "ui_certificate": certificate["id"], "ui_httpsport": 8443, "ui_port": 8080,
        "ui_restart_delay": 1})
    assert config["ui_certificate"]["name"] == "admin"
    address = fleet.public_ip(droplet)
    context = ssl.create_default_context(cafile=acme["root_ca"])
    context.maximum_version = ssl.TLSVersion.TLSv1_2      # see test_fleet.Node.rpc
    deadline = time.monotonic() + fleet.TIMEOUT
    while True:
        try:
            with socket.create_connection((address, 8443), timeout=fleet.TIMEOUT) as raw, \
                    context.wrap_socket(raw, server_hostname="admin.example.test") as tls:
                presented = tls.getpeercert()
            break
        except (ConnectionRefusedError, ssl.SSLError):
            assert time.monotonic() < deadline, "the UI did not move to 8443"
            time.sleep(0.02)
    assert ("DNS", "admin.example.test") in presented["subjectAltName"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, 443), timeout=fleet.TIMEOUT).close()
    with connect(f"wss://{address}:8443/api/current", ssl=context, proxy=None,
                 server_hostname="admin.example.test", open_timeout=fleet.TIMEOUT) as ws:
        moved = fleet.Rpc(ws)
        login = moved.call("auth.login_ex", {"mechanism": "API_KEY_PLAIN",
                                             "username": "truenas_admin",
                                             "api_key": world.truenas.api_key})
        assert login["result"]["response_type"] == "SUCCESS"
        assert moved.result("system.general.config")["ui_httpsport"] == 8443
        moved.result("core.set_options", {"legacy_jobs": False})
        deleting = moved.call("certificate.delete", certificate["id"])
        assert "UI Service" in deleting["error"]["data"]["reason"]
