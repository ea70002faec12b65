"""Steps of features/own_hardware.feature: a site on a TrueNAS node its owner already
runs. The node is booted through the fake world's admin API (never through
DigitalOcean), its API key written to a 0600 file the site file names."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pytest_bdd import given, parsers, then

from infra.resources import pool as pools
from infra.site import Site
from infra.truenas.client import TrueNASClient
from steps.common import Run, Sites
from steps.fake_admin import FakeAdmin
from steps.sites import OWN_DOMAIN, own_node_site_data


@dataclass(frozen=True)
class OwnNode:
    """A node of one's own: where it answers, its API key, its disks (serials)."""

    address: str
    api_key: str
    serials: list[str]


def _sizes(text: str) -> list[int]:
    """`20, 20 and 30` -> [20, 20, 30]."""
    return [int(part) for part in text.replace(" and ", ",").split(",") if part.strip()]


def _names(text: str) -> list[str]:
    """`"A" and "B"` -> ["A", "B"]."""
    return [part.strip().strip('"') for part in text.split(" and ")]


@given(parsers.parse('a TrueNAS node of my own for the site "{name}", with disks of {sizes} '
                     'GiB'), target_fixture="own_node")
def _own_node(admin: FakeAdmin, name: str, sizes: str) -> OwnNode:
    return _own_node_with_memory(admin, name, sizes, 8)


@given(parsers.parse('a TrueNAS node of my own for the site "{name}", with disks of {sizes} '
                     'GiB and {memory:d} GiB of memory'), target_fixture="own_node")
def _own_node_with_memory(admin: FakeAdmin, name: str, sizes: str, memory: int) -> OwnNode:
    booted = admin.boot_own_node(_sizes(sizes), [f"{name}.{OWN_DOMAIN}"],
                                 memory_gigabytes=memory)
    return OwnNode(booted["address"], booted["api_key"],
                   [d["serial"] for d in booted["disks"] if d["name"] != "vda"])


@given(parsers.parse('the site "{name}" on that node, its pool on the disks {disks}'))
def _own_site(sites: Sites, own_node: OwnNode, name: str, disks: str) -> None:
    key_file = sites.state_root / f"{name}-truenas-api-key"
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(own_node.api_key)
    sites.own[name] = own_node_site_data(name, own_node.address, _names(disks),
                                         str(key_file), tls=True)


@then("DigitalOcean received no request")
def _no_cloud(run: Run) -> None:
    assert run.requests.total == 0, run.requests.mutating_requests() or run.requests.total


@then(parsers.parse('the pool of the site "{name}" is a healthy MIRROR of the disks {disks}'))
def _mirror_of(sites: Sites, name: str, disks: str) -> None:
    site = sites.site(name)
    assert site.node is not None and list(site.node.disks) == _names(disks)
    with sites.node(name) as client:
        found = pools.report(client, site)
        everything = client.call("disk.query")
    assert found.exists and found.healthy and found.layout == "MIRROR", found
    assert pools.members_match(found, site, everything), found.member_serials


@then(parsers.parse('the node keeps the pool of the site "{name}" and its datasets'))
def _pool_kept(sites: Sites, name: str) -> None:
    site = sites.site(name)
    with sites.node(name) as client:
        assert pools.find(client, site) is not None, "down removed the pool"
        held = {d["name"] for d in client.call("pool.dataset.query")}
    assert {f"{site.truenas.pool}/{d}" for d in site.truenas.datasets} <= held


@then(parsers.parse('nothing else the site "{name}" made is left on its node'))
def _nothing_made_left(sites: Sites, name: str) -> None:
    site = sites.site(name)
    with sites.node(name) as client:
        assert client.call("app.query") == []
        assert client.call("pool.snapshottask.query") == []
        certificates = [c["name"] for c in client.call("certificate.query")]
        ui = client.call("system.general.config")
    assert not [c for c in certificates if c.startswith(f"{site.name}-site-")], certificates
    assert site.node is not None and ui["ui_httpsport"] == site.node.admin_port


@then(parsers.parse('the node of the site "{name}" has no pool'))
def _no_pool(sites: Sites, name: str) -> None:
    with sites.node(name) as client:
        assert client.call("pool.query") == []


def make_owners_pool(client: TrueNASClient, site: Site) -> None:
    """The pool the owner made in TrueNAS before there was a site file: a mirror of the
    site's named disks, with the site's pool name (`up` then uses it as it is)."""
    devices = [d["name"] for d in client.call("disk.query") if d["serial"] in site.node.disks]
    client.call_job("pool.create", {"name": site.truenas.pool, "encryption": False,
                                    "topology": {"data": [{"type": "MIRROR",
                                                           "disks": devices}]}},
                    real_seconds=600)
