"""Steps of features/snapshots.feature: rollback, clone, retention, off-node backup."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import timedelta

from pytest_bdd import given, parsers, then, when

from infra import snapshots
from infra.backup import Backup, DrillReport
from infra.errors import NotFound
from steps.common import Sites, WrittenFiles
from steps.fake_admin import FakeAdmin
from steps.sites import build_site


@dataclass(frozen=True)
class PeriodicSnapshots:
    """Where a periodic snapshot task's snapshots were counted."""

    site: str
    dataset: str


@dataclass(frozen=True)
class VolumeBackup:
    """A DigitalOcean snapshot of one of a site's volumes."""

    site: str
    snapshot: dict


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@when("the files written are overwritten with other bytes", target_fixture="overwritten")
def _overwrite(sites: Sites, written: WrittenFiles) -> WrittenFiles:
    digests = {}
    with sites.node(written.site) as client:
        for path in written.digests:
            data = os.urandom(4096)
            client.upload(path, data)
            digests[path] = _digest(data)
            assert digests[path] != written.digests[path]
    return WrittenFiles(written.site, digests)


@when(parsers.parse('I roll the dataset "{dataset}" of the site "{name}" back to "{snapshot}"'))
def _rollback(sites: Sites, dataset: str, name: str, snapshot: str) -> None:
    with sites.node(name) as client:
        # The site's hourly task may have snapshotted since (an hour of the fake's clock
        # is 7 s of wall time, less than a loaded machine takes over these steps), and a
        # rollback past a newer snapshot is refused: discard it, as a user would (-r).
        snapshots.rollback(client, build_site(name), dataset, snapshot, discard_newer=True)


@when(parsers.parse('I clone the snapshot "{snapshot}" of the dataset "{dataset}" of the site '
                    '"{name}" to "{clone}"'))
def _clone(sites: Sites, snapshot: str, dataset: str, name: str, clone: str) -> None:
    with sites.node(name) as client:
        snapshots.clone(client, build_site(name), dataset, snapshot, clone)


def _read_all(sites: Sites, written: WrittenFiles, dataset: str) -> dict[str, str]:
    """The digest of each file written, read from `dataset` instead of `data`."""
    site = build_site(written.site)
    read = {}
    with sites.node(written.site) as client:
        for path in written.digests:
            moved = path.replace(f"/mnt/{site.truenas.pool}/data/",
                                 f"/mnt/{site.truenas.pool}/{dataset}/")
            read[path] = _digest(client.download(moved))
    return read


@then(parsers.parse('the files in "{dataset}" hold the bytes first written'))
def _clone_has_old(sites: Sites, written: WrittenFiles, dataset: str) -> None:
    assert _read_all(sites, written, dataset) == written.digests


@then(parsers.parse('the files in "{dataset}" hold the new bytes'))
def _live_has_new(sites: Sites, written: WrittenFiles, overwritten: WrittenFiles,
                  dataset: str) -> None:
    assert _read_all(sites, written, dataset) == overwritten.digests


@given(parsers.parse('the site "{name}" takes hourly snapshots of "{dataset}" kept for one day'))
def _hourly_policy(name: str, dataset: str) -> None:
    policies = [p for p in build_site(name).snapshots if p.dataset == dataset]
    assert policies and policies[0].hour == "*" and policies[0].minute == "0"
    assert (policies[0].lifetime_value, policies[0].lifetime_unit) == (1, "DAY")


@when("two days pass on the site's clock")
def _two_days(admin: FakeAdmin) -> None:
    admin.advance_clock(2 * 86400)


def _periodic(sites: Sites, name: str, dataset: str) -> tuple[list[dict], object]:
    # The node's time first, then what it holds: the list then shows every run due by
    # that time (read the other way round, a run due in between would be missing).
    with sites.node(name) as client:
        now = client.call("system.info")["datetime"]
        taken = [s for s in snapshots.list_(client, build_site(name), dataset)
                 if s["snapshot_name"].startswith("auto-")]
    return taken, now


@then(parsers.parse('the dataset "{dataset}" of the site "{name}" has between {low:d} and '
                    '{high:d} periodic snapshots'), target_fixture="periodic")
def _retention_count(sites: Sites, dataset: str, name: str, low: int,
                     high: int) -> PeriodicSnapshots:
    taken, _ = _periodic(sites, name, dataset)
    assert low <= len(taken) <= high, [s["snapshot_name"] for s in taken]
    return PeriodicSnapshots(name, dataset)


@then("none of them outlived its day by more than one hourly run")
def _none_too_old(sites: Sites, periodic: PeriodicSnapshots) -> None:
    # Expired snapshots go when the task next runs (zettarepl prunes on each run, as
    # far as we know: inferred, not read in its source),
    # so one can outlive its retention by up to one schedule interval.
    taken, now = _periodic(sites, periodic.site, periodic.dataset)
    for snapshot in taken:
        created = snapshot["properties"]["creation"]["parsed"]
        assert now - created <= timedelta(days=1, hours=1), snapshot["snapshot_name"]


@when(parsers.parse('I back up the volume "{volume}" of the site "{name}" with a DigitalOcean '
                    'snapshot'), target_fixture="volume_backup")
def _backup(sites: Sites, volume: str, name: str) -> VolumeBackup:
    backup = Backup(build_site(name), sites.client(), sites.state(name))
    return VolumeBackup(name, backup.snapshot_volume(
        volume, f"{name}-{volume}-{os.urandom(3).hex()}"))


@when("I verify that backup on a scratch droplet", target_fixture="drill")
def _drill(sites: Sites, volume_backup: VolumeBackup) -> DrillReport:
    name = volume_backup.site
    return Backup(build_site(name), sites.client(), sites.state(name)).drill(
        volume_backup.snapshot)


@then(parsers.parse('the scratch node found the pool "{pool}" on the restored volume'))
def _pool_found(drill: DrillReport, pool: str) -> None:
    assert drill.found(pool), drill.importable


@then("nothing of the verification is left behind")
def _drill_cleaned(sites: Sites, drill: DrillReport) -> None:
    assert drill.cleaned
    do = sites.client()
    for kind, ident in drill.scratch.items():
        getter = do.client.droplets.get if kind == "droplet" else do.client.volumes.get
        try:
            do.call(f"get scratch {kind}", getter, ident)
            raise AssertionError(f"scratch {kind} {ident} is still there")
        except NotFound:
            pass
