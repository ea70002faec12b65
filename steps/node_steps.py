"""Steps of features/node.feature."""

from __future__ import annotations

import os
import tomllib

import pytest
from pytest_bdd import given, parsers, then, when
from typer.testing import CliRunner

from infra import desired
from infra.check import check
from infra.cli import app
from infra.digitalocean import RequestLog
from infra.down import Teardown
from infra.errors import InfraError
from infra.observe import observe
from infra.state import StateDir
from infra.storage import Repair
from infra.up import Provisioner
from steps import inventory
from steps.fixtures import OTHER_TAGS, Bystanders, ScenarioContext
from steps.sites import DOMAIN, build_site, set_field, site_data


def _state(spec: ScenarioContext, name: str) -> StateDir:
    return StateDir(spec.state_root / name)


def _up(spec: ScenarioContext, name: str) -> None:
    spec.brought_up.add(name)
    spec.last_log = RequestLog()
    spec.last_error = None
    provisioner = Provisioner(build_site(name), spec.client(spec.last_log), _state(spec, name))
    spec.last_node_log = provisioner.node_log
    try:
        spec.last_run = provisioner.up()
    except InfraError as error:
        spec.last_error = error


def _down(spec: ScenarioContext, name: str) -> None:
    spec.last_log = RequestLog()
    spec.last_run = Teardown(build_site(name), spec.client(spec.last_log),
                             _state(spec, name)).down()


def _site_inventory(spec: ScenarioContext, name: str) -> dict[str, dict]:
    site = build_site(name)
    return inventory.of_site(inventory.take(spec.client()), name, site.dns.hostnames, DOMAIN)


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
def _not_up(spec: ScenarioContext, name: str) -> None:
    _down(spec, name)
    assert _site_inventory(spec, name) == {}


@given(parsers.parse('the site "{name}" is up'))
def _is_up(spec: ScenarioContext, name: str) -> None:
    """Up, and healthy: a pool left degraded by an earlier scenario is repaired."""
    _up(spec, name)
    assert spec.last_error is None, spec.last_error
    from steps.storage_steps import node

    with node(spec, name) as client:
        Repair(build_site(name), spec.client(), client, _state(spec, name)).run()
    spec.site_snapshots[name] = _site_inventory(spec, name)


@given("the cloud answers every droplet creation with 500")
def _droplet_creation_fails(spec: ScenarioContext) -> None:
    spec.target.admin().fail_requests("POST", "/v2/droplets", 500, count=100)


@given(parsers.parse("the next {count:d} droplet creations answer {status:d} {when} "
                     "doing the work"))
def _droplet_creation_answers(spec: ScenarioContext, count: int, status: int, when: str) -> None:
    retry_after = 1 if status == 429 else None
    spec.target.admin().fail_requests("POST", "/v2/droplets", status, count=count,
                                         mode=when, retry_after=retry_after)


@given(parsers.parse("a site file where {field} is {value}"), target_fixture="bad_site")
def _bad_site_file(spec: ScenarioContext, field: str, value: str) -> dict:
    data = site_data("epsilon")
    if value == "missing":
        data = set_field(data, field, ...)
    elif value == "a list of one volume":
        data = set_field(data, field, data["volumes"][:1])
    else:
        data = set_field(data, field, tomllib.loads(f"v = {value}")["v"])
    spec.site_file = spec.state_root / "invalid-site.toml"
    spec.site_file.write_text(_to_toml(data))
    spec.before = inventory.take(spec.client())
    return data


