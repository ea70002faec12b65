"""Steps of features/storage.feature: the mirrored pool, losing and repairing it."""

from __future__ import annotations

import hashlib
import os

import pytest
from pytest_bdd import given, parsers, then, when

from infra import desired, faults
from infra.check import check
from infra.errors import InfraError
from infra.node import open_node, pool_report
from infra.observe import find_droplet, find_volume, public_ipv4
from infra.storage import Repair, scrub
from infra.truenas.client import TrueNASClient
from steps.fixtures import ScenarioContext
from steps.node_steps import _state
from steps.sites import build_site

# Sizes that cross interesting boundaries: empty, small, not a block multiple, a few MiB.
FILE_SIZES = (0, 1024, 300_001, 3 * 1024 * 1024)


def node(spec: ScenarioContext, name: str) -> TrueNASClient:
    site = build_site(name)
    droplet = find_droplet(spec.client(), site)
    assert droplet is not None, f"the site {name} has no droplet"
    return open_node(site, spec.target, _state(spec, name), public_ipv4(droplet))


def _pool_status(spec: ScenarioContext, name: str):
    with node(spec, name) as client:
        return pool_report(client, build_site(name))


@given(parsers.parse('files written to the dataset "{dataset}" of the site "{name}"'))
def _files_written(spec: ScenarioContext, dataset: str, name: str) -> None:
    site = build_site(name)
    spec.files = {}
    with node(spec, name) as client:
        for size in FILE_SIZES:
            data = os.urandom(size)
            path = f"/mnt/{site.truenas.pool}/{dataset}/file-{size}.bin"
            client.upload(path, data)
            spec.files[path] = hashlib.sha256(data).hexdigest()
    spec.files_site = name


@when(parsers.parse('the volume "{volume}" of the site "{name}" is detached'))
def _detach(spec: ScenarioContext, volume: str, name: str) -> None:
    faults.detach_volume(spec.client(), build_site(name), f"{name}-{volume}")


@when(parsers.parse('the volume "{volume}" of the site "{name}" is detached and deleted'))
def _delete(spec: ScenarioContext, volume: str, name: str) -> None:
    faults.delete_volume(spec.client(), build_site(name), f"{name}-{volume}")


@when(parsers.parse('I repair the site "{name}"'))
def _repair(spec: ScenarioContext, name: str) -> None:
    site = build_site(name)
    with node(spec, name) as client:
        spec.repair_changes = Repair(site, spec.client(), client, _state(spec, name)).run()


@when(parsers.parse('one file rots on the volume "{volume}" of the site "{name}"'))
def _bit_rot(spec: ScenarioContext, volume: str, name: str) -> None:
    site = build_site(name)
    path = sorted(p for p in spec.files if not p.endswith("-0.bin"))[-1]
    dataset, relative = path.removeprefix("/mnt/").rsplit("/", 1)
    volume_id = find_volume(spec.client(), site, f"{name}-{volume}")["id"]
    spec.target.admin().bit_rot(volume_id, dataset, relative)


@when(parsers.parse('I scrub the pool of the site "{name}"'))
def _scrub(spec: ScenarioContext, name: str) -> None:
    with node(spec, name) as client:
        spec.scan = scrub(client, build_site(name))


@then(parsers.parse('the pool of the site "{name}" is a healthy MIRROR of exactly its two '
                    'volumes'))
def _healthy_mirror(spec: ScenarioContext, name: str) -> None:
    site = build_site(name)
    pool = _pool_status(spec, name)
    assert pool.exists and pool.status == "ONLINE" and pool.healthy, pool
    assert pool.layout == "MIRROR", pool
    assert sorted(pool.member_serials) == sorted(desired.volume_names(site))


@then(parsers.parse('the pool of the site "{name}" is DEGRADED'))
def _degraded(spec: ScenarioContext, name: str) -> None:
    do = spec.client()
    do.wait_until("the pool to notice the lost disk",
                  lambda: _pool_status(spec, name).status == "DEGRADED", 300)
    assert not _pool_status(spec, name).healthy


@then("every file written reads back byte-identical")
def _files_intact(spec: ScenarioContext) -> None:
    with node(spec, spec.files_site) as client:
        for path, digest in spec.files.items():
            assert hashlib.sha256(client.download(path)).hexdigest() == digest, path


@then(parsers.parse('the repair created a new volume "{volume}" and resilvered the pool'))
def _repair_created(spec: ScenarioContext, volume: str) -> None:
    assert any(f"create replacement volume {volume}" in c for c in spec.repair_changes), \
        spec.repair_changes
    assert any(c.startswith("replace lost member") for c in spec.repair_changes), \
        spec.repair_changes


@then("the scrub repaired at least one error")
def _scrub_repaired(spec: ScenarioContext) -> None:
    assert spec.scan["state"] == "FINISHED"
    assert spec.scan["errors"] >= 1, spec.scan


@then(parsers.parse('check reports the pool of the site "{name}" as lost'))
def _pool_lost(spec: ScenarioContext, name: str) -> None:
    report = check(build_site(name), spec.client(), _state(spec, name))
    pool_findings = [f for f in report.findings if f.requirement.startswith("pool ")]
    assert pool_findings, [f.requirement for f in report.findings]
    assert not report.ok
    assert not all(f.ok for f in pool_findings), pool_findings


@then("reading the files written fails instead of returning wrong bytes")
def _reads_fail(spec: ScenarioContext) -> None:
    with node(spec, spec.files_site) as client:
        for path in spec.files:
            with pytest.raises(InfraError):
                client.download(path)
