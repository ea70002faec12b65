"""A site on a TrueNAS node of one's own (issue 15 §6), on the fake: `plan`, `up`,
`check` and `down` through infra/ with no DigitalOcean client at all, against a node
booted through the fake world's admin side, never through DigitalOcean."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from infra.check import check
from infra.down import Teardown
from infra.errors import SiteFileError
from infra.node import open_node
from infra.site import Site, parse_site
from infra.state import StateDir
from infra.target import Target
from infra.up import Provisioner
from steps.sites import own_node_site_data

GIB = 2**30


@pytest.fixture(scope="module")
def target(world) -> Target:
    # No DigitalOcean token: a site on its own node must not need one.
    return dataclasses.replace(Target.from_world_file(world.world_file), do_token=None)


def boot(world, name: str, sizes: list[int], memory: int = 8,
         ready: bool = True) -> tuple[dict, list[str]]:
    """`ready`: wait until its middleware is READY, else return while it may boot."""
    with world.backend.lock:
        entry = world.truenas.boot_own_node(
            [(f"{name}-{i}", size * GIB) for i, size in enumerate(sizes, start=1)],
            physmem=memory * GIB)
        if ready:
            world.clock.advance(120)       # middleware boots (fakes/truenas/node.py)
    assert not ready or (entry.server.wait_ready(10) and entry.node.state == "READY")
    return ({"address": entry.node.address, "api_key": world.truenas.own_keys[entry.droplet_id]},
            [f"{name}-{i}" for i in range(1, len(sizes) + 1)])


def own_site(tmp_path: Path, name: str, node: dict, disks: list[str], **changes) -> Site:
    key_file = tmp_path / f"{name}-api-key"
    key_file.write_text(node["api_key"])
    os.chmod(key_file, 0o600)
    data = own_node_site_data(name, node["address"], disks, str(key_file))
    for section, values in changes.items():
        data[section] = {**data.get(section, {}), **values}
    return parse_site(data)


def test_a_site_on_its_own_node_comes_up_checks_and_goes_down(world, target: Target,
                                                               tmp_path: Path) -> None:
    node, serials = boot(world, "OWN", [20, 20, 30])
    site = own_site(tmp_path, "own-a", node, serials[:2])
    state = StateDir(tmp_path / "state")

    plan = Provisioner(site, None, state, target=target).plan()
    assert plan.changes == []
    assert [c.kind for c in plan.node] == ["create_pool"]

    report = Provisioner(site, None, state, target=target).up()
    assert report.requests_total == 0          # DigitalOcean was never asked
    assert any("create pool tank as a MIRROR" in c for c in report.changes)
    again = Provisioner(site, None, state, target=target).plan()
    assert again.all_empty, [c.describe() for c in again.every_change()]

    result = check(site, None, state, target=target)
    assert result.ok, [f.requirement + ": " + f.detail for f in result.findings if not f.ok]
    assert not any("droplet" in f.requirement for f in result.findings)

    gone = Teardown(site, None, state, target=target).down()
    assert gone.requests_total == 0
    with open_node(site, target, state, node["address"]) as client:
        assert client.call("pool.query", [["name", "=", "tank"]]), "the pool must stay"
        assert client.call("pool.snapshottask.query") == []
        datasets = {d["name"] for d in client.call("pool.dataset.query")}
    assert {"tank/apps", "tank/data"} <= datasets       # the data stays

    destroyer = Teardown(site, None, state, target=target)
    destroyer.destroy_pool = True
    destroyer.down()
    with open_node(site, target, state, node["address"]) as client:
        assert client.call("pool.query") == []
        assert [d["pool"] for d in client.call("disk.query", [], {"extra": {"pools": True}})
                if d["serial"] in serials] == [None, None, None]


@pytest.mark.parametrize("wrong, message", [
    ("NOPE-9", "node.disks[1]: the node has no disk 'NOPE-9'"),
    ("vda", "node.disks[1]: vda (vda) is in use by pool 'boot-pool'"),
])
def test_a_named_disk_missing_or_in_use_is_refused_before_anything_changes(
        world, target: Target, tmp_path: Path, wrong: str, message: str) -> None:
    node, serials = boot(world, f"BAD{len(wrong)}", [10, 10])
    site = own_site(tmp_path, "own-b", node, [serials[0], wrong])
    state = StateDir(tmp_path / "state")
    for run in (lambda p: p.plan(), lambda p: p.up()):
        with pytest.raises(SiteFileError) as refused:
            run(Provisioner(site, None, state, target=target))
        assert any(p.startswith(message) for p in refused.value.problems), \
            refused.value.problems
    with open_node(site, target, state, node["address"]) as client:
        assert client.call("pool.query") == []
        assert client.call("pool.dataset.query") == []


def test_a_node_short_of_memory_for_the_charts_is_refused_with_the_figures(
        world, target: Target, tmp_path: Path) -> None:
    """As a droplet's size is held to the charts' memory limits, so is the node's own
    RAM (system.info physmem): plan and up refuse, naming `apps` and the figures,
    before the node is changed."""
    node, serials = boot(world, "RAM", [10, 10], memory=4)
    site = own_site(tmp_path, "own-m", node, serials, tls={"challenge": "http-01"})
    state = StateDir(tmp_path / "state")
    for run in (lambda p: p.plan(), lambda p: p.up()):
        with pytest.raises(SiteFileError) as refused:
            run(Provisioner(site, None, state, target=target))
        [problem] = [p for p in refused.value.problems if "memory" in p]
        assert problem.startswith("apps: the memory limits add up to "), problem
        assert problem.endswith(f"MiB, more than the 0 MiB the node at {node['address']} has "
                                "for apps (4096 MiB less 4096 MiB for TrueNAS)"), problem
    with open_node(site, target, state, node["address"]) as client:
        assert client.call("pool.query") == []
        assert client.call("pool.dataset.query") == []


def test_up_refuses_a_node_short_of_memory_even_while_it_boots(
        world, target: Target, tmp_path: Path) -> None:
    """Whether `up`'s plan finds the node READY or still booting (then the node is
    read once it is READY), the memory is checked before the pool is made."""
    node, serials = boot(world, "RAMB", [10, 10], memory=4, ready=False)
    site = own_site(tmp_path, "own-p", node, serials, tls={"challenge": "http-01"})
    state = StateDir(tmp_path / "state")
    with pytest.raises(SiteFileError) as refused:
        Provisioner(site, None, state, target=target).up()
    assert any(p.startswith("apps: the memory limits add up to ")
               for p in refused.value.problems), refused.value.problems
    with open_node(site, target, state, node["address"]) as client:
        assert client.call("pool.query") == []


def test_a_node_with_the_memory_the_charts_need_plans_its_pool(world, target: Target,
                                                                tmp_path: Path) -> None:
    node, serials = boot(world, "RAM16", [10, 10], memory=16)
    site = own_site(tmp_path, "own-n", node, serials, tls={"challenge": "http-01"})
    plan = Provisioner(site, None, StateDir(tmp_path / "s", read_only=True),
                       target=target).plan()
    assert [c.kind for c in plan.node] == ["create_pool"]


def test_tls_without_dns_is_refused_naming_the_field(tmp_path: Path) -> None:
    data = own_node_site_data("own-t", "192.0.2.20", ["sdb", "sdc"], str(tmp_path / "k"),
                              tls=True)
    del data["dns"]
    with pytest.raises(SiteFileError) as refused:
        parse_site(data)
    assert refused.value.problems == [
        "dns: [tls] serves the site's public hostnames: add [dns] with the domain and the "
        "hostnames (or drop [tls])"]


def test_dns01_without_a_token_is_refused_naming_the_field(world, target: Target,
                                                            tmp_path: Path) -> None:
    node, serials = boot(world, "DNS", [10, 10])
    site = own_site(tmp_path, "own-c", node, serials, tls={"challenge": "dns-01"})
    with pytest.raises(SiteFileError) as refused:
        Provisioner(site, None, StateDir(tmp_path / "s"), target=target).plan()
    assert refused.value.problems[0].startswith("tls.challenge: dns-01 needs a DigitalOcean")


@pytest.mark.parametrize("with_dns", [True, False], ids=["with-dns", "without-dns"])
def test_the_cli_plans_brings_up_checks_and_takes_down_a_site_on_its_own_node(
        world, tmp_path: Path, with_dns: bool) -> None:
    """Without [tls] there is no front door, so [dns] may be left out."""
    import json

    from typer.testing import CliRunner

    from infra.cli import app
    from steps.common import to_toml

    node, serials = boot(world, f"CLI{int(with_dns)}", [10, 10])
    key_file = tmp_path / "key"
    key_file.write_text(node["api_key"])
    key_file.chmod(0o600)
    site_file = tmp_path / "own.toml"
    data = own_node_site_data("own-cli", node["address"], serials, str(key_file))
    if not with_dns:
        del data["dns"]
    site_file.write_text(to_toml(data))
    common = ["--site", str(site_file), "--world", str(world.world_file),
              "--state-dir", str(tmp_path / "state")]
    runner = CliRunner()

    planned = runner.invoke(app, ["plan", *common], env={})
    assert planned.exit_code == 0, planned.output
    assert "create pool tank" in planned.output
    assert "droplet" not in planned.output and "volume" not in planned.output

    up = runner.invoke(app, ["up", *common, "--json"], env={})
    assert up.exit_code == 0, up.output
    assert json.loads(up.stdout)["requests_total"] == 0

    checked = runner.invoke(app, ["check", *common, "--json"], env={})
    assert checked.exit_code == 0, checked.output
    rows = [f["requirement"] for f in json.loads(checked.stdout)["findings"]]
    assert f"pool tank is a MIRROR of the disks {serials[0]}, {serials[1]}" in rows

    down = runner.invoke(app, ["down", *common, "--destroy-pool", "--json"], env={})
    assert down.exit_code == 0, down.output
    assert any("destroy pool tank" in c for c in json.loads(down.stdout)["changes"])


def test_plan_says_it_cannot_replace_a_lost_disk_of_its_own_node_and_what_to_do(
        world, target: Target, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from infra.cli import app
    from steps.common import to_toml

    node, serials = boot(world, "LOST", [10, 10])
    key_file = tmp_path / "key"
    key_file.write_text(node["api_key"])
    key_file.chmod(0o600)
    data = own_node_site_data("own-lost", node["address"], serials, str(key_file))
    site_file = tmp_path / "own.toml"
    site_file.write_text(to_toml(data))
    state = StateDir(tmp_path / "state")
    Provisioner(parse_site(data), None, state, target=target).up()
    with world.backend.lock:       # the disk dies under the pool
        next(entry for entry in world.truenas.nodes.values()
             if entry.node.address == node["address"]).node.unplug_disk(serials[1])

    planned = CliRunner().invoke(app, ["plan", "--site", str(site_file), "--world",
                                       str(world.world_file), "--state-dir", str(state.path)],
                                 env={})
    assert planned.exit_code == 0, planned.output
    text = " ".join(planned.output.split())      # the console wraps long lines
    assert text.startswith("nothing up can change ! cannot repair pool tank (DEGRADED; "), text
    assert "is REMOVED: up replaces no disk on a node of your own; replace the failed disk " \
           "in TrueNAS (Storage > Manage Devices > Replace)" in text, text


@pytest.mark.acme
@pytest.mark.caddy
def test_dns01_on_its_own_node_touches_only_txt_records_through_truenas(
        world, tmp_path: Path) -> None:
    """With a token, dns-01: TrueNAS's own ACME client writes (and removes) the TXT
    records; `up` and `down` themselves send DigitalOcean nothing."""
    from infra.digitalocean import DigitalOcean

    full = Target.from_world_file(world.world_file)
    domain = "own-dns.test"
    DigitalOcean(full).client.domains.create({"name": domain})
    node, serials = boot(world, "DNS1", [10, 10])
    site = own_site(tmp_path, "own-d", node, serials, tls={"challenge": "dns-01"},
                    dns={"domain": domain, "hostnames": [f"www.{domain}"]},
                    access={"admin_cidrs": ["127.0.0.0/8"]})
    state = StateDir(tmp_path / "state")
    do = DigitalOcean(full)
    report = Provisioner(site, do, state).up()
    assert do.log.total == 0
    assert any("dns-01" in c or "certificate" in c for c in report.changes), report.changes
    result = check(site, None, state, target=full)
    assert result.ok, [f.requirement + ": " + f.detail for f in result.findings if not f.ok]
    records = DigitalOcean(full).client.domains.list_records(domain)["domain_records"]
    assert [r for r in records if r["type"] == "TXT"] == [], "a challenge record stayed"
    down = DigitalOcean(full)
    Teardown(site, down, state).down()
    assert down.log.total == 0