def _to_toml(data: dict) -> str:
    """Just enough TOML writing for site files (tables, arrays of tables, scalars)."""
    def scalar(value) -> str:
        if isinstance(value, str):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "[" + ", ".join(scalar(v) for v in value) + "]"
        return str(value)

    lines: list[str] = []

    def table(prefix: str, values: dict) -> None:
        lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {scalar(v)}" for k, v in values.items()
                     if not isinstance(v, dict))
        for k, v in values.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}", v)

    for key, value in data.items():
        if isinstance(value, dict):
            table(key, value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                lines.append(f"[[{key}]]")
                lines += [f"{k} = {scalar(v)}" for k, v in item.items()]
        else:
            lines.insert(0, f"{key} = {scalar(value)}")
    return "\n".join(lines) + "\n"


# --- When ----------------------------------------------------------------------

@when(parsers.parse('I bring the site "{name}" up'))
def _bring_up(spec: ScenarioContext, name: str) -> None:
    _up(spec, name)


@when(parsers.parse('I take the site "{name}" down'))
def _take_down(spec: ScenarioContext, name: str) -> None:
    _down(spec, name)


@given(parsers.parse('the run that brought the site "{name}" up was abandoned {hours:d} hours '
                     'ago'))
def _abandoned(spec: ScenarioContext, name: str, hours: int) -> None:
    """Left up, never taken down: the fake's clock moves on, so its resources age."""
    spec.abandoned_run = _state(spec, name).run_id()
    spec.target.admin().advance_clock(hours * 3600)


@when(parsers.parse("I sweep that run's resources older than {hours:d} hours"))
def _sweep(spec: ScenarioContext, hours: int) -> None:
    from datetime import timedelta

    from infra.sweep import Sweeper

    spec.last_log = RequestLog()
    Sweeper(spec.client(spec.last_log), scope_tag="spec-suite").sweep(
        timedelta(hours=hours), run_id=spec.abandoned_run)


@when(parsers.parse('I run "{command}" with that site file'))
def _run_cli(spec: ScenarioContext, command: str) -> None:
    if spec.target.read_only and command != "plan":
        # Outside the fake, the CLI runs against whatever account the environment
        # names: a scenario that reaches here on `existing` would change a live site.
        pytest.fail(f"this scenario runs `{command}` against a site someone runs: tag it "
                    "@destructive", pytrace=False)
    args = [command, "--site", str(spec.site_file),
            "--state-dir", str(spec.state_root / "invalid")]
    env = {}
    if spec.target.kind == "fake":
        world = os.path.join(os.path.dirname(spec.target.ca_bundle), "world.json")
        args += ["--world", world]
    result = CliRunner().invoke(app, args, env=env)
    spec.cli_exit = result.exit_code
    spec.cli_output = result.output


# --- Then ----------------------------------------------------------------------

def _observed(spec: ScenarioContext, name: str):
    return observe(spec.client(), build_site(name))


@then(parsers.parse('the site "{name}" has one droplet built from its TrueNAS image'))
def _one_droplet(spec: ScenarioContext, name: str) -> None:
    assert spec.last_error is None, spec.last_error
    seen = _observed(spec, name)
    assert seen.droplet is not None and seen.droplet["status"] == "active"
    assert seen.image is not None and seen.image["status"] == "available"
    assert seen.droplet["image"]["id"] == seen.image["id"]


@then("the TrueNAS image was imported on first use")
def _image_imported(spec: ScenarioContext) -> None:
    assert any(change.startswith("import image") for change in spec.last_run.changes)


@then("the droplet has at least 8 GB of memory and is in the site's region")
def _droplet_size(spec: ScenarioContext) -> None:
    site = build_site(spec.last_run.site)
    droplet = _observed(spec, site.name).droplet
    assert droplet["memory"] >= 8192
    assert droplet["region"]["slug"] == site.site.region


@then("the site's two volumes are in its region and attached to the droplet")
def _volumes_attached(spec: ScenarioContext) -> None:
    site = build_site(spec.last_run.site)
    seen = _observed(spec, site.name)
    assert sorted(seen.volumes) == sorted(desired.volume_names(site))
    for volume in seen.volumes.values():
        assert volume["region"]["slug"] == site.site.region
        assert volume["droplet_ids"] == [seen.droplet["id"]]
    assert sorted(seen.droplet["volume_ids"]) == sorted(v["id"] for v in seen.volumes.values())


@then("the firewall opens 80 and 443 to everyone and 22 and the admin port only to the "
      "admin CIDRs")
def _firewall(spec: ScenarioContext) -> None:
    site = build_site(spec.last_run.site)
    firewall = _observed(spec, site.name).firewall
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
def _dns(spec: ScenarioContext) -> None:
    site = build_site(spec.last_run.site)
    seen = _observed(spec, site.name)
    ip = seen.droplet_ip()
    for hostname in site.dns.hostnames:
        assert [r["data"] for r in seen.records[hostname]] == [ip]
        if spec.target.dns_server is not None:
            assert _resolve(spec.target.dns_server, hostname) == [ip]


def _resolve(server: tuple[str, int], hostname: str) -> list[str]:
    from dnslib import QTYPE, DNSRecord

    answer = DNSRecord.question(hostname, "A").send(server[0], server[1], timeout=5)
    return [str(rr.rdata) for rr in DNSRecord.parse(answer).rr if rr.rtype == QTYPE.A]


@then("every resource of the site carries the site's tag")
def _tagged(spec: ScenarioContext) -> None:
    site = build_site(spec.last_run.site)
    seen = _observed(spec, site.name)
    tag = desired.site_tag(site)
    for resource in [seen.droplet, seen.image, *seen.volumes.values()]:
        assert tag in resource["tags"], resource["name"]
        assert any(t.startswith("truenas-run:") for t in resource["tags"]), resource["name"]


@then(parsers.parse('check finds nothing wrong with the site "{name}"'))
def _check_ok(spec: ScenarioContext, name: str) -> None:
    assert spec.last_error is None, spec.last_error
    report = check(build_site(name), spec.client(), _state(spec, name))
    assert report.ok, [f"{f.requirement}: {f.detail}" for f in report.failures()]


@then("no mutating request was sent")
def _no_mutation(spec: ScenarioContext) -> None:
    assert spec.last_error is None, spec.last_error
    assert spec.last_log.total > 0
    assert spec.last_log.mutating_requests() == []
    if spec.last_node_log is not None:
        assert spec.last_node_log.total > 0, "the node was not even looked at"
        assert spec.last_node_log.mutating_calls() == []


@then(parsers.parse('the site "{name}" is as it was'))
def _unchanged(spec: ScenarioContext, name: str) -> None:
    assert _site_inventory(spec, name) == spec.site_snapshots[name]


@then(parsers.parse('nothing of the site "{name}" is left'))
def _nothing_left(spec: ScenarioContext, name: str) -> None:
    assert _site_inventory(spec, name) == {}


@then("the resources that belong to no site are as they were")
def _bystanders_intact(spec: ScenarioContext, bystanders: Bystanders) -> None:
    now = inventory.take(spec.client())
    assert {k: now.get(k) for k in bystanders.keys} == bystanders.baseline


@then(parsers.parse('the run fails saying "{text}"'))
def _run_failed(spec: ScenarioContext, text: str) -> None:
    assert spec.last_error is not None, "the run did not fail"
    assert text in str(spec.last_error)


@then(parsers.parse('the site "{name}" has volumes but no droplet'))
def _half_done(spec: ScenarioContext, name: str) -> None:
    seen = _observed(spec, name)
    assert seen.droplet is None
    assert len(seen.volumes) == 2


@then(parsers.parse('the site "{name}" has exactly one droplet'))
def _exactly_one(spec: ScenarioContext, name: str) -> None:
    assert spec.last_error is None, spec.last_error
    do = spec.client()
    droplets = do.list_all("list droplets", do.client.droplets.list, "droplets")
    named = [d for d in droplets if d["name"] == f"{name}-truenas"]
    assert len(named) == 1, f"{len(named)} droplets named {name}-truenas"


@then(parsers.parse('it exits with code 2 and a message naming "{field}"'))
def _refused(spec: ScenarioContext, field: str) -> None:
    assert spec.cli_exit == 2, (spec.cli_exit, spec.cli_output)
    assert field in spec.cli_output, spec.cli_output
    assert "Traceback" not in spec.cli_output


@then("nothing was created in the account")
def _nothing_created(spec: ScenarioContext) -> None:
    assert inventory.take(spec.client()) == spec.before



