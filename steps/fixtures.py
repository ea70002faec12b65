"""Fixtures the steps share: the target, the spec's sites on it (`sites`), the fake
world's admin API (`admin`), and resources that belong to no site (seeded once,
removed at the end of the session). What one step hands the next is a fixture its
step returns (`target_fixture`), typed where the step module defines it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.digitalocean import DigitalOcean
from infra.errors import NotFound, TargetError
from infra.target import Target
from steps import inventory
from steps.common import Sites
from steps.fake_admin import FakeAdmin


@pytest.fixture(scope="session")
def target(target_name: str, request: pytest.FixtureRequest) -> Target:
    if target_name == "fake":
        world = request.getfixturevalue("fake_world")
        return Target.from_world_file(world.world_file)
    if target_name == "real":
        try:
            return Target.real_from_env()
        except TargetError as missing:
            pytest.fail(str(missing), pytrace=False)
    try:  # existing: a running site, read-only (README.md, Targets)
        return Target.existing_from_env()
    except TargetError as missing:
        pytest.fail(str(missing), pytrace=False)


@pytest.fixture(scope="session")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("site-state")


@pytest.fixture(scope="session")
def session_sites(target: Target, state_root: Path) -> Sites:
    """The spec's sites on the target. Every site a scenario brought up is taken down
    when the session ends, whatever happened (a real run must never leak a droplet)."""
    spec_sites = Sites(target, state_root, set())
    yield spec_sites
    spec_sites.take_down_all()


@pytest.fixture
def sites(session_sites: Sites) -> Sites:
    """The session's sites, for one scenario: the sites it brought up go when it ends,
    so the next scenario's clock jump does not drive them and no scenario leans on
    what an earlier one left up."""
    yield session_sites
    session_sites.take_down_all()


@pytest.fixture
def admin(target: Target, request: pytest.FixtureRequest) -> FakeAdmin:
    """The fake world's admin API, for a `@fake_only` step; the faults it injected are
    cleared when the scenario ends."""
    if target.kind != "fake":
        pytest.fail(f"the {target.kind} target has no fake admin API: tag the scenario "
                    "@fake_only", pytrace=False)
    fake = FakeAdmin.from_world_file(request.getfixturevalue("fake_world").world_file)
    yield fake
    fake.clear_faults()
    fake.clear_dropped_ports()


@dataclass
class Bystanders:
    """Resources no site owns, and how they looked when seeded."""

    keys: set[str]
    baseline: dict[str, dict]


def _seed(do: DigitalOcean) -> list[tuple[str, object]]:
    c = do.client
    created: list[tuple[str, object]] = []
    volume = do.call("seed volume", c.volumes.create,
                     {"name": "bystander-data", "size_gigabytes": 10, "region": "nyc3"})["volume"]
    created.append(("volume", volume["id"]))
    droplet = do.call("seed droplet", c.droplets.create,
                      {"name": "bystander", "size": "s-1vcpu-1gb", "region": "nyc3",
                       "image": "debian-12-x64", "volumes": [volume["id"]]})["droplet"]
    created.append(("droplet", droplet["id"]))
    do.wait_until("the bystander droplet to boot",
                  lambda: do.call("get", c.droplets.get, droplet["id"])["droplet"]["status"]
                  == "active", 600)
    other = do.call("seed volume", c.volumes.create,
                    {"name": "bystander-spare", "size_gigabytes": 5, "region": "nyc3"})["volume"]
    created.append(("volume", other["id"]))
    snapshot = do.call("seed snapshot", c.volume_snapshots.create, other["id"],
                       {"name": "bystander-snap"})["snapshot"]
    created.append(("snapshot", snapshot["id"]))
    firewall = do.call("seed firewall", c.firewalls.create, {
        "name": "bystander-fw", "droplet_ids": [droplet["id"]],
        "inbound_rules": [{"protocol": "tcp", "ports": "22",
                           "sources": {"addresses": ["0.0.0.0/0"]}}],
    })["firewall"]
    created.append(("firewall", firewall["id"]))
    # The spec's sites share this domain: an earlier feature's `up` may have made it.
    domains = {d["name"] for d in do.list_all("list domains", c.domains.list, "domains")}
    if "example.test" not in domains:
        do.call("seed domain", c.domains.create, {"name": "example.test"})
        created.append(("domain", "example.test"))
    _seed_record(do, created, {"type": "A", "name": "www", "data": "127.99.0.1", "ttl": 300})
    _seed_record(do, created, {"type": "TXT", "name": "@", "data": "bystander-verification",
                               "ttl": 300})
    action = do.call("seed droplet snapshot", c.droplet_actions.post, droplet["id"],
                     {"type": "snapshot", "name": "bystander-droplet-snap"})["action"]
    do.wait_until("the bystander droplet snapshot",
                  lambda: do.call("get", c.droplet_actions.get, droplet["id"], action["id"])
                  ["action"]["status"] == "completed", 600)
    created += [("snapshot", s["id"]) for s in do.list_all(
        "list snapshots", c.snapshots.list, "snapshots", resource_type="droplet")
        if s["name"] == "bystander-droplet-snap"]
    # Left importing: its status moves on by itself, its name and tags must not.
    image = do.call("seed image", c.images.create_custom, {
        "name": "bystander-image", "url": "https://images.example.test/bystander.img",
        "region": "nyc3", "distribution": "Debian"})["image"]
    created.append(("image", image["id"]))
    return created + _seed_other_site(do)


# Another site in the same account: it carries a site tag and a run tag like ours,
# and its records sit in the same domain as our sites' records. Nothing of ours
# (up, down, failover, sweep) may touch it.
OTHER_SITE = "someone-else"
OTHER_TAGS = [f"truenas-site:{OTHER_SITE}", "truenas-run:0ther51te"]


def _seed_other_site(do: DigitalOcean) -> list[tuple[str, object]]:
    c = do.client
    created: list[tuple[str, object]] = []
    volume = do.call("seed volume", c.volumes.create, {
        "name": f"{OTHER_SITE}-data-a", "size_gigabytes": 10, "region": "nyc3",
        "tags": OTHER_TAGS})["volume"]
    created.append(("volume", volume["id"]))
    droplet = do.call("seed droplet", c.droplets.create, {
        "name": f"{OTHER_SITE}-truenas", "size": "s-1vcpu-1gb", "region": "nyc3",
        "image": "debian-12-x64", "volumes": [volume["id"]], "tags": OTHER_TAGS})["droplet"]
    created.append(("droplet", droplet["id"]))
    droplet = do.wait_until(
        "the other site's droplet to boot",
        lambda: (d := do.call("get", c.droplets.get, droplet["id"])["droplet"])["status"]
        == "active" and d, 600)
    snapshot = do.call("seed snapshot", c.volume_snapshots.create, volume["id"],
                       {"name": f"{OTHER_SITE}-snap", "tags": OTHER_TAGS})["snapshot"]
    created.append(("snapshot", snapshot["id"]))
    image = do.call("seed image", c.images.create_custom, {
        "name": f"{OTHER_SITE}-truenas-scale", "region": "nyc3", "distribution": "Unknown",
        "url": "https://images.example.test/truenas-scale.img", "tags": OTHER_TAGS})["image"]
    created.append(("image", image["id"]))
    firewall = do.call("seed firewall", c.firewalls.create, {
        "name": f"{OTHER_SITE}-firewall", "tags": OTHER_TAGS[:1],
        "inbound_rules": [{"protocol": "tcp", "ports": "443",
                           "sources": {"addresses": ["0.0.0.0/0", "::/0"]}}],
    })["firewall"]
    created.append(("firewall", firewall["id"]))
    address = next(n["ip_address"] for n in droplet["networks"]["v4"] if n["type"] == "public")
    for name in (OTHER_SITE, f"ci-{OTHER_SITE}"):
        _seed_record(do, created, {"type": "A", "name": name, "data": address, "ttl": 300})
    return created


def _seed_record(do: DigitalOcean, created: list[tuple[str, object]], body: dict) -> None:
    record = do.call("seed record", do.client.domains.create_record, "example.test",
                     body)["domain_record"]
    created.append(("record", ("example.test", record["id"])))


def _unseed(do: DigitalOcean, created: list[tuple[str, object]]) -> None:
    c = do.client
    deleters = {"firewall": c.firewalls.delete, "droplet": c.droplets.destroy,
                "snapshot": c.snapshots.delete, "image": c.images.delete,
                "domain": c.domains.delete}
    for kind, ident in created:
        if kind == "record":
            do.ignore_missing("remove bystander record", c.domains.delete_record, *ident)
    for kind, ident in created:
        if kind in deleters:
            do.ignore_missing(f"remove bystander {kind}", deleters[kind], ident)
    for kind, ident in created:
        if kind == "volume":
            def deleted(volume_id=ident) -> bool:
                try:
                    do.call("remove bystander volume", c.volumes.delete, volume_id, retry=False)
                except NotFound:
                    pass
                except Exception:
                    return False
                return True

            do.wait_until("a bystander volume to be deletable", deleted, 600)


@pytest.fixture(scope="session")
def bystanders(target: Target) -> Bystanders:
    if target.read_only:   # seeds nothing, and may have no DigitalOcean token
        yield Bystanders(set(), {})
        return
    do = DigitalOcean(target)
    before = set(inventory.take(do))
    created = _seed(do)
    after = inventory.take(do)
    keys = set(after) - before
    try:
        yield Bystanders(keys, {k: after[k] for k in keys})
    finally:
        _unseed(do, created)
