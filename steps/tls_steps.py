"""Steps of features/tls.feature: the certificate on 443, the redirect, the admin UI
behind the firewall, renewal."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from pytest_bdd import given, parsers, then, when

from infra.check import check
from infra.errors import InfraError
from infra.net import https_request
from infra.resources.dns import find_records as a_records
from infra.tls_probe import TlsProbe, probe_redirect, refuses_old_tls
from infra.up import Provisioner
from steps.common import ADMIN_SOURCE, INTERNET_SOURCE, PROBE_TIMEOUT, Run, Sites
from steps.fake_admin import FakeAdmin
from steps.sites import FRONT_DOOR_CHALLENGES, build_site

DAY = 86400.0


@dataclass
class Prober:
    """Connects to 443 again and again until stopped, counting what failed."""

    attempts: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self, connect: Callable[[], TlsProbe]) -> None:
        self._thread = threading.Thread(target=self._run, args=(connect,), daemon=True)
        self._thread.start()

    def _run(self, connect: Callable[[], TlsProbe]) -> None:
        while not self._stop.is_set():
            probe = connect()
            self.attempts += 1
            if not probe.ok:
                self.failures.append(probe.describe())

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(PROBE_TIMEOUT * 2)


@pytest.fixture
def prober() -> Prober:
    """A client that keeps connecting while a step runs; stopped when the scenario ends."""
    connecting = Prober()
    yield connecting
    connecting.stop()


@dataclass(frozen=True)
class Renewal:
    """A forced renewal: what 443 presented before it, and the error it failed with."""

    certificate_before: TlsProbe
    error: InfraError | None


def _certificate_finding(sites: Sites, name: str):
    report = check(build_site(name), sites.client(), sites.state(name))
    findings = [f for f in report.findings if f.requirement.startswith("certificate")]
    assert findings, "check reported nothing about the certificate: " + \
        "; ".join(f.requirement for f in report.findings)
    return findings


# --- Given ---------------------------------------------------------------------

@given(parsers.parse('the site "{name}" uses the {challenge} challenge'))
def _uses_challenge(name: str, challenge: str) -> None:
    assert FRONT_DOOR_CHALLENGES.get(name) == challenge, \
        f"steps/sites.py gives {name} {FRONT_DOOR_CHALLENGES.get(name)}, not {challenge}"
    assert build_site(name).tls is not None


@given(parsers.parse('the A record of "{hostname}" is changed to an address where nothing '
                     'listens'))
def _record_elsewhere(sites: Sites, hostname: str) -> None:
    site = build_site(hostname.split(".")[0])
    do = sites.client()
    records = a_records(do, site, hostname)
    assert records, f"{hostname} has no A record"
    # Nothing listens there: on the fake, an unused address of the droplets' block;
    # on a real account, TEST-NET-1 (RFC 5737), which routes nowhere.
    ip = sites.address(site.name)
    elsewhere = ".".join(ip.split(".")[:2] + ["250", "250"]) \
        if sites.target.kind == "fake" else "192.0.2.10"
    for record in records:
        do.call(f"repoint {hostname}", do.client.domains.update_record, site.dns.domain,
                record["id"], {"type": "A", "data": elsewhere})


@given("the network drops port 80 on the way to the droplets")
def _drop_port_80(admin: FakeAdmin) -> None:
    admin.drop_port(80)


# --- When ----------------------------------------------------------------------

@when(parsers.parse("the site's clock reaches {days:d} days before the certificate of the "
                    'site "{name}" expires'), target_fixture="certificate_before")
def _clock_near_expiry(sites: Sites, admin: FakeAdmin, days: int, name: str) -> TlsProbe:
    site = build_site(name)
    probe = sites.probe(name, site.dns.hostnames[0])
    assert probe.ok, probe.describe()
    jump = probe.not_after - days * DAY - sites.target.now()
    assert jump > 0, f"the certificate already has fewer than {days} days left"
    admin.advance_clock(jump)
    return probe


@when(parsers.parse('I bring the site "{name}" up while a client keeps connecting to its '
                    "port 443"), target_fixture="run")
def _up_under_load(sites: Sites, prober: Prober, name: str) -> Run:
    hostname = build_site(name).dns.hostnames[0]
    prober.start(lambda: sites.probe(name, hostname))
    try:
        return sites.up(name)
    finally:
        prober.stop()


@when(parsers.parse('I renew the certificate of the site "{name}"'), target_fixture="renewal")
def _renew(sites: Sites, name: str) -> Renewal:
    site = build_site(name)
    before = sites.probe(name, site.dns.hostnames[0])
    try:
        Provisioner(site, sites.client(), sites.state(name)).renew_certificate(force=True)
    except InfraError as error:
        return Renewal(before, error)
    return Renewal(before, None)


# --- Then ----------------------------------------------------------------------

@then(parsers.parse('port 443 of the site "{name}" presents, for every public hostname, a '
                    "certificate that verifies to the ACME server's root"))
def _valid_everywhere(sites: Sites, name: str) -> None:
    for hostname in sites.site(name).dns.hostnames:
        probe = sites.probe(name, hostname)
        assert probe.ok, probe.describe()
        assert hostname in probe.sans
        assert probe.protocol in ("TLSv1.2", "TLSv1.3"), probe.protocol


@then(parsers.parse('port 443 of the site "{name}" refuses TLS 1.0 and TLS 1.1'))
def _old_tls_refused(sites: Sites, name: str) -> None:
    hostname = build_site(name).dns.hostnames[0]
    refused = refuses_old_tls(sites.address(name), sites.target.node_port(443), hostname,
                              timeout=PROBE_TIMEOUT)
    assert refused == {"TLSv1": True, "TLSv1.1": True}, refused


@then(parsers.parse('http on every public hostname of the site "{name}" redirects to https'))
def _redirects(sites: Sites, name: str) -> None:
    address = sites.address(name)
    for hostname in build_site(name).dns.hostnames:
        probe = probe_redirect(address, sites.target.node_port(80), hostname,
                               timeout=PROBE_TIMEOUT)
        assert probe.ok, probe.describe()


@then(parsers.parse('a hostname the site "{name}" does not publish gets the ingress\'s 404 '
                    "page"))
def _unknown_hostname(sites: Sites, name: str) -> None:
    site = build_site(name)
    unknown = f"nobody-here.{site.dns.domain}"
    # SNI names a hostname the certificate covers; the Host header one nothing serves
    answer = https_request(sites.address(name), sites.target.node_port(443),
                           site.dns.hostnames[0], "GET", "/", headers={"Host": unknown},
                           ca_bundle=sites.target.acme_root_ca, timeout=PROBE_TIMEOUT)
    assert answer.status == 404, answer.describe()
    assert unknown in answer.body, answer.body


@then(parsers.parse('the TrueNAS admin UI of the site "{name}" presents the site certificate '
                    "on the admin port"))
def _ui_certificate(sites: Sites, name: str) -> None:
    site = build_site(name)
    hostname = site.dns.hostnames[0]
    public = sites.probe(name, hostname)
    ui = sites.probe(name, hostname, port=site.access.truenas_admin_port, source=ADMIN_SOURCE)
    assert ui.ok, ui.describe()
    assert ui.fingerprint == public.fingerprint, (ui.describe(), public.describe())


@then(parsers.parse('check reports the certificate of the site "{name}" as valid'))
def _check_valid(sites: Sites, name: str) -> None:
    findings = _certificate_finding(sites, name)
    assert all(f.ok for f in findings), [(f.requirement, f.detail) for f in findings]


@then(parsers.parse('check reports the certificate of the site "{name}" as due for renewal'))
def _check_due(sites: Sites, name: str) -> None:
    findings = _certificate_finding(sites, name)
    assert any(not f.ok and "renew" in f.detail for f in findings), \
        [(f.requirement, f.ok, f.detail) for f in findings]


@then(parsers.parse('the TrueNAS admin UI of the site "{name}" is unreachable from an '
                    "internet address"))
def _ui_closed_to_internet(sites: Sites, name: str) -> None:
    site = build_site(name)
    probe = sites.probe(name, site.dns.hostnames[0], port=site.access.truenas_admin_port,
                   source=INTERNET_SOURCE)
    assert not probe.reachable, probe.describe()


@then(parsers.parse('the TrueNAS admin UI of the site "{name}" answers from an address in the '
                    "admin CIDR"))
def _ui_open_to_admins(sites: Sites, name: str) -> None:
    site = build_site(name)
    probe = sites.probe(name, site.dns.hostnames[0], port=site.access.truenas_admin_port,
                   source=ADMIN_SOURCE)
    assert probe.ok, probe.describe()


@then(parsers.parse('ports 80 and 443 of the site "{name}" answer from an internet address'))
def _public_ports_open(sites: Sites, name: str) -> None:
    hostname = build_site(name).dns.hostnames[0]
    probe = sites.probe(name, hostname, source=INTERNET_SOURCE)
    assert probe.ok, probe.describe()
    redirect = probe_redirect(sites.address(name), sites.target.node_port(80), hostname,
                              source_address=INTERNET_SOURCE, timeout=PROBE_TIMEOUT)
    assert redirect.ok, redirect.describe()


@then(parsers.parse('port 443 of the site "{name}" presents a new certificate with more than '
                    "{days:d} days left"))
def _renewed(sites: Sites, certificate_before: TlsProbe, name: str, days: int) -> None:
    probe = sites.probe(name, build_site(name).dns.hostnames[0])
    assert probe.ok, probe.describe()
    assert probe.fingerprint != certificate_before.fingerprint, "the certificate is the same"
    assert probe.days_left > days, probe.describe()


@then("no connection to port 443 failed during the renewal")
def _no_downtime(prober: Prober) -> None:
    assert prober.attempts > 0
    assert prober.failures == [], f"{len(prober.failures)} of {prober.attempts} failed: " \
        f"{prober.failures[:3]}"


@then(parsers.parse('the renewal failed naming the domain "{domain}" and the challenge '
                    '"{challenge}"'))
def _renewal_failed(renewal: Renewal, domain: str, challenge: str) -> None:
    error = renewal.error
    assert error is not None, "the renewal succeeded"
    assert domain in str(error) and challenge in str(error), str(error)


@then(parsers.parse('port 443 of the site "{name}" still presents its certificate'))
def _still_serving(sites: Sites, renewal: Renewal, name: str) -> None:
    probe = sites.probe(name, build_site(name).dns.hostnames[0])
    assert probe.ok, probe.describe()
    assert probe.fingerprint == renewal.certificate_before.fingerprint
