"""Steps of features/node.feature, and the steps every feature uses to bring a site
up, take it down, and check it (helpers: steps/common.py)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from datetime import timedelta

import pytest
from pytest_bdd import given, parsers, then, when

from infra import desired
from infra.check import check
from infra.cli import app
from infra.observe import observe
from infra.storage import Repair
from infra.sweep import Sweeper
from steps import inventory
from steps.cli_runner import CliRunner
from steps.common import Run, SiteFile, Sites, resolve, write_site_file
from steps.fake_admin import FakeAdmin
from steps.fixtures import OTHER_TAGS, Bystanders
from steps.sites import build_site, set_field, site_data


@dataclass(frozen=True)
class SiteBefore:
    """What of the account was the site's once it was up (to prove it untouched)."""

    name: str
    resources: dict[str, dict]


@dataclass(frozen=True)
class CliRun:
    exit_code: int
    output: str


# --- Given ---------------------------------------------------------------------

@given("the account holds resources that belong to no site")
def _bystanders(bystanders: Bystanders) -> None:
    assert bystanders.keys or bystanders.baseline == {}
    if bystanders.keys:
        # Every family a run creates or deletes, untagged and another site's (issue 6 §3).
        families = {key.split(":")[0] for key in bystanders.keys}
        assert families >= {"droplet", "volume", "record", "firewall", "snapshot", "image"}, \
            families
        other = {key.split(":")[0] for key, attrs in bystanders.baseline.items()
                 if OTHER_TAGS[0] in attrs.get("tags", [])}
        assert other >= {"droplet", "volume", "snapshot", "image", "firewall"}, other


@given(parsers.parse('the site "{name}" is not up'))
def _not_up(sites: Sites, name: str) -> None:
    sites.down(name)
    assert sites.inventory(name) == {}


@given(parsers.parse('the site "{name}" is up'), target_fixture="site_before")
def _is_up(sites: Sites, name: str) -> SiteBefore:
    """Up, and healthy: a pool left degraded by an earlier scenario is repaired."""
    run = sites.up(name)
    assert run.error is None, run.error
    with sites.node(name) as client:
        Repair(sites.site(name), sites.client(), client, sites.state(name)).run()
    return SiteBefore(name, sites.inventory(name))


@given("the cloud answers every droplet creation with 500")
def _droplet_creation_fails(admin: FakeAdmin) -> None:
    admin.fail_requests("POST", "/v2/droplets", 500, count=100)


@given(parsers.parse("the next {count:d} droplet creations answer {status:d} {when} "
                     "doing the work"))
def _droplet_creation_answers(admin: FakeAdmin, count: int, status: int, when: str) -> None:
    retry_after = 1 if status == 429 else None
    admin.fail_requests("POST", "/v2/droplets", status, count=count, mode=when,
                        retry_after=retry_after)


@given(parsers.parse("a site file where {field} is {value}"), target_fixture="site_file")
def _bad_site_file(sites: Sites, field: str, value: str) -> SiteFile:
    data = site_data("epsilon")
    if value == "missing":
        data = set_field(data, field, ...)
    elif value == "a list of one volume":
        data = set_field(data, field, data["volumes"][:1])
    else:
        data = set_field(data, field, tomllib.loads(f"v = {value}")["v"])
    return write_site_file(sites, "invalid-site.toml", data)


@given(parsers.parse('the run that brought the site "{name}" up was abandoned {hours:d} hours '
                     'ago'), target_fixture="abandoned_run")
def _abandoned(sites: Sites, admin: FakeAdmin, name: str, hours: int) -> str:
    """Left up, never taken down: the fake's clock moves on, so its resources age."""
    run_id = sites.state(name).run_id()
    admin.advance_clock(hours * 3600)
    return run_id


# --- When ----------------------------------------------------------------------

@when(parsers.parse('I bring the site "{name}" up'), target_fixture="run")
def _bring_up(sites: Sites, name: str) -> Run:
    return sites.up(name)


@when(parsers.parse('I take the site "{name}" down'), target_fixture="run")
def _take_down(sites: Sites, name: str) -> Run:
    return sites.down(name)


@when(parsers.parse("I sweep that run's resources older than {hours:d} hours"))
def _sweep(sites: Sites, abandoned_run: str, hours: int) -> None:
    Sweeper(sites.client(), scope_tag="spec-suite").sweep(timedelta(hours=hours),
                                                          run_id=abandoned_run)


@when(parsers.parse('I run "{command}" with that site file'), target_fixture="cli_run")
def _run_cli(sites: Sites, site_file: SiteFile, command: str) -> CliRun:
    target = sites.target
    if target.read_only and command != "plan":
        # Outside the fake, the CLI runs against whatever account the environment
        # names: a scenario that reaches here on `existing` would change a live site.
        pytest.fail(f"this scenario runs `{command}` against a site someone runs: tag it "
                    "@destructive", pytrace=False)
    args = [command, "--site", str(site_file.path),
            "--state-dir", str(sites.state_root / "invalid")]
    if target.kind == "fake":
        world = os.path.join(os.path.dirname(target.ca_bundle), "world.json")
        args += ["--world", world]
    result = CliRunner().invoke(app, args, env={})
    return CliRun(result.exit_code, result.output)


# --- Then ----------------------------------------------------------------------

@then(parsers.parse('the site "{name}" has one droplet built from its TrueNAS image'))
def _one_droplet(sites: Sites, run: Run, name: str) -> None:
    assert run.error is None, run.error
    seen = observe(sites.client(), build_site(name))
    assert seen.droplet is not None and seen.droplet["status"] == "active"
    assert seen.image is not None and seen.image["status"] == "available"
    assert seen.droplet["image"]["id"] == seen.image["id"]


