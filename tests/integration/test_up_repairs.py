"""`up` that finds the pool DEGRADED repairs it as `repair` does (issue 13): a volume
lost and replaced by the run's own re-creation does not leave an `up` that exits 0
over a pool with one member."""

from __future__ import annotations

from pathlib import Path

from infra import desired, faults
from infra.check import check
from infra.digitalocean import DigitalOcean
from infra.down import Teardown
from infra.events import Reporter
from infra.node import open_node
from infra.resources import volume as volumes
from infra.resources.droplet import find as find_droplet
from infra.resources.pool import report as pool_report
from infra.resources.volume import find as find_volume
from infra.site import parse_site
from infra.state import StateDir
from infra.target import Target
from infra.up import Provisioner
from steps.sites import site_data


def test_up_repairs_a_pool_that_lost_a_volume(world, tmp_path: Path) -> None:
    target = Target.from_world_file(world.world_file)
    site, state = parse_site(site_data("heal")), StateDir(tmp_path / "state")
    do = DigitalOcean(target)
    Provisioner(site, do, state).up()
    try:
        volume = find_volume(do, site, "heal-pool-a")
        droplet_id = volume["droplet_ids"][0]
        action = do.call("detach", do.client.volume_actions.post_by_id, volume["id"],
                         {"type": "detach", "droplet_id": droplet_id})["action"]
        do.wait_action(action["id"], "detach")
        do.call("delete", do.client.volumes.delete, volume["id"])
        report = Provisioner(site, DigitalOcean(target), state).up()
        assert any("replace lost member" in change for change in report.changes), report.changes
        address = report.resources["droplet"]["ip"]
        with open_node(site, target, state, address) as node:
            pool = pool_report(node, site)
        assert pool.status == "ONLINE" and pool.healthy, pool
        assert check(site, DigitalOcean(target), state).ok
    finally:
        Teardown(site, DigitalOcean(target), state).down()


def test_plan_lists_the_repair_of_a_pool_that_lost_a_member_and_up_makes_it(
        world, tmp_path: Path) -> None:
    """A volume lost and a blank one attached in its place (an `up` cut off before
    its repair): the cloud matches the file, but the pool is DEGRADED. `plan` says
    so, and `up` makes that repair."""
    target = Target.from_world_file(world.world_file)
    site, state = parse_site(site_data("mend")), StateDir(tmp_path / "state")
    do = DigitalOcean(target)
    Provisioner(site, do, state).up()
    try:
        faults.delete_volume(do, site, "mend-pool-b")
        blank = volumes.create(do, site, volumes.desired(
            site, "mend-pool-b", site.volumes[1].size_gigabytes, [desired.site_tag(site)]),
            Reporter())
        volumes.attach(do, site, blank, find_droplet(do, site), Reporter())

        plan = Provisioner(site, DigitalOcean(target), state).plan()
        assert plan.changes == [] and plan.cannot == [], plan.to_dict(site.name)
        [repair] = plan.node
        assert repair.describe().startswith("repair pool tank (DEGRADED; "), repair
        assert "is REMOVED" in repair.detail and "`truenas-site repair`" in repair.detail

        report = Provisioner(site, DigitalOcean(target), state).up()
        assert any("replace lost member" in change for change in report.changes), report.changes
        assert Provisioner(site, DigitalOcean(target), state).plan().all_empty
    finally:
        Teardown(site, DigitalOcean(target), state).down()
