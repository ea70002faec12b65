"""A receiving site on a TrueNAS node of one's own (`[node]` with `[[replication]]`) whose
source is a droplet site, on the fake: refused without a DigitalOcean token (the
source's droplet is found in the account), planned like a droplet receiver's (the
source's side request by request, and the owner's firewall rule `up` cannot make),
`up` sending exactly that plan and nothing mutating to DigitalOcean, the files read
back byte for byte, `check` reporting the lag, `promote` making the copy writable and
`down` removing what it made on the source and nothing else there."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from infra import snapshots
from infra.check import check
from infra.digitalocean import DigitalOcean
from infra.down import Teardown
from infra.errors import SiteFileError
from infra.events import Reporter
from infra.node import open_node
from infra.promote import promote
from infra.resources import replication as tasks
from infra.resources.droplet import find as find_droplet
from infra.resources.droplet import public_ipv4
from infra.site import Site, load_site, parse_site
from infra.state import StateDir
from infra.target import Target
from infra.truenas.calllog import CallLog
from infra.truenas.client import TrueNASClient
from infra.up import Provisioner
from steps.common import to_toml
from steps.own_hardware_steps import make_owners_pool
from steps.sites import own_node_site_data, site_data

GIB = 2**30
FILES = {"hello.txt": b"hello from production\n",
         "blob.bin": os.urandom(256 * 1024)}


@pytest.fixture(scope="module")
def target(world) -> Target:
    return Target.from_world_file(world.world_file)


def _source(tmp_path: Path) -> tuple[Site, StateDir]:
    data = site_data("origin")     # snapshots `data` once a year: no run starts by itself
    data["site"]["name"] = "own-src"
    data["dns"] = {"domain": "own-src.test", "hostnames": ["www.own-src.test"], "ttl": 300}
    (tmp_path / "own-src.toml").write_text(to_toml(data))
    return load_site(tmp_path / "own-src.toml"), StateDir(tmp_path / "own-src")


def _receiver(world, tmp_path: Path, source: Site, source_state: StateDir) -> Site:
    with world.backend.lock:
        entry = world.truenas.boot_own_node([(f"RX-{i}", 10 * GIB) for i in (1, 2)])
        world.clock.advance(120)       # middleware boots (fakes/truenas/node.py)
    assert entry.server.wait_ready(10) and entry.node.state == "READY"
    key_file = tmp_path / "own-rx-key"
    key_file.write_text(world.truenas.own_keys[entry.droplet_id])
    key_file.chmod(0o600)
    data = own_node_site_data("own-rx", entry.node.address, ["RX-1", "RX-2"], str(key_file))
    data["snapshots"] = []             # the copy's snapshots come from the source
    data["replication"] = [{"source": str(tmp_path / "own-src.toml"),
                            "source_state_dir": str(source_state.path),
                            "datasets": ["data"]}]
    return parse_site(data)


def _source_node(site: Site, target: Target, state: StateDir) -> TrueNASClient:
    return open_node(site, target, state, public_ipv4(find_droplet(DigitalOcean(target), site)))


def _holdings(client: TrueNASClient) -> dict[str, list]:
    """What a user would list on the source node to see it is as it was."""
    return {
        "replication tasks": sorted(t["name"] for t in client.call("replication.query")),
        "credentials": sorted(c["name"] for c in client.call("keychaincredential.query")),
        "snapshot tasks": sorted(f"{t['dataset']}@{t['naming_schema']}"
                                 for t in client.call("pool.snapshottask.query")),
        "datasets": sorted(d["id"] for d in client.call("pool.dataset.query")),
        "snapshots": sorted(s["name"] for s in client.call("pool.snapshot.query")),
    }


def test_an_own_node_receives_a_droplet_sites_data(world, target: Target,
                                                    tmp_path: Path) -> None:
    source, source_state = _source(tmp_path)
    Provisioner(source, DigitalOcean(target), source_state).up()
    site, state = None, StateDir(tmp_path / "own-rx")
    try:
        with _source_node(source, target, source_state) as client:
            for name, content in FILES.items():
                client.upload(f"/mnt/tank/data/{name}", content)
            first = snapshots.take_named_by(client, source, "data",
                                            source.snapshots[0].naming_schema)
            before = _holdings(client)
        source_ip = public_ipv4(find_droplet(DigitalOcean(target), source))
        site = _receiver(world, tmp_path, source, source_state)

        # No token: plan, up and down refused by field before any request (the node's
        # included), since the source's droplet is found in the account.
        no_token = dataclasses.replace(target, do_token=None)
        for operation, command in ((Provisioner, "plan"), (Provisioner, "up"),
                                   (Teardown, "down")):
            refused = operation(site, None, state, target=no_token)
            with pytest.raises(SiteFileError) as error:
                getattr(refused, command)()
            assert any(p.startswith("replication[0].source:") and "DIGITALOCEAN_TOKEN" in p
                       for p in error.value.problems), (command, error.value.problems)
            assert refused.node_log.total == 0 and refused.source_log.total == 0, command

        # The owner's pool already there: the plan lists everything, the source's side too.
        with open_node(site, target, state, site.node.address) as client:
            make_owners_pool(client, site)
        plan = Provisioner(site, DigitalOcean(target), state).plan()
        assert plan.node_pending is None and plan.replication_pending is None
        assert [c.kind for c in plan.replication] == [
            "setup_ssh_connection", "create_replication", "run_replication"]
        assert [c.kind for c in plan.cannot] == ["open_firewall"]
        assert f"ports 22 and 443 of {site.node.address}" in plan.cannot[0].subject
        assert source_ip in plan.cannot[0].subject

        do = DigitalOcean(target)
        run = Provisioner(site, do, state)
        run.node_log, run.source_log = CallLog(), CallLog()
        run.up()
        assert do.log.mutating_requests() == [], "DigitalOcean is only read"
        planned = sorted(r for c in [*plan.node, *plan.replication] for r in c.requests)
        sent = sorted(run.node_log.mutating_calls() + run.source_log.mutating_calls())
        assert sent == planned
        again = Provisioner(site, DigitalOcean(target), state).plan()
        assert again.all_empty, [c.describe() for c in again.every_change()]
        assert [c.kind for c in again.cannot] == ["open_firewall"]

        with open_node(site, target, state, site.node.address) as client:
            for name, content in FILES.items():
                assert client.download(f"/mnt/tank/data/{name}") == content

        # A snapshot on the source an hour later, not yet replicated: check says so.
        with world.backend.lock:
            world.clock.advance(3600)
        with _source_node(source, target, source_state) as client:
            later = snapshots.take_named_by(client, source, "data",
                                            source.snapshots[0].naming_schema)
        before["snapshots"] = sorted([*before["snapshots"], later["name"]])
        report = check(site, DigitalOcean(target), StateDir(state.path, read_only=True))
        lag = [f for f in report.findings if f.requirement.endswith("lag behind the source")]
        assert len(lag) == 1 and lag[0].ok, lag   # within two of the source's intervals
        assert lag[0].detail.startswith(
            f"last received {first['name'].split('@')[1]}; the source's newest is "
            f"{later['name'].split('@')[1]}, ") and "0 min" not in lag[0].detail, lag
        assert report.ok, [(f.requirement, f.detail) for f in report.failures()]

        said = promote(site, target, state, DigitalOcean(target), Reporter())
        assert said == ["disabled replication own-rx:data on own-src's node",
                        "tank/data is writable (readonly off)"]
        with open_node(site, target, state, site.node.address) as client:
            client.upload("/mnt/tank/data/staging.txt", b"written on the copy")
        with _source_node(source, target, source_state) as client:
            assert tasks.find(client, site).tasks != []

        do = DigitalOcean(target)
        Teardown(site, do, state).down()
        assert do.log.mutating_requests() == [], "DigitalOcean is only read"
        with _source_node(source, target, source_state) as client:
            assert _holdings(client) == before
            for name, content in FILES.items():
                assert client.download(f"/mnt/tank/data/{name}") == content
    finally:
        if site is not None:
            Teardown(site, DigitalOcean(target), state).down()
        Teardown(source, DigitalOcean(target), source_state).down()
