"""`check --existing` of a receiving site reports its replication lag, read-only.

On a fake world a source site ("origin") and a receiving site ("mirror") are brought
up as steps/sites.py describes them; the source then takes a newer snapshot that
has not been replicated. `truenas-site check --existing --site mirror.toml`, as a
forker runs it (environment only), must name the snapshot received and how far the
source's newest is ahead, and send no mutating request: not to DigitalOcean (the
fake's request journal), not to the receiving node, not to the source node (each
node's call journal, classified by infra.truenas.calllog). Without a token the
source is not looked for, and the received snapshot and its age are reported.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fakes.world import World
from infra import snapshots
from infra.cli import app
from infra.digitalocean import MUTATING, DigitalOcean
from infra.node import open_node
from infra.resources.droplet import find as find_droplet
from infra.resources.droplet import public_ipv4
from infra.site import load_site
from infra.state import StateDir
from infra.target import Target
from infra.truenas.calllog import is_mutating
from infra.up import Provisioner
from steps.cli_runner import CliRunner
from steps.common import to_toml
from steps.fake_admin import FakeAdmin
from steps.sites import site_data

CLEARED = ("SPEC_TARGET", "SPEC_FAKE_WORLD", "FAKE_WORLD", "DIGITALOCEAN_TOKEN",
           "DIGITALOCEAN_API_URL", "DIGITALOCEAN_CA_BUNDLE", "TRUENAS_API_KEY", "ACME_ROOT_CA",
           "ACME_DIRECTORY", "EXISTING_SITE_FILE", "EXISTING_TRUENAS_ADDRESS",
           "EXISTING_PORT_MAP")


@dataclass
class Pair:
    world: World
    root: Path
    addresses: dict[str, str]
    snapshots: list[str]
    env: dict[str, str]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("existing-replication")
    with World(root / "world") as world:
        target = Target.from_world_file(world.world_file)
        do = DigitalOcean(target)
        for name in ("origin", "mirror"):
            (root / f"{name}.toml").write_text(to_toml(site_data(name)))
        origin = load_site(root / "origin.toml")
        policy = origin.snapshots[0]
        addresses, taken = {}, []
        Provisioner(origin, do, StateDir(root / "origin")).up()
        addresses["origin"] = public_ipv4(find_droplet(do, origin))
        with open_node(origin, target, StateDir(root / "origin"), addresses["origin"]) as node:
            node.upload(f"/mnt/{origin.truenas.pool}/data/a.bin", os.urandom(200_000))
            taken.append(snapshots.take_named_by(node, origin, "data",
                                                 policy.naming_schema)["snapshot_name"])
        mirror = load_site(root / "mirror.toml")
        Provisioner(mirror, do, StateDir(root / "mirror")).up()
        addresses["mirror"] = public_ipv4(find_droplet(do, mirror))
        with world.backend.lock:
            world.clock.advance(600)      # the source's next snapshot, later
        with open_node(origin, target, StateDir(root / "origin"), addresses["origin"]) as node:
            taken.append(snapshots.take_named_by(node, origin, "data",
                                                 policy.naming_schema)["snapshot_name"])
        described = json.loads(world.world_file.read_text())
        env = {
            "EXISTING_SITE_FILE": str(root / "mirror.toml"),
            "EXISTING_TRUENAS_ADDRESS": addresses["mirror"],
            "TRUENAS_API_KEY": described["truenas"]["api_key"],
            "DIGITALOCEAN_TOKEN": described["digitalocean"]["token"],
            "DIGITALOCEAN_API_URL": described["digitalocean"]["endpoint"],
            "DIGITALOCEAN_CA_BUNDLE": described["ca_bundle"],
            "EXISTING_PORT_MAP": ",".join(f"{port}={host_port}"
                                          for port, host_port in target.port_map),
            "COLUMNS": "250",
        }
        yield Pair(world, root, addresses, taken, env)


def _check(pair: Pair, **changes: str | None):
    admin = FakeAdmin.from_world_file(pair.world.world_file)
    admin.clear_requests()
    calls_before = admin.truenas_calls()
    env = {**pair.env, **changes}
    env.update({key: None for key in CLEARED if key not in env or env[key] is None})
    result = CliRunner().invoke(app, ["check", "--existing", "--json", "--site",
                                      str(pair.root / "mirror.toml"), "--state-dir",
                                      str(pair.root / "mirror")], env=env)
    calls = {address: admin.truenas_calls().get(address, [])[len(calls_before.get(address,
                                                                                  [])):]
             for address in pair.addresses.values()}
    return result, admin.requests(), calls


def _rows(output: str) -> dict[str, dict]:
    report = json.loads(output[output.index("{"):])
    return {f["requirement"]: f for f in report["findings"]}


def test_check_existing_reports_the_lag_behind_the_source_and_changes_nothing(pair: Pair):
    result, requests, calls = _check(pair)
    rows = _rows(result.output)
    lag = next(f for r, f in rows.items() if r.endswith("lag behind the source"))
    first, second = pair.snapshots
    assert first in lag["detail"] and second in lag["detail"], lag
    assert re.search(r"\d+(\.\d+)? (min|h|days) later", lag["detail"]), lag
    assert lag["ok"], lag                  # within two of the source's intervals
    state = next(f for r, f in rows.items() if r.endswith("task state"))
    assert state["ok"] and "FINISHED" in state["detail"], state
    assert result.exit_code == 0, result.output
    # Looked at both nodes and the account, and changed none of them.
    assert any(r["path"].startswith("/v2/droplets") for r in requests), requests
    assert [(r["method"], r["path"]) for r in requests if r["method"] in MUTATING] == []
    assert "replication.query" in calls[pair.addresses["origin"]], calls
    assert "pool.snapshot.query" in calls[pair.addresses["mirror"]], calls
    for address, made in calls.items():
        assert [m for m in made if is_mutating(m)] == [], (address, made)


def test_check_existing_without_a_token_reports_the_snapshot_received_and_its_age(pair: Pair):
    result, requests, calls = _check(pair, DIGITALOCEAN_TOKEN=None)
    rows = _rows(result.output)
    received = next(f for r, f in rows.items() if r.endswith("snapshot received"))
    assert pair.snapshots[0] in received["detail"] and " old" in received["detail"], received
    skipped = rows.get("replication from origin")
    assert skipped is not None and skipped["skipped"], rows.keys()
    assert requests == [], "no token, yet DigitalOcean was called"
    assert calls[pair.addresses["origin"]] == [], "the source was reached without a token"
    assert [m for m in calls[pair.addresses["mirror"]] if is_mutating(m)] == []
