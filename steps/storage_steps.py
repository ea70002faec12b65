"""Steps of features/storage.feature: the mirrored pool, losing and repairing it; and
the files written to a site, which the recovery and snapshot features read back."""

from __future__ import annotations

import hashlib
import os

import pytest
from pytest_bdd import given, parsers, then, when

from infra import desired, faults
from infra.check import check
from infra.errors import InfraError
from infra.resources.pool import report as pool_report
from infra.resources.volume import find as find_volume
from infra.storage import Repair, scrub
from steps.common import Sites, WrittenFiles
from steps.fake_admin import FakeAdmin
from steps.sites import build_site

# Sizes that cross interesting boundaries: empty, small, not a block multiple, a few MiB.
FILE_SIZES = (0, 1024, 300_001, 3 * 1024 * 1024)


def _pool_status(sites: Sites, name: str):
    with sites.node(name) as client:
        return pool_report(client, build_site(name))


@given(parsers.parse('files written to the dataset "{dataset}" of the site "{name}"'),
       target_fixture="written")
def _files_written(sites: Sites, dataset: str, name: str) -> WrittenFiles:
    site = build_site(name)
    digests = {}
    with sites.node(name) as client:
        for size in FILE_SIZES:
            data = os.urandom(size)
            path = f"/mnt/{site.truenas.pool}/{dataset}/file-{size}.bin"
            client.upload(path, data)
            digests[path] = hashlib.sha256(data).hexdigest()
    return WrittenFiles(name, digests)


@when(parsers.parse('the volume "{volume}" of the site "{name}" is detached'))
def _detach(sites: Sites, volume: str, name: str) -> None:
    faults.detach_volume(sites.client(), build_site(name), f"{name}-{volume}")


@when(parsers.parse('the volume "{volume}" of the site "{name}" is detached and deleted'))
def _delete(sites: Sites, volume: str, name: str) -> None:
    faults.delete_volume(sites.client(), build_site(name), f"{name}-{volume}")


@when(parsers.parse('I repair the site "{name}"'), target_fixture="repair_changes")
def _repair(sites: Sites, name: str) -> list[str]:
    site = build_site(name)
    with sites.node(name) as client:
        return Repair(site, sites.client(), client, sites.state(name)).run()


@when(parsers.parse('one file rots on the volume "{volume}" of the site "{name}"'))
def _bit_rot(sites: Sites, admin: FakeAdmin, written: WrittenFiles, volume: str,
             name: str) -> None:
    site = build_site(name)
    path = sorted(p for p in written.digests if not p.endswith("-0.bin"))[-1]
    dataset, relative = path.removeprefix("/mnt/").rsplit("/", 1)
    volume_id = find_volume(sites.client(), site, f"{name}-{volume}")["id"]
    admin.bit_rot(volume_id, dataset, relative)


@when(parsers.parse('I scrub the pool of the site "{name}"'), target_fixture="scan")
def _scrub(sites: Sites, name: str) -> dict:
    with sites.node(name) as client:
        return scrub(client, build_site(name))


@then(parsers.parse('the pool of the site "{name}" is a healthy MIRROR of exactly its two '
                    'volumes'))
def _healthy_mirror(sites: Sites, name: str) -> None:
    site = build_site(name)
    pool = _pool_status(sites, name)
    assert pool.exists and pool.status == "ONLINE" and pool.healthy, pool
    assert pool.layout == "MIRROR", pool
    assert sorted(pool.member_serials) == sorted(desired.volume_names(site))


@then(parsers.parse('the pool of the site "{name}" is DEGRADED'))
def _degraded(sites: Sites, name: str) -> None:
    sites.client().wait_until("the pool to notice the lost disk",
                              lambda: _pool_status(sites, name).status == "DEGRADED", 300)
    assert not _pool_status(sites, name).healthy


@then("every file written reads back byte-identical")
def _files_intact(sites: Sites, written: WrittenFiles) -> None:
    with sites.node(written.site) as client:
        for path, digest in written.digests.items():
            assert hashlib.sha256(client.download(path)).hexdigest() == digest, path


@then(parsers.parse('the repair created a new volume "{volume}" and resilvered the pool'))
def _repair_created(repair_changes: list[str], volume: str) -> None:
    assert any(f"create replacement volume {volume}" in c for c in repair_changes), \
        repair_changes
    assert any(c.startswith("replace lost member") for c in repair_changes), repair_changes


@then("the scrub repaired at least one error")
def _scrub_repaired(scan: dict) -> None:
    assert scan["state"] == "FINISHED"
    assert scan["errors"] >= 1, scan


@then(parsers.parse('check reports the pool of the site "{name}" as lost'))
def _pool_lost(sites: Sites, name: str) -> None:
    report = check(build_site(name), sites.client(), sites.state(name))
    pool_findings = [f for f in report.findings if f.requirement.startswith("pool ")]
    assert pool_findings, [f.requirement for f in report.findings]
    assert not report.ok
    assert not all(f.ok for f in pool_findings), pool_findings


@then("reading the files written fails instead of returning wrong bytes")
def _reads_fail(sites: Sites, written: WrittenFiles) -> None:
    with sites.node(written.site) as client:
        for path in written.digests:
            with pytest.raises(InfraError):
                client.download(path)
