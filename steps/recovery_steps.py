"""Steps of features/recovery.feature: losing the droplet, and failing over."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from infra import faults, snapshots
from infra.failover import Failover, FailoverReport
from infra.observe import observe
from infra.resources.droplet import find as find_droplet
from steps.common import Sites, resolve
from steps.fake_admin import FakeAdmin
from steps.sites import build_site


@given(parsers.parse('a snapshot "{snapshot}" of the dataset "{dataset}" of the site "{name}"'))
def _snapshot(sites: Sites, snapshot: str, dataset: str, name: str) -> None:
    with sites.node(name) as client:
        snapshots.take(client, build_site(name), dataset, snapshot)


@when(parsers.parse('the droplet of the site "{name}" is destroyed'),
      target_fixture="lost_droplet")
def _destroy(sites: Sites, name: str) -> dict:
    droplet = find_droplet(sites.client(), build_site(name))
    faults.destroy_droplet(sites.client(), droplet["id"])
    return droplet


@when(parsers.parse('the host of the droplet of the site "{name}" fails'),
      target_fixture="lost_droplet")
def _host_fails(sites: Sites, admin: FakeAdmin, name: str) -> dict:
    droplet = find_droplet(sites.client(), build_site(name))
    admin.fail_host(droplet["id"])
    return droplet


@when(parsers.parse('I fail the site "{name}" over'), target_fixture="failover")
def _failover(sites: Sites, name: str) -> FailoverReport:
    return Failover(build_site(name), sites.client(), sites.state(name)).run()


@then(parsers.parse('the site "{name}" runs on a new droplet'))
def _new_droplet(sites: Sites, lost_droplet: dict, failover: FailoverReport,
                 name: str) -> None:
    droplet = find_droplet(sites.client(), build_site(name))
    assert droplet is not None and droplet["status"] == "active"
    assert droplet["id"] != lost_droplet["id"]
    assert failover.new_droplet["id"] == droplet["id"]


@then(parsers.parse('the dataset "{dataset}" of the site "{name}" still has the snapshot '
                    '"{snapshot}"'))
def _snapshot_kept(sites: Sites, dataset: str, name: str, snapshot: str) -> None:
    with sites.node(name) as client:
        names = [s["snapshot_name"] for s in snapshots.list_(client, build_site(name), dataset)]
    assert snapshot in names, names


@then(parsers.parse('every hostname of the site "{name}" resolves to its droplet'))
def _dns_moved(sites: Sites, lost_droplet: dict, name: str) -> None:
    site = build_site(name)
    seen = observe(sites.client(), site)
    ip = seen.droplet_ip()
    assert ip != lost_droplet["networks"]["v4"][0]["ip_address"]
    for hostname in site.dns.hostnames:
        assert [r["data"] for r in seen.records[hostname]] == [ip]
        if sites.target.dns_server is not None:
            assert resolve(sites.target.dns_server, hostname) == [ip]


@then("the failover said the droplet is alive and changed nothing")
def _nothing_to_do(failover: FailoverReport) -> None:
    assert failover.reason == "the droplet is alive; nothing to fail over"
    assert failover.changes == []
