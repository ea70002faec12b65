"""Steps of features/recovery.feature: losing the droplet, and failing over."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from infra import faults, snapshots
from infra.failover import Failover
from infra.observe import find_droplet, observe
from steps.fixtures import ScenarioContext
from steps.node_steps import _resolve, _state
from steps.sites import build_site
from steps.storage_steps import node


@given(parsers.parse('a snapshot "{snapshot}" of the dataset "{dataset}" of the site "{name}"'))
def _snapshot(spec: ScenarioContext, snapshot: str, dataset: str, name: str) -> None:
    with node(spec, name) as client:
        snapshots.take(client, build_site(name), dataset, snapshot)


@when(parsers.parse('the droplet of the site "{name}" is destroyed'))
def _destroy(spec: ScenarioContext, name: str) -> None:
    droplet = find_droplet(spec.client(), build_site(name))
    spec.old_droplet = droplet
    faults.destroy_droplet(spec.client(), droplet["id"])


@when(parsers.parse('the host of the droplet of the site "{name}" fails'))
def _host_fails(spec: ScenarioContext, name: str) -> None:
    droplet = find_droplet(spec.client(), build_site(name))
    spec.old_droplet = droplet
    spec.target.admin().fail_host(droplet["id"])


@when(parsers.parse('I fail the site "{name}" over'))
def _failover(spec: ScenarioContext, name: str) -> None:
    spec.failover = Failover(build_site(name), spec.client(), _state(spec, name)).run()


@then(parsers.parse('the site "{name}" runs on a new droplet'))
def _new_droplet(spec: ScenarioContext, name: str) -> None:
    droplet = find_droplet(spec.client(), build_site(name))
    assert droplet is not None and droplet["status"] == "active"
    assert droplet["id"] != spec.old_droplet["id"]
    assert spec.failover.new_droplet["id"] == droplet["id"]


@then(parsers.parse('the dataset "{dataset}" of the site "{name}" still has the snapshot '
                    '"{snapshot}"'))
def _snapshot_kept(spec: ScenarioContext, dataset: str, name: str, snapshot: str) -> None:
    with node(spec, name) as client:
        names = [s["snapshot_name"] for s in snapshots.list_(client, build_site(name), dataset)]
    assert snapshot in names, names


@then(parsers.parse('every hostname of the site "{name}" resolves to its droplet'))
def _dns_moved(spec: ScenarioContext, name: str) -> None:
    site = build_site(name)
    seen = observe(spec.client(), site)
    ip = seen.droplet_ip()
    assert ip != spec.old_droplet["networks"]["v4"][0]["ip_address"]
    for hostname in site.dns.hostnames:
        assert [r["data"] for r in seen.records[hostname]] == [ip]
        if spec.target.dns_server is not None:
            assert _resolve(spec.target.dns_server, hostname) == [ip]


@then("the failover said the droplet is alive and changed nothing")
def _nothing_to_do(spec: ScenarioContext) -> None:
    assert spec.failover.reason == "the droplet is alive; nothing to fail over"
    assert spec.failover.changes == []
