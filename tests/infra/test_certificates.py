"""infra.certificates against a stub node that records every call.

The stub answers like TrueNAS would for the calls used (reference/truenas-api.md §4
"Certificates and ACME", "Web UI settings"): certificate.create as a job (CSR, ACME
through a DNS authenticator, IMPORTED), certificate.delete refused while the UI uses
the certificate, system.general.config returning `ui_certificate` as the full entry.
Its "ACME server" is a trustme root with an intermediate. The end-to-end run against
the fake world (pebble, the fake TrueNAS) is the TLS feature's job."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from infra import certificates
from infra.acme import AcmeChallengeFailed, IssuedCertificate
from infra.certificates import (
    CertificateError,
    WebrootSolver,
    ensure_certificate,
    needs_renewal,
    point_ui,
    ui_http_port,
)
from infra.events import RecordingReporter
from infra.secrets import Secret
from infra.state import StateDir
from infra.target import Target, Timing
from infra.tls_probe import CertificateFacts, facts_from_pem
from infra.truenas import ejson
from infra.truenas.calllog import is_mutating
from infra.truenas.errors import JobFailed, TrueNASCallError, TrueNASUnavailable
from infra.truenas.pinning import CertificatePins, fingerprint

TOKEN = "dop_v1_" + "7oken" * 12
ADDRESS = "127.10.0.2"
DIRECTORY = "https://127.0.0.1:14000/dir"
HOSTS = ["door.example.test", "www.door.example.test"]
DAY = 86400.0
START = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC).timestamp()


# --- the stub node ------------------------------------------------------------------

def on_the_wire(params: tuple) -> tuple:
    """The parameters as the node reads them: secrets revealed only in the message."""
    return tuple(ejson.loads(ejson.dumps(list(params))))

class StubNode:
    url = f"wss://{ADDRESS}:443/api/current"

    def __init__(self, acme: trustme.CA, clock: list[float]) -> None:
        self.acme = acme.create_child_ca()   # pebble-like: root -> intermediate -> leaf
        self.clock = clock
        self.calls: list[tuple[str, tuple]] = []
        self.files: dict[str, bytes] = {}
        self.authenticators: list[dict] = []
        self.certs: dict[int, dict] = {}
        self.next_id = 1
        self.acme_failure: str | None = None
        self.closed = 0
        default = self._add({"name": "truenas_default", "cert_type_CSR": False,
                             **self._sign(["truenas.local"], trustme.CA())})
        self.general = {"id": 1, "ui_certificate": default, "ui_httpsport": 443,
                        "ui_port": 80, "ui_httpsredirect": False,
                        "ui_httpsprotocols": ["TLSv1.2", "TLSv1.3"]}

    # what tests look at
    def mutating(self) -> list[str]:
        return [method for method, _ in self.calls if is_mutating(method)]

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]

    def bodies(self, method: str, create_type: str | None = None) -> list[Any]:
        return [params[0] for m, params in self.calls if m == method
                and (create_type is None or params[0].get("create_type") == create_type)]

    def ui_leaf(self) -> str:
        return self.general["ui_certificate"]["chain_list"][0]

    # certificates
    def _sign(self, hostnames: list[str], ca: trustme.CA | None = None) -> dict:
        now = datetime.datetime.fromtimestamp(self.clock[0], datetime.UTC)
        leaf = (ca or self.acme).issue_cert(*hostnames, not_before=now,
                                            not_after=now + datetime.timedelta(days=90))
        chain = [blob.bytes().decode() for blob in leaf.cert_chain_pems]
        return {"certificate": "".join(chain), "chain_list": chain,
                "privatekey": leaf.private_key_pem.bytes().decode()}

    def _add(self, entry: dict) -> dict:
        entry = {"id": self.next_id, **entry}
        self.certs[entry["id"]] = entry
        self.next_id += 1
        return dict(entry)

    def _create(self, body: dict) -> dict:
        kind = body["create_type"]
        if kind == "CERTIFICATE_CREATE_CSR":
            return self._add({"name": body["name"], "cert_type_CSR": True, "certificate": None,
                              "san": body["san"], "common": body["common"],
                              "CSR": "-----BEGIN CERTIFICATE REQUEST-----"})
        if kind == "CERTIFICATE_CREATE_ACME":
            csr = self.certs[body["csr_id"]]
            ids = {a["id"] for a in self.authenticators}
            # certificate.create rules: tos, and a dns_mapping entry per CSR domain
            assert body["tos"] is True
            # middleware 25.10: the CSR's common name plus each SAN written DNS:<name>
            assert sorted(body["dns_mapping"]) == sorted(
                [csr["common"], *(f"DNS:{name}" for name in csr["san"])])
            assert set(body["dns_mapping"].values()) <= ids
            if self.acme_failure:
                raise JobFailed("certificate.create", 99, "FAILED", self.acme_failure)
            return self._add({"name": body["name"], "cert_type_CSR": False,
                              "acme": {"directory": body["acme_directory_uri"] + "/"},
                              "renew_days": body["renew_days"], **self._sign(csr["san"])})
        assert kind == "CERTIFICATE_CREATE_IMPORTED"
        chain = body["certificate"]
        end = "-----END CERTIFICATE-----"
        pems = [part.strip() + f"\n{end}\n" for part in chain.split(end) if part.strip()]
        return self._add({"name": body["name"], "cert_type_CSR": False, "certificate": chain,
                          "chain_list": pems, "privatekey": body["privatekey"]})

    # the client's interface
    def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        params = on_the_wire(params)
        self.calls.append((method, params))
        if method == "certificate.query":
            if params:
                ident = params[0][0][2]
                return [dict(self.certs[ident])] if ident in self.certs else []
            return [dict(entry) for entry in self.certs.values()]
        if method == "system.general.config":
            return dict(self.general)
        if method == "system.general.update":
            body = dict(params[0])
            body.pop("ui_restart_delay")
            body["ui_certificate"] = dict(self.certs[body["ui_certificate"]])
            self.general.update(body)
            return dict(self.general)
        if method == "acme.dns.authenticator.query":
            name = params[0][0][2]
            return [a for a in self.authenticators if a["name"] == name]
        if method == "acme.dns.authenticator.create":
            entry = {"id": 100 + len(self.authenticators), **params[0]}
            self.authenticators.append(entry)
            return entry
        raise AssertionError(f"unexpected call {method}")

    def call_job(self, method: str, *params: Any, real_seconds: float = 0) -> Any:
        params = on_the_wire(params)
        self.calls.append((method, params))
        if method == "certificate.create":
            return self._create(params[0])
        if method == "certificate.delete":
            if params[0] == self.general["ui_certificate"]["id"]:
                raise TrueNASCallError("certificate.delete", "in use by the UI")
            del self.certs[params[0]]
            return True
        raise AssertionError(f"unexpected job {method}")

    def upload(self, path: str, data: bytes, *, append: bool = False, mode: int | None = None,
               real_seconds: float = 0) -> bool:
        self.calls.append(("filesystem.put", (path, mode)))
        self.files[path] = data
        return True

    def download(self, path: str, *, real_seconds: float = 0) -> bytes:
        self.calls.append(("filesystem.get", (path,)))
        if path not in self.files:
            raise TrueNASCallError("filesystem.get", f"[Errno 2] No such file: '{path}'")
        return self.files[path]

    def close(self) -> None:
        self.closed += 1


class Reconnected:
    """A second connection to the same stub node (after the UI moved)."""

    def __init__(self, node: StubNode) -> None:
        self.node = node
        self.closed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.node, name)

    def close(self) -> None:
        self.closed = True


@dataclass(frozen=True)
class ClockTarget(Target):
    clock: list[float] = field(default_factory=lambda: [START])

    def now(self) -> float:
        return self.clock[0]


def make_site(challenge: str = "dns-01", hostnames: list[str] | None = None,
              renew_days: int = 30) -> SimpleNamespace:
    return SimpleNamespace(
        name="door",
        dns=SimpleNamespace(domain="example.test", hostnames=list(hostnames or HOSTS)),
        truenas=SimpleNamespace(pool="tank", username="truenas_admin", api_key_file=None),
        access=SimpleNamespace(truenas_admin_port=8443, admin_cidrs=["127.0.0.0/24"]),
        tls=SimpleNamespace(challenge=challenge, directory=None, email="ops@example.test",
                            renew_days=renew_days, production=False),
    )


@dataclass
class World:
    node: StubNode
    target: ClockTarget
    state: StateDir
    root: trustme.CA
    presented_ports: list[int] = field(default_factory=list)
    reconnected: list[Reconnected] = field(default_factory=list)

    def presented(self, address: str, port: int, timeout: float) -> str:
        assert address == ADDRESS
        self.presented_ports.append(port)
        return self.node.ui_leaf()

    def reconnect(self) -> Reconnected:
        self.reconnected.append(Reconnected(self.node))
        return self.reconnected[-1]

    def ensure(self, site: SimpleNamespace, **kwargs: Any) -> certificates.CertificateOutcome:
        kwargs.setdefault("events", RecordingReporter())
        return ensure_certificate(self.node, site, self.target, self.state,
                                  kwargs.pop("events"), presented=self.presented,
                                  reconnect=self.reconnect, **kwargs)


@pytest.fixture()
def world(tmp_path: Path) -> World:
    root = trustme.CA(organization_name="Stub ACME Root")
    root_file = tmp_path / "acme-root.pem"
    root.cert_pem.write_to_path(str(root_file))
    clock = [START]
    target = ClockTarget(kind="fake", do_endpoint="https://127.0.0.1:1", do_token=Secret(TOKEN),
                         ca_bundle=None, timing=Timing(poll_interval=0.001, time_scale=0.001,
                                                       # no test here awaits a deadline:
                                                       # a loaded machine must not fail one
                                                       min_deadline=30.0),
                         acme_directory=DIRECTORY, acme_root_ca=str(root_file), clock=clock)
    return World(StubNode(root, clock), target, StateDir(tmp_path / "state"), root)


FULLCHAIN = "/mnt/tank/apps/ingress/certs/fullchain.pem"
PRIVKEY = "/mnt/tank/apps/ingress/certs/privkey.pem"


# --- dns-01 ---------------------------------------------------------------------------
def test_dns01_obtains_installs_and_moves_the_ui_to_the_admin_port(world: World) -> None:
    outcome = world.ensure(make_site())
    node = world.node
    assert outcome.changed and outcome.issued and outcome.ui_moved
    assert sorted(outcome.hostnames) == sorted(HOSTS)

    (authenticator,) = node.bodies("acme.dns.authenticator.create")
    assert authenticator == {"name": "door-digitalocean",
                             "attributes": {"authenticator": "digitalocean",
                                            "digitalocean_token": TOKEN}}
    (csr,) = node.bodies("certificate.create", "CERTIFICATE_CREATE_CSR")
    assert csr["san"] == HOSTS and csr["common"] == HOSTS[0]
    (acme,) = node.bodies("certificate.create", "CERTIFICATE_CREATE_ACME")
    assert acme["acme_directory_uri"] == DIRECTORY and acme["tos"] is True
    authenticator = node.authenticators[0]["id"]
    assert acme["dns_mapping"] == {HOSTS[0]: authenticator,
                                   **{f"DNS:{host}": authenticator for host in HOSTS}}
    assert acme["renew_days"] == 30

    entry = node.certs[outcome.certificate_id]
    assert node.files[FULLCHAIN].decode() == entry["certificate"].strip() + "\n"
    assert node.files[PRIVKEY].decode() == entry["privatekey"].strip() + "\n"

    (ui,) = node.bodies("system.general.update")
    assert ui == {"ui_certificate": outcome.certificate_id, "ui_httpsport": 8443,
                  "ui_port": ui_http_port(8443), "ui_httpsredirect": True,
                  "ui_httpsprotocols": ["TLSv1.2", "TLSv1.3"],
                  "ui_restart_delay": certificates.UI_RESTART_DELAY}
    assert world.presented_ports and set(world.presented_ports) == {8443}
    pin = CertificatePins(world.state.path).get(ADDRESS, 8443)
    assert pin is not None and pin.sha256 == outcome.fingerprint


def test_a_second_run_sends_no_mutating_call(world: World) -> None:
    site = make_site()
    first = world.ensure(site)
    world.node.calls.clear()
    world.target.clock[0] += 30 * DAY   # 60 days left > 30
    again = world.ensure(site)
    assert world.node.mutating() == []
    assert not again.changed and not again.issued
    assert again.certificate_id == first.certificate_id
    assert again.days_left == pytest.approx(60.0)


def test_inside_the_renewal_window_the_new_certificate_replaces_the_old_without_a_gap(
        world: World) -> None:
    site = make_site()
    old = world.ensure(site)
    world.node.calls.clear()
    world.target.clock[0] += 61 * DAY   # 29 days left <= 30
    new = world.ensure(site)
    node = world.node
    assert new.issued and new.certificate_id != old.certificate_id
    assert "29.0 days left" in new.reason
    methods = node.methods()
    # reused: the authenticator and the CSR (same hostnames)
    assert "acme.dns.authenticator.create" not in methods
    assert node.bodies("certificate.create", "CERTIFICATE_CREATE_CSR") == []
    # swap order: new entry, then ingress files, then the UI, and only then delete
    created = methods.index("certificate.create")
    puts = [i for i, m in enumerate(methods) if m == "filesystem.put"]
    ui = methods.index("system.general.update")
    deleted = methods.index("certificate.delete")
    assert created < min(puts) and max(puts) < ui < deleted
    assert new.deleted == (old.name,) and old.certificate_id not in node.certs
    # the UI moved: the deletes went over a fresh client, closed afterwards
    assert [c.closed for c in world.reconnected] == [True] and node.closed == 0
    assert CertificatePins(world.state.path).get(ADDRESS, 8443).sha256 == new.fingerprint


def test_a_forced_renewal_obtains_a_new_certificate_even_when_valid(world: World) -> None:
    site = make_site()
    old = world.ensure(site)
    new = world.ensure(site, force_renewal=True)
    assert new.issued and new.reason == "renewal forced"
    assert new.certificate_id != old.certificate_id


def test_a_failed_dns01_names_every_domain_and_the_challenge_and_hides_the_token(
        world: World) -> None:
    world.node.acme_failure = (f"DigitalOcean refused token {TOKEN}: "
                               "_acme-challenge.door.example.test TXT not created")
    events = RecordingReporter()
    with pytest.raises(CertificateError) as failed:
        world.ensure(make_site(), events=events)
    message = str(failed.value)
    assert all(host in message for host in HOSTS)
    assert "dns-01" in message and DIRECTORY in message
    assert TOKEN not in message and TOKEN not in repr(failed.value)
    assert all(TOKEN not in line for line in events.lines)
    # nothing was swapped: the UI and the ingress keep what they had
    assert "system.general.update" not in world.node.methods()
    assert "filesystem.put" not in world.node.methods()


def test_a_failed_renewal_keeps_the_current_certificate_in_place(world: World) -> None:
    site = make_site()
    old = world.ensure(site)
    world.target.clock[0] += 80 * DAY
    world.node.acme_failure = "urn:ietf:params:acme:error:dns: NXDOMAIN"
    with pytest.raises(CertificateError, match="door.example.test"):
        world.ensure(site)
    assert world.node.general["ui_certificate"]["id"] == old.certificate_id
    assert old.certificate_id in world.node.certs


def test_changed_hostnames_get_a_new_csr_and_certificate_and_the_old_ones_go(
        world: World) -> None:
    old = world.ensure(make_site())
    hosts = [*HOSTS, "api.door.example.test"]
    new = world.ensure(make_site(hostnames=hosts))
    assert sorted(new.hostnames) == sorted(hosts)
    assert "names" in new.reason
    csrs = world.node.bodies("certificate.create", "CERTIFICATE_CREATE_CSR")
    assert [c["san"] for c in csrs] == [HOSTS, hosts]
    remaining = {e["name"] for e in world.node.certs.values()}
    assert old.name not in remaining
    assert sum(1 for e in world.node.certs.values() if e.get("cert_type_CSR")) == 1


def test_a_certificate_from_another_acme_root_is_replaced(world: World) -> None:
    site = make_site()
    world.ensure(site)
    # the fake world restarted: pebble has a new root, the old chain means nothing
    other = trustme.CA(organization_name="Another Root")
    Path(world.target.acme_root_ca).write_bytes(other.cert_pem.bytes())
    world.node.acme = other.create_child_ca()
    again = world.ensure(site)
    assert again.issued and "root" in again.reason


def test_missing_ingress_files_are_rewritten_without_a_new_certificate(world: World) -> None:
    site = make_site()
    first = world.ensure(site)
    world.node.files.clear()
    world.node.calls.clear()
    again = world.ensure(site)
    assert world.node.mutating() == ["filesystem.put", "filesystem.put"]
    assert again.ingress_files_changed and not again.issued
    assert again.certificate_id == first.certificate_id


def test_the_ui_not_coming_back_with_the_certificate_fails_bounded(world: World) -> None:
    def stuck(address: str, port: int, timeout: float) -> str:
        return world.node.certs[1]["chain_list"][0]   # still the self-signed default

    # the one test here that waits out a deadline: a short one
    impatient = dataclasses.replace(world.target, timing=dataclasses.replace(
        world.target.timing, min_deadline=0.2))
    with pytest.raises(CertificateError, match="did not come back on 127.10.0.2:8443"):
        ensure_certificate(world.node, make_site(), impatient, world.state,
                           presented=stuck, reconnect=world.reconnect)


def test_point_ui_before_any_certificate_frees_80_and_443_and_pins_the_default(
        world: World) -> None:
    moved = point_ui(world.node, make_site(), world.target, world.state, address=ADDRESS,
                     presented=world.presented)
    assert moved
    (body,) = world.node.bodies("system.general.update")
    assert body["ui_certificate"] == 1 and body["ui_httpsport"] == 8443
    pin = CertificatePins(world.state.path).get(ADDRESS, 8443)
    assert pin.sha256 == fingerprint(world.node.certs[1]["chain_list"][0])
    assert not point_ui(world.node, make_site(), world.target, world.state, address=ADDRESS,
                        presented=world.presented)


def test_a_reply_lost_to_the_ui_restart_is_judged_by_the_new_port(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The node saved the settings, but restarted its UI before the reply reached us."""
    saved = world.node.call

    def call(method: str, *params: Any, timeout: float | None = None) -> Any:
        answer = saved(method, *params, timeout=timeout)
        if method == "system.general.update":
            raise TrueNASUnavailable("the connection closed while calling "
                                     "system.general.update (code 1012)")
        return answer

    monkeypatch.setattr(world.node, "call", call)
    assert point_ui(world.node, make_site(), world.target, world.state, address=ADDRESS,
                    presented=world.presented)
    assert CertificatePins(world.state.path).get(ADDRESS, 8443) is not None


