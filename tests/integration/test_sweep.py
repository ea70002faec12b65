"""The sweeper deletes exactly the run-tagged resources past the age, and nothing else.

One fake account holds three groups made long ago (untagged; another run's; this
run's) and one made just now (this run's again). Each group has a droplet with a
volume attached, a detached volume, a volume snapshot, a custom image, a firewall
and an A record pointing at the droplet; the young group has no droplet. What a
user checks is the whole account before and after, as steps/inventory.py sees it.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from infra import desired
from infra.cli import app
from infra.digitalocean import DigitalOcean
from infra.events import RecordingReporter
from infra.resources.droplet import public_ipv4
from infra.sweep import Sweeper
from infra.target import Target
from steps import inventory
from steps.cli_runner import CliRunner
from steps.fake_admin import FakeAdmin
from steps.sites import FAKE_IMAGE_URL

DOMAIN = "sweep.test"
SIX_HOURS = timedelta(hours=6)


def _site_tag(name: str) -> str:
    return f"truenas-site:{name}"


def _make(do: DigitalOcean, prefix: str, tags: list[str], droplet: bool = True) -> set[str]:
    """One group of resources; their inventory keys."""
    c = do.client
    keys: set[str] = set()
    tagged = {"tags": tags} if tags else {}
    spare = do.call("volume", c.volumes.create, {"name": f"{prefix}-spare", "size_gigabytes": 5,
                                                 "region": "nyc3", **tagged})["volume"]
    keys.add(f"volume:{spare['id']}")
    snapshot = do.call("snapshot", c.volume_snapshots.create, spare["id"],
                       {"name": f"{prefix}-snap", **tagged})["snapshot"]
    keys.add(f"snapshot:{snapshot['id']}")
    image = do.call("image", c.images.create_custom, {
        "name": f"{prefix}-image", "url": FAKE_IMAGE_URL, "region": "nyc3",
        "distribution": "Unknown", **tagged})["image"]
    keys.add(f"image:{image['id']}")
    if not droplet:
        return keys
    data = do.call("volume", c.volumes.create, {"name": f"{prefix}-data", "size_gigabytes": 5,
                                                "region": "nyc3", **tagged})["volume"]
    keys.add(f"volume:{data['id']}")
    made = do.call("droplet", c.droplets.create, {
        "name": f"{prefix}-node", "size": "s-1vcpu-1gb", "region": "nyc3",
        "image": "debian-12-x64", "volumes": [data["id"]], **tagged})["droplet"]
    keys.add(f"droplet:{made['id']}")
    active = do.wait_until(f"{prefix} droplet to boot", lambda: (
        d := do.call("get", c.droplets.get, made["id"])["droplet"])["status"] == "active" and d,
        600)
    # The firewall applies to the group's droplet by id, and to its run tag if it has one.
    firewall = do.call("firewall", c.firewalls.create, {
        "name": f"{prefix}-fw", "droplet_ids": [made["id"]], **tagged,
        "inbound_rules": [{"protocol": "tcp", "ports": "22",
                           "sources": {"addresses": ["198.51.100.0/24"]}}]})["firewall"]
    keys.add(f"firewall:{firewall['id']}")
    record = do.call("record", c.domains.create_record, DOMAIN, {
        "type": "A", "name": prefix, "data": public_ipv4(active), "ttl": 300})["domain_record"]
    keys.add(f"record:{DOMAIN}:{record['id']}")
    return keys


@pytest.fixture(scope="module")
def target(world) -> Target:
    return Target.from_world_file(world.world_file)


@pytest.fixture(scope="module")
def seeded(target: Target, world) -> dict[str, set[str]]:
    do = DigitalOcean(target)
    do.call("domain", do.client.domains.create, {"name": DOMAIN})
    groups = {
        "untagged": _make(do, "plain", []),
        "other": _make(do, "other", [_site_tag("other"), desired.run_tag("other1")]),
        "old": _make(do, "mine", [_site_tag("mine"), desired.run_tag("mine1")]),
    }
    FakeAdmin.from_world_file(world.world_file).advance_clock(7 * 3600)
    groups["young"] = _make(do, "fresh", [_site_tag("mine"),
                                          desired.run_tag("mine1")], droplet=False)
    return groups


def _tags(do: DigitalOcean) -> set[str]:
    return {t["name"] for t in do.list_all("tags", do.client.tags.list, "tags")}


def _deleted_keys(report) -> set[str]:
    return {f"{i.kind}:{i.id}" for i in report.deleted if i.kind != "tag"}


def test_a_dry_run_deletes_nothing_and_lists_what_a_sweep_deletes(target, seeded):
    do = DigitalOcean(target)
    before = inventory.take(do)
    assert seeded["old"] <= set(before)
    report = Sweeper(do).sweep(SIX_HOURS, run_id="mine1", dry_run=True)
    assert inventory.take(do) == before
    assert do.log.mutating == 0
    assert _deleted_keys(report) == seeded["old"] & set(before)
    assert {f"{i.kind}:{i.id}" for i in report.kept if i.kind != "tag"} >= seeded["young"]


def test_a_sweep_deletes_exactly_the_old_resources_of_its_run(target, seeded):
    do = DigitalOcean(target)
    before = inventory.take(do)
    dry = Sweeper(do).sweep(SIX_HOURS, run_id="mine1", dry_run=True)
    reporter = RecordingReporter()
    report = Sweeper(do, reporter).sweep(SIX_HOURS, run_id="mine1")
    after = inventory.take(do)
    # Everything else is exactly as it was: untagged, another run's, this run's young ones.
    assert after == {k: v for k, v in before.items() if k not in seeded["old"]}
    assert seeded["young"] <= set(after)
    assert _deleted_keys(report) == _deleted_keys(dry) == seeded["old"] & set(before)
    assert [(i.kind, i.id) for i in report.deleted] == [(i.kind, i.id) for i in dry.deleted]
    assert any(line.startswith("step: delete droplet mine-node") for line in reporter.lines)
    # The run tag still carries the young resources, so it stays.
    assert desired.run_tag("mine1") in _tags(do)


def test_a_second_sweep_deletes_nothing(target, seeded):
    do = DigitalOcean(target)
    Sweeper(do).sweep(SIX_HOURS, run_id="mine1")
    before = inventory.take(do)
    do.log.entries.clear()
    report = Sweeper(do).sweep(SIX_HOURS, run_id="mine1")
    assert report.deleted == []
    assert do.log.mutating == 0
    assert inventory.take(do) == before


def test_a_scoped_sweep_takes_only_runs_that_carry_its_tag(target, world, seeded):
    """Every `up` tags its resources with its run: another site's old resources are
    run-tagged too, and only the scope keeps a sweep off them."""
    do = DigitalOcean(target)
    keys = _make(do, "scoped", [_site_tag("scoped"), desired.run_tag("scoped1")],
                 droplet=False)
    FakeAdmin.from_world_file(world.world_file).advance_clock(2 * 3600)
    hour = timedelta(hours=1)
    suite = Sweeper(do, scope_tag="spec-suite").sweep(hour, dry_run=True)
    assert not _deleted_keys(suite) & keys
    scoped = Sweeper(do, scope_tag=_site_tag("scoped")).sweep(hour, dry_run=True)
    assert _deleted_keys(scoped) == keys


def test_resources_younger_than_the_age_stay_and_say_why(target, seeded):
    do = DigitalOcean(target)
    report = Sweeper(do).sweep(timedelta(days=2), dry_run=True)
    assert report.deleted == []
    young = [i for i in report.kept if f"{i.kind}:{i.id}" in seeded["other"]]
    assert young and all("younger than 2.0 d" in i.reason for i in young)


def test_a_sweep_of_every_run_never_touches_untagged_resources(target, seeded):
    do = DigitalOcean(target)
    before = inventory.take(do)
    report = Sweeper(do).sweep(SIX_HOURS)
    after = inventory.take(do)
    gone = seeded["old"] | seeded["other"]
    assert after == {k: v for k, v in before.items() if k not in gone}
    assert seeded["untagged"] | seeded["young"] <= set(after)
    # Another run's tags now carry nothing: they go; this run's still carries the young.
    deleted_tags = {i.id for i in report.deleted if i.kind == "tag"}
    assert deleted_tags == {desired.run_tag("other1"), _site_tag("other")}
    assert not deleted_tags & _tags(do)
    assert Sweeper(do).sweep(SIX_HOURS).deleted == []


def _cli(target: Target, world, *args: str):
    return CliRunner().invoke(app, ["sweep", *args, "--world", str(world.world_file)])


def test_the_command_lists_then_sweeps(target, world, seeded):
    do = DigitalOcean(target)
    # The command sweeps only what carries its --tag (by default the suite's spec-suite).
    keys = _make(do, "cli", [desired.run_tag("cli1"), "spec-suite"])
    FakeAdmin.from_world_file(world.world_file).advance_clock(3 * 3600)
    before = inventory.take(do)
    listed = _cli(target, world, "--older-than", "2h", "--run-id", "cli1", "--dry-run",
                  "--json")
    assert listed.exit_code == 0, listed.output
    planned = json.loads(listed.stdout)
    assert {f"{i['kind']}:{i['id']}" for i in planned["deleted"] if i["kind"] != "tag"} == keys
    assert inventory.take(do) == before
    swept = _cli(target, world, "--older-than", "120m", "--run-id", "cli1")
    assert swept.exit_code == 0, swept.output
    assert "deleted" in swept.stdout and "cli-node" in swept.stdout
    assert inventory.take(do) == {k: v for k, v in before.items() if k not in keys}


@pytest.mark.parametrize("value", ["6", "6x", "-1h", "0h", "h", "six hours"])
def test_a_bad_age_exits_2_naming_the_option(value):
    result = CliRunner().invoke(app, ["sweep", "--older-than", value])
    assert result.exit_code == 2
    assert "--older-than" in result.output
