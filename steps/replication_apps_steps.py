"""Steps of features/replication.feature for apps on the copy (issue 16 item 4): a
receiving site that runs GoCD on production's replicated `apps/gocd` once promoted.
The GoCD steps themselves are apps.feature's (steps/apps_steps.py), through the
site's 443 front door."""

from __future__ import annotations

from pytest_bdd import parsers, then

from infra.net import https_request
from infra.state import StateDir
from infra.up import Provisioner
from steps.common import PROBE_TIMEOUT, Sites
from steps.replication_steps import Promotion
from steps.sites import build_site


@then(parsers.parse('the plan of the site "{name}" says the app "{app}" waits for promote'))
def _plan_says_waits(sites: Sites, name: str, app: str) -> None:
    """`plan` (read-only) lists the chart among what `up` cannot do, naming promote."""
    plan = Provisioner(sites.site(name), sites.client(),
                       StateDir(sites.state(name).path, read_only=True),
                       target=sites.target).plan()
    waiting = [c for c in plan.cannot if c.kind == "deploy_app" and c.subject == app]
    assert waiting and "truenas-site promote" in waiting[0].detail, \
        [c.describe() for c in plan.cannot]
    assert all(c.subject != app for c in plan.front_door), \
        [c.describe() for c in plan.front_door]


@then(parsers.parse('GoCD of the site "{name}" does not answer through 443'))
def _gocd_silent(sites: Sites, name: str) -> None:
    """The ingress is up (the route is there) and nothing runs behind it: no 200."""
    site = build_site(name)
    hostname = site.dns.hostnames[1]          # gocd's default: the second hostname
    answer = https_request(sites.address(name), sites.target.node_port(443), hostname, "GET",
                           "/go/api/v1/health", ca_bundle=sites.target.acme_root_ca,
                           timeout=PROBE_TIMEOUT, headers={"Accept": "application/json"})
    assert answer.status != 200, (answer.status, answer.body)


@then(parsers.parse('it says the app "{app}" was created on the copy'))
def _said_created(promotion: Promotion, app: str) -> None:
    assert promotion.exit_code == 0, promotion.output
    assert f"create app {app} " in promotion.output, promotion.output
