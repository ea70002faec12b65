"""Steps of features/existing.feature: read-only checks of a running site.

On `--target existing` the site is the one the target describes (its site file and
address) and nothing here sends a mutating request; on `fake` and `real` the suite
first brings up a front-door site of its own (door-h, as in features/tls.feature)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_bdd import given, then

from infra.check import check
from infra.digitalocean import DigitalOcean
from infra.site import Site, load_site
from infra.state import StateDir
from infra.tls_probe import probe_redirect, probe_tls
from steps.common import PROBE_TIMEOUT, Sites
from steps.sites import build_site

# The site the suite brings up itself where it may (fake, real).
OWN_SITE = "door-h"


@dataclass(frozen=True)
class SiteUnderTest:
    site: Site
    address: str
    state: StateDir


@given("the site under test is up", target_fixture="under_test")
def _site_under_test(sites: Sites, pytestconfig: pytest.Config) -> SiteUnderTest:
    target = sites.target
    if target.read_only:
        assert target.site_file is not None and target.site_address is not None
        site = load_site(Path(target.site_file))
        # Read-only: a named state directory (--state-dir) is read, none is written.
        named = pytestconfig.getoption("--state-dir")
        state = StateDir(Path(named) if named else sites.state_root / site.name, read_only=True)
        return SiteUnderTest(site, target.site_address, state)
    run = sites.up(OWN_SITE)
    assert run.error is None, f"up failed: {run.error}"
    return SiteUnderTest(build_site(OWN_SITE), sites.address(OWN_SITE), sites.state(OWN_SITE))


@then("check finds no failure on the site under test")
def _check_passes(sites: Sites, under_test: SiteUnderTest) -> None:
    target = sites.target
    do = DigitalOcean(target) if target.do_token is not None else None
    report = check(under_test.site, do, under_test.state, target=target)
    assert report.ok, [f"{f.requirement}: {f.detail}" for f in report.failures()]
    looked_at = {f.requirement for f in report.findings if not f.skipped}
    assert "TrueNAS answers over WSS" in looked_at, sorted(looked_at)


@then("every public hostname of the site under test presents a valid certificate on 443")
def _certificates(sites: Sites, under_test: SiteUnderTest) -> None:
    target = sites.target
    assert under_test.site.tls is not None, "the site file has no [tls]: it serves nothing on 443"
    for hostname in under_test.site.dns.hostnames:
        probe = probe_tls(under_test.address, target.node_port(443), hostname,
                          target.acme_root_ca, timeout=PROBE_TIMEOUT, now=target.now())
        assert probe.ok, probe.describe()
        assert hostname in probe.sans, probe.describe()


@then("http on every public hostname of the site under test redirects to https")
def _redirects(sites: Sites, under_test: SiteUnderTest) -> None:
    for hostname in under_test.site.dns.hostnames:
        probe = probe_redirect(under_test.address, sites.target.node_port(80), hostname,
                               timeout=PROBE_TIMEOUT)
        assert probe.ok, probe.describe()