# --- http-01 --------------------------------------------------------------------------
@pytest.fixture()
def http01(world: World, monkeypatch: pytest.MonkeyPatch) -> dict:
    """infra.acme's issuance replaced by one that uses the solver like an ACME
    exchange does (publish, validate, remove) and signs with the stub's CA."""
    seen: dict = {"during": {}, "failure": None}

    def issue(target: Target, domains: list[str], challenge: str, solver: WebrootSolver,
              *, directory: str | None = None, **options: Any) -> IssuedCertificate:
        seen.update(domains=domains, challenge=challenge, directory=directory,
                    options=options)
        token = hashlib.sha256(repr(domains).encode()).hexdigest()[:43]
        where = f"/.well-known/acme-challenge/{token}"
        solver.publish(domains[0], challenge, where, f"{token}.thumbprint")
        seen["during"] = dict(world.node.files)
        try:
            if seen["failure"]:
                raise AcmeChallengeFailed(domains[0], challenge, seen["failure"])
        finally:
            solver.remove(domains[0], challenge, where, f"{token}.thumbprint")
        signed = world.node._sign(domains)
        leaf = facts_from_pem(signed["certificate"])
        return IssuedCertificate(
            fullchain_pem=signed["certificate"], key_pem=Secret(signed["privatekey"]),
            not_after=datetime.datetime.fromtimestamp(leaf.not_after, datetime.UTC),
            domains=tuple(domains), account_key_pem=Secret("account"))

    monkeypatch.setattr(certificates, "issue_for_target", issue)
    return seen


