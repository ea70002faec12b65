"""Leftovers (issue 13): `down` removes the site and run tags it created once nothing
carries them; a `down` without the state directory says it leaves the domain; the
sweeper takes a domain a run made only when nothing else is in it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from fakes.world import World
from infra import desired
from infra.cli import app
from infra.digitalocean import DigitalOcean
from infra.down import Teardown
from infra.errors import NotFound
from infra.ownership import MARKER_NAME
from infra.site import Site, parse_site
from infra.state import StateDir
from infra.sweep import Sweeper
from infra.target import Target
from infra.up import Provisioner
from steps.cli_runner import CliRunner
from steps.fake_admin import FakeAdmin
from steps.sites import site_data


def _site(name: str) -> Site:
    data = site_data(name)
    data["dns"] = {"domain": f"{name}.test", "hostnames": [f"www.{name}.test"], "ttl": 300}
    return parse_site(data)


def _tag_exists(do: DigitalOcean, name: str) -> bool:
    try:
        do.call("get tag", do.client.tags.get, name)
        return True
    except NotFound:
        return False


def test_down_removes_the_site_and_run_tags(world: World, tmp_path: Path) -> None:
    target = Target.from_world_file(world.world_file)
    site, state = _site("lo-tags"), StateDir(tmp_path / "state")
    Provisioner(site, DigitalOcean(target), state).up()
    do = DigitalOcean(target)
    run_tag = desired.run_tag(state.run_id())
    assert _tag_exists(do, run_tag) and _tag_exists(do, desired.site_tag(site))
    Teardown(site, DigitalOcean(target), state).down()
    assert not _tag_exists(do, run_tag)
    assert not _tag_exists(do, desired.site_tag(site))


def test_a_down_without_the_state_says_it_leaves_the_domain(world: World,
                                                            tmp_path: Path) -> None:
    target = Target.from_world_file(world.world_file)
    site = _site("lo-nostate")
    Provisioner(site, DigitalOcean(target), StateDir(tmp_path / "up-state")).up()
    site_file = tmp_path / "lo-nostate.toml"
    data = site_data("lo-nostate")
    lines = []
    for table in ("site", "image", "access", "truenas"):
        lines.append(f"[{table}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in data[table].items()]
    lines += ["[dns]", 'domain = "lo-nostate.test"', 'hostnames = ["www.lo-nostate.test"]']
    for volume in data["volumes"]:
        lines += ["[[volumes]]"] + [f"{k} = {json.dumps(v)}" for k, v in volume.items()]
    for policy in data["snapshots"]:
        lines += ["[[snapshots]]"] + [f"{k} = {json.dumps(v)}" for k, v in policy.items()]
    site_file.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["down", "--site", str(site_file), "--world",
                                      str(world.world_file), "--state-dir",
                                      str(tmp_path / "elsewhere")], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "domain lo-nostate.test left in place" in flat, flat
    DigitalOcean(target).client.domains.delete("lo-nostate.test")


def test_the_sweeper_keeps_a_run_domain_that_holds_something_else(world: World,
                                                                   tmp_path: Path) -> None:
    target = Target.from_world_file(world.world_file)
    site, state = _site("lo-sweep"), StateDir(tmp_path / "state")
    do = DigitalOcean(target)
    Provisioner(site, do, state).up()
    records = do.list_all("list", do.client.domains.list_records, "domain_records",
                          domain_name="lo-sweep.test", type="TXT")
    assert [r["name"] for r in records] == [MARKER_NAME]
    do.client.domains.create_record("lo-sweep.test", {"type": "TXT", "name": "keep",
                                                      "data": "someone-elses", "ttl": 300})
    FakeAdmin.from_world_file(world.world_file).advance_clock(7 * 3600)
    report = Sweeper(DigitalOcean(target)).sweep(timedelta(hours=6), run_id=state.run_id())
    kept = [i for i in report.kept if i.kind == "domain"]
    assert kept and "other record" in kept[0].reason
    assert "lo-sweep.test" in {d["name"] for d in do.list_all("list", do.client.domains.list,
                                                                "domains")}
    do.client.domains.delete("lo-sweep.test")
