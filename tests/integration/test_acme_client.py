"""infra/acme.py against the fake world's real pebble.

dns-01 answers are TXT records written through the fake DigitalOcean API (pebble
resolves through the world's DNS server); http-01 answers come from a small HTTP server
on a droplet-like address of the world's block, on the world's (mapped) port 80.
"""

from __future__ import annotations

import itertools
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydo
import pytest
from cryptography import x509

from fakes.world import World
from infra.acme import AcmeChallengeFailed, IssuedCertificate, issue_certificate
from infra.target import Target, Timing

pytestmark = pytest.mark.acme

_hosts = itertools.count(1)
_zones = itertools.count(1)


@pytest.fixture(scope="module")
def target(world: World) -> Target:
    return Target.from_world_file(world.world_file)


@pytest.fixture
def zone(client: pydo.Client) -> str:
    name = f"acme{next(_zones)}.example.test"
    client.domains.create({"name": name})
    yield name
    client.domains.delete(name)


def fresh_address(world: World) -> str:
    """An address in the world's droplet block that no droplet holds (they count up
    from .0.2; these come from .250.x)."""
    block = world.backend.public_addresses.network.network_address
    return str(block + 250 * 256 + next(_hosts))


def point(client: pydo.Client, zone: str, host: str, address: str) -> str:
    client.domains.create_record(zone, {"type": "A", "name": host, "data": address, "ttl": 30})
    return f"{host}.{zone}"


class DigitalOceanTxtSolver:
    """dns-01 the way TrueNAS's `digitalocean` authenticator does it: a TXT record per
    value, deleted afterwards."""

    def __init__(self, client: pydo.Client, zone: str) -> None:
        self.client = client
        self.zone = zone
        self.records: dict[tuple[str, str], int] = {}
        self.removed: list[tuple[str, str]] = []

    def publish(self, domain: str, challenge_type: str, name_or_path: str, value: str) -> None:
        assert challenge_type == "dns-01" and name_or_path == f"_acme-challenge.{domain}"
        relative = name_or_path.removesuffix(f".{self.zone}")
        created = self.client.domains.create_record(
            self.zone, {"type": "TXT", "name": relative, "data": value, "ttl": 30})
        self.records[(name_or_path, value)] = created["domain_record"]["id"]

    def remove(self, domain: str, challenge_type: str, name_or_path: str, value: str) -> None:
        self.client.domains.delete_record(self.zone, self.records.pop((name_or_path, value)))
        self.removed.append((name_or_path, value))


class SilentSolver:
    """Publishes nothing (a DNS provider that accepted the call and did nothing)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def publish(self, domain: str, challenge_type: str, name_or_path: str, value: str) -> None:
        self.calls.append(("publish", name_or_path))

    def remove(self, domain: str, challenge_type: str, name_or_path: str, value: str) -> None:
        self.calls.append(("remove", name_or_path))


class Tokens:
    """An http-01 solver's memory: path -> key authorization."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}

    def publish(self, domain: str, challenge_type: str, name_or_path: str, value: str) -> None:
        assert challenge_type == "http-01"
        assert name_or_path.startswith("/.well-known/acme-challenge/")
        self.tokens[name_or_path] = value

    def remove(self, domain: str, challenge_type: str, name_or_path: str, value: str) -> None:
        del self.tokens[name_or_path]


class TokenServer(Tokens):
    """Answers http-01 on one address: GET /.well-known/acme-challenge/<token>."""

    def __init__(self, address: str, port: int) -> None:
        super().__init__()
        tokens = self.tokens
        self.requests: list[str] = []
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                body = tokens.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write((body or "").encode())

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer((address, port), Handler)
        # A short poll so that shutdown() returns at once (the default waits up to 0.5 s).
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)

    def __enter__(self) -> TokenServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def issue(target: Target, domains: list[str], challenge: str, solver) -> IssuedCertificate:
    return issue_certificate(target.acme_directory, target.acme_root_ca, domains, challenge,
                             solver, target.timing, ca_bundle=target.ca_bundle)


def served_certificate(issued: IssuedCertificate, hostname: str, cafile: str,
                       tmp_path: Path) -> dict:
    """What a TLS client trusting only the ACME root sees from a server with this
    certificate (ssl verifies the chain and the hostname)."""
    cert_file, key_file = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    cert_file.write_text(issued.fullchain_pem)
    key_file.touch(mode=0o600)
    key_file.write_text(issued.key_pem.reveal())
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    client_context = ssl.create_default_context(cafile=cafile)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve() -> None:
            connection, _ = listener.accept()
            with server_context.wrap_socket(connection, server_side=True) as tls:
                tls.recv(1)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with socket.create_connection(listener.getsockname(), timeout=10) as raw, \
                client_context.wrap_socket(raw, server_hostname=hostname) as tls:
            peer = tls.getpeercert()
        thread.join(timeout=10)
    return peer


def names_in(issued: IssuedCertificate) -> list[str]:
    leaf = x509.load_pem_x509_certificate(issued.fullchain_pem.encode())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName)


