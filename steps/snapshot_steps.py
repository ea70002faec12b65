"""Steps of features/snapshots.feature: rollback, clone, retention, off-node backup."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta

from pytest_bdd import given, parsers, then, when

from infra import snapshots
from infra.backup import Backup
from infra.errors import NotFound
from steps.fixtures import ScenarioContext
from steps.node_steps import _state
from steps.sites import build_site
from steps.storage_steps import node


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@when("the files written are overwritten with other bytes")
def _overwrite(spec: ScenarioContext) -> None:
    spec.new_files = {}
    with node(spec, spec.files_site) as client:
        for path in spec.files:
            data = os.urandom(4096)
            client.upload(path, data)
            spec.new_files[path] = _digest(data)
            assert spec.new_files[path] != spec.files[path]


@when(parsers.parse('I roll the dataset "{dataset}" of the site "{name}" back to "{snapshot}"'))
def _rollback(spec: ScenarioContext, dataset: str, name: str, snapshot: str) -> None:
    with node(spec, name) as client:
        # The site's hourly task may have snapshotted since (an hour of the fake's clock
        # is 7 s of wall time, less than a loaded machine takes over these steps), and a
        # rollback past a newer snapshot is refused: discard it, as a user would (-r).
        snapshots.rollback(client, build_site(name), dataset, snapshot, discard_newer=True)


@when(parsers.parse('I clone the snapshot "{snapshot}" of the dataset "{dataset}" of the site '
                    '"{name}" to "{clone}"'))
def _clone(spec: ScenarioContext, snapshot: str, dataset: str, name: str, clone: str) -> None:
    with node(spec, name) as client:
        snapshots.clone(client, build_site(name), dataset, snapshot, clone)


def _read_all(spec: ScenarioContext, dataset: str) -> dict[str, str]:
    site = build_site(spec.files_site)
    read = {}
    with node(spec, spec.files_site) as client:
        for path in spec.files:
            moved = path.replace(f"/mnt/{site.truenas.pool}/data/",
                                 f"/mnt/{site.truenas.pool}/{dataset}/")
            read[path] = _digest(client.download(moved))
    return read


@then(parsers.parse('the files in "{dataset}" hold the bytes first written'))
def _clone_has_old(spec: ScenarioContext, dataset: str) -> None:
    assert _read_all(spec, dataset) == spec.files


@then(parsers.parse('the files in "{dataset}" hold the new bytes'))
def _live_has_new(spec: ScenarioContext, dataset: str) -> None:
    assert _read_all(spec, dataset) == spec.new_files


@given(parsers.parse('the site "{name}" takes hourly snapshots of "{dataset}" kept for one day'))
def _hourly_policy(name: str, dataset: str) -> None:
    policies = [p for p in build_site(name).snapshots if p.dataset == dataset]
    assert policies and policies[0].hour == "*" and policies[0].minute == "0"
    assert (policies[0].lifetime_value, policies[0].lifetime_unit) == (1, "DAY")


@when("two days pass on the site's clock")
def _two_days(spec: ScenarioContext) -> None:
    spec.target.admin().advance_clock(2 * 86400)


def _periodic(spec: ScenarioContext, name: str, dataset: str) -> tuple[list[dict], object]:
    with node(spec, name) as client:
        taken = [s for s in snapshots.list_(client, build_site(name), dataset)
                 if s["snapshot_name"].startswith("auto-")]
        now = client.call("system.info")["datetime"]
    return taken, now


@then(parsers.parse('the dataset "{dataset}" of the site "{name}" has between {low:d} and '
                    '{high:d} periodic snapshots'))
def _retention_count(spec: ScenarioContext, dataset: str, name: str, low: int,
                     high: int) -> None:
    taken, _ = _periodic(spec, name, dataset)
    assert low <= len(taken) <= high, [s["snapshot_name"] for s in taken]
    spec.periodic = (name, dataset)


@then("none of them outlived its day by more than one hourly run")
def _none_too_old(spec: ScenarioContext) -> None:
    # Expired snapshots go when the task next runs (zettarepl prunes on each run, as
    # far as we know: inferred, not read in its source),
    # so one can outlive its retention by up to one schedule interval.
    taken, now = _periodic(spec, *spec.periodic)
    for snapshot in taken:
        created = snapshot["properties"]["creation"]["parsed"]
        assert now - created <= timedelta(days=1, hours=1), snapshot["snapshot_name"]


@when(parsers.parse('I back up the volume "{volume}" of the site "{name}" with a DigitalOcean '
                    'snapshot'))
def _backup(spec: ScenarioContext, volume: str, name: str) -> None:
    backup = Backup(build_site(name), spec.client(), _state(spec, name))
    spec.backup = backup.snapshot_volume(volume, f"{name}-{volume}-{os.urandom(3).hex()}")


@when("I verify that backup on a scratch droplet")
def _drill(spec: ScenarioContext) -> None:
    backup = Backup(build_site(spec.files_site), spec.client(), _state(spec, spec.files_site))
    spec.drill = backup.drill(spec.backup)


@then(parsers.parse('the scratch node found the pool "{pool}" on the restored volume'))
def _pool_found(spec: ScenarioContext, pool: str) -> None:
    assert spec.drill.found(pool), spec.drill.importable


@then("nothing of the verification is left behind")
def _drill_cleaned(spec: ScenarioContext) -> None:
    assert spec.drill.cleaned
    do = spec.client()
    for kind, ident in spec.drill.scratch.items():
        getter = do.client.droplets.get if kind == "droplet" else do.client.volumes.get
        try:
            do.call(f"get scratch {kind}", getter, ident)
            raise AssertionError(f"scratch {kind} {ident} is still there")
        except NotFound:
            pass
