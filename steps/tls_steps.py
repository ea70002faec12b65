"""Steps of features/tls.feature: the certificate on 443, the redirect, the admin UI
behind the firewall, renewal."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pytest_bdd import given, parsers, then, when

from infra.check import check
from infra.errors import InfraError
from infra.net import https_request
from infra.observe import a_records, find_droplet, public_ipv4
from infra.tls_probe import TlsProbe, probe_redirect, probe_tls, refuses_old_tls
from infra.up import Provisioner
from steps.fixtures import ScenarioContext
from steps.node_steps import _state, _up
from steps.sites import FRONT_DOOR_CHALLENGES, build_site

PROBE_TIMEOUT = 10.0
DAY = 86400.0
# Where the scenarios connect from (see the site files in steps/sites.py): the admin
# network holds 127.0.0.1; this address is outside every admin CIDR.
ADMIN_SOURCE = "127.0.0.1"
INTERNET_SOURCE = "127.3.0.1"


@dataclass
class Prober:
    """Connects to 443 again and again until stopped, counting what failed."""

    connect: object
    attempts: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            probe = self.connect()
            self.attempts += 1
            if not probe.ok:
                self.failures.append(probe.describe())

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(PROBE_TIMEOUT * 2)


def _address(spec: ScenarioContext, name: str) -> str:
    droplet = find_droplet(spec.client(), build_site(name))
    assert droplet is not None, f"the site {name} has no droplet"
    return public_ipv4(droplet)


def _probe(spec: ScenarioContext, name: str, hostname: str, port: int = 443,
           source: str | None = None) -> TlsProbe:
    target = spec.target
    return probe_tls(_address(spec, name), target.node_port(port), hostname,
                     target.acme_root_ca, source_address=source, timeout=PROBE_TIMEOUT,
                     now=target.now())


def _certificate_finding(spec: ScenarioContext, name: str):
    report = check(build_site(name), spec.client(), _state(spec, name))
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
def _record_elsewhere(spec: ScenarioContext, hostname: str) -> None:
    site = build_site(hostname.split(".")[0])
    do = spec.client()
    records = a_records(do, site, hostname)
    assert records, f"{hostname} has no A record"
    # Nothing listens there: on the fake, an unused address of the droplets' block;
    # on a real account, TEST-NET-1 (RFC 5737), which routes nowhere.
    ip = _address(spec, site.name)
    elsewhere = ".".join(ip.split(".")[:2] + ["250", "250"]) \
        if spec.target.kind == "fake" else "192.0.2.10"
    for record in records:
        do.call(f"repoint {hostname}", do.client.domains.update_record, site.dns.domain,
                record["id"], {"type": "A", "data": elsewhere})


@given("the network drops port 80 on the way to the droplets")
def _drop_port_80(spec: ScenarioContext) -> None:
    spec.target.admin().drop_port(80)


# --- When ----------------------------------------------------------------------

@when(parsers.parse('I run up for the site "{name}"'))
def _run_up(spec: ScenarioContext, name: str) -> None:
    _up(spec, name)


@when(parsers.parse("the site's clock reaches {days:d} days before the certificate of the "
                    'site "{name}" expires'))
def _clock_near_expiry(spec: ScenarioContext, days: int, name: str) -> None:
    site = build_site(name)
    probe = _probe(spec, name, site.dns.hostnames[0])
    assert probe.ok, probe.describe()
    spec.before_certificate = probe
    jump = probe.not_after - days * DAY - spec.target.now()
    assert jump > 0, f"the certificate already has fewer than {days} days left"
    spec.target.admin().advance_clock(jump)


@when(parsers.parse('I run up for the site "{name}" while a client keeps connecting to its '
                    "port 443"))
def _up_under_load(spec: ScenarioContext, name: str) -> None:
    hostname = build_site(name).dns.hostnames[0]
    spec.before_certificate = spec.before_certificate or _probe(spec, name, hostname)
    prober = Prober(lambda: _probe(spec, name, hostname))
    prober.start()
    try:
        _up(spec, name)
    finally:
        prober.stop()
    spec.prober = prober


@when(parsers.parse('I renew the certificate of the site "{name}"'))
def _renew(spec: ScenarioContext, name: str) -> None:
    site = build_site(name)
    spec.before_certificate = _probe(spec, name, site.dns.hostnames[0])
    spec.last_error = None
    try:
        Provisioner(site, spec.client(), _state(spec, name)).renew_certificate(force=True)
    except InfraError as error:
        spec.last_error = error


# --- Then ----------------------------------------------------------------------

@then("up succeeded")
def _up_succeeded(spec: ScenarioContext) -> None:
    assert spec.last_error is None, f"up failed: {spec.last_error}"


@then(parsers.parse('port 443 of the site "{name}" presents, for every public hostname, a '
                    "certificate that verifies to the ACME server's root"))
def _valid_everywhere(spec: ScenarioContext, name: str) -> None:
    for hostname in build_site(name).dns.hostnames:
        probe = _probe(spec, name, hostname)
        assert probe.ok, probe.describe()
        assert hostname in probe.sans
        assert probe.protocol in ("TLSv1.2", "TLSv1.3"), probe.protocol


@then(parsers.parse('port 443 of the site "{name}" refuses TLS 1.0 and TLS 1.1'))
def _old_tls_refused(spec: ScenarioContext, name: str) -> None:
    hostname = build_site(name).dns.hostnames[0]
    refused = refuses_old_tls(_address(spec, name), spec.target.node_port(443), hostname,
                              timeout=PROBE_TIMEOUT)
    assert refused == {"TLSv1": True, "TLSv1.1": True}, refused


@then(parsers.parse('http on every public hostname of the site "{name}" redirects to https'))
def _redirects(spec: ScenarioContext, name: str) -> None:
    address = _address(spec, name)
    for hostname in build_site(name).dns.hostnames:
        probe = probe_redirect(address, spec.target.node_port(80), hostname,
                               timeout=PROBE_TIMEOUT)
        assert probe.ok, probe.describe()


@then(parsers.parse('a hostname the site "{name}" does not publish gets the ingress\'s 404 '
                    "page"))
def _unknown_hostname(spec: ScenarioContext, name: str) -> None:
    site = build_site(name)
    unknown = f"nobody-here.{site.dns.domain}"
    # SNI names a hostname the certificate covers; the Host header one nothing serves
    answer = https_request(_address(spec, name), spec.target.node_port(443),
                           site.dns.hostnames[0], "GET", "/", headers={"Host": unknown},
                           ca_bundle=spec.target.acme_root_ca, timeout=PROBE_TIMEOUT)
    assert answer.status == 404, answer.describe()
    assert unknown in answer.body, answer.body


@then(parsers.parse('the TrueNAS admin UI of the site "{name}" presents the site certificate '
                    "on the admin port"))
def _ui_certificate(spec: ScenarioContext, name: str) -> None:
    site = build_site(name)
    hostname = site.dns.hostnames[0]
    public = _probe(spec, name, hostname)
    ui = _probe(spec, name, hostname, port=site.access.truenas_admin_port, source=ADMIN_SOURCE)
    assert ui.ok, ui.describe()
    assert ui.fingerprint == public.fingerprint, (ui.describe(), public.describe())


@then(parsers.parse('check reports the certificate of the site "{name}" as valid'))
def _check_valid(spec: ScenarioContext, name: str) -> None:
    findings = _certificate_finding(spec, name)
    assert all(f.ok for f in findings), [(f.requirement, f.detail) for f in findings]


@then(parsers.parse('check reports the certificate of the site "{name}" as due for renewal'))
def _check_due(spec: ScenarioContext, name: str) -> None:
    findings = _certificate_finding(spec, name)
    assert any(not f.ok and "renew" in f.detail for f in findings), \
        [(f.requirement, f.ok, f.detail) for f in findings]


@then(parsers.parse('the TrueNAS admin UI of the site "{name}" is unreachable from an '
                    "internet address"))
def _ui_closed_to_internet(spec: ScenarioContext, name: str) -> None:
    site = build_site(name)
    probe = _probe(spec, name, site.dns.hostnames[0], port=site.access.truenas_admin_port,
                   source=INTERNET_SOURCE)
    assert not probe.reachable, probe.describe()


@then(parsers.parse('the TrueNAS admin UI of the site "{name}" answers from an address in the '
                    "admin CIDR"))
def _ui_open_to_admins(spec: ScenarioContext, name: str) -> None:
    site = build_site(name)
    probe = _probe(spec, name, site.dns.hostnames[0], port=site.access.truenas_admin_port,
                   source=ADMIN_SOURCE)
    assert probe.ok, probe.describe()


@then(parsers.parse('ports 80 and 443 of the site "{name}" answer from an internet address'))
def _public_ports_open(spec: ScenarioContext, name: str) -> None:
    hostname = build_site(name).dns.hostnames[0]
    probe = _probe(spec, name, hostname, source=INTERNET_SOURCE)
    assert probe.ok, probe.describe()
    redirect = probe_redirect(_address(spec, name), spec.target.node_port(80), hostname,
                              source_address=INTERNET_SOURCE, timeout=PROBE_TIMEOUT)
    assert redirect.ok, redirect.describe()


@then(parsers.parse('port 443 of the site "{name}" presents a new certificate with more than '
                    "{days:d} days left"))
def _renewed(spec: ScenarioContext, name: str, days: int) -> None:
    probe = _probe(spec, name, build_site(name).dns.hostnames[0])
    assert probe.ok, probe.describe()
    assert probe.fingerprint != spec.before_certificate.fingerprint, "the certificate is the same"
    assert probe.days_left > days, probe.describe()


@then("no connection to port 443 failed during the renewal")
def _no_downtime(spec: ScenarioContext) -> None:
    prober = spec.prober
    assert prober.attempts > 0
    assert prober.failures == [], f"{len(prober.failures)} of {prober.attempts} failed: " \
        f"{prober.failures[:3]}"


@then(parsers.parse('the renewal failed naming the domain "{domain}" and the challenge '
                    '"{challenge}"'))
def _renewal_failed(spec: ScenarioContext, domain: str, challenge: str) -> None:
    error = spec.last_error
    assert error is not None, "the renewal succeeded"
    assert domain in str(error) and challenge in str(error), str(error)


@then(parsers.parse('port 443 of the site "{name}" still presents its certificate'))
def _still_serving(spec: ScenarioContext, name: str) -> None:
    probe = _probe(spec, name, build_site(name).dns.hostnames[0])
    assert probe.ok, probe.describe()
    assert probe.fingerprint == spec.before_certificate.fingerprint