def test_dns01_issues_a_certificate_that_verifies_to_the_acme_root(
        target: Target, client: pydo.Client, zone: str, tmp_path: Path) -> None:
    solver = DigitalOceanTxtSolver(client, zone)
    domains = [f"www.{zone}", f"nas.{zone}"]
    issued = issue(target, domains, "dns-01", solver)
    assert sorted(names_in(issued)) == sorted(domains)
    peer = served_certificate(issued, f"nas.{zone}", target.acme_root_ca, tmp_path)
    assert ("DNS", f"nas.{zone}") in peer["subjectAltName"]
    # Let's Encrypt's lifetime, which the world configures pebble with.
    lifetime = issued.not_after - datetime.now(UTC)
    assert timedelta(days=89) < lifetime <= timedelta(days=90)
    # The challenge records are gone again.
    assert solver.records == {} and len(solver.removed) == 2
    names = [r["name"] for r in client.domains.list_records(zone)["domain_records"]]
    assert not any(name.startswith("_acme-challenge") for name in names)


def test_http01_issues_a_certificate_served_from_the_domains_port_80(
        world: World, target: Target, client: pydo.Client, zone: str, tmp_path: Path) -> None:
    address = fresh_address(world)
    domain = point(client, zone, "www", address)
    with TokenServer(address, world.truenas.ports["http"]) as tokens:
        issued = issue(target, [domain], "http-01", tokens)
    assert names_in(issued) == [domain]
    assert served_certificate(issued, domain, target.acme_root_ca, tmp_path)
    assert tokens.requests and all(p.startswith("/.well-known/acme-challenge/")
                                   for p in tokens.requests)
    assert tokens.tokens == {}


def test_private_keys_stay_out_of_the_result_repr(
        target: Target, client: pydo.Client, zone: str) -> None:
    issued = issue(target, [f"repr.{zone}"], "dns-01", DigitalOceanTxtSolver(client, zone))
    shown = repr(issued)
    assert "PRIVATE KEY" not in shown
    assert "PRIVATE KEY" in issued.key_pem.reveal()


def test_http01_to_an_address_where_nothing_listens_fails_naming_domain_and_challenge(
        world: World, target: Target, client: pydo.Client, zone: str) -> None:
    domain = point(client, zone, "dark", fresh_address(world))
    solver = Tokens()  # remembers the token, but nothing serves it
    with pytest.raises(AcmeChallengeFailed) as failure:
        issue(target, [domain], "http-01", solver)
    assert failure.value.domain == domain
    assert failure.value.challenge == "http-01"
    assert domain in str(failure.value) and "http-01" in str(failure.value)
    assert "urn:ietf:params:acme:error:connection" in str(failure.value)
    assert solver.tokens == {}


def test_dns01_without_the_txt_record_fails_naming_domain_and_challenge(
        target: Target, zone: str) -> None:
    solver = SilentSolver()
    domain = f"nothing.{zone}"
    with pytest.raises(AcmeChallengeFailed) as failure:
        issue(target, [domain], "dns-01", solver)
    assert failure.value.domain == domain
    assert "dns-01" in str(failure.value) and domain in str(failure.value)
    assert "urn:ietf:params:acme:error:" in failure.value.problem
    # What was published is taken down again, even on failure.
    assert solver.calls == [("publish", f"_acme-challenge.{domain}"),
                            ("remove", f"_acme-challenge.{domain}")]


def test_a_validation_that_never_finishes_fails_at_the_deadline(
        world: World, target: Target, client: pydo.Client, zone: str) -> None:
    address = fresh_address(world)
    domain = point(client, zone, "stuck", address)
    short = Timing(poll_interval=target.timing.poll_interval, time_scale=0.0, min_deadline=0.3)
    # Accepts connections (the kernel's backlog) but never answers: pebble's GET waits.
    with socket.create_server((address, world.truenas.ports["http"])), \
            pytest.raises(AcmeChallengeFailed) as failure:
        issue_certificate(target.acme_directory, target.acme_root_ca, [domain], "http-01",
                          Tokens(), short, ca_bundle=target.ca_bundle)
    assert failure.value.domain == domain and failure.value.challenge == "http-01"
    assert "not validated within" in failure.value.problem


def test_a_renewal_reuses_the_account_and_the_certificate_key(
        target: Target, client: pydo.Client, zone: str) -> None:
    domains = [f"renew.{zone}"]
    first = issue_certificate(target.acme_directory, target.acme_root_ca, domains, "dns-01",
                              DigitalOceanTxtSolver(client, zone), target.timing,
                              ca_bundle=target.ca_bundle, key_type="rsa")
    again = issue_certificate(target.acme_directory, target.acme_root_ca, domains, "dns-01",
                              DigitalOceanTxtSolver(client, zone), target.timing,
                              ca_bundle=target.ca_bundle, account_key=first.account_key_pem,
                              key=first.key_pem)
    assert again.fullchain_pem != first.fullchain_pem
    assert again.account_key_pem == first.account_key_pem

    def public_key(issued: IssuedCertificate) -> int:
        return x509.load_pem_x509_certificate(
            issued.fullchain_pem.encode()).public_key().public_numbers().n

    assert public_key(again) == public_key(first)
