"""A receiving site that runs GoCD on production's replicated `apps/gocd`, on the fake:
until `promote`, `plan` lists the chart as waiting (and `up` creates no app, writes
nothing into the copy, and a second `up` sends nothing: what the plan listed);
`check` does not fail the waiting chart; `promote` makes the copy writable and
starts GoCD on it without rewriting production's config; a second `promote` and a
plan after it find nothing to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import snapshots
from infra.check import check
from infra.digitalocean import DigitalOcean
from infra.down import Teardown
from infra.events import Reporter
from infra.node import open_node
from infra.promote import promote
from infra.resources.droplet import find as find_droplet
from infra.resources.droplet import public_ipv4
from infra.site import Site, load_site
from infra.state import StateDir
from infra.target import Target
from infra.truenas.calllog import CallLog
from infra.up import Provisioner
from steps.common import to_toml
from steps.sites import APPS_RECEIVER, APPS_SOURCE, site_data

pytestmark = [pytest.mark.acme, pytest.mark.caddy]

CONFIG = "/mnt/tank/apps/gocd/godata/config/cruise-config.xml"
NOTE = "/mnt/tank/apps/gocd/home/notes.txt"      # a user's file in an app dataset


def _node(site: Site, target: Target, state: StateDir):
    do = DigitalOcean(target)
    return open_node(site, target, state, public_ipv4(find_droplet(do, site)))


def test_a_received_app_waits_for_promote_which_starts_it_on_the_copy(
        world, tmp_path: Path) -> None:
    target = Target.from_world_file(world.world_file)
    # the receiving site's file names its source's file and state beside it
    (tmp_path / f"{APPS_SOURCE}.toml").write_text(to_toml(site_data(APPS_SOURCE)))
    (tmp_path / "staging.toml").write_text(to_toml(site_data(APPS_RECEIVER)))
    prod, staging = (load_site(tmp_path / f"{APPS_SOURCE}.toml"),
                     load_site(tmp_path / "staging.toml"))
    prod_state, staging_state = StateDir(tmp_path / APPS_SOURCE), StateDir(tmp_path / "staging")
    try:
        Provisioner(prod, DigitalOcean(target), prod_state).up()
        with _node(prod, target, prod_state) as client:
            client.upload(NOTE, b"kept by the copy")
            snapshots.take_named_by(client, prod, "apps", prod.snapshots[0].naming_schema,
                                    recursive=True)
            config = client.download(CONFIG)

        first = Provisioner(staging, DigitalOcean(target), staging_state)
        first.up()
        assert first.node_log.count("app.create") == 1       # the ingress alone
        with _node(staging, target, staging_state) as client:
            assert [a["name"] for a in client.call("app.query")] == ["ingress"]
            gocd = client.call("pool.dataset.query", [["id", "=", "tank/apps/gocd"]])[0]
            assert gocd["readonly"]["value"] == "ON", gocd["readonly"]
            assert client.download(CONFIG) == config and client.download(NOTE) == \
                b"kept by the copy"

        plan = Provisioner(staging, DigitalOcean(target),
                           StateDir(staging_state.path, read_only=True)).plan()
        assert plan.all_empty, [c.describe() for c in plan.every_change()]
        assert [(c.kind, c.subject) for c in plan.cannot] == [("deploy_app", "gocd")]
        assert "truenas-site promote" in plan.cannot[0].detail and not plan.cannot[0].requests
        again = Provisioner(staging, DigitalOcean(target), staging_state)
        again.up()
        assert again.node_log.mutating_calls() == [] and \
            again.source_log.mutating_calls() == [] and again.do.log.mutating_requests() == []

        report = check(staging, DigitalOcean(target), StateDir(staging_state.path,
                                                                read_only=True))
        waiting = [f for f in report.findings if f.requirement == "app gocd runs"]
        assert waiting and waiting[0].skipped and "promote" in waiting[0].detail, waiting
        assert report.ok, [(f.requirement, f.detail) for f in report.failures()]

        done = promote(staging, target, staging_state, DigitalOcean(target), Reporter())
        assert "tank/apps/gocd is writable (readonly off)" in done, done
        assert any(line.startswith("create app gocd ") for line in done), done
        with _node(staging, target, staging_state) as client:
            apps = {a["name"]: a["state"] for a in client.call("app.query")}
            assert apps == {"ingress": "RUNNING", "gocd": "RUNNING"}, apps
            # production's config and a user's file, as received: not seeded over
            assert client.download(CONFIG) == config
            assert client.download(NOTE) == b"kept by the copy"

        assert promote(staging, target, staging_state, DigitalOcean(target), Reporter()) == []
        after = Provisioner(staging, DigitalOcean(target),
                            StateDir(staging_state.path, read_only=True)).plan()
        assert after.all_empty and after.cannot == [], \
            [c.describe() for c in [*after.every_change(), *after.cannot]]
        last = Provisioner(staging, DigitalOcean(target), staging_state)
        last.source_log = CallLog()
        last.up()
        assert last.node_log.mutating_calls() == [] and last.source_log.mutating_calls() == []
    finally:
        Teardown(staging, DigitalOcean(target), staging_state).down()
        Teardown(prod, DigitalOcean(target), prod_state).down()
