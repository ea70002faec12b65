"""`up` applies its plan: for random site files and random starting states on the
fake, the mutating requests `up` sends (to DigitalOcean and to the TrueNAS node) are
exactly the ones the plan listed, what the plan says it cannot change is not
changed, and a second plan is empty.

A starting state is an empty account, or the site brought up from another random
site file of the same name (hostnames dropped or added, volumes grown or shrunk,
another droplet size, other admin networks, datasets and snapshot schedules),
perhaps with a fault on top (its firewall or one of its records deleted by hand).
When the plan cannot list the node's changes yet (no droplet), it says so, and only
the cloud's requests are held to it. Some examples are receiving sites (a
`[[replication]]` of a source site brought up once for the module): their requests
on the source's node are held to the plan too; so are those of sites on a node of
one's own, receiving or not (their plan also names the firewall rule only the owner
can make).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from infra import snapshots
from infra.digitalocean import DigitalOcean
from infra.down import Teardown
from infra.node import open_node
from infra.plan import Plan
from infra.resources.dns import find_records as a_records
from infra.resources.droplet import find as find_droplet
from infra.resources.droplet import public_ipv4
from infra.resources.firewall import find as find_firewall
from infra.site import Site, load_site, parse_site
from infra.state import StateDir
from infra.target import Target
from infra.truenas.calllog import CallLog
from infra.up import Provisioner
from steps.common import to_toml
from steps.own_hardware_steps import make_owners_pool
from steps.sites import site_data
from tests.budget import examples

NAMES = itertools.count(1)


@pytest.fixture(scope="module")
def target(world) -> Target:
    return Target.from_world_file(world.world_file)


@dataclass(frozen=True)
class Source:
    """A source site, up, with a snapshot of `data` its replications send."""

    path: Path
    state: Path


@pytest.fixture(scope="module")
def source(target: Target, tmp_path_factory: pytest.TempPathFactory) -> Source:
    root = tmp_path_factory.mktemp("plan-source")
    data = site_data("origin")
    data["site"]["name"] = "plan-src"
    data["dns"] = {"domain": "plan-src.test", "hostnames": ["www.plan-src.test"], "ttl": 300}
    (root / "plan-src.toml").write_text(to_toml(data))
    site, state = load_site(root / "plan-src.toml"), StateDir(root / "plan-src")
    Provisioner(site, DigitalOcean(target), state).up()
    do = DigitalOcean(target)
    with open_node(site, target, state, public_ipv4(find_droplet(do, site))) as client:
        snapshots.take_named_by(client, site, "data", site.snapshots[0].naming_schema)
    try:
        yield Source(root / "plan-src.toml", state.path)
    finally:
        Teardown(site, DigitalOcean(target), state).down()


@st.composite
def site_files(draw: st.DrawFn) -> dict:
    """The parts of a site file that may differ between two runs of one site."""
    return {
        "hostnames": draw(st.lists(st.sampled_from(["www", "ci", "git"]), min_size=1,
                                   max_size=3, unique=True)),
        "sizes": draw(st.tuples(st.sampled_from([50, 60]), st.sampled_from([50, 60]))),
        "droplet_size": draw(st.sampled_from(["s-4vcpu-8gb", "s-8vcpu-16gb"])),
        "admin_cidrs": draw(st.sampled_from([["198.51.100.0/24"], ["203.0.113.7/32"],
                                             ["198.51.100.0/24", "203.0.113.7/32"]])),
        "datasets": draw(st.lists(st.sampled_from(["apps", "media/photos"]), unique=True)),
        "lifetime": draw(st.integers(min_value=1, max_value=3)),
    }


def _site(name: str, parts: dict, source: Source | None = None) -> Site:
    data = site_data(name)
    if source is not None:
        data["replication"] = [{"source": str(source.path),
                                "source_state_dir": str(source.state), "datasets": ["data"]}]
    domain = f"{name}.test"
    data["site"]["droplet_size"] = parts["droplet_size"]
    data["volumes"][0]["size_gigabytes"], data["volumes"][1]["size_gigabytes"] = parts["sizes"]
    data["dns"] = {"domain": domain, "hostnames": [f"{h}.{domain}" for h in parts["hostnames"]],
                   "ttl": 300}
    data["access"]["admin_cidrs"] = parts["admin_cidrs"]
    data["truenas"]["datasets"] = ["data", *parts["datasets"]]
    data["snapshots"][0]["lifetime_value"] = parts["lifetime"]
    if source is not None:   # its snapshots of `data` come from the source
        data["snapshots"] = []
    return parse_site(data)


def _planned(plan: Plan) -> list[str]:
    return [request for change in [*plan.changes, *plan.node, *plan.replication]
            for request in change.requests]


def _unmatched(planned: list[str], sent: list[str]) -> tuple[list[str], list[str]]:
    """(requests sent that no planned request covers, planned requests never sent).
    A planned request is a pattern (`*` for an id), or alternatives split by `|`."""
    left = list(planned)
    extra = []
    for request in sent:
        for i, pattern in enumerate(left):
            if any(fnmatchcase(request, p) for p in pattern.split("|")):
                del left[i]
                break
        else:
            extra.append(request)
    return extra, left


def _fault(do: DigitalOcean, site: Site, fault: str) -> None:
    if fault == "firewall deleted":
        do.client.firewalls.delete(find_firewall(do, site)["id"])
    elif fault == "a record deleted":
        record = a_records(do, site, site.dns.hostnames[0])[0]
        do.client.domains.delete_record(site.dns.domain, record["id"])


@settings(max_examples=examples(fast=4, deep=12), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(before=st.one_of(st.none(), site_files(), site_files()), after=site_files(),
       fault=st.sampled_from(["none", "firewall deleted", "a record deleted"]),
       receiving=st.booleans())
def test_up_sends_exactly_what_its_plan_listed(target: Target, source: Source,
                                               tmp_path: Path, before: dict | None,
                                               after: dict, fault: str,
                                               receiving: bool) -> None:
    name = f"plan-{next(NAMES)}"
    state = StateDir(tmp_path / name)
    event(f"a receiving site, {'from nothing' if before is None else 'changed'}"
          if receiving else "a site")
    source = source if receiving else None
    site = _site(name, after, source)
    try:
        if before is not None:
            first = _site(name, before, source)
            Provisioner(first, DigitalOcean(target), state).up()
            _fault(DigitalOcean(target), first, fault)

        plan = Provisioner(site, DigitalOcean(target), state).plan()
        do, node_log = DigitalOcean(target), CallLog()
        run = Provisioner(site, do, state)
        run.node_log = node_log
        run.up()

        sent = [f"{method} {path}" for method, path in do.log.mutating_requests()]
        if plan.node_pending is None:
            sent += node_log.mutating_calls()
        if plan.replication_pending is None:   # on the source's node
            sent += run.source_log.mutating_calls()
        extra, never = _unmatched(_planned(plan), sent)
        if plan.node_pending is not None:  # the node's planned requests are not listed
            never = [p for p in never if p.startswith(("POST ", "PUT ", "DELETE "))]
        assert extra == [], f"up sent what its plan did not list: {extra}"
        assert never == [], f"the plan listed what up did not send: {never}"
        for refused in plan.cannot:
            assert refused.kind in ("shrink_volume", "resize_droplet"), refused

        again = Provisioner(site, DigitalOcean(target), state).plan()
        assert again.all_empty, [c.describe() for c in again.every_change()] + [
            again.node_pending]
        assert [c.kind for c in again.cannot] == [c.kind for c in plan.cannot]
    finally:
        Teardown(site, DigitalOcean(target), state).down()


# --- a site on a node of one's own (issue 15 §6) ----------------------------------------
GIB = 2**30
OWN_DISKS = ["D1", "D2", "D3"]


@st.composite
def own_site_files(draw: st.DrawFn) -> dict:
    """What may differ between two runs of a site on its own node: which disks (only
    before the pool exists: the pool is never rebuilt), datasets, snapshot lifetime."""
    return {
        "disks": draw(st.sampled_from([OWN_DISKS[:2], OWN_DISKS[1:], OWN_DISKS])),
        "datasets": draw(st.lists(st.sampled_from(["apps", "media/photos"]), unique=True)),
        "lifetime": draw(st.integers(min_value=1, max_value=3)),
        "hourly": draw(st.booleans()),
    }


def _own_site(name: str, node: dict, key_file: Path, parts: dict,
              source: Source | None = None) -> Site:
    from steps.sites import own_node_site_data

    prefix = node["prefix"]
    data = own_node_site_data(name, node["address"], [f"{prefix}{d}" for d in parts["disks"]],
                              str(key_file))
    data["truenas"]["datasets"] = ["data", *parts["datasets"]]
    data["snapshots"][0]["lifetime_value"] = parts["lifetime"]
    data["snapshots"][0]["hour"] = "*" if parts["hourly"] else "3"
    if source is not None:   # receives `data`, whose snapshots come from the source
        data["replication"] = [{"source": str(source.path),
                                "source_state_dir": str(source.state), "datasets": ["data"]}]
        data["snapshots"] = []
    return parse_site(data)


@settings(max_examples=examples(fast=3, deep=8), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(before=st.one_of(st.none(), own_site_files()), after=own_site_files(),
       existing_pool=st.booleans(), receiving=st.booleans())
def test_up_on_an_own_node_sends_exactly_its_plan_and_nothing_to_the_cloud(
        world, target: Target, source: Source, tmp_path: Path, before: dict | None,
        after: dict, existing_pool: bool, receiving: bool) -> None:
    """The same property for a site on its own node, from a fresh node, one the site
    was brought up on from another file, or one whose owner made the pool already,
    perhaps receiving the source site's `data`: what `up` sends the node (and the
    source's node) is its plan, DigitalOcean gets no mutating request (a receiver only
    reads where its source's droplet is), a second plan is empty, and what the plan
    cannot do is the owner's firewall rule for the source, named in every plan."""
    name = f"own-{next(NAMES)}"
    event(f"an own node{', receiving' if receiving else ''}")
    source = source if receiving else None
    prefix = f"{name}-"
    with world.backend.lock:
        entry = world.truenas.boot_own_node([(f"{prefix}{d}", 10 * GIB) for d in OWN_DISKS])
        world.clock.advance(120)
    assert entry.server.wait_ready(10)
    node = {"address": entry.node.address, "prefix": prefix}
    key_file = tmp_path / f"{name}-key"
    key_file.write_text(world.truenas.own_keys[entry.droplet_id])
    key_file.chmod(0o600)
    state = StateDir(tmp_path / name)
    site = _own_site(name, node, key_file, after, source)
    try:
        if existing_pool and before is None:
            # The owner's pool already there, on the same disks: `up` uses it.
            with open_node(site, target, state, node["address"]) as client:
                make_owners_pool(client, site)
        if before is not None:
            Provisioner(_own_site(name, node, key_file, before, source),
                        DigitalOcean(target), state).up()

        plan = Provisioner(site, DigitalOcean(target), state).plan()
        do, node_log = DigitalOcean(target), CallLog()
        run = Provisioner(site, do, state)
        run.node_log = node_log
        run.up()

        if receiving:
            assert do.log.mutating_requests() == [], "up changed the cloud"
        else:
            assert do.log.total == 0, "up sent DigitalOcean a request for an own node"
        assert plan.changes == []
        assert [c.kind for c in plan.cannot] == (["open_firewall"] if receiving else [])
        sent = node_log.mutating_calls()
        if plan.replication_pending is None:   # on the source's node
            sent += run.source_log.mutating_calls()
        extra, never = _unmatched(_planned(plan), sent)
        if plan.node_pending is None:   # else what the new pool holds is planned by up
            assert extra == [], f"up sent what its plan did not list: {extra}"
        assert never == [], f"the plan listed what up did not send: {never}"

        again = Provisioner(site, DigitalOcean(target), state).plan()
        assert again.all_empty, [c.describe() for c in again.every_change()] + [
            again.node_pending]
        assert [c.kind for c in again.cannot] == [c.kind for c in plan.cannot]
    finally:
        Teardown(site, DigitalOcean(target), state).down()
