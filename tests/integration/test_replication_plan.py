"""A receiving site on the fake: `plan` lists every change its `up` makes, on its own
node, in the cloud and on the source's node (the firewall's rule from the source,
the SSH pairing, the task, the first run), `up` sends exactly those, a second plan is
empty, `check` reports the copy, `promote` is idempotent, and `down` leaves the
source's node as it was before."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from infra import snapshots
from infra.check import check
from infra.digitalocean import DigitalOcean
from infra.down import Teardown
from infra.node import open_node
from infra.replication import Replication
from infra.resources import replication as tasks
from infra.resources.droplet import find as find_droplet
from infra.resources.droplet import public_ipv4
from infra.site import Site, load_site
from infra.state import StateDir
from infra.target import Target
from infra.truenas.calllog import CallLog
from infra.up import Provisioner
from steps.common import to_toml
from steps.sites import site_data


@pytest.fixture(scope="module")
def target(world) -> Target:
    return Target.from_world_file(world.world_file)


def _files(tmp_path: Path) -> tuple[Site, Site]:
    (tmp_path / "origin.toml").write_text(to_toml(site_data("origin")))
    (tmp_path / "mirror.toml").write_text(to_toml(site_data("mirror")))
    return load_site(tmp_path / "origin.toml"), load_site(tmp_path / "mirror.toml")


def _node(site: Site, target: Target, state: StateDir):
    do = DigitalOcean(target)
    return open_node(site, target, state, public_ipv4(find_droplet(do, site)))


def _source_holds(site: Site, target: Target, state: StateDir) -> tuple[list, list]:
    with _node(site, target, state) as client:
        return (sorted(t["name"] for t in client.call("replication.query")),
                sorted(c["name"] for c in client.call("keychaincredential.query")))


def test_a_receiving_site_is_planned_applied_checked_promoted_and_removed(
        target: Target, tmp_path: Path) -> None:
    origin, mirror = _files(tmp_path)
    origin_state, mirror_state = StateDir(tmp_path / "origin"), StateDir(tmp_path / "mirror")
    try:
        Provisioner(origin, DigitalOcean(target), origin_state).up()
        with _node(origin, target, origin_state) as client:
            client.upload("/mnt/tank/data/hello.txt", b"hello from production")
            snapshots.take_named_by(client, origin, "data", origin.snapshots[0].naming_schema)
        before = _source_holds(origin, target, origin_state)

        # Without its droplet, the plan says the source's side waits for the node.
        plan = Provisioner(mirror, DigitalOcean(target), mirror_state).plan()
        assert plan.replication_pending is not None
        assert any("22 from the replication's source" in c.detail for c in plan.changes)
        Provisioner(mirror, DigitalOcean(target), mirror_state).up()

        # The whole plan, once the node answers: held to what `up` sends.
        Teardown(mirror, DigitalOcean(target), mirror_state).down()
        with _node(origin, target, origin_state) as client:
            assert tasks.find(client, mirror).tasks == []
        Provisioner(mirror, DigitalOcean(target), mirror_state).up()
        _remove_replication(mirror, target, mirror_state)
        plan = Provisioner(mirror, DigitalOcean(target), mirror_state).plan()
        assert [c.kind for c in plan.replication] == [
            "setup_ssh_connection", "create_replication", "run_replication"]
        run = Provisioner(mirror, DigitalOcean(target), mirror_state)
        run.source_log = CallLog()
        run.up()
        planned = [r for c in plan.replication for r in c.requests]
        sent = run.source_log.mutating_calls() + [
            m for m in run.node_log.mutating_calls() if m == tasks.TOKEN]
        assert sorted(sent) == sorted(r for r in planned), (sent, planned)
        again = Provisioner(mirror, DigitalOcean(target), mirror_state).plan()
        assert again.all_empty, [c.describe() for c in again.every_change()]

        with _node(mirror, target, mirror_state) as client:
            assert client.download("/mnt/tank/data/hello.txt") == b"hello from production"
        report = check(mirror, DigitalOcean(target), StateDir(mirror_state.path,
                                                               read_only=True))
        rows = {f.requirement: f for f in report.findings if "replication" in f.requirement}
        assert rows and all(f.ok for f in rows.values()), rows
        assert report.ok, [(f.requirement, f.detail) for f in report.failures()]
        _existing_check_is_read_only(mirror, target, mirror_state)

        with _node(mirror, target, mirror_state) as client:
            said = Replication(mirror, target, mirror_state, DigitalOcean(target)).promote(
                client)
            assert said == ["disabled replication mirror:data on origin's node",
                            "tank/data is writable (readonly off)"]
            assert Replication(mirror, target, mirror_state,
                               DigitalOcean(target)).promote(client) == []
        assert Provisioner(mirror, DigitalOcean(target), mirror_state).plan().all_empty

        # The section dropped from the file: the next up removes what it made there.
        data = site_data("mirror")
        del data["replication"]
        (tmp_path / "alone.toml").write_text(to_toml(data))
        alone = load_site(tmp_path / "alone.toml")
        plan = Provisioner(alone, DigitalOcean(target), mirror_state).plan()
        assert [c.kind for c in plan.replication] == ["remove_replication"]
        assert "update_firewall" in plan.kinds()
        Provisioner(alone, DigitalOcean(target), mirror_state).up()
        assert _source_holds(origin, target, origin_state) == before
        assert Provisioner(alone, DigitalOcean(target), mirror_state).plan().all_empty

        Provisioner(mirror, DigitalOcean(target), mirror_state).up()
        assert _source_holds(origin, target, origin_state) != before
        Teardown(mirror, DigitalOcean(target), mirror_state).down()
        assert _source_holds(origin, target, origin_state) == before
    finally:
        Teardown(mirror, DigitalOcean(target), mirror_state).down()
        Teardown(origin, DigitalOcean(target), origin_state).down()


def _existing_check_is_read_only(mirror: Site, target: Target, state: StateDir) -> None:
    """`check` of a running receiving site without a DigitalOcean token (the existing
    target): the copy's last snapshot and age, the source's side skipped, and not one
    mutating call on the node."""
    address = public_ipv4(find_droplet(DigitalOcean(target), mirror))
    existing = replace(target, kind="existing", do_token=None, site_address=address)
    log = CallLog()
    report = check(mirror, None, StateDir(state.path, read_only=True), log, target=existing)
    assert log.total > 0 and log.mutating_calls() == []
    rows = [f for f in report.findings if "replication" in f.requirement]
    assert any(f.skipped and "origin" in f.requirement for f in rows), rows
    received = [f for f in rows if f.requirement.endswith("snapshot received")]
    assert received and received[0].ok and "last received auto-" in received[0].detail


def _remove_replication(mirror: Site, target: Target, state: StateDir) -> None:
    """What the mirror made on the source, removed by hand (its firewall and copy stay)."""
    replication = Replication(mirror, target, state, DigitalOcean(target))
    source = replication.sources[0]
    with replication.connect(source) as client:
        tasks.destroy(client, mirror, replication.reporter)
    with _node(mirror, target, state) as client:
        client.call("pool.dataset.delete", "tank/data", {"recursive": True, "force": True})