def test_http01_answers_from_the_ingress_webroot_then_imports(world: World,
                                                              http01: dict) -> None:
    events = RecordingReporter()
    outcome = world.ensure(make_site("http-01"), events=events)
    assert http01["challenge"] == "http-01" and http01["domains"] == HOSTS
    assert http01["directory"] == DIRECTORY
    webroot = "/mnt/tank/apps/ingress/acme/.well-known/acme-challenge/"
    tokens = [path for path in http01["during"] if path.startswith(webroot)]
    assert len(tokens) == 1 and http01["during"][tokens[0]].endswith(b".thumbprint")
    assert world.node.files[tokens[0]] == b""     # taken down after validation
    (imported,) = world.node.bodies("certificate.create", "CERTIFICATE_CREATE_IMPORTED")
    key = world.node.certs[outcome.certificate_id]["privatekey"]
    assert imported["privatekey"] == key
    assert world.node.files[PRIVKEY].decode().strip() == key.strip()
    assert outcome.name.startswith("door-site-http01-") and outcome.ui_moved
    assert key not in repr(outcome) and all(key not in line for line in events.lines)
    assert world.node.bodies("acme.dns.authenticator.create") == []


def test_http01_failure_names_the_domain_and_the_challenge(world: World,
                                                           http01: dict) -> None:
    http01["failure"] = "urn:ietf:params:acme:error:connection: connection refused"
    with pytest.raises(CertificateError) as failed:
        world.ensure(make_site("http-01"))
    assert "door.example.test" in str(failed.value) and "http-01" in str(failed.value)
    assert "connection refused" in str(failed.value)
    assert "system.general.update" not in world.node.methods()