@then("the TrueNAS image was imported on first use")
def _image_imported(run: Run) -> None:
    assert any(change.startswith("import image") for change in run.report.changes)


@then("the droplet has at least 8 GB of memory and is in the site's region")
def _droplet_size(sites: Sites, run: Run) -> None:
    site = build_site(run.site)
    droplet = observe(sites.client(), site).droplet
    assert droplet["memory"] >= 8192
    assert droplet["region"]["slug"] == site.site.region


@then("the site's two volumes are in its region and attached to the droplet")
def _volumes_attached(sites: Sites, run: Run) -> None:
    site = build_site(run.site)
    seen = observe(sites.client(), site)
    assert sorted(seen.volumes) == sorted(desired.volume_names(site))
    for volume in seen.volumes.values():
        assert volume["region"]["slug"] == site.site.region
        assert volume["droplet_ids"] == [seen.droplet["id"]]
    assert sorted(seen.droplet["volume_ids"]) == sorted(v["id"] for v in seen.volumes.values())


@then("the firewall opens 80 and 443 to everyone and 22 and the admin port only to the "
      "admin CIDRs")
def _firewall(sites: Sites, run: Run) -> None:
    site = build_site(run.site)
    firewall = observe(sites.client(), site).firewall
    assert firewall is not None
    opened = {(r["protocol"], r["ports"]): sorted(r["sources"].get("addresses", []))
              for r in firewall["inbound_rules"]}
    assert opened[("tcp", "80")] == ["0.0.0.0/0", "::/0"]
    assert opened[("tcp", "443")] == ["0.0.0.0/0", "::/0"]
    assert opened[("tcp", "22")] == sorted(site.access.admin_cidrs)
    assert opened[("tcp", str(site.access.truenas_admin_port))] == sorted(site.access.admin_cidrs)
    assert len(opened) == 4, f"unexpected inbound rules: {opened}"
    assert desired.site_tag(site) in firewall["tags"]


@then("every hostname of the site resolves to the droplet")
def _dns(sites: Sites, run: Run) -> None:
    site = build_site(run.site)
    seen = observe(sites.client(), site)
    ip = seen.droplet_ip()
    for hostname in site.dns.hostnames:
        assert [r["data"] for r in seen.records[hostname]] == [ip]
        if sites.target.dns_server is not None:
            assert resolve(sites.target.dns_server, hostname) == [ip]


@then("every resource of the site carries the site's tag")
def _tagged(sites: Sites, run: Run) -> None:
    site = build_site(run.site)
    seen = observe(sites.client(), site)
    tag = desired.site_tag(site)
    for resource in [seen.droplet, seen.image, *seen.volumes.values()]:
        assert tag in resource["tags"], resource["name"]
        assert any(t.startswith("truenas-run:") for t in resource["tags"]), resource["name"]


@then(parsers.parse('check finds nothing wrong with the site "{name}"'))
def _check_ok(sites: Sites, name: str) -> None:
    site = sites.site(name)
    report = check(site, sites.client(), sites.state(name), target=sites.target)
    assert report.ok, [f"{f.requirement}: {f.detail}" for f in report.failures()]


@then("up succeeded")
def _up_succeeded(run: Run) -> None:
    assert run.error is None, f"up failed: {run.error}"


@then("no mutating request was sent")
def _no_mutation(run: Run) -> None:
    assert run.error is None, run.error
    assert run.requests.total > 0
    assert run.requests.mutating_requests() == []
    if run.node_calls is not None:
        assert run.node_calls.total > 0, "the node was not even looked at"
        assert run.node_calls.mutating_calls() == []
    if run.source_calls is not None:
        assert run.source_calls.mutating_calls() == [], "a source's node was changed"


@then(parsers.parse('the site "{name}" is as it was'))
def _unchanged(sites: Sites, site_before: SiteBefore, name: str) -> None:
    assert site_before.name == name, f"the scenario brought up {site_before.name}, not {name}"
    assert sites.inventory(name) == site_before.resources


@then(parsers.parse('nothing of the site "{name}" is left'))
def _nothing_left(sites: Sites, name: str) -> None:
    assert sites.inventory(name) == {}


@then("the resources that belong to no site are as they were")
def _bystanders_intact(sites: Sites, bystanders: Bystanders) -> None:
    now = inventory.take(sites.client())
    assert {k: now.get(k) for k in bystanders.keys} == bystanders.baseline


@then(parsers.parse('the run fails saying "{text}"'))
def _run_failed(run: Run, text: str) -> None:
    assert run.error is not None, "the run did not fail"
    assert text in str(run.error)


@then(parsers.parse('the site "{name}" has volumes but no droplet'))
def _half_done(sites: Sites, name: str) -> None:
    seen = observe(sites.client(), build_site(name))
    assert seen.droplet is None
    assert len(seen.volumes) == 2


@then(parsers.parse('the site "{name}" has exactly one droplet'))
def _exactly_one(sites: Sites, run: Run, name: str) -> None:
    assert run.error is None, run.error
    do = sites.client()
    droplets = do.list_all("list droplets", do.client.droplets.list, "droplets")
    named = [d for d in droplets if d["name"] == f"{name}-truenas"]
    assert len(named) == 1, f"{len(named)} droplets named {name}-truenas"


@then(parsers.parse('it exits with code 2 and a message naming "{field}"'))
def _refused(cli_run: CliRun, field: str) -> None:
    assert cli_run.exit_code == 2, (cli_run.exit_code, cli_run.output)
    assert field in cli_run.output, cli_run.output
    assert "Traceback" not in cli_run.output


@then("nothing was created in the account")
def _nothing_created(sites: Sites, site_file: SiteFile) -> None:
    assert inventory.take(sites.client()) == site_file.account_before