def test_switching_challenge_obtains_a_certificate_the_new_way(world: World,
                                                               http01: dict) -> None:
    first = world.ensure(make_site("dns-01"))
    second = world.ensure(make_site("http-01"))
    assert second.issued and second.certificate_id != first.certificate_id
    assert first.name in second.deleted


@pytest.mark.parametrize("where", ["/.well-known/acme-challenge/../../../etc/passwd",
                                   "/etc/passwd", "/.well-known/acme-challenge/a b"])
def test_the_webroot_solver_writes_only_token_files(world: World, where: str) -> None:
    with pytest.raises(CertificateError):
        WebrootSolver(world.node, "tank").publish("door.example.test", "http-01", where, "v")
    assert world.node.files == {}


# --- needs_renewal --------------------------------------------------------------------
def _facts(not_after: float) -> CertificateFacts:
    return CertificateFacts("CN=x", "CN=ca", ("x",), not_after - 90 * DAY, not_after, "1",
                            "AA")


@given(days_left=st.floats(min_value=-400, max_value=400, allow_nan=False),
       renew_days=st.integers(min_value=1, max_value=30))
def test_renewal_is_due_exactly_when_no_more_than_renew_days_are_left(
        days_left: float, renew_days: int) -> None:
    facts = _facts(START + days_left * DAY)
    assert needs_renewal(facts, START, renew_days) == (days_left * DAY <= renew_days * DAY)


def test_needs_renewal_reads_query_entries_and_treats_nothing_as_due(world: World) -> None:
    entry = world.node.certs[1]
    not_after = facts_from_pem(entry["certificate"]).not_after
    assert not needs_renewal(entry, not_after - 31 * DAY, 30)
    assert needs_renewal(entry, not_after - 30 * DAY, 30)
    assert needs_renewal({"name": "csr", "certificate": None}, START, 30)
    assert needs_renewal(None, START, 30)


def test_an_old_certificate_truenas_will_not_delete_stays_without_failing_the_run(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    site = make_site()
    old = world.ensure(site)
    world.target.clock[0] += 70 * DAY
    refuse = world.node.call_job

    def call_job(method: str, *params: Any, real_seconds: float = 0) -> Any:
        if method == "certificate.delete":
            raise TrueNASCallError(method, "certificate is used by an app")
        return refuse(method, *params, real_seconds=real_seconds)

    monkeypatch.setattr(world.node, "call_job", call_job)
    events = RecordingReporter()
    new = world.ensure(site, events=events)
    assert new.issued and new.deleted == ()
    assert world.node.general["ui_certificate"]["id"] == new.certificate_id
    assert any(old.name in line and "stays" in line for line in events.lines)
